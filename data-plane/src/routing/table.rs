//! The immutable in-memory routing table of a data plane (DESIGN §4). Built off the hot path
//! from the entries the control plane sent, validated entry by entry (refused entries are
//! reported, the valid rest is indexed), then swapped in whole. Every lookup is a hash
//! lookup.
//!
//! Entries are kept in a compact form (UUIDs as 128-bit values, Meta ids as integers, types
//! as small enums) rather than as received protobuf messages, and the large collections are
//! dense (items in a vector, indexes of positions; see [`super::dense`]): a million numbers
//! and a million triggers take about 250 MB. [`RoutingTable::to_entries`] gives the
//! protobuf form back for persistence.

mod decode;
mod patch;

use super::dense::{Dense, Hasher, Keyed, Positions};
use std::collections::HashSet;
use switchboard_proto::EVENT_TYPES;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::routing_entry::Entry;
use uuid::Uuid;

/// Hash maps of the table's small indexes (see [`Hasher`]).
type HashMap<K, V> = std::collections::HashMap<K, V, Hasher>;

/// Numbers and triggers from which a table indexes them on two threads.
const PARALLEL_INDEX: usize = 50_000;

/// A delta that does not start at this table's version.
#[derive(Debug, thiserror::Error)]
#[error("delta from version {from} does not apply to version {held}")]
pub struct VersionMismatch {
    pub from: i64,
    pub held: i64,
}

/// One of [`EVENT_TYPES`], by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventType(u8);

impl EventType {
    pub fn parse(name: &str) -> Option<Self> {
        EVENT_TYPES
            .iter()
            .position(|e| *e == name)
            .and_then(|i| u8::try_from(i).ok())
            .map(EventType)
    }

    pub fn as_str(self) -> &'static str {
        EVENT_TYPES[usize::from(self.0)]
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub project_id: Uuid,
    pub secret_sha256: [u8; 32],
    pub burst_limit: Option<u32>,
    pub revoked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number {
    pub whatsapp_config_id: i64,
    pub project_id: Uuid,
    /// Meta's id, which is decimal digits.
    pub phone_number_id: u64,
    pub display_phone_number: Box<str>,
    pub is_default: bool,
    pub access_token: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workflow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub active: bool,
    /// The workflow's api_call trigger and whether it is active.
    pub api_trigger: Option<(Uuid, bool)>,
    /// Trigger types the workflow has, active or not (names from the catalog).
    pub trigger_types: Box<[Box<str>]>,
}

/// An active message or event trigger of an active workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub id: Uuid,
    pub workflow_id: Uuid,
    pub project_id: Uuid,
    /// `None` for a message trigger.
    pub event: Option<EventType>,
    pub whatsapp_config_id: Option<i64>,
}

impl Trigger {
    pub fn trigger_type(&self) -> &'static str {
        if self.event.is_some() {
            "whatsapp_event"
        } else {
            "inbound_message"
        }
    }
}

impl Keyed for ApiKey {
    type Key = Uuid;
    fn key(&self) -> Uuid {
        self.id
    }
}

impl Keyed for Number {
    type Key = i64;
    fn key(&self) -> i64 {
        self.whatsapp_config_id
    }
}

impl Keyed for Workflow {
    type Key = Uuid;
    fn key(&self) -> Uuid {
        self.id
    }
}

impl Keyed for Trigger {
    type Key = Uuid;
    fn key(&self) -> Uuid {
        self.id
    }
}

/// Entries by identity, as the control plane sent them (parsed).
#[derive(Clone, Debug, Default)]
struct Sources {
    api_keys: Dense<ApiKey>,
    numbers: Dense<Number>,
    workflows: Dense<Workflow>,
    triggers: Dense<Trigger>,
    /// Entries this build cannot parse, kept so they survive persistence and deltas.
    unparsed: HashMap<String, (pb::RoutingEntry, String)>,
}

