//! Executions in Redis (see [`crate::store::Executions`]): creating one is one MULTI/EXEC
//! when nothing needs checking, else the `create` script (the `join` script when it joins
//! a conversation, in `conversations.rs`); a status change is the `set_status` script, a resume the `resume` script.

use super::{RedisStore, int, text};
use crate::store::decisions::Outcome;
use crate::store::keys::{SHARDS, first_id_at, shard_of_execution, shard_of_project};
use crate::store::{
    Admission, Created, Execution, Executions, IDEMPOTENCY_WINDOW, ListQuery, NewExecution,
    Numbered, Page, Resume, Resumed, Status, StoreError, Transition, events,
};
use crate::time::now_ms;
use redis::Value;
use std::collections::HashMap;
use switchboard_proto::wire::TriggerType;
use uuid::Uuid;

/// Index entries read per round trip while listing.
const LIST_BATCH: usize = 200;
/// Round trips one list call may spend skipping filtered-out entries before it returns a
/// short page with a cursor.
const LIST_ROUNDS: usize = 10;
/// Index entries read per round trip while counting a numbered page's matches.
const NUMBERED_BATCH: usize = 1000;

#[async_trait::async_trait]
impl Executions for RedisStore {
    async fn create(
        &self,
        execution: &NewExecution,
        admission: &Admission,
    ) -> Result<Created, StoreError> {
        if let Some(binding) = &admission.conversation {
            return self.join(execution, admission, binding).await;
        }
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
        let mut connection = self.connection();

        if admission.idempotency.is_none() && admission.burst.is_none() {
            // Nothing to check: the writes alone, as one transaction. No `.ignore()`: it
            // records each ignored index in a fresh hash set per call, and a server error
            // of any command fails the call either way.
            let mut pipe = redis::pipe();
            pipe.atomic()
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
                        ("trigger_type", e.trigger_type.as_str()),
                    ],
                );
            if let Some(draft) = &admission.decision {
                let decision = draft.decide(Outcome::Started, None).concerning(e);
                self.add_decision(&mut pipe, &decision)?;
            }
            pipe.query_async::<()>(&mut connection).await?;
            return Ok(Created::New {
                burst_remaining: None,
                joined: None,
            });
        }

        let checks = self.checks(e, admission);
        let (idempotency_key, request) = (checks.idempotency_key, checks.request);
        let (burst_key, limit) = (checks.burst_key, checks.limit);
        let mut invocation = self.scripts.create.prepare_invoke();
        invocation
            .key(&record)
            .key(&index)
            .key(&dispatch)
            .key(idempotency_key)
            .key(burst_key)
            .key(keys.decisions(&e.project_id))
            .arg(id)
            .arg(project)
            .arg(workflow)
            .arg(e.trigger_type.as_str())
            .arg(&meta)
            .arg(e.created_at)
            .arg(&e.context)
            .arg(self.retention_ms)
            .arg(request)
            .arg(IDEMPOTENCY_WINDOW.as_millis() as u64)
            .arg(limit)
            .arg(&keep_from[1..])
            .arg(self.decision_block(admission.decision.as_ref(), &[("api", e)])?);
        let reply: Vec<Value> = invocation.invoke_async(&mut connection).await?;
        let corrupt = || StoreError::Corrupt(format!("create returned {reply:?}"));
        match reply.first().and_then(int) {
            Some(0) => {
                let remaining = reply.get(1).and_then(int).ok_or_else(corrupt)?;
                Ok(Created::New {
                    burst_remaining: u32::try_from(remaining).ok(),
                    joined: None,
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

    async fn get(&self, id: Uuid) -> Result<Option<Execution>, StoreError> {
        let mut connection = self.connection();
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

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let index = self
            .keys
            .workflow_index(&query.project_id, &query.workflow_id);
        let mut connection = self.connection();
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
            let records = self.listed(&mut connection, &ids).await?;
            let full_batch = ids.len() == LIST_BATCH;
            for (id, record) in ids.into_iter().zip(records) {
                cursor = Some(id);
                let Some(execution) = record else {
                    continue; // expired; the index is trimmed on the next create
                };
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

    async fn numbered(
        &self,
        query: &ListQuery,
        page: usize,
    ) -> Result<Numbered<Execution>, StoreError> {
        let index = self
            .keys
            .workflow_index(&query.project_id, &query.workflow_id);
        // Entries older than the retention may wait in the index to be trimmed; their
        // records are gone, so they are neither counted nor listed.
        let alive = format!("[{}", first_id_at(now_ms() - self.retention_ms));
        let offset = page.saturating_sub(1).saturating_mul(query.limit);
        let mut connection = self.connection();
        let Some(status) = query.status else {
            let (total, ids): (usize, Vec<String>) = redis::pipe()
                .cmd("ZLEXCOUNT")
                .arg(&index)
                .arg(&alive)
                .arg("+")
                .cmd("ZRANGEBYLEX")
                .arg(&index)
                .arg(&alive)
                .arg("+")
                .arg("LIMIT")
                .arg(offset)
                .arg(query.limit)
                .query_async(&mut connection)
                .await?;
            let ids: Vec<Uuid> = ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect();
            let rows = self.listed(&mut connection, &ids).await?;
            return Ok(Numbered {
                rows: rows.into_iter().flatten().collect(),
                total,
            });
        };
        // A status filter reads every entry's status: O(executions of the workflow).
        let mut matching = Vec::new();
        let mut total = 0;
        let mut from = alive;
        loop {
            let ids: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(&index)
                .arg(&from)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(NUMBERED_BATCH)
                .query_async(&mut connection)
                .await?;
            let ids: Vec<Uuid> = ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect();
            let Some(last) = ids.last() else { break };
            from = format!("({last}");
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.hget(self.keys.record(id), "status");
            }
            let statuses: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
            for (id, s) in ids.iter().zip(statuses) {
                if s.as_deref() == Some(status.as_str()) {
                    if total >= offset && matching.len() < query.limit {
                        matching.push(*id);
                    }
                    total += 1;
                }
            }
            if ids.len() < NUMBERED_BATCH {
                break;
            }
        }
        let rows = self.listed(&mut connection, &matching).await?;
        Ok(Numbered {
            rows: rows.into_iter().flatten().collect(),
            total,
        })
    }

    async fn set_status(&self, id: Uuid, to: Status, now: i64) -> Result<Transition, StoreError> {
        let allowed_from: Vec<&str> = Status::ALL
            .into_iter()
            .filter(|from| from.can_become(to))
            .map(Status::as_str)
            .collect();
        let mut connection = self.connection();
        let reply: Vec<Value> = self
            .scripts
            .set_status
            .key(self.keys.record(&id))
            .key(self.keys.events(&id))
            .key(self.keys.waiting(shard_of_execution(&id)))
            .arg(to.as_str())
            .arg(now)
            .arg(allowed_from.join(" "))
            .arg(id.to_string())
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
                Some(execution) => Ok(Transition::Done(Box::new(execution))),
                None => Ok(Transition::NotFound),
            },
            _ => Err(StoreError::Corrupt(format!(
                "set_status returned {reply:?}"
            ))),
        }
    }

    async fn resume(&self, id: Uuid, resume: &Resume) -> Result<Resumed, StoreError> {
        let mut invocation = self.scripts.resume.prepare_invoke();
        invocation
            .key(self.keys.record(&id))
            .key(self.keys.events(&id))
            .key(match &resume.decision {
                Some(draft) => self.keys.decisions(&draft.project_id),
                None => self.keys.record(&id),
            })
            .arg(self.keys.base(shard_of_execution(&id)))
            .arg(id.to_string())
            .arg(resume.at)
            .arg(&resume.event)
            .arg(resume.input.as_deref().map_or("0", |_| "1"))
            .arg(resume.input.as_deref().unwrap_or_default())
            .arg(resume.variables.len());
        for (name, value) in &resume.variables {
            invocation.arg(name).arg(value);
        }
        invocation.arg(self.decision_block(resume.decision.as_ref(), &[])?);
        let mut connection = self.connection();
        let reply: Vec<Value> = invocation.invoke_async(&mut connection).await?;
        match reply.first().and_then(int) {
            Some(0) => Ok(Resumed::NotFound),
            Some(1) => {
                let status = reply
                    .get(1)
                    .and_then(text)
                    .and_then(|s| Status::parse(&s))
                    .ok_or_else(|| StoreError::Corrupt(format!("status of {id}")))?;
                Ok(Resumed::NotWaiting { status })
            }
            Some(2) => match self.get(id).await? {
                Some(execution) => Ok(Resumed::Done(Box::new(execution))),
                None => Ok(Resumed::NotFound),
            },
            _ => Err(StoreError::Corrupt(format!("resume returned {reply:?}"))),
        }
    }

    async fn time_out_waiting(
        &self,
        cutoff: i64,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut connection = self.connection();
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(self.keys.waiting(shard))
                .arg("-inf")
                .arg(cutoff)
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
        }
        let per_shard: Vec<Vec<String>> = pipe.query_async(&mut connection).await?;
        let candidates: Vec<Uuid> = per_shard
            .iter()
            .flatten()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect();
        let event = events::waiting_timeout(now.saturating_sub(cutoff), now);
        let mut failed = Vec::new();
        for id in candidates {
            let shard = shard_of_execution(&id);
            let done: i64 = self
                .scripts
                .timeout
                .key(self.keys.record(&id))
                .key(self.keys.events(&id))
                .key(self.keys.waiting(shard))
                .arg(id.to_string())
                .arg(cutoff)
                .arg(now)
                .arg(&event)
                .arg(self.keys.base(shard))
                .invoke_async(&mut connection)
                .await?;
            if done == 1 {
                failed.push(id);
            }
        }
        Ok(failed)
    }

    async fn append_event(&self, id: Uuid, event: &str) -> Result<(), StoreError> {
        let events = self.keys.events(&id);
        let mut connection = self.connection();
        redis::pipe()
            .rpush(&events, event)
            .ignore()
            .pexpire(&events, self.retention_ms)
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    /// Tracking ids waiting in the dispatch stream of `shard` (for tests and runners).
    async fn dispatched(&self, shard: u8) -> Result<Vec<Uuid>, StoreError> {
        let mut connection = self.connection();
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

    async fn trim_streams(&self, now: i64) -> Result<u64, StoreError> {
        let min_id = format!("{}-0", now.saturating_sub(self.retention_ms).max(0));
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            for stream in [self.keys.dispatch(shard), self.keys.inbox(shard)] {
                pipe.cmd("XTRIM").arg(stream).arg("MINID").arg(&min_id);
            }
        }
        let mut connection = self.connection();
        let trimmed: Vec<u64> = pipe.query_async(&mut connection).await?;
        Ok(trimmed.into_iter().sum())
    }
}

/// The keys and arguments of a creation's admission checks (`create.lua`, `join.lua`): a
/// check that does not apply gets the record's key and an empty argument.
pub(super) struct Checks<'a> {
    pub idempotency_key: String,
    /// The request hash; `""` without an Idempotency-Key.
    pub request: &'a str,
    pub burst_key: String,
    /// Requests per second; 0 without a burst limit.
    pub limit: u32,
}

impl RedisStore {
    /// The records of `ids` as lists show them (no events, `last_event_at` from the newest
    /// one), in one round trip; `None` for one that expired.
    async fn listed(
        &self,
        connection: &mut redis::aio::ConnectionManager,
        ids: &[Uuid],
    ) -> Result<Vec<Option<Execution>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.record(id));
            pipe.cmd("LINDEX").arg(self.keys.events(id)).arg(-1);
        }
        let replies: Vec<Value> = pipe.query_async(connection).await?;
        let mut replies = replies.into_iter();
        let mut listed = Vec::with_capacity(ids.len());
        for id in ids {
            let (Some(fields), Some(newest)) = (replies.next(), replies.next()) else {
                return Err(StoreError::Corrupt("short list reply".into()));
            };
            let corrupt = |e: redis::ParsingError| StoreError::Corrupt(format!("{id}: {e}"));
            let fields: HashMap<String, String> =
                redis::from_redis_value(fields).map_err(corrupt)?;
            if fields.is_empty() {
                listed.push(None);
                continue;
            }
            let newest: Option<String> = redis::from_redis_value(newest).map_err(corrupt)?;
            let mut execution = parse_record(*id, fields, Vec::new())?;
            execution.last_event_at =
                events::last_event_at(newest.as_deref(), execution.created_at);
            listed.push(Some(execution));
        }
        Ok(listed)
    }

    pub(super) fn checks<'a>(&self, e: &NewExecution, admission: &'a Admission) -> Checks<'a> {
        let record = || self.keys.record(&e.id);
        let (idempotency_key, request) = match &admission.idempotency {
            Some((key, request)) => (self.keys.idempotency(&e.project_id, key), request.as_str()),
            None => (record(), ""),
        };
        let (burst_key, limit) = match admission.burst {
            Some((key_id, limit)) => (
                self.keys
                    .burst(&e.project_id, &key_id, &e.workflow_id, e.created_at / 1000),
                limit,
            ),
            None => (record(), 0),
        };
        Checks {
            idempotency_key,
            request,
            burst_key,
            limit,
        }
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
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    decision: Option<Uuid>,
}

/// The `meta` field of a new record.
pub(super) fn meta_json(e: &NewExecution) -> Result<String, StoreError> {
    serde_json::to_string(&Meta {
        project: e.project_id,
        workflow: e.workflow_id,
        trigger_type: e.trigger_type.as_str().into(),
        test: e.test,
        observer_mode: e.observer_mode,
        conversation_id: e.conversation_id.clone(),
        created_at: e.created_at,
        decision: e.origin.as_ref().map(|o| o.decision_id),
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
        trigger_type: TriggerType::parse(&meta.trigger_type)
            .ok_or_else(|| StoreError::Corrupt(format!("{id}: bad trigger type")))?,
        test: meta.test,
        observer_mode: meta.observer_mode,
        conversation_id: meta.conversation_id,
        created_at: meta.created_at,
        updated_at,
        context: take("context")?,
        last_user_input: fields.remove("input"),
        variables: fields
            .into_iter()
            .filter_map(|(name, value)| Some((name.strip_prefix("v:")?.to_owned(), value)))
            .collect(),
        last_event_at: events::last_event_at(events.last().map(String::as_str), meta.created_at),
        events,
        decision_id: meta.decision,
    })
}
