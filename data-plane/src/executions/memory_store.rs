//! The in-process execution store selected by `--redis-url memory`: for `switchboard dev`
//! only (one node, nothing survives a restart). Same behaviour as the Redis store,
//! including retention, the idempotency window and burst counters; one mutex makes every
//! operation atomic.

use super::keys::shard_of_project;
use super::{
    Admission, Created, Execution, IDEMPOTENCY_WINDOW, ListQuery, NewExecution, Page, Status,
    Transition, status_event,
};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use uuid::Uuid;

/// How often expired entries are swept (lookups ignore them in between).
const SWEEP_EVERY_MS: i64 = 60_000;

#[derive(Default)]
pub(super) struct Inner {
    pub(super) records: HashMap<Uuid, (Execution, i64)>,
    indexes: HashMap<(Uuid, Uuid), BTreeSet<Uuid>>,
    pub(super) dispatch: HashMap<u8, VecDeque<Uuid>>,
    /// Deliveries to runners: tracking id → lease.
    pub(super) leases: HashMap<Uuid, super::memory_claims::Lease>,
    /// Messages for executions a runner holds: runner → (execution, message JSON).
    pub(super) runner_messages: HashMap<String, VecDeque<(Uuid, String)>>,
    /// (project, key hash) → (request hash, tracking id, expires at).
    idempotency: HashMap<(Uuid, String), (String, Uuid, i64)>,
    /// (api key, workflow, unix second) → count.
    burst: HashMap<(Uuid, Uuid, i64), u32>,
    swept_at: i64,
    /// WhatsApp state (see `memory_conversations`).
    pub(super) whatsapp: super::memory_conversations::WhatsApp,
}

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    pub(super) retention_ms: i64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl MemoryStore {
    pub fn new(retention: Duration) -> Self {
        Self {
            inner: Arc::default(),
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave half an operation behind (every
        // operation checks before it writes), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn create(&self, e: &NewExecution, admission: &Admission) -> Created {
        let now = now_ms();
        let mut inner = self.lock();
        inner.sweep(now);
        if let Some((key, request)) = &admission.idempotency {
            let slot = (e.project_id, key.clone());
            if let Some((seen, tracking_id, expires)) = inner.idempotency.get(&slot)
                && *expires > now
            {
                return if seen == request {
                    Created::Replayed {
                        tracking_id: *tracking_id,
                    }
                } else {
                    Created::IdempotencyKeyReused
                };
            }
        }
        let mut burst_remaining = None;
        if let Some((key_id, limit)) = admission.burst {
            let count = inner
                .burst
                .entry((key_id, e.workflow_id, e.created_at / 1000))
                .or_insert(0);
            *count += 1;
            if *count > limit {
                return Created::RateLimited;
            }
            burst_remaining = Some(limit - *count);
        }
        inner.insert(
            e,
            e.context.clone(),
            e.conversation_id.clone(),
            now,
            self.retention_ms,
        );
        if let Some((key, request)) = &admission.idempotency {
            let expires = now.saturating_add(IDEMPOTENCY_WINDOW.as_millis() as i64);
            inner.idempotency.insert(
                (e.project_id, key.clone()),
                (request.clone(), e.id, expires),
            );
        }
        Created::New { burst_remaining }
    }

    pub fn get(&self, id: Uuid) -> Option<Execution> {
        let now = now_ms();
        self.lock()
            .records
            .get(&id)
            .filter(|(_, expires)| *expires > now)
            .map(|(e, _)| e.clone())
    }

    pub fn list(&self, query: &ListQuery) -> Page {
        let now = now_ms();
        let inner = self.lock();
        let mut page = Page::default();
        let Some(index) = inner.indexes.get(&(query.project_id, query.workflow_id)) else {
            return page;
        };
        let upper = query.after.unwrap_or(Uuid::max());
        let candidates = index
            .range(..upper)
            .rev()
            .filter_map(|id| inner.records.get(id))
            .filter(|(e, expires)| *expires > now && query.status.is_none_or(|s| s == e.status));
        for (execution, _) in candidates {
            if page.executions.len() == query.limit {
                page.after = page.executions.last().map(|e| e.id);
                break;
            }
            let mut listed = execution.clone();
            listed.events.clear();
            page.executions.push(listed);
        }
        page
    }

    pub fn set_status(&self, id: Uuid, to: Status, now: i64) -> Transition {
        let wall = now_ms();
        let mut inner = self.lock();
        let Some((execution, _)) = inner.records.get_mut(&id).filter(|(_, x)| *x > wall) else {
            return Transition::NotFound;
        };
        let from = execution.status;
        if !from.can_become(to) {
            return Transition::Invalid { from };
        }
        execution.status = to;
        execution.updated_at = now;
        execution.events.push(status_event(from, to, now));
        Transition::Done(execution.clone())
    }

    /// Tracking ids waiting in the dispatch queue of `shard`.
    pub fn dispatched(&self, shard: u8) -> Vec<Uuid> {
        self.lock()
            .dispatch
            .get(&shard)
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }
}

impl Inner {
    /// Writes a new pending execution: record, workflow index, dispatch queue.
    pub(super) fn insert(
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
            trigger_type: e.trigger_type.to_owned(),
            test: e.test,
            observer_mode: e.observer_mode,
            conversation_id,
            created_at: e.created_at,
            updated_at: e.created_at,
            context,
            last_user_input: None,
            events: Vec::new(),
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

    pub(super) fn sweep(&mut self, now: i64) {
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
