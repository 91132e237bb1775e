//! The compiled routing table as the control plane holds it: every entry encoded once, as
//! the `RoutingEntries.entries` field it travels in, back to back in segments of about
//! 1 MiB. A segment is a snapshot chunk as it is (no copy, no re-encoding, and no large
//! buffer growing by doubling), and two versions are compared byte for byte through a hash
//! index of the entries' keys, so a million-entry table costs its encoded size and a few
//! small arrays instead of millions of messages and strings.

use hashbrown::HashTable;
use prost::Message;
use prost::bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::hash::BuildHasher;
use switchboard_proto::v1 as pb;
use switchboard_proto::wire::EntryKey;

/// Target size of a segment, and so of a snapshot chunk (tonic's default message limit is
/// 4 MiB).
pub const SEGMENT_BYTES: usize = 1024 * 1024;

/// Where one entry is.
#[derive(Clone, Copy, Debug)]
struct Span {
    segment: u32,
    /// First byte of the field (its tag) in the segment.
    start: u32,
    /// Length of the whole field: tag, length prefix and message.
    len: u32,
    /// Offset of the key's bytes from `start`, and their length.
    key_at: u32,
    key_len: u32,
}

impl Span {
    /// The entry's field in `segment` (the one this span is in).
    fn field(self, segment: &[u8]) -> &[u8] {
        &segment[self.start as usize..(self.start + self.len) as usize]
    }

    /// The entry's key in `segment`.
    fn key(self, segment: &[u8]) -> &[u8] {
        let at = (self.start + self.key_at) as usize;
        &segment[at..at + self.key_len as usize]
    }
}

/// The hash of an entry's key in a table's index. The keys are ids the control plane chose
/// (never attacker-picked), so a fixed seed is safe, and it lets builders filled apart (on
/// two connections) hash alike.
fn key_hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::default().hash_one(key)
}

/// Told of every segment a [`Builder`] fills, while the table is still being built (so
/// that it can go to nodes before the compile ends).
pub trait SegmentSink: Send + Sync {
    fn sealed(&self, segment: Sealed<'_>);
}

/// A segment a builder has filled: its bytes, a snapshot chunk as they are, and its entries.
pub struct Sealed<'a> {
    pub bytes: &'a Bytes,
    spans: &'a [Span],
    hashes: &'a [u64],
}

impl Sealed<'_> {
    /// Encoded bytes of this segment's entries that `old` does not hold as they are: what
    /// they add to a delta from `old`.
    pub fn changed_bytes(&self, old: &CompiledTable) -> usize {
        self.spans
            .iter()
            .zip(self.hashes)
            .filter(|&(&span, &hash)| {
                old.find_hashed(hash, span.key(self.bytes))
                    .is_none_or(|j| old.field(j) != span.field(self.bytes))
            })
            .map(|(span, _)| span.len as usize)
            .sum()
    }
}

