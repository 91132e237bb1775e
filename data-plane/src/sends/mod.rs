//! Send steps (DESIGN §9, `Executions.SendMessage`): render, enforce observer mode, send
//! through Meta's Graph API with the number's access token, record the outcome on the
//! execution. A send is attempted once: a Graph API error or timeout is reported and
//! recorded as `FAILED`, never retried here (a retry could deliver the message twice; the
//! runner decides).

pub mod render;

use crate::api::{ApiError, Kind, phone};
use crate::observer;
use crate::routing::{Number, RoutingSlot};
use crate::store::{Execution, MessageState, Store, events};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long the Graph API gets to answer.
const GRAPH_TIMEOUT: Duration = Duration::from_secs(10);

/// What a send step carries.
#[derive(Debug)]
pub enum Content<'a> {
    /// Rendered against the context.
    Text(&'a str),
    /// Meta's `template` object, JSON.
    Template(&'a str),
    /// Meta's `interactive` object, JSON.
    Interactive(&'a str),
}

#[derive(Debug)]
pub struct SendRequest<'a> {
    pub tracking_id: &'a str,
    pub content: Content<'a>,
    pub to_phone_number: Option<&'a str>,
    pub whatsapp_config_id: Option<i64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent { wamid: String },
    Skipped { reason: &'static str },
    Failed { code: i64, message: String },
}

#[derive(Clone)]
pub struct Sender {
    slot: Arc<RoutingSlot>,
    store: Store,
    http: reqwest::Client,
    graph_api_base: Arc<str>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("graph_api_base", &self.graph_api_base)
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub fn new(slot: Arc<RoutingSlot>, store: Store, graph_api_base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(GRAPH_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            slot,
            store,
            http,
            graph_api_base: graph_api_base.trim_end_matches('/').into(),
        }
    }

    pub async fn send(&self, request: SendRequest<'_>) -> Result<Outcome, ApiError> {
        let not_found = ApiError::execution_not_found;
        let id = Uuid::parse_str(request.tracking_id).map_err(|_| not_found())?;
        let execution = self.store.get(id).await?.ok_or_else(not_found)?;
        let context: Value =
            serde_json::from_str(&crate::api::execution_context(&execution)).unwrap_or(Value::Null);
        let table = self.slot.table().ok_or_else(ApiError::not_ready)?;

        let number = self.number(&table, &execution, &context, request.whatsapp_config_id)?;
        let to = match request.to_phone_number {
            Some(raw) => Some(phone::normalize(raw).ok_or_else(|| {
                ApiError::field(
                    "invalid_phone_number",
                    "to_phone_number",
                    "to_phone_number must be + and 7-15 digits",
                )
            })?),
            None => context["context"]["phone_number"]
                .as_str()
                .and_then(phone::normalize),
        };
        let (kind, body) = match request.content {
            Content::Text(template) => (
                "text",
                json!({ "body": render::render(template, &context) }),
            ),
            Content::Template(raw) => ("template", object(raw, "template_json")?),
            Content::Interactive(raw) => ("interactive", object(raw, "interactive_json")?),
        };
        let at = crate::time::now_ms();

        if !observer::sends(execution.observer_mode, request.to_phone_number) {
            let event = events::message_skipped(kind, &body, at);
            self.store.append_event(id, &event).await?;
            return Ok(Outcome::Skipped {
                reason: "observer_mode",
            });
        }
        let to = to.ok_or_else(|| {
            ApiError::field(
                "missing_field",
                "to_phone_number",
                "the execution has no customer phone number; name one in to_phone_number",
            )
        })?;
        let outcome = self.post(&number, &to, kind, &body).await;
        let event = match &outcome {
            Outcome::Sent { wamid } => {
                let from = number.phone_number_id.to_string();
                events::message_sent(wamid, &to, &from, kind, &body, at)
            }
            Outcome::Failed { code, message } => {
                events::message_failed(&to, *code, message, kind, &body, at)
            }
            Outcome::Skipped { .. } => Value::Null.to_string(),
        };
        self.store.append_event(id, &event).await?;
        if let Outcome::Sent { wamid } = &outcome {
            // Its statuses will arrive by webhook: known from now on.
            self.store
                .record_sent(&MessageState {
                    id: wamid.clone(),
                    project_id: execution.project_id,
                    status: "accepted".to_owned(),
                    recipient: to.trim_start_matches('+').to_owned(),
                    phone_number_id: number.phone_number_id.to_string(),
                    updated_at: at,
                })
                .await?;
        }
        Ok(outcome)
    }

    /// The number to send from: the one named (of the execution's project), else the one
    /// that triggered the execution, else the project's default.
    fn number(
        &self,
        table: &crate::routing::RoutingTable,
        execution: &Execution,
        context: &Value,
        requested: Option<i64>,
    ) -> Result<Number, ApiError> {
        let of_project = |n: &&Number| n.project_id == execution.project_id;
        if let Some(config_id) = requested {
            return table
                .number_by_config_id(config_id)
                .filter(of_project)
                .cloned()
                .ok_or_else(|| {
                    ApiError::field(
                        "invalid_whatsapp_config_id",
                        "whatsapp_config_id",
                        "whatsapp_config_id is not a number of the execution's project",
                    )
                });
        }
        context["system"]["trigger_whatsapp_config_id"]
            .as_i64()
            .and_then(|id| table.number_by_config_id(id))
            .filter(of_project)
            .or_else(|| table.default_number(&execution.project_id))
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    Kind::Conflict,
                    "no_number",
                    "the execution has no WhatsApp number and its project no default",
                )
            })
    }

    /// One POST to `{graph}/{phone_number_id}/messages`; never retried.
    async fn post(&self, number: &Number, to: &str, kind: &str, body: &Value) -> Outcome {
        let Some(token) = number.access_token.as_deref() else {
            return Outcome::Failed {
                code: 0,
                message: "the number has no access token".to_owned(),
            };
        };
        let url = format!(
            "{}/{}/messages",
            self.graph_api_base, number.phone_number_id
        );
        let payload = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.trim_start_matches('+'),
            "type": kind,
            kind: body,
        });
        let response = match self
            .http
            .post(&url)
            .bearer_auth(token)
            .json(&payload)
            .send()
            .await
        {
            Ok(response) => response,
            Err(err) => {
                return Outcome::Failed {
                    code: 0,
                    message: format!("Graph API unreachable: {err}"),
                };
            }
        };
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success()
            && let Some(wamid) = answer["messages"][0]["id"].as_str()
        {
            return Outcome::Sent {
                wamid: wamid.to_owned(),
            };
        }
        Outcome::Failed {
            code: answer["error"]["code"].as_i64().unwrap_or(0),
            message: answer["error"]["message"]
                .as_str()
                .map_or_else(|| format!("Graph API answered {status}"), str::to_owned),
        }
    }
}

fn object(raw: &str, field: &'static str) -> Result<Value, ApiError> {
    match serde_json::from_str::<Value>(raw) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(ApiError::field(
            "invalid_type",
            field,
            format!("{field} must be a JSON object"),
        )),
    }
}
