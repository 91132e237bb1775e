//! The in-process store selected by `--redis-url memory`: for `switchboard dev` only (one
//! node, nothing survives a restart). Same behaviour as the Redis store, including
//! retention, the idempotency window and burst counters; one mutex makes every operation
//! atomic. This file holds the state and its sweep; `executions`, `claims`,
//! `conversations` and `decisions` the operations on it.

mod claims;
mod conversations;
mod decisions;
mod executions;

use super::conversations::{Conversation, ConversationStatus, Customer, MessageState};
use super::keys::shard_of_project;
use super::{
    Backend, Decision, DecisionLimits, Execution, Kind, NewExecution, Status, StoreError, events,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use uuid::Uuid;

/// How often expired entries are swept (lookups ignore them in between).
const SWEEP_EVERY_MS: i64 = 60_000;

#[derive(Default)]
struct Inner {
    records: HashMap<Uuid, (Execution, i64)>,
    indexes: HashMap<(Uuid, Uuid), BTreeSet<Uuid>>,
    dispatch: HashMap<u8, VecDeque<Uuid>>,
    /// Deliveries to runners: tracking id → lease.
    leases: HashMap<Uuid, Lease>,
    /// Messages for executions a runner holds: runner → (execution, message JSON).
    runner_messages: HashMap<String, VecDeque<(Uuid, String)>>,
    /// (project, key hash) → (request hash, tracking id, expires at).
    idempotency: HashMap<(Uuid, String), (String, Uuid, i64)>,
    /// (api key, workflow, unix second) → count.
    burst: HashMap<(Uuid, Uuid, i64), u32>,
    swept_at: i64,
    /// WhatsApp state (see `conversations`).
    whatsapp: WhatsApp,
    /// project → routing decisions by id (see `decisions`).
    decisions: HashMap<Uuid, BTreeMap<Uuid, Decision>>,
}

#[derive(Default)]
pub(super) struct MemoryStore {
    inner: Mutex<Inner>,
    retention_ms: i64,
    decision_limits: DecisionLimits,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub(super) fn new(retention: Duration, decision_limits: DecisionLimits) -> Self {
        Self {
            inner: Mutex::default(),
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
            decision_limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave half an operation behind (every
        // operation checks before it writes), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl Backend for MemoryStore {
    fn kind(&self) -> Kind {
        Kind::Memory
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// An execution as the store hands it out: a copy with `last_event_at` brought up to date
/// (events are appended in many places; the time of the newest is read here, once).
fn shown(execution: &Execution) -> Execution {
    let mut shown = execution.clone();
    shown.last_event_at =
        events::last_event_at(shown.events.last().map(String::as_str), shown.created_at);
    shown
}

impl Inner {
    /// Writes a new pending execution: record, workflow index, dispatch queue.
    fn insert(
        &mut self,
        e: &NewExecution,
        context: String,
        conversation_id: Option<String>,
        now: i64,
        retention_ms: i64,
    ) {
        let execution = Execution {
            id: e.id,
            project_id: e.project_id,
            workflow_id: e.workflow_id,
            status: Status::Pending,
            trigger_type: e.trigger_type,
            test: e.test,
            observer_mode: e.observer_mode,
            conversation_id,
            created_at: e.created_at,
            updated_at: e.created_at,
            context,
            last_user_input: None,
            variables: Default::default(),
            events: Vec::new(),
            last_event_at: e.created_at,
            decision_id: e.origin.as_ref().map(|o| o.decision_id),
        };
        self.records
            .insert(e.id, (execution, now.saturating_add(retention_ms)));
        self.indexes
            .entry((e.project_id, e.workflow_id))
            .or_default()
            .insert(e.id);
        self.dispatch
            .entry(shard_of_project(&e.project_id))
            .or_default()
            .push_back(e.id);
    }

    /// Hands `message` (JSON) to the runner the execution `id` was delivered to, if any.
    fn tell_runner(&mut self, id: Uuid, message: String) {
        if let Some(lease) = self.leases.get(&id) {
            self.runner_messages
                .entry(lease.runner.clone())
                .or_default()
                .push_back((id, message));
        }
    }

    fn sweep(&mut self, now: i64) {
        if now - self.swept_at < SWEEP_EVERY_MS {
            return;
        }
        self.swept_at = now;
        self.records.retain(|_, (_, expires)| *expires > now);
        let records = &self.records;
        for index in self.indexes.values_mut() {
            index.retain(|id| records.contains_key(id));
        }
        self.indexes.retain(|_, index| !index.is_empty());
        self.idempotency.retain(|_, (_, _, expires)| *expires > now);
        let second = now / 1000;
        self.burst.retain(|(_, _, s), _| *s >= second - 1);
        self.whatsapp.sweep(now);
    }
}

/// A delivery of an execution to a runner.
#[derive(Clone, Debug, Default)]
struct Lease {
    runner: String,
    /// Unix ms; `None` once acked.
    until: Option<i64>,
    attempts: u32,
}

/// An outbound message.
#[derive(Default)]
struct Outbound {
    state: MessageState,
    /// The rank of its status.
    rank: u8,
    /// The statuses seen.
    seen: HashSet<&'static str>,
    /// The statuses whose redelivery was recorded as a duplicate decision.
    duplicates: HashSet<&'static str>,
    expires: i64,
}

/// A processed inbound message.
struct Seen {
    conversation: Uuid,
    /// Whether a redelivery was recorded as a duplicate decision.
    duplicate: bool,
    expires: i64,
}

#[derive(Default)]
struct WhatsApp {
    /// (project, message id) → the message processed.
    seen: HashMap<(Uuid, String), Seen>,
    /// id → (conversation, expires at).
    conversations: HashMap<Uuid, (Conversation, i64)>,
    /// (config id, wa_id or BSUID) → the customer's latest conversation.
    latest: HashMap<(i64, String), Uuid>,
    /// (project, message id) → its outbound message.
    statuses: HashMap<(Uuid, String), Outbound>,
    /// (conversation, message JSON), oldest first.
    inbox: HashMap<u8, Vec<(Uuid, String)>>,
}

impl WhatsApp {
    fn sweep(&mut self, now: i64) {
        self.seen.retain(|_, seen| seen.expires > now);
        self.conversations.retain(|_, (_, expires)| *expires > now);
        let conversations = &self.conversations;
        self.latest.retain(|_, id| conversations.contains_key(id));
        self.statuses.retain(|_, outbound| outbound.expires > now);
    }

    fn live(&self, id: &Uuid, now: i64) -> Option<&Conversation> {
        self.conversations
            .get(id)
            .filter(|(_, expires)| *expires > now)
            .map(|(c, _)| c)
    }

    /// The customer's latest conversation on number `config`: by their key (phone number,
    /// else BSUID), else by their BSUID (the `find` of the Redis scripts).
    fn latest_of(&self, config: i64, customer: &Customer, now: i64) -> Option<&Conversation> {
        let by = |key: &str| {
            self.latest
                .get(&(config, key.to_owned()))
                .and_then(|id| self.live(id, now))
        };
        by(customer.key()).or_else(|| customer.alias().and_then(by))
    }

    /// The customer's active conversation on number `config`.
    fn active_of(&self, config: i64, customer: &Customer, now: i64) -> Option<Uuid> {
        let active = |c: &&Conversation| c.status == ConversationStatus::Active;
        let by = |key: &str| {
            self.latest
                .get(&(config, key.to_owned()))
                .and_then(|id| self.live(id, now))
                .filter(active)
                .map(|c| c.id)
        };
        by(customer.key()).or_else(|| customer.alias().and_then(by))
    }

    /// What an update tells of the customer of conversation `cid` (the `identify` of the
    /// Redis scripts): both keys point at it; phone number, BSUID and username are kept.
    fn identify(&mut self, cid: Uuid, config: i64, customer: &Customer) {
        for key in [Some(customer.key()), customer.user_id.as_deref()]
            .into_iter()
            .flatten()
        {
            self.latest.insert((config, key.to_owned()), cid);
        }
        if let Some((c, _)) = self.conversations.get_mut(&cid) {
            if customer.phone.is_some() {
                c.phone_number = customer.phone_number();
            }
            if customer.user_id.is_some() {
                c.user_id.clone_from(&customer.user_id);
            }
            if customer.username.is_some() {
                c.username.clone_from(&customer.username);
            }
        }
    }
}