/// Builds a table entry by entry.
pub struct Builder {
    segment_bytes: usize,
    segments: Vec<Bytes>,
    current: BytesMut,
    spans: Vec<Span>,
    /// The key hash of each span, taken while the key is at hand, so that indexing in
    /// [`Builder::finish`] reads no entry again.
    hashes: Vec<u64>,
    counts: pb::EntryCounts,
    /// Spans before this one are in sealed segments.
    sealed_spans: usize,
    sink: Option<std::sync::Arc<dyn SegmentSink>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("segments", &self.segments.len())
            .field("entries", &self.spans.len())
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl Builder {
    /// A builder expecting about `entries` entries.
    pub fn with_capacity(entries: usize) -> Self {
        Self::with_segments(entries, SEGMENT_BYTES)
    }

    pub(crate) fn with_segments(entries: usize, segment_bytes: usize) -> Self {
        Self {
            segment_bytes,
            segments: Vec::new(),
            current: BytesMut::new(),
            spans: Vec::with_capacity(entries),
            hashes: Vec::with_capacity(entries),
            counts: pb::EntryCounts::default(),
            sealed_spans: 0,
            sink: None,
        }
    }

    /// This builder, telling `sink` of each segment it fills.
    pub fn with_sink(self, sink: std::sync::Arc<dyn SegmentSink>) -> Self {
        Self {
            sink: Some(sink),
            ..self
        }
    }

    /// Closes the segment being filled (if it holds anything) and tells the sink; the next
    /// entry starts a new one. Segments close by themselves when full.
    pub fn seal(&mut self) {
        if self.current.is_empty() {
            return;
        }
        self.segments
            .push(std::mem::take(&mut self.current).freeze());
        let first = std::mem::replace(&mut self.sealed_spans, self.spans.len());
        if let (Some(sink), Some(bytes)) = (&self.sink, self.segments.last()) {
            sink.sealed(Sealed {
                bytes,
                spans: &self.spans[first..],
                hashes: &self.hashes[first..],
            });
        }
    }

    /// Appends an entry. Keys are unique in a compiled table (the compiler keys every entry
    /// by a primary key); were one repeated, the later entry would win everywhere (the
    /// index, deltas, and data planes applying the snapshot in order).
    pub fn push(&mut self, entry: &pb::RoutingEntry) {
        let message_len = entry.encoded_len();
        let len = 1 + prost::encoding::encoded_len_varint(message_len as u64) + message_len;
        if self.current.len() + len > self.current.capacity() {
            // A new segment; an entry larger than a segment gets one of its own.
            self.seal();
            self.current = BytesMut::with_capacity(len.max(self.segment_bytes));
        }
        let start = self.current.len();
        prost::encoding::encode_key(
            1,
            prost::encoding::WireType::LengthDelimited,
            &mut self.current,
        );
        prost::encoding::encode_varint(message_len as u64, &mut self.current);
        entry.encode_raw(&mut self.current);
        // prost writes fields in tag order, so a non-empty key (field 1) comes first.
        let key_len = entry.key.len();
        let key_at = (len - message_len) + 1 + prost::encoding::encoded_len_varint(key_len as u64);
        count(&mut self.counts, entry);
        self.hashes.push(key_hash(entry.key.as_bytes()));
        self.spans.push(Span {
            segment: u32::try_from(self.segments.len()).unwrap_or(u32::MAX),
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(u32::MAX),
            key_at: u32::try_from(key_at).unwrap_or(u32::MAX),
            key_len: u32::try_from(key_len).unwrap_or(u32::MAX),
        });
    }

    /// Appends every entry of `other` (built separately, e.g. on another connection).
    pub fn append(&mut self, mut other: Builder) {
        self.seal();
        other.seal();
        let c = &mut self.counts;
        c.api_keys += other.counts.api_keys;
        c.numbers += other.counts.numbers;
        c.workflows += other.counts.workflows;
        c.triggers += other.counts.triggers;
        let offset = u32::try_from(self.segments.len()).unwrap_or(u32::MAX);
        self.segments.extend(other.segments);
        self.spans.extend(other.spans.into_iter().map(|s| Span {
            segment: s.segment + offset,
            ..s
        }));
        self.hashes.extend(other.hashes);
        self.sealed_spans = self.spans.len();
    }

    pub fn finish(mut self, version: i64) -> CompiledTable {
        self.seal();
        let mut table = CompiledTable {
            version,
            dead: vec![0; self.segments.len()],
            segments: self.segments,
            spans: self.spans,
            counts: self.counts,
            index: HashTable::new(),
            dead_bytes: 0,
        };
        let hashes = self.hashes;
        let mut index = HashTable::with_capacity(table.spans.len());
        for (i, &hash) in hashes.iter().enumerate() {
            match index.entry(
                hash,
                |&j: &u32| table.key(j as usize) == table.key(i),
                |&j: &u32| hashes[j as usize],
            ) {
                hashbrown::hash_table::Entry::Occupied(mut slot) => *slot.get_mut() = i as u32,
                hashbrown::hash_table::Entry::Vacant(slot) => {
                    slot.insert(i as u32);
                }
            }
        }
        table.index = index;
        table
    }
}

/// Counts `entry` with its kind.
fn count(counts: &mut pb::EntryCounts, entry: &pb::RoutingEntry) {
    use switchboard_proto::v1::routing_entry::Entry;
    match entry.entry {
        Some(Entry::ApiKey(_)) => counts.api_keys += 1,
        Some(Entry::Number(_)) => counts.numbers += 1,
        Some(Entry::Workflow(_)) => counts.workflows += 1,
        Some(Entry::Trigger(_)) => counts.triggers += 1,
        None => {}
    }
}

/// Uncounts the entry with `key`, whose kind its prefix names (`wire::EntryKey`).
fn uncount(counts: &mut pb::EntryCounts, key: &[u8]) {
    let prefix = key.get(..2).unwrap_or_default();
    let kind = match std::str::from_utf8(prefix).unwrap_or_default() {
        EntryKey::API_KEY => &mut counts.api_keys,
        EntryKey::NUMBER => &mut counts.numbers,
        EntryKey::WORKFLOW => &mut counts.workflows,
        EntryKey::TRIGGER => &mut counts.triggers,
        _ => return,
    };
    *kind = kind.saturating_sub(1);
}

/// A routing table at one version.
#[derive(Debug)]
pub struct CompiledTable {
    pub version: i64,
    segments: Vec<Bytes>,
    spans: Vec<Span>,
    counts: pb::EntryCounts,
    /// Positions in `spans`, by key ([`key_hash`]).
    index: HashTable<u32>,
    /// Per segment, how many of its entries were replaced or removed by [`Self::patch`]
    /// (their bytes stay in the shared segment and are left out of snapshot chunks).
    dead: Vec<u32>,
    dead_bytes: usize,
}

impl Default for CompiledTable {
    fn default() -> Self {
        Builder::default().finish(0)
    }
}

fn key_of<'a>(segments: &'a [Bytes], s: &Span) -> &'a [u8] {
    s.key(&segments[s.segment as usize])
}