/// Secondary keys of the dense collections.
fn meta_id_of(n: &Number) -> u64 {
    n.phone_number_id
}
fn number_of(t: &Trigger) -> Option<i64> {
    t.whatsapp_config_id
}

#[derive(Clone, Debug, Default)]
pub struct RoutingTable {
    version: i64,
    sources: Sources,
    rejected: Vec<pb::RejectedEntry>,
    /// Positions in `sources.api_keys`.
    api_keys_by_hash: HashMap<[u8; 32], u32>,
    /// Numbers by Meta id ([`meta_id_of`]).
    numbers_by_meta_id: Positions,
    default_numbers: HashMap<Uuid, i64>,
    slots: TriggerSlots,
}

/// The slots routed triggers hold: a number's message trigger, an event's trigger on a
/// number, an event's project-wide trigger.
#[derive(Clone, Debug, Default)]
struct TriggerSlots {
    /// Message triggers by number ([`number_of`]).
    message: Positions,
    events: HashMap<(EventType, i64), Uuid>,
    project_events: HashMap<(EventType, Uuid), Uuid>,
}

impl TriggerSlots {
    /// Puts the trigger at `position` in its slot unless that is taken; says whether it was
    /// (a trigger with neither event nor number has no slot: taken too).
    fn claim(&mut self, triggers: &Dense<Trigger>, position: u32) -> bool {
        let tr = triggers.at(position);
        match (tr.event, tr.whatsapp_config_id) {
            (None, Some(_)) => self.message.claim(triggers, position, number_of),
            (Some(event), Some(number)) => claim(&mut self.events, (event, number), tr.id),
            (Some(event), None) => claim(&mut self.project_events, (event, tr.project_id), tr.id),
            (None, None) => true,
        }
    }

    /// Frees the slot of the trigger at `position`, if it holds one.
    fn release(&mut self, triggers: &Dense<Trigger>, position: u32) {
        let tr = triggers.at(position);
        let id = Some(&tr.id);
        match (tr.event, tr.whatsapp_config_id) {
            (None, _) => {
                self.message.forget(triggers, position, number_of);
            }
            (Some(event), Some(number)) => {
                if self.events.get(&(event, number)) == id {
                    self.events.remove(&(event, number));
                }
            }
            (Some(event), None) => {
                if self.project_events.get(&(event, tr.project_id)) == id {
                    self.project_events.remove(&(event, tr.project_id));
                }
            }
        }
    }
}

impl Sources {
    /// Why trigger `tr` cannot route given the workflows and numbers, if it cannot.
    fn refusal(&self, tr: &Trigger) -> Option<&'static str> {
        match self.workflows.get(&tr.workflow_id) {
            Some(w) if w.active && w.project_id == tr.project_id => {}
            Some(_) => return Some("workflow is not active in the trigger's project"),
            None => return Some("unknown workflow"),
        }
        let foreign_number = tr.whatsapp_config_id.is_some_and(|config_id| {
            self.numbers
                .get(&config_id)
                .is_none_or(|n| n.project_id != tr.project_id)
        });
        foreign_number.then_some("number unknown or of another project")
    }
}

/// Meta's `phone_number_id` as a number; only canonical decimal strings qualify, so the
/// text form round-trips exactly.
fn meta_id(value: &str) -> Option<u64> {
    let canonical = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value.len() == 1 || !value.starts_with('0'));
    canonical.then(|| value.parse().ok()).flatten()
}

fn uuid(field: &str, value: &str) -> Result<Uuid, String> {
    Uuid::parse_str(value).map_err(|_| format!("{field} is not a UUID"))
}

fn key_matches(key: &str, prefix: &str, id: &str) -> Result<(), String> {
    if key.strip_prefix(prefix) == Some(id) {
        Ok(())
    } else {
        Err("key does not match the entry's id".to_owned())
    }
}

