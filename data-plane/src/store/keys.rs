//! Redis key layout and sharding of the execution store.
//!
//! Every key of one project lives in one of [`SHARDS`] Redis Cluster hash slots, chosen by
//! the project id, so the Lua script that creates an execution touches a single slot
//! (record, workflow index, dispatch stream, idempotency key, burst counter). The shard is
//! also written into the last byte of the tracking id (a UUIDv7 keeps 66 random bits), so a
//! runner holding only a tracking id finds the record without knowing the project.
//!
//! ```text
//! {prefix}:{x<shard>}:e:<tracking id>          hash: status, updated, meta (JSON), context,
//!                                              input, v:<name> (resumed variables), claim state
//! {prefix}:{x<shard>}:ev:<tracking id>         list: its events (JSON)
//! {prefix}:{x<shard>}:w:<workflow id>          sorted set (lex): tracking ids of a workflow
//! {prefix}:{x<shard>}:dispatch                 stream: executions for runners to claim
//! {prefix}:{x<shard>}:wt                       sorted set: executions by when they began waiting
//! {prefix}:{x<shard>}:i:<project>:<sha256 key>  idempotency: "<request sha256> <tracking id>"
//! {prefix}:{x<shard>}:b:<key id>:<workflow>:<unix second>   burst counter
//! {prefix}:{x<shard>}:c:<conversation id>      hash: a conversation (DESIGN §5)
//! {prefix}:{x<shard>}:cn:<config id>:<wa_id>   string: the latest conversation of a customer
//! {prefix}:{x<shard>}:ca                       sorted set: active conversations by last activity
//! {prefix}:{x<shard>}:cl:<project>             sorted set: a project's conversations by last activity
//! {prefix}:{x<shard>}:m:<wamid>                string: inbound message processed (8 days)
//! {prefix}:{x<shard>}:s:<wamid>                hash: status of an outbound message (8 days)
//! {prefix}:{x<shard>}:inbox                    stream: messages for the AI agents
//! {prefix}:{x<shard>}:r:<runner>               stream: messages for executions a runner holds
//! {prefix}:{x<shard>}:d:<project>              sorted set (lex): routing decisions, "<id> <JSON>"
//! ```
//!
//! Conversation ids are made like tracking ids, so they carry the shard too. The WhatsApp
//! scripts (`redis/scripts/`) derive the keys of records and conversations they find while
//! running from the shard's base (`{prefix}:{x<shard>}:`): all in the slot of the key they
//! were called with. The memory store keeps the same things in maps, without keys.

use uuid::Uuid;

/// Number of hash-tag shards. The shard travels in the tracking id's last byte, so it may
/// grow up to 256 without breaking existing ids.
pub const SHARDS: u8 = 16;

/// The shard of a project: low bits of its (random-tailed) UUIDv7.
pub fn shard_of_project(project_id: &Uuid) -> u8 {
    project_id.as_bytes()[15] % SHARDS
}

/// The shard a tracking id was created in.
pub fn shard_of_execution(tracking_id: &Uuid) -> u8 {
    tracking_id.as_bytes()[15]
}

/// A new tracking id (UUIDv7, time-ordered) for an execution of `project_id`.
pub fn new_tracking_id(project_id: &Uuid) -> Uuid {
    let mut bytes = *Uuid::now_v7().as_bytes();
    bytes[15] = shard_of_project(project_id);
    Uuid::from_bytes(bytes)
}

/// The smallest tracking id created at or after `unix_ms`: lexicographic bound of an index
/// (UUIDv7 strings sort by creation time).
pub fn first_id_at(unix_ms: i64) -> Uuid {
    let ms = u64::try_from(unix_ms).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    Uuid::from_bytes(bytes)
}

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// `{prefix}:{x<shard>}:<rest>`, formatted once.
    fn key(&self, shard: u8, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}:{{x{shard}}}:{rest}", self.prefix)
    }

    /// `{prefix}:{x<shard>}:`, the start of every key of a shard.
    pub fn base(&self, shard: u8) -> String {
        self.key(shard, format_args!(""))
    }

    pub fn conversation(&self, id: &Uuid) -> String {
        self.key(shard_of_execution(id), format_args!("c:{id}"))
    }

    pub fn active_conversations(&self, shard: u8) -> String {
        self.key(shard, format_args!("ca"))
    }

    pub fn project_conversations(&self, project_id: &Uuid) -> String {
        self.key(
            shard_of_project(project_id),
            format_args!("cl:{project_id}"),
        )
    }

    pub fn seen_message(&self, project_id: &Uuid, message_id: &str) -> String {
        self.key(shard_of_project(project_id), format_args!("m:{message_id}"))
    }

    pub fn message_status(&self, project_id: &Uuid, message_id: &str) -> String {
        self.key(shard_of_project(project_id), format_args!("s:{message_id}"))
    }

    pub fn runner_messages(&self, shard: u8, runner: &str) -> String {
        self.key(shard, format_args!("r:{runner}"))
    }

    pub fn inbox(&self, shard: u8) -> String {
        self.key(shard, format_args!("inbox"))
    }

    pub fn record(&self, id: &Uuid) -> String {
        self.key(shard_of_execution(id), format_args!("e:{id}"))
    }

    pub fn events(&self, id: &Uuid) -> String {
        self.key(shard_of_execution(id), format_args!("ev:{id}"))
    }

    pub fn workflow_index(&self, project_id: &Uuid, workflow_id: &Uuid) -> String {
        self.key(
            shard_of_project(project_id),
            format_args!("w:{workflow_id}"),
        )
    }

    pub fn decisions(&self, project_id: &Uuid) -> String {
        self.key(shard_of_project(project_id), format_args!("d:{project_id}"))
    }

    pub fn waiting(&self, shard: u8) -> String {
        self.key(shard, format_args!("wt"))
    }

    pub fn dispatch(&self, shard: u8) -> String {
        self.key(shard, format_args!("dispatch"))
    }

    pub fn idempotency(&self, project_id: &Uuid, key_sha256: &str) -> String {
        self.key(
            shard_of_project(project_id),
            format_args!("i:{project_id}:{key_sha256}"),
        )
    }

    pub fn burst(
        &self,
        project_id: &Uuid,
        key_id: &Uuid,
        workflow_id: &Uuid,
        second: i64,
    ) -> String {
        self.key(
            shard_of_project(project_id),
            format_args!("b:{key_id}:{workflow_id}:{second}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tracking_id_names_its_projects_shard_and_stays_v7() {
        for _ in 0..100 {
            let project = Uuid::now_v7();
            let id = new_tracking_id(&project);
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(shard_of_execution(&id), shard_of_project(&project));
            let keys = Keys::new("sb");
            let tag = |k: String| k.split(['{', '}']).nth(1).map(str::to_owned);
            assert_eq!(
                tag(keys.record(&id)),
                tag(keys.workflow_index(&project, &id))
            );
            assert_eq!(
                tag(keys.record(&id)),
                tag(keys.dispatch(shard_of_project(&project)))
            );
        }
    }

    #[test]
    fn first_id_at_bounds_ids_by_time() {
        let now = Uuid::now_v7();
        let (secs, nanos) = now.get_timestamp().map(|t| t.to_unix()).unwrap_or_default();
        let ms = i64::try_from(secs).unwrap_or(0) * 1000 + i64::from(nanos / 1_000_000);
        assert!(first_id_at(ms).to_string() <= now.to_string());
        assert!(first_id_at(ms + 1).to_string() > now.to_string());
    }
}
