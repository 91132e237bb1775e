//! Meta's side of the webhook for tests: the shared fixtures (copied under
//! `tests/fixtures/whatsapp`), rewritten for a tenant's number, signed like Meta signs them.

use crate::platform::Reply;
use serde_json::Value;

/// The phone_number_id every fixture uses.
pub const FIXTURE_NUMBER: &str = "106540352242922";

/// A fixture's text with its phone_number_id replaced by `phone_number_id`.
pub fn fixture(name: &str, phone_number_id: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/whatsapp")
        .join(name);
    Ok(std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .replace(FIXTURE_NUMBER, phone_number_id))
}

/// Names of every fixture.
pub const FIXTURES: [&str; 8] = [
    "message_text.json",
    "message_interactive_button_reply.json",
    "message_image_caption.json",
    "status_sent.json",
    "status_delivered.json",
    "status_read.json",
    "status_failed.json",
    "batch_mixed.json",
];

/// A webhook body with one text message.
pub fn text_message(phone_number_id: &str, from: &str, id: &str, text: &str) -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": "Test Customer"}, "wa_id": from}],
            "messages": [{"from": from, "id": id, "timestamp": "1749416383", "type": "text",
                          "text": {"body": text}}],
        }}]}],
    })
    .to_string()
}

/// A webhook body with one status of an outbound message.
pub fn status(phone_number_id: &str, recipient: &str, id: &str, status: &str) -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
            "statuses": [{"id": id, "status": status, "timestamp": "1749417005",
                          "recipient_id": recipient}],
        }}]}],
    })
    .to_string()
}

/// Posts webhooks to one data plane as Meta would.
#[derive(Clone, Debug)]
pub struct Meta {
    http: reqwest::Client,
    url: String,
}

impl Meta {
    pub fn new(data_plane_http: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: format!("{data_plane_http}/webhooks/whatsapp"),
        }
    }

    /// POSTs `body` signed with the test app secret.
    pub async fn post(&self, body: &str) -> anyhow::Result<Reply> {
        let signature = switchboard_data_plane::whatsapp::signature::sign(
            crate::META_APP_SECRET.as_bytes(),
            body.as_bytes(),
        );
        self.post_signed(body, Some(&signature)).await
    }

    /// POSTs `body` with the given signature header (or none).
    pub async fn post_signed(&self, body: &str, signature: Option<&str>) -> anyhow::Result<Reply> {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        Ok(Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// The GET handshake: status and body text.
    pub async fn handshake(&self, token: &str, challenge: &str) -> anyhow::Result<(u16, String)> {
        let response = self
            .http
            .get(&self.url)
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", token),
                ("hub.challenge", challenge),
            ])
            .send()
            .await?;
        Ok((response.status().as_u16(), response.text().await?))
    }
}
