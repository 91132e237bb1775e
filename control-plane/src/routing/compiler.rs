//! Compiles the catalog at one routing version into an immutable routing table (DESIGN §4):
//! API keys, numbers, workflows (status and API trigger), and the active message and event
//! triggers of active workflows.

use super::encoded::{Builder, CompiledTable};
use super::pg_copy::{self, Fields, FromCopy};
use super::streaming::StreamingSnapshot;
use crate::catalog::{self, Catalog};
use crate::db::{api_key, trigger, whatsapp_config, workflow};
use futures_util::TryStreamExt;
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QuerySelect, Statement,
    TransactionTrait,
};
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::routing_entry::Entry;
use switchboard_proto::wire::{EntryKey, TriggerType};

fn entry(key: String, entry: Entry) -> pb::RoutingEntry {
    pb::RoutingEntry {
        key,
        entry: Some(entry),
    }
}

/// Reads the catalog at one consistent snapshot (read-only) and compiles it.
pub async fn compile(catalog: &Catalog) -> catalog::Result<CompiledTable> {
    compile_with(catalog, Builders::default()).await
}

/// [`compile`], handing every segment of the new table to `stream` as it is filled: the
/// table goes to nodes while it compiles once its changes are large.
pub async fn compile_streamed(
    catalog: &Catalog,
    stream: Arc<StreamingSnapshot>,
) -> catalog::Result<CompiledTable> {
    compile_with(
        catalog,
        Builders {
            stream: Some(stream),
        },
    )
    .await
}

async fn compile_with(catalog: &Catalog, builders: Builders) -> catalog::Result<CompiledTable> {
    let compilation = match catalog.connection().get_database_backend() {
        DbBackend::Postgres => read_postgres(catalog, builders).await?,
        _ => read_generic(catalog, builders).await?,
    };
    // Indexing is CPU work proportional to the catalog: keep it off the async workers.
    tokio::task::spawn_blocking(move || compilation.finish())
        .await
        .map_err(|e| {
            catalog::Error::Database(sea_orm::DbErr::Custom(format!(
                "routing table build failed: {e}"
            )))
        })
}

/// The routing version and about how many entries of each kind it will compile to, what a
/// streamed snapshot announces: on PostgreSQL the live rows its statistics count (no scan;
/// they may lag a write by a moment, and a wrong hint only costs growth), elsewhere a count
/// (triggers of draft workflows count too).
const HEADER_ESTIMATED: &str = "SELECT COALESCE((SELECT version FROM routing_state WHERE id = 1), 0), \
                                pg_stat_get_live_tuples('api_keys'::regclass), \
                                pg_stat_get_live_tuples('whatsapp_configs'::regclass), \
                                pg_stat_get_live_tuples('workflows'::regclass), \
                                pg_stat_get_live_tuples('triggers'::regclass)";
const HEADER_COUNTED: &str = "SELECT COALESCE((SELECT version FROM routing_state WHERE id = 1), 0), \
                              (SELECT count(*) FROM api_keys), \
                              (SELECT count(*) FROM whatsapp_configs), \
                              (SELECT count(*) FROM workflows), \
                              (SELECT count(*) FROM triggers \
                               WHERE active AND trigger_type <> 'api_call')";
const KEYS: &str =
    "SELECT id, project_id, secret_sha256, burst_limit, revoked_at IS NOT NULL FROM api_keys";
const WORKFLOWS: &str = "SELECT id, project_id, status FROM workflows";
const NUMBERS: &str = "SELECT id, project_id, phone_number_id, display_phone_number, is_default, \
                       access_token FROM whatsapp_configs";
const TRIGGERS: &str = "SELECT id, workflow_id, project_id, trigger_type, whatsapp_config_id, \
                        event_type, active FROM triggers";

/// `(version, api keys, numbers, workflows, routable triggers)`.
type Header = (i64, i64, i64, i64, i64);

/// The builders of one compile: where their segments go.
#[derive(Default)]
struct Builders {
    stream: Option<Arc<StreamingSnapshot>>,
}

impl Builders {
    /// A builder for about `entries` entries (the header's count or estimate).
    fn builder(&self, entries: i64) -> Builder {
        let builder = Builder::with_capacity(usize::try_from(entries).unwrap_or_default());
        match &self.stream {
            Some(stream) => builder.with_sink(stream.clone()),
            None => builder,
        }
    }
}

