//! `RoutingDistribution.Sync`: one session per connected data-plane node. The session sends
//! the first table (snapshot or delta) after the node's hello, then one message per
//! published version change, records the node's ACK/NACKs and heartbeats, and marks the
//! node disconnected when the stream ends.

use super::publisher::Published;
use super::streaming::StreamingSnapshot;
use crate::catalog::{Applied, Catalog, NodeHello};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::routing_distribution_server::RoutingDistribution;
use switchboard_proto::v1::sync_request::Msg as In;
use switchboard_proto::v1::sync_response::Msg as Out;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Metadata key carrying the node token.
pub const NODE_TOKEN_HEADER: &str = "x-switchboard-node-token";
/// How often each side says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a node may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct DistributionService {
    catalog: Catalog,
    published: watch::Receiver<Arc<Published>>,
    node_token: Arc<[u8]>,
}

impl std::fmt::Debug for DistributionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DistributionService")
    }
}

impl DistributionService {
    pub fn new(
        catalog: Catalog,
        published: watch::Receiver<Arc<Published>>,
        node_token: &str,
    ) -> Self {
        Self {
            catalog,
            published,
            node_token: Arc::from(node_token.as_bytes()),
        }
    }

    fn authenticate<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let presented = request
            .metadata()
            .get(NODE_TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if bool::from(presented.ct_eq(&self.node_token)) {
            Ok(())
        } else {
            let peer = request
                .remote_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::warn!(%peer, "routing sync refused: missing or wrong node token");
            Err(Status::unauthenticated("missing or invalid node token"))
        }
    }
}

