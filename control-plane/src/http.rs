//! The control plane's HTTP port: the operator console (`/console/`, see `crate::console`),
//! `/healthz` and `/metrics`.

use crate::catalog::Catalog;
use crate::console::{self, Console};
use axum::response::Redirect;
use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

#[derive(Clone)]
struct AppState {
    catalog: Catalog,
    metrics: PrometheusHandle,
}

pub fn router(catalog: Catalog, metrics: PrometheusHandle, console: Console) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState { catalog, metrics })
        .merge(console::routes(console))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// 200 while the catalog database answers, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.catalog.routing_version().await {
        Ok(version) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "routing_version": version })),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "database" })),
            )
        }
    }
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(version) = state.catalog.routing_version().await {
        metrics::gauge!("switchboard_routing_version").set(version as f64);
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
