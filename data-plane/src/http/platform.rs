//! The platform API over HTTP (DESIGN §5): extracts the key, body and parameters, calls
//! [`Platform`], and maps [`ApiError`]s to statuses and the documented error body.

use crate::api::paging::{Listed, RawPaging};
use crate::api::{
    ApiError, BODY_LIMIT, Body, Caller, Kind, Platform, StartRequest, execution_context,
};
use crate::store::Execution;
use crate::time::rfc3339_ms;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get, routing::post};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[derive(Clone)]
pub struct PlatformState {
    pub platform: Platform,
    pub trust_forwarded_for: bool,
}

/// The API trigger's route; `App::dispatch` also answers it without the router.
pub const START_ROUTE: &str = "/platform/v1/workflows/{workflow_id}/executions";

/// The state is shared, so that handing it to a request is one reference count, not one
/// per connection pool, script and metric handle inside.
pub fn routes(state: Arc<PlatformState>) -> Router {
    Router::new()
        .route(START_ROUTE, post(start).get(list))
        .route(
            "/platform/v1/workflows/{workflow_id}/test_executions",
            post(start_test),
        )
        .route(
            "/platform/v1/workflow_executions/{id}",
            get(show).patch(update),
        )
        .route("/platform/v1/workflow_executions/{id}/resume", post(resume))
        .with_state(state)
}

/// The `{workflow_id}` of a path of [`START_ROUTE`], when it is one plain segment (a
/// percent-encoded one is left to the router, which decodes it).
pub fn start_path(path: &str) -> Option<&str> {
    let workflow_id = path
        .strip_prefix("/platform/v1/workflows/")?
        .strip_suffix("/executions")?;
    (!workflow_id.is_empty() && !workflow_id.contains(['/', '%'])).then_some(workflow_id)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.kind {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = self.field {
            error["field"] = Value::String(field);
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if matches!(self.kind, Kind::RateLimited | Kind::Unavailable) {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }
}

/// `X-API-Key: <key>`, else `Authorization: Bearer <key>`.
pub(super) fn api_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key") {
        return key.to_str().ok().map(str::trim);
    }
    let authorization = headers.get("authorization")?.to_str().ok()?;
    let (scheme, key) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

fn request_ip(headers: &HeaderMap, peer: SocketAddr, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for
        && let Some(first) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| v.parse::<std::net::IpAddr>().is_ok())
    {
        return first.to_owned();
    }
    peer.ip().to_canonical().to_string()
}

/// The body, or 413 past `limit` (checked on `Content-Length` first, then while reading).
pub(super) async fn read_body(
    headers: &HeaderMap,
    mut body: axum::body::Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        linger(body);
        return Err(ApiError::payload_too_large(limit));
    }
    match Limited::new(&mut body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => {
            linger(body);
            Err(ApiError::payload_too_large(limit))
        }
    }
}

/// Most of a refused body read and discarded, and for how long at most.
const LINGER_BYTES: usize = 4 * 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);

/// After a body is refused as too large, reads and discards what the client is still
/// sending (up to [`LINGER_BYTES`], for [`LINGER_TIME`]) in the background, as servers'
/// "lingering close" does: a client that writes its whole body before reading the answer
/// then gets the 413 instead of a connection reset under its write. Past either bound the
/// body is dropped and the connection closed.
fn linger(mut body: axum::body::Body) {
    tokio::spawn(async move {
        let drain = async {
            let mut read = 0;
            while let Some(Ok(frame)) = body.frame().await {
                read += frame.data_ref().map_or(0, Bytes::len);
                if read > LINGER_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}

async fn start(
    State(state): State<Arc<PlatformState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(workflow_id): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    start_execution(&state, peer, &workflow_id, &parts.headers, body).await
}

/// `POST /platform/v1/workflows/{workflow_id}/executions`, for the router and for the
/// HTTP port's direct way alike.
pub async fn start_execution(
    state: &PlatformState,
    peer: SocketAddr,
    workflow_id: &str,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Response {
    match start_inner(state, peer, workflow_id, headers, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn start_inner(
    state: &PlatformState,
    peer: SocketAddr,
    workflow_id: &str,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_body(headers, body, BODY_LIMIT).await?;
    let ip = request_ip(headers, peer, state.trust_forwarded_for);
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::field(
                "invalid_idempotency_key",
                "Idempotency-Key",
                "Idempotency-Key must be visible ASCII",
            )
        })?),
    };
    let started = state
        .platform
        .start(StartRequest {
            api_key: api_key(headers),
            workflow_id,
            body: Body::Http(&body),
            idempotency_key,
            request_ip: &ip,
        })
        .await?;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: "Workflow execution initiated",
            workflow_id: started.workflow_id,
            tracking_id: started.tracking_id,
        }),
    )
        .into_response();
    let headers = response.headers_mut();
    if started.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some((limit, remaining)) = started.burst {
        headers.insert("x-burst-ratelimit-limit", HeaderValue::from(limit));
        headers.insert("x-burst-ratelimit-remaining", HeaderValue::from(remaining));
    }
    Ok(response)
}

/// `POST /platform/v1/workflows/{workflow_id}/test_executions`.
async fn start_test(
    State(state): State<Arc<PlatformState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(workflow_id): Path<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let body = read_body(headers, body, BODY_LIMIT).await?;
    let ip = request_ip(headers, peer, state.trust_forwarded_for);
    let started = state
        .platform
        .start_test(Caller::ApiKey(api_key(headers)), &workflow_id, &body, &ip)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: "Workflow test execution initiated",
            workflow_id: started.workflow_id,
            tracking_id: started.tracking_id,
        }),
    )
        .into_response())
}

