//! Routing decisions in the memory store (see [`crate::store::decisions`]): per project, by
//! id (UUIDv7: by time), capped and past the retention dropped as each is recorded. The
//! operations that route record theirs under the same lock as their writes
//! ([`Inner::decide`]).

use super::{Inner, MemoryStore};
use crate::store::decisions::{Decision, DecisionLimits, DecisionPage, DecisionQuery, Fired};
use crate::store::{Decisions, NewExecution, StoreError};
use crate::time::now_ms;
use uuid::Uuid;

impl Inner {
    /// Records `decision`, keeping the project's newest `limits.cap` within the retention.
    pub(super) fn decide(&mut self, decision: Decision, limits: DecisionLimits) {
        let kept = self.decisions.entry(decision.project_id).or_default();
        let oldest = decision.at.saturating_sub(limits.retention_ms);
        kept.insert(decision.id, decision);
        while kept.len() > limits.cap || kept.first_key_value().is_some_and(|(_, d)| d.at < oldest)
        {
            kept.pop_first();
        }
    }
}

/// `e` as its decision lists it among `events`, when an event started it.
pub(super) fn fired(e: &NewExecution) -> Option<Fired> {
    e.origin.as_ref().and_then(|o| o.fired(e.workflow_id, e.id))
}

#[async_trait::async_trait]
impl Decisions for MemoryStore {
    async fn record_decision(&self, decision: &Decision) -> Result<(), StoreError> {
        self.lock().decide(decision.clone(), self.decision_limits);
        Ok(())
    }

    async fn decisions(&self, query: &DecisionQuery) -> Result<DecisionPage, StoreError> {
        let oldest = now_ms().saturating_sub(self.decision_limits.retention_ms);
        let inner = self.lock();
        let mut page = DecisionPage::default();
        let Some(kept) = inner.decisions.get(&query.project_id) else {
            return Ok(page);
        };
        let matching = kept
            .range(..query.after.unwrap_or(Uuid::max()))
            .rev()
            .map(|(_, d)| d)
            .take_while(|d| d.at >= oldest)
            .filter(|d| query.matches(d));
        for decision in matching {
            if page.decisions.len() == query.limit {
                page.after = page.decisions.last().map(|d| d.id);
                break;
            }
            page.decisions.push(decision.clone());
        }
        Ok(page)
    }

    async fn decision(&self, project_id: Uuid, id: Uuid) -> Result<Option<Decision>, StoreError> {
        let oldest = now_ms().saturating_sub(self.decision_limits.retention_ms);
        Ok(self
            .lock()
            .decisions
            .get(&project_id)
            .and_then(|kept| kept.get(&id))
            .filter(|d| d.at >= oldest)
            .cloned())
    }
}
