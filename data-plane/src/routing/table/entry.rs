//! The table's entries in their compact form (UUIDs as 128-bit values, Meta ids as
//! integers, types as small enums) rather than as received protobuf messages: parsed from
//! the control plane's entries one by one (`parse`), and turned back into them for
//! persistence (`to_entry`). An entry this build cannot parse is kept as it came, with the
//! reason, so it survives persistence and deltas.

use super::dense::{Dense, Keyed};
use std::fmt;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::routing_entry::Entry;
use switchboard_proto::wire::{self, EntryKey, EventType, TriggerType};
use uuid::Uuid;

/// Hash maps of the table's small indexes (see [`super::dense::Hasher`]).
pub(super) type HashMap<K, V> = std::collections::HashMap<K, V, super::dense::Hasher>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub project_id: Uuid,
    pub secret_sha256: [u8; 32],
    pub burst_limit: Option<u32>,
    pub revoked: bool,
}

/// Meta's `phone_number_id` (see [`wire::is_phone_number_id`]), held as the value of its
/// digits and their count: the id is text, so `0123` and `123` are two numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MetaId(u128);

impl MetaId {
    pub fn parse(text: &str) -> Option<Self> {
        if !wire::is_phone_number_id(text) {
            return None;
        }
        // At most 20 digits: the value takes under 67 bits, the count 5.
        let value: u128 = text.parse().ok()?;
        Some(Self(value << 8 | text.len() as u128))
    }
}

