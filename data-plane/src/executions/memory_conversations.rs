//! WhatsApp state of the in-process store: the same steps as the Redis scripts
//! (`redis_conversations`), under the store's one mutex.

use super::conversations::{
    Conversation, ConversationPage, ConversationQuery, ConversationStatus, EndConversation,
    EndOutcome, InboundMessage, InboundStatus, MessageOutcome, MessageState, Route, SEEN_WINDOW_MS,
    StatusOutcome,
};
use super::memory_store::{MemoryStore, now_ms};
use super::redis_conversations::{Applied, Apply, matches_query};
use super::{NewExecution, Status};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// An outbound message: its state, the rank of its status, the statuses seen, expiry.
type Outbound = (MessageState, u8, HashSet<&'static str>, i64);

#[derive(Default)]
pub(super) struct WhatsApp {
    /// (project, message id) → expires at.
    seen: HashMap<(Uuid, String), i64>,
    /// id → (conversation, expires at).
    conversations: HashMap<Uuid, (Conversation, i64)>,
    /// (config id, wa_id) → the customer's latest conversation.
    latest: HashMap<(i64, String), Uuid>,
    /// (project, message id) → (state, rank, statuses seen, expires at).
    statuses: HashMap<(Uuid, String), Outbound>,
    /// (conversation, message JSON), oldest first.
    inbox: HashMap<u8, Vec<(Uuid, String)>>,
}

impl WhatsApp {
    pub(super) fn sweep(&mut self, now: i64) {
        self.seen.retain(|_, expires| *expires > now);
        self.conversations.retain(|_, (_, expires)| *expires > now);
        let conversations = &self.conversations;
        self.latest.retain(|_, id| conversations.contains_key(id));
        self.statuses.retain(|_, (_, _, _, expires)| *expires > now);
    }

    fn live(&self, id: &Uuid, now: i64) -> Option<&Conversation> {
        self.conversations
            .get(id)
            .filter(|(_, expires)| *expires > now)
            .map(|(c, _)| c)
    }
}

impl MemoryStore {
    /// Applies the updates of one webhook POST, in order.
    pub fn apply(&self, updates: &[Apply<'_>]) -> Vec<Applied> {
        updates
            .iter()
            .map(|update| match update {
                Apply::Message(m) => Applied::Message(self.message(m)),
                Apply::Status(s) => Applied::Status(self.status(s)),
            })
            .collect()
    }

    fn message(&self, m: &InboundMessage) -> MessageOutcome {
        let wall = now_ms();
        let retention = self.retention_ms;
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.sweep(wall);
        let seen_key = (m.project_id, m.message_id.clone());
        if inner
            .whatsapp
            .seen
            .get(&seen_key)
            .is_some_and(|x| *x > wall)
        {
            return MessageOutcome::Duplicate;
        }
        let pointer = (m.whatsapp_config_id, m.customer.clone());
        let active = inner.whatsapp.latest.get(&pointer).copied().filter(|id| {
            inner
                .whatsapp
                .live(id, wall)
                .is_some_and(|c| c.status == ConversationStatus::Active)
        });
        let created = active.is_none();
        let cid = active.unwrap_or(m.new_conversation);
        let expires = wall.saturating_add(retention);
        let whatsapp = &mut inner.whatsapp;
        let (conversation, conversation_expires) =
            whatsapp.conversations.entry(cid).or_insert_with(|| {
                (
                    Conversation {
                        id: cid,
                        project_id: m.project_id,
                        whatsapp_config_id: m.whatsapp_config_id,
                        phone_number_id: m.phone_number_id.clone(),
                        phone_number: format!("+{}", m.customer),
                        status: ConversationStatus::Active,
                        created_at: m.at,
                        last_active_at: m.at,
                        last_message: None,
                        execution: None,
                    },
                    expires,
                )
            });
        conversation.last_active_at = m.at;
        conversation.last_message = Some(m.last_message.clone());
        *conversation_expires = expires;
        let current = conversation.execution;
        whatsapp.latest.insert(pointer, cid);

        let fill = |text: &str| m.placeholder.fill(text, Some(&cid), Some("active"));
        let mut started = Vec::new();
        let mut start = |inner: &mut super::memory_store::Inner, e: &NewExecution| {
            inner.insert(e, fill(&e.context), Some(cid.to_string()), wall, retention);
            started.push(e.id);
        };
        if created && let Some(e) = &m.on_created {
            start(inner, e);
        }
        if let Some(e) = &m.on_received {
            start(inner, e);
        }
        let mut route = Route::Inbox;
        if let Some(current) = current
            && let Some((execution, _)) = inner
                .records
                .get_mut(&current)
                .filter(|(_, expires)| *expires > wall)
        {
            match execution.status {
                Status::Handoff => route = Route::Handoff(current),
                Status::Pending | Status::Running | Status::Waiting => {
                    execution.last_user_input = Some(m.last_user_input.clone());
                    execution.events.push(m.delivery.clone());
                    route = Route::Delivered(current);
                    if let Some(lease) = inner.leases.get(&current) {
                        inner
                            .runner_messages
                            .entry(lease.runner.clone())
                            .or_default()
                            .push_back((current, m.delivery.clone()));
                    }
                }
                Status::Ended | Status::Failed => {}
            }
        }
        if route == Route::Inbox {
            if let Some(e) = &m.trigger {
                start(inner, e);
                route = Route::Started(e.id);
                if let Some((c, _)) = inner.whatsapp.conversations.get_mut(&cid) {
                    c.execution = Some(e.id);
                }
            } else {
                inner
                    .whatsapp
                    .inbox
                    .entry(super::keys::shard_of_project(&m.project_id))
                    .or_default()
                    .push((cid, fill(&m.inbox)));
            }
        }
        inner
            .whatsapp
            .seen
            .insert(seen_key, wall.saturating_add(SEEN_WINDOW_MS));
        MessageOutcome::Applied {
            conversation_id: cid,
            conversation_created: created,
            route,
            started,
        }
    }

    fn status(&self, s: &InboundStatus) -> StatusOutcome {
        let wall = now_ms();
        let retention = self.retention_ms;
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.sweep(wall);
        let key = (s.project_id, s.message_id.clone());
        let entry = inner
            .whatsapp
            .statuses
            .entry(key)
            .and_modify(|e| {
                if e.3 <= wall {
                    *e = Default::default();
                }
            })
            .or_default();
        if entry.2.contains(s.status) {
            return StatusOutcome::Duplicate;
        }
        if s.rank > entry.1 {
            entry.1 = s.rank;
            entry.0.status = s.status.to_owned();
            entry.0.updated_at = s.at;
        }
        entry.0.id = s.message_id.clone();
        entry.0.project_id = s.project_id;
        entry.0.recipient = s.customer.clone();
        entry.0.phone_number_id = s.phone_number_id.clone();
        entry.2.insert(s.status);
        entry.3 = wall.saturating_add(SEEN_WINDOW_MS);
        let current = entry.0.status.clone();
        let conversation = inner
            .whatsapp
            .latest
            .get(&(s.whatsapp_config_id, s.customer.clone()))
            .and_then(|id| inner.whatsapp.live(id, wall))
            .map(|c| (c.id, c.status));
        let started = s.on_status.as_ref().map(|e| {
            let (id, status) = conversation.unzip();
            let fill = |t: &str| {
                s.placeholder
                    .fill(t, id.as_ref(), status.map(|s| s.as_str()))
            };
            inner.insert(
                e,
                fill(&e.context),
                id.map(|id| id.to_string()),
                wall,
                retention,
            );
            e.id
        });
        StatusOutcome::Applied { current, started }
    }

    pub fn end_conversation(&self, end: &EndConversation) -> EndOutcome {
        let wall = now_ms();
        let retention = self.retention_ms;
        let mut inner = self.lock();
        let Some(c) = inner.whatsapp.live(&end.id, wall) else {
            return EndOutcome::NotFound;
        };
        if c.status == ConversationStatus::Ended {
            return EndOutcome::AlreadyEnded;
        }
        if end
            .expected_last_active
            .is_some_and(|t| t != c.last_active_at)
        {
            return EndOutcome::Active;
        }
        if let Some((c, _)) = inner.whatsapp.conversations.get_mut(&end.id) {
            c.status = ConversationStatus::Ended;
        }
        let started = end.on_ended.as_ref().map(|e| {
            inner.insert(
                e,
                e.context.clone(),
                Some(end.id.to_string()),
                wall,
                retention,
            );
            e.id
        });
        EndOutcome::Ended { started }
    }

    pub fn conversation(&self, id: Uuid) -> Option<Conversation> {
        self.lock().whatsapp.live(&id, now_ms()).cloned()
    }

    pub fn conversations(&self, query: &ConversationQuery) -> ConversationPage {
        let wall = now_ms();
        let inner = self.lock();
        let mut all: Vec<&Conversation> = inner
            .whatsapp
            .conversations
            .values()
            .filter(|(_, expires)| *expires > wall)
            .map(|(c, _)| c)
            .filter(|c| matches_query(c, query))
            .filter(|c| query.after.is_none_or(|a| (c.last_active_at, c.id) < a))
            .collect();
        all.sort_by_key(|c| std::cmp::Reverse((c.last_active_at, c.id)));
        let mut page = ConversationPage::default();
        for c in all {
            if page.conversations.len() == query.limit {
                page.after = page.conversations.last().map(|c| (c.last_active_at, c.id));
                break;
            }
            page.conversations.push(c.clone());
        }
        page
    }

    pub fn idle_conversations(&self, cutoff: i64, limit: usize) -> Vec<Conversation> {
        let wall = now_ms();
        let inner = self.lock();
        let mut idle: Vec<Conversation> = inner
            .whatsapp
            .conversations
            .values()
            .filter(|(c, expires)| {
                *expires > wall
                    && c.status == ConversationStatus::Active
                    && c.last_active_at <= cutoff
            })
            .map(|(c, _)| c.clone())
            .collect();
        idle.sort_by_key(|c| c.last_active_at);
        idle.truncate(limit);
        idle
    }

    pub fn message_state(&self, project_id: &Uuid, message_id: &str) -> Option<MessageState> {
        let wall = now_ms();
        self.lock()
            .whatsapp
            .statuses
            .get(&(*project_id, message_id.to_owned()))
            .filter(|e| e.3 > wall)
            .map(|e| e.0.clone())
    }

    pub fn append_event(&self, id: Uuid, event: &str) {
        if let Some((execution, _)) = self.lock().records.get_mut(&id) {
            execution.events.push(event.to_owned());
        }
    }

    pub fn record_sent(&self, sent: &MessageState) {
        let expires = now_ms().saturating_add(SEEN_WINDOW_MS);
        let mut inner = self.lock();
        let entry = inner
            .whatsapp
            .statuses
            .entry((sent.project_id, sent.id.clone()))
            .or_default();
        if entry.1 == 0 {
            entry.0 = sent.clone();
        }
        entry.3 = expires;
    }

    pub fn inbox(&self, shard: u8) -> Vec<(Uuid, String)> {
        self.lock()
            .whatsapp
            .inbox
            .get(&shard)
            .cloned()
            .unwrap_or_default()
    }
}
