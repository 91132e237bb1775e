//! The immutable in-memory routing table of a data plane (DESIGN §4): every lookup the hot
//! path makes is a hash lookup here. Built off the hot path from the entries the control
//! plane sent, validated entry by entry (refused entries are reported, the valid rest is
//! indexed), then swapped in whole (`slot`).
//!
//! This file holds the table and its lookups. Beside it: the entries in their compact form
//! and their parsing (`entry`), the checks and indexes built over them (`index`), the dense
//! storage of the large collections (`dense`: a million numbers and a million triggers
//! take about 250 MB). Two optimisations of that plain path, each with a test that it gives
//! what the plain path gives: `decode` reads snapshot chunks straight into parsed entries
//! (instead of prost + `entry::parse`), and `patch` applies a delta to a copy entry by
//! entry (instead of rebuilding every index).

mod decode;
mod dense;
mod entry;
mod index;
mod patch;

pub use entry::{ApiKey, MetaId, Number, ParsedChunk, Trigger, Workflow};
pub use index::Builder;
pub use switchboard_proto::wire::EventType;

use dense::Positions;
use entry::{HashMap, Sources, meta_id_of, number_of};
use index::TriggerSlots;
use std::collections::HashSet;
use switchboard_proto::v1 as pb;
use uuid::Uuid;

/// A delta that does not start at this table's version.
#[derive(Debug, thiserror::Error)]
#[error("delta from version {from} does not apply to version {held}")]
pub struct VersionMismatch {
    pub from: i64,
    pub held: i64,
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

/// Lookups.
impl RoutingTable {
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
            &MetaId::parse(phone_number_id)?,
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

/// Building and changing (never in place: the new table replaces the old one whole).
impl RoutingTable {
    /// Validates and indexes `entries` at `version`.
    pub fn build(version: i64, entries: impl IntoIterator<Item = pb::RoutingEntry>) -> Self {
        let mut builder = Builder::default();
        builder.add(entries);
        builder.build(version)
    }

    /// The table after `delta`; the current table stays untouched. Patched in place on a
    /// copy when that gives what a rebuild gives (the [`patch`] optimisation), else rebuilt.
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
            sources.remove(key);
        }
        for upsert in &delta.upserts {
            sources.remove(&upsert.key);
            sources.insert(entry::parse(upsert.clone()));
        }
        Self::index(delta.to_version, sources)
    }

    /// Every entry in protobuf form (for persistence).
    pub fn to_entries(&self) -> impl Iterator<Item = pb::RoutingEntry> + '_ {
        self.sources.to_entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_proto::v1::routing_entry::Entry;

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
            MetaId::parse("111")
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
