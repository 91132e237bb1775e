//! Follows the control plane over `RoutingDistribution.Sync`: says hello with the version
//! it holds, builds every received table off the hot path, swaps it in, persists it, then
//! ACKs (or NACKs the refused entries). Reconnects with jittered exponential backoff capped
//! at 10 s; while disconnected the last table keeps serving.

use super::slot::{RoutingSlot, Source};
use super::snapshot_file;
use super::table::{Builder, ParsedChunk, RoutingTable};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::routing_distribution_client::RoutingDistributionClient;
use switchboard_proto::v1::sync_request::Msg as Out;
use switchboard_proto::v1::sync_response::Msg as In;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

const HEARTBEAT: Duration = Duration::from_secs(10);
/// Silence after which the control plane is presumed gone.
const SILENCE: Duration = Duration::from_secs(35);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// Parsed snapshot chunks queued for the adder before the stream waits.
const PARSE_AHEAD: usize = 2;
/// Entries a snapshot chunk can hold at most (1 MiB chunks, no entry under 16 bytes): bounds
/// the table size a snapshot's announced counts can reserve.
const MAX_ENTRIES_PER_CHUNK: usize = 64 * 1024;
/// The same bound for a snapshot that does not say its chunk count (one sent while the
/// control plane compiles it); a larger table grows.
const MAX_RESERVED_UNCOUNTED: usize = 1 << 22;

/// What the follower needs to know.
#[derive(Clone, Debug)]
pub struct Follow {
    pub control_plane: String,
    pub node_id: String,
    pub node_token: String,
    /// Address this node serves HTTP on, reported in the hello.
    pub address: String,
    /// Where its `Executions` gRPC service is reached, reported in the hello.
    pub grpc_address: String,
    pub state_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("control plane: {0}")]
    Status(#[from] tonic::Status),
    #[error("{0}")]
    Protocol(String),
    #[error("control plane silent for {0:?}")]
    Silent(Duration),
}