impl fmt::Display for MetaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = (self.0 & 0xff) as usize;
        write!(f, "{:0digits$}", self.0 >> 8)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number {
    pub whatsapp_config_id: i64,
    pub project_id: Uuid,
    pub phone_number_id: MetaId,
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
    /// Trigger types the workflow has, active or not (a type this build does not know is
    /// left out: it could not start it anyway).
    pub trigger_types: Box<[TriggerType]>,
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
    pub fn trigger_type(&self) -> TriggerType {
        if self.event.is_some() {
            TriggerType::WhatsappEvent
        } else {
            TriggerType::InboundMessage
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

/// Secondary keys of the dense collections.
pub(super) fn meta_id_of(n: &Number) -> MetaId {
    n.phone_number_id
}
pub(super) fn number_of(t: &Trigger) -> Option<i64> {
    t.whatsapp_config_id
}

/// Entries by identity, as the control plane sent them (parsed).
#[derive(Clone, Debug, Default)]
pub(super) struct Sources {
    pub(super) api_keys: Dense<ApiKey>,
    pub(super) numbers: Dense<Number>,
    pub(super) workflows: Dense<Workflow>,
    pub(super) triggers: Dense<Trigger>,
    /// Entries this build cannot parse, kept so they survive persistence and deltas.
    pub(super) unparsed: HashMap<String, (pb::RoutingEntry, String)>,
}

/// One entry parsed, or refused with the reason; parsing needs nothing but the entry, so
/// the chunks of a snapshot are parsed in parallel and added in order.
#[derive(Debug, PartialEq)]
pub(super) enum Parsed {
    ApiKey(ApiKey),
    Number(Number),
    Workflow(Workflow),
    Trigger(Trigger),
    Unparsed(Box<(pb::RoutingEntry, String)>),
}

impl Parsed {
    /// The entry's key (for parsed entries, rebuilt from the id).
    pub(super) fn key(&self) -> String {
        match self {
            Parsed::ApiKey(k) => EntryKey::ApiKey(&k.id.to_string()).to_key(),
            Parsed::Number(n) => EntryKey::Number(n.whatsapp_config_id).to_key(),
            Parsed::Workflow(w) => EntryKey::Workflow(&w.id.to_string()).to_key(),
            Parsed::Trigger(t) => EntryKey::Trigger(&t.id.to_string()).to_key(),
            Parsed::Unparsed(u) => u.0.key.clone(),
        }
    }
}

/// Entries of one snapshot chunk, parsed.
#[derive(Debug, Default, PartialEq)]
pub struct ParsedChunk(pub(super) Vec<Parsed>);

impl ParsedChunk {
    pub fn parse(entries: Vec<pb::RoutingEntry>) -> Self {
        Self(entries.into_iter().map(parse).collect())
    }
}

fn uuid(field: &str, value: &str) -> Result<Uuid, String> {
    Uuid::parse_str(value).map_err(|_| format!("{field} is not a UUID"))
}

/// `Ok` when `key` is the key of an entry of this kind and id.
fn key_matches(key: &str, expected: EntryKey<'_>) -> Result<(), String> {
    if EntryKey::parse(key) == Some(expected) {
        Ok(())
    } else {
        Err("key does not match the entry's id".to_owned())
    }
}

/// A `TriggerRoute`'s event: `None` for a message trigger, or why it is malformed.
pub(super) fn trigger_event(
    kind: Option<TriggerType>,
    event_type: Option<&str>,
    whatsapp_config_id: Option<i64>,
) -> Result<Option<EventType>, String> {
    match (kind, event_type, whatsapp_config_id) {
        (Some(TriggerType::InboundMessage), None, Some(_)) => Ok(None),
        (Some(TriggerType::WhatsappEvent), Some(name), _) => EventType::parse(name)
            .map(Some)
            .ok_or_else(|| format!("unknown event type {name:?}")),
        (kind, ..) => Err(format!(
            "malformed {:?} trigger",
            kind.map_or("unknown", TriggerType::as_str)
        )),
    }
}

/// Parses one entry into its compact form, or keeps it as unparsed with the reason.
pub(super) fn parse(entry: pb::RoutingEntry) -> Parsed {
    let key = entry.key.as_str();
    let parsed: Result<Parsed, String> = (|| match &entry.entry {
        None => Err("unknown entry kind (newer control plane?)".to_owned()),
        Some(Entry::ApiKey(k)) => {
            key_matches(key, EntryKey::ApiKey(&k.id))?;
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
            key_matches(key, EntryKey::Number(n.whatsapp_config_id))?;
            let meta_id = MetaId::parse(&n.phone_number_id).ok_or_else(|| {
                format!(
                    "phone_number_id is not 1-{} digits",
                    wire::PHONE_NUMBER_ID_MAX_DIGITS
                )
            })?;
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
            key_matches(key, EntryKey::Workflow(&w.id))?;
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
                trigger_types: w
                    .trigger_types
                    .iter()
                    .filter_map(|t| TriggerType::parse(t))
                    .collect(),
            }))
        }
        Some(Entry::Trigger(t)) => {
            key_matches(key, EntryKey::Trigger(&t.id))?;
            let event = trigger_event(
                TriggerType::parse(&t.r#type),
                t.event_type.as_deref(),
                t.whatsapp_config_id,
            )?;
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

impl Sources {
    /// Adds a parsed entry, replacing an earlier entry of the same key.
    pub(super) fn insert(&mut self, parsed: Parsed) {
        if let Parsed::Unparsed(u) = parsed {
            self.unparsed.insert(u.0.key.clone(), *u);
            return;
        }
        if !self.unparsed.is_empty() {
            self.unparsed.remove(&parsed.key());
        }
        match parsed {
            Parsed::ApiKey(k) => self.api_keys.insert(k),
            Parsed::Number(n) => self.numbers.insert(n),
            Parsed::Workflow(w) => self.workflows.insert(w),
            Parsed::Trigger(t) => self.triggers.insert(t),
            Parsed::Unparsed(_) => {}
        }
    }

    /// Removes the entry with `key`.
    pub(super) fn remove(&mut self, key: &str) {
        self.unparsed.remove(key);
        let uuid = |id: &str| Uuid::parse_str(id).ok();
        match EntryKey::parse(key) {
            Some(EntryKey::ApiKey(id)) => {
                uuid(id).and_then(|id| self.api_keys.remove(&id)).map(drop)
            }
            Some(EntryKey::Workflow(id)) => {
                uuid(id).and_then(|id| self.workflows.remove(&id)).map(drop)
            }
            Some(EntryKey::Trigger(id)) => {
                uuid(id).and_then(|id| self.triggers.remove(&id)).map(drop)
            }
            Some(EntryKey::Number(id)) => self.numbers.remove(&id).map(drop),
            None => None,
        };
    }

    /// Every entry in protobuf form (for persistence).
    pub(super) fn to_entries(&self) -> impl Iterator<Item = pb::RoutingEntry> + '_ {
        let entry = |key: String, e: Entry| pb::RoutingEntry {
            key,
            entry: Some(e),
        };
        let keys = self.api_keys.iter().map(move |k| {
            let id = k.id.to_string();
            entry(
                EntryKey::ApiKey(&id).to_key(),
                Entry::ApiKey(pb::ApiKeyRoute {
                    project_id: k.project_id.to_string(),
                    secret_sha256: hex::encode(k.secret_sha256),
                    burst_limit: k.burst_limit,
                    revoked: k.revoked,
                    id,
                }),
            )
        });
        let numbers = self.numbers.iter().map(move |n| {
            entry(
                EntryKey::Number(n.whatsapp_config_id).to_key(),
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
        let workflows = self.workflows.iter().map(move |w| {
            let id = w.id.to_string();
            entry(
                EntryKey::Workflow(&id).to_key(),
                Entry::Workflow(pb::WorkflowRoute {
                    project_id: w.project_id.to_string(),
                    status: if w.active { "active" } else { "draft" }.to_owned(),
                    api_trigger_id: w.api_trigger.map(|(id, _)| id.to_string()),
                    api_trigger_active: w.api_trigger.is_some_and(|(_, active)| active),
                    trigger_types: w
                        .trigger_types
                        .iter()
                        .map(|t| t.as_str().to_owned())
                        .collect(),
                    id,
                }),
            )
        });
        let triggers = self.triggers.iter().map(move |t| {
            let id = t.id.to_string();
            entry(
                EntryKey::Trigger(&id).to_key(),
                Entry::Trigger(pb::TriggerRoute {
                    workflow_id: t.workflow_id.to_string(),
                    project_id: t.project_id.to_string(),
                    r#type: t.trigger_type().as_str().to_owned(),
                    whatsapp_config_id: t.whatsapp_config_id,
                    event_type: t.event.map(|e| e.as_str().to_owned()),
                    id,
                }),
            )
        });
        let unparsed = self.unparsed.values().map(|(e, _)| e.clone());
        keys.chain(numbers)
            .chain(workflows)
            .chain(triggers)
            .chain(unparsed)
    }
}

#[cfg(test)]
mod tests {
    use super::MetaId;

    #[test]
    fn meta_ids_keep_their_text() {
        for text in [
            "1",
            "0",
            "0106540352242922",
            "106540352242922",
            "00000000000000000001",
        ] {
            let id = MetaId::parse(text).unwrap_or_else(|| panic!("{text} refused"));
            assert_eq!(id.to_string(), text);
        }
        let max = "9".repeat(20);
        assert_eq!(MetaId::parse(&max).map(|id| id.to_string()), Some(max));
        assert_ne!(MetaId::parse("0111"), MetaId::parse("111"));
        for bad in ["", "+111", "11a", &"1".repeat(21)] {
            assert_eq!(MetaId::parse(bad), None, "{bad:?}");
        }
    }
}
