//! The execution store (DESIGN §5): one record per execution keyed by tracking id, a
//! per-workflow index for listing, the dispatch stream runners consume, and the idempotency
//! and burst-limit counters of the API trigger.
//!
//! Two implementations behind one [`Store`]: [`redis_store`] (production; creating an
//! execution is one Lua call, all-or-nothing) and [`memory_store`] (`--redis-url memory`, for
//! `switchboard dev`). Both pass the same behaviour tests (`tests/it/store.rs`).
//!
//! Key layout and sharding live in [`keys`]: every key of one project shares a Redis Cluster
//! hash tag, and the tracking id carries that tag so it can be found from the id alone.

pub mod claims;
pub mod conversations;
pub mod keys;
mod memory_claims;
mod memory_conversations;
pub mod memory_store;
mod redis_claims;
mod redis_conversations;
pub mod redis_store;
mod status;

pub use redis_conversations::{Applied, Apply};

pub use status::Status;

use std::time::Duration;
use uuid::Uuid;

/// The store could not answer; nothing was written. Mapped to 503 / UNAVAILABLE at the edge.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("execution store unavailable: {0}")]
    Unavailable(String),
    #[error("execution store returned a malformed record: {0}")]
    Corrupt(String),
}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        StoreError::Unavailable(err.to_string())
    }
}

/// A new execution, with its context already built.
#[derive(Clone, Debug)]
pub struct NewExecution {
    pub id: Uuid,
    pub project_id: Uuid,
    pub workflow_id: Uuid,
    pub trigger_type: &'static str,
    pub test: bool,
    pub observer_mode: bool,
    pub conversation_id: Option<String>,
    /// `execution_context`, serialised JSON.
    pub context: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// What must hold, atomically with the creation, for it to happen.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    /// `(SHA-256 hex of the Idempotency-Key, SHA-256 hex of the request)`.
    pub idempotency: Option<(String, String)>,
    /// `(API key id, requests per second)` for the burst limit of (key, workflow).
    pub burst: Option<(Uuid, u32)>,
}

/// The result of [`Store::create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// Written; `burst_remaining` when a burst limit applied.
    New { burst_remaining: Option<u32> },
    /// The idempotency key was seen with the same request: the original execution.
    Replayed { tracking_id: Uuid },
    /// The idempotency key was seen with another request.
    IdempotencyKeyReused,
    /// Over the burst limit this second; nothing written.
    RateLimited,
}

/// A stored execution.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    pub id: Uuid,
    pub project_id: Uuid,
    pub workflow_id: Uuid,
    pub status: Status,
    pub trigger_type: String,
    pub test: bool,
    pub observer_mode: bool,
    pub conversation_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// `execution_context`, serialised JSON.
    pub context: String,
    /// The last message delivered to the execution (DESIGN §7 rule b): overrides
    /// `last_user_input` of the context.
    pub last_user_input: Option<String>,
    /// Execution events, each serialised JSON, oldest first.
    pub events: Vec<String>,
}

/// The result of [`Store::set_status`].
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    Done(Execution),
    NotFound,
    Invalid { from: Status },
}

/// One page of a workflow's executions, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub executions: Vec<Execution>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub after: Option<Uuid>,
}

#[derive(Clone, Debug)]
pub struct ListQuery {
    pub workflow_id: Uuid,
    pub project_id: Uuid,
    pub status: Option<Status>,
    pub limit: usize,
    pub after: Option<Uuid>,
}

/// How long an idempotency key is remembered (DESIGN §5).
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The execution store.
#[derive(Clone, Debug)]
pub enum Store {
    Redis(redis_store::RedisStore),
    Memory(memory_store::MemoryStore),
}

impl Store {
    /// Opens the store named by `--redis-url` (`memory` or a Redis URL). Redis is connected
    /// lazily and reconnects by itself: a data plane starts while Redis is down.
    pub fn open(url: &str, prefix: &str, retention: Duration) -> Result<Self, StoreError> {
        if url == "memory" {
            Ok(Store::Memory(memory_store::MemoryStore::new(retention)))
        } else {
            Ok(Store::Redis(redis_store::RedisStore::open(
                url, prefix, retention,
            )?))
        }
    }

    /// Creates `execution` if `admission` allows it: record, workflow index, dispatch entry,
    /// idempotency key and burst counter, all or nothing.
    pub async fn create(
        &self,
        execution: &NewExecution,
        admission: &Admission,
    ) -> Result<Created, StoreError> {
        match self {
            Store::Redis(s) => s.create(execution, admission).await,
            Store::Memory(s) => Ok(s.create(execution, admission)),
        }
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Execution>, StoreError> {
        match self {
            Store::Redis(s) => s.get(id).await,
            Store::Memory(s) => Ok(s.get(id)),
        }
    }

    pub async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        match self {
            Store::Redis(s) => s.list(query).await,
            Store::Memory(s) => Ok(s.list(query)),
        }
    }

    /// Moves an execution to `to` when the transition table allows it, recording a
    /// `status_changed` event.
    pub async fn set_status(
        &self,
        id: Uuid,
        to: Status,
        now: i64,
    ) -> Result<Transition, StoreError> {
        match self {
            Store::Redis(s) => s.set_status(id, to, now).await,
            Store::Memory(s) => Ok(s.set_status(id, to, now)),
        }
    }
}