/// Runs until `shutdown` fires.
pub async fn follow(config: Follow, slot: Arc<RoutingSlot>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_START;
    loop {
        let result = tokio::select! {
            r = session(&config, &slot) => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        slot.set_connected(false);
        match result {
            Ok(applied_any) => {
                tracing::warn!("routing stream ended; reconnecting");
                if applied_any {
                    backoff = BACKOFF_START;
                }
            }
            Err(SessionError::Status(status)) if status.code() == tonic::Code::Unauthenticated => {
                tracing::error!("control plane refused the node token; retrying");
            }
            Err(err) => tracing::warn!(error = %err, "routing stream failed; reconnecting"),
        }
        // Full jitter in [backoff/2, backoff].
        let half = backoff / 2;
        let wait = half + half.mul_f64(rand::random::<f64>());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(BACKOFF_CAP);
    }
}

/// One stream. Returns whether it applied at least one table.
async fn session(config: &Follow, slot: &RoutingSlot) -> Result<bool, SessionError> {
    let endpoint = tonic::transport::Endpoint::from_shared(config.control_plane.clone())?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    let channel = endpoint.connect().await?;
    let mut client = RoutingDistributionClient::new(channel);
    let (tx, rx) = mpsc::channel::<pb::SyncRequest>(8);
    let held = slot.table().map_or(0, |t| t.version());
    let hello = pb::Hello {
        node_id: config.node_id.clone(),
        address: config.address.clone(),
        build_version: crate::BUILD_VERSION.to_owned(),
        held_version: held,
        grpc_address: config.grpc_address.clone(),
    };
    send(&tx, Out::Hello(hello)).await?;
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    let token = config
        .node_token
        .parse()
        .map_err(|_| SessionError::Protocol("--node-token is not a valid header value".into()))?;
    request
        .metadata_mut()
        .insert("x-switchboard-node-token", token);
    let mut inbound = client.sync(request).await?.into_inner();
    slot.set_connected(true);
    tracing::info!(control_plane = %config.control_plane, held_version = held, "connected to control plane");

    let mut applied_any = false;
    let mut pending: Option<Pending> = None;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.reset();
    loop {
        let message = tokio::select! {
            m = tokio::time::timeout(SILENCE, inbound.message()) => m,
            _ = heartbeat.tick() => {
                let version = slot.table().map_or(0, |t| t.version());
                send(&tx, Out::Heartbeat(pb::Heartbeat { version })).await?;
                continue;
            }
        };
        let msg = match message {
            Err(_) => return Err(SessionError::Silent(SILENCE)),
            Ok(Err(status)) => return Err(status.into()),
            Ok(Ok(None)) => return Ok(applied_any),
            Ok(Ok(Some(pb::SyncResponse { msg: None }))) => continue,
            Ok(Ok(Some(pb::SyncResponse { msg: Some(msg) }))) => msg,
        };
        let table = match msg {
            In::Heartbeat(beat) => {
                // The control plane vouches for the table we hold (e.g. one read from disk).
                slot.confirm(beat.version);
                continue;
            }
            In::Snapshot(chunk) => match collect(pending.take(), chunk).await? {
                Collected::Partial(p) => {
                    pending = Some(p);
                    continue;
                }
                Collected::Complete(version, builder, started) => {
                    let table = build(move || builder.build(version)).await?;
                    tracing::info!(
                        version,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "snapshot received and indexed"
                    );
                    table
                }
            },
            In::Delta(delta) => {
                let current = slot
                    .table()
                    .ok_or_else(|| SessionError::Protocol("delta without a base table".into()))?;
                let started = Instant::now();
                let changes = (delta.upserts.len(), delta.removals.len());
                let table = build(move || current.apply(&delta))
                    .await?
                    .map_err(|e| SessionError::Protocol(e.to_string()))?;
                tracing::info!(
                    version = table.version(),
                    upserts = changes.0,
                    removals = changes.1,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "delta applied"
                );
                table
            }
        };
        let reply = install(config, slot, table).await;
        send(&tx, reply).await?;
        applied_any = true;
    }
}

/// Chunks of one snapshot being received. Each is decoded and parsed on the blocking pool
/// as it arrives (the received message is freed at once), several in parallel, and an
/// adder task adds them to the table in order; receiving, parsing and adding overlap, and
/// the stream waits only when [`PARSE_AHEAD`] parsed chunks are queued for the adder.
struct Pending {
    version: i64,
    next: u32,
    /// Chunks in the snapshot; 0 until a chunk says.
    count: u32,
    started: Instant,
    /// To the adder; `None` once the last chunk is in.
    parsing: Option<mpsc::Sender<ParseTask>>,
    adder: Option<JoinHandle<Result<Builder, SessionError>>>,
}

type ParseTask = JoinHandle<Result<ParsedChunk, SessionError>>;

enum Collected {
    Partial(Pending),
    /// The version, its entries, and when its first chunk arrived.
    Complete(i64, Box<Builder>, Instant),
}

impl Pending {
    fn start(first: &pb::SnapshotChunk) -> Self {
        // The announced counts size the table once; bounded by what the chunks can hold.
        let limit = match first.chunk_count {
            0 => MAX_RESERVED_UNCOUNTED,
            count => (count as usize).saturating_mul(MAX_ENTRIES_PER_CHUNK),
        };
        let mut builder = first
            .counts
            .map(|counts| Builder::with_counts(&counts, limit))
            .unwrap_or_default();
        let (tx, mut rx) = mpsc::channel::<ParseTask>(PARSE_AHEAD);
        let adder = tokio::spawn(async move {
            while let Some(parsing) = rx.recv().await {
                let parsed = parsing.await.map_err(|e| {
                    SessionError::Protocol(format!("snapshot chunk parse failed: {e}"))
                })??;
                builder = build(move || {
                    builder.add_parsed(parsed);
                    builder
                })
                .await?;
            }
            Ok(builder)
        });
        Self {
            version: first.version,
            next: 0,
            count: first.chunk_count,
            started: Instant::now(),
            parsing: Some(tx),
            adder: Some(adder),
        }
    }

    /// Waits for the adder to add every queued chunk; gives the builder.
    async fn finish(mut self) -> Result<Builder, SessionError> {
        self.parsing = None;
        let adder = self
            .adder
            .take()
            .ok_or_else(|| SessionError::Protocol("snapshot already finished".into()))?;
        adder
            .await
            .map_err(|e| SessionError::Protocol(format!("snapshot build failed: {e}")))?
    }
}

impl Drop for Pending {
    /// An abandoned snapshot (a new one started, or the stream ended) stops its adder.
    fn drop(&mut self) {
        if let Some(adder) = &self.adder {
            adder.abort();
        }
    }
}

async fn collect(
    pending: Option<Pending>,
    chunk: pb::SnapshotChunk,
) -> Result<Collected, SessionError> {
    let pending = if chunk.chunk_index == 0 {
        Some(Pending::start(&chunk))
    } else {
        pending
    };
    // A chunk that says the count must agree with every other that does.
    let count = chunk.chunk_count;
    let mut p = pending
        .filter(|p| {
            p.version == chunk.version
                && p.next == chunk.chunk_index
                && (count == 0 || chunk.chunk_index < count)
                && (count == 0 || p.count == 0 || p.count == count)
        })
        .ok_or_else(|| SessionError::Protocol("snapshot chunk out of order".into()))?;
    if count != 0 {
        p.count = count;
    }
    let parsing = tokio::task::spawn_blocking(move || {
        ParsedChunk::decode(&chunk.entries)
            .map_err(|e| SessionError::Protocol(format!("snapshot chunk: {e}")))
    });
    let queued = match &p.parsing {
        Some(tx) => tx.send(parsing).await.is_ok(),
        None => false,
    };
    if !queued {
        // The adder stopped early: it says why.
        return Err(match p.finish().await {
            Err(err) => err,
            Ok(_) => SessionError::Protocol("snapshot adder stopped".into()),
        });
    }
    p.next += 1;
    if p.count == 0 || p.next < p.count {
        return Ok(Collected::Partial(p));
    }
    tracing::debug!(
        version = p.version,
        chunks = p.count,
        elapsed_ms = p.started.elapsed().as_millis() as u64,
        "last snapshot chunk received"
    );
    let (version, started) = (p.version, p.started);
    Ok(Collected::Complete(
        version,
        Box::new(p.finish().await?),
        started,
    ))
}

/// Runs CPU-heavy table building on the blocking pool, away from request handling.
async fn build<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SessionError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SessionError::Protocol(format!("table build failed: {e}")))
}