fn field_of<'a>(segments: &'a [Bytes], s: &Span) -> &'a [u8] {
    s.field(&segments[s.segment as usize])
}

impl CompiledTable {
    fn key(&self, i: usize) -> &[u8] {
        key_of(&self.segments, &self.spans[i])
    }

    fn field(&self, i: usize) -> &[u8] {
        field_of(&self.segments, &self.spans[i])
    }

    fn decode(&self, i: usize) -> pb::RoutingEntry {
        // The field is the tag byte, then a length-delimited message this process encoded.
        pb::RoutingEntry::decode_length_delimited(&self.field(i)[1..]).unwrap_or_default()
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        self.find_hashed(key_hash(key), key)
    }

    /// [`Self::find`] with the key's [`key_hash`] at hand.
    fn find_hashed(&self, hash: u64, key: &[u8]) -> Option<usize> {
        self.index
            .find(hash, |&j| self.key(j as usize) == key)
            .map(|&j| j as usize)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Encoded size of every entry.
    pub fn encoded_len(&self) -> usize {
        self.segments.iter().map(Bytes::len).sum::<usize>() - self.dead_bytes
    }

    /// Whether patches have left this table with many replaced or removed entries' bytes
    /// or many small segments (snapshot chunks): then a full compile is due, which packs it
    /// again.
    pub fn fragmented(&self) -> bool {
        let live = self.encoded_len();
        self.dead_bytes > SEGMENT_BYTES.max(live / 4)
            || self.segments.len() > 64 + 2 * live / SEGMENT_BYTES
    }

    /// The table after `upserts` and `removals`, at `version`. The new table shares this
    /// one's segments (the changed entries go into new ones), so a change of k entries
    /// costs O(k) plus a copy of the two small position arrays, not a rebuild.
    pub fn patch(
        &self,
        version: i64,
        upserts: &[pb::RoutingEntry],
        removals: &[String],
    ) -> CompiledTable {
        // A segment the size of the change (a frozen buffer keeps its whole capacity).
        let size: usize = upserts.iter().map(|e| e.encoded_len() + 16).sum();
        let mut added = Builder::with_segments(upserts.len(), size.min(SEGMENT_BYTES));
        for entry in upserts {
            added.push(entry);
        }
        added.seal();
        let mut table = CompiledTable {
            version,
            segments: self.segments.clone(),
            spans: self.spans.clone(),
            counts: self.counts,
            index: self.index.clone(),
            dead: self.dead.clone(),
            dead_bytes: self.dead_bytes,
        };
        for key in removals {
            table.remove(key.as_bytes());
        }
        let offset = u32::try_from(table.segments.len()).unwrap_or(u32::MAX);
        table.segments.extend(added.segments);
        table.dead.resize(table.segments.len(), 0);
        for ((entry, span), hash) in upserts.iter().zip(added.spans).zip(added.hashes) {
            let span = Span {
                segment: span.segment + offset,
                ..span
            };
            table.remove(entry.key.as_bytes());
            count(&mut table.counts, entry);
            let i = u32::try_from(table.spans.len()).unwrap_or(u32::MAX);
            table.spans.push(span);
            let (segments, spans) = (&table.segments, &table.spans);
            table
                .index
                .insert_unique(hash, i, |&j| key_hash(key_of(segments, &spans[j as usize])));
        }
        table
    }

    /// Removes the entry with `key`, if any; the last entry takes its position.
    fn remove(&mut self, key: &[u8]) {
        let (segments, spans) = (&self.segments, &self.spans);
        let Ok(slot) = self.index.find_entry(key_hash(key), |&j| {
            key_of(segments, &spans[j as usize]) == key
        }) else {
            return;
        };
        let i = slot.remove().0 as usize;
        let gone = self.spans[i];
        self.dead[gone.segment as usize] += 1;
        self.dead_bytes += gone.len as usize;
        uncount(&mut self.counts, key);
        let last = self.spans.len() - 1;
        if i != last {
            let moved = key_hash(self.key(last));
            if let Some(slot) = self.index.find_mut(moved, |&j| j as usize == last) {
                *slot = i as u32;
            }
        }
        self.spans.swap_remove(i);
    }

    /// The entry with `key`, decoded.
    pub fn get(&self, key: &str) -> Option<pb::RoutingEntry> {
        self.find(key.as_bytes()).map(|i| self.decode(i))
    }

    /// Every entry, decoded, in table order.
    pub fn entries(&self) -> impl Iterator<Item = pb::RoutingEntry> + '_ {
        (0..self.spans.len()).map(|i| self.decode(i))
    }

