//! Executions in the memory store (see [`crate::store::Executions`]).

use super::decisions::fired;
use super::{Inner, MemoryStore, shown};
use crate::store::decisions::{Outcome, reason};
use crate::store::{
    Admission, Created, Execution, Executions, IDEMPOTENCY_WINDOW, ListQuery, NewExecution,
    Numbered, OnConflict, Page, Resume, Resumed, Status, StoreError, Transition, events,
};
use crate::time::now_ms;
use uuid::Uuid;

#[async_trait::async_trait]
impl Executions for MemoryStore {
    async fn create(&self, e: &NewExecution, admission: &Admission) -> Result<Created, StoreError> {
        let now = now_ms();
        let limits = self.decision_limits;
        let mut inner = self.lock();
        inner.sweep(now);
        // A refusal's decision, recorded under the same lock.
        let refuse = |inner: &mut Inner, created: Created| {
            if let Some(draft) = &admission.decision {
                let (outcome, reason, execution) = match created {
                    Created::Replayed { tracking_id } => (
                        Outcome::Duplicate,
                        reason::IDEMPOTENT_REPLAY,
                        Some(tracking_id),
                    ),
                    Created::ConversationBusy { holder } => {
                        (Outcome::Refused, reason::CONVERSATION_BUSY, Some(holder))
                    }
                    Created::RateLimited => (Outcome::Refused, reason::RATE_LIMITED, None),
                    _ => (Outcome::Refused, reason::IDEMPOTENCY_KEY_REUSED, None),
                };
                let mut d = draft.decide(outcome, Some(reason));
                d.execution_id = execution;
                inner.decide(d, limits);
            }
            Ok(created)
        };
        if let Some((key, request)) = &admission.idempotency {
            let slot = (e.project_id, key.clone());
            if let Some((seen, tracking_id, expires)) = inner.idempotency.get(&slot)
                && *expires > now
            {
                let created = if seen == request {
                    Created::Replayed {
                        tracking_id: *tracking_id,
                    }
                } else {
                    Created::IdempotencyKeyReused
                };
                return refuse(&mut inner, created);
            }
        }
        let binding = admission.conversation.as_ref();
        let (active, holder) = binding.map_or((None, None), |b| inner.held(b, now));
        if let (Some(holder), Some(b)) = (holder, binding)
            && b.on_conflict == OnConflict::Fail
        {
            return refuse(&mut inner, Created::ConversationBusy { holder });
        }
        let mut burst_remaining = None;
        if let Some((key_id, limit)) = admission.burst {
            let count = inner
                .burst
                .entry((key_id, e.workflow_id, e.created_at / 1000))
                .or_insert(0);
            *count += 1;
            if *count > limit {
                return refuse(&mut inner, Created::RateLimited);
            }
            burst_remaining = Some(limit - *count);
        }
        let joined = match binding {
            Some(b) => Some(inner.join(e, b, active, holder, now, self.retention_ms)),
            None => {
                inner.insert(
                    e,
                    e.context.clone(),
                    e.conversation_id.clone(),
                    now,
                    self.retention_ms,
                );
                None
            }
        };
        if let Some((key, request)) = &admission.idempotency {
            let expires = now.saturating_add(IDEMPOTENCY_WINDOW.as_millis() as i64);
            inner.idempotency.insert(
                (e.project_id, key.clone()),
                (request.clone(), e.id, expires),
            );
        }
        if let Some(draft) = &admission.decision {
            let mut d = draft.decide(Outcome::Started, None).concerning(e);
            if let Some(joined) = &joined {
                d.conversation_id = Some(joined.conversation_id);
                d.superseded = joined.superseded;
                let created = binding.and_then(|b| b.on_created.as_ref());
                d.events = created
                    .filter(|c| joined.started == Some(c.id))
                    .and_then(fired)
                    .into_iter()
                    .collect();
            }
            inner.decide(d, limits);
        }
        Ok(Created::New {
            burst_remaining,
            joined,
        })
    }

    async fn get(&self, id: Uuid) -> Result<Option<Execution>, StoreError> {
        let now = now_ms();
        Ok(self
            .lock()
            .records
            .get(&id)
            .filter(|(_, expires)| *expires > now)
            .map(|(e, _)| shown(e)))
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let now = now_ms();
        let inner = self.lock();
        let mut page = Page::default();
        let Some(index) = inner.indexes.get(&(query.project_id, query.workflow_id)) else {
            return Ok(page);
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
            let mut listed = shown(execution);
            listed.events.clear();
            page.executions.push(listed);
        }
        Ok(page)
    }

