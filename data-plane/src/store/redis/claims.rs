//! Claims in Redis (see [`crate::store::claims`]): consumer groups on the dispatch streams,
//! a lease on the record set by the `claim` script, acks by the `ack` script.

use super::executions::parse_record;
use super::{RedisStore, int};
use crate::store::claims::{AckOutcome, ClaimQuery, Claimed};
use crate::store::keys::{SHARDS, shard_of_execution};
use crate::store::{Claims, StoreError};
use redis::Value;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use std::collections::HashMap;
use uuid::Uuid;

/// An entry read from a dispatch stream.
struct Entry {
    shard: u8,
    entry_id: String,
    tracking_id: Option<Uuid>,
    workflow: Option<Uuid>,
}

fn entry(shard: u8, id: &StreamId) -> Entry {
    let field = |name: &str| {
        id.get::<String>(name)
            .and_then(|v| Uuid::parse_str(&v).ok())
    };
    Entry {
        shard,
        entry_id: id.id.clone(),
        tracking_id: field("id"),
        workflow: field("workflow"),
    }
}

impl RedisStore {
    /// Creates consumer group `group` on each of `streams` (one per shard) once per process
    /// (`marker` remembers it), from the stream's start, so entries added before the first
    /// read are delivered too.
    async fn ensure_group(
        &self,
        marker: &str,
        streams: impl Iterator<Item = String>,
        group: &str,
    ) -> Result<(), StoreError> {
        if self.groups.lock().is_ok_and(|g| g.contains(marker)) {
            return Ok(());
        }
        let mut connection = self.connection();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for stream in streams {
            pipe.cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(group)
                .arg("0")
                .arg("MKSTREAM");
        }
        let replies: Vec<redis::RedisResult<Value>> = pipe.query_async(&mut connection).await?;
        for reply in replies {
            if let Err(err) = reply
                && err.code() != Some("BUSYGROUP")
            {
                return Err(err.into());
            }
        }
        if let Ok(mut groups) = self.groups.lock() {
            groups.insert(marker.to_owned());
        }
        Ok(())
    }

    async fn xack(&self, shard: u8, group: &str, entry_id: &str) -> Result<(), StoreError> {
        let mut connection = self.connection();
        redis::cmd("XACK")
            .arg(self.keys.dispatch(shard))
            .arg(group)
            .arg(entry_id)
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Claims for RedisStore {
    async fn claim(&self, query: &ClaimQuery, now: i64) -> Result<Vec<Claimed>, StoreError> {
        let group = query.group();
        let per_shard = (query.max / 4).max(1);
        let streams = (0..SHARDS).map(|shard| self.keys.dispatch(shard));
        self.ensure_group(&group, streams, &group).await?;
        let mut connection = self.connection();
        // Deliveries whose lease may have run out first, then new entries.
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("XAUTOCLAIM")
                .arg(self.keys.dispatch(shard))
                .arg(&group)
                .arg(&query.runner)
                .arg(query.visibility_ms)
                .arg("0-0")
                .arg("COUNT")
                .arg(per_shard);
        }
        for shard in 0..SHARDS {
            pipe.cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&group)
                .arg(&query.runner)
                .arg("COUNT")
                .arg(per_shard)
                .arg("STREAMS")
                .arg(self.keys.dispatch(shard))
                .arg(">");
        }
        let replies: Vec<Value> = pipe.query_async(&mut connection).await?;
        let mut entries = Vec::new();
        for (i, reply) in replies.into_iter().enumerate() {
            let shard = (i % usize::from(SHARDS)) as u8;
            if i < usize::from(SHARDS) {
                let claimed: StreamAutoClaimReply = redis::from_redis_value(reply)
                    .map_err(|e| StoreError::Corrupt(format!("XAUTOCLAIM: {e}")))?;
                entries.extend(claimed.claimed.iter().map(|id| entry(shard, id)));
            } else if !matches!(reply, Value::Nil) {
                let read: StreamReadReply = redis::from_redis_value(reply)
                    .map_err(|e| StoreError::Corrupt(format!("XREADGROUP: {e}")))?;
                for key in &read.keys {
                    entries.extend(key.ids.iter().map(|id| entry(shard, id)));
                }
            }
        }
        let mut claimed = Vec::new();
        for e in entries {
            let (Some(id), Some(workflow)) = (e.tracking_id, e.workflow) else {
                self.xack(e.shard, &group, &e.entry_id).await?;
                continue;
            };
            if !query.wants(&workflow) {
                // Another filter's: not this group's business.
                self.xack(e.shard, &group, &e.entry_id).await?;
                continue;
            }
            let reply: Vec<Value> = self
                .scripts
                .claim
                .key(self.keys.record(&id))
                .key(self.keys.events(&id))
                .arg(&query.runner)
                .arg(now)
                .arg(query.visibility_ms)
                .arg(format!("{group} {}", e.entry_id))
                .invoke_async(&mut connection)
                .await?;
            match reply.first().and_then(int) {
                Some(0) => self.xack(e.shard, &group, &e.entry_id).await?,
                Some(1) => {}
                Some(2) => {
                    let attempt = reply.get(1).and_then(int).unwrap_or(1);
                    let corrupt =
                        || StoreError::Corrupt(format!("claim of {id} returned {reply:?}"));
                    let fields: HashMap<String, String> =
                        redis::from_redis_value(reply.get(2).cloned().ok_or_else(corrupt)?)
                            .map_err(|_| corrupt())?;
                    let events: Vec<String> =
                        redis::from_redis_value(reply.get(3).cloned().ok_or_else(corrupt)?)
                            .map_err(|_| corrupt())?;
                    claimed.push(Claimed {
                        execution: parse_record(id, fields, events)?,
                        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                    });
                }
                _ => return Err(StoreError::Corrupt(format!("claim returned {reply:?}"))),
            }
        }
        Ok(claimed)
    }

