//! The checks and indexes of a table: which entries route, and the hash indexes the
//! lookups read. The catalog's unique indexes keep duplicates and dangling references out;
//! should one arrive anyway, the entry is refused (reported in a NACK) and the rest routes.

use super::dense::{Dense, Positions};
use super::entry::{self, HashMap, Number, ParsedChunk, Sources, Trigger, meta_id_of, number_of};
use super::{EventType, RoutingTable};
use switchboard_proto::v1 as pb;
use switchboard_proto::wire::EntryKey;
use uuid::Uuid;

/// Numbers and triggers from which a table indexes them on two threads.
const PARALLEL_INDEX: usize = 50_000;

/// The slots routed triggers hold: a number's message trigger, an event's trigger on a
/// number, an event's project-wide trigger.
#[derive(Clone, Debug, Default)]
pub(super) struct TriggerSlots {
    /// Message triggers by number ([`number_of`]).
    pub(super) message: Positions,
    pub(super) events: HashMap<(EventType, i64), Uuid>,
    pub(super) project_events: HashMap<(EventType, Uuid), Uuid>,
}

impl TriggerSlots {
    /// Puts the trigger at `position` in its slot unless that is taken; says whether it was
    /// (a trigger with neither event nor number has no slot: taken too).
    pub(super) fn claim(&mut self, triggers: &Dense<Trigger>, position: u32) -> bool {
        let tr = triggers.at(position);
        match (tr.event, tr.whatsapp_config_id) {
            (None, Some(_)) => self.message.claim(triggers, position, number_of),
            (Some(event), Some(number)) => claim(&mut self.events, (event, number), tr.id),
            (Some(event), None) => claim(&mut self.project_events, (event, tr.project_id), tr.id),
            (None, None) => true,
        }
    }

    /// Frees the slot of the trigger at `position`, if it holds one.
    pub(super) fn release(&mut self, triggers: &Dense<Trigger>, position: u32) {
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
    pub(super) fn refusal(&self, tr: &Trigger) -> Option<&'static str> {
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
                EntryKey::Number(config_id).to_key(),
                "phone_number_id routed twice",
            ));
        } else if n.is_default && claim(&mut defaults, n.project_id, config_id) {
            rejected.push(rejected_entry(
                EntryKey::Number(config_id).to_key(),
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
        let key = || EntryKey::Trigger(&tr.id.to_string()).to_key();
        if let Some(reason) = sources.refusal(tr) {
            rejected.push(rejected_entry(key(), reason));
        } else if slots.claim(triggers, position) {
            rejected.push(rejected_entry(key(), "trigger slot routed twice"));
        }
    }
    (slots, rejected)
}

/// Puts `id` in `slot` unless it is taken; says whether it was.
pub(super) fn claim<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, slot: K, id: V) -> bool {
    match map.entry(slot) {
        std::collections::hash_map::Entry::Occupied(_) => true,
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(id);
            false
        }
    }
}

impl RoutingTable {
    /// Checks references between entries and builds the lookup indexes. The catalog's
    /// unique indexes keep duplicates out; should one arrive anyway, one of them is refused.
    pub(super) fn index(version: i64, sources: Sources) -> Self {
        let large = sources.numbers.len().min(sources.triggers.len()) >= PARALLEL_INDEX;
        Self::index_with(version, sources, large)
    }

    /// Indexes `sources`; numbers and triggers on two threads if `parallel`.
    pub(super) fn index_with(version: i64, sources: Sources, parallel: bool) -> Self {
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
                    EntryKey::ApiKey(&key.id.to_string()).to_key(),
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
}

/// Incremental construction, so a snapshot can be parsed chunk by chunk as it arrives and
/// the received protobuf messages freed at once.
#[derive(Debug, Default)]
pub struct Builder {
    pub(super) sources: Sources,
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
            self.sources.insert(entry::parse(entry));
        }
    }

    /// Adds entries parsed elsewhere (e.g. on another thread), in their order.
    pub fn add_parsed(&mut self, chunk: ParsedChunk) {
        for parsed in chunk.0 {
            self.sources.insert(parsed);
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
