//! The Redis backend of the store: executions (`executions`), runners' claims (`claims`)
//! and the WhatsApp state (`conversations`). Every write is one Lua script (`scripts/`) or
//! one MULTI/EXEC, atomic and in one hash slot (see [`Keys`]); reads are pipelines.
//!
//! The connection is a [`ConnectionManager`]: created without connecting, it reconnects in
//! the background, so a data plane starts while Redis is down and recovers without a
//! restart once it is back; meanwhile every call fails fast with
//! [`StoreError::Unavailable`].

mod claims;
mod conversations;
mod decisions;
mod executions;

use super::keys::Keys;
use super::{Backend, DecisionLimits, Kind, StoreError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

/// The WhatsApp scripts share a prelude (helpers and the creation of executions) and the
/// recording of decisions.
macro_rules! with_prelude {
    ($file:literal) => {
        concat!(
            include_str!("scripts/prelude.lua"),
            include_str!("scripts/decision.lua"),
            include_str!($file)
        )
    };
}

/// Sources of the scripts sent as raw `EVALSHA` in pipelines, loaded again when Redis
/// forgot them (see [`RedisStore::run`]).
const MESSAGE: &str = with_prelude!("scripts/message.lua");
const STATUS: &str = with_prelude!("scripts/status.lua");
const END: &str = with_prelude!("scripts/end.lua");
const JOIN: &str = concat!(
    include_str!("scripts/prelude.lua"),
    include_str!("scripts/decision.lua"),
    include_str!("scripts/admission.lua"),
    include_str!("scripts/join.lua")
);

/// Every script, hashed once.
struct Scripts {
    create: Script,
    set_status: Script,
    claim: Script,
    ack: Script,
    message: Script,
    status: Script,
    end: Script,
    join: Script,
    resume: Script,
    timeout: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            create: Script::new(concat!(
                include_str!("scripts/decision.lua"),
                include_str!("scripts/admission.lua"),
                include_str!("scripts/create.lua")
            )),
            set_status: Script::new(include_str!("scripts/set_status.lua")),
            claim: Script::new(include_str!("scripts/claim.lua")),
            ack: Script::new(include_str!("scripts/ack.lua")),
            message: Script::new(MESSAGE),
            status: Script::new(STATUS),
            end: Script::new(END),
            join: Script::new(JOIN),
            resume: Script::new(concat!(
                include_str!("scripts/decision.lua"),
                include_str!("scripts/resume.lua")
            )),
            timeout: Script::new(include_str!("scripts/timeout.lua")),
        }
    }
}

pub(super) struct RedisStore {
    connection: ConnectionManager,
    keys: Keys,
    retention_ms: i64,
    decision_limits: DecisionLimits,
    scripts: Scripts,
    /// Consumer groups known to exist on every dispatch stream.
    groups: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    pub(super) fn open(
        url: &str,
        prefix: &str,
        retention: Duration,
        decision_limits: DecisionLimits,
    ) -> Result<Self, StoreError> {
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
            keys: Keys::new(prefix),
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
            decision_limits,
            scripts: Scripts::new(),
            groups: Mutex::default(),
        })
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// `EVALSHA <script> <n> <keys…>`, arguments to follow.
    fn evalsha<const N: usize>(script: &Script, keys: [String; N]) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(N).arg(&keys[..]);
        cmd
    }

    /// Runs `query`; when Redis forgot the scripts (restart, failover), loads them and
    /// runs it again. Safe because every script call sent this way is idempotent.
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
                let mut load = redis::pipe();
                for code in [MESSAGE, STATUS, END] {
                    load.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
                }
                load.query_async::<()>(&mut connection).await?;
                Ok(query.query_async(&mut connection).await?)
            }
            Err(err) => Err(err.into()),
        }
    }
}

#[async_trait::async_trait]
impl Backend for RedisStore {
    fn kind(&self) -> Kind {
        Kind::Redis
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection();
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await
            .map_err(StoreError::from)
    }
}

/// An integer reply.
fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// A text reply.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Element `i` of a script's reply, as a UUID.
fn uuid_at(reply: &[Value], i: usize) -> Option<Uuid> {
    reply
        .get(i)
        .and_then(text)
        .and_then(|s| Uuid::parse_str(&s).ok())
}

fn corrupt(what: &str, reply: &[Value]) -> StoreError {
    StoreError::Corrupt(format!("{what} returned {reply:?}"))
}
