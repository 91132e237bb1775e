//! Deltas applied in place: a copy of the table with each changed entry taken out of its
//! indexes and the new one put in, instead of every index rebuilt (at a million numbers and
//! triggers a rebuild is most of a second; a patch is the copy). The result must be what a
//! rebuild gives, so a patch gives up — and the caller rebuilds — whenever it could differ:
//! the table already refuses entries (which of two claims wins depends on the order a
//! rebuild sees them in), or an entry of the delta would be refused, or would leave a
//! trigger without its workflow or number.

use super::RoutingTable;
use super::entry::{Number, Parsed, Trigger, Workflow, meta_id_of, number_of, parse};
use super::index::claim;
use switchboard_proto::v1 as pb;
use uuid::Uuid;

/// What an entry taken out was, where later checks depend on it.
enum Old {
    Nothing,
    Number(Number),
    Workflow(Workflow),
}

/// What a patch checks once every entry is in.
#[derive(Default)]
struct Checks {
    /// Triggers put in: each needs an active workflow and a number of its project.
    triggers: Vec<Uuid>,
    /// A workflow or number went away or changed: every trigger is checked.
    all_triggers: bool,
}

impl RoutingTable {
    /// This table after `delta`, its indexes kept entry by entry; `None` when only a
    /// rebuild gives the right table (see the module docs).
    pub(super) fn patched(&self, delta: &pb::Delta) -> Option<Self> {
        if !self.rejected.is_empty() || !self.sources.unparsed.is_empty() {
            return None;
        }
        let mut t = self.clone();
        t.version = delta.to_version;
        let mut checks = Checks::default();
        for key in &delta.removals {
            if !matches!(t.take_out(key)?, Old::Nothing) {
                checks.all_triggers = true;
            }
        }
        for entry in &delta.upserts {
            let parsed = parse(entry.clone());
            let old = t.take_out(&entry.key)?;
            // A workflow or number that keeps its project (and a workflow its status) keeps
            // its triggers valid.
            let keeps = match (&old, &parsed) {
                (Old::Nothing, _) => true,
                (Old::Workflow(o), Parsed::Workflow(n)) => {
                    o.active == n.active && o.project_id == n.project_id
                }
                (Old::Number(o), Parsed::Number(n)) => o.project_id == n.project_id,
                _ => false,
            };
            checks.all_triggers |= !keeps;
            t.put_in(parsed, &mut checks)?;
        }
        t.valid(&checks).then_some(t)
    }

    /// Takes the entry with `key` out of the sources and the indexes; `None` for a key this
    /// build cannot read.
    fn take_out(&mut self, key: &str) -> Option<Old> {
        let (kind, id) = key.split_at(key.find(':').map_or(0, |i| i + 1));
        match kind {
            "k:" => {
                let keys = &mut self.sources.api_keys;
                let id = Uuid::parse_str(id).ok()?;
                let Some(p) = keys.position(&id) else {
                    return Some(Old::Nothing);
                };
                let hash = keys.at(p).secret_sha256;
                if self.api_keys_by_hash.get(&hash) == Some(&p) {
                    self.api_keys_by_hash.remove(&hash);
                }
                keys.remove(&id);
                let last = keys.len() as u32;
                if p < last
                    && let Some(slot) = self.api_keys_by_hash.get_mut(&keys.at(p).secret_sha256)
                    && *slot == last
                {
                    *slot = p;
                }
                Some(Old::Nothing)
            }
            "n:" => {
                let numbers = &mut self.sources.numbers;
                let id: i64 = id.parse().ok()?;
                let Some(p) = numbers.position(&id) else {
                    return Some(Old::Nothing);
                };
                let n = numbers.at(p).clone();
                self.numbers_by_meta_id.forget(numbers, p, meta_id_of);
                if n.is_default && self.default_numbers.get(&n.project_id) == Some(&id) {
                    self.default_numbers.remove(&n.project_id);
                }
                numbers.remove(&id);
                let last = numbers.len() as u32;
                if p < last {
                    self.numbers_by_meta_id.moved(numbers, last, p, meta_id_of);
                }
                Some(Old::Number(n))
            }
            "w:" => {
                let id = Uuid::parse_str(id).ok()?;
                Some(
                    self.sources
                        .workflows
                        .remove(&id)
                        .map_or(Old::Nothing, Old::Workflow),
                )
            }
            "t:" => {
                let triggers = &mut self.sources.triggers;
                let id = Uuid::parse_str(id).ok()?;
                let Some(p) = triggers.position(&id) else {
                    return Some(Old::Nothing);
                };
                self.slots.release(triggers, p);
                triggers.remove(&id);
                let last = triggers.len() as u32;
                if p < last {
                    self.slots.message.moved(triggers, last, p, number_of);
                }
                Some(Old::Nothing)
            }
            _ => None,
        }
    }

