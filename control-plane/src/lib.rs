//! Switchboard control plane: owns the trigger catalog (sea-orm over PostgreSQL or SQLite),
//! serves the `TriggerAdmin` gRPC API, and exposes `/healthz` and `/metrics` over HTTP.
//!
//! Layout: `catalog` holds every rule and query; `admin` is the gRPC edge; `auth` checks
//! tokens; `console` is the operator web console and `http` serves it on the HTTP port with
//! health and metrics; `routing` compiles and distributes routing tables; `db` has one
//! entity per table. [`run`] wires them.
#![forbid(unsafe_code)]

mod admin;
mod auth;
pub mod catalog;
pub mod config;
pub mod console;
pub mod db;
mod error;
mod http;
pub mod routing;

pub use config::{Config, MigrateConfig};
pub use error::Error;
pub use switchboard_proto::service::Listeners;

/// How often each replica polls the routing version for changes made through other
/// replicas on the same database (see docs/operations.md).
pub const ROUTING_POLL: std::time::Duration = std::time::Duration::from_millis(200);

use std::future::Future;
use std::sync::OnceLock;
use switchboard_migrations::{Migrator, MigratorTrait};
use switchboard_proto::service::Tasks;
use switchboard_proto::v1::trigger_admin_server::TriggerAdminServer;
use tonic::transport::server::TcpIncoming;

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> Result<metrics_exporter_prometheus::PrometheusHandle, Error> {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    // One initialiser even when several control planes start at once (tests): the handle
    // kept is always the one of the recorder that was installed.
    Ok(HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone())
}

/// Applies pending migrations and returns the names of those applied.
pub async fn migrate(db: &sea_orm::DatabaseConnection) -> Result<Vec<String>, Error> {
    let pending: Vec<String> = Migrator::get_pending_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    Migrator::up(db, None).await?;
    Ok(pending)
}

/// Runs the control plane on `listeners` until `shutdown` completes, then stops accepting,
/// finishes in-flight calls and returns; or until one of its tasks fails (the error names
/// it).
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let db = db::connect(&config.database_url).await?;
    let applied = migrate(&db).await?;
    if applied.is_empty() {
        tracing::info!("catalog schema is up to date");
    } else {
        tracing::info!(migrations = ?applied, "applied catalog migrations");
    }
    let catalog = catalog::Catalog::new(db);
    let metrics = metrics_handle()?;
    let mut tasks = Tasks::default();
    let Listeners { http, grpc } = listeners;

    let published = routing::publisher::start(catalog.clone(), ROUTING_POLL, &mut tasks)
        .await
        .map_err(|e| match e {
            catalog::Error::Database(db) => Error::Database(db),
            other => Error::Routing(other.to_string()),
        })?;
    let distribution =
        switchboard_proto::v1::routing_distribution_server::RoutingDistributionServer::new(
            routing::distribution::DistributionService::new(
                catalog.clone(),
                published,
                &config.node_token,
            ),
        );

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<TriggerAdminServer<admin::AdminService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(switchboard_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let admin = TriggerAdminServer::with_interceptor(
        admin::AdminService::new(catalog.clone()),
        auth::BearerAuth::new(&config.admin_token),
    );

    let grpc_addr = grpc.local_addr()?;
    let http_addr = http.local_addr()?;
    tracing::info!(grpc = %grpc_addr, http = %http_addr, "control plane listening");

    let console = console::Console::new(catalog.clone(), &config.admin_token, &config.node_token);
    let http_server = axum::serve(http, http::router(catalog, metrics, console))
        .with_graceful_shutdown(tasks.stopped());
    tasks.spawn("HTTP server", async { http_server.await });
    tasks.spawn(
        "gRPC server",
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(admin)
            .add_service(distribution)
            // Nagle off on accepted connections: HTTP/2 writes an answer in several small
            // frames, and Nagle with delayed ACKs would hold the last one ~40 ms.
            .serve_with_incoming_shutdown(
                TcpIncoming::from(grpc).with_nodelay(Some(true)),
                tasks.stopped(),
            ),
    );
    tasks.run(shutdown).await?;
    tracing::info!("control plane stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM (for binaries embedding the control plane).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            tracing::info!("shutdown requested");
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutdown requested");
}