/// The 202 body, fields in the documented order.
#[derive(serde::Serialize)]
struct Accepted {
    message: &'static str,
    workflow_id: uuid::Uuid,
    tracking_id: uuid::Uuid,
}

#[derive(Deserialize)]
struct ListParams {
    status: Option<String>,
    limit: Option<String>,
    after: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

/// The body of a list: `{data, paging: {cursors: {after}}}` for a cursor page, Kapso's
/// `{data, meta: {page, per_page, total_pages, total_count}}` for a numbered one.
pub(super) fn list_body<T, C>(
    listed: &Listed<T, C>,
    row: impl Fn(&T) -> Value,
    cursor: impl Fn(&C) -> String,
) -> Value {
    match listed {
        Listed::Cursor { rows, after } => json!({
            "data": rows.iter().map(row).collect::<Vec<_>>(),
            "paging": { "cursors": { "after": after.as_ref().map(cursor) } },
        }),
        Listed::Numbered(page) => json!({
            "data": page.rows.iter().map(row).collect::<Vec<_>>(),
            "meta": {
                "page": page.page,
                "per_page": page.per_page,
                "total_pages": page.total_pages(),
                "total_count": page.total_count,
            },
        }),
    }
}

async fn list(
    State(state): State<Arc<PlatformState>>,
    Path(workflow_id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::new(Kind::BadRequest, "invalid_query", e.body_text()))?;
    let paging = RawPaging {
        limit: params.limit.as_deref(),
        after: params.after.as_deref(),
        page: params.page.as_deref(),
        per_page: params.per_page.as_deref(),
    };
    let listed = state
        .platform
        .executions(
            api_key(&headers),
            &workflow_id,
            params.status.as_deref(),
            paging,
        )
        .await?;
    Ok(Json(list_body(&listed, execution_json, Uuid::to_string)).into_response())
}

async fn show(
    State(state): State<Arc<PlatformState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let execution = state.platform.execution(api_key(&headers), &id).await?;
    Ok(Json(execution_json(&execution)).into_response())
}

async fn update(
    State(state): State<Arc<PlatformState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let project_id = state.platform.project_of(api_key(&headers))?;
    let body = read_body(&headers, body, BODY_LIMIT).await?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| ApiError::invalid_json(&e))?;
    // DESIGN §5 `{"status": …}`, or Kapso's `{"workflow_execution": {"status": …}}` (§12),
    // whose refusals name the nested field.
    let (fields, prefix) = match body.get("workflow_execution") {
        None | Some(Value::Null) => (&body, ""),
        Some(inner @ Value::Object(_)) => (inner, "workflow_execution."),
        Some(_) => {
            return Err(ApiError::field(
                "invalid_type",
                "workflow_execution",
                "workflow_execution must be an object",
            ));
        }
    };
    let status = match fields.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(ApiError::field(
                "invalid_type",
                format!("{prefix}status"),
                format!("{prefix}status must be a string"),
            ));
        }
    };
    let execution = state
        .platform
        .set_status(Some(project_id), &id, status)
        .await
        .map_err(|mut err| {
            if let Some(field) = &mut err.field {
                field.insert_str(0, prefix);
            }
            err
        })?;
    Ok(Json(execution_json(&execution)).into_response())
}

/// `POST …/workflow_executions/{id}/resume` (DESIGN §12): 202 with the execution's summary.
async fn resume(
    State(state): State<Arc<PlatformState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let project_id = state.platform.project_of(api_key(&headers))?;
    let body = read_body(&headers, body, BODY_LIMIT).await?;
    let e = state.platform.resume(project_id, &id, &body).await?;
    let summary = serde_json::json!({
        "id": e.id.to_string(),
        "tracking_id": e.id.to_string(),
        "workflow_id": e.workflow_id.to_string(),
        "status": e.status.as_str(),
        "created_at": rfc3339_ms(e.created_at),
        "updated_at": rfc3339_ms(e.updated_at),
    });
    Ok((StatusCode::ACCEPTED, Json(summary)).into_response())
}

/// The JSON form of an execution (DESIGN §5).
pub fn execution_json(e: &Execution) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let context = parse(&execution_context(e));
    serde_json::json!({
        "id": e.id.to_string(),
        "tracking_id": e.id.to_string(),
        "workflow_id": e.workflow_id.to_string(),
        "status": e.status.as_str(),
        "trigger_type": e.trigger_type.as_str(),
        "test": e.test,
        "observer_mode": e.observer_mode,
        "conversation_id": e.conversation_id,
        "whatsapp_conversation_id": e.conversation_id,
        "created_at": rfc3339_ms(e.created_at),
        "updated_at": rfc3339_ms(e.updated_at),
        "started_at": rfc3339_ms(e.created_at),
        "ended_at": e.status.is_final().then(|| rfc3339_ms(e.updated_at)),
        "last_event_at": rfc3339_ms(e.last_event_at),
        "routing_decision_id": e.decision_id.map(|id| id.to_string()),
        "execution_context": context,
        "events": e.events.iter().map(|ev| parse(ev)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::start_path;

    #[test]
    fn only_plain_api_trigger_paths_take_the_direct_way() {
        let id = "01a214e0-0000-7000-8000-00000000000b";
        assert_eq!(
            start_path(&format!("/platform/v1/workflows/{id}/executions")),
            Some(id)
        );
        for path in [
            "/platform/v1/workflows//executions",
            "/platform/v1/workflows/a/b/executions",
            "/platform/v1/workflows/%30a/executions",
            "/platform/v1/workflows/a/executions/",
            "/platform/v1/workflows/a/test_executions",
            "/platform/v1/workflow_executions/a",
            "/platform/v2/workflows/a/executions",
        ] {
            assert_eq!(start_path(path), None, "{path}");
        }
    }
}
