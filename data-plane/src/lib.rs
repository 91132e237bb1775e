//! Switchboard data plane: holds the routing table in memory (swapped whole, fed by the
//! control plane's routing stream, persisted to disk) and serves HTTP from it.
//!
//! Layout: `routing` holds the table, its slot, its file and the sync stream; `http` serves
//! the HTTP port; [`run`] wires them.
#![forbid(unsafe_code)]

pub mod config;
mod http;
pub mod routing;

pub use config::Config;

use routing::{RoutingSlot, RoutingTable, Source, snapshot_file};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Version reported to the control plane in the routing hello.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
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

    let mut stopped = stop_rx;
    axum::serve(http, http::router(slot, metrics))
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await?;
    let _ = follower.await;
    tracing::info!("data plane stopped");
    Ok(())
}
