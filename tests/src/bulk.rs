//! Bulk catalog content written straight into PostgreSQL, for large-table tests and
//! benchmarks (the admin API would take minutes for a million triggers).

use sea_orm::{ConnectionTrait, Database};

/// Adds `count` numbers to `project_id`, each with an active `inbound_message` trigger of
/// `workflow_id`, and bumps the routing version once. Returns the new version.
pub async fn message_triggers(
    database_url: &str,
    project_id: &str,
    workflow_id: &str,
    first_phone_number_id: u64,
    count: u64,
) -> anyhow::Result<i64> {
    let db = Database::connect(database_url).await?;
    let last = first_phone_number_id + count - 1;
    db.execute_unprepared(&format!(
        "INSERT INTO whatsapp_configs
             (project_id, phone_number_id, display_phone_number, is_default, created_at)
         SELECT '{project_id}', g::text, '+1' || right(g::text, 10), false, now()
         FROM generate_series({first_phone_number_id}::bigint, {last}::bigint) g"
    ))
    .await?;
    db.execute_unprepared(&format!(
        "INSERT INTO triggers (id, workflow_id, project_id, trigger_type, whatsapp_config_id,
                               event_type, active, created_at, updated_at)
         SELECT gen_random_uuid()::text, '{workflow_id}', '{project_id}', 'inbound_message',
                c.id, NULL, true, now(), now()
         FROM whatsapp_configs c
         WHERE c.project_id = '{project_id}'
           AND c.phone_number_id::bigint BETWEEN {first_phone_number_id} AND {last}"
    ))
    .await?;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "UPDATE routing_state SET version = version + 1 WHERE id = 1 RETURNING version",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("routing_state row missing"))?;
    let version = row.try_get_by_index::<i64>(0)?;
    db.close().await?;
    Ok(version)
}
