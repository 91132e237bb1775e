//! The execution store (DESIGN §5, §7, §8): executions and their events, the dispatch
//! streams runners claim from, the API trigger's idempotency keys and burst counters, and
//! the WhatsApp state (conversations, processed messages, statuses, the agent inbox).
//!
//! The interface is four traits, one per concern — [`Executions`], [`Claims`],
//! [`Conversations`], [`Decisions`] — and [`Store`], a handle to a backend implementing
//! them all. Two
//! backends, each depending on this interface only: [`redis`] (production; every write is
//! one Lua script or MULTI/EXEC, atomic, the scripts in `redis/scripts/`) and [`memory`]
//! (`--redis-url memory`, for `switchboard dev`; one mutex). Both pass the same behaviour
//! tests (`tests/it/store.rs`).
//!
//! Shared by both: statuses and their transitions ([`status`]), the key layout and its
//! shards ([`keys`]), the events recorded on executions ([`events`]), the types of claims
//! ([`claims`]) and of the WhatsApp state ([`conversations`]), the rules that route an
//! inbound message ([`rules`]), and the routing decisions recorded with every write that
//! routes ([`decisions`]).

pub mod claims;
pub mod conversations;
pub mod decisions;
pub mod events;
pub mod keys;
mod memory;
mod redis;
pub mod rules;
pub mod status;

pub use claims::{AckOutcome, ClaimQuery, Claimed};
pub use conversations::{
    Applied, Apply, Binding, Conversation, ConversationPage, ConversationQuery, EndConversation,
    EndOutcome, Joined, MessageState, OnConflict,
};
pub use decisions::{Decision, DecisionLimits, DecisionPage, DecisionQuery, Draft, Origin};
pub use status::Status;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use switchboard_proto::wire::TriggerType;
use uuid::Uuid;

/// The store could not answer; nothing was written. Mapped to 503 / UNAVAILABLE at the edge.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("execution store unavailable: {0}")]
    Unavailable(String),
    #[error("execution store returned a malformed record: {0}")]
    Corrupt(String),
}

impl From<::redis::RedisError> for StoreError {
    fn from(err: ::redis::RedisError) -> Self {
        StoreError::Unavailable(err.to_string())
    }
}

/// A new execution, with its context already built.
#[derive(Clone, Debug)]
pub struct NewExecution {
    pub id: Uuid,
    pub project_id: Uuid,
    pub workflow_id: Uuid,
    pub trigger_type: TriggerType,
    pub test: bool,
    pub observer_mode: bool,
    pub conversation_id: Option<String>,
    /// `execution_context`, serialised JSON.
    pub context: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The decision that starts it, and its trigger (`None` for executions the store's
    /// callers make without one, as benches do).
    pub origin: Option<Origin>,
}

/// What must hold, atomically with the creation, for it to happen.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    /// `(SHA-256 hex of the Idempotency-Key, SHA-256 hex of the request)`.
    pub idempotency: Option<(String, String)>,
    /// `(API key id, requests per second)` for the burst limit of (key, workflow).
    pub burst: Option<(Uuid, u32)>,
    /// The conversation the execution joins, and what to do when another execution holds
    /// it (DESIGN §12).
    pub conversation: Option<Binding>,
    /// The routing decision, completed and recorded with the outcome (DESIGN §13).
    pub decision: Option<Draft>,
}

/// The result of [`Executions::create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// Written; `burst_remaining` when a burst limit applied, `joined` when it joined a
    /// conversation.
    New {
        burst_remaining: Option<u32>,
        joined: Option<Joined>,
    },
    /// The idempotency key was seen with the same request: the original execution.
    Replayed { tracking_id: Uuid },
    /// The idempotency key was seen with another request.
    IdempotencyKeyReused,
    /// Over the burst limit this second; nothing written.
    RateLimited,
    /// The conversation is held by `holder` and the binding said `fail`; nothing written.
    ConversationBusy { holder: Uuid },
}