/// One entry parsed, or refused with the reason; parsing needs nothing but the entry, so
/// the chunks of a snapshot are parsed in parallel and added in order.
#[derive(Debug, PartialEq)]
enum Parsed {
    ApiKey(ApiKey),
    Number(Number),
    Workflow(Workflow),
    Trigger(Trigger),
    Unparsed(Box<(pb::RoutingEntry, String)>),
}

impl Parsed {
    /// The entry's key (for parsed entries, rebuilt from the id).
    fn key(&self) -> String {
        match self {
            Parsed::ApiKey(k) => format!("k:{}", k.id),
            Parsed::Number(n) => format!("n:{}", n.whatsapp_config_id),
            Parsed::Workflow(w) => format!("w:{}", w.id),
            Parsed::Trigger(t) => format!("t:{}", t.id),
            Parsed::Unparsed(u) => u.0.key.clone(),
        }
    }
}

/// Entries of one snapshot chunk, parsed.
#[derive(Debug, Default, PartialEq)]
pub struct ParsedChunk(Vec<Parsed>);

impl ParsedChunk {
    pub fn parse(entries: Vec<pb::RoutingEntry>) -> Self {
        Self(entries.into_iter().map(parse).collect())
    }
}

/// Adds a parsed entry to `sources`, replacing an earlier entry of the same key.
fn insert(sources: &mut Sources, parsed: Parsed) {
    if let Parsed::Unparsed(u) = parsed {
        sources.unparsed.insert(u.0.key.clone(), *u);
        return;
    }
    if !sources.unparsed.is_empty() {
        sources.unparsed.remove(&parsed.key());
    }
    match parsed {
        Parsed::ApiKey(k) => sources.api_keys.insert(k),
        Parsed::Number(n) => sources.numbers.insert(n),
        Parsed::Workflow(w) => sources.workflows.insert(w),
        Parsed::Trigger(t) => sources.triggers.insert(t),
        Parsed::Unparsed(_) => {}
    }
}

/// Parses one entry into its compact form, or keeps it as unparsed with the reason.
fn parse(entry: pb::RoutingEntry) -> Parsed {
    let key = entry.key.as_str();
    let parsed: Result<Parsed, String> = (|| match &entry.entry {
        None => Err("unknown entry kind (newer control plane?)".to_owned()),
        Some(Entry::ApiKey(k)) => {
            key_matches(key, "k:", &k.id)?;
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&k.secret_sha256, &mut hash)
                .map_err(|_| "secret_sha256 is not a SHA-256 in hex".to_owned())?;
            let id = uuid("id", &k.id)?;
            Ok(Parsed::ApiKey(ApiKey {
                id,
                project_id: uuid("project_id", &k.project_id)?,
                secret_sha256: hash,
                burst_limit: k.burst_limit,
                revoked: k.revoked,
            }))
        }
        Some(Entry::Number(n)) => {
            key_matches(key, "n:", &n.whatsapp_config_id.to_string())?;
            let meta_id = meta_id(&n.phone_number_id)
                .ok_or_else(|| "phone_number_id is not a decimal number".to_owned())?;
            Ok(Parsed::Number(Number {
                whatsapp_config_id: n.whatsapp_config_id,
                project_id: uuid("project_id", &n.project_id)?,
                phone_number_id: meta_id,
                display_phone_number: n.display_phone_number.as_str().into(),
                is_default: n.is_default,
                access_token: n.access_token.as_deref().map(Into::into),
            }))
        }
        Some(Entry::Workflow(w)) => {
            key_matches(key, "w:", &w.id)?;
            let active = match w.status.as_str() {
                "active" => true,
                "draft" => false,
                other => return Err(format!("unknown workflow status {other:?}")),
            };
            let api_trigger = match &w.api_trigger_id {
                Some(id) => Some((uuid("api_trigger_id", id)?, w.api_trigger_active)),
                None => None,
            };
            let id = uuid("id", &w.id)?;
            Ok(Parsed::Workflow(Workflow {
                id,
                project_id: uuid("project_id", &w.project_id)?,
                active,
                api_trigger,
                trigger_types: w.trigger_types.iter().map(|t| t.as_str().into()).collect(),
            }))
        }
        Some(Entry::Trigger(t)) => {
            key_matches(key, "t:", &t.id)?;
            let event = match (
                t.r#type.as_str(),
                t.event_type.as_deref(),
                t.whatsapp_config_id,
            ) {
                ("inbound_message", None, Some(_)) => None,
                ("whatsapp_event", Some(name), _) => Some(
                    EventType::parse(name).ok_or_else(|| format!("unknown event type {name:?}"))?,
                ),
                (kind, ..) => return Err(format!("malformed {kind:?} trigger")),
            };
            let id = uuid("id", &t.id)?;
            Ok(Parsed::Trigger(Trigger {
                id,
                workflow_id: uuid("workflow_id", &t.workflow_id)?,
                project_id: uuid("project_id", &t.project_id)?,
                event,
                whatsapp_config_id: t.whatsapp_config_id,
            }))
        }
    })();
    parsed.unwrap_or_else(|reason| Parsed::Unparsed(Box::new((entry, reason))))
}

