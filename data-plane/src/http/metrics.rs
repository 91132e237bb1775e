//! Request metrics of the HTTP port: count and latency by route template, method and
//! status, for every request (the API trigger's direct way included). Tower layers with
//! their own futures (no boxed future and no service clone per request, as
//! `axum::middleware::from_fn` costs); each thread registers the metric handles of a label
//! set once and keeps them, so a request costs a thread-local lookup and two metric
//! updates — no lock, no shared reference count.

use axum::extract::MatchedPath;
use axum::http::{Method, Request, Response};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusRecorder};
use pin_project_lite::pin_project;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

/// The request latency metric.
const DURATION: &str = "switchboard_http_request_duration_seconds";

/// Bucket bounds of [`DURATION`], in seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// The data plane's Prometheus recorder. Request latency is a histogram, not a summary:
/// the buckets of many nodes add up in Prometheus where quantiles computed per node cannot
/// be combined, and keeping it costs a bucket increment per request where a summary's
/// sketch kept the upkeep busy for up to 16 ms every 5 s at 17k requests/s, stalling the
/// requests queued on that worker thread.
pub fn recorder() -> Result<PrometheusRecorder, BuildError> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), &DURATION_BUCKETS)?
        .build_recorder())
}

thread_local! {
    /// Handles by a 64-bit hash of (route, method, status).
    static HANDLES: RefCell<HashMap<u64, (Counter, Histogram)>> = RefCell::new(HashMap::new());
}

/// Counts and times one request.
fn record(route: &str, method: &str, status: u16, seconds: f64) {
    let key = foldhash::quality::FixedState::with_seed(0x5b).hash_one((route, method, status));
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        let (counter, histogram) = handles.entry(key).or_insert_with(|| {
            let labels = [
                ("route", route.to_owned()),
                ("method", method.to_owned()),
                ("status", status.to_string()),
            ];
            (
                metrics::counter!("switchboard_http_requests_total", &labels),
                metrics::histogram!(DURATION, &labels),
            )
        });
        counter.increment(1);
        histogram.record(seconds);
    });
}

/// The route a response answered, as its metrics label: the router's template, or the
/// name the dispatcher gave the API trigger. Put on the response by [`ExposeRoute`] (inside
/// the router) or by the dispatcher; read by [`RequestMetrics`] (outside both).
#[derive(Clone, Debug)]
pub(super) enum RouteLabel {
    Template(MatchedPath),
    Static(&'static str),
}

impl RouteLabel {
    fn as_str(&self) -> &str {
        match self {
            RouteLabel::Template(path) => path.as_str(),
            RouteLabel::Static(name) => name,
        }
    }
}

/// Counts and times every request, by the [`RouteLabel`] its response carries
/// (`unmatched` without one).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestMetrics;

impl<S> tower::Layer<S> for RequestMetrics {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Tracked<S> {
    inner: S,
}

impl<S, B, R> tower::Service<Request<B>> for Tracked<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Timed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.method().clone();
        Timed {
            inner: self.inner.call(request),
            method,
            started: Instant::now(),
        }
    }
}

pin_project! {
    /// A request's response, recorded when it is ready.
    pub struct Timed<F> {
        #[pin]
        inner: F,
        method: Method,
        started: Instant,
    }
}

impl<F, R, E> Future for Timed<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let route = response.extensions().get::<RouteLabel>();
            record(
                route.map_or("unmatched", RouteLabel::as_str),
                this.method.as_str(),
                response.status().as_u16(),
                this.started.elapsed().as_secs_f64(),
            );
        }
        Poll::Ready(result)
    }
}

/// Inside the router: puts the matched route's template on the response as its
/// [`RouteLabel`]. The router's only layer; every other layer of the port wraps the whole
/// dispatch (`super::layers`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExposeRoute;

impl<S> tower::Layer<S> for ExposeRoute {
    type Service = Exposing<S>;

    fn layer(&self, inner: S) -> Exposing<S> {
        Exposing { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Exposing<S> {
    inner: S,
}

impl<S, B, R> tower::Service<Request<B>> for Exposing<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Labelled<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // A reference-counted copy of the template, not a new string.
        let route = request.extensions().get::<MatchedPath>().cloned();
        Labelled {
            inner: self.inner.call(request),
            route,
        }
    }
}

pin_project! {
    /// A routed request's response, labelled with its route when it is ready.
    pub struct Labelled<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
    }
}

impl<F, R, E> Future for Labelled<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(route)) = (&mut result, this.route.take()) {
            response
                .extensions_mut()
                .insert(RouteLabel::Template(route));
        }
        Poll::Ready(result)
    }
}
