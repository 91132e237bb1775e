//! Keeps this replica's compiled routing table current and publishes it to node sessions.
//!
//! The publisher recompiles when this replica commits a routing change (an in-process
//! notification) and when a poll of the routing version — which every replica on the same
//! database sees — shows a newer version written elsewhere. Sessions watch the published
//! value; a `watch` channel keeps only the newest, so bursts collapse. A full compile whose
//! changes are too large for a delta is published before it ends, as a snapshot that
//! streams while it compiles (`streaming`).

use super::encoded::CompiledTable;
use super::streaming::StreamingSnapshot;
use super::{compiler, incremental};
use crate::catalog::Catalog;
use prost::Message;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use switchboard_proto::service::Tasks;
use switchboard_proto::v1 as pb;
use tokio::sync::watch;

/// Deltas kept for nodes that are a little behind.
const KEPT_DELTAS: usize = 64;
/// Deltas larger than this are sent as snapshots instead.
const MAX_DELTA_BYTES: usize = 2 * 1024 * 1024;

/// One published routing table with the recent deltas that lead to it.
#[derive(Debug)]
pub struct Published {
    pub table: Arc<CompiledTable>,
    /// Oldest first; each delta's `to_version` is the next one's `from_version`, the last
    /// ends at `table.version`.
    deltas: VecDeque<Arc<pb::Delta>>,
    chunks: OnceLock<Arc<Vec<pb::SnapshotChunk>>>,
    /// A newer version still compiling whose snapshot nodes get as it is compiled.
    pub streaming: Option<Arc<StreamingSnapshot>>,
}

impl Published {
    fn new(table: Arc<CompiledTable>, deltas: VecDeque<Arc<pb::Delta>>) -> Self {
        Self {
            table,
            deltas,
            chunks: OnceLock::new(),
            streaming: None,
        }
    }

    /// This table, with (or without) a newer version streaming.
    fn with_streaming(&self, streaming: Option<Arc<StreamingSnapshot>>) -> Self {
        Self {
            table: self.table.clone(),
            deltas: self.deltas.clone(),
            chunks: self.chunks.clone(),
            streaming,
        }
    }

    pub fn version(&self) -> i64 {
        self.table.version
    }

    /// The merged changes from `held` to the current version, when `held` is a recent
    /// version of this table and the result is small; `None` means "send a snapshot".
    pub fn delta_from(&self, held: i64) -> Option<pb::Delta> {
        let start = self.deltas.iter().position(|d| d.from_version == held)?;
        // Cheap bound before merging: the merged delta is at most the sum of the parts.
        let upper: usize = self
            .deltas
            .iter()
            .skip(start)
            .map(|d| d.encoded_len())
            .sum();
        if upper > MAX_DELTA_BYTES
            && self
                .deltas
                .iter()
                .skip(start)
                .any(|d| d.encoded_len() > MAX_DELTA_BYTES)
        {
            return None;
        }
        let mut changes: HashMap<&str, Option<&pb::RoutingEntry>> = HashMap::new();
        for delta in self.deltas.iter().skip(start) {
            for removed in &delta.removals {
                changes.insert(removed, None);
            }
            for upsert in &delta.upserts {
                changes.insert(&upsert.key, Some(upsert));
            }
        }
        let mut merged = pb::Delta {
            from_version: held,
            to_version: self.table.version,
            ..Default::default()
        };
        for (key, change) in changes {
            match change {
                Some(entry) => merged.upserts.push(entry.clone()),
                None => merged.removals.push(key.to_owned()),
            }
        }
        (merged.encoded_len() <= MAX_DELTA_BYTES).then_some(merged)
    }

    /// The full table in chunks, computed once per version and shared by all sessions.
    pub fn snapshot_chunks(&self) -> Arc<Vec<pb::SnapshotChunk>> {
        self.chunks
            .get_or_init(|| Arc::new(chunk(&self.table)))
            .clone()
    }
}

fn chunk(table: &CompiledTable) -> Vec<pb::SnapshotChunk> {
    let chunks = table.chunks();
    let count = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, entries)| pb::SnapshotChunk {
            version: table.version,
            chunk_index: u32::try_from(i).unwrap_or(u32::MAX),
            chunk_count: count,
            entries,
            counts: (i == 0).then(|| table.counts()),
        })
        .collect()
}