/// Removes the entry with `key` from `sources`.
fn remove_from(sources: &mut Sources, key: &str) {
    sources.unparsed.remove(key);
    let (kind, id) = key.split_at(key.find(':').map_or(0, |i| i + 1));
    match kind {
        "k:" => Uuid::parse_str(id)
            .ok()
            .and_then(|id| sources.api_keys.remove(&id))
            .map(drop),
        "w:" => Uuid::parse_str(id)
            .ok()
            .and_then(|id| sources.workflows.remove(&id))
            .map(drop),
        "t:" => Uuid::parse_str(id)
            .ok()
            .and_then(|id| sources.triggers.remove(&id))
            .map(drop),
        "n:" => id
            .parse()
            .ok()
            .and_then(|id| sources.numbers.remove(&id))
            .map(drop),
        _ => None,
    };
}

fn rejected_entry(key: String, reason: &str) -> pb::RejectedEntry {
    pb::RejectedEntry {
        key,
        reason: reason.to_owned(),
    }
}

/// Numbers by Meta id and projects' default numbers, and the numbers refused.
fn index_numbers(
    numbers: &Dense<Number>,
) -> (Positions, HashMap<Uuid, i64>, Vec<pb::RejectedEntry>) {
    let mut by_meta_id = Positions::with_capacity(numbers.len());
    let mut defaults = HashMap::default();
    let mut rejected = Vec::new();
    for position in 0..numbers.len() as u32 {
        let n = numbers.at(position);
        let config_id = n.whatsapp_config_id;
        if by_meta_id.claim(numbers, position, meta_id_of) {
            rejected.push(rejected_entry(
                format!("n:{config_id}"),
                "phone_number_id routed twice",
            ));
        } else if n.is_default && claim(&mut defaults, n.project_id, config_id) {
            rejected.push(rejected_entry(
                format!("n:{config_id}"),
                "second default number of the project",
            ));
        }
    }
    (by_meta_id, defaults, rejected)
}

/// The slots of the triggers that route, and the triggers refused.
fn index_triggers(sources: &Sources) -> (TriggerSlots, Vec<pb::RejectedEntry>) {
    let triggers = &sources.triggers;
    let mut slots = TriggerSlots {
        message: Positions::with_capacity(triggers.len()),
        ..Default::default()
    };
    let mut rejected = Vec::new();
    for position in 0..triggers.len() as u32 {
        let tr = triggers.at(position);
        let key = || format!("t:{}", tr.id);
        if let Some(reason) = sources.refusal(tr) {
            rejected.push(rejected_entry(key(), reason));
        } else if slots.claim(triggers, position) {
            rejected.push(rejected_entry(key(), "trigger slot routed twice"));
        }
    }
    (slots, rejected)
}

