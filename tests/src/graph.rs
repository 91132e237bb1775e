//! A fake Meta Graph API for send tests: records every `POST /{phone_number_id}/messages`
//! and answers like Meta (a wamid), or with Meta's error body when told to fail.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Json, Router, routing::post};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Sent {
    pub phone_number_id: String,
    pub authorization: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    sent: Vec<Sent>,
    /// `Some((code, message))`: answer 400 with this error.
    fail: Option<(i64, String)>,
    /// Answer only after this long (to outlast the data plane's timeout).
    delay: Option<std::time::Duration>,
}

#[derive(Clone)]
pub struct FakeGraph {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for FakeGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGraph").field("url", &self.url).finish()
    }
}

impl FakeGraph {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/v24.0", listener.local_addr()?);
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/v24.0/{phone_number_id}/messages", post(messages))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, inner })
    }

    /// Every request received so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.inner
            .lock()
            .map(|i| i.sent.clone())
            .unwrap_or_default()
    }

    /// From now on answer only after `delay`.
    pub fn delay(&self, delay: Option<std::time::Duration>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.delay = delay;
        }
    }

    /// From now on answer with Meta's error `code` (or succeed again with `None`).
    pub fn fail_with(&self, error: Option<(i64, &str)>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.fail = error.map(|(code, message)| (code, message.to_owned()));
        }
    }
}

async fn messages(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(phone_number_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    let delay = match inner.lock() {
        Ok(mut inner) => {
            inner.sent.push(Sent {
                phone_number_id,
                authorization: headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                body: body.clone(),
            });
            inner.delay
        }
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, Json(Value::Null)),
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let Ok(inner) = inner.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(Value::Null));
    };
    if let Some((code, message)) = &inner.fail {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": message, "type": "OAuthException", "code": code}})),
        );
    }
    let n = inner.sent.len();
    (
        StatusCode::OK,
        Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": format!("wamid.FAKE{n:04}")}],
        })),
    )
}