/// Tells `stream` the version it compiles and the counts to announce.
fn begin(stream: &StreamingSnapshot, (version, keys, numbers, workflows, triggers): Header) {
    let count = |n: i64| u64::try_from(n).unwrap_or_default();
    let counts = pb::EntryCounts {
        api_keys: count(keys),
        numbers: count(numbers),
        workflows: count(workflows),
        triggers: count(triggers),
    };
    stream.begin(version, counts);
}

/// PostgreSQL: a REPEATABLE READ, READ ONLY transaction whose snapshot a second
/// transaction shares (`pg_export_snapshot`), so numbers and triggers — the two large
/// tables — are read at the same time on two connections and two cores; every table is
/// read with `COPY` and compiled row by row as it arrives.
async fn read_postgres(catalog: &Catalog, builders: Builders) -> Result<Compilation, DbErr> {
    use sea_orm::sqlx;
    let pool = catalog.connection().get_postgres_connection_pool();
    let mut txn = read_only_transaction(pool).await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *txn)
        .await
        .map_err(pg_copy::query_error)?;
    let header: Header = sqlx::query_as(HEADER_ESTIMATED)
        .fetch_one(&mut *txn)
        .await
        .map_err(pg_copy::query_error)?;
    if let Some(stream) = &builders.stream {
        begin(stream, header);
    }
    let (version, _, numbers, _, triggers) = header;
    let numbers = tokio::spawn(read_numbers(
        pool.clone(),
        snapshot,
        builders.builder(numbers),
    ));
    let rest = async {
        let mut keys: Vec<KeyRow> = Vec::new();
        pg_copy::rows(&mut txn, KEYS, |row| keys.push(row)).await?;
        let mut workflows: Vec<WorkflowRow> = Vec::new();
        pg_copy::rows(&mut txn, WORKFLOWS, |row| workflows.push(row)).await?;
        let table = builders.builder(keys.len() as i64 + workflows.len() as i64 + triggers);
        let mut compilation = Compilation::new(table, version, keys, workflows);
        compilation.stream = builders.stream.clone();
        pg_copy::rows(&mut txn, TRIGGERS, |row| compilation.trigger(row)).await?;
        Ok::<_, DbErr>(compilation)
    }
    .await;
    let mut compilation = match rest {
        Ok(compilation) => compilation,
        Err(err) => {
            // Nobody wants the numbers any more.
            numbers.abort();
            return Err(err);
        }
    };
    let numbers = numbers
        .await
        .map_err(|e| DbErr::Custom(format!("reading numbers failed: {e}")))??;
    // The exporting transaction stays open until the importer is done with the snapshot.
    txn.commit().await.map_err(pg_copy::query_error)?;
    compilation.table.append(numbers);
    Ok(compilation)
}

/// A REPEATABLE READ, READ ONLY transaction on a connection of the pool.
async fn read_only_transaction(
    pool: &sea_orm::sqlx::PgPool,
) -> Result<sea_orm::sqlx::Transaction<'static, sea_orm::sqlx::Postgres>, DbErr> {
    let mut txn = pool.begin().await.map_err(pg_copy::query_error)?;
    sea_orm::sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *txn)
        .await
        .map_err(pg_copy::query_error)?;
    Ok(txn)
}

/// [`read_only_transaction`] in the exported `snapshot`.
async fn imported_transaction(
    pool: &sea_orm::sqlx::PgPool,
    snapshot: &str,
) -> Result<sea_orm::sqlx::Transaction<'static, sea_orm::sqlx::Postgres>, DbErr> {
    use sea_orm::sqlx;
    // Snapshot ids are PostgreSQL's own (hex digits and dashes); refuse anything else
    // rather than put it in SQL.
    if snapshot.is_empty() || !snapshot.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(DbErr::Custom(format!(
            "unexpected snapshot id {snapshot:?}"
        )));
    }
    let mut txn = read_only_transaction(pool).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET TRANSACTION SNAPSHOT '{snapshot}'"
    )))
    .execute(&mut *txn)
    .await
    .map_err(pg_copy::query_error)?;
    Ok(txn)
}

/// The numbers, read in the exported `snapshot` on a connection of its own.
async fn read_numbers(
    pool: sea_orm::sqlx::PgPool,
    snapshot: String,
    mut table: Builder,
) -> Result<Builder, DbErr> {
    let mut txn = imported_transaction(&pool, &snapshot).await?;
    pg_copy::rows(&mut txn, NUMBERS, |row| table.push(&number_entry(row))).await?;
    txn.commit().await.map_err(pg_copy::query_error)?;
    // The last numbers can go to nodes now rather than when the triggers are done.
    table.seal();
    Ok(table)
}