/// Puts `id` in `slot` unless it is taken; says whether it was.
fn claim<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, slot: K, id: V) -> bool {
    match map.entry(slot) {
        std::collections::hash_map::Entry::Occupied(_) => true,
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(id);
            false
        }
    }
}

/// Incremental construction, so a snapshot can be parsed chunk by chunk as it arrives and
/// the received protobuf messages freed at once.
#[derive(Debug, Default)]
pub struct Builder {
    sources: Sources,
}

impl Builder {
    /// A builder sized for the snapshot's announced entry counts, each capped at `limit`
    /// (the counts are a hint from the control plane; a wrong one only costs growth).
    pub fn with_counts(counts: &pb::EntryCounts, limit: usize) -> Self {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).min(limit);
        Self {
            sources: Sources {
                api_keys: Dense::with_capacity(size(counts.api_keys)),
                numbers: Dense::with_capacity(size(counts.numbers)),
                workflows: Dense::with_capacity(size(counts.workflows)),
                triggers: Dense::with_capacity(size(counts.triggers)),
                unparsed: HashMap::default(),
            },
        }
    }

    pub fn add(&mut self, entries: impl IntoIterator<Item = pb::RoutingEntry>) {
        for entry in entries {
            insert(&mut self.sources, parse(entry));
        }
    }

    /// Adds entries parsed elsewhere (e.g. on another thread), in their order.
    pub fn add_parsed(&mut self, chunk: ParsedChunk) {
        for parsed in chunk.0 {
            insert(&mut self.sources, parsed);
        }
    }

    pub fn build(mut self, version: i64) -> RoutingTable {
        let s = &mut self.sources;
        s.api_keys.shrink_to_fit();
        s.numbers.shrink_to_fit();
        s.workflows.shrink_to_fit();
        s.triggers.shrink_to_fit();
        RoutingTable::index(version, self.sources)
    }
}

impl RoutingTable {
    /// Validates and indexes `entries` at `version`.
    pub fn build(version: i64, entries: impl IntoIterator<Item = pb::RoutingEntry>) -> Self {
        let mut builder = Builder::default();
        builder.add(entries);
        builder.build(version)
    }

    /// The table after `delta`; the current table stays untouched. Patched in place on a
    /// copy when that gives what a rebuild gives (see [`patch`]), else rebuilt.
    pub fn apply(&self, delta: &pb::Delta) -> Result<Self, VersionMismatch> {
        if delta.from_version != self.version {
            return Err(VersionMismatch {
                from: delta.from_version,
                held: self.version,
            });
        }
        Ok(self.patched(delta).unwrap_or_else(|| self.rebuilt(delta)))
    }

    /// The table after `delta`, every index built anew.
    fn rebuilt(&self, delta: &pb::Delta) -> Self {
        let mut sources = self.sources.clone();
        for key in &delta.removals {
            remove_from(&mut sources, key);
        }
        for upsert in &delta.upserts {
            remove_from(&mut sources, &upsert.key);
            insert(&mut sources, parse(upsert.clone()));
        }
        Self::index(delta.to_version, sources)
    }

    /// Checks references between entries and builds the lookup indexes. The catalog's
    /// unique indexes keep duplicates out; should one arrive anyway, one of them is refused.
    fn index(version: i64, sources: Sources) -> Self {
        let large = sources.numbers.len().min(sources.triggers.len()) >= PARALLEL_INDEX;
        Self::index_with(version, sources, large)
    }

