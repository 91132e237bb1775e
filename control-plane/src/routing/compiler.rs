//! Compiles the catalog at one routing version into an immutable routing table (DESIGN §4):
//! API keys, numbers, workflows (status and API trigger), and the active message and event
//! triggers of active workflows.

use super::table::{Builder, CompiledTable};
use crate::catalog::{self, Catalog};
use crate::db::{api_key, trigger, whatsapp_config, workflow};
use futures_util::TryStreamExt;
use sea_orm::{
    AccessMode, ConnectionTrait, DbBackend, EntityTrait, IsolationLevel, QuerySelect, Statement,
    TransactionTrait,
};
use std::collections::HashMap;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::routing_entry::Entry;

pub fn api_key_key(id: &str) -> String {
    format!("k:{id}")
}
pub fn number_key(id: i64) -> String {
    format!("n:{id}")
}
pub fn workflow_key(id: &str) -> String {
    format!("w:{id}")
}
pub fn trigger_key(id: &str) -> String {
    format!("t:{id}")
}

fn entry(key: String, entry: Entry) -> pb::RoutingEntry {
    pb::RoutingEntry {
        key,
        entry: Some(entry),
    }
}

/// Reads the catalog in one consistent read-only transaction and compiles it.
pub async fn compile(catalog: &Catalog) -> catalog::Result<CompiledTable> {
    compile_like(catalog, &CompiledTable::default()).await
}

/// [`compile`], sizing the new table like `previous` (the catalog rarely changes size much,
/// and growing a large buffer by doubling costs copies and fresh pages).
pub async fn compile_like(
    catalog: &Catalog,
    previous: &CompiledTable,
) -> catalog::Result<CompiledTable> {
    let db = catalog.connection();
    let (isolation, mode) = match db.get_database_backend() {
        DbBackend::Postgres => (
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        ),
        _ => (None, None),
    };
    let txn = db.begin_with_config(isolation, mode).await?;
    let version = txn
        .query_one_raw(Statement::from_string(
            txn.get_database_backend(),
            "SELECT version FROM routing_state WHERE id = 1",
        ))
        .await?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or_default();
    let keys = api_key::Entity::find().all(&txn).await?;
    let workflows = workflow::Entity::find().all(&txn).await?;
    let mut table = Compilation::new(
        Builder::with_capacity(
            previous.len() + previous.len() / 16,
            previous.encoded_len() + previous.encoded_len() / 16,
        ),
        version,
        keys,
        workflows,
    );
    // Numbers and triggers are the large tables: select only what routes, by position, and
    // compile row by row as they arrive (no million-row vectors of rows).
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
        .into_tuple::<NumberRow>()
        .stream(&txn)
        .await?;
    while let Some(row) = numbers.try_next().await? {
        table.number(row);
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
        .into_tuple::<TriggerRow>()
        .stream(&txn)
        .await?;
    while let Some(row) = triggers.try_next().await? {
        table.trigger(row);
    }
    drop(triggers);
    txn.commit().await?;
    // Indexing is CPU work proportional to the catalog: keep it off the async workers.
    tokio::task::spawn_blocking(move || table.finish())
        .await
        .map_err(|e| {
            catalog::Error::Database(sea_orm::DbErr::Custom(format!(
                "routing table build failed: {e}"
            )))
        })
}

/// `(id, project_id, phone_number_id, display_phone_number, is_default, access_token)`.
pub type NumberRow = (i64, String, String, String, bool, Option<String>);
/// `(id, workflow_id, project_id, trigger_type, whatsapp_config_id, event_type, active)`.
pub type TriggerRow = (
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    bool,
);

/// The pure part of compilation, separate so it can be benchmarked and unit-tested.
pub fn build(
    version: i64,
    keys: Vec<api_key::Model>,
    numbers: Vec<NumberRow>,
    workflows: Vec<workflow::Model>,
    triggers: Vec<TriggerRow>,
) -> CompiledTable {
    let mut table = Compilation::new(Builder::default(), version, keys, workflows);
    numbers.into_iter().for_each(|row| table.number(row));
    triggers.into_iter().for_each(|row| table.trigger(row));
    table.finish()
}

/// A table being compiled: API keys and workflows first, then numbers and triggers row by
/// row, then the workflows' routes (which the triggers complete).
struct Compilation {
    version: i64,
    table: Builder,
    routes: HashMap<String, pb::WorkflowRoute>,
}

impl Compilation {
    fn new(
        mut table: Builder,
        version: i64,
        keys: Vec<api_key::Model>,
        workflows: Vec<workflow::Model>,
    ) -> Self {
        for k in keys {
            table.push(&entry(
                api_key_key(&k.id),
                Entry::ApiKey(pb::ApiKeyRoute {
                    burst_limit: k.burst_limit.and_then(|b| u32::try_from(b).ok()),
                    revoked: k.revoked_at.is_some(),
                    id: k.id,
                    project_id: k.project_id,
                    secret_sha256: k.secret_sha256,
                }),
            ));
        }
        let routes = workflows
            .into_iter()
            .map(|w| {
                (
                    w.id.clone(),
                    pb::WorkflowRoute {
                        id: w.id,
                        project_id: w.project_id,
                        status: w.status,
                        ..Default::default()
                    },
                )
            })
            .collect();
        Self {
            version,
            table,
            routes,
        }
    }

    fn number(&mut self, row: NumberRow) {
        let (id, project_id, phone_number_id, display_phone_number, is_default, access_token) = row;
        self.table.push(&entry(
            number_key(id),
            Entry::Number(pb::NumberRoute {
                whatsapp_config_id: id,
                project_id,
                phone_number_id,
                display_phone_number,
                is_default,
                access_token,
            }),
        ));
    }

    fn trigger(&mut self, row: TriggerRow) {
        let (id, workflow_id, project_id, trigger_type, whatsapp_config_id, event_type, active) =
            row;
        let Some(route) = self.routes.get_mut(&workflow_id) else {
            return;
        };
        if !route.trigger_types.contains(&trigger_type) {
            route.trigger_types.push(trigger_type.clone());
        }
        if trigger_type == "api_call" {
            route.api_trigger_active = active;
            route.api_trigger_id = Some(id);
            return;
        }
        // Only active triggers of active workflows route.
        if !active || route.status != "active" {
            return;
        }
        self.table.push(&entry(
            trigger_key(&id),
            Entry::Trigger(pb::TriggerRoute {
                id,
                workflow_id,
                project_id,
                r#type: trigger_type,
                whatsapp_config_id,
                event_type,
            }),
        ));
    }

    fn finish(mut self) -> CompiledTable {
        for mut w in self.routes.into_values() {
            w.trigger_types.sort();
            self.table
                .push(&entry(workflow_key(&w.id.clone()), Entry::Workflow(w)));
        }
        self.table.finish(self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn wf(id: &str, status: &str) -> workflow::Model {
        workflow::Model {
            id: id.into(),
            project_id: "p".into(),
            name: id.into(),
            status: status.into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn trig(id: &str, workflow: &str, kind: &str, active: bool) -> TriggerRow {
        (
            id.into(),
            workflow.into(),
            "p".into(),
            kind.into(),
            (kind == "inbound_message").then_some(1),
            None,
            active,
        )
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
