//! The conversation endpoints of the platform API over HTTP (DESIGN §5), mapped onto
//! [`Platform`]; and the JSON form of a conversation.

use super::platform::{api_key, list_body, read_body};
use crate::api::conversations::{ListParams, cursor};
use crate::api::paging::RawPaging;
use crate::api::{ApiError, BODY_LIMIT, Kind, Platform};
use crate::store::Conversation;
use crate::time::rfc3339_ms;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes(platform: Platform) -> Router {
    Router::new()
        .route("/platform/v1/whatsapp/conversations", get(list))
        .route(
            "/platform/v1/whatsapp/conversations/{id}",
            get(show).patch(update),
        )
        .route("/platform/v1/whatsapp/messages/{id}", get(message))
        .with_state(platform)
}

/// The JSON form of a conversation (DESIGN §5).
pub fn conversation_json(c: &Conversation) -> Value {
    json!({
        "id": c.id.to_string(),
        "phone_number": Some(&c.phone_number).filter(|p| !p.is_empty()),
        "user_id": c.user_id,
        "username": c.username,
        "phone_number_id": c.phone_number_id,
        "status": c.status.as_str(),
        "created_at": rfc3339_ms(c.created_at),
        "last_active_at": rfc3339_ms(c.last_active_at),
        "last_message": c
            .last_message
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok()),
    })
}

#[derive(Deserialize)]
struct ListQuery {
    phone_number_id: Option<String>,
    phone_number: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    after: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

async fn list(
    State(platform): State<Platform>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::new(Kind::BadRequest, "invalid_query", e.body_text()))?;
    let params = ListParams {
        phone_number_id: q.phone_number_id.as_deref().filter(|s| !s.is_empty()),
        phone_number: q.phone_number.as_deref().filter(|s| !s.is_empty()),
        status: q.status.as_deref().filter(|s| !s.is_empty()),
        paging: RawPaging {
            limit: q.limit.as_deref(),
            after: q.after.as_deref(),
            page: q.page.as_deref(),
            per_page: q.per_page.as_deref(),
        },
    };
    let listed = platform.conversations(api_key(&headers), &params).await?;
    Ok(Json(list_body(&listed, conversation_json, |c| cursor(*c))).into_response())
}

async fn show(
    State(platform): State<Platform>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let conversation = platform.conversation(api_key(&headers), &id).await?;
    Ok(Json(conversation_json(&conversation)).into_response())
}

async fn update(
    State(platform): State<Platform>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_body(&headers, body, BODY_LIMIT).await?;
    let conversation = platform
        .update_conversation(api_key(&headers), &id, &body)
        .await?;
    Ok(Json(conversation_json(&conversation)).into_response())
}

async fn message(
    State(platform): State<Platform>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let m = platform.message(api_key(&headers), &id).await?;
    Ok(Json(json!({
        "id": m.id,
        "status": m.status,
        // The wa_id as a phone number; a BSUID (DESIGN §12) as it is.
        "recipient": if m.recipient.bytes().all(|b| b.is_ascii_digit()) {
            format!("+{}", m.recipient)
        } else {
            m.recipient.clone()
        },
        "phone_number_id": m.phone_number_id,
        "updated_at": rfc3339_ms(m.updated_at),
    }))
    .into_response())
}
