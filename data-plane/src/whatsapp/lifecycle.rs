//! How conversations end (DESIGN §7): after `--conversation-inactivity` without an inbound
//! message (the sweep), or on request (`PATCH …/conversations/{id}`). They are created by
//! the store as it applies an inbound message (`intake`).
//!
//! Every data-plane node sweeps; the store's end step checks that the conversation is still
//! active and was not touched since the sweep read it, so `whatsapp.conversation.ended`
//! fires exactly once however many nodes race.

use super::planning;
use crate::routing::RoutingSlot;
use crate::store::conversations::ConversationStatus;
use crate::store::{Conversation, EndOutcome, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use switchboard_proto::wire::TriggerType;
use tokio::sync::watch;

/// Conversations ended per shard per round of the sweep.
pub const BATCH: usize = 100;

/// Ends conversations.
#[derive(Clone)]
pub struct Lifecycle {
    slot: Arc<RoutingSlot>,
    store: Store,
    ended: metrics::Counter,
    started_event: metrics::Counter,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle").finish_non_exhaustive()
    }
}

impl Lifecycle {
    pub fn new(slot: Arc<RoutingSlot>, store: Store) -> Self {
        Self {
            slot,
            store,
            ended: metrics::counter!("switchboard_conversations_total", "event" => "ended"),
            started_event: metrics::counter!(
                "switchboard_executions_created_total",
                "trigger_type" => TriggerType::WhatsappEvent.as_str()
            ),
        }
    }

    /// Ends `conversation` now, on request; ending an ended one changes nothing and fires
    /// nothing. Without a routing table nothing is ended (no event trigger could be found).
    pub async fn end(&self, conversation: &Conversation) -> Result<EndOutcome, EndError> {
        if conversation.status != ConversationStatus::Active {
            return Ok(EndOutcome::AlreadyEnded);
        }
        let table = self.slot.table().ok_or(EndError::NotReady)?;
        let end = planning::end(&table, conversation, crate::time::now_ms(), "api", None);
        let outcome = self.store.end_conversation(&end).await?;
        self.count(&outcome);
        Ok(outcome)
    }

    /// Ends the conversations idle for `inactivity_ms`, at most [`BATCH`] per shard;
    /// returns how many this call ended.
    pub async fn end_idle(&self, inactivity_ms: i64) -> Result<usize, StoreError> {
        let Some(table) = self.slot.table() else {
            return Ok(0);
        };
        let now = crate::time::now_ms();
        let idle = self
            .store
            .idle_conversations(now - inactivity_ms, BATCH)
            .await?;
        let mut ended = 0;
        for conversation in idle {
            let end = planning::end(
                &table,
                &conversation,
                now,
                "inactivity",
                Some(conversation.last_active_at),
            );
            let outcome = self.store.end_conversation(&end).await?;
            ended += usize::from(matches!(outcome, EndOutcome::Ended { .. }));
            self.count(&outcome);
        }
        Ok(ended)
    }

    fn count(&self, outcome: &EndOutcome) {
        if let EndOutcome::Ended { started } = outcome {
            self.ended.increment(1);
            if started.is_some() {
                self.started_event.increment(1);
            }
        }
    }

    /// The inactivity sweep, until `stop`: every [`crate::time::sweep_interval`], and again at once after a
    /// full batch.
    pub async fn sweep(self, inactivity: Duration, mut stop: watch::Receiver<bool>) {
        let inactivity_ms = i64::try_from(inactivity.as_millis()).unwrap_or(i64::MAX);
        let mut every = tokio::time::interval(crate::time::sweep_interval(inactivity));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            loop {
                match self.end_idle(inactivity_ms).await {
                    Ok(n) if n >= BATCH => continue,
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "conversation sweep failed; retrying");
                        break;
                    }
                }
            }
        }
    }
}

/// Why a conversation was not ended.
#[derive(Debug, thiserror::Error)]
pub enum EndError {
    #[error("no routing table loaded yet; retry shortly")]
    NotReady,
    #[error(transparent)]
    Store(#[from] StoreError),
}
