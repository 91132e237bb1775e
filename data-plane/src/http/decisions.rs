//! Routing decisions over HTTP (DESIGN §13): `GET /platform/v1/routing_decisions` and
//! `GET /platform/v1/routing_decisions/{id}`, mapped onto [`Platform`]; and the JSON form
//! of a decision.

use super::platform::api_key;
use crate::api::decisions::DecisionParams;
use crate::api::{ApiError, Caller, Kind, Platform};
use crate::store::Decision;
use crate::time::rfc3339_ms;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::{Json, Router, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes(platform: Platform) -> Router {
    Router::new()
        .route("/platform/v1/routing_decisions", get(list))
        .route("/platform/v1/routing_decisions/{id}", get(show))
        .with_state(platform)
}

/// The JSON form of a decision (DESIGN §13): every field present, `null` when it does not
/// apply; `at` in RFC 3339.
pub fn decision_json(d: &Decision) -> Value {
    let id = |id: Option<uuid::Uuid>| id.map(|id| id.to_string());
    json!({
        "id": d.id.to_string(),
        "at": rfc3339_ms(d.at),
        "source": d.source.as_str(),
        "phone_number_id": d.phone_number_id,
        "message_id": d.message_id,
        "from": d.from,
        "conversation_id": id(d.conversation_id),
        "outcome": d.outcome.as_str(),
        "reason": d.reason,
        "detail": d.detail,
        "trigger_id": id(d.trigger_id),
        "workflow_id": id(d.workflow_id),
        "execution_id": id(d.execution_id),
        "superseded": id(d.superseded),
        "events": d.events.iter().map(|e| json!({
            "type": e.event,
            "trigger_id": id(e.trigger_id),
            "workflow_id": e.workflow_id.to_string(),
            "execution_id": e.execution_id.to_string(),
        })).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
struct ListQuery {
    phone_number_id: Option<String>,
    conversation_id: Option<String>,
    message_id: Option<String>,
    workflow_id: Option<String>,
    outcome: Option<String>,
    limit: Option<String>,
    after: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

async fn list(
    State(platform): State<Platform>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::new(Kind::BadRequest, "invalid_query", e.body_text()))?;
    let params = DecisionParams {
        phone_number_id: q.phone_number_id.as_deref(),
        conversation_id: q.conversation_id.as_deref(),
        message_id: q.message_id.as_deref(),
        workflow_id: q.workflow_id.as_deref(),
        outcome: q.outcome.as_deref(),
        limit: q.limit.as_deref(),
        after: q.after.as_deref(),
        page: q.page.as_deref(),
        per_page: q.per_page.as_deref(),
    };
    let list = platform
        .routing_decisions(Caller::ApiKey(api_key(&headers)), &params)
        .await?;
    Ok(Json(json!({
        "data": list.decisions.iter().map(decision_json).collect::<Vec<_>>(),
        "paging": { "cursors": { "after": list.after.map(|id| id.to_string()) } },
    })))
}

async fn show(
    State(platform): State<Platform>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let decision = platform
        .routing_decision(Caller::ApiKey(api_key(&headers)), &id)
        .await?;
    Ok(Json(decision_json(&decision)))
}
