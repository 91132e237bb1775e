//! Request metrics of the HTTP port: count and latency by route template, method and
//! status. Handles are registered once per label set and cached, so a request costs two
//! atomic updates and no allocation.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

type Handles = (Counter, Histogram);

/// Label sets seen so far, by a 64-bit hash of (route, method, status).
fn cache() -> &'static RwLock<HashMap<u64, Arc<Handles>>> {
    static CACHE: OnceLock<RwLock<HashMap<u64, Arc<Handles>>>> = OnceLock::new();
    CACHE.get_or_init(RwLock::default)
}

fn handles(route: &str, method: &str, status: u16) -> Arc<Handles> {
    let key = foldhash::quality::FixedState::with_seed(0x5b).hash_one((route, method, status));
    if let Some(found) = cache().read().ok().and_then(|c| c.get(&key).cloned()) {
        return found;
    }
    let labels = [
        ("route", route.to_owned()),
        ("method", method.to_owned()),
        ("status", status.to_string()),
    ];
    let created = Arc::new((
        metrics::counter!("switchboard_http_requests_total", &labels),
        metrics::histogram!("switchboard_http_request_duration_seconds", &labels),
    ));
    if let Ok(mut cache) = cache().write() {
        cache.entry(key).or_insert_with(|| created.clone());
    }
    created
}

pub async fn track(request: Request, next: Next) -> Response {
    // A reference-counted copy of the template, not a new string per request.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let (counter, histogram) = &*handles(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        method.as_str(),
        response.status().as_u16(),
    );
    counter.increment(1);
    histogram.record(started.elapsed().as_secs_f64());
    response
}
