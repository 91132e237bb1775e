//! The data plane's HTTP port: the platform API (`platform`), Meta's webhook and the
//! conversation endpoints (`whatsapp`), `/healthz`, `/readyz` and
//! `/metrics`, with request metrics (`metrics`) on every route.

mod metrics;
pub mod platform;
pub mod whatsapp;

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

pub fn router(
    slot: Arc<RoutingSlot>,
    metrics: Option<PrometheusHandle>,
    platform: platform::PlatformState,
    whatsapp: crate::whatsapp::WhatsApp,
) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState { slot, metrics })
        .merge(whatsapp::routes(whatsapp::WhatsAppState {
            whatsapp,
            platform: platform.clone(),
        }))
        .merge(platform::routes(platform))
        .layer(self::metrics::RequestMetrics)
        .layer(tower_http::trace::TraceLayer::new_for_http())
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
