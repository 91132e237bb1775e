//! The immutable in-memory routing table of a data plane (DESIGN §4). Built off the hot path
//! from the entries the control plane sent, validated entry by entry (refused entries are
//! reported, the valid rest is indexed), then swapped in whole. Every lookup is a hash
//! lookup.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::routing_entry::Entry;

use switchboard_proto::EVENT_TYPES;

/// Entries as the control plane sent them, by key (including refused ones, so a later
/// delta that completes them can be accepted). Indexes share the same allocations.
pub type Entries = HashMap<Arc<str>, Arc<pb::RoutingEntry>>;

/// Turns received entries into [`Entries`].
pub fn entries(received: impl IntoIterator<Item = pb::RoutingEntry>) -> Entries {
    received
        .into_iter()
        .map(|e| (Arc::from(e.key.as_str()), Arc::new(e)))
        .collect()
}

/// A delta that does not start at this table's version.
#[derive(Debug, thiserror::Error)]
#[error("delta from version {from} does not apply to version {held}")]
pub struct VersionMismatch {
    pub from: i64,
    pub held: i64,
}

type Shared = Arc<pb::RoutingEntry>;

#[derive(Debug, Default)]
pub struct RoutingTable {
    version: i64,
    entries: Entries,
    rejected: Vec<pb::RejectedEntry>,
    api_keys: HashMap<String, Shared>,
    numbers: HashMap<String, Shared>,
    number_ids: HashMap<i64, Shared>,
    default_numbers: HashMap<String, Shared>,
    workflows: HashMap<String, Shared>,
    message_triggers: HashMap<i64, Shared>,
    event_triggers: HashMap<String, HashMap<i64, Shared>>,
    project_event_triggers: HashMap<String, HashMap<String, Shared>>,
}

fn reject(rejected: &mut Vec<pb::RejectedEntry>, key: &str, reason: impl Into<String>) {
    rejected.push(pb::RejectedEntry {
        key: key.to_owned(),
        reason: reason.into(),
    });
}

fn api_key(e: &pb::RoutingEntry) -> Option<&pb::ApiKeyRoute> {
    match &e.entry {
        Some(Entry::ApiKey(k)) => Some(k),
        _ => None,
    }
}

fn number(e: &pb::RoutingEntry) -> Option<&pb::NumberRoute> {
    match &e.entry {
        Some(Entry::Number(n)) => Some(n),
        _ => None,
    }
}

fn workflow(e: &pb::RoutingEntry) -> Option<&pb::WorkflowRoute> {
    match &e.entry {
        Some(Entry::Workflow(w)) => Some(w),
        _ => None,
    }
}

fn trigger(e: &pb::RoutingEntry) -> Option<&pb::TriggerRoute> {
    match &e.entry {
        Some(Entry::Trigger(t)) => Some(t),
        _ => None,
    }
}

impl RoutingTable {
    /// Validates and indexes `entries` at `version`. The catalog's unique indexes keep
    /// duplicates out; should one arrive anyway, the entry met second is refused.
    pub fn build(version: i64, entries: Entries) -> Self {
        let mut t = RoutingTable {
            version,
            ..Default::default()
        };
        // Triggers refer to workflows and numbers, so they come in a second pass.
        for (key, entry) in &entries {
            match &entry.entry {
                None => reject(
                    &mut t.rejected,
                    key,
                    "unknown entry kind (newer control plane?)",
                ),
                Some(Entry::ApiKey(k)) => t.add_api_key(key, k, entry),
                Some(Entry::Number(n)) => t.add_number(key, n, entry),
                Some(Entry::Workflow(w)) => t.add_workflow(key, w, entry),
                Some(Entry::Trigger(_)) => {}
            }
        }
        for (key, entry) in &entries {
            if let Some(Entry::Trigger(tr)) = &entry.entry {
                t.add_trigger(key, tr, entry);
            }
        }
        t.rejected.sort_by(|a, b| a.key.cmp(&b.key));
        t.entries = entries;
        t
    }

    /// The table after `delta`, built anew; the current table stays untouched.
    pub fn apply(&self, delta: &pb::Delta) -> Result<Self, VersionMismatch> {
        if delta.from_version != self.version {
            return Err(VersionMismatch {
                from: delta.from_version,
                held: self.version,
            });
        }
        let mut entries = self.entries.clone();
        for key in &delta.removals {
            entries.remove(key.as_str());
        }
        for upsert in &delta.upserts {
            entries.insert(Arc::from(upsert.key.as_str()), Arc::new(upsert.clone()));
        }
        Ok(Self::build(delta.to_version, entries))
    }

