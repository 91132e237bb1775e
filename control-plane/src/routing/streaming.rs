//! A full compile's snapshot, sent to nodes while it is being compiled. The compile's
//! builders hand every segment they fill to a [`StreamingSnapshot`] (a [`SegmentSink`]), which
//! counts how much of it the nodes' current table does not hold. Once that is more than a
//! delta may carry, the nodes will get a snapshot whatever the rest holds, so the snapshot
//! opens: sessions send each segment as a chunk as soon as the next one is sealed, and a
//! node builds its table while the control plane is still reading the catalog, instead of
//! after it.
//!
//! A compile that changes little never opens (the publisher diffs and sends a delta as
//! before); it costs one lookup per entry in the previous table. A streamed snapshot does not
//! know its chunk count until the compile ends: its chunks say 0, and the last one says the
//! count (`SnapshotChunk` in the proto). A compile that fails after opening ends the
//! sessions streaming it; their nodes reconnect and get the table that stands.

use super::encoded::{CompiledTable, Sealed, SegmentSink};
use prost::bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use switchboard_proto::v1 as pb;
use tokio::sync::watch;

/// The compile a streamed snapshot came from failed (or was dropped) before its end.
#[derive(Debug, thiserror::Error)]
#[error("the routing compile being streamed failed")]
pub struct CompileFailed;

/// One full compile's segments, as the builders seal them.
#[derive(Debug)]
pub struct StreamingSnapshot {
    /// The table the nodes hold (the publisher's current one).
    previous: Arc<CompiledTable>,
    /// Changed bytes beyond which the new version goes out as a snapshot.
    limit: usize,
    /// Changed bytes counted so far (counting stops once the snapshot opens).
    changed: AtomicUsize,
    progress: watch::Sender<Progress>,
}

#[derive(Debug, Default)]
struct Progress {
    /// The version being compiled and its entry counts (a hint for the nodes' sizing), once
    /// the compile has read them.
    header: Option<(i64, pb::EntryCounts)>,
    segments: Vec<Bytes>,
    /// The changes exceed the limit: nodes get this snapshot as it is compiled.
    open: bool,
    end: Option<End>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Complete,
    Failed,
}

impl Progress {
    fn should_open(&self, changed: usize, limit: usize) -> bool {
        !self.open && self.header.is_some() && changed > limit
    }
}

impl StreamingSnapshot {
    /// A compile whose changes from `previous` open the snapshot once they exceed `limit`
    /// encoded bytes.
    pub fn new(previous: Arc<CompiledTable>, limit: usize) -> Self {
        Self {
            previous,
            limit,
            changed: AtomicUsize::new(0),
            progress: watch::Sender::new(Progress::default()),
        }
    }

    /// The compile read the catalog's version and entry counts.
    pub fn begin(&self, version: i64, counts: pb::EntryCounts) {
        let (changed, limit) = (self.changed.load(Ordering::Relaxed), self.limit);
        self.progress.send_modify(|p| {
            p.header = Some((version, counts));
            p.open |= p.should_open(changed, limit);
        });
    }

    /// Every segment is sealed.
    pub fn complete(&self) {
        self.end(End::Complete);
    }

    /// The compile failed: sessions streaming it stop.
    pub fn fail(&self) {
        self.end(End::Failed);
    }

    fn end(&self, end: End) {
        self.progress.send_if_modified(|p| {
            let unset = p.end.is_none();
            if unset {
                p.end = Some(end);
            }
            unset
        });
    }

    pub fn is_open(&self) -> bool {
        self.progress.borrow().open
    }

    /// The version being compiled, once read.
    pub fn version(&self) -> Option<i64> {
        self.progress.borrow().header.map(|(version, _)| version)
    }

    /// Resolves when the snapshot opens (never, for a compile that changes little).
    pub async fn opened(&self) {
        let mut progress = self.progress.subscribe();
        // The sender lives as long as `self`, so this only returns once open.
        let _ = progress.wait_for(|p| p.open).await;
    }

    /// The snapshot's chunks, for one session, from the first.
    pub fn chunks(&self) -> Chunks {
        Chunks {
            progress: self.progress.subscribe(),
            next: 0,
            finished: false,
        }
    }
}