/// Compiles the current catalog, then keeps compiling on change (the task "routing
/// publisher") until the tasks stop. Returns the receiver sessions subscribe to.
pub async fn start(
    catalog: Catalog,
    poll: Duration,
    tasks: &mut Tasks,
) -> crate::catalog::Result<watch::Receiver<Arc<Published>>> {
    let table = compiler::compile(&catalog).await?;
    metrics::gauge!("switchboard_routing_compiled_version").set(table.version as f64);
    let (tx, rx) = watch::channel(Arc::new(Published::new(Arc::new(table), VecDeque::new())));
    let mut shutdown = tasks.stop_signal();
    tasks.spawn("routing publisher", async move {
        loop {
            tokio::select! {
                _ = catalog.routing_changed() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.wait_for(|stop| *stop) => return Ok::<(), std::convert::Infallible>(()),
            }
            let current = tx.borrow().clone();
            match catalog.routing_version().await {
                Ok(version) if version == current.version() => continue,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "routing version poll failed; keeping the last table");
                    continue;
                }
            }
            let started = std::time::Instant::now();
            let stream = Arc::new(StreamingSnapshot::new(
                current.table.clone(),
                MAX_DELTA_BYTES,
            ));
            // A task of its own: a compile reading rows as fast as they come would keep
            // this one from noticing that the stream opened until it ends.
            let mut compiling = tokio::spawn({
                let (catalog, current, stream) =
                    (catalog.clone(), current.table.clone(), stream.clone());
                async move { next(&catalog, &current, &stream).await }
            });
            let mut announced = false;
            let compiled = loop {
                tokio::select! {
                    compiled = &mut compiling => break compiled.unwrap_or_else(|e| {
                        Err(crate::catalog::Error::Database(sea_orm::DbErr::Custom(format!(
                            "routing compile task failed: {e}"
                        ))))
                    }),
                    () = stream.opened(), if !announced => {
                        announced = true;
                        metrics::counter!("switchboard_routing_streamed_snapshots_total").increment(1);
                        tracing::info!(
                            version = stream.version(),
                            "routing changes too large for a delta; streaming the snapshot while compiling"
                        );
                        let _ = tx.send(Arc::new(current.with_streaming(Some(stream.clone()))));
                    }
                }
            };
            let (table, delta, incremental) = match compiled {
                Ok(next) => next,
                Err(err) => {
                    tracing::warn!(error = %err, "routing compile failed; keeping the last table");
                    stream.fail();
                    if announced {
                        let _ = tx.send(Arc::new(current.with_streaming(None)));
                    }
                    continue;
                }
            };
            let mut deltas = current.deltas.clone();
            match delta {
                Some(delta) => deltas.push_back(Arc::new(delta)),
                // Too large to send: nodes behind this version get a snapshot.
                None => deltas.clear(),
            }
            while deltas.len() > KEPT_DELTAS {
                deltas.pop_front();
            }
            tracing::info!(
                version = table.version,
                entries = table.len(),
                incremental,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "routing table compiled"
            );
            metrics::gauge!("switchboard_routing_compiled_version").set(table.version as f64);
            let _ = tx.send(Arc::new(Published::new(table, deltas)));
        }
    });
    Ok(rx)
}

/// The table at the catalog's current version with the delta from `current` (`None`: too
/// large to send), and whether it was built incrementally: from the changes since
/// `current` when the audit log accounts for all of them, else by a full compile (whose
/// segments go to `stream`) and diff.
async fn next(
    catalog: &Catalog,
    current: &Arc<CompiledTable>,
    stream: &Arc<StreamingSnapshot>,
) -> crate::catalog::Result<(Arc<CompiledTable>, Option<pb::Delta>, bool)> {
    if let Some((table, delta)) = incremental::compile(catalog, current).await? {
        let delta = (delta.encoded_len() <= MAX_DELTA_BYTES).then_some(delta);
        metrics::counter!("switchboard_routing_compiles_total", "kind" => "incremental")
            .increment(1);
        return Ok((Arc::new(table), delta, true));
    }
    metrics::counter!("switchboard_routing_compiles_total", "kind" => "full").increment(1);
    let table = Arc::new(compiler::compile_streamed(catalog, stream.clone()).await?);
    if stream.is_open() {
        // The changes were counted past the delta limit while compiling.
        return Ok((table, None, false));
    }
    let (old, new) = (current.clone(), table.clone());
    let delta =
        tokio::task::spawn_blocking(move || CompiledTable::diff(&old, &new, MAX_DELTA_BYTES))
            .await
            .unwrap_or_default();
    Ok((table, delta, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str) -> pb::RoutingEntry {
        pb::RoutingEntry {
            key: key.into(),
            entry: None,
        }
    }

    #[test]
    fn deltas_merge_from_any_kept_version_and_unknown_versions_get_snapshots() {
        let d1 = pb::Delta {
            from_version: 1,
            to_version: 2,
            upserts: vec![entry("a"), entry("b")],
            removals: vec![],
        };
        let d2 = pb::Delta {
            from_version: 2,
            to_version: 3,
            upserts: vec![entry("c")],
            removals: vec!["a".into()],
        };
        let table = Arc::new(crate::routing::encoded::Builder::default().finish(3));
        let p = Published::new(table, VecDeque::from([Arc::new(d1), Arc::new(d2)]));
        let merged = p.delta_from(1).unwrap_or_default();
        let mut keys: Vec<_> = merged.upserts.iter().map(|e| e.key.clone()).collect();
        keys.sort();
        assert_eq!(keys, ["b", "c"]);
        assert_eq!(merged.removals, ["a"]);
        assert_eq!((merged.from_version, merged.to_version), (1, 3));
        assert!(p.delta_from(7).is_none());
        assert!(p.delta_from(3).is_none());
    }

    #[test]
    fn snapshots_are_chunked_under_the_message_limit() {
        let mut table = crate::routing::encoded::Builder::default();
        for i in 0..40_000 {
            table.push(&entry(&format!("t:{i:08}-{}", "x".repeat(40))));
        }
        let chunks = chunk(&table.finish(9));
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.encoded_len() < 2 * 1024 * 1024));
        let decoded: usize = chunks
            .iter()
            .map(|c| {
                pb::RoutingEntries::decode(c.entries.clone())
                    .map(|e| e.entries.len())
                    .unwrap_or_default()
            })
            .sum();
        assert_eq!(decoded, 40_000);
        assert!(
            chunks
                .iter()
                .all(|c| c.chunk_count as usize == chunks.len())
        );
        // Only the first chunk announces the counts (entries without a kind count nowhere).
        assert_eq!(chunks[0].counts, Some(pb::EntryCounts::default()));
        assert!(chunks[1..].iter().all(|c| c.counts.is_none()));
    }
}