/// A stored execution.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    pub id: Uuid,
    pub project_id: Uuid,
    pub workflow_id: Uuid,
    pub status: Status,
    pub trigger_type: TriggerType,
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
    /// Variables given by resumes (DESIGN §12), name → raw JSON value, the latest per name:
    /// merged into `vars` of the context.
    pub variables: std::collections::BTreeMap<String, String>,
    /// Execution events ([`events`]), each serialised JSON, oldest first (empty in lists).
    pub events: Vec<String>,
    /// When its newest event happened, else when it was created (Kapso's `last_event_at`);
    /// set in lists too.
    pub last_event_at: i64,
    /// The routing decision that started it (DESIGN §13).
    pub decision_id: Option<Uuid>,
}

/// The result of [`Executions::set_status`].
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    Done(Box<Execution>),
    NotFound,
    Invalid { from: Status },
}

/// A resume of a waiting execution (DESIGN §12).
#[derive(Clone, Debug)]
pub struct Resume {
    /// The new `last_user_input`, when the resume carries text.
    pub input: Option<String>,
    /// Variables to merge, name → raw JSON value.
    pub variables: Vec<(String, String)>,
    /// The `resumed` event ([`events::resumed`]).
    pub event: String,
    pub at: i64,
    /// The routing decision, recorded with the outcome.
    pub decision: Option<Draft>,
}

/// The result of [`Executions::resume`].
#[derive(Clone, Debug, PartialEq)]
pub enum Resumed {
    Done(Box<Execution>),
    NotFound,
    NotWaiting { status: Status },
}

/// One page of a workflow's executions, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub executions: Vec<Execution>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub after: Option<Uuid>,
}

/// One numbered page of a list (Kapso's `page` / `per_page`, DESIGN §12), oldest first, so
/// that rows arriving while a client pages land on the last page and never shift the
/// others; with the count of all rows the query matches.
#[derive(Clone, Debug, PartialEq)]
pub struct Numbered<T> {
    pub rows: Vec<T>,
    pub total: usize,
}

impl<T> Default for Numbered<T> {
    fn default() -> Self {
        Numbered {
            rows: Vec::new(),
            total: 0,
        }
    }
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

/// Executions (DESIGN §5): records, their events, the per-workflow index, the dispatch
/// streams.
#[async_trait::async_trait]
pub trait Executions: Send + Sync {
    /// Creates `execution` if `admission` allows it: record, workflow index, dispatch entry,
    /// idempotency key and burst counter, and with a binding the conversation it joins (and
    /// the holder it supersedes), all or nothing.
    async fn create(
        &self,
        execution: &NewExecution,
        admission: &Admission,
    ) -> Result<Created, StoreError>;

    async fn get(&self, id: Uuid) -> Result<Option<Execution>, StoreError>;

    /// A page of a workflow's executions, newest first (without their events).
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError>;

    /// Page `page` (from 1) of `query.limit` executions, oldest first (without their
    /// events); `query.after` is not used.
    async fn numbered(
        &self,
        query: &ListQuery,
        page: usize,
    ) -> Result<Numbered<Execution>, StoreError>;

    /// Moves an execution to `to` when the transition table allows it, recording a
    /// `status_changed` event.
    async fn set_status(&self, id: Uuid, to: Status, now: i64) -> Result<Transition, StoreError>;

    /// Resumes a `waiting` execution: it becomes `running` with the resume's input and
    /// variables, a `status_changed` and the `resumed` event; the runner holding it gets
    /// the event on its claim stream, like a conversation message.
    async fn resume(&self, id: Uuid, resume: &Resume) -> Result<Resumed, StoreError>;

    /// Fails executions `waiting` since `cutoff` or earlier (at most `limit` per shard a
    /// call) with a `waiting_timeout` event, freeing their conversations, and tells their
    /// runners like of a message; returns the ones it failed. However many nodes call it,
    /// an execution fails once.
    async fn time_out_waiting(
        &self,
        cutoff: i64,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Appends an event ([`events`], JSON) to an execution's events.
    async fn append_event(&self, id: Uuid, event: &str) -> Result<(), StoreError>;

    /// Tracking ids waiting in the dispatch stream of `shard`, oldest first (runners
    /// consume it; tests and diagnostics read it).
    async fn dispatched(&self, shard: u8) -> Result<Vec<Uuid>, StoreError>;

    /// Drops dispatch and agent-inbox stream entries older than the retention: their
    /// executions are gone with it. Returns how many entries went.
    async fn trim_streams(&self, now: i64) -> Result<u64, StoreError>;
}

/// Runners (DESIGN §8): claims and acks, and the messages of executions they hold.
#[async_trait::async_trait]
pub trait Claims: Send + Sync {
    /// Up to `query.max` executions for the runner: new ones and those whose delivery's
    /// visibility timeout ran out without an ack.
    async fn claim(&self, query: &ClaimQuery, now: i64) -> Result<Vec<Claimed>, StoreError>;

