//! The WhatsApp state of the memory store: the same steps as the Redis scripts `message`,
//! `status`, `end` and `join`, under the store's one mutex.

use super::decisions::fired;
use super::{Inner, MemoryStore, Seen};
use crate::store::conversations::{
    Applied, Apply, Binding, Conversation, ConversationPage, ConversationQuery, ConversationStatus,
    EndConversation, EndOutcome, InboundMessage, InboundStatus, Joined, MessageOutcome,
    MessageState, Route, SEEN_WINDOW_MS, StatusOutcome,
};
use crate::store::decisions::{Outcome, reason};
use crate::store::keys::shard_of_project;
use crate::store::rules::{self, Rule};
use crate::store::{Conversations, NewExecution, Numbered, Status, StoreError, events};
use crate::time::now_ms;
use uuid::Uuid;

impl MemoryStore {
    fn message(&self, m: &InboundMessage) -> MessageOutcome {
        let wall = now_ms();
        let retention = self.retention_ms;
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.sweep(wall);
        let limits = self.decision_limits;
        let seen_key = (m.project_id, m.message_id.clone());
        if let Some(seen) = inner
            .whatsapp
            .seen
            .get_mut(&seen_key)
            .filter(|s| s.expires > wall)
        {
            // Its first redelivery is recorded; a flood of them adds nothing more.
            if !seen.duplicate {
                seen.duplicate = true;
                let mut d = m
                    .decision
                    .decide(Outcome::Duplicate, Some(reason::ALREADY_PROCESSED));
                d.conversation_id = Some(seen.conversation);
                inner.decide(d, limits);
            }
            return MessageOutcome::Duplicate;
        }
        let active = inner
            .whatsapp
            .active_of(m.whatsapp_config_id, &m.customer, wall);
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
                        phone_number: m.customer.phone_number(),
                        user_id: None,
                        username: None,
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
        whatsapp.identify(cid, m.whatsapp_config_id, &m.customer);

        let fill = |text: &str| m.placeholder.fill(text, Some(&cid), Some("active"));
        let mut started = Vec::new();
        let mut start = |inner: &mut Inner, e: &NewExecution| {
            inner.insert(e, fill(&e.context), Some(cid.to_string()), wall, retention);
            started.push(e.id);
        };
        if created && let Some(e) = &m.on_created {
            start(inner, e);
        }
        if let Some(e) = &m.on_received {
            start(inner, e);
        }
        // DESIGN §7 step 4: the first rule that matches (`store::rules`).
        let live = current.and_then(|id| {
            let (execution, _) = inner.records.get(&id).filter(|(_, x)| *x > wall)?;
            Some((id, execution.status))
        });
        let rule = rules::route(live.map(|(_, status)| status), m.trigger.is_some());
        let route = match (rule, live, &m.trigger) {
            (Rule::Handoff, Some((id, _)), _) => Route::Handoff(id),
            (Rule::Deliver, Some((id, _)), _) => {
                if let Some((execution, _)) = inner.records.get_mut(&id) {
                    execution.last_user_input = Some(m.last_user_input.clone());
                    execution.events.push(m.delivery.clone());
                }
                inner.tell_runner(id, m.delivery.clone());
                Route::Delivered(id)
            }
            (Rule::Trigger, _, Some(e)) => {
                start(inner, e);
                if let Some((c, _)) = inner.whatsapp.conversations.get_mut(&cid) {
                    c.execution = Some(e.id);
                }
                Route::Started(e.id)
            }
            _ => {
                inner
                    .whatsapp
                    .inbox
                    .entry(shard_of_project(&m.project_id))
                    .or_default()
                    .push((cid, fill(&m.inbox)));
                Route::Inbox
            }
        };
        inner.whatsapp.seen.insert(
            seen_key,
            Seen {
                conversation: cid,
                duplicate: false,
                expires: wall.saturating_add(SEEN_WINDOW_MS),
            },
        );
        let mut d = match (route, &m.trigger) {
            (Route::Started(_), Some(e)) => m.decision.decide(Outcome::Started, None).concerning(e),
            (Route::Handoff(id), _) => {
                let mut d = m.decision.decide(Outcome::Handoff, Some(reason::HANDOFF));
                d.execution_id = Some(id);
                d
            }
            (Route::Delivered(id), _) => {
                let mut d = m
                    .decision
                    .decide(Outcome::Delivered, Some(reason::EXECUTION_ACTIVE));
                d.execution_id = Some(id);
                d
            }
            _ => m.decision.decide(Outcome::Inbox, Some(reason::NO_TRIGGER)),
        };
        d.conversation_id = Some(cid);
        let on_created = m.on_created.as_ref().filter(|_| created);
        d.events = on_created
            .into_iter()
            .chain(&m.on_received)
            .filter_map(fired)
            .collect();
        inner.decide(d, limits);
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
        let limits = self.decision_limits;
        let key = (s.project_id, s.message_id.clone());
        let entry = inner
            .whatsapp
            .statuses
            .entry(key)
            .and_modify(|e| {
                if e.expires <= wall {
                    *e = Default::default();
                }
            })
            .or_default();
        if entry.seen.contains(s.status) {
            if entry.duplicates.insert(s.status) {
                let d = s
                    .decision
                    .decide(Outcome::Duplicate, Some(reason::ALREADY_PROCESSED));
                inner.decide(d, limits);
            }
            return StatusOutcome::Duplicate;
        }
        if s.rank > entry.rank {
            entry.rank = s.rank;
            entry.state.status = s.status.to_owned();
            entry.state.updated_at = s.at;
        }
        entry.state.id = s.message_id.clone();
        entry.state.project_id = s.project_id;
        entry.state.recipient = s.customer.key().to_owned();
        entry.state.phone_number_id = s.phone_number_id.clone();
        entry.seen.insert(s.status);
        entry.expires = wall.saturating_add(SEEN_WINDOW_MS);
        let current = entry.state.status.clone();
        let conversation = inner
            .whatsapp
            .latest_of(s.whatsapp_config_id, &s.customer, wall)
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
        let mut d = match &s.on_status {
            Some(e) => {
                let mut d = s.decision.decide(Outcome::Started, None).concerning(e);
                d.events = fired(e).into_iter().collect();
                d
            }
            None => s
                .decision
                .decide(Outcome::Ignored, Some(reason::NO_TRIGGER)),
        };
        d.conversation_id = conversation.map(|(id, _)| id);
        inner.decide(d, limits);
        StatusOutcome::Applied { current, started }
    }
}