/// Other databases (SQLite): one transaction through sea-orm; numbers and triggers streamed
/// and compiled row by row.
async fn read_generic(catalog: &Catalog, builders: Builders) -> catalog::Result<Compilation> {
    let txn = catalog.connection().begin().await?;
    let header = txn
        .query_one_raw(Statement::from_string(
            txn.get_database_backend(),
            HEADER_COUNTED,
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("routing version".into()))?;
    let header: Header = (
        header.try_get_by_index(0)?,
        header.try_get_by_index(1)?,
        header.try_get_by_index(2)?,
        header.try_get_by_index(3)?,
        header.try_get_by_index(4)?,
    );
    if let Some(stream) = &builders.stream {
        begin(stream, header);
    }
    let (version, keys, numbers, workflows, triggers) = header;
    let entries = keys + numbers + workflows + triggers;
    let keys = api_key::Entity::find()
        .all(&txn)
        .await?
        .into_iter()
        .map(KeyRow::from)
        .collect();
    let workflows = workflow::Entity::find()
        .all(&txn)
        .await?
        .into_iter()
        .map(WorkflowRow::from)
        .collect();
    let table = builders.builder(entries);
    let mut compilation = Compilation::new(table, version, keys, workflows);
    compilation.stream = builders.stream.clone();
    // Select only what routes, by position.
    use trigger::Column as T;
    use whatsapp_config::Column as N;
    let mut numbers = whatsapp_config::Entity::find()
        .select_only()
        .columns([
            N::Id,
            N::ProjectId,
            N::PhoneNumberId,
            N::DisplayPhoneNumber,
            N::IsDefault,
            N::AccessToken,
        ])
        .into_model::<NumberRow>()
        .stream(&txn)
        .await?;
    while let Some(row) = numbers.try_next().await? {
        compilation.number(row);
    }
    drop(numbers);
    let mut triggers = trigger::Entity::find()
        .select_only()
        .columns([
            T::Id,
            T::WorkflowId,
            T::ProjectId,
            T::TriggerType,
            T::WhatsappConfigId,
            T::EventType,
            T::Active,
        ])
        .into_model::<TriggerRow>()
        .stream(&txn)
        .await?;
    while let Some(row) = triggers.try_next().await? {
        compilation.trigger(row);
    }
    drop(triggers);
    txn.commit().await?;
    Ok(compilation)
}

/// An API key as the compiler reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRow {
    pub id: String,
    pub project_id: String,
    pub secret_sha256: String,
    pub burst_limit: Option<i64>,
    pub revoked: bool,
}

/// A workflow as the compiler reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowRow {
    pub id: String,
    pub project_id: String,
    pub status: String,
}

/// A WhatsApp number as the compiler reads it.
#[derive(Clone, Debug, PartialEq, FromQueryResult)]
pub struct NumberRow {
    /// The `whatsapp_config_id`.
    pub id: i64,
    pub project_id: String,
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub is_default: bool,
    pub access_token: Option<String>,
}

/// A trigger as the compiler reads it.
#[derive(Clone, Debug, PartialEq, FromQueryResult)]
pub struct TriggerRow {
    pub id: String,
    pub workflow_id: String,
    pub project_id: String,
    pub trigger_type: String,
    pub whatsapp_config_id: Option<i64>,
    pub event_type: Option<String>,
    pub active: bool,
}

/// The rows of catalog models (where they are read through sea-orm).
impl From<api_key::Model> for KeyRow {
    fn from(k: api_key::Model) -> Self {
        Self {
            revoked: k.revoked_at.is_some(),
            id: k.id,
            project_id: k.project_id,
            secret_sha256: k.secret_sha256,
            burst_limit: k.burst_limit,
        }
    }
}

impl From<workflow::Model> for WorkflowRow {
    fn from(w: workflow::Model) -> Self {
        Self {
            id: w.id,
            project_id: w.project_id,
            status: w.status,
        }
    }
}

impl From<whatsapp_config::Model> for NumberRow {
    fn from(n: whatsapp_config::Model) -> Self {
        Self {
            id: n.id,
            project_id: n.project_id,
            phone_number_id: n.phone_number_id,
            display_phone_number: n.display_phone_number,
            is_default: n.is_default,
            access_token: n.access_token,
        }
    }
}

