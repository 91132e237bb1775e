//! The Redis execution store. Creation and status changes are Lua scripts (atomic, one
//! round trip, every key declared and in one hash slot, so Redis Cluster accepts them);
//! reads are pipelines. The connection is a [`ConnectionManager`]: created without
//! connecting, it reconnects in the background, so a data plane starts while Redis is down
//! and recovers without a restart once it is back; meanwhile every call fails fast with
//! [`StoreError::Unavailable`].

use super::keys::{Keys, first_id_at, shard_of_project};
use super::{
    Admission, Created, Execution, IDEMPOTENCY_WINDOW, ListQuery, NewExecution, Page, Status,
    StoreError, Transition,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Checks idempotency, then the burst limit, then writes the record, index entry, dispatch
/// entry and idempotency key. Every check precedes the first write, so a refusal writes
/// nothing (the burst counter of a refused request excepted: it counts attempts). Used only
/// when a check is needed; otherwise [`RedisStore::create`] sends the same writes as one
/// MULTI/EXEC pipeline, which costs Redis about a third of the CPU.
const CREATE: &str = r#"
local request = ARGV[9]
if request ~= '' then
  local seen = redis.call('GET', KEYS[4])
  if seen then
    local space = string.find(seen, ' ', 1, true)
    if space and string.sub(seen, 1, space - 1) == request then
      return {1, string.sub(seen, space + 1)}
    end
    return {2}
  end
end
local remaining = -1
local limit = tonumber(ARGV[11])
if limit > 0 then
  local count = redis.call('INCR', KEYS[5])
  if count == 1 then redis.call('PEXPIRE', KEYS[5], 2000) end
  if count > limit then return {3} end
  remaining = limit - count
end
redis.call('HSET', KEYS[1], 'status', 'pending', 'updated', ARGV[6], 'meta', ARGV[5],
  'context', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZREMRANGEBYLEX', KEYS[2], '-', '(' .. ARGV[12])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1], 'project', ARGV[2], 'workflow', ARGV[3],
  'trigger_type', ARGV[4])
if request ~= '' then
  redis.call('SET', KEYS[4], request .. ' ' .. ARGV[1], 'PX', ARGV[10])
end
return {0, remaining}
"#;

/// Moves a record to ARGV[1] when its status is one of ARGV[3] (space separated) and
/// appends the status_changed event; the event list lives as long as the record.
const SET_STATUS: &str = r#"
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {0} end
if not string.find(' ' .. ARGV[3] .. ' ', ' ' .. current .. ' ', 1, true) then
  return {1, current}
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated', ARGV[2])
redis.call('RPUSH', KEYS[2], '{"at":' .. ARGV[2] .. ',"from":"' .. current .. '","to":"' ..
  ARGV[1] .. '","type":"status_changed"}')
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {2}
"#;

/// Index entries read per round trip while listing.
const LIST_BATCH: usize = 200;
/// Round trips one list call may spend skipping filtered-out entries before it returns a
/// short page with a cursor.
const LIST_ROUNDS: usize = 10;

#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    keys: Arc<Keys>,
    retention_ms: i64,
    create: Arc<Script>,
    set_status: Arc<Script>,
    whatsapp: Arc<super::redis_conversations::Scripts>,
    claim: Arc<Script>,
    ack: Arc<Script>,
    /// Consumer groups known to exist on every dispatch stream.
    groups: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

pub(super) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

impl RedisStore {
    pub fn open(url: &str, prefix: &str, retention: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("--redis-url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            connection,
            keys: Arc::new(Keys::new(prefix)),
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
            create: Arc::new(Script::new(CREATE)),
            set_status: Arc::new(Script::new(SET_STATUS)),
            whatsapp: Arc::default(),
            claim: Arc::new(Script::new(super::redis_claims::CLAIM)),
            ack: Arc::new(Script::new(super::redis_claims::ACK)),
            groups: Arc::default(),
        })
    }

    pub(super) fn claim_script(&self) -> &Script {
        &self.claim
    }

    pub(super) fn ack_script(&self) -> &Script {
        &self.ack
    }

    pub(super) fn groups(&self) -> &std::sync::Mutex<std::collections::HashSet<String>> {
        &self.groups
    }

    pub(super) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    pub(super) fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(super) fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    pub(super) fn scripts(&self) -> &super::redis_conversations::Scripts {
        &self.whatsapp
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await
            .map_err(StoreError::from)
    }

    pub async fn create(
        &self,
        execution: &NewExecution,
        admission: &Admission,
    ) -> Result<Created, StoreError> {
        let e = execution;
        let keys = &self.keys;
        let shard = shard_of_project(&e.project_id);
        let record = keys.record(&e.id);
        let index = keys.workflow_index(&e.project_id, &e.workflow_id);
        let dispatch = keys.dispatch(shard);
        // Ids are written from buffers on the stack: this is the API trigger's hot path.
        let mut buffers = [Uuid::encode_buffer(); 3];
        let [id, project, workflow] = &mut buffers;
        let id = &*e.id.hyphenated().encode_lower(id);
        let project = &*e.project_id.hyphenated().encode_lower(project);
        let workflow = &*e.workflow_id.hyphenated().encode_lower(workflow);
        let meta = meta_json(e)?;
        // `(<id>`: index entries below it, older than the retention, are trimmed.
        let mut keep_from = [b'('; 37];
        first_id_at(e.created_at - self.retention_ms)
            .hyphenated()
            .encode_lower(&mut keep_from[1..]);
        let mut connection = self.connection.clone();

        if admission.idempotency.is_none() && admission.burst.is_none() {
            // Nothing to check: the writes alone, as one transaction. No `.ignore()`: it
            // records each ignored index in a fresh hash set per call, and a server error
            // of any command fails the call either way.
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&record)
                .arg("status")
                .arg("pending")
                .arg("updated")
                .arg(e.created_at)
                .arg("meta")
                .arg(&meta)
                .arg("context")
                .arg(&e.context)
                .pexpire(&record, self.retention_ms)
                .zadd(&index, id, 0)
                .cmd("ZREMRANGEBYLEX")
                .arg(&index)
                .arg("-")
                .arg(&keep_from[..])
                .pexpire(&index, self.retention_ms)
                .xadd(
                    &dispatch,
                    "*",
                    &[
                        ("id", id),
                        ("project", project),
                        ("workflow", workflow),
                        ("trigger_type", e.trigger_type),
                    ],
                )
                .query_async::<()>(&mut connection)
                .await?;
            return Ok(Created::New {
                burst_remaining: None,
            });
        }

        let (idempotency_key, request) = match &admission.idempotency {
            Some((key, request)) => (keys.idempotency(&e.project_id, key), request.as_str()),
            None => (record.clone(), ""),
        };
        let (burst_key, limit) = match admission.burst {
            Some((key_id, limit)) => (
                keys.burst(&e.project_id, &key_id, &e.workflow_id, e.created_at / 1000),
                limit,
            ),
            None => (record.clone(), 0),
        };
        let mut invocation = self.create.prepare_invoke();
        invocation
            .key(&record)
            .key(&index)
            .key(&dispatch)
            .key(idempotency_key)
            .key(burst_key)
            .arg(id)
            .arg(project)
            .arg(workflow)
            .arg(e.trigger_type)
            .arg(&meta)
            .arg(e.created_at)
            .arg(&e.context)
            .arg(self.retention_ms)
            .arg(request)
            .arg(IDEMPOTENCY_WINDOW.as_millis() as u64)
            .arg(limit)
            .arg(&keep_from[1..]);
        let reply: Vec<Value> = invocation.invoke_async(&mut connection).await?;
        let corrupt = || StoreError::Corrupt(format!("create returned {reply:?}"));
        match reply.first().and_then(int) {
            Some(0) => {
                let remaining = reply.get(1).and_then(int).ok_or_else(corrupt)?;
                Ok(Created::New {
                    burst_remaining: u32::try_from(remaining).ok(),
                })
            }
            Some(1) => {
                let id = reply.get(1).and_then(text).ok_or_else(corrupt)?;
                let tracking_id = Uuid::parse_str(&id).map_err(|_| corrupt())?;
                Ok(Created::Replayed { tracking_id })
            }
            Some(2) => Ok(Created::IdempotencyKeyReused),
            Some(3) => Ok(Created::RateLimited),
            _ => Err(corrupt()),
        }
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Execution>, StoreError> {
        let mut connection = self.connection.clone();
        let (fields, events): (HashMap<String, String>, Vec<String>) = redis::pipe()
            .hgetall(self.keys.record(&id))
            .lrange(self.keys.events(&id), 0, -1)
            .query_async(&mut connection)
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse_record(id, fields, events).map(Some)
    }

    pub async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let index = self
            .keys
            .workflow_index(&query.project_id, &query.workflow_id);
        let mut connection = self.connection.clone();
        let mut page = Page::default();
        let mut cursor = query.after;
        for _ in 0..LIST_ROUNDS {
            let max = cursor.map_or_else(|| "+".to_owned(), |id| format!("({id}"));
            let ids: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
                .arg(&index)
                .arg(max)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(LIST_BATCH)
                .query_async(&mut connection)
                .await?;
            let ids: Vec<Uuid> = ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect();
            if ids.is_empty() {
                return Ok(page);
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.hgetall(self.keys.record(id));
            }
            let records: Vec<HashMap<String, String>> = pipe.query_async(&mut connection).await?;
            let full_batch = ids.len() == LIST_BATCH;
            for (id, fields) in ids.into_iter().zip(records) {
                cursor = Some(id);
                if fields.is_empty() {
                    continue; // expired; the index is trimmed on the next create
                }
                let execution = parse_record(id, fields, Vec::new())?;
                if execution.project_id != query.project_id
                    || query.status.is_some_and(|s| s != execution.status)
                {
                    continue;
                }
                if page.executions.len() == query.limit {
                    page.after = page.executions.last().map(|e| e.id);
                    return Ok(page);
                }
                page.executions.push(execution);
            }
            if !full_batch {
                return Ok(page);
            }
        }
        // Scanned enough for one call: hand back a cursor where the scan stopped.
        page.after = cursor;
        Ok(page)
    }

    pub async fn set_status(
        &self,
        id: Uuid,
        to: Status,
        now: i64,
    ) -> Result<Transition, StoreError> {
        let allowed_from: Vec<&str> = Status::ALL
            .into_iter()
            .filter(|from| from.can_become(to))
            .map(Status::as_str)
            .collect();
        let mut connection = self.connection.clone();
        let reply: Vec<Value> = self
            .set_status
            .key(self.keys.record(&id))
            .key(self.keys.events(&id))
            .arg(to.as_str())
            .arg(now)
            .arg(allowed_from.join(" "))
            .invoke_async(&mut connection)
            .await?;
        match reply.first().and_then(int) {
            Some(0) => Ok(Transition::NotFound),
            Some(1) => {
                let from = reply
                    .get(1)
                    .and_then(text)
                    .and_then(|s| Status::parse(&s))
                    .ok_or_else(|| StoreError::Corrupt(format!("status of {id}")))?;
                Ok(Transition::Invalid { from })
            }
            Some(2) => match self.get(id).await? {
                Some(execution) => Ok(Transition::Done(execution)),
                None => Ok(Transition::NotFound),
            },
            _ => Err(StoreError::Corrupt(format!(
                "set_status returned {reply:?}"
            ))),
        }
    }

    /// Tracking ids waiting in the dispatch stream of `shard` (for tests and runners).
    pub async fn dispatched(&self, shard: u8) -> Result<Vec<Uuid>, StoreError> {
        let mut connection = self.connection.clone();
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys.dispatch(shard))
            .arg("-")
            .arg("+")
            .query_async(&mut connection)
            .await?;
        Ok(entries
            .ids
            .iter()
            .filter_map(|entry| entry.get::<String>("id"))
            .filter_map(|id| Uuid::parse_str(&id).ok())
            .collect())
    }
}