    /// How many entries of each kind the table holds.
    pub fn counts(&self) -> pb::EntryCounts {
        self.counts
    }

    /// The table as encoded `RoutingEntries` messages (its segments) of about
    /// [`SEGMENT_BYTES`] each; an entry larger than that has a chunk of its own. Always at
    /// least one chunk, empty for an empty table.
    pub fn chunks(&self) -> Vec<Bytes> {
        // Segments holding replaced or removed entries are copied without them.
        let mut live: HashMap<u32, Vec<Span>> = HashMap::new();
        if self.dead_bytes > 0 {
            for s in &self.spans {
                if self.dead[s.segment as usize] > 0 {
                    live.entry(s.segment).or_default().push(*s);
                }
            }
        }
        let mut chunks = Vec::with_capacity(self.segments.len());
        for (i, segment) in self.segments.iter().enumerate() {
            if self.dead[i] == 0 {
                chunks.push(segment.clone());
                continue;
            }
            let Some(mut spans) = live.remove(&(i as u32)) else {
                continue;
            };
            spans.sort_unstable_by_key(|s| s.start);
            let mut chunk = BytesMut::with_capacity(spans.iter().map(|s| s.len as usize).sum());
            for s in &spans {
                chunk.extend_from_slice(field_of(&self.segments, s));
            }
            chunks.push(chunk.freeze());
        }
        if chunks.is_empty() {
            chunks.push(Bytes::new());
        }
        chunks
    }

