//! The WhatsApp state in Redis (see [`crate::store::conversations`]): the `message`,
//! `status` and `end` scripts apply an inbound message, an outbound message's status and
//! the end of a conversation, and `join` starts an API-trigger execution in its
//! conversation, each atomically in the project's shard. A webhook POST sends
//! all its updates as one pipeline of script calls, in order, in one round trip.

use super::executions::meta_json;
use super::{RedisStore, corrupt, int, text, uuid_at};
use crate::store::conversations::{
    Applied, Apply, Binding, Conversation, ConversationPage, ConversationQuery, ConversationStatus,
    EndConversation, EndOutcome, InboundMessage, InboundStatus, Joined, MessageOutcome,
    MessageState, Placeholder, Route, SEEN_WINDOW_MS, StatusOutcome,
};
use crate::store::keys::{SHARDS, first_id_at, shard_of_execution, shard_of_project};
use crate::store::{
    Admission, Conversations, Created, IDEMPOTENCY_WINDOW, NewExecution, Numbered, StoreError,
};
use crate::time::now_ms;
use redis::Value;
use std::collections::HashMap;
use uuid::Uuid;

impl RedisStore {
    fn common(&self, cmd: &mut redis::Cmd, project_id: &Uuid, at: i64, token: &str) {
        let retention = self.retention_ms;
        cmd.arg(self.keys.base(shard_of_project(project_id)))
            .arg(at)
            .arg(retention)
            .arg(first_id_at(at.saturating_sub(retention)).to_string())
            .arg(token);
    }

    /// The trailing arguments naming the executions to start (see `prelude!`).
    fn executions(
        executions: &[(&str, &NewExecution)],
        placeholder: Option<&Placeholder>,
    ) -> Result<Vec<String>, StoreError> {
        let mut args = Vec::with_capacity(1 + executions.len() * 8);
        args.push(executions.len().to_string());
        for (role, e) in executions {
            args.extend([
                (*role).to_owned(),
                e.id.to_string(),
                e.workflow_id.to_string(),
                e.trigger_type.as_str().to_owned(),
            ]);
            for text in [meta_json(e)?, e.context.clone()] {
                match placeholder {
                    Some(p) => args.extend(p.template(&text)),
                    None => args.extend(["1".to_owned(), text]),
                }
            }
        }
        Ok(args)
    }

    fn message_cmd(&self, m: &InboundMessage) -> Result<redis::Cmd, StoreError> {
        let scripts = &self.scripts;
        let mut cmd = Self::evalsha(
            &scripts.message,
            [
                self.keys.seen_message(&m.project_id, &m.message_id),
                self.keys.decisions(&m.project_id),
            ],
        );
        self.common(&mut cmd, &m.project_id, m.at, m.placeholder.id());
        cmd.arg(m.project_id.to_string())
            .arg(m.whatsapp_config_id)
            .arg(m.customer.key())
            .arg(m.customer.phone_number())
            .arg(&m.phone_number_id)
            .arg(m.new_conversation.to_string())
            .arg(&m.last_message)
            .arg(&m.last_user_input)
            .arg(&m.delivery)
            .arg(SEEN_WINDOW_MS)
            .arg(m.placeholder.template(&m.inbox))
            .arg(m.customer.user_id.as_deref().unwrap_or_default())
            .arg(m.customer.username.as_deref().unwrap_or_default());
        let roles = [
            ("created", m.on_created.as_ref()),
            ("received", m.on_received.as_ref()),
            ("trigger", m.trigger.as_ref()),
        ];
        let present: Vec<(&str, &NewExecution)> = roles
            .into_iter()
            .filter_map(|(role, e)| e.map(|e| (role, e)))
            .collect();
        cmd.arg(Self::executions(&present, Some(&m.placeholder))?);
        cmd.arg(self.decision_block(Some(&m.decision), &present)?);
        Ok(cmd)
    }