type SyncStream = Pin<Box<dyn Stream<Item = Result<pb::SyncResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RoutingDistribution for DistributionService {
    type SyncStream = SyncStream;

    async fn sync(
        &self,
        request: Request<Streaming<pb::SyncRequest>>,
    ) -> Result<Response<SyncStream>, Status> {
        self.authenticate(&request)?;
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(pb::SyncRequest {
                msg: Some(In::Hello(hello)),
            }))) => hello,
            Ok(Err(status)) => return Err(status),
            _ => {
                return Err(Status::invalid_argument(
                    "hello: the first message must be a hello",
                ));
            }
        };
        let node_id = hello.node_id.trim().to_owned();
        if node_id.is_empty() || node_id.len() > 128 {
            return Err(Status::invalid_argument("node_id: 1 to 128 characters"));
        }
        // An address the console could not dial is not recorded.
        let grpc_address = Some(hello.grpc_address.trim())
            .filter(|a| a.len() <= 256 && (a.starts_with("http://") || a.starts_with("https://")))
            .unwrap_or_default();
        self.catalog
            .node_connected(&NodeHello {
                node_id: &node_id,
                address: &hello.address,
                grpc_address,
                build_version: &hello.build_version,
                held_version: hello.held_version,
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "recording node failed");
                Status::unavailable("catalog unavailable")
            })?;
        tracing::info!(
            node_id = %node_id,
            address = %hello.address,
            held_version = hello.held_version,
            "data plane connected"
        );
        let (tx, rx) = mpsc::channel(4);
        let session = Session {
            node_id,
            catalog: self.catalog.clone(),
            published: self.published.clone(),
            tx,
        };
        tokio::spawn(session.run(hello.held_version, inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Session {
    node_id: String,
    catalog: Catalog,
    published: watch::Receiver<Arc<Published>>,
    tx: mpsc::Sender<Result<pb::SyncResponse, Status>>,
}

impl Session {
    async fn run(mut self, held: i64, mut inbound: Streaming<pb::SyncRequest>) {
        metrics::gauge!("switchboard_dataplane_nodes_connected").increment(1.0);
        // A node holding nothing says 0; no table is "at" version -1, so it gets a snapshot.
        let mut sent = if held > 0 { held } else { -1 };
        let mut applied = held;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.reset();
        let current = self.published.borrow_and_update().clone();
        let mut alive = self.send_table(&current, &mut sent).await;
        while alive {
            tokio::select! {
                changed = self.published.changed() => {
                    if changed.is_err() {
                        break; // the control plane is shutting down
                    }
                    let current = self.published.borrow_and_update().clone();
                    alive = self.send_table(&current, &mut sent).await;
                    self.report_lag(current.version(), applied);
                }
                message = inbound.message() => match message {
                    Ok(Some(pb::SyncRequest { msg: Some(msg) })) => {
                        if let Some(version) = self.receive(msg).await {
                            applied = version;
                            self.report_lag(self.published.borrow().version(), applied);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                },
                _ = heartbeat.tick() => {
                    let beat = Out::Heartbeat(pb::Heartbeat { version: sent });
                    alive = self.send(beat).await;
                }
            }
        }
        metrics::gauge!("switchboard_dataplane_nodes_connected").decrement(1.0);
        if let Err(err) = self.catalog.node_disconnected(&self.node_id).await {
            tracing::warn!(node_id = %self.node_id, error = %err, "recording disconnect failed");
        }
        tracing::info!(node_id = %self.node_id, "data plane disconnected");
    }

    /// Brings the node from `sent` to the published version: nothing when it has it, a
    /// delta when one reaches it, else a full snapshot — of the version still compiling,
    /// when one streams.
    async fn send_table(&self, published: &Published, sent: &mut i64) -> bool {
        if let Some(stream) = &published.streaming {
            if stream.version() == Some(*sent) {
                // The node has it already (from another replica); the compiled table
                // follows.
                return true;
            }
            return self.send_streamed(stream, sent).await;
        }
        let version = published.version();
        if *sent == version {
            // Tell the node its table is current (it may have loaded it from disk).
            return self.send(Out::Heartbeat(pb::Heartbeat { version })).await;
        }
        let ok = match published.delta_from(*sent) {
            Some(delta) => {
                tracing::debug!(node_id = %self.node_id, from = *sent, to = version, "sending delta");
                self.send(Out::Delta(delta)).await
            }
            None => {
                let chunks = published.snapshot_chunks();
                tracing::info!(
                    node_id = %self.node_id,
                    from = *sent,
                    version,
                    chunks = chunks.len(),
                    "sending snapshot"
                );
                let mut ok = true;
                for chunk in chunks.iter() {
                    ok = self.send(Out::Snapshot(chunk.clone())).await;
                    if !ok {
                        break;
                    }
                }
                ok
            }
        };
        if ok {
            *sent = version;
        }
        ok
    }

    /// Sends the snapshot `stream` compiles, chunk by chunk as it is compiled.
    async fn send_streamed(&self, stream: &StreamingSnapshot, sent: &mut i64) -> bool {
        tracing::info!(
            node_id = %self.node_id,
            from = *sent,
            version = stream.version(),
            "sending snapshot while compiling"
        );
        let mut chunks = stream.chunks();
        loop {
            match chunks.next().await {
                Ok(Some(chunk)) => {
                    let version = chunk.version;
                    let last = chunk.chunk_count != 0;
                    if !self.send(Out::Snapshot(chunk)).await {
                        return false;
                    }
                    if last {
                        *sent = version;
                        return true;
                    }
                }
                Ok(None) => return true,
                Err(err) => {
                    // The node drops the partial snapshot and reconnects to the table that
                    // stands.
                    tracing::warn!(node_id = %self.node_id, error = %err, "ending the session");
                    let _ = self.tx.send(Err(Status::aborted(err.to_string()))).await;
                    return false;
                }
            }
        }
    }

    async fn send(&self, msg: Out) -> bool {
        self.tx
            .send(Ok(pb::SyncResponse { msg: Some(msg) }))
            .await
            .is_ok()
    }

    /// Records what the node says; returns the version it applied, if it said one.
    async fn receive(&self, msg: In) -> Option<i64> {
        let (result, applied) = match msg {
            In::Ack(ack) => (
                self.catalog
                    .node_applied(&self.node_id, ack.version, Applied::Ack)
                    .await,
                Some(ack.version),
            ),
            In::Nack(nack) => {
                let reasons: Vec<String> = nack
                    .rejected
                    .iter()
                    .take(10)
                    .map(|r| format!("{}: {}", r.key, r.reason))
                    .collect();
                let more = nack.rejected.len().saturating_sub(reasons.len());
                let mut summary = format!(
                    "version {}: rejected {} entr{}: {}",
                    nack.version,
                    nack.rejected.len(),
                    if nack.rejected.len() == 1 { "y" } else { "ies" },
                    reasons.join("; ")
                );
                if more > 0 {
                    summary.push_str(&format!(" (+{more} more)"));
                }
                tracing::warn!(node_id = %self.node_id, %summary, "data plane refused entries");
                (
                    self.catalog
                        .node_applied(&self.node_id, nack.version, Applied::Nack(summary))
                        .await,
                    Some(nack.version),
                )
            }
            In::Heartbeat(_) => (self.catalog.node_seen(&self.node_id).await, None),
            In::Hello(_) => (Ok(()), None),
        };
        if let Err(err) = result {
            tracing::warn!(node_id = %self.node_id, error = %err, "recording node state failed");
        }
        applied
    }

    fn report_lag(&self, latest: i64, applied: i64) {
        metrics::gauge!("switchboard_dataplane_node_lag", "node_id" => self.node_id.clone())
            .set((latest - applied).max(0) as f64);
    }
}