    /// Indexes `sources`; numbers and triggers on two threads if `parallel`.
    fn index_with(version: i64, sources: Sources, parallel: bool) -> Self {
        let mut t = RoutingTable {
            version,
            ..Default::default()
        };
        let mut rejected: Vec<pb::RejectedEntry> = sources
            .unparsed
            .iter()
            .map(|(key, (_, reason))| rejected_entry(key.clone(), reason))
            .collect();
        for position in 0..sources.api_keys.len() as u32 {
            let key = sources.api_keys.at(position);
            if claim(&mut t.api_keys_by_hash, key.secret_sha256, position) {
                rejected.push(rejected_entry(
                    format!("k:{}", key.id),
                    "secret hash routed twice",
                ));
            }
        }
        // Numbers and triggers index apart (a trigger's refusal only reads the numbers).
        let ((by_meta_id, default_numbers, refused_numbers), (slots, refused_triggers)) =
            if !parallel {
                (index_numbers(&sources.numbers), index_triggers(&sources))
            } else {
                std::thread::scope(|scope| {
                    let numbers = scope.spawn(|| index_numbers(&sources.numbers));
                    let triggers = index_triggers(&sources);
                    let numbers = numbers
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (numbers, triggers)
                })
            };
        t.numbers_by_meta_id = by_meta_id;
        t.default_numbers = default_numbers;
        t.slots = slots;
        rejected.extend(refused_numbers);
        rejected.extend(refused_triggers);
        rejected.sort_by(|a, b| a.key.cmp(&b.key));
        t.rejected = rejected;
        t.sources = sources;
        t
    }

    /// Every entry in protobuf form (for persistence).
    pub fn to_entries(&self) -> impl Iterator<Item = pb::RoutingEntry> + '_ {
        let s = &self.sources;
        let entry = |key: String, e: Entry| pb::RoutingEntry {
            key,
            entry: Some(e),
        };
        let keys = s.api_keys.iter().map(move |k| {
            entry(
                format!("k:{}", k.id),
                Entry::ApiKey(pb::ApiKeyRoute {
                    id: k.id.to_string(),
                    project_id: k.project_id.to_string(),
                    secret_sha256: hex::encode(k.secret_sha256),
                    burst_limit: k.burst_limit,
                    revoked: k.revoked,
                }),
            )
        });
        let numbers = s.numbers.iter().map(move |n| {
            entry(
                format!("n:{}", n.whatsapp_config_id),
                Entry::Number(pb::NumberRoute {
                    whatsapp_config_id: n.whatsapp_config_id,
                    project_id: n.project_id.to_string(),
                    phone_number_id: n.phone_number_id.to_string(),
                    display_phone_number: n.display_phone_number.to_string(),
                    is_default: n.is_default,
                    access_token: n.access_token.as_deref().map(str::to_owned),
                }),
            )
        });
        let workflows = s.workflows.iter().map(move |w| {
            entry(
                format!("w:{}", w.id),
                Entry::Workflow(pb::WorkflowRoute {
                    id: w.id.to_string(),
                    project_id: w.project_id.to_string(),
                    status: if w.active { "active" } else { "draft" }.to_owned(),
                    api_trigger_id: w.api_trigger.map(|(id, _)| id.to_string()),
                    api_trigger_active: w.api_trigger.is_some_and(|(_, active)| active),
                    trigger_types: w.trigger_types.iter().map(|t| t.to_string()).collect(),
                }),
            )
        });
        let triggers = s.triggers.iter().map(move |t| {
            entry(
                format!("t:{}", t.id),
                Entry::Trigger(pb::TriggerRoute {
                    id: t.id.to_string(),
                    workflow_id: t.workflow_id.to_string(),
                    project_id: t.project_id.to_string(),
                    r#type: t.trigger_type().to_owned(),
                    whatsapp_config_id: t.whatsapp_config_id,
                    event_type: t.event.map(|e| e.as_str().to_owned()),
                }),
            )
        });
        let unparsed = s.unparsed.values().map(|(e, _)| e.clone());
        keys.chain(numbers)
            .chain(workflows)
            .chain(triggers)
            .chain(unparsed)
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    /// Entries this table refused, with reasons (reported to the control plane in a NACK).
    pub fn rejected(&self) -> &[pb::RejectedEntry] {
        &self.rejected
    }