impl SegmentSink for StreamingSnapshot {
    fn sealed(&self, segment: Sealed<'_>) {
        let mut changed = self.changed.load(Ordering::Relaxed);
        if changed <= self.limit && !self.is_open() {
            let more = segment.changed_bytes(&self.previous);
            changed = self.changed.fetch_add(more, Ordering::Relaxed) + more;
        }
        let limit = self.limit;
        self.progress.send_modify(|p| {
            p.segments.push(segment.bytes.clone());
            p.open |= p.should_open(changed, limit);
        });
    }
}

/// One session's reader of a streamed snapshot.
#[derive(Debug)]
pub struct Chunks {
    progress: watch::Receiver<Progress>,
    next: usize,
    finished: bool,
}

impl Chunks {
    /// The next chunk, once it can be sent — the version is known and the segment after it
    /// is sealed, so it is not the last, or the compile has ended, so it is known whether it
    /// is; `None` after the last chunk.
    pub async fn next(&mut self) -> Result<Option<pb::SnapshotChunk>, CompileFailed> {
        if self.finished {
            return Ok(None);
        }
        let index = self.next;
        let progress = self
            .progress
            .wait_for(|p| p.end.is_some() || (p.header.is_some() && p.segments.len() > index + 1))
            .await
            .map_err(|_| CompileFailed)?;
        let (version, counts) = progress.header.ok_or(CompileFailed)?;
        let last = match progress.end {
            Some(End::Failed) => return Err(CompileFailed),
            Some(End::Complete) => index + 1 >= progress.segments.len(),
            None => false,
        };
        // A table with no entries still sends one (empty) chunk.
        let entries = progress.segments.get(index).cloned().unwrap_or_default();
        drop(progress);
        self.next += 1;
        self.finished = last;
        let position = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        Ok(Some(pb::SnapshotChunk {
            version,
            chunk_index: position(index),
            chunk_count: if last { position(index + 1) } else { 0 },
            entries,
            counts: (index == 0).then_some(counts),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::encoded::Builder;
    use crate::routing::encoded::tests::number;

    fn table(entries: impl Iterator<Item = pb::RoutingEntry>) -> Arc<CompiledTable> {
        let mut b = Builder::default();
        entries.for_each(|e| b.push(&e));
        Arc::new(b.finish(1))
    }

    /// Every chunk a session gets, until the end or a failure.
    async fn drain(stream: &StreamingSnapshot) -> Result<Vec<pb::SnapshotChunk>, CompileFailed> {
        let mut chunks = stream.chunks();
        let mut all = Vec::new();
        while let Some(chunk) = chunks.next().await? {
            all.push(chunk);
        }
        Ok(all)
    }

    fn entries(chunks: &[pb::SnapshotChunk]) -> Vec<pb::RoutingEntry> {
        use prost::Message;
        chunks
            .iter()
            .flat_map(|c| {
                pb::RoutingEntries::decode(c.entries.clone())
                    .map(|e| e.entries)
                    .unwrap_or_default()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_large_change_opens_and_streams_every_segment_in_order() {
        let previous = table((0..100).map(|i| number(i, "+1")));
        let stream = Arc::new(StreamingSnapshot::new(previous, 4096));
        let mut b = Builder::with_segments(0, 256).with_sink(stream.clone());
        // Unchanged entries first: they count for nothing.
        (0..100).for_each(|i| b.push(&number(i, "+1")));
        stream.begin(
            2,
            pb::EntryCounts {
                numbers: 2100,
                ..Default::default()
            },
        );
        assert!(!stream.is_open());
        let expected: Vec<_> = (0..2100).map(|i| number(i, "+2")).collect();
        let reader = tokio::spawn({
            let stream = stream.clone();
            async move { drain(&stream).await }
        });
        for e in &expected[..1000] {
            b.push(e);
        }
        assert!(stream.is_open(), "some 20 kB changed, over the 4 kB limit");
        tokio::time::timeout(std::time::Duration::from_secs(5), stream.opened())
            .await
            .expect("opened resolves");
        for e in &expected[1000..] {
            b.push(e);
        }
        b.seal();
        stream.complete();
        let chunks = reader.await.expect("reader").expect("complete");
        let unchanged = (0..100).map(|i| number(i, "+1"));
        assert_eq!(
            entries(&chunks),
            unchanged
                .chain(expected.iter().cloned())
                .collect::<Vec<_>>()
        );
        let last = chunks.len() - 1;
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.version, 2);
            assert_eq!(c.chunk_index as usize, i);
            assert_eq!(
                c.chunk_count as usize,
                if i == last { chunks.len() } else { 0 }
            );
            assert_eq!(c.counts.is_some(), i == 0);
        }
        assert_eq!(chunks[0].counts.map(|c| c.numbers), Some(2100));
    }

    #[tokio::test]
    async fn a_small_change_never_opens() {
        let previous = table((0..1000).map(|i| number(i, "+1")));
        let stream = Arc::new(StreamingSnapshot::new(previous, 1024));
        let mut b = Builder::with_segments(0, 256).with_sink(stream.clone());
        stream.begin(2, pb::EntryCounts::default());
        (0..1000).for_each(|i| b.push(&number(i, if i % 100 == 0 { "+2" } else { "+1" })));
        (1000..1010).for_each(|i| b.push(&number(i, "+1")));
        b.seal();
        stream.complete();
        assert!(!stream.is_open());
        let opened = tokio::time::timeout(std::time::Duration::from_millis(50), stream.opened());
        assert!(opened.await.is_err());
    }

    #[tokio::test]
    async fn the_snapshot_opens_only_once_its_version_is_known() {
        let stream = Arc::new(StreamingSnapshot::new(table(std::iter::empty()), 10));
        let mut b = Builder::with_segments(0, 256).with_sink(stream.clone());
        (0..100).for_each(|i| b.push(&number(i, "+1")));
        b.seal();
        assert!(!stream.is_open());
        stream.begin(5, pb::EntryCounts::default());
        assert!(stream.is_open());
        assert_eq!(stream.version(), Some(5));
    }

    #[tokio::test]
    async fn readers_wait_for_the_version_before_the_first_chunk() {
        let stream = Arc::new(StreamingSnapshot::new(table(std::iter::empty()), 1 << 20));
        let mut b = Builder::with_segments(0, 256).with_sink(stream.clone());
        (0..100).for_each(|i| b.push(&number(i, "+1")));
        b.seal();
        let mut chunks = stream.chunks();
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), chunks.next());
        assert!(early.await.is_err(), "no chunk before the version is known");
        stream.begin(7, pb::EntryCounts::default());
        let first = chunks.next().await.expect("chunk").expect("first chunk");
        assert_eq!(
            (first.version, first.chunk_index, first.chunk_count),
            (7, 0, 0)
        );
    }

    #[tokio::test]
    async fn readers_of_a_failed_compile_stop_with_an_error() {
        let stream = Arc::new(StreamingSnapshot::new(table(std::iter::empty()), 10));
        stream.begin(3, pb::EntryCounts::default());
        let mut b = Builder::with_segments(0, 256).with_sink(stream.clone());
        (0..10).for_each(|i| b.push(&number(i, "+1")));
        b.seal();
        (10..20).for_each(|i| b.push(&number(i, "+1")));
        b.seal();
        let mut chunks = stream.chunks();
        // The first segment is followed by another: it can go.
        assert!(chunks.next().await.expect("first chunk").is_some());
        stream.fail();
        assert!(chunks.next().await.is_err());
        // A later complete() changes nothing.
        stream.complete();
        assert!(drain(&stream).await.is_err());
    }

    #[tokio::test]
    async fn an_empty_complete_snapshot_is_one_empty_chunk() {
        let stream = StreamingSnapshot::new(table(std::iter::empty()), 10);
        stream.begin(4, pb::EntryCounts::default());
        stream.complete();
        let chunks = drain(&stream).await.expect("complete");
        assert_eq!(chunks.len(), 1);
        assert_eq!((chunks[0].chunk_index, chunks[0].chunk_count), (0, 1));
        assert!(chunks[0].entries.is_empty());
    }
}
