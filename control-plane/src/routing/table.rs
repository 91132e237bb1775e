//! The compiled routing table as the control plane holds it: every entry encoded once, as
//! the `RoutingEntries.entries` field it travels in, back to back in one buffer. Snapshot
//! chunks are slices of that buffer (no copy, no re-encoding), and two versions are compared
//! byte for byte through a hash index of the entries' keys, so a million-entry table costs
//! one buffer and a few small arrays instead of millions of messages and strings.

use hashbrown::HashTable;
use prost::Message;
use prost::bytes::{Bytes, BytesMut};
use std::hash::BuildHasher;
use switchboard_proto::v1 as pb;

/// Where one entry is in the buffer.
#[derive(Clone, Copy, Debug)]
struct Span {
    /// First byte of the field (its tag).
    start: usize,
    /// Length of the whole field: tag, length prefix and message.
    len: u32,
    /// Offset of the key's bytes from `start`, and their length.
    key_at: u32,
    key_len: u32,
}

/// Builds a table entry by entry.
#[derive(Debug, Default)]
pub struct Builder {
    buf: BytesMut,
    spans: Vec<Span>,
}

impl Builder {
    /// A builder expecting about `entries` entries of about `bytes` encoded bytes in all.
    pub fn with_capacity(entries: usize, bytes: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(bytes),
            spans: Vec::with_capacity(entries),
        }
    }

    /// Appends an entry. Keys are unique in a compiled table (the compiler keys every entry
    /// by a primary key); were one repeated, the later entry would win everywhere (the
    /// index, deltas, and data planes applying the snapshot in order).
    pub fn push(&mut self, entry: &pb::RoutingEntry) {
        let start = self.buf.len();
        let message_len = entry.encoded_len();
        prost::encoding::message::encode(1, entry, &mut self.buf);
        let len = self.buf.len() - start;
        // prost writes fields in tag order, so a non-empty key (field 1) comes first.
        let key_len = entry.key.len();
        let key_at = (len - message_len) + 1 + prost::encoding::encoded_len_varint(key_len as u64);
        self.spans.push(Span {
            start,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            key_at: u32::try_from(key_at).unwrap_or(u32::MAX),
            key_len: u32::try_from(key_len).unwrap_or(u32::MAX),
        });
    }

    pub fn finish(self, version: i64) -> CompiledTable {
        let mut table = CompiledTable {
            version,
            buf: self.buf.freeze(),
            spans: self.spans,
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

/// A routing table at one version.
#[derive(Debug)]
pub struct CompiledTable {
    pub version: i64,
    buf: Bytes,
    spans: Vec<Span>,
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
        let at = s.start + s.key_at as usize;
        &self.buf[at..at + s.key_len as usize]
    }

    fn field(&self, i: usize) -> &[u8] {
        let s = self.spans[i];
        &self.buf[s.start..s.start + s.len as usize]
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
        self.buf.len()
    }

    /// The entry with `key`, decoded.
    pub fn get(&self, key: &str) -> Option<pb::RoutingEntry> {
        self.find(key.as_bytes()).map(|i| self.decode(i))
    }

    /// Every entry, decoded, in table order.
    pub fn entries(&self) -> impl Iterator<Item = pb::RoutingEntry> + '_ {
        (0..self.spans.len()).map(|i| self.decode(i))
    }

    /// The table as encoded `RoutingEntries` messages of at most about `max_bytes` each (an
    /// entry larger than that gets a chunk of its own). Slices of the table's buffer.
    pub fn chunks(&self, max_bytes: usize) -> Vec<Bytes> {
        let mut chunks = Vec::new();
        let mut from = 0;
        for s in &self.spans {
            let end = s.start + s.len as usize;
            if end - from > max_bytes && s.start > from {
                chunks.push(self.buf.slice(from..s.start));
                from = s.start;
            }
        }
        chunks.push(self.buf.slice(from..));
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
        let mut b = Builder::default();
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
    fn chunks_are_whole_entries_under_the_limit() {
        let entries: Vec<_> = (0..1000).map(|i| number(i, &"9".repeat(50))).collect();
        let t = table(1, &entries);
        let chunks = t.chunks(4096);
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
