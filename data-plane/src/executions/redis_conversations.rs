//! WhatsApp state in Redis (see [`super::conversations`]): three Lua scripts apply an
//! inbound message, an outbound message's status and the end of a conversation, each
//! atomically in the project's shard. A webhook POST sends all its updates as one pipeline
//! of script calls, in order, in one round trip.

use super::conversations::{
    Conversation, ConversationPage, ConversationQuery, ConversationStatus, EndConversation,
    EndOutcome, InboundMessage, InboundStatus, MessageOutcome, MessageState, Placeholder, Route,
    SEEN_WINDOW_MS, StatusOutcome,
};
use super::keys::{SHARDS, first_id_at, shard_of_execution, shard_of_project};
use super::redis_store::{RedisStore, int, meta_json, text};
use super::{NewExecution, StoreError};
use redis::{Script, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// Shared by the three scripts. ARGV[1..5]: shard base, now, retention, index trim bound,
/// placeholder token (for diagnostics: templates arrive already split at it). Executions to start follow at `first`: their count, then per
/// execution role, id, workflow, trigger type, and meta and context as templates.
macro_rules! prelude {
    () => {
        r#"
local base, now, retention, trim = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- A template (see `Placeholder::template`) at ARGV[o], joined with the chosen values;
-- returns it and the offset after it.
local function assemble(o, id, status)
  local n = tonumber(ARGV[o])
  if n == 1 then return ARGV[o + 1], o + 2 end
  local parts = {}
  for i = 1, n do
    parts[#parts + 1] = ARGV[o + 2 * i - 1]
    if i < n then
      if ARGV[o + 2 * i] == 'i' then parts[#parts + 1] = id else parts[#parts + 1] = status end
    end
  end
  return table.concat(parts), o + 2 * n
end
-- True for one id in 16 (a random hex digit of a UUIDv7): expired entries of indexes are
-- trimmed that often rather than on every write.
local function sometimes(id)
  return string.sub(id, 33, 33) == '0'
end
local function skip(o)
  return o + 2 * tonumber(ARGV[o])
end
-- Offsets of the executions at ARGV[first], by role.
local function roles_at(first)
  local roles = {}
  local o = first + 1
  for i = 1, tonumber(ARGV[first]) do
    roles[ARGV[o]] = o
    o = skip(skip(o + 4))
  end
  return roles
end
local function create(o, id_json, status_json, project)
  local id, workflow = ARGV[o + 1], ARGV[o + 2]
  local meta, next = assemble(o + 4, id_json, status_json)
  local context = assemble(next, id_json, status_json)
  local record = base .. 'e:' .. id
  redis.call('HSET', record, 'status', 'pending', 'updated', now, 'meta', meta,
    'context', context)
  redis.call('PEXPIRE', record, retention)
  local index = base .. 'w:' .. workflow
  redis.call('ZADD', index, 0, id)
  if sometimes(id) then redis.call('ZREMRANGEBYLEX', index, '-', '(' .. trim) end
  redis.call('PEXPIRE', index, retention)
  redis.call('XADD', base .. 'dispatch', '*', 'id', id, 'project', project,
    'workflow', workflow, 'trigger_type', ARGV[o + 3])
  return id
end
"#
    };
}

/// KEYS[1]: the message's seen mark. ARGV[6..]: project, config id, wa_id, phone, Meta
/// phone_number_id, new conversation id, last message, last user input, delivery event,
/// seen window, the inbox entry (template), then the executions (roles `created`,
/// `received`, `trigger`).
/// DESIGN §7 steps 1–4 in order; the seen mark is written last.
const MESSAGE: &str = concat!(
    prelude!(),
    r#"
local project = ARGV[6]
local pointer = base .. 'cn:' .. ARGV[7] .. ':' .. ARGV[8]
local list = base .. 'cl:' .. project
local held = redis.call('MGET', KEYS[1], pointer)
if held[1] then return {0} end
local roles = roles_at(skip(16))
local cid = held[2]
local conv
if cid then
  conv = base .. 'c:' .. cid
  if redis.call('HGET', conv, 'status') ~= 'active' then cid = false end
end
local created = 0
if cid then
  redis.call('HSET', conv, 'last', now, 'lm', ARGV[12])
  redis.call('PEXPIRE', pointer, retention)
else
  -- A new conversation: written whole, in one command.
  cid = ARGV[11]
  created = 1
  conv = base .. 'c:' .. cid
  local fields = {'project', project, 'number', ARGV[7], 'pnid', ARGV[10], 'phone', ARGV[9],
    'status', 'active', 'created', now, 'last', now, 'lm', ARGV[12]}
  if roles.trigger then
    -- Nothing runs in a new conversation: the message trigger's execution will be its own.
    fields[#fields + 1] = 'exec'
    fields[#fields + 1] = ARGV[roles.trigger + 1]
  end
  redis.call('HSET', conv, unpack(fields))
  redis.call('SET', pointer, cid, 'PX', retention)
  if sometimes(cid) then
    redis.call('ZREMRANGEBYSCORE', list, '-inf', '(' .. (tonumber(now) - tonumber(retention)))
  end
end
redis.call('PEXPIRE', conv, retention)
redis.call('ZADD', base .. 'ca', now, cid)
redis.call('ZADD', list, now, cid)
redis.call('PEXPIRE', list, retention)
local id_json, status_json = '"' .. cid .. '"', '"active"'
local started = {}
if created == 1 and roles.created then
  table.insert(started, create(roles.created, id_json, status_json, project))
end
if roles.received then
  table.insert(started, create(roles.received, id_json, status_json, project))
end
local route, target = 'inbox', ''
-- A conversation just created has no execution yet.
local current = created == 0 and redis.call('HGET', conv, 'exec')
if current then
  local record = base .. 'e:' .. current
  local held = redis.call('HMGET', record, 'status', 'runner')
  local status = held[1]
  if status == 'handoff' then
    route, target = 'handoff', current
  elseif status == 'pending' or status == 'running' or status == 'waiting' then
    route, target = 'delivered', current
    redis.call('HSET', record, 'input', ARGV[13])
    local events = base .. 'ev:' .. current
    redis.call('RPUSH', events, ARGV[14])
    local ttl = redis.call('PTTL', record)
    if ttl > 0 then redis.call('PEXPIRE', events, ttl) end
    if held[2] then
      -- Claimed: the runner that holds it gets the message too.
      redis.call('XADD', base .. 'r:' .. held[2], 'MAXLEN', '~', 10000, '*', 'id', current,
        'message', ARGV[14])
    end
  end
end
if route == 'inbox' then
  if roles.trigger then
    target = create(roles.trigger, id_json, status_json, project)
    table.insert(started, target)
    route = 'started'
    if created == 0 then redis.call('HSET', conv, 'exec', target) end
  else
    redis.call('XADD', base .. 'inbox', '*', 'conversation', cid, 'project', project,
      'message', (assemble(16, id_json, status_json)))
  end
end
redis.call('SET', KEYS[1], cid, 'PX', ARGV[15])
return {1, cid, created, route, target, unpack(started)}
"#
);

/// KEYS[1]: the message's status hash. ARGV[6..]: project, config id, recipient wa_id,
/// status, its rank, Meta phone_number_id, seen window, then the executions (role
/// `status`). A status seen before is skipped; a lower one is recorded as seen but does not
/// move the message back.
const STATUS: &str = concat!(
    prelude!(),
    r#"
local seen = 'seen:' .. ARGV[9]
if redis.call('HEXISTS', KEYS[1], seen) == 1 then return {0} end
local held = redis.call('HMGET', KEYS[1], 'status', 'rank')
local status = held[1]
if not held[2] or tonumber(ARGV[10]) > tonumber(held[2]) then
  status = ARGV[9]
  redis.call('HSET', KEYS[1], 'status', status, 'rank', ARGV[10], 'updated', now)
end
redis.call('HSET', KEYS[1], 'project', ARGV[6], 'recipient', ARGV[8], 'pnid', ARGV[11])
local id_json, status_json = 'null', 'null'
local cid = redis.call('GET', base .. 'cn:' .. ARGV[7] .. ':' .. ARGV[8])
if cid then
  local cstatus = redis.call('HGET', base .. 'c:' .. cid, 'status')
  if cstatus then id_json, status_json = '"' .. cid .. '"', '"' .. cstatus .. '"' end
end
local roles = roles_at(13)
local started = ''
if roles.status then started = create(roles.status, id_json, status_json, ARGV[6]) end
redis.call('HSET', KEYS[1], seen, now)
redis.call('PEXPIRE', KEYS[1], ARGV[12])
return {1, status, started}
"#
);

/// KEYS[1]: the conversation. ARGV[6..]: its id, the last activity the caller saw ('' for
/// any), reason, then the executions (role `ended`). Ends it once: whoever comes second
/// finds it ended.
const END: &str = concat!(
    prelude!(),
    r#"
local held = redis.call('HMGET', KEYS[1], 'status', 'last', 'project')
if not held[1] then
  redis.call('ZREM', base .. 'ca', ARGV[6])
  return {0}
end
if held[1] ~= 'active' then
  redis.call('ZREM', base .. 'ca', ARGV[6])
  return {1}
end
if ARGV[7] ~= '' and held[2] ~= ARGV[7] then return {2} end
redis.call('HSET', KEYS[1], 'status', 'ended', 'ended', now, 'reason', ARGV[8])
redis.call('ZREM', base .. 'ca', ARGV[6])
local roles = roles_at(9)
local started = ''
if roles.ended then
  started = create(roles.ended, '"' .. ARGV[6] .. '"', '"ended"', held[3])
end
return {3, started}
"#
);

/// The three scripts, hashed once.
#[derive(Clone, Debug)]
pub(super) struct Scripts {
    message: Script,
    status: Script,
    end: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            message: Script::new(MESSAGE),
            status: Script::new(STATUS),
            end: Script::new(END),
        }
    }
}

/// One script call of a webhook pipeline.
#[derive(Debug)]
pub enum Apply<'a> {
    Message(&'a InboundMessage),
    Status(&'a InboundStatus),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Message(MessageOutcome),
    Status(StatusOutcome),
}

fn corrupt(what: &str, reply: &[Value]) -> StoreError {
    StoreError::Corrupt(format!("{what} returned {reply:?}"))
}

fn uuid_at(reply: &[Value], i: usize) -> Option<Uuid> {
    reply
        .get(i)
        .and_then(text)
        .and_then(|s| Uuid::parse_str(&s).ok())
}

impl RedisStore {
    fn common(&self, cmd: &mut redis::Cmd, project_id: &Uuid, at: i64, token: &str) {
        let retention = self.retention_ms();
        cmd.arg(self.keys().base(shard_of_project(project_id)))
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
                e.trigger_type.to_owned(),
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

    fn evalsha(script: &Script, key: String) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(1).arg(key);
        cmd
    }

    fn message_cmd(&self, m: &InboundMessage) -> Result<redis::Cmd, StoreError> {
        let scripts = self.scripts();
        let mut cmd = Self::evalsha(
            &scripts.message,
            self.keys().seen_message(&m.project_id, &m.message_id),
        );
        self.common(&mut cmd, &m.project_id, m.at, m.placeholder.id());
        cmd.arg(m.project_id.to_string())
            .arg(m.whatsapp_config_id)
            .arg(&m.customer)
            .arg(format!("+{}", m.customer))
            .arg(&m.phone_number_id)
            .arg(m.new_conversation.to_string())
            .arg(&m.last_message)
            .arg(&m.last_user_input)
            .arg(&m.delivery)
            .arg(SEEN_WINDOW_MS)
            .arg(m.placeholder.template(&m.inbox));
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
        Ok(cmd)
    }

    fn status_cmd(&self, s: &InboundStatus) -> Result<redis::Cmd, StoreError> {
        let scripts = self.scripts();
        let mut cmd = Self::evalsha(
            &scripts.status,
            self.keys().message_status(&s.project_id, &s.message_id),
        );
        self.common(&mut cmd, &s.project_id, s.at, s.placeholder.id());
        cmd.arg(s.project_id.to_string())
            .arg(s.whatsapp_config_id)
            .arg(&s.customer)
            .arg(s.status)
            .arg(s.rank)
            .arg(&s.phone_number_id)
            .arg(SEEN_WINDOW_MS);
        let present: Vec<(&str, &NewExecution)> =
            s.on_status.iter().map(|e| ("status", e)).collect();
        cmd.arg(Self::executions(&present, Some(&s.placeholder))?);
        Ok(cmd)
    }

    /// Loads the scripts (after a Redis restart or failover forgot them).
    async fn load_scripts(&self) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let scripts = self.scripts();
        let mut pipe = redis::pipe();
        let _ = scripts;
        for code in [MESSAGE, STATUS, END] {
            pipe.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
        }
        pipe.query_async::<()>(&mut connection).await?;
        Ok(())
    }

    /// Applies the updates of one webhook POST, in order, as one pipeline. Every update is
    /// idempotent, so when the scripts must first be loaded the whole pipeline is simply
    /// sent again.
    pub async fn apply(&self, updates: &[Apply<'_>]) -> Result<Vec<Applied>, StoreError> {
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

    /// Runs `query`; when Redis forgot the scripts (restart, failover), loads them and
    /// runs it again. Safe because every script call is idempotent.
    async fn run<T: redis::FromRedisValue>(
        &self,
        query: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection();
        match query.query_async(&mut connection).await {
            Ok(reply) => Ok(reply),
            Err(err)
                if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                self.load_scripts().await?;
                Ok(query.query_async(&mut connection).await?)
            }
            Err(err) => Err(err.into()),
        }
    }

    pub async fn end_conversation(&self, end: &EndConversation) -> Result<EndOutcome, StoreError> {
        let mut cmd = Self::evalsha(&self.scripts().end, self.keys().conversation(&end.id));
        let retention = self.retention_ms();
        cmd.arg(self.keys().base(shard_of_execution(&end.id)))
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

    pub async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>, StoreError> {
        let mut connection = self.connection();
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys().conversation(&id))
            .query_async(&mut connection)
            .await?;
        parse_conversation(id, fields)
    }

    pub async fn conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError> {
        const BATCH: usize = 200;
        const ROUNDS: usize = 10;
        let list = self.keys().project_conversations(&query.project_id);
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
                pipe.hgetall(self.keys().conversation(id));
            }
            let records: Vec<HashMap<String, String>> = pipe.query_async(&mut connection).await?;
            for ((score, id), fields) in ids.into_iter().zip(records) {
                cursor = Some((score, id));
                let Some(conversation) = parse_conversation(id, fields)? else {
                    continue;
                };
                if !matches_query(&conversation, query) {
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

    /// Active conversations idle since before `cutoff` (at most `limit` per shard), oldest
    /// first within a shard.
    pub async fn idle_conversations(
        &self,
        cutoff: i64,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError> {
        let mut connection = self.connection();
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(self.keys().active_conversations(shard))
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
            pipe.hgetall(self.keys().conversation(id));
        }
        let records: Vec<HashMap<String, String>> = pipe.query_async(&mut connection).await?;
        let mut idle = Vec::new();
        for (id, fields) in ids.into_iter().zip(records) {
            match parse_conversation(id, fields)? {
                Some(c) => idle.push(c),
                None => {
                    // Expired under the sweep: nothing to end, drop the entry.
                    redis::cmd("ZREM")
                        .arg(self.keys().active_conversations(shard_of_execution(&id)))
                        .arg(id.to_string())
                        .query_async::<()>(&mut connection)
                        .await?;
                }
            }
        }
        Ok(idle)
    }

    pub async fn message_state(
        &self,
        project_id: &Uuid,
        message_id: &str,
    ) -> Result<Option<MessageState>, StoreError> {
        let mut connection = self.connection();
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys().message_status(project_id, message_id))
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

    pub async fn append_event(&self, id: Uuid, event: &str) -> Result<(), StoreError> {
        let events = self.keys().events(&id);
        let mut connection = self.connection();
        redis::pipe()
            .rpush(&events, event)
            .ignore()
            .pexpire(&events, self.retention_ms())
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    /// An outbound message: `accepted` until Meta's first status (rank 0, so any status
    /// replaces it).
    pub async fn record_sent(&self, sent: &MessageState) -> Result<(), StoreError> {
        let key = self.keys().message_status(&sent.project_id, &sent.id);
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
    pub async fn inbox(&self, shard: u8) -> Result<Vec<(Uuid, String)>, StoreError> {
        let mut connection = self.connection();
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys().inbox(shard))
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

pub(super) fn matches_query(c: &Conversation, query: &ConversationQuery) -> bool {
    c.project_id == query.project_id
        && query
            .phone_number_id
            .as_ref()
            .is_none_or(|p| *p == c.phone_number_id)
        && query
            .phone_number
            .as_ref()
            .is_none_or(|p| *p == c.phone_number)
        && query.status.is_none_or(|s| s == c.status)
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
        last_message: take("lm").ok(),
        execution: take("exec").ok().and_then(|e| Uuid::parse_str(&e).ok()),
    }))
}