/// The fields of a record that never change, stored as one JSON value (a hash of four
/// fields costs Redis less than one of eleven).
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    #[serde(rename = "p")]
    project: Uuid,
    #[serde(rename = "w")]
    workflow: Uuid,
    #[serde(rename = "t")]
    trigger_type: String,
    #[serde(rename = "x")]
    test: bool,
    #[serde(rename = "o")]
    observer_mode: bool,
    #[serde(rename = "c")]
    conversation_id: Option<String>,
    #[serde(rename = "at")]
    created_at: i64,
}

/// The `meta` field of a new record.
pub(super) fn meta_json(e: &NewExecution) -> Result<String, StoreError> {
    serde_json::to_string(&Meta {
        project: e.project_id,
        workflow: e.workflow_id,
        trigger_type: e.trigger_type.into(),
        test: e.test,
        observer_mode: e.observer_mode,
        conversation_id: e.conversation_id.clone(),
        created_at: e.created_at,
    })
    .map_err(|err| StoreError::Corrupt(err.to_string()))
}

pub(super) fn parse_record(
    id: Uuid,
    mut fields: HashMap<String, String>,
    events: Vec<String>,
) -> Result<Execution, StoreError> {
    let mut take = |name: &str| {
        fields
            .remove(name)
            .ok_or_else(|| StoreError::Corrupt(format!("{id}: no {name}")))
    };
    let meta: Meta = serde_json::from_str(&take("meta")?)
        .map_err(|e| StoreError::Corrupt(format!("{id}: meta: {e}")))?;
    let status = take("status")?;
    let status =
        Status::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("{id}: bad status")))?;
    let updated_at = take("updated")?
        .parse::<i64>()
        .map_err(|_| StoreError::Corrupt(format!("{id}: bad updated")))?;
    Ok(Execution {
        id,
        project_id: meta.project,
        workflow_id: meta.workflow,
        status,
        trigger_type: meta.trigger_type,
        test: meta.test,
        observer_mode: meta.observer_mode,
        conversation_id: meta.conversation_id,
        created_at: meta.created_at,
        updated_at,
        context: take("context")?,
        last_user_input: fields.remove("input"),
        events,
    })
}