    fn status_cmd(&self, s: &InboundStatus) -> Result<redis::Cmd, StoreError> {
        let scripts = &self.scripts;
        let mut cmd = Self::evalsha(
            &scripts.status,
            [
                self.keys.message_status(&s.project_id, &s.message_id),
                self.keys.decisions(&s.project_id),
            ],
        );
        self.common(&mut cmd, &s.project_id, s.at, s.placeholder.id());
        cmd.arg(s.project_id.to_string())
            .arg(s.whatsapp_config_id)
            .arg(s.customer.key())
            .arg(s.status)
            .arg(s.rank)
            .arg(&s.phone_number_id)
            .arg(SEEN_WINDOW_MS)
            .arg(s.customer.alias().unwrap_or_default());
        let present: Vec<(&str, &NewExecution)> =
            s.on_status.iter().map(|e| ("status", e)).collect();
        cmd.arg(Self::executions(&present, Some(&s.placeholder))?);
        cmd.arg(self.decision_block(Some(&s.decision), &present)?);
        Ok(cmd)
    }
}

impl RedisStore {
    /// Creates the API-trigger execution `e` in the conversation `binding` names, with the
    /// admission checks of `admission` (the `join` script).
    pub(super) async fn join(
        &self,
        e: &NewExecution,
        admission: &Admission,
        binding: &Binding,
    ) -> Result<Created, StoreError> {
        let checks = self.checks(e, admission);
        let p = &binding.placeholder;
        let mut roles = vec![("api", e)];
        roles.extend(binding.on_created.iter().map(|c| ("created", c)));
        let mut invocation = self.scripts.join.prepare_invoke();
        invocation
            .key(&checks.idempotency_key)
            .key(&checks.burst_key)
            .key(self.keys.decisions(&e.project_id));
        let retention = self.retention_ms;
        invocation
            .arg(self.keys.base(shard_of_project(&e.project_id)))
            .arg(e.created_at)
            .arg(retention)
            .arg(first_id_at(e.created_at.saturating_sub(retention)).to_string())
            .arg(p.id())
            .arg(e.project_id.to_string())
            .arg(binding.whatsapp_config_id)
            .arg(binding.customer.key())
            .arg(binding.customer.phone_number())
            .arg(&binding.phone_number_id)
            .arg(binding.new_conversation.to_string())
            .arg(binding.on_conflict.as_str())
            .arg(checks.request)
            .arg(IDEMPOTENCY_WINDOW.as_millis() as u64)
            .arg(checks.limit)
            .arg(binding.customer.user_id.as_deref().unwrap_or_default())
            .arg(Self::executions(&roles, Some(p))?)
            .arg(self.decision_block(admission.decision.as_ref(), &roles)?);
        let mut connection = self.connection();
        let reply: Vec<Value> = invocation.invoke_async(&mut connection).await?;
        let bad = || corrupt("join", &reply);
        match reply.first().and_then(int) {
            Some(0) => {
                let remaining = reply.get(1).and_then(int).ok_or_else(bad)?;
                let optional = |i: usize| uuid_at(&reply, i);
                Ok(Created::New {
                    burst_remaining: u32::try_from(remaining).ok(),
                    joined: Some(Joined {
                        conversation_id: uuid_at(&reply, 2).ok_or_else(bad)?,
                        created: reply.get(3).and_then(int) == Some(1),
                        superseded: optional(4),
                        started: optional(5),
                    }),
                })
            }
            Some(1) => Ok(Created::Replayed {
                tracking_id: uuid_at(&reply, 1).ok_or_else(bad)?,
            }),
            Some(2) => Ok(Created::IdempotencyKeyReused),
            Some(3) => Ok(Created::RateLimited),
            Some(4) => Ok(Created::ConversationBusy {
                holder: uuid_at(&reply, 1).ok_or_else(bad)?,
            }),
            _ => Err(bad()),
        }
    }
}

