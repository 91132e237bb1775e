//! The data plane's HTTP port: the platform API (`platform`: the API trigger, executions,
//! test runs; `conversations`), Meta's webhook (`webhook`), `/healthz`, `/readyz` and
//! `/metrics`, with request metrics (`metrics`) on every route, served by `serve`.

mod conversations;
mod metrics;
pub mod platform;
pub mod serve;
mod webhook;

pub use metrics::recorder as metrics_recorder;

use crate::routing::RoutingSlot;
use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    slot: Arc<RoutingSlot>,
    metrics: Option<PrometheusHandle>,
}

/// Everything the HTTP port serves; run it with [`serve::run`].
pub fn app(
    slot: Arc<RoutingSlot>,
    metrics: Option<PrometheusHandle>,
    platform: platform::PlatformState,
    whatsapp: crate::whatsapp::WhatsApp,
) -> Arc<serve::App> {
    let conversations = conversations::routes(platform.platform.clone());
    let platform = Arc::new(platform);
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState { slot, metrics })
        .merge(webhook::routes(whatsapp))
        .merge(conversations)
        .merge(platform::routes(platform.clone()))
        .layer(self::metrics::RequestMetrics);
    Arc::new(serve::App::new(router, platform))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// 200 once a routing table is loaded (DESIGN §4), 503 before.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let connected = state.slot.connected();
    match state.slot.load() {
        Some(loaded) => (
            StatusCode::OK,
            Json(json!({
                "routing_version": loaded.table.version(),
                "source": loaded.source.as_str(),
                "control_plane_connected": connected,
            })),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": {"code": "not_ready", "message": "no routing table loaded yet"},
                "control_plane_connected": connected,
            })),
        ),
    }
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.map(|m| m.render()).unwrap_or_default(),
    )
}
