//! The HTTP port's accept loop: HTTP/1.1 over hyper, Nagle off, a 30 s limit on reading a
//! request head (which also closes a keep-alive connection idle for 30 s), graceful shutdown
//! (stop accepting, let open requests finish).
//!
//! Each request goes one of two ways. The API trigger, the hot path
//! (`POST /platform/v1/workflows/{workflow_id}/executions`), is answered by its handler
//! directly, timed and counted under its route template like any other route; everything
//! else goes through the axum [`Router`]. Skipping the router for the one route saves, per
//! request, the router's clone of the route's boxed service, the path-parameter map, the
//! connect-info extension map and the extractor plumbing: together about a tenth of the
//! data plane's CPU per API trigger (docs/benchmarks.md). Both ways run the same handler
//! code and give the same answers.

use super::metrics;
use super::platform::{self, PlatformState};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

/// What the HTTP port serves: the router, and the API trigger's state for its direct way.
pub struct App {
    router: Router,
    platform: Arc<PlatformState>,
}

impl App {
    pub(super) fn new(router: Router, platform: Arc<PlatformState>) -> Self {
        Self { router, platform }
    }

    async fn handle(
        self: Arc<Self>,
        mut request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<axum::body::Body> {
        if request.method() == Method::POST {
            let (parts, body) = request.into_parts();
            if let Some(workflow_id) = platform::start_path(parts.uri.path()) {
                let started = Instant::now();
                let response = platform::start_execution(
                    &self.platform,
                    peer,
                    workflow_id,
                    &parts.headers,
                    axum::body::Body::new(body),
                )
                .await;
                metrics::record(
                    platform::START_ROUTE,
                    Method::POST.as_str(),
                    response.status().as_u16(),
                    started.elapsed().as_secs_f64(),
                );
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

/// Serves `listener` until `shutdown` completes, then waits for open connections to finish
/// their requests.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    // Answers of 5xx are logged where they arise, with their cause (the store's errors,
    // startup warnings); as requests they are debug-level, so that probes of `/readyz`
    // before the first table do not log an error each.
    let trace =
        TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %err, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY not set");
        }
        let app = app.clone();
        let service = tower::ServiceBuilder::new()
            .layer(trace.clone())
            .service_fn(move |request: Request<Incoming>| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.handle(request, peer).await) }
            });
        let connection = http.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, %peer, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
