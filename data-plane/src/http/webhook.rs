//! Meta's webhook over HTTP (DESIGN §7): the GET verification handshake and signed POSTs,
//! mapped onto [`WhatsApp`]; [`IngestError`]s become statuses here.

use super::platform::read_body;
use crate::api::{ApiError, Kind};
use crate::whatsapp::{IngestError, Report, WEBHOOK_BODY_LIMIT, WhatsApp};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde::Deserialize;
use serde_json::json;

pub fn routes(whatsapp: WhatsApp) -> Router {
    Router::new()
        .route("/webhooks/whatsapp", get(verify).post(receive))
        .with_state(whatsapp)
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
    State(whatsapp): State<WhatsApp>,
    query: Result<Query<Handshake>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return StatusCode::FORBIDDEN.into_response();
    };
    match whatsapp.verify(
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
    State(whatsapp): State<WhatsApp>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_body(&headers, body, WEBHOOK_BODY_LIMIT).await?;
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let report = whatsapp.ingest(&body, signature).await?;
    Ok(Json(report_json(&report)).into_response())
}

/// The answer to a POST: what it did, message by message.
fn report_json(report: &Report) -> serde_json::Value {
    json!({
        "applied": report.applied,
        "duplicates": report.duplicates,
        "ignored": report.ignored,
        "started": report.started.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "messages": report.routes.iter().map(|routed| json!({
            "id": routed.message_id,
            "conversation_id": routed.conversation_id.to_string(),
            "route": routed.route.rule().as_str(),
            "execution_id": routed.route.execution().map(|e| e.to_string()),
        })).collect::<Vec<_>>(),
    })
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        let message = err.to_string();
        match err {
            IngestError::NotConfigured => {
                ApiError::new(Kind::Unavailable, "not_configured", message)
            }
            IngestError::TooLarge => ApiError::payload_too_large(WEBHOOK_BODY_LIMIT),
            IngestError::InvalidSignature => {
                ApiError::new(Kind::Unauthorized, "invalid_signature", message)
            }
            IngestError::InvalidJson(_) => ApiError::new(Kind::BadRequest, "invalid_json", message),
            IngestError::NotReady => ApiError::not_ready(),
            IngestError::Store(err) => err.into(),
        }
    }
}
