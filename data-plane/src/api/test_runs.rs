//! Test runs, the "Flow Test" (DESIGN §5 `POST …/test_executions`, §8
//! `StartTestExecution`): start a workflow as one of its triggers would, from a stored
//! conversation or an API body, with `system.test = true`. The workflow needs a trigger of
//! that type, active or not, and may be a draft. Event tests run in observer mode. A test
//! execution is dispatched to runners like any other, but never becomes a conversation's
//! intercepting execution.

use super::{ApiError, Caller, Kind, Platform, request};
use crate::observer;
use crate::routing::{ApiKey, RoutingTable};
use crate::store::decisions::Source;
use crate::store::{Admission, Conversation, Created, Draft, NewExecution, Origin, keys};
use crate::whatsapp::context::{self, Common, ConversationRef, EventMessage};
use serde_json::{Map, Value, json};
use switchboard_proto::wire::{EventType, TriggerType};
use uuid::Uuid;

/// A started test run.
#[derive(Debug, PartialEq, Eq)]
pub struct TestStarted {
    pub workflow_id: Uuid,
    pub tracking_id: Uuid,
}

fn required_str<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Err(ApiError::field(
            "missing_field",
            name,
            format!("{name} is required"),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::field(
            "invalid_type",
            name,
            format!("{name} must be a string"),
        )),
    }
}

impl Platform {
    /// Starts a test run of a workflow of the caller's project; its decision is recorded
    /// with the execution, or alone when refused.
    pub async fn start_test(
        &self,
        caller: Caller<'_>,
        workflow_id: &str,
        raw: &[u8],
        request_ip: &str,
    ) -> Result<TestStarted, ApiError> {
        let table = self.table()?;
        let (project_id, key) = Self::scope(&table, caller)?;
        let mut draft = Draft::new(project_id, Source::TestRun, crate::time::now_ms());
        draft.workflow_id = Uuid::parse_str(workflow_id).ok();
        let execution = match self
            .test_execution(
                &table,
                (project_id, key),
                workflow_id,
                raw,
                request_ip,
                &draft,
            )
            .await
        {
            Ok(execution) => execution,
            Err(err) => return Err(self.refused(&draft, err).await),
        };
        let admission = Admission {
            decision: Some(draft),
            ..Admission::default()
        };
        match self.store.create(&execution, &admission).await? {
            Created::New { .. } => Ok(TestStarted {
                workflow_id: execution.workflow_id,
                tracking_id: execution.id,
            }),
            other => {
                tracing::error!(outcome = ?other, "a test execution was not created");
                Err(ApiError::new(
                    Kind::Internal,
                    "internal",
                    format!("unexpected creation outcome {other:?}"),
                ))
            }
        }
    }