    /// The API key whose secret hashes to `sha256` (hex digest of the presented key).
    pub fn api_key(&self, sha256_hex: &str) -> Option<&ApiKey> {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(sha256_hex, &mut hash).ok()?;
        self.api_key_by_hash(&hash)
    }

    /// The API key whose secret hashes to `hash`.
    pub fn api_key_by_hash(&self, hash: &[u8; 32]) -> Option<&ApiKey> {
        self.api_keys_by_hash
            .get(hash)
            .map(|&p| self.sources.api_keys.at(p))
    }

    /// The number with Meta id `phone_number_id`.
    pub fn number(&self, phone_number_id: &str) -> Option<&Number> {
        self.numbers_by_meta_id.get(
            &self.sources.numbers,
            &meta_id(phone_number_id)?,
            meta_id_of,
        )
    }

    pub fn number_by_config_id(&self, config_id: i64) -> Option<&Number> {
        self.sources.numbers.get(&config_id)
    }

    pub fn default_number(&self, project_id: &Uuid) -> Option<&Number> {
        self.default_numbers
            .get(project_id)
            .and_then(|id| self.number_by_config_id(*id))
    }

    pub fn workflow(&self, workflow_id: &Uuid) -> Option<&Workflow> {
        self.sources.workflows.get(workflow_id)
    }

    /// The active message trigger of a number.
    pub fn message_trigger(&self, config_id: i64) -> Option<&Trigger> {
        self.slots
            .message
            .get(&self.sources.triggers, &Some(config_id), number_of)
    }

    /// The event trigger for `event` on a number: its own, else its project's.
    pub fn event_trigger(&self, event: EventType, number: &Number) -> Option<&Trigger> {
        let slots = &self.slots;
        slots
            .events
            .get(&(event, number.whatsapp_config_id))
            .or_else(|| slots.project_events.get(&(event, number.project_id)))
            .and_then(|id| self.sources.triggers.get(id))
    }