#[async_trait::async_trait]
impl Conversations for RedisStore {
    /// Applies the updates of one webhook POST, in order, as one pipeline. Every update is
    /// idempotent, so when the scripts must first be loaded the whole pipeline is simply
    /// sent again.
    async fn apply(&self, updates: &[Apply<'_>]) -> Result<Vec<Applied>, StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for update in updates {
            pipe.add_command(match update {
                Apply::Message(m) => self.message_cmd(m)?,
                Apply::Status(s) => self.status_cmd(s)?,
            });
        }
        let replies: Vec<Vec<Value>> = self.run(&pipe).await?;
        updates
            .iter()
            .zip(replies)
            .map(|(update, reply)| match update {
                Apply::Message(_) => parse_message_reply(&reply).map(Applied::Message),
                Apply::Status(_) => parse_status_reply(&reply).map(Applied::Status),
            })
            .collect()
    }

    async fn end_conversation(&self, end: &EndConversation) -> Result<EndOutcome, StoreError> {
        let mut cmd = Self::evalsha(&self.scripts.end, [self.keys.conversation(&end.id)]);
        let retention = self.retention_ms;
        cmd.arg(self.keys.base(shard_of_execution(&end.id)))
            .arg(end.at)
            .arg(retention)
            .arg(first_id_at(end.at.saturating_sub(retention)).to_string())
            .arg("")
            .arg(end.id.to_string())
            .arg(
                end.expected_last_active
                    .map_or_else(String::new, |t| t.to_string()),
            )
            .arg(end.reason);
        let present: Vec<(&str, &NewExecution)> =
            end.on_ended.iter().map(|e| ("ended", e)).collect();
        cmd.arg(Self::executions(&present, None)?);
        let mut pipe = redis::pipe();
        pipe.add_command(cmd);
        let (reply,): (Vec<Value>,) = self.run(&pipe).await?;
        match reply.first().and_then(int) {
            Some(0) => Ok(EndOutcome::NotFound),
            Some(1) => Ok(EndOutcome::AlreadyEnded),
            Some(2) => Ok(EndOutcome::Active),
            Some(3) => Ok(EndOutcome::Ended {
                started: uuid_at(&reply, 1),
            }),
            _ => Err(corrupt("end", &reply)),
        }
    }

