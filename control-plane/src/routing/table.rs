//! The compiled routing table as the control plane holds it: every entry encoded once, as
//! the `RoutingEntries.entries` field it travels in, back to back in segments of about
//! 1 MiB. A segment is a snapshot chunk as it is (no copy, no re-encoding, and no large
//! buffer growing by doubling), and two versions are compared byte for byte through a hash
//! index of the entries' keys, so a million-entry table costs its encoded size and a few
//! small arrays instead of millions of messages and strings.

use hashbrown::HashTable;
use prost::Message;
use prost::bytes::{Bytes, BytesMut};
use std::hash::BuildHasher;
use switchboard_proto::v1 as pb;

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

/// Builds a table entry by entry.
#[derive(Debug)]
pub struct Builder {
    segment_bytes: usize,
    segments: Vec<Bytes>,
    current: BytesMut,
    spans: Vec<Span>,
    counts: pb::EntryCounts,
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

    fn with_segments(entries: usize, segment_bytes: usize) -> Self {
        Self {
            segment_bytes,
            segments: Vec::new(),
            current: BytesMut::new(),
            spans: Vec::with_capacity(entries),
            counts: pb::EntryCounts::default(),
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
            let full = std::mem::replace(
                &mut self.current,
                BytesMut::with_capacity(len.max(self.segment_bytes)),
            );
            if !full.is_empty() {
                self.segments.push(full.freeze());
            }
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
        self.spans.push(Span {
            segment: u32::try_from(self.segments.len()).unwrap_or(u32::MAX),
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(u32::MAX),
            key_at: u32::try_from(key_at).unwrap_or(u32::MAX),
            key_len: u32::try_from(key_len).unwrap_or(u32::MAX),
        });
    }

    /// Entries the builder has room for without growing its index.
    pub fn capacity(&self) -> usize {
        self.spans.capacity()
    }

    /// Appends every entry of `other` (built separately, e.g. on another connection).
    pub fn append(&mut self, mut other: Builder) {
        if !self.current.is_empty() {
            let current = std::mem::take(&mut self.current);
            self.segments.push(current.freeze());
        }
        if !other.current.is_empty() {
            other
                .segments
                .push(std::mem::take(&mut other.current).freeze());
        }
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
    }

    pub fn finish(mut self, version: i64) -> CompiledTable {
        if !self.current.is_empty() {
            self.segments.push(self.current.freeze());
        }
        let mut table = CompiledTable {
            version,
            segments: self.segments,
            spans: self.spans,
            counts: self.counts,
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        };
        let mut index = HashTable::with_capacity(table.spans.len());
        for i in 0..table.spans.len() {
            let key = table.key(i);
            let hash = table.hasher.hash_one(key);
            match index.entry(
                hash,
                |&j: &u32| table.key(j as usize) == key,
                |&j: &u32| table.hasher.hash_one(table.key(j as usize)),
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

/// A routing table at one version.
#[derive(Debug)]
pub struct CompiledTable {
    pub version: i64,
    segments: Vec<Bytes>,
    spans: Vec<Span>,
    counts: pb::EntryCounts,
    /// Positions in `spans`, by key.
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl Default for CompiledTable {
    fn default() -> Self {
        Builder::default().finish(0)
    }
}

impl CompiledTable {
    fn key(&self, i: usize) -> &[u8] {
        let s = self.spans[i];
        let at = (s.start + s.key_at) as usize;
        &self.segments[s.segment as usize][at..at + s.key_len as usize]
    }

    fn field(&self, i: usize) -> &[u8] {
        let s = self.spans[i];
        &self.segments[s.segment as usize][s.start as usize..(s.start + s.len) as usize]
    }

    fn decode(&self, i: usize) -> pb::RoutingEntry {
        // The field is the tag byte, then a length-delimited message this process encoded.
        pb::RoutingEntry::decode_length_delimited(&self.field(i)[1..]).unwrap_or_default()
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        self.index
            .find(self.hasher.hash_one(key), |&j| self.key(j as usize) == key)
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
        self.segments.iter().map(Bytes::len).sum()
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
        if self.segments.is_empty() {
            return vec![Bytes::new()];
        }
        self.segments.clone()
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
mod tests {
    use super::*;
    use switchboard_proto::v1::routing_entry::Entry;

    fn number(id: i64, display: &str) -> pb::RoutingEntry {
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
