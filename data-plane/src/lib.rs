//! Switchboard data plane: holds the routing table in memory (swapped whole, fed by the
//! control plane's routing stream, persisted to disk) and serves HTTP from it.
//!
//! Layout, bottom up: `routing` holds the table, its slot, its file and the sync stream;
//! `store` is the execution store (Redis or memory: executions, claims, the WhatsApp
//! state); `observer` decides observer mode; `whatsapp` takes Meta's webhook and ends
//! conversations; `api` holds the platform operations (API trigger, executions,
//! conversations, test runs); `sends` the send steps of runners through the Graph API;
//! `http` and `grpc` are the edges. [`run`] wires them.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
mod grpc;
mod http;
pub mod observer;
pub mod routing;
pub mod sends;
pub mod store;
pub mod time;
pub mod whatsapp;

pub use config::Config;
pub use http::metrics_recorder;

use routing::{RoutingSlot, RoutingTable, Source, snapshot_file};
use std::future::Future;
use std::sync::Arc;
use store::Store;
use switchboard_proto::v1::executions_server::ExecutionsServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

/// Version reported to the control plane in the routing hello.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("--redis-url: {0}")]
    Store(#[from] store::StoreError),
}

/// Loads the persisted snapshot into `slot` when it holds nothing yet. A damaged snapshot
/// is reported and ignored.
pub fn load_persisted(config: &Config, slot: &RoutingSlot) {
    if slot.load().is_some() {
        return;
    }
    match snapshot_file::load(&config.state_dir) {
        Ok(Some(snapshot)) => {
            let table = RoutingTable::build(snapshot.version, snapshot.entries);
            tracing::info!(
                version = table.version(),
                "serving the routing table persisted on disk"
            );
            slot.store(Arc::new(table), Source::Disk);
        }
        Ok(None) => tracing::info!("no persisted routing table; waiting for the control plane"),
        Err(err) => tracing::error!(error = %err, "ignoring the persisted routing table"),
    }
}

/// Runs the data plane until `shutdown` completes. `slot` is passed in so that callers
/// (tests, `switchboard dev`) can watch the table.
pub async fn run(
    config: Config,
    http: TcpListener,
    grpc: TcpListener,
    slot: Arc<RoutingSlot>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    load_persisted(&config, &slot);

    let address = http.local_addr()?;
    let follow = routing::sync::Follow {
        control_plane: config.control_plane.clone(),
        node_id: config
            .node_id
            .clone()
            .unwrap_or_else(config::default_node_id),
        node_token: config.node_token.clone(),
        address: address.to_string(),
        state_dir: config.state_dir.clone(),
    };
    tracing::info!(http = %address, node_id = %follow.node_id, "data plane listening");
    let follower = tokio::spawn(routing::sync::follow(follow, slot.clone(), stop_rx.clone()));

    let store = Store::open(
        &config.redis_url,
        &config.redis_key_prefix,
        config.execution_retention,
    )?;
    match store.kind() {
        store::Kind::Memory => tracing::warn!(
            "execution store: in-process memory (dev only: one node, lost on restart)"
        ),
        store::Kind::Redis => match store.ping().await {
            Ok(()) => tracing::info!(
                url = %config::redacted_url(&config.redis_url),
                prefix = %config.redis_key_prefix,
                "execution store: Redis"
            ),
            Err(err) => tracing::warn!(
                error = %err,
                "execution store: Redis unreachable; answering 503 until it is back"
            ),
        },
    }
    let whatsapp = whatsapp::WhatsApp::new(
        slot.clone(),
        store.clone(),
        config.meta_app_secret.clone(),
        config.meta_verify_token.clone(),
    );
    if config.meta_app_secret.as_deref().is_none_or(str::is_empty) {
        tracing::warn!("no --meta-app-secret: webhook POSTs are refused with 503");
    }
    let lifecycle = whatsapp::Lifecycle::new(slot.clone(), store.clone());
    let sweeper = tokio::spawn(
        lifecycle
            .clone()
            .sweep(config.conversation_inactivity, stop_rx.clone()),
    );
    // Stream entries outlive nothing they point to: trimmed to the retention every minute.
    {
        let (store, mut stopped) = (store.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
                if let Err(err) = store.trim_streams(time::now_ms()).await {
                    tracing::warn!(error = %err, "trimming streams failed");
                }
            }
        });
    }
    let sender = sends::Sender::new(slot.clone(), store.clone(), &config.graph_api_base);
    let platform = api::Platform::new(slot.clone(), store, lifecycle);
    if let Some(handle) = metrics.clone() {
        // Histograms keep raw samples until rendered; drain them even when nobody scrapes.
        let mut stopped = stop_rx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = every.tick() => handle.run_upkeep(),
                    _ = stopped.wait_for(|s| *s) => break,
                }
            }
        });
    }

    let grpc_addr = grpc.local_addr()?;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ExecutionsServer<grpc::ExecutionsService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(switchboard_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let executions = ExecutionsServer::new(grpc::ExecutionsService::new(
        platform.clone(),
        sender,
        &config.runner_token,
    ));
    tracing::info!(grpc = %grpc_addr, "Executions service listening");
    let grpc_server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(executions)
        // Nagle off on accepted connections: HTTP/2 writes an answer in several small
        // frames, and Nagle with delayed ACKs would hold the last one ~40 ms.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(grpc).with_nodelay(Some(true)),
            stopped(stop_rx.clone()),
        );

    let app = http::app(
        slot,
        metrics,
        http::platform::PlatformState {
            platform,
            trust_forwarded_for: config.trust_forwarded_for,
        },
        whatsapp,
    );
    let http_server = http::serve::run(http, app, stopped(stop_rx));
    let (grpc_result, http_result) = tokio::join!(grpc_server, http_server);
    let _ = follower.await;
    let _ = sweeper.await;
    grpc_result?;
    http_result?;
    tracing::info!("data plane stopped");
    Ok(())
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