    async fn numbered(
        &self,
        query: &ListQuery,
        page: usize,
    ) -> Result<Numbered<Execution>, StoreError> {
        let now = now_ms();
        let inner = self.lock();
        let Some(index) = inner.indexes.get(&(query.project_id, query.workflow_id)) else {
            return Ok(Numbered::default());
        };
        let matching: Vec<&Execution> = index
            .iter()
            .filter_map(|id| inner.records.get(id))
            .filter(|(e, expires)| *expires > now && query.status.is_none_or(|s| s == e.status))
            .map(|(e, _)| e)
            .collect();
        let offset = page.saturating_sub(1).saturating_mul(query.limit);
        Ok(Numbered {
            rows: matching
                .iter()
                .skip(offset)
                .take(query.limit)
                .map(|e| {
                    let mut listed = shown(e);
                    listed.events.clear();
                    listed
                })
                .collect(),
            total: matching.len(),
        })
    }

    async fn set_status(&self, id: Uuid, to: Status, now: i64) -> Result<Transition, StoreError> {
        let wall = now_ms();
        let mut inner = self.lock();
        let Some((execution, _)) = inner.records.get_mut(&id).filter(|(_, x)| *x > wall) else {
            return Ok(Transition::NotFound);
        };
        let from = execution.status;
        if !from.can_become(to) {
            return Ok(Transition::Invalid { from });
        }
        execution.status = to;
        execution.updated_at = now;
        execution.events.push(events::status_changed(from, to, now));
        Ok(Transition::Done(Box::new(shown(execution))))
    }

    async fn resume(&self, id: Uuid, resume: &Resume) -> Result<Resumed, StoreError> {
        let wall = now_ms();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some((execution, _)) = inner.records.get_mut(&id).filter(|(_, x)| *x > wall) else {
            return Ok(Resumed::NotFound);
        };
        let status = execution.status;
        if let Some(draft) = &resume.decision {
            let mut d = match status {
                Status::Waiting => draft.decide(Outcome::Delivered, None),
                _ => draft.decide(Outcome::Refused, Some(reason::NOT_WAITING)),
            };
            d.execution_id = Some(id);
            inner.decide(d, self.decision_limits);
        }
        let Some((execution, _)) = inner.records.get_mut(&id) else {
            return Ok(Resumed::NotFound);
        };
        if status != Status::Waiting {
            return Ok(Resumed::NotWaiting { status });
        }
        execution.status = Status::Running;
        execution.updated_at = resume.at;
        if let Some(input) = &resume.input {
            execution.last_user_input = Some(input.clone());
        }
        execution.variables.extend(resume.variables.iter().cloned());
        execution.events.push(events::status_changed(
            Status::Waiting,
            Status::Running,
            resume.at,
        ));
        execution.events.push(resume.event.clone());
        let resumed = shown(execution);
        inner.tell_runner(id, resume.event.clone());
        Ok(Resumed::Done(Box::new(resumed)))
    }

    async fn dispatched(&self, shard: u8) -> Result<Vec<Uuid>, StoreError> {
        Ok(self
            .lock()
            .dispatch
            .get(&shard)
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default())
    }

    async fn time_out_waiting(
        &self,
        cutoff: i64,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError> {
        let wall = now_ms();
        let mut guard = self.lock();
        let inner = &mut *guard;
        // `updated_at` is the time of the last status change: since then it waits.
        let mut due: Vec<(i64, Uuid)> = inner
            .records
            .values()
            .filter(|(e, expires)| {
                *expires > wall && e.status == Status::Waiting && e.updated_at <= cutoff
            })
            .map(|(e, _)| (e.updated_at, e.id))
            .collect();
        due.sort_unstable();
        due.truncate(limit.saturating_mul(usize::from(crate::store::keys::SHARDS)));
        let event = events::waiting_timeout(now.saturating_sub(cutoff), now);
        let mut failed = Vec::new();
        for (_, id) in due {
            let Some((execution, _)) = inner.records.get_mut(&id) else {
                continue;
            };
            execution.status = Status::Failed;
            execution.updated_at = now;
            execution
                .events
                .push(events::status_changed(Status::Waiting, Status::Failed, now));
            execution.events.push(event.clone());
            inner.tell_runner(id, event.clone());
            failed.push(id);
        }
        Ok(failed)
    }

    async fn append_event(&self, id: Uuid, event: &str) -> Result<(), StoreError> {
        if let Some((execution, _)) = self.lock().records.get_mut(&id) {
            execution.events.push(event.to_owned());
        }
        Ok(())
    }

    /// Dispatch entries whose executions expired (the memory store's XTRIM).
    async fn trim_streams(&self, now: i64) -> Result<u64, StoreError> {
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
        Ok(trimmed)
    }
}