    /// Puts a parsed entry (whose key is out) into the sources and indexes; `None` when a
    /// rebuild would refuse it.
    fn put_in(&mut self, parsed: Parsed, checks: &mut Checks) -> Option<()> {
        let taken = match parsed {
            Parsed::ApiKey(k) => {
                let (id, hash) = (k.id, k.secret_sha256);
                self.sources.api_keys.insert(k);
                let p = self.sources.api_keys.position(&id)?;
                claim(&mut self.api_keys_by_hash, hash, p)
            }
            Parsed::Number(n) => {
                let (id, project, default) = (n.whatsapp_config_id, n.project_id, n.is_default);
                let numbers = &mut self.sources.numbers;
                numbers.insert(n);
                let p = numbers.position(&id)?;
                self.numbers_by_meta_id.claim(numbers, p, meta_id_of)
                    || (default && claim(&mut self.default_numbers, project, id))
            }
            Parsed::Workflow(w) => {
                self.sources.workflows.insert(w);
                false
            }
            Parsed::Trigger(tr) => {
                let id = tr.id;
                let triggers = &mut self.sources.triggers;
                triggers.insert(tr);
                let p = triggers.position(&id)?;
                checks.triggers.push(id);
                self.slots.claim(triggers, p)
            }
            Parsed::Unparsed(_) => true,
        };
        (!taken).then_some(())
    }