impl From<trigger::Model> for TriggerRow {
    fn from(t: trigger::Model) -> Self {
        Self {
            id: t.id,
            workflow_id: t.workflow_id,
            project_id: t.project_id,
            trigger_type: t.trigger_type,
            whatsapp_config_id: t.whatsapp_config_id,
            event_type: t.event_type,
            active: t.active,
        }
    }
}

/// The pure part of compilation, separate so it can be benchmarked and unit-tested.
pub fn build(
    version: i64,
    keys: Vec<KeyRow>,
    numbers: Vec<NumberRow>,
    workflows: Vec<WorkflowRow>,
    triggers: Vec<TriggerRow>,
) -> CompiledTable {
    let mut table = Compilation::new(Builder::default(), version, keys, workflows);
    numbers.into_iter().for_each(|row| table.number(row));
    triggers.into_iter().for_each(|row| table.trigger(row));
    table.finish()
}

/// `COPY` rows, their columns in the order of the `SELECT`s above.
impl FromCopy for KeyRow {
    fn from_copy(f: &mut Fields<'_>) -> Result<Self, DbErr> {
        Ok(Self {
            id: f.text()?,
            project_id: f.text()?,
            secret_sha256: f.text()?,
            burst_limit: f.opt_int()?,
            revoked: f.boolean()?,
        })
    }
}

impl FromCopy for WorkflowRow {
    fn from_copy(f: &mut Fields<'_>) -> Result<Self, DbErr> {
        Ok(Self {
            id: f.text()?,
            project_id: f.text()?,
            status: f.text()?,
        })
    }
}

impl FromCopy for NumberRow {
    fn from_copy(f: &mut Fields<'_>) -> Result<Self, DbErr> {
        Ok(Self {
            id: f.int()?,
            project_id: f.text()?,
            phone_number_id: f.text()?,
            display_phone_number: f.text()?,
            is_default: f.boolean()?,
            access_token: f.opt_text()?,
        })
    }
}

impl FromCopy for TriggerRow {
    fn from_copy(f: &mut Fields<'_>) -> Result<Self, DbErr> {
        Ok(Self {
            id: f.text()?,
            workflow_id: f.text()?,
            project_id: f.text()?,
            trigger_type: f.text()?,
            whatsapp_config_id: f.opt_int()?,
            event_type: f.opt_text()?,
            active: f.boolean()?,
        })
    }
}

pub(super) fn number_entry(row: NumberRow) -> pb::RoutingEntry {
    entry(
        EntryKey::Number(row.id).to_key(),
        Entry::Number(pb::NumberRoute {
            whatsapp_config_id: row.id,
            project_id: row.project_id,
            phone_number_id: row.phone_number_id,
            display_phone_number: row.display_phone_number,
            is_default: row.is_default,
            access_token: row.access_token,
        }),
    )
}

pub(super) fn key_entry(row: KeyRow) -> pb::RoutingEntry {
    entry(
        EntryKey::ApiKey(&row.id).to_key(),
        Entry::ApiKey(pb::ApiKeyRoute {
            burst_limit: row.burst_limit.and_then(|b| u32::try_from(b).ok()),
            revoked: row.revoked,
            id: row.id,
            project_id: row.project_id,
            secret_sha256: row.secret_sha256,
        }),
    )
}

/// A workflow's route before its triggers are seen.
pub(super) fn workflow_route(row: WorkflowRow) -> pb::WorkflowRoute {
    pb::WorkflowRoute {
        id: row.id,
        project_id: row.project_id,
        status: row.status,
        ..Default::default()
    }
}

pub(super) fn workflow_entry(mut route: pb::WorkflowRoute) -> pb::RoutingEntry {
    route.trigger_types.sort();
    entry(
        EntryKey::Workflow(&route.id).to_key(),
        Entry::Workflow(route),
    )
}