impl Inner {
    /// The active conversation of `b`'s customer, and the intercepting execution holding it
    /// (`rules::holds`), if any.
    pub(super) fn held(&self, b: &Binding, now: i64) -> (Option<Uuid>, Option<Uuid>) {
        let Some(active) = self
            .whatsapp
            .active_of(b.whatsapp_config_id, &b.customer, now)
            .and_then(|id| self.whatsapp.live(&id, now))
        else {
            return (None, None);
        };
        let holder = active.execution.filter(|id| {
            self.records
                .get(id)
                .is_some_and(|(e, x)| *x > now && rules::holds(e.status))
        });
        (Some(active.id), holder)
    }

    /// The `join` script's writes: the conversation (`active`, else a new one), the
    /// execution `e` in it, the created execution, and `holder` superseded.
    pub(super) fn join(
        &mut self,
        e: &NewExecution,
        b: &Binding,
        active: Option<Uuid>,
        holder: Option<Uuid>,
        now: i64,
        retention: i64,
    ) -> Joined {
        let cid = active.unwrap_or(b.new_conversation);
        let expires = now.saturating_add(retention);
        let (conversation, conversation_expires) =
            self.whatsapp.conversations.entry(cid).or_insert_with(|| {
                (
                    Conversation {
                        id: cid,
                        project_id: e.project_id,
                        whatsapp_config_id: b.whatsapp_config_id,
                        phone_number_id: b.phone_number_id.clone(),
                        phone_number: b.customer.phone_number(),
                        user_id: None,
                        username: None,
                        status: ConversationStatus::Active,
                        created_at: now,
                        last_active_at: now,
                        last_message: None,
                        execution: None,
                    },
                    expires,
                )
            });
        conversation.last_active_at = now;
        conversation.execution = Some(e.id);
        *conversation_expires = expires;
        self.whatsapp
            .identify(cid, b.whatsapp_config_id, &b.customer);
        let fill = |text: &str| b.placeholder.fill(text, Some(&cid), Some("active"));
        self.insert(e, fill(&e.context), Some(cid.to_string()), now, retention);
        let started = match (&b.on_created, active) {
            (Some(created), None) => {
                self.insert(
                    created,
                    fill(&created.context),
                    Some(cid.to_string()),
                    now,
                    retention,
                );
                Some(created.id)
            }
            _ => None,
        };
        if let Some(holder) = holder {
            let superseded = events::superseded(&e.id, now);
            if let Some((old, _)) = self.records.get_mut(&holder) {
                old.events
                    .push(events::status_changed(old.status, Status::Ended, now));
                old.events.push(superseded.clone());
                old.status = Status::Ended;
                old.updated_at = now;
            }
            self.tell_runner(holder, superseded);
            if let Some((new, _)) = self.records.get_mut(&e.id) {
                new.events.push(events::supersedes(&holder, now));
            }
        }
        Joined {
            conversation_id: cid,
            created: active.is_none(),
            superseded: holder,
            started,
        }
    }
}

