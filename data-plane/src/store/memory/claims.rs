//! Claims of the memory store: the same rules as the Redis `claim` and `ack` scripts, on
//! the dispatch queues under the store's mutex. Dispatch entries stay queued, like stream
//! entries; a lease records who has an execution.

use super::{MemoryStore, shown};
use crate::store::claims::{AckOutcome, ClaimQuery, Claimed};
use crate::store::{Claims, Status, StoreError, events};
use uuid::Uuid;

#[async_trait::async_trait]
impl Claims for MemoryStore {
    async fn claim(&self, query: &ClaimQuery, now: i64) -> Result<Vec<Claimed>, StoreError> {
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
                execution.events.push(events::status_changed(
                    Status::Pending,
                    Status::Running,
                    now,
                ));
            }
            execution
                .events
                .push(events::claimed(&query.runner, lease.attempts, now));
            claimed.push(Claimed {
                execution: shown(execution),
                attempt: lease.attempts,
            });
        }
        Ok(claimed)
    }

    async fn runner_messages(
        &self,
        runner: &str,
        max: usize,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        let mut inner = self.lock();
        let Some(queue) = inner.runner_messages.get_mut(runner) else {
            return Ok(Vec::new());
        };
        let n = queue.len().min(max.max(1));
        Ok(queue.drain(..n).collect())
    }

    async fn ack(&self, id: Uuid, runner: &str, now: i64) -> Result<AckOutcome, StoreError> {
        let mut inner = self.lock();
        if inner
            .records
            .get(&id)
            .is_none_or(|(_, expires)| *expires <= now)
        {
            return Ok(AckOutcome::NotFound);
        }
        Ok(match inner.leases.get_mut(&id) {
            Some(lease) if lease.runner == runner && lease.attempts > 0 => {
                lease.until = None;
                AckOutcome::Acked
            }
            _ => AckOutcome::NotYours,
        })
    }
}