    async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>, StoreError> {
        let mut connection = self.connection();
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.conversation(&id))
            .query_async(&mut connection)
            .await?;
        parse_conversation(id, fields)
    }

    async fn conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError> {
        const BATCH: usize = 200;
        const ROUNDS: usize = 10;
        let list = self.keys.project_conversations(&query.project_id);
        let mut connection = self.connection();
        let mut page = ConversationPage::default();
        let mut cursor = query.after;
        for _ in 0..ROUNDS {
            let max = cursor.map_or_else(|| "+inf".to_owned(), |(score, _)| score.to_string());
            // Ties on the score are resolved by id, descending, like ZREVRANGEBYSCORE.
            let entries: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(&list)
                .arg(max)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(BATCH)
                .query_async(&mut connection)
                .await?;
            let full = entries.len() == BATCH;
            let ids: Vec<(i64, Uuid)> = entries
                .into_iter()
                .filter_map(|(id, score)| Some((score as i64, Uuid::parse_str(&id).ok()?)))
                .filter(|entry| cursor.is_none_or(|c| *entry < c))
                .collect();
            if ids.is_empty() {
                if full {
                    // A whole batch of one score before the cursor: step below it.
                    cursor = cursor.map(|(score, _)| (score - 1, Uuid::max()));
                    continue;
                }
                return Ok(page);
            }
            let mut pipe = redis::pipe();
            for (_, id) in &ids {
                pipe.hgetall(self.keys.conversation(id));
            }
            let records: Vec<HashMap<String, String>> = pipe.query_async(&mut connection).await?;
            for ((score, id), fields) in ids.into_iter().zip(records) {
                cursor = Some((score, id));
                let Some(conversation) = parse_conversation(id, fields)? else {
                    continue;
                };
                if !query.matches(&conversation) {
                    continue;
                }
                if page.conversations.len() == query.limit {
                    page.after = page.conversations.last().map(|c| (c.last_active_at, c.id));
                    return Ok(page);
                }
                page.conversations.push(conversation);
            }
            if !full {
                return Ok(page);
            }
        }
        page.after = cursor;
        Ok(page)
    }

    /// Reads the project's list (every conversation with activity within the retention)
    /// and orders it by id, the order opened: O(conversations of the project), and with a
    /// filter every one of them is read. The cursor form is the cheap one.
    async fn numbered_conversations(
        &self,
        query: &ConversationQuery,
        page: usize,
    ) -> Result<Numbered<Conversation>, StoreError> {
        const BATCH: usize = 500;
        let list = self.keys.project_conversations(&query.project_id);
        let alive = now_ms().saturating_sub(self.retention_ms);
        let mut connection = self.connection();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&list)
            .arg(alive)
            .arg("+inf")
            .query_async(&mut connection)
            .await?;
        let mut ids: Vec<Uuid> = ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect();
        ids.sort_unstable();
        let offset = page.saturating_sub(1).saturating_mul(query.limit);
        let filtered = query.phone_number_id.is_some()
            || query.phone_number.is_some()
            || query.status.is_some();
        let mut rows = Vec::new();
        let mut total = 0;
        let wanted: &[Uuid] = if filtered {
            &ids
        } else {
            total = ids.len();
            ids.get(offset..)
                .map_or(&[], |rest| &rest[..rest.len().min(query.limit)])
        };
        for batch in wanted.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for id in batch {
                pipe.hgetall(self.keys.conversation(id));
            }
            let records: Vec<HashMap<String, String>> = pipe.query_async(&mut connection).await?;
            for (id, fields) in batch.iter().zip(records) {
                let Some(conversation) = parse_conversation(*id, fields)? else {
                    continue;
                };
                if !filtered {
                    rows.push(conversation);
                } else if query.matches(&conversation) {
                    if total >= offset && rows.len() < query.limit {
                        rows.push(conversation);
                    }
                    total += 1;
                }
            }
        }
        Ok(Numbered { rows, total })
    }

    /// Active conversations idle since before `cutoff` (at most `limit` per shard), oldest
    /// first within a shard.
    async fn idle_conversations(
        &self,
        cutoff: i64,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError> {
        let mut connection = self.connection();
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(self.keys.active_conversations(shard))
                .arg("-inf")
                .arg(cutoff)
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
        }
        let per_shard: Vec<Vec<String>> = pipe.query_async(&mut connection).await?;
        let ids: Vec<Uuid> = per_shard
            .iter()
            .flatten()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.keys.conversation(id));
        }
        let records: Vec<HashMap<String, String>> = pipe.query_async(&mut connection).await?;
        let mut idle = Vec::new();
        for (id, fields) in ids.into_iter().zip(records) {
            match parse_conversation(id, fields)? {
                Some(c) => idle.push(c),
                None => {
                    // Expired under the sweep: nothing to end, drop the entry.
                    redis::cmd("ZREM")
                        .arg(self.keys.active_conversations(shard_of_execution(&id)))
                        .arg(id.to_string())
                        .query_async::<()>(&mut connection)
                        .await?;
                }
            }
        }
        Ok(idle)
    }

    async fn message_state(
        &self,
        project_id: &Uuid,
        message_id: &str,
    ) -> Result<Option<MessageState>, StoreError> {
        let mut connection = self.connection();
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.message_status(project_id, message_id))
            .query_async(&mut connection)
            .await?;
        let get = |name: &str| fields.get(name).cloned();
        let Some(status) = get("status") else {
            return Ok(None);
        };
        let project = get("project")
            .and_then(|p| Uuid::parse_str(&p).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("message {message_id}: no project")))?;
        Ok(Some(MessageState {
            id: message_id.to_owned(),
            project_id: project,
            status,
            recipient: get("recipient").unwrap_or_default(),
            phone_number_id: get("pnid").unwrap_or_default(),
            updated_at: get("updated").and_then(|u| u.parse().ok()).unwrap_or(0),
        }))
    }

    /// An outbound message: `accepted` until Meta's first status (rank 0, so any status
    /// replaces it).
    async fn record_sent(&self, sent: &MessageState) -> Result<(), StoreError> {
        let key = self.keys.message_status(&sent.project_id, &sent.id);
        let mut connection = self.connection();
        redis::pipe()
            .hset_multiple(
                &key,
                &[
                    ("project", sent.project_id.to_string()),
                    ("recipient", sent.recipient.clone()),
                    ("pnid", sent.phone_number_id.clone()),
                ],
            )
            .ignore()
            // A status from Meta may already be here (it can beat the Graph API's answer).
            .hset_nx(&key, "status", &sent.status)
            .ignore()
            .hset_nx(&key, "rank", 0)
            .ignore()
            .hset_nx(&key, "updated", sent.updated_at)
            .ignore()
            .pexpire(&key, SEEN_WINDOW_MS)
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    /// Entries of the agent inbox stream of `shard` (conversation id, message JSON).
    async fn inbox(&self, shard: u8) -> Result<Vec<(Uuid, String)>, StoreError> {
        let mut connection = self.connection();
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys.inbox(shard))
            .arg("-")
            .arg("+")
            .query_async(&mut connection)
            .await?;
        Ok(entries
            .ids
            .iter()
            .filter_map(|entry| {
                let conversation = entry.get::<String>("conversation")?;
                Some((
                    Uuid::parse_str(&conversation).ok()?,
                    entry.get::<String>("message")?,
                ))
            })
            .collect())
    }
}