    /// Messages delivered to executions `runner` holds (webhook rule b), taken as read.
    async fn runner_messages(
        &self,
        runner: &str,
        max: usize,
    ) -> Result<Vec<(Uuid, String)>, StoreError>;

    async fn ack(&self, id: Uuid, runner: &str, now: i64) -> Result<AckOutcome, StoreError>;
}

/// WhatsApp state (DESIGN §5 conversations, §7).
#[async_trait::async_trait]
pub trait Conversations: Send + Sync {
    /// Applies the updates of one webhook POST, in order; each is atomic and idempotent.
    async fn apply(&self, updates: &[Apply<'_>]) -> Result<Vec<Applied>, StoreError>;

    async fn end_conversation(&self, end: &EndConversation) -> Result<EndOutcome, StoreError>;

    async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>, StoreError>;

    async fn conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError>;

    /// Page `page` (from 1) of `query.limit` conversations in the order they were opened,
    /// oldest first; `query.after` is not used.
    async fn numbered_conversations(
        &self,
        query: &ConversationQuery,
        page: usize,
    ) -> Result<Numbered<Conversation>, StoreError>;

    /// Active conversations without activity since `cutoff` (at most `limit` per shard).
    async fn idle_conversations(
        &self,
        cutoff: i64,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError>;

    async fn message_state(
        &self,
        project_id: &Uuid,
        message_id: &str,
    ) -> Result<Option<MessageState>, StoreError>;

    /// Remembers a message Switchboard sent, so its statuses can be read back.
    async fn record_sent(&self, sent: &MessageState) -> Result<(), StoreError>;

    /// The agent inbox of `shard`: (conversation id, message JSON), oldest first.
    async fn inbox(&self, shard: u8) -> Result<Vec<(Uuid, String)>, StoreError>;
}

/// Routing decisions (DESIGN §13, [`decisions`]). Those of writes are recorded by the
/// writes themselves; these are the rest.
#[async_trait::async_trait]
pub trait Decisions: Send + Sync {
    /// Records a decision that has no effect to be atomic with: a refusal taken before the
    /// store was asked.
    async fn record_decision(&self, decision: &Decision) -> Result<(), StoreError>;

    /// A page of a project's decisions, newest first, within the retention.
    async fn decisions(&self, query: &DecisionQuery) -> Result<DecisionPage, StoreError>;

    /// One decision of `project_id`'s.
    async fn decision(&self, project_id: Uuid, id: Uuid) -> Result<Option<Decision>, StoreError>;
}

/// Which backend a [`Store`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Memory,
}

/// A backend: every part of the interface.
#[async_trait::async_trait]
pub trait Backend: Executions + Claims + Conversations + Decisions + fmt::Debug {
    fn kind(&self) -> Kind;

    /// Whether the backend answers (Redis: `PING`).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A handle to the execution store, cheap to clone. Its methods are those of the traits
/// above (import them to call them).
#[derive(Clone, Debug)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    /// Opens the store named by `--redis-url` (`memory` or a Redis URL). Redis is connected
    /// lazily and reconnects by itself: a data plane starts while Redis is down.
    /// Executions are kept `retention` after they are created, decisions by `decisions`.
    pub fn open(
        url: &str,
        prefix: &str,
        retention: Duration,
        decisions: DecisionLimits,
    ) -> Result<Self, StoreError> {
        Ok(Store(if url == "memory" {
            Arc::new(memory::MemoryStore::new(retention, decisions))
        } else {
            Arc::new(redis::RedisStore::open(url, prefix, retention, decisions)?)
        }))
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
