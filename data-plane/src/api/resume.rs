//! `POST /platform/v1/workflow_executions/{id}/resume` (DESIGN §12, Kapso's "Start and
//! resume via API"): a waiting execution continues with the caller's answer.
//!
//! Body: `{"message": {"kind": "payload", "data": "yes" | {…}}, "variables": {…}}`, both
//! optional. Text `data` becomes `last_user_input`; the variables are merged into the
//! context's `vars`; the execution moves to `running` with a `resumed` event, which its
//! runner receives on its claim stream like a conversation message.

use super::{ApiError, Kind, Platform};
use crate::store::decisions::{Outcome, Source};
use crate::store::{Draft, Execution, Resume, Resumed, events};
use serde_json::{Map, Value};
use uuid::Uuid;

impl Platform {
    /// Resumes an execution of `project_id` (another project's is not found).
    pub async fn resume(
        &self,
        project_id: Uuid,
        id: &str,
        body: &[u8],
    ) -> Result<Execution, ApiError> {
        let at = crate::time::now_ms();
        let mut draft = Draft::new(project_id, Source::Resume, at);
        let execution = match self.execution_of(project_id, id).await {
            Ok(execution) => execution,
            Err(err) => return Err(self.refused(&draft, err).await),
        };
        draft.workflow_id = Some(execution.workflow_id);
        let resume = match parse(body, at) {
            Ok(resume) => resume,
            Err(err) => {
                let mut d = draft.decide(Outcome::Refused, None);
                d.execution_id = Some(execution.id);
                return Err(self.refused_as(d, err).await);
            }
        };
        let resume = Resume {
            decision: Some(draft),
            ..resume
        };
        match self.store().resume(execution.id, &resume).await? {
            Resumed::Done(execution) => Ok(*execution),
            Resumed::NotFound => Err(ApiError::execution_not_found()),
            Resumed::NotWaiting { status } => Err(ApiError::new(
                Kind::Conflict,
                "not_waiting",
                format!("only a waiting execution can be resumed; this one is {status}"),
            )),
        }
    }
}

/// The resume a body asks for, without its decision.
fn parse(body: &[u8], at: i64) -> Result<Resume, ApiError> {
    let body: Value = serde_json::from_slice(body).map_err(|e| ApiError::invalid_json(&e))?;
    let Value::Object(body) = body else {
        return Err(ApiError::field(
            "invalid_type",
            "body",
            "the body must be a JSON object",
        ));
    };
    let (message, input) = message(&body)?;
    let variables = variables(&body)?;
    Ok(Resume {
        input,
        variables: variables
            .iter()
            .map(|(name, value)| (name.clone(), value.to_string()))
            .collect(),
        event: events::resumed(&message, &Value::Object(variables), at),
        at,
        decision: None,
    })
}

/// `message` (`{kind, data}`, `null` when absent) and the input it gives: `data` when it is
/// text.
fn message(body: &Map<String, Value>) -> Result<(Value, Option<String>), ApiError> {
    let message = match body.get("message") {
        None | Some(Value::Null) => return Ok((Value::Null, None)),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::field(
                "invalid_type",
                "message",
                "message must be an object like {\"kind\": \"payload\", \"data\": …}",
            ));
        }
    };
    match message.get("kind") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => {
            return Err(ApiError::field(
                "invalid_type",
                "message.kind",
                "message.kind must be a string",
            ));
        }
    }
    let input = match message.get("data") {
        None | Some(Value::Null) | Some(Value::Object(_)) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            return Err(ApiError::field(
                "invalid_type",
                "message.data",
                "message.data must be a string or an object",
            ));
        }
    };
    Ok((Value::Object(message.clone()), input))
}

fn variables(body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    match body.get("variables") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(v)) => Ok(v.clone()),
        Some(_) => Err(ApiError::field(
            "invalid_type",
            "variables",
            "variables must be an object",
        )),
    }
}