    /// Whether a rebuild would route every checked trigger (see `Sources::refusal`).
    fn valid(&self, checks: &Checks) -> bool {
        let s = &self.sources;
        let ok = |t: &Trigger| s.refusal(t).is_none();
        if checks.all_triggers {
            s.triggers.iter().all(ok)
        } else {
            checks
                .triggers
                .iter()
                .all(|id| s.triggers.get(id).is_some_and(ok))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::EventType;
    use super::*;
    use std::collections::BTreeMap;
    use switchboard_proto::v1::routing_entry::Entry;

    /// A small deterministic generator (xorshift), so every case can be replayed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    fn uuid(kind: u64, i: u64) -> String {
        format!("01a214e0-0000-7000-8000-{kind:04}{i:08}")
    }

    const EVENTS: [&str; 2] = ["whatsapp.message.read", "whatsapp.message.sent"];

    /// A random version of entry `i` of a small universe (2 projects, 3 workflows, 4
    /// numbers, 8 triggers, 3 keys), mostly consistent, sometimes conflicting.
    fn entry(r: &mut Rng, i: u64) -> pb::RoutingEntry {
        let project = |r: &mut Rng| uuid(1, r.below(2));
        let (key, entry) = match i {
            0..3 => {
                let id = uuid(2, i);
                let status = if r.chance(75) { "active" } else { "draft" };
                let route = pb::WorkflowRoute {
                    id: id.clone(),
                    project_id: uuid(1, i % 2),
                    status: status.into(),
                    ..Default::default()
                };
                (format!("w:{id}"), Entry::Workflow(route))
            }
            3..7 => {
                let config_id = i as i64;
                let number = pb::NumberRoute {
                    whatsapp_config_id: config_id,
                    project_id: if r.chance(90) {
                        uuid(1, i % 2)
                    } else {
                        project(r)
                    },
                    phone_number_id: (100 + if r.chance(90) { i } else { r.below(7) }).to_string(),
                    is_default: r.chance(30),
                    ..Default::default()
                };
                (format!("n:{config_id}"), Entry::Number(number))
            }
            7..15 => {
                let id = uuid(3, i);
                let w = r.below(3);
                let number = 3 + r.below(4) as i64;
                let (kind, config, event) = match r.below(3) {
                    0 => ("inbound_message", Some(number), None),
                    1 => ("whatsapp_event", Some(number), Some(r.below(2))),
                    _ => ("whatsapp_event", None, Some(r.below(2))),
                };
                let trigger = pb::TriggerRoute {
                    id: id.clone(),
                    workflow_id: uuid(2, w),
                    project_id: if r.chance(90) {
                        uuid(1, w % 2)
                    } else {
                        project(r)
                    },
                    r#type: kind.into(),
                    whatsapp_config_id: config,
                    event_type: event.map(|e| EVENTS[e as usize].into()),
                };
                (format!("t:{id}"), Entry::Trigger(trigger))
            }
            _ => {
                let id = uuid(4, i);
                let key = pb::ApiKeyRoute {
                    id: id.clone(),
                    project_id: project(r),
                    secret_sha256: format!("{:064x}", r.below(4)),
                    burst_limit: None,
                    revoked: r.chance(20),
                };
                (format!("k:{id}"), Entry::ApiKey(key))
            }
        };
        pb::RoutingEntry {
            key,
            entry: Some(entry),
        }
    }

    const UNIVERSE: u64 = 18;

    /// Everything a lookup can see, plus the entries and refusals.
    fn observe(t: &RoutingTable) -> String {
        let entries: BTreeMap<String, pb::RoutingEntry> =
            t.to_entries().map(|e| (e.key.clone(), e)).collect();
        let mut seen = format!("{entries:?}\n{:?}\n", t.rejected());
        for meta in 100..107u64 {
            let n = t.number(&meta.to_string()).cloned();
            seen += &format!("{meta}: {n:?}\n");
            if let Some(n) = n {
                seen += &format!("  message {:?}\n", t.message_trigger(n.whatsapp_config_id));
                for name in EVENTS {
                    let event = EventType::parse(name).unwrap_or(EventType::MessageReceived);
                    seen += &format!("  {name} {:?}\n", t.event_trigger(event, &n));
                }
            }
        }
        for p in 0..2 {
            let project = Uuid::parse_str(&uuid(1, p)).unwrap_or_default();
            seen += &format!("default {:?}\n", t.default_number(&project));
        }
        for h in 0..4u64 {
            let hash = format!("{h:064x}");
            seen += &format!("key {:?}\n", t.api_key(&hash));
        }
        seen
    }

    /// (Here for this module's generator of conflicting tables.)
    #[test]
    fn indexing_on_two_threads_gives_what_one_gives() {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..500 {
            let mut entries = Vec::new();
            for i in 0..UNIVERSE {
                if r.chance(80) {
                    entries.push(entry(&mut r, i));
                }
            }
            let mut builder = super::super::Builder::default();
            builder.add(entries);
            let sources = builder.sources;
            let one = RoutingTable::index_with(1, sources.clone(), false);
            let two = RoutingTable::index_with(1, sources, true);
            assert_eq!(observe(&one), observe(&two));
        }
    }

    #[test]
    fn patched_tables_are_what_a_rebuild_gives() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut patched, mut cases) = (0, 2000);
        while cases > 0 {
            cases -= 1;
            let mut base = Vec::new();
            for i in 0..UNIVERSE {
                if r.chance(70) {
                    base.push(entry(&mut r, i));
                }
            }
            // Leave out what the table refuses, until it refuses nothing (a patch is only
            // tried on such tables).
            let mut table = RoutingTable::build(1, base);
            while !table.rejected().is_empty() {
                let refused: Vec<String> = table.rejected().iter().map(|e| e.key.clone()).collect();
                let kept = table.to_entries().filter(|e| !refused.contains(&e.key));
                table = RoutingTable::build(1, kept.collect::<Vec<_>>());
            }
            let mut delta = pb::Delta {
                from_version: 1,
                to_version: 2,
                ..Default::default()
            };
            for _ in 0..r.below(4) {
                let i = r.below(UNIVERSE);
                if r.chance(40) {
                    delta.removals.push(entry(&mut r, i).key);
                } else {
                    delta.upserts.push(entry(&mut r, i));
                }
            }
            let rebuilt = table.rebuilt(&delta);
            if let Some(p) = table.patched(&delta) {
                patched += 1;
                assert_eq!(observe(&p), observe(&rebuilt), "delta {delta:?}");
                assert_eq!(p.version(), 2);
            }
            assert_eq!(
                observe(&table.apply(&delta).unwrap_or_default()),
                observe(&rebuilt)
            );
        }
        // Most cases take the patch (the rest have refusals before or after).
        assert!(patched > 600, "only {patched} of 2000 deltas were patched");
    }

    #[test]
    fn a_table_with_refused_entries_is_rebuilt() {
        let mut r = Rng(7);
        let w = entry(&mut r, 0);
        let mut dangling = entry(&mut r, 7);
        if let Some(Entry::Trigger(t)) = &mut dangling.entry {
            t.workflow_id = uuid(2, 9);
        }
        let table = RoutingTable::build(1, vec![w, dangling]);
        assert_eq!(table.rejected().len(), 1);
        let delta = pb::Delta {
            from_version: 1,
            to_version: 2,
            ..Default::default()
        };
        assert!(table.patched(&delta).is_none());
    }
}