/// Records trigger `row` in its workflow's `route` (the types it has, its API trigger) and
/// gives the trigger's own entry when it routes: only active message and event triggers
/// of active workflows do.
pub(super) fn route_trigger(
    route: &mut pb::WorkflowRoute,
    row: TriggerRow,
) -> Option<pb::RoutingEntry> {
    if !route.trigger_types.contains(&row.trigger_type) {
        route.trigger_types.push(row.trigger_type.clone());
    }
    if TriggerType::parse(&row.trigger_type) == Some(TriggerType::ApiCall) {
        route.api_trigger_active = row.active;
        route.api_trigger_id = Some(row.id);
        return None;
    }
    if !row.active || route.status != "active" {
        return None;
    }
    Some(entry(
        EntryKey::Trigger(&row.id).to_key(),
        Entry::Trigger(pb::TriggerRoute {
            id: row.id,
            workflow_id: row.workflow_id,
            project_id: row.project_id,
            r#type: row.trigger_type,
            whatsapp_config_id: row.whatsapp_config_id,
            event_type: row.event_type,
        }),
    ))
}

/// A table being compiled: API keys and workflows first, then numbers and triggers row by
/// row, then the workflows' routes (which the triggers complete).
struct Compilation {
    version: i64,
    table: Builder,
    routes: HashMap<String, pb::WorkflowRoute>,
    /// Told when every segment is sealed, before the table is indexed.
    stream: Option<Arc<StreamingSnapshot>>,
}

impl Compilation {
    fn new(
        mut table: Builder,
        version: i64,
        keys: Vec<KeyRow>,
        workflows: Vec<WorkflowRow>,
    ) -> Self {
        for row in keys {
            table.push(&key_entry(row));
        }
        let routes = workflows
            .into_iter()
            .map(|row| (row.id.clone(), workflow_route(row)))
            .collect();
        Self {
            version,
            table,
            routes,
            stream: None,
        }
    }

    fn number(&mut self, row: NumberRow) {
        self.table.push(&number_entry(row));
    }

    fn trigger(&mut self, row: TriggerRow) {
        let Some(route) = self.routes.get_mut(&row.workflow_id) else {
            return;
        };
        if let Some(entry) = route_trigger(route, row) {
            self.table.push(&entry);
        }
    }

    fn finish(mut self) -> CompiledTable {
        for route in self.routes.into_values() {
            self.table.push(&workflow_entry(route));
        }
        self.table.seal();
        if let Some(stream) = &self.stream {
            stream.complete();
        }
        self.table.finish(self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(id: &str, status: &str) -> WorkflowRow {
        WorkflowRow {
            id: id.into(),
            project_id: "p".into(),
            status: status.into(),
        }
    }

    fn trig(id: &str, workflow: &str, kind: &str, active: bool) -> TriggerRow {
        TriggerRow {
            id: id.into(),
            workflow_id: workflow.into(),
            project_id: "p".into(),
            trigger_type: kind.into(),
            whatsapp_config_id: (kind == "inbound_message").then_some(1),
            event_type: None,
            active,
        }
    }

    #[test]
    fn only_active_triggers_of_active_workflows_route() {
        let table = build(
            3,
            vec![],
            vec![],
            vec![wf("a", "active"), wf("d", "draft")],
            vec![
                trig("t1", "a", "inbound_message", true),
                trig("t2", "a", "inbound_message", false),
                trig("t3", "d", "inbound_message", true),
                trig("t4", "a", "api_call", false),
            ],
        );
        assert!(table.get("t:t1").is_some());
        assert!(table.get("t:t2").is_none());
        assert!(table.get("t:t3").is_none());
        let Some(Entry::Workflow(w)) = table.get("w:a").and_then(|e| e.entry) else {
            panic!("workflow entry missing");
        };
        assert_eq!(w.api_trigger_id.as_deref(), Some("t4"));
        assert!(!w.api_trigger_active);
        assert_eq!(w.trigger_types, vec!["api_call", "inbound_message"]);
    }

    #[test]
    fn diff_lists_changed_and_removed_entries() {
        let old = build(
            1,
            vec![],
            vec![],
            vec![wf("a", "active")],
            vec![trig("t1", "a", "inbound_message", true)],
        );
        let new = build(
            2,
            vec![],
            vec![],
            vec![wf("a", "draft")],
            vec![trig("t1", "a", "inbound_message", true)],
        );
        let delta = CompiledTable::diff(&old, &new, usize::MAX).unwrap_or_default();
        assert_eq!((delta.from_version, delta.to_version), (1, 2));
        assert_eq!(
            delta
                .upserts
                .iter()
                .map(|e| e.key.as_str())
                .collect::<Vec<_>>(),
            ["w:a"]
        );
        assert_eq!(delta.removals, ["t:t1"]);
    }
}
