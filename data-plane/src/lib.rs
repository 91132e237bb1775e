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
mod error;
mod grpc;
mod http;
pub mod observer;
pub mod routing;
pub mod sends;
pub mod store;
pub mod time;
mod waiting;
pub mod whatsapp;

pub use config::Config;
pub use error::Error;
pub use http::metrics_recorder;
pub use switchboard_proto::service::Listeners;

use routing::{RoutingSlot, RoutingTable, Source, snapshot_file};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use switchboard_proto::service::Tasks;
use switchboard_proto::v1::executions_server::ExecutionsServer;
use tonic::transport::server::TcpIncoming;

/// Version reported to the control plane in the routing hello.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

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

/// Runs the data plane on `listeners` until `shutdown` completes, or until one of its tasks
/// fails (the error names it). `slot` is passed in so that callers (tests, `switchboard
/// dev`) can watch the table.
pub async fn run(
    config: Config,
    listeners: Listeners,
    slot: Arc<RoutingSlot>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    load_persisted(&config, &slot);
    let mut tasks = Tasks::default();
    let Listeners { http, grpc } = listeners;

    let address = http.local_addr()?;
    let grpc_address = config::advertised_grpc(&config, grpc.local_addr()?);
    let follow = routing::sync::Follow {
        control_plane: config.control_plane.clone(),
        node_id: config
            .node_id
            .clone()
            .unwrap_or_else(config::default_node_id),
        node_token: config.node_token.clone(),
        address: address.to_string(),
        grpc_address,
        state_dir: config.state_dir.clone(),
    };
    tracing::info!(http = %address, node_id = %follow.node_id, "data plane listening");
    let stop = tasks.stop_signal();
    tasks.spawn("routing follower", {
        let (slot, stop) = (slot.clone(), stop.clone());
        async move {
            routing::sync::follow(follow, slot, stop).await;
            Ok::<(), Error>(())
        }
    });

    let store = Store::open(
        &config.redis_url,
        &config.redis_key_prefix,
        config.execution_retention,
        store::DecisionLimits {
            retention_ms: i64::try_from(config.decision_retention.as_millis()).unwrap_or(i64::MAX),
            cap: config.decision_cap as usize,
        },
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
    tasks.spawn("conversation sweep", {
        let sweep = lifecycle
            .clone()
            .sweep(config.conversation_inactivity, stop.clone());
        async move {
            sweep.await;
            Ok::<(), Error>(())
        }
    });
    tasks.spawn("waiting timeout", {
        let sweep = waiting::sweep(store.clone(), config.waiting_timeout, stop.clone());
        async move {
            sweep.await;
            Ok::<(), Error>(())
        }
    });
    // Stream entries outlive nothing they point to: trimmed to the retention every minute.
    tasks.spawn(
        "stream trim",
        every(Duration::from_secs(60), stop.clone(), {
            let store = store.clone();
            move || {
                let store = store.clone();
                async move {
                    if let Err(err) = store.trim_streams(time::now_ms()).await {
                        tracing::warn!(error = %err, "trimming streams failed");
                    }
                }
            }
        }),
    );
    let sender = sends::Sender::new(slot.clone(), store.clone(), &config.graph_api_base);
    let platform = api::Platform::new(slot.clone(), store, lifecycle);
    if let Some(handle) = metrics.clone() {
        // Histograms keep raw samples until rendered; drain them even when nobody scrapes.
        tasks.spawn(
            "metrics upkeep",
            every(Duration::from_secs(5), stop.clone(), move || {
                handle.run_upkeep();
                std::future::ready(())
            }),
        );
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
        (sender, whatsapp.unrouted()),
        &config.runner_token,
        &config.node_token,
    ));
    tracing::info!(grpc = %grpc_addr, "Executions service listening");
    tasks.spawn(
        "gRPC server",
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(executions)
            // Nagle off on accepted connections: HTTP/2 writes an answer in several small
            // frames, and Nagle with delayed ACKs would hold the last one ~40 ms.
            .serve_with_incoming_shutdown(
                TcpIncoming::from(grpc).with_nodelay(Some(true)),
                tasks.stopped(),
            ),
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
    tasks.spawn("HTTP server", http::serve::run(http, app, tasks.stopped()));
    tasks.run(shutdown).await?;
    tracing::info!("data plane stopped");
    Ok(())
}

/// Runs `step` every `period` until `stop`.
async fn every<F: Future<Output = ()> + Send>(
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut step: impl FnMut() -> F + Send,
) -> Result<(), Error> {
    let mut ticks = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        step().await;
    }
}
