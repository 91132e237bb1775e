//! Incremental compiles: the table at the catalog's current version built from the previous
//! table and what changed in between, so that a change of a few triggers on a catalog of a
//! million costs a few queries and a patch, not a full compile and diff.
//!
//! The audit log is the change log: every catalog write that changes routing bumps the
//! routing version and records, in the same transaction, one audit event naming the
//! entity it changed with its state before and after (`catalog` module). From those events
//! this finds the entries that may have changed, reads them again at the new version, and
//! compares them with the previous table. It gives up — and the caller compiles in full —
//! when a version has no audit event (a write behind the catalog's back, e.g. a bulk load or
//! a restore), when the changes are many, or when the previous table is worn by patches.

use super::compiler::{self, KeyRow, NumberRow, TriggerRow, WorkflowRow};
use super::encoded::CompiledTable;
use crate::catalog::{self, Catalog};
use crate::db::{api_key, audit_event, trigger, whatsapp_config, workflow};
use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    IsolationLevel, PaginatorTrait, QueryFilter, Statement, TransactionTrait,
};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use switchboard_proto::v1 as pb;
use switchboard_proto::wire::{EntryKey, TriggerType};

/// Above this many changed entities (or versions), a full compile is the cheaper way.
const MAX_CHANGED: usize = 10_000;
/// Ids per `IN (…)` query.
const BATCH: usize = 500;

/// Entities whose entries may differ between the two versions.
#[derive(Debug, Default)]
struct Changed {
    keys: BTreeSet<String>,
    numbers: BTreeSet<i64>,
    /// Triggers whose own entry may have changed.
    triggers: BTreeSet<String>,
    /// Workflows whose route (status, trigger types, API trigger) may have changed.
    routes: BTreeSet<String>,
    /// Workflows whose status may have changed: each of their triggers is looked at.
    workflows: BTreeSet<String>,
}

impl Changed {
    fn len(&self) -> usize {
        self.keys.len() + self.numbers.len() + self.triggers.len() + self.routes.len()
    }

    /// Takes in one audit event; `false` when it names an entity this does not know.
    fn add(&mut self, event: &audit_event::Model) -> bool {
        let id = event.entity_id.clone();
        match event.entity.as_str() {
            "api_key" => {
                self.keys.insert(id);
            }
            "whatsapp_config" => match id.parse() {
                Ok(config_id) => {
                    self.numbers.insert(config_id);
                }
                Err(_) => return false,
            },
            "trigger" => {
                self.triggers.insert(id);
            }
            "workflow" => {
                self.routes.insert(id.clone());
                self.workflows.insert(id);
            }
            _ => return false,
        }
        // Every trigger the event shows before or after the change (a trigger's own
        // states, the triggers a workflow's deletion or replace-all removed), with its
        // workflow, whose route lists the trigger's type.
        for json in [&event.before_json, &event.after_json] {
            match serde_json::from_str::<Value>(json) {
                Ok(value) => self.mentioned(&value),
                Err(_) => return false,
            }
        }
        true
    }

    fn mentioned(&mut self, value: &Value) {
        match value {
            Value::Array(items) => items.iter().for_each(|v| self.mentioned(v)),
            Value::Object(fields) => {
                if let (Some(Value::String(id)), Some(Value::String(workflow_id)), Some(_)) = (
                    fields.get("id"),
                    fields.get("workflow_id"),
                    fields.get("trigger_type"),
                ) {
                    self.triggers.insert(id.clone());
                    self.routes.insert(workflow_id.clone());
                }
                fields.values().for_each(|v| self.mentioned(v));
            }
            _ => {}
        }
    }
}

/// The table at the catalog's current version from `previous`, with the delta between
/// them; `None` when it cannot be built exactly or cheaply this way (see the module docs).
pub async fn compile(
    catalog: &Catalog,
    previous: &Arc<CompiledTable>,
) -> catalog::Result<Option<(CompiledTable, pb::Delta)>> {
    if previous.fragmented() {
        return Ok(None);
    }
    let db = catalog.connection();
    // One snapshot for the version, the audit events and the rows.
    let txn = match db.get_database_backend() {
        DbBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
        }
        _ => db.begin().await?,
    };
    let found = changes(&txn, previous).await?;
    txn.commit().await?;
    let Some((version, changed, rows)) = found else {
        return Ok(None);
    };
    let mut upserts = Vec::new();
    let mut removals = Vec::new();
    let mut put = |key: String, entry: Option<pb::RoutingEntry>| match entry {
        Some(entry) => {
            if previous.get(&entry.key).as_ref() != Some(&entry) {
                upserts.push(entry);
            }
        }
        None => {
            if previous.get(&key).is_some() {
                removals.push(key);
            }
        }
    };
    for id in &changed.keys {
        let row = rows.keys.get(id).cloned();
        put(EntryKey::ApiKey(id).to_key(), row.map(compiler::key_entry));
    }
    for id in &changed.numbers {
        let row = rows.numbers.get(id).cloned();
        put(
            EntryKey::Number(*id).to_key(),
            row.map(compiler::number_entry),
        );
    }
    for id in &changed.routes {
        let entry = rows.workflows.get(id).map(|w| {
            let mut route = compiler::workflow_route(w.clone());
            for t in rows.kinds.get(id).into_iter().flatten() {
                compiler::route_trigger(&mut route, t.clone());
            }
            compiler::workflow_entry(route)
        });
        put(EntryKey::Workflow(id).to_key(), entry);
    }
    for id in &changed.triggers {
        let entry = rows.triggers.get(id).and_then(|t| {
            // Its workflow's status decides; the scratch route is thrown away.
            let mut route = compiler::workflow_route(rows.workflows.get(&t.workflow_id)?.clone());
            compiler::route_trigger(&mut route, t.clone())
        });
        put(EntryKey::Trigger(id).to_key(), entry);
    }
    let delta = pb::Delta {
        from_version: previous.version,
        to_version: version,
        upserts,
        removals,
    };
    // Copying a large table's position arrays is a few tens of milliseconds: not on the
    // async workers.
    let previous = previous.clone();
    tokio::task::spawn_blocking(move || {
        let table = previous.patch(version, &delta.upserts, &delta.removals);
        Some((table, delta))
    })
    .await
    .map_err(|e| {
        catalog::Error::Database(DbErr::Custom(format!("routing table patch failed: {e}")))
    })
}