fn parse_message_reply(reply: &[Value]) -> Result<MessageOutcome, StoreError> {
    match reply.first().and_then(int) {
        Some(0) => Ok(MessageOutcome::Duplicate),
        Some(1) => {
            let conversation_id = uuid_at(reply, 1).ok_or_else(|| corrupt("message", reply))?;
            let target = uuid_at(reply, 4);
            let route = match (reply.get(3).and_then(text).as_deref(), target) {
                (Some("handoff"), Some(id)) => Route::Handoff(id),
                (Some("delivered"), Some(id)) => Route::Delivered(id),
                (Some("started"), Some(id)) => Route::Started(id),
                (Some("inbox"), _) => Route::Inbox,
                _ => return Err(corrupt("message", reply)),
            };
            Ok(MessageOutcome::Applied {
                conversation_id,
                conversation_created: reply.get(2).and_then(int) == Some(1),
                route,
                started: (5..reply.len()).filter_map(|i| uuid_at(reply, i)).collect(),
            })
        }
        _ => Err(corrupt("message", reply)),
    }
}

fn parse_status_reply(reply: &[Value]) -> Result<StatusOutcome, StoreError> {
    match reply.first().and_then(int) {
        Some(0) => Ok(StatusOutcome::Duplicate),
        Some(1) => Ok(StatusOutcome::Applied {
            current: reply
                .get(1)
                .and_then(text)
                .ok_or_else(|| corrupt("status", reply))?,
            started: uuid_at(reply, 2),
        }),
        _ => Err(corrupt("status", reply)),
    }
}

fn parse_conversation(
    id: Uuid,
    mut fields: HashMap<String, String>,
) -> Result<Option<Conversation>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let bad = |name: &str| StoreError::Corrupt(format!("conversation {id}: bad {name}"));
    let mut take = |name: &str| fields.remove(name).ok_or_else(|| bad(name));
    let number = |s: String, name: &str| s.parse::<i64>().map_err(|_| bad(name));
    Ok(Some(Conversation {
        id,
        project_id: Uuid::parse_str(&take("project")?).map_err(|_| bad("project"))?,
        whatsapp_config_id: number(take("number")?, "number")?,
        phone_number_id: take("pnid")?,
        phone_number: take("phone")?,
        status: ConversationStatus::parse(&take("status")?).ok_or_else(|| bad("status"))?,
        created_at: number(take("created")?, "created")?,
        last_active_at: number(take("last")?, "last")?,
        user_id: take("uid").ok(),
        username: take("uname").ok(),
        last_message: take("lm").ok(),
        execution: take("exec").ok().and_then(|e| Uuid::parse_str(&e).ok()),
    }))
}
