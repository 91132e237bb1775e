//! The events recorded on an execution (its `events`, DESIGN §5), one builder each. The
//! Redis scripts write `status_changed`, `claimed`, `superseded` and `supersedes` themselves, in the same form
//! (`redis/scripts/`): keys sorted, as these builders write them.

use super::Status;
use serde_json::{Value, json};

/// A status change (`PATCH`, `UpdateExecutionStatus`, a claim of a pending execution).
pub fn status_changed(from: Status, to: Status, at: i64) -> String {
    json!({"type": "status_changed", "from": from.as_str(), "to": to.as_str(), "at": at})
        .to_string()
}

/// A delivery of the execution to a runner.
pub fn claimed(runner: &str, attempt: u32, at: i64) -> String {
    json!({"type": "claimed", "runner": runner, "attempt": attempt, "at": at}).to_string()
}

/// An execution ended because an API-trigger execution `by` took its conversation
/// (DESIGN §12 `on_conflict: end_existing`).
pub fn superseded(by: &uuid::Uuid, at: i64) -> String {
    json!({"type": "superseded", "reason": "superseded", "by": by.to_string(), "at": at})
        .to_string()
}

/// A resume through the API (DESIGN §12): Kapso's `message` and the variables given.
pub fn resumed(message: &Value, variables: &Value, at: i64) -> String {
    json!({"type": "resumed", "message": message, "variables": variables, "at": at}).to_string()
}

/// An execution failed because it waited longer than `--waiting-timeout` (`timeout_ms`)
/// (DESIGN §12).
pub fn waiting_timeout(timeout_ms: i64, at: i64) -> String {
    json!({"type": "waiting_timeout", "reason": "waiting_timeout", "timeout_ms": timeout_ms, "at": at})
        .to_string()
}

/// On the new execution: the execution it superseded.
pub fn supersedes(execution: &uuid::Uuid, at: i64) -> String {
    json!({"type": "supersedes", "execution": execution.to_string(), "at": at}).to_string()
}

/// When an event happened: its `at` (every builder here writes one).
pub fn at(event: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct At {
        at: i64,
    }
    serde_json::from_str::<At>(event).ok().map(|e| e.at)
}

/// An execution's `last_event_at`: when its newest event happened, else `created_at`.
pub fn last_event_at(newest: Option<&str>, created_at: i64) -> i64 {
    newest.and_then(at).unwrap_or(created_at)
}

/// `{id, type, text}` of an inbound message: a conversation's `last_message`, and what a
/// delivery and an agent inbox entry carry.
#[derive(Debug, serde::Serialize)]
pub struct MessageSummary<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub text: &'a str,
}

/// A customer's message delivered to the conversation's running execution (DESIGN §7
/// rule b).
pub fn message_received(message: &MessageSummary<'_>, at: i64) -> String {
    #[derive(serde::Serialize)]
    struct Delivery<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        at: i64,
        message: &'a MessageSummary<'a>,
    }
    let delivery = Delivery {
        kind: "message_received",
        at,
        message,
    };
    serde_json::to_string(&delivery).unwrap_or_else(|_| "{}".to_owned())
}

/// A send step skipped in observer mode (DESIGN §9). `kind` is Meta's message type and
/// `body` its object.
pub fn message_skipped(kind: &str, body: &Value, at: i64) -> String {
    json!({
        "type": "message_skipped", "reason": "observer_mode", "message_type": kind,
        kind: body, "at": at,
    })
    .to_string()
}

/// A message the Graph API accepted.
pub fn message_sent(
    wamid: &str,
    to: &str,
    from_phone_number_id: &str,
    kind: &str,
    body: &Value,
    at: i64,
) -> String {
    json!({
        "type": "message_sent", "wamid": wamid, "to": to,
        "from_phone_number_id": from_phone_number_id, "message_type": kind, kind: body,
        "at": at,
    })
    .to_string()
}

/// A message the Graph API refused, or that could not be sent.
pub fn message_failed(
    to: &str,
    code: i64,
    message: &str,
    kind: &str,
    body: &Value,
    at: i64,
) -> String {
    json!({
        "type": "message_failed", "to": to, "error": {"code": code, "message": message},
        "message_type": kind, kind: body, "at": at,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_written_as_the_scripts_write_them() {
        // redis/scripts/set_status.lua and claim.lua concatenate these texts.
        assert_eq!(
            status_changed(Status::Pending, Status::Running, 7),
            r#"{"at":7,"from":"pending","to":"running","type":"status_changed"}"#
        );
        assert_eq!(
            claimed("runner-1", 2, 7),
            r#"{"at":7,"attempt":2,"runner":"runner-1","type":"claimed"}"#
        );
        let id = uuid::Uuid::nil();
        assert_eq!(
            superseded(&id, 7),
            format!(r#"{{"at":7,"by":"{id}","reason":"superseded","type":"superseded"}}"#)
        );
        assert_eq!(
            supersedes(&id, 7),
            format!(r#"{{"at":7,"execution":"{id}","type":"supersedes"}}"#)
        );
        let message = MessageSummary {
            id: "wamid.1",
            kind: "text",
            text: "hi",
        };
        assert_eq!(
            message_received(&message, 7),
            r#"{"type":"message_received","at":7,"message":{"id":"wamid.1","type":"text","text":"hi"}}"#
        );
    }

    #[test]
    fn the_last_event_time_is_the_newest_events_else_the_creation() {
        let newest = claimed("runner-1", 1, 9);
        assert_eq!(last_event_at(Some(&newest), 3), 9);
        assert_eq!(last_event_at(None, 3), 3);
        assert_eq!(last_event_at(Some("not json"), 3), 3);
    }
}