    /// Messages delivered to executions `runner` holds (webhook rule b), oldest first,
    /// taken off its streams as they are read.
    async fn runner_messages(
        &self,
        runner: &str,
        max: usize,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        const GROUP: &str = "runner";
        let streams = (0..SHARDS).map(|shard| self.keys.runner_messages(shard, runner));
        self.ensure_group(&format!("r:{runner}"), streams, GROUP)
            .await?;
        let mut connection = self.connection();
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(runner)
                .arg("COUNT")
                .arg(max.max(1))
                .arg("STREAMS")
                .arg(self.keys.runner_messages(shard, runner))
                .arg(">");
        }
        let replies: Vec<Value> = pipe.query_async(&mut connection).await?;
        let mut messages = Vec::new();
        let mut done = redis::pipe();
        for (shard, reply) in (0..SHARDS).zip(replies) {
            if matches!(reply, Value::Nil) {
                continue;
            }
            let read: StreamReadReply = redis::from_redis_value(reply)
                .map_err(|e| StoreError::Corrupt(format!("XREADGROUP: {e}")))?;
            let stream = self.keys.runner_messages(shard, runner);
            for id in read.keys.iter().flat_map(|k| &k.ids) {
                done.cmd("XACK")
                    .arg(&stream)
                    .arg(GROUP)
                    .arg(&id.id)
                    .ignore();
                done.cmd("XDEL").arg(&stream).arg(&id.id).ignore();
                let execution = id
                    .get::<String>("id")
                    .and_then(|v| Uuid::parse_str(&v).ok());
                if let (Some(execution), Some(message)) = (execution, id.get::<String>("message")) {
                    messages.push((execution, message));
                }
            }
        }
        if !messages.is_empty() {
            done.query_async::<()>(&mut connection).await?;
        }
        Ok(messages)
    }

    async fn ack(&self, id: Uuid, runner: &str, now: i64) -> Result<AckOutcome, StoreError> {
        let mut connection = self.connection();
        let reply: Vec<Value> = self
            .scripts
            .ack
            .key(self.keys.record(&id))
            .key(self.keys.dispatch(shard_of_execution(&id)))
            .arg(runner)
            .arg(now)
            .invoke_async(&mut connection)
            .await?;
        match reply.first().and_then(int) {
            Some(0) => Ok(AckOutcome::NotFound),
            Some(1) => Ok(AckOutcome::NotYours),
            Some(2) => Ok(AckOutcome::Acked),
            _ => Err(StoreError::Corrupt(format!("ack returned {reply:?}"))),
        }
    }
}