    /// Ids of every trigger that routes (for diagnostics and tests).
    pub fn routed_trigger_ids(&self) -> HashSet<Uuid> {
        let triggers = &self.sources.triggers;
        let slots = &self.slots;
        slots
            .message
            .positions()
            .map(|p| triggers.at(p).id)
            .chain(slots.events.values().copied())
            .chain(slots.project_events.values().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "01a214e0-0000-7000-8000-00000000000a";
    const W: &str = "01a214e0-0000-7000-8000-00000000000b";
    const M: &str = "01a214e0-0000-7000-8000-00000000000c";
    const E: &str = "01a214e0-0000-7000-8000-00000000000d";

    fn e(key: &str, entry: Entry) -> pb::RoutingEntry {
        pb::RoutingEntry {
            key: key.to_owned(),
            entry: Some(entry),
        }
    }

    fn sample() -> Vec<pb::RoutingEntry> {
        vec![
            e(
                "n:1",
                Entry::Number(pb::NumberRoute {
                    whatsapp_config_id: 1,
                    project_id: P.into(),
                    phone_number_id: "111".into(),
                    is_default: true,
                    ..Default::default()
                }),
            ),
            e(
                &format!("w:{W}"),
                Entry::Workflow(pb::WorkflowRoute {
                    id: W.into(),
                    project_id: P.into(),
                    status: "active".into(),
                    ..Default::default()
                }),
            ),
            e(
                &format!("t:{M}"),
                Entry::Trigger(pb::TriggerRoute {
                    id: M.into(),
                    workflow_id: W.into(),
                    project_id: P.into(),
                    r#type: "inbound_message".into(),
                    whatsapp_config_id: Some(1),
                    event_type: None,
                }),
            ),
            e(
                &format!("t:{E}"),
                Entry::Trigger(pb::TriggerRoute {
                    id: E.into(),
                    workflow_id: W.into(),
                    project_id: P.into(),
                    r#type: "whatsapp_event".into(),
                    whatsapp_config_id: None,
                    event_type: Some("whatsapp.message.read".into()),
                }),
            ),
        ]
    }

    fn id(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap_or_default()
    }

    #[test]
    fn lookups_find_numbers_triggers_and_project_wide_events() {
        let t = RoutingTable::build(5, sample());
        assert!(t.rejected().is_empty(), "{:?}", t.rejected());
        let n = t.number("111").cloned().unwrap_or_else(|| panic!("number"));
        assert!(t.number("0111").is_none() && t.number("+111").is_none());
        assert_eq!(
            t.message_trigger(n.whatsapp_config_id).map(|t| t.id),
            Some(id(M))
        );
        let read = EventType::parse("whatsapp.message.read").unwrap_or_else(|| panic!("event"));
        let sent = EventType::parse("whatsapp.message.sent").unwrap_or_else(|| panic!("event"));
        assert_eq!(t.event_trigger(read, &n).map(|t| t.id), Some(id(E)));
        assert!(t.event_trigger(sent, &n).is_none());
        assert_eq!(
            t.default_number(&id(P)).map(|n| n.phone_number_id),
            Some(111)
        );
    }

    #[test]
    fn invalid_entries_are_refused_and_the_rest_applies() {
        let bad = "01a214e0-0000-7000-8000-0000000000ff";
        let mut entries = sample();
        entries.push(e(
            &format!("t:{bad}"),
            Entry::Trigger(pb::TriggerRoute {
                id: bad.into(),
                workflow_id: W.into(),
                project_id: P.into(),
                r#type: "whatsapp_event".into(),
                whatsapp_config_id: Some(1),
                event_type: Some("whatsapp.message.bogus".into()),
            }),
        ));
        entries.push(pb::RoutingEntry {
            key: "x:1".into(),
            entry: None,
        });
        let t = RoutingTable::build(6, entries);
        let keys: Vec<&str> = t.rejected().iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, [format!("t:{bad}").as_str(), "x:1"]);
        assert!(t.message_trigger(1).is_some());
        // Refused entries are kept, so persistence writes them back.
        assert_eq!(t.to_entries().count(), 6);
    }

    #[test]
    fn deltas_apply_only_to_their_base_version() {
        let t = RoutingTable::build(5, sample());
        let delta = pb::Delta {
            from_version: 5,
            to_version: 6,
            upserts: vec![],
            removals: vec![format!("t:{M}")],
        };
        let next = t.apply(&delta).unwrap_or_default();
        assert_eq!(next.version(), 6);
        assert!(next.message_trigger(1).is_none());
        assert!(t.message_trigger(1).is_some(), "the old table is untouched");
        assert!(next.apply(&delta).is_err());
    }

    #[test]
    fn announced_counts_only_size_the_table() {
        // Too small, absurdly large (capped), and right: the same table every time.
        let hints = [
            pb::EntryCounts::default(),
            pb::EntryCounts {
                api_keys: u64::MAX,
                numbers: u64::MAX,
                workflows: u64::MAX,
                triggers: u64::MAX,
            },
            pb::EntryCounts {
                api_keys: 1,
                numbers: 1,
                workflows: 1,
                triggers: 2,
            },
        ];
        let expected: Vec<pb::RoutingEntry> =
            RoutingTable::build(5, sample()).to_entries().collect();
        for hint in hints {
            let mut builder = Builder::with_counts(&hint, 1000);
            builder.add_parsed(ParsedChunk::parse(sample()));
            let t = builder.build(5);
            assert!(t.rejected().is_empty(), "{:?}", t.rejected());
            assert_eq!(t.to_entries().collect::<Vec<_>>(), expected);
            assert!(t.sources.triggers.capacity() <= 1000);
        }
    }

    #[test]
    fn entries_round_trip_through_the_compact_form() {
        let t = RoutingTable::build(5, sample());
        let mut back: Vec<pb::RoutingEntry> = t.to_entries().collect();
        let mut original = sample();
        back.sort_by(|a, b| a.key.cmp(&b.key));
        original.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(back, original);
    }
}
