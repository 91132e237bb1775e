//! The data plane's HTTP port: the platform API (`platform`: the API trigger, executions,
//! test runs; `conversations`; `decisions`), Meta's webhook (`webhook`), `/healthz`, `/readyz` and
//! `/metrics`, served by `serve`.
//!
//! One way through for every request: the port's [`layers`] (tracing, request metrics — add
//! new ones there), then [`App::dispatch`], which answers the API trigger,
//! the hot path, by its handler directly and hands everything else to the axum router.
//! Skipping the router for the one route saves, per request, the router's clone of the
//! route's boxed service, the path-parameter map, the connect-info extension and the
//! extractor plumbing: together about a tenth of the data plane's CPU per API trigger
//! (docs/benchmarks.md). Both ways run the same handler and give the same answers.

mod conversations;
mod decisions;
mod metrics;
pub mod platform;
pub mod serve;
mod webhook;

pub use metrics::recorder as metrics_recorder;

use crate::routing::RoutingSlot;
use axum::extract::ConnectInfo;
use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use metrics::{RequestMetrics, RouteLabel};
use metrics_exporter_prometheus::PrometheusHandle;
use platform::PlatformState;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnFailure, Trace, TraceLayer};

/// What the HTTP port serves: the router, and the API trigger's state for its direct way.
pub struct App {
    router: Router,
    platform: Arc<PlatformState>,
}

#[derive(Clone)]
struct AppState {
    slot: Arc<RoutingSlot>,
    metrics: Option<PrometheusHandle>,
}

/// Everything the HTTP port serves; run it with [`serve::run`].
pub fn app(
    slot: Arc<RoutingSlot>,
    metrics: Option<PrometheusHandle>,
    platform: PlatformState,
    whatsapp: crate::whatsapp::WhatsApp,
) -> Arc<App> {
    let conversations = conversations::routes(platform.platform.clone());
    let decisions = decisions::routes(platform.platform.clone());
    let platform = Arc::new(platform);
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState { slot, metrics })
        .merge(webhook::routes(whatsapp))
        .merge(conversations)
        .merge(decisions)
        .merge(platform::routes(platform.clone()))
        // The router's only layer: every other one wraps the whole dispatch (`layers`).
        .layer(metrics::ExposeRoute);
    Arc::new(App { router, platform })
}

impl App {
    /// One request, after the port's layers: the API trigger directly, everything else
    /// through the router.
    async fn dispatch(
        self: Arc<Self>,
        mut request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<axum::body::Body> {
        if request.method() == Method::POST {
            let (parts, body) = request.into_parts();
            if let Some(workflow_id) = platform::start_path(parts.uri.path()) {
                let mut response = platform::start_execution(
                    &self.platform,
                    peer,
                    workflow_id,
                    &parts.headers,
                    axum::body::Body::new(body),
                )
                .await;
                response
                    .extensions_mut()
                    .insert(RouteLabel::Static(platform::START_ROUTE));
                return response;
            }
            request = Request::from_parts(parts, body);
        }
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// The port's layers around `inner` (see the module docs), outermost first.
type Layered<S> = Trace<metrics::Tracked<S>, SharedClassifier<ServerErrorsAsFailures>>;

/// Every layer of the HTTP port, around `inner` (the dispatch). A layer added here applies
/// to every request, the API trigger included.
fn layers<S>(inner: S) -> Layered<S> {
    // Answers of 5xx are logged where they arise, with their cause (the store's errors,
    // startup warnings); as requests they are debug-level, so that probes of `/readyz`
    // before the first table do not log an error each.
    let trace =
        TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG));
    tower::ServiceBuilder::new()
        .layer(trace)
        .layer(RequestMetrics)
        .service(inner)
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