/// Swaps the table in, persists it, and says how it went.
async fn install(config: &Follow, slot: &RoutingSlot, table: RoutingTable) -> Out {
    let table = Arc::new(table);
    let version = table.version();
    slot.store(table.clone(), Source::ControlPlane);
    let dir = config.state_dir.clone();
    let persisted = table.clone();
    let started = Instant::now();
    let saved = tokio::task::spawn_blocking(move || snapshot_file::save(&dir, &persisted)).await;
    match saved {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(error = %err, "could not persist the routing table"),
        Err(err) => tracing::error!(error = %err, "could not persist the routing table"),
    }
    let rejected = table.rejected();
    metrics::gauge!("switchboard_routing_rejected_entries").set(rejected.len() as f64);
    if rejected.is_empty() {
        tracing::info!(
            version,
            persist_ms = started.elapsed().as_millis() as u64,
            "routing table applied"
        );
        Out::Ack(pb::Ack { version })
    } else {
        tracing::warn!(
            version,
            rejected = rejected.len(),
            "routing table applied without refused entries"
        );
        Out::Nack(pb::Nack {
            version,
            rejected: rejected.to_vec(),
        })
    }
}

async fn send(tx: &mpsc::Sender<pb::SyncRequest>, msg: Out) -> Result<(), SessionError> {
    tx.send(pb::SyncRequest { msg: Some(msg) })
        .await
        .map_err(|_| SessionError::Protocol("request stream closed".into()))
}
