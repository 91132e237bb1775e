//! WhatsApp over HTTP: Meta's webhook (DESIGN §7) and the conversation endpoints of the
//! platform API (DESIGN §5), mapped onto [`WhatsApp`].

use super::platform::{PlatformState, api_key, read_body};
use crate::api::{ApiError, BODY_LIMIT};
use crate::whatsapp::{self, ListParams, WEBHOOK_BODY_LIMIT, WhatsApp, conversation_json};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone)]
pub struct WhatsAppState {
    pub whatsapp: WhatsApp,
    pub platform: PlatformState,
}

pub fn routes(state: WhatsAppState) -> Router {
    Router::new()
        .route("/webhooks/whatsapp", get(verify).post(receive))
        .route("/platform/v1/whatsapp/conversations", get(list))
        .route(
            "/platform/v1/whatsapp/conversations/{id}",
            get(show).patch(update),
        )
        .route("/platform/v1/whatsapp/messages/{id}", get(message))
        .with_state(Arc::new(state))
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription handshake: the challenge as text/plain when the token matches.
async fn verify(
    State(state): State<Arc<WhatsAppState>>,
    query: Result<Query<Handshake>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return StatusCode::FORBIDDEN.into_response();
    };
    match state.whatsapp.verify(
        q.mode.as_deref(),
        q.token.as_deref(),
        q.challenge.as_deref(),
    ) {
        Some(challenge) => (
            StatusCode::OK,
            [("content-type", "text/plain; charset=utf-8")],
            challenge.to_owned(),
        )
            .into_response(),
        None => StatusCode::FORBIDDEN.into_response(),
    }
}

async fn receive(
    State(state): State<Arc<WhatsAppState>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_body(&headers, body, WEBHOOK_BODY_LIMIT).await?;
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let report = state.whatsapp.ingest(&body, signature).await?;
    Ok(Json(json!({
        "applied": report.applied,
        "duplicates": report.duplicates,
        "ignored": report.ignored,
        "started": report.started.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "messages": report.routes.iter().map(|(id, conversation, route, execution)| json!({
            "id": id,
            "conversation_id": conversation.to_string(),
            "route": route,
            "execution_id": execution.map(|e| e.to_string()),
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    phone_number_id: Option<String>,
    phone_number: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

async fn list(
    State(state): State<Arc<WhatsAppState>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::new(crate::api::Kind::BadRequest, "invalid_query", e.body_text()))?;
    let params = ListParams {
        phone_number_id: q.phone_number_id.as_deref().filter(|s| !s.is_empty()),
        phone_number: q.phone_number.as_deref().filter(|s| !s.is_empty()),
        status: q.status.as_deref().filter(|s| !s.is_empty()),
        limit: q.limit.as_deref(),
        after: q.after.as_deref(),
    };
    let page = state
        .whatsapp
        .conversations(&state.platform.platform, api_key(&headers), &params)
        .await?;
    let data: Vec<Value> = page.conversations.iter().map(conversation_json).collect();
    Ok(Json(json!({
        "data": data,
        "paging": { "cursors": { "after": page.after.map(whatsapp::cursor) } },
    }))
    .into_response())
}

async fn show(
    State(state): State<Arc<WhatsAppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let conversation = state
        .whatsapp
        .conversation(&state.platform.platform, api_key(&headers), &id)
        .await?;
    Ok(Json(conversation_json(&conversation)).into_response())
}

async fn update(
    State(state): State<Arc<WhatsAppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_body(&headers, body, BODY_LIMIT).await?;
    let conversation = state
        .whatsapp
        .update_conversation(&state.platform.platform, api_key(&headers), &id, &body)
        .await?;
    Ok(Json(conversation_json(&conversation)).into_response())
}

async fn message(
    State(state): State<Arc<WhatsAppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let m = state
        .whatsapp
        .message(&state.platform.platform, api_key(&headers), &id)
        .await?;
    Ok(Json(json!({
        "id": m.id,
        "status": m.status,
        "recipient": format!("+{}", m.recipient),
        "phone_number_id": m.phone_number_id,
        "updated_at": crate::api::rfc3339_ms(m.updated_at),
    }))
    .into_response())
}