/// The rows of the changed entities at the new version (absent rows were deleted).
#[derive(Debug, Default)]
struct Rows {
    keys: HashMap<String, KeyRow>,
    numbers: HashMap<i64, NumberRow>,
    /// Changed routes' workflows and changed triggers' workflows.
    workflows: HashMap<String, WorkflowRow>,
    triggers: HashMap<String, TriggerRow>,
    /// Per changed route: one trigger of each type the workflow has.
    kinds: HashMap<String, Vec<TriggerRow>>,
}

/// The new version, what changed since `previous` and the rows to compile it from; `None`
/// when a full compile is due.
async fn changes(
    txn: &DatabaseTransaction,
    previous: &CompiledTable,
) -> Result<Option<(i64, Changed, Rows)>, DbErr> {
    let version: i64 = match txn
        .query_one_raw(Statement::from_string(
            txn.get_database_backend(),
            "SELECT version FROM routing_state WHERE id = 1",
        ))
        .await?
    {
        Some(row) => row.try_get_by_index(0)?,
        None => return Ok(None),
    };
    let span = version - previous.version;
    if span <= 0 || span > MAX_CHANGED as i64 {
        return Ok(None);
    }
    use audit_event::Column as A;
    let events = audit_event::Entity::find()
        .filter(A::RoutingVersion.gt(previous.version))
        .filter(A::RoutingVersion.lte(version))
        .all(txn)
        .await?;
    let versions: HashSet<i64> = events.iter().filter_map(|e| e.routing_version).collect();
    if versions.len() as i64 != span {
        return Ok(None);
    }
    let mut changed = Changed::default();
    if !events.iter().all(|e| changed.add(e)) {
        return Ok(None);
    }
    let mut rows = Rows::default();
    use trigger::Column as T;
    for w in &changed.workflows {
        let count = trigger::Entity::find()
            .filter(T::WorkflowId.eq(w.as_str()))
            .count(txn)
            .await?;
        if changed.len() + count as usize > MAX_CHANGED {
            return Ok(None);
        }
        for t in trigger::Entity::find()
            .filter(T::WorkflowId.eq(w.as_str()))
            .all(txn)
            .await?
        {
            changed.triggers.insert(t.id.clone());
            rows.triggers.insert(t.id.clone(), TriggerRow::from(t));
        }
    }
    if changed.len() > MAX_CHANGED {
        return Ok(None);
    }
    let unread: Vec<String> = changed
        .triggers
        .iter()
        .filter(|id| !rows.triggers.contains_key(*id))
        .cloned()
        .collect();
    for t in find_in::<trigger::Entity, _, _>(txn, T::Id, &unread).await? {
        rows.triggers.insert(t.id.clone(), TriggerRow::from(t));
    }
    let keys: Vec<String> = changed.keys.iter().cloned().collect();
    for k in find_in::<api_key::Entity, _, _>(txn, api_key::Column::Id, &keys).await? {
        rows.keys.insert(k.id.clone(), KeyRow::from(k));
    }
    let numbers: Vec<i64> = changed.numbers.iter().copied().collect();
    let found =
        find_in::<whatsapp_config::Entity, _, _>(txn, whatsapp_config::Column::Id, &numbers)
            .await?;
    for n in found {
        rows.numbers.insert(n.id, NumberRow::from(n));
    }
    let workflows: Vec<String> = changed
        .routes
        .iter()
        .cloned()
        .chain(rows.triggers.values().map(|t| t.workflow_id.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for w in find_in::<workflow::Entity, _, _>(txn, workflow::Column::Id, &workflows).await? {
        rows.workflows.insert(w.id.clone(), WorkflowRow::from(w));
    }
    // A route lists the types of every trigger of its workflow: one probe per type.
    for w in &changed.routes {
        let mut kinds = Vec::new();
        for kind in TriggerType::ALL {
            let one = trigger::Entity::find()
                .filter(T::WorkflowId.eq(w.as_str()))
                .filter(T::TriggerType.eq(kind.as_str()))
                .one(txn)
                .await?;
            kinds.extend(one.map(TriggerRow::from));
        }
        rows.kinds.insert(w.clone(), kinds);
    }
    Ok(Some((version, changed, rows)))
}

/// The rows of `E` whose `column` is one of `ids`, in batches.
async fn find_in<E, C, V>(
    txn: &DatabaseTransaction,
    column: C,
    ids: &[V],
) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    C: ColumnTrait,
    V: Clone + Into<sea_orm::Value>,
{
    let mut found = Vec::new();
    for batch in ids.chunks(BATCH) {
        found.extend(
            E::find()
                .filter(column.is_in(batch.iter().cloned()))
                .all(txn)
                .await?,
        );
    }
    Ok(found)
}