    /// The execution a test run asks for, checked, made at `draft.at`.
    async fn test_execution(
        &self,
        table: &RoutingTable,
        (project_id, key): (Uuid, Option<&ApiKey>),
        workflow_id: &str,
        raw: &[u8],
        request_ip: &str,
        draft: &Draft,
    ) -> Result<NewExecution, ApiError> {
        let now = chrono::DateTime::from_timestamp_millis(draft.at).unwrap_or_default();
        if raw.len() > super::BODY_LIMIT {
            return Err(ApiError::payload_too_large(super::BODY_LIMIT));
        }
        let workflow = Uuid::parse_str(workflow_id)
            .ok()
            .and_then(|id| table.workflow(&id))
            .filter(|w| w.project_id == project_id)
            .ok_or_else(ApiError::workflow_not_found)?;
        let body = match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(ApiError::new(
                    Kind::BadRequest,
                    "invalid_json",
                    "the body must be a JSON object",
                ));
            }
            Err(e) => return Err(ApiError::invalid_json(&e)),
        };
        let trigger_type =
            TriggerType::parse(required_str(&body, "trigger_type")?).ok_or_else(|| {
                ApiError::field(
                    "invalid_trigger_type",
                    "trigger_type",
                    format!("trigger_type must be one of {}", TriggerType::names()),
                )
            })?;
        if !workflow.trigger_types.contains(&trigger_type) {
            return Err(ApiError::field(
                "no_trigger",
                "trigger_type",
                format!("the workflow has no {trigger_type} trigger"),
            ));
        }
        let tracking_id = keys::new_tracking_id(&project_id);
        let (conversation_id, context) = match trigger_type {
            TriggerType::ApiCall => {
                let call = request::resolve(request::parse_http(raw)?, table, &project_id)?;
                let key_id = key.map(|k| k.id);
                let context = super::api_context(
                    &call,
                    key_id,
                    workflow.id,
                    tracking_id,
                    request_ip,
                    now,
                    super::Run::Test,
                );
                (None, context)
            }
            TriggerType::InboundMessage => {
                let conversation = self.conversation_in(&body, project_id).await?;
                let message = required_str(&body, "message")?;
                let common = common(&conversation, tracking_id, workflow.id);
                let context = context::inbound_message(&common, None, message);
                (Some(conversation.id), context)
            }
            TriggerType::WhatsappEvent => {
                let event_type =
                    EventType::parse(required_str(&body, "event_type")?).ok_or_else(|| {
                        ApiError::field(
                            "invalid_event_type",
                            "event_type",
                            format!("event_type must be one of {}", EventType::names()),
                        )
                    })?;
                let conversation = self.conversation_in(&body, project_id).await?;
                let context =
                    event_context(table, &conversation, event_type, tracking_id, workflow.id);
                (Some(conversation.id), context)
            }
        };
        let execution = NewExecution {
            id: tracking_id,
            project_id,
            workflow_id: workflow.id,
            trigger_type,
            test: true,
            observer_mode: observer::of(trigger_type).observer_mode,
            conversation_id: conversation_id.map(|id| id.to_string()),
            context,
            created_at: draft.at,
            origin: Some(Origin {
                decision_id: draft.id,
                trigger_id: None,
                event: None,
            }),
        };
        Ok(execution)
    }

    /// `conversation_id` of the body: a conversation of the project.
    async fn conversation_in(
        &self,
        body: &Map<String, Value>,
        project_id: Uuid,
    ) -> Result<Conversation, ApiError> {
        let id = required_str(body, "conversation_id")?;
        self.conversation_of(project_id, id).await
    }
}

fn common(c: &Conversation, tracking_id: Uuid, workflow_id: Uuid) -> Common<'_> {
    Common {
        tracking_id,
        workflow_id,
        whatsapp_config_id: c.whatsapp_config_id,
        customer: crate::whatsapp::context::Who::of(c),
        conversation: ConversationRef::Known {
            id: c.id,
            status: c.status.as_str(),
        },
        test: true,
    }
}

/// The context a live event of `event_type` in this conversation would get, from what the
/// conversation holds: its number and its last inbound message.
fn event_context(
    table: &RoutingTable,
    c: &Conversation,
    event_type: EventType,
    tracking_id: Uuid,
    workflow_id: Uuid,
) -> String {
    let last: Value = c
        .last_message
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null);
    let display = table
        .number_by_config_id(c.whatsapp_config_id)
        .map(|n| n.display_phone_number.to_string());
    let mut payload = json!({
        "test": true,
        "conversation_id": c.id.to_string(),
        "metadata": {
            "phone_number_id": c.phone_number_id,
            "display_phone_number": display,
        },
    });
    let status = event_type.message_status();
    if status.is_some() {
        payload["message"] = last.clone();
    }
    let message = status.map(|status| EventMessage {
        id: last["id"].as_str().unwrap_or_default(),
        kind: last["type"].as_str(),
        status,
        text: last["text"].as_str().filter(|t| !t.is_empty()),
    });
    context::whatsapp_event(
        &common(c, tracking_id, workflow_id),
        event_type,
        payload,
        message.as_ref(),
    )
}
