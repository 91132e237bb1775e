//! Claims of the in-process store: the same rules as the Redis `CLAIM` and `ACK` scripts
//! (`redis_claims`), on the dispatch queues under the store's mutex. Dispatch entries stay
//! queued, like stream entries; a lease records who has an execution.

use super::claims::{AckOutcome, ClaimQuery, Claimed, claimed_event};
use super::memory_store::MemoryStore;
use super::{Status, status_event};
use uuid::Uuid;

#[derive(Clone, Debug, Default)]
pub(super) struct Lease {
    pub(super) runner: String,
    /// Unix ms; `None` once acked.
    until: Option<i64>,
    attempts: u32,
}

impl MemoryStore {
    pub fn claim(&self, query: &ClaimQuery, now: i64) -> Vec<Claimed> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let queued: Vec<Uuid> = inner.dispatch.values().flatten().copied().collect();
        let mut claimed = Vec::new();
        for id in queued {
            if claimed.len() >= query.max {
                break;
            }
            let Some((execution, expires)) = inner.records.get_mut(&id) else {
                continue;
            };
            if *expires <= now
                || execution.status.is_final()
                || !query.wants(&execution.workflow_id)
            {
                continue;
            }
            let lease = inner.leases.entry(id).or_default();
            let free = match lease.until {
                None if lease.attempts > 0 => false, // acked
                None => true,
                Some(until) => until <= now,
            };
            if !free {
                continue;
            }
            lease.attempts += 1;
            lease.runner = query.runner.clone();
            lease.until = Some(now + query.visibility_ms);
            if execution.status == Status::Pending {
                execution.status = Status::Running;
                execution.updated_at = now;
                execution
                    .events
                    .push(status_event(Status::Pending, Status::Running, now));
            }
            execution
                .events
                .push(claimed_event(&query.runner, lease.attempts, now));
            claimed.push(Claimed {
                execution: execution.clone(),
                attempt: lease.attempts,
            });
        }
        claimed
    }

    pub fn runner_messages(&self, runner: &str, max: usize) -> Vec<(Uuid, String)> {
        let mut inner = self.lock();
        let Some(queue) = inner.runner_messages.get_mut(runner) else {
            return Vec::new();
        };
        let n = queue.len().min(max.max(1));
        queue.drain(..n).collect()
    }

    /// Dispatch entries whose executions expired (the memory store's XTRIM).
    pub fn trim_streams(&self, now: i64) -> u64 {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let records = &inner.records;
        let mut trimmed = 0;
        for queue in inner.dispatch.values_mut() {
            let before = queue.len();
            queue.retain(|id| records.get(id).is_some_and(|(_, expires)| *expires > now));
            trimmed += (before - queue.len()) as u64;
        }
        inner.leases.retain(|id, _| records.contains_key(id));
        trimmed
    }

    pub fn ack(&self, id: Uuid, runner: &str, now: i64) -> AckOutcome {
        let mut inner = self.lock();
        if inner
            .records
            .get(&id)
            .is_none_or(|(_, expires)| *expires <= now)
        {
            return AckOutcome::NotFound;
        }
        match inner.leases.get_mut(&id) {
            Some(lease) if lease.runner == runner && lease.attempts > 0 => {
                lease.until = None;
                AckOutcome::Acked
            }
            _ => AckOutcome::NotYours,
        }
    }
}