impl Store {
    /// Tracking ids waiting in the dispatch stream of `shard`, oldest first (runners
    /// consume it; tests and diagnostics read it).
    pub async fn dispatched(&self, shard: u8) -> Result<Vec<Uuid>, StoreError> {
        match self {
            Store::Redis(s) => s.dispatched(shard).await,
            Store::Memory(s) => Ok(s.dispatched(shard)),
        }
    }
}

/// Runners (DESIGN §8): claims and acks.
impl Store {
    /// Up to `query.max` executions for the runner: new ones and those whose delivery's
    /// visibility timeout ran out without an ack.
    pub async fn claim(
        &self,
        query: &claims::ClaimQuery,
    ) -> Result<Vec<claims::Claimed>, StoreError> {
        let now = chrono::Utc::now().timestamp_millis();
        match self {
            Store::Redis(s) => s.claim(query, now).await,
            Store::Memory(s) => Ok(s.claim(query, now)),
        }
    }

    /// Messages delivered to executions `runner` holds (webhook rule b), taken as read.
    pub async fn runner_messages(
        &self,
        runner: &str,
        max: usize,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        match self {
            Store::Redis(s) => s.runner_messages(runner, max).await,
            Store::Memory(s) => Ok(s.runner_messages(runner, max)),
        }
    }

    pub async fn ack(&self, id: Uuid, runner: &str) -> Result<claims::AckOutcome, StoreError> {
        let now = chrono::Utc::now().timestamp_millis();
        match self {
            Store::Redis(s) => s.ack(id, runner, now).await,
            Store::Memory(s) => Ok(s.ack(id, runner, now)),
        }
    }
}

/// Housekeeping.
impl Store {
    /// Drops dispatch and agent-inbox stream entries older than the retention: their
    /// executions are gone with it. Stream ids are creation times, so this is `XTRIM
    /// MINID`. Returns how many entries went.
    pub async fn trim_streams(&self, now: i64) -> Result<u64, StoreError> {
        match self {
            Store::Redis(s) => s.trim_streams(now).await,
            Store::Memory(s) => Ok(s.trim_streams(now)),
        }
    }
}

/// Sends (DESIGN §9).
impl Store {
    /// Appends an event (JSON) to an execution's events.
    pub async fn append_event(&self, id: Uuid, event: &str) -> Result<(), StoreError> {
        match self {
            Store::Redis(s) => s.append_event(id, event).await,
            Store::Memory(s) => {
                s.append_event(id, event);
                Ok(())
            }
        }
    }

    /// Remembers a message Switchboard sent, so its statuses can be read back.
    pub async fn record_sent(&self, sent: &conversations::MessageState) -> Result<(), StoreError> {
        match self {
            Store::Redis(s) => s.record_sent(sent).await,
            Store::Memory(s) => {
                s.record_sent(sent);
                Ok(())
            }
        }
    }
}

/// WhatsApp state (DESIGN §5 conversations, §7).
impl Store {
    /// Applies the updates of one webhook POST, in order; each is atomic and idempotent.
    pub async fn apply(&self, updates: &[Apply<'_>]) -> Result<Vec<Applied>, StoreError> {
        match self {
            Store::Redis(s) => s.apply(updates).await,
            Store::Memory(s) => Ok(s.apply(updates)),
        }
    }

    pub async fn end_conversation(
        &self,
        end: &conversations::EndConversation,
    ) -> Result<conversations::EndOutcome, StoreError> {
        match self {
            Store::Redis(s) => s.end_conversation(end).await,
            Store::Memory(s) => Ok(s.end_conversation(end)),
        }
    }

    pub async fn conversation(
        &self,
        id: Uuid,
    ) -> Result<Option<conversations::Conversation>, StoreError> {
        match self {
            Store::Redis(s) => s.conversation(id).await,
            Store::Memory(s) => Ok(s.conversation(id)),
        }
    }

    pub async fn conversations(
        &self,
        query: &conversations::ConversationQuery,
    ) -> Result<conversations::ConversationPage, StoreError> {
        match self {
            Store::Redis(s) => s.conversations(query).await,
            Store::Memory(s) => Ok(s.conversations(query)),
        }
    }

    /// Active conversations without activity since `cutoff` (at most `limit` per shard).
    pub async fn idle_conversations(
        &self,
        cutoff: i64,
        limit: usize,
    ) -> Result<Vec<conversations::Conversation>, StoreError> {
        match self {
            Store::Redis(s) => s.idle_conversations(cutoff, limit).await,
            Store::Memory(s) => Ok(s.idle_conversations(cutoff, limit)),
        }
    }

    pub async fn message_state(
        &self,
        project_id: &Uuid,
        message_id: &str,
    ) -> Result<Option<conversations::MessageState>, StoreError> {
        match self {
            Store::Redis(s) => s.message_state(project_id, message_id).await,
            Store::Memory(s) => Ok(s.message_state(project_id, message_id)),
        }
    }

    /// The agent inbox of `shard`: (conversation id, message JSON), oldest first.
    pub async fn inbox(&self, shard: u8) -> Result<Vec<(Uuid, String)>, StoreError> {
        match self {
            Store::Redis(s) => s.inbox(shard).await,
            Store::Memory(s) => Ok(s.inbox(shard)),
        }
    }
}

/// The event recorded with a status change.
pub(crate) fn status_event(from: Status, to: Status, at: i64) -> String {
    serde_json::json!({
        "type": "status_changed",
        "from": from.as_str(),
        "to": to.as_str(),
        "at": at,
    })
    .to_string()
}
