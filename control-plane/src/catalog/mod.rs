//! The trigger catalog: every read and write of the control plane's database, with the
//! catalog's rules (tenancy, uniqueness, audit, routing version). Callers get typed
//! [`Error`]s naming the field at fault; nothing is written when an operation fails.
//!
//! **Concurrency.** Every write transaction starts by locking the single `routing_state`
//! row (bumping the routing version when the change affects routing). Writers are thereby
//! serialised on PostgreSQL (row lock) and SQLite (single writer), so a rule checked inside
//! the transaction still holds at commit — including the project-wide vs per-number event
//! trigger rule that no index can express. Partial unique indexes back the simpler rules.

mod api_keys;
mod audit;
mod error;
mod nodes;
mod numbers;
mod projects;
mod triggers;
mod validate;
mod workflows;

pub use error::{Error, Holder, Result};
pub use nodes::{Applied, NodeHello};
pub use numbers::NewNumber;
pub use triggers::{TriggerFilter, TriggerQuery, TriggerSpec, TriggerView};

use crate::db::audit_event;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, Set,
    Statement, TransactionTrait,
};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::Notify;

/// One page of a list, and how many entries the whole list has.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// Which page of a list: `limit` entries from `offset`.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub offset: u64,
    pub limit: u64,
}

/// Who asked for a change, as recorded in the audit log.
#[derive(Clone, Debug)]
pub struct Actor(pub String);

/// Handle on the catalog database.
#[derive(Clone, Debug)]
pub struct Catalog {
    db: DatabaseConnection,
    /// Woken after every committed routing change, so this replica's routing publisher
    /// compiles at once instead of at its next poll.
    routing_changed: Arc<Notify>,
}

/// Whether a write changes what the data planes route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Routing {
    Changes,
    Unchanged,
}

/// An open write: the transaction plus the routing version it produces, if any.
struct Write {
    txn: DatabaseTransaction,
    routing_version: Option<i64>,
    routing_changed: Arc<Notify>,
}

impl Catalog {
    /// Wraps a connected database whose migrations have been applied.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            routing_changed: Arc::new(Notify::new()),
        }
    }

    /// Completes after the next committed routing change (or at once if one happened
    /// since the last call).
    pub async fn routing_changed(&self) {
        self.routing_changed.notified().await;
    }

    /// The underlying connection (used by routing distribution and health checks).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The current routing version.
    pub async fn routing_version(&self) -> Result<i64> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT version FROM routing_state WHERE id = 1",
            ))
            .await?
            .ok_or_else(|| Error::Database(DbErr::RecordNotFound("routing_state".into())))?;
        Ok(row.try_get_by_index::<i64>(0)?)
    }

    /// Starts a write transaction holding the catalog lock (see the module docs).
    async fn write(&self, routing: Routing) -> Result<Write> {
        let txn = self.db.begin().await?;
        let sql = match routing {
            Routing::Changes => {
                "UPDATE routing_state SET version = version + 1 WHERE id = 1 RETURNING version"
            }
            Routing::Unchanged => {
                "UPDATE routing_state SET version = version WHERE id = 1 RETURNING version"
            }
        };
        let row = txn
            .query_one_raw(Statement::from_string(txn.get_database_backend(), sql))
            .await?
            .ok_or_else(|| Error::Database(DbErr::RecordNotFound("routing_state".into())))?;
        let version = row.try_get_by_index::<i64>(0)?;
        Ok(Write {
            txn,
            routing_version: (routing == Routing::Changes).then_some(version),
            routing_changed: self.routing_changed.clone(),
        })
    }
}

/// One audit record, written in the transaction of the change it describes.
struct Change<'a> {
    action: &'a str,
    entity: &'a str,
    entity_id: String,
    project_id: Option<String>,
    before: serde_json::Value,
    after: serde_json::Value,
}

impl Change<'_> {
    fn of<B: Serialize, A: Serialize>(
        action: &'static str,
        entity: &'static str,
        entity_id: impl Into<String>,
        project_id: Option<&str>,
        before: Option<&B>,
        after: Option<&A>,
    ) -> Change<'static> {
        Change {
            action,
            entity,
            entity_id: entity_id.into(),
            project_id: project_id.map(str::to_owned),
            before: json(before),
            after: json(after),
        }
    }
}

fn json<T: Serialize>(value: Option<&T>) -> serde_json::Value {
    value
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(serde_json::Value::Null)
}

impl Write {
    /// Records `change` and commits the transaction.
    async fn commit(self, actor: &Actor, change: Change<'_>) -> Result<()> {
        let action = change.action.to_owned();
        self.record(actor, change).await?;
        self.txn.commit().await?;
        if self.routing_version.is_some() {
            self.routing_changed.notify_one();
        }
        metrics::counter!("switchboard_catalog_changes_total", "action" => action).increment(1);
        Ok(())
    }

    /// Records `change` inside the open transaction.
    async fn record(&self, actor: &Actor, change: Change<'_>) -> Result<()> {
        audit_event::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            occurred_at: Set(now()),
            actor: Set(actor.0.clone()),
            action: Set(change.action.to_owned()),
            entity: Set(change.entity.to_owned()),
            entity_id: Set(change.entity_id),
            project_id: Set(change.project_id),
            before_json: Set(change.before.to_string()),
            after_json: Set(change.after.to_string()),
            routing_version: Set(self.routing_version),
        }
        .insert(&self.txn)
        .await?;
        Ok(())
    }
}

/// The current time, truncated to microseconds so it round-trips through both databases.
fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