#[async_trait::async_trait]
impl Conversations for MemoryStore {
    /// Applies the updates of one webhook POST, in order.
    async fn apply(&self, updates: &[Apply<'_>]) -> Result<Vec<Applied>, StoreError> {
        Ok(updates
            .iter()
            .map(|update| match update {
                Apply::Message(m) => Applied::Message(self.message(m)),
                Apply::Status(s) => Applied::Status(self.status(s)),
            })
            .collect())
    }

    async fn end_conversation(&self, end: &EndConversation) -> Result<EndOutcome, StoreError> {
        let wall = now_ms();
        let retention = self.retention_ms;
        let mut inner = self.lock();
        let Some(c) = inner.whatsapp.live(&end.id, wall) else {
            return Ok(EndOutcome::NotFound);
        };
        if c.status == ConversationStatus::Ended {
            return Ok(EndOutcome::AlreadyEnded);
        }
        if end
            .expected_last_active
            .is_some_and(|t| t != c.last_active_at)
        {
            return Ok(EndOutcome::Active);
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
        Ok(EndOutcome::Ended { started })
    }

    async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>, StoreError> {
        Ok(self.lock().whatsapp.live(&id, now_ms()).cloned())
    }

    async fn conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError> {
        let wall = now_ms();
        let inner = self.lock();
        let mut all: Vec<&Conversation> = inner
            .whatsapp
            .conversations
            .values()
            .filter(|(_, expires)| *expires > wall)
            .map(|(c, _)| c)
            .filter(|c| query.matches(c))
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
        Ok(page)
    }

    async fn numbered_conversations(
        &self,
        query: &ConversationQuery,
        page: usize,
    ) -> Result<Numbered<Conversation>, StoreError> {
        let wall = now_ms();
        let inner = self.lock();
        // Conversation ids are time-ordered, like tracking ids: by id is the order opened.
        let mut all: Vec<&Conversation> = inner
            .whatsapp
            .conversations
            .values()
            .filter(|(_, expires)| *expires > wall)
            .map(|(c, _)| c)
            .filter(|c| query.matches(c))
            .collect();
        all.sort_by_key(|c| c.id);
        let offset = page.saturating_sub(1).saturating_mul(query.limit);
        Ok(Numbered {
            rows: all
                .iter()
                .skip(offset)
                .take(query.limit)
                .map(|c| (*c).clone())
                .collect(),
            total: all.len(),
        })
    }

    async fn idle_conversations(
        &self,
        cutoff: i64,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError> {
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
        Ok(idle)
    }

    async fn message_state(
        &self,
        project_id: &Uuid,
        message_id: &str,
    ) -> Result<Option<MessageState>, StoreError> {
        let wall = now_ms();
        Ok(self
            .lock()
            .whatsapp
            .statuses
            .get(&(*project_id, message_id.to_owned()))
            .filter(|e| e.expires > wall)
            .map(|e| e.state.clone()))
    }

    async fn record_sent(&self, sent: &MessageState) -> Result<(), StoreError> {
        let expires = now_ms().saturating_add(SEEN_WINDOW_MS);
        let mut inner = self.lock();
        let entry = inner
            .whatsapp
            .statuses
            .entry((sent.project_id, sent.id.clone()))
            .or_default();
        if entry.rank == 0 {
            entry.state = sent.clone();
        }
        entry.expires = expires;
        Ok(())
    }

    async fn inbox(&self, shard: u8) -> Result<Vec<(Uuid, String)>, StoreError> {
        Ok(self
            .lock()
            .whatsapp
            .inbox
            .get(&shard)
            .cloned()
            .unwrap_or_default())
    }
}