    fn add_api_key(&mut self, key: &str, k: &pb::ApiKeyRoute, e: &Shared) {
        if key.strip_prefix("k:") != Some(k.id.as_str()) {
            return reject(&mut self.rejected, key, "key does not match the API key id");
        }
        let hash = k.secret_sha256.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return reject(
                &mut self.rejected,
                key,
                "secret_sha256 is not a SHA-256 in hex",
            );
        }
        self.api_keys.insert(hash, e.clone());
    }

    fn add_number(&mut self, key: &str, n: &pb::NumberRoute, e: &Shared) {
        if key.strip_prefix("n:") != Some(n.whatsapp_config_id.to_string().as_str()) {
            return reject(&mut self.rejected, key, "key does not match the config id");
        }
        if n.phone_number_id.is_empty() || !n.phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
            return reject(&mut self.rejected, key, "phone_number_id is not digits");
        }
        if self.numbers.contains_key(&n.phone_number_id) {
            return reject(&mut self.rejected, key, "phone_number_id routed twice");
        }
        if n.is_default {
            if self.default_numbers.contains_key(&n.project_id) {
                return reject(
                    &mut self.rejected,
                    key,
                    "second default number of the project",
                );
            }
            self.default_numbers.insert(n.project_id.clone(), e.clone());
        }
        self.number_ids.insert(n.whatsapp_config_id, e.clone());
        self.numbers.insert(n.phone_number_id.clone(), e.clone());
    }

    fn add_workflow(&mut self, key: &str, w: &pb::WorkflowRoute, e: &Shared) {
        if key.strip_prefix("w:") != Some(w.id.as_str()) {
            return reject(
                &mut self.rejected,
                key,
                "key does not match the workflow id",
            );
        }
        if w.status != "active" && w.status != "draft" {
            return reject(
                &mut self.rejected,
                key,
                format!("unknown workflow status {:?}", w.status),
            );
        }
        self.workflows.insert(w.id.clone(), e.clone());
    }

    fn add_trigger(&mut self, key: &str, t: &pb::TriggerRoute, e: &Shared) {
        if key.strip_prefix("t:") != Some(t.id.as_str()) {
            return reject(&mut self.rejected, key, "key does not match the trigger id");
        }
        match self.workflow(&t.workflow_id) {
            Some(w) if w.status == "active" && w.project_id == t.project_id => {}
            Some(_) => {
                return reject(
                    &mut self.rejected,
                    key,
                    "workflow is not active in the trigger's project",
                );
            }
            None => return reject(&mut self.rejected, key, "unknown workflow"),
        }
        if let Some(config_id) = t.whatsapp_config_id {
            let owned = self
                .number_by_config_id(config_id)
                .is_some_and(|n| n.project_id == t.project_id);
            if !owned {
                return reject(
                    &mut self.rejected,
                    key,
                    "number unknown or of another project",
                );
            }
        }
        match (
            t.r#type.as_str(),
            t.whatsapp_config_id,
            t.event_type.as_deref(),
        ) {
            ("inbound_message", Some(config_id), None) => {
                if self.message_triggers.contains_key(&config_id) {
                    return reject(
                        &mut self.rejected,
                        key,
                        "number already has a message trigger",
                    );
                }
                self.message_triggers.insert(config_id, e.clone());
            }
            ("whatsapp_event", number, Some(event)) => {
                if !EVENT_TYPES.contains(&event) {
                    return reject(
                        &mut self.rejected,
                        key,
                        format!("unknown event type {event:?}"),
                    );
                }
                let taken = match number {
                    Some(config_id) => self
                        .event_triggers
                        .get(event)
                        .is_some_and(|m| m.contains_key(&config_id)),
                    None => self
                        .project_event_triggers
                        .get(event)
                        .is_some_and(|m| m.contains_key(&t.project_id)),
                };
                if taken {
                    return reject(&mut self.rejected, key, "event slot already taken");
                }
                match number {
                    Some(config_id) => self
                        .event_triggers
                        .entry(event.to_owned())
                        .or_default()
                        .insert(config_id, e.clone()),
                    None => self
                        .project_event_triggers
                        .entry(event.to_owned())
                        .or_default()
                        .insert(t.project_id.clone(), e.clone()),
                };
            }
            (kind, ..) => reject(
                &mut self.rejected,
                key,
                format!("malformed {kind:?} trigger"),
            ),
        }
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn entries(&self) -> &Entries {
        &self.entries
    }

    /// Entries this table refused, with reasons (reported to the control plane in a NACK).
    pub fn rejected(&self) -> &[pb::RejectedEntry] {
        &self.rejected
    }

    /// The API key whose secret hashes to `sha256_hex`.
    pub fn api_key(&self, sha256_hex: &str) -> Option<&pb::ApiKeyRoute> {
        self.api_keys.get(sha256_hex).and_then(|e| api_key(e))
    }

    pub fn number(&self, phone_number_id: &str) -> Option<&pb::NumberRoute> {
        self.numbers.get(phone_number_id).and_then(|e| number(e))
    }

    pub fn number_by_config_id(&self, config_id: i64) -> Option<&pb::NumberRoute> {
        self.number_ids.get(&config_id).and_then(|e| number(e))
    }

    pub fn default_number(&self, project_id: &str) -> Option<&pb::NumberRoute> {
        self.default_numbers.get(project_id).and_then(|e| number(e))
    }

    pub fn workflow(&self, workflow_id: &str) -> Option<&pb::WorkflowRoute> {
        self.workflows.get(workflow_id).and_then(|e| workflow(e))
    }

    /// The active message trigger of a number.
    pub fn message_trigger(&self, config_id: i64) -> Option<&pb::TriggerRoute> {
        self.message_triggers
            .get(&config_id)
            .and_then(|e| trigger(e))
    }

    /// The event trigger for `event` on a number: its own, else its project's.
    pub fn event_trigger(
        &self,
        event: &str,
        number: &pb::NumberRoute,
    ) -> Option<&pb::TriggerRoute> {
        self.event_triggers
            .get(event)
            .and_then(|m| m.get(&number.whatsapp_config_id))
            .or_else(|| {
                self.project_event_triggers
                    .get(event)
                    .and_then(|m| m.get(&number.project_id))
            })
            .and_then(|e| trigger(e))
    }

    /// Ids of every trigger that routes (for diagnostics and tests).
    pub fn routed_trigger_ids(&self) -> HashSet<&str> {
        self.message_triggers
            .values()
            .chain(self.event_triggers.values().flat_map(HashMap::values))
            .chain(
                self.project_event_triggers
                    .values()
                    .flat_map(HashMap::values),
            )
            .filter_map(|e| trigger(e))
            .map(|t| t.id.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(key: &str, entry: Entry) -> (Arc<str>, Shared) {
        let entry = pb::RoutingEntry {
            key: key.to_owned(),
            entry: Some(entry),
        };
        (Arc::from(key), Arc::new(entry))
    }

    fn sample() -> Entries {
        Entries::from([
            e(
                "n:1",
                Entry::Number(pb::NumberRoute {
                    whatsapp_config_id: 1,
                    project_id: "p".into(),
                    phone_number_id: "111".into(),
                    is_default: true,
                    ..Default::default()
                }),
            ),
            e(
                "w:w",
                Entry::Workflow(pb::WorkflowRoute {
                    id: "w".into(),
                    project_id: "p".into(),
                    status: "active".into(),
                    ..Default::default()
                }),
            ),
            e(
                "t:m",
                Entry::Trigger(pb::TriggerRoute {
                    id: "m".into(),
                    workflow_id: "w".into(),
                    project_id: "p".into(),
                    r#type: "inbound_message".into(),
                    whatsapp_config_id: Some(1),
                    event_type: None,
                }),
            ),
            e(
                "t:e",
                Entry::Trigger(pb::TriggerRoute {
                    id: "e".into(),
                    workflow_id: "w".into(),
                    project_id: "p".into(),
                    r#type: "whatsapp_event".into(),
                    whatsapp_config_id: None,
                    event_type: Some("whatsapp.message.read".into()),
                }),
            ),
        ])
    }

    #[test]
    fn lookups_find_numbers_triggers_and_project_wide_events() {
        let t = RoutingTable::build(5, sample());
        assert!(t.rejected().is_empty());
        let n = t.number("111").cloned().unwrap_or_default();
        assert_eq!(
            t.message_trigger(n.whatsapp_config_id)
                .map(|t| t.id.as_str()),
            Some("m")
        );
        assert_eq!(
            t.event_trigger("whatsapp.message.read", &n)
                .map(|t| t.id.as_str()),
            Some("e")
        );
        assert!(t.event_trigger("whatsapp.message.sent", &n).is_none());
        assert_eq!(
            t.default_number("p").map(|n| n.phone_number_id.as_str()),
            Some("111")
        );
    }

    #[test]
    fn invalid_entries_are_refused_and_the_rest_applies() {
        let mut entries = sample();
        entries.extend([e(
            "t:bad",
            Entry::Trigger(pb::TriggerRoute {
                id: "bad".into(),
                workflow_id: "w".into(),
                project_id: "p".into(),
                r#type: "whatsapp_event".into(),
                whatsapp_config_id: Some(1),
                event_type: Some("whatsapp.message.bogus".into()),
            }),
        )]);
        entries.insert(
            Arc::from("x:1"),
            Arc::new(pb::RoutingEntry {
                key: "x:1".into(),
                entry: None,
            }),
        );
        let t = RoutingTable::build(6, entries);
        let keys: Vec<&str> = t.rejected().iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["t:bad", "x:1"]);
        assert!(t.message_trigger(1).is_some());
    }

    #[test]
    fn deltas_apply_only_to_their_base_version() {
        let t = RoutingTable::build(5, sample());
        let delta = pb::Delta {
            from_version: 5,
            to_version: 6,
            upserts: vec![],
            removals: vec!["t:m".into()],
        };
        let next = t.apply(&delta).unwrap_or_default();
        assert_eq!(next.version(), 6);
        assert!(next.message_trigger(1).is_none());
        assert!(t.message_trigger(1).is_some(), "the old table is untouched");
        assert!(next.apply(&delta).is_err());
    }
}