    /// The changes from `old` to `new`, or `None` when they encode to more than
    /// `max_bytes` (a node that far behind gets a snapshot instead).
    pub fn diff(old: &CompiledTable, new: &CompiledTable, max_bytes: usize) -> Option<pb::Delta> {
        let mut size = 0usize;
        let mut delta = pb::Delta {
            from_version: old.version,
            to_version: new.version,
            ..Default::default()
        };
        for i in 0..new.spans.len() {
            let unchanged = old
                .find(new.key(i))
                .is_some_and(|j| old.field(j) == new.field(i));
            if !unchanged {
                size += new.spans[i].len as usize;
                if size > max_bytes {
                    return None;
                }
                delta.upserts.push(new.decode(i));
            }
        }
        for j in 0..old.spans.len() {
            let key = old.key(j);
            if new.find(key).is_none() {
                size += key.len() + 2;
                if size > max_bytes {
                    return None;
                }
                delta
                    .removals
                    .push(String::from_utf8_lossy(key).into_owned());
            }
        }
        Some(delta)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use switchboard_proto::v1::routing_entry::Entry;

    /// A number entry (the routing modules' tests build tables of them).
    pub(crate) fn number(id: i64, display: &str) -> pb::RoutingEntry {
        pb::RoutingEntry {
            key: format!("n:{id}"),
            entry: Some(Entry::Number(pb::NumberRoute {
                whatsapp_config_id: id,
                display_phone_number: display.into(),
                ..Default::default()
            })),
        }
    }

    fn table(version: i64, entries: &[pb::RoutingEntry]) -> CompiledTable {
        let mut b = Builder::with_segments(0, 4096);
        for e in entries {
            b.push(e);
        }
        b.finish(version)
    }

    #[test]
    fn entries_are_found_by_key_and_decode_back() {
        let t = table(1, &[number(1, "+1"), number(2, "+2")]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("n:2"), Some(number(2, "+2")));
        assert_eq!(t.get("n:3"), None);
        assert_eq!(
            t.entries().collect::<Vec<_>>(),
            [number(1, "+1"), number(2, "+2")]
        );
    }

    #[test]
    fn diff_lists_changed_added_and_removed_entries_within_a_size_limit() {
        let old = table(1, &[number(1, "+1"), number(2, "+2"), number(3, "+3")]);
        let new = table(2, &[number(3, "+3"), number(2, "+22"), number(4, "+4")]);
        let delta = CompiledTable::diff(&old, &new, 1024).unwrap_or_default();
        assert_eq!((delta.from_version, delta.to_version), (1, 2));
        assert_eq!(delta.upserts, [number(2, "+22"), number(4, "+4")]);
        assert_eq!(delta.removals, ["n:1"]);
        assert!(CompiledTable::diff(&old, &new, 10).is_none());
        let same = CompiledTable::diff(&new, &new, 0).unwrap_or_default();
        assert!(same.upserts.is_empty() && same.removals.is_empty());
    }

    #[test]
    fn appended_builders_keep_every_entry() {
        let mut a = Builder::with_segments(0, 64);
        let mut b = Builder::with_segments(0, 64);
        for i in 0..10 {
            a.push(&number(i, "+1"));
            b.push(&number(100 + i, "+2"));
        }
        a.append(b);
        a.push(&number(7, "+3"));
        a.push(&pb::RoutingEntry {
            key: "t:1".into(),
            entry: Some(Entry::Trigger(pb::TriggerRoute::default())),
        });
        let t = a.finish(1);
        assert_eq!(t.len(), 22);
        let counts = t.counts();
        assert_eq!(
            (
                counts.api_keys,
                counts.numbers,
                counts.workflows,
                counts.triggers
            ),
            (0, 21, 0, 1)
        );
        assert_eq!(t.get("n:105"), Some(number(105, "+2")));
        assert_eq!(t.get("n:7"), Some(number(7, "+3")));
        let decoded: usize = t
            .chunks()
            .iter()
            .map(|c| pb::RoutingEntries::decode(c.clone()).map_or(0, |e| e.entries.len()))
            .sum();
        assert_eq!(decoded, 22);
    }

    fn sorted(mut entries: Vec<pb::RoutingEntry>) -> Vec<pb::RoutingEntry> {
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        entries
    }

    fn chunk_entries(t: &CompiledTable) -> Vec<pb::RoutingEntry> {
        t.chunks()
            .iter()
            .flat_map(|c| {
                pb::RoutingEntries::decode(c.clone())
                    .map(|e| e.entries)
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn a_patched_table_holds_what_a_fresh_build_of_the_same_entries_holds() {
        let old: Vec<_> = (0..300).map(|i| number(i, "+1")).collect();
        let mut b = Builder::with_segments(0, 512);
        old.iter().for_each(|e| b.push(e));
        let base = b.finish(1);
        // Replace some, remove some (including the last position), add new ones.
        let upserts: Vec<_> = (290..320).map(|i| number(i, "+2")).collect();
        let removals: Vec<String> = [0, 5, 299, 150, 1000]
            .iter()
            .map(|i| format!("n:{i}"))
            .collect();
        let patched = base.patch(2, &upserts, &removals);
        let mut expected: Vec<_> = (1..290)
            .filter(|i| ![5, 150].contains(i))
            .map(|i| number(i, "+1"))
            .collect();
        expected.extend(upserts.iter().filter(|e| e.key != "n:299").cloned());
        expected.push(number(299, "+2"));
        // n:299 was removed, then upserted again: the upsert wins.
        let expected = sorted(expected);
        assert_eq!(patched.version, 2);
        assert_eq!(sorted(patched.entries().collect()), expected);
        assert_eq!(sorted(chunk_entries(&patched)), expected);
        assert_eq!(patched.counts().numbers as usize, expected.len());
        assert_eq!(patched.len(), expected.len());
        assert_eq!(patched.get("n:295"), Some(number(295, "+2")));
        assert_eq!(patched.get("n:5"), None);
        assert!(patched.encoded_len() < patched.segments.iter().map(Bytes::len).sum());
        // The base is untouched.
        assert_eq!(sorted(base.entries().collect()), sorted(old));
        let fresh = {
            let mut b = Builder::default();
            expected.iter().for_each(|e| b.push(e));
            b.finish(2)
        };
        assert_eq!(patched.encoded_len(), fresh.encoded_len());
        let none = CompiledTable::diff(&fresh, &patched, 0).unwrap_or_default();
        assert!(none.upserts.is_empty() && none.removals.is_empty());
    }

    #[test]
    fn tables_worn_by_patches_ask_for_a_full_compile() {
        let mut b = Builder::default();
        (0..100).for_each(|i| b.push(&number(i, "+1")));
        let mut t = b.finish(1);
        assert!(!t.fragmented());
        for v in 2..200 {
            t = t.patch(v, &[number(v % 100, "+3")], &[]);
        }
        // 198 one-entry segments for a table of a few kilobytes.
        assert!(t.fragmented());
        assert_eq!(t.len(), 100);
        assert_eq!(chunk_entries(&t).len(), 100);
    }

    #[test]
    fn chunks_are_whole_entries_under_the_limit() {
        let entries: Vec<_> = (0..1000).map(|i| number(i, &"9".repeat(50))).collect();
        let t = table(1, &entries);
        let chunks = t.chunks();
        assert!(chunks.len() > 10);
        assert!(chunks.iter().all(|c| c.len() <= 4096));
        let decoded: Vec<pb::RoutingEntry> = chunks
            .iter()
            .flat_map(|c| {
                pb::RoutingEntries::decode(c.clone())
                    .map(|e| e.entries)
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(decoded, entries);
    }
}
