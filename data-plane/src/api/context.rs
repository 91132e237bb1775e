//! The execution context of an `api_call` execution (DESIGN §6).

use super::request::ApiCall;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Top-level names a variable cannot take.
pub const RESERVED: [&str; 6] = [
    "system",
    "context",
    "vars",
    "metadata",
    "initial_data",
    "last_user_input",
];

/// Who started the execution and when.
#[derive(Debug)]
pub struct Origin<'a> {
    pub tracking_id: Uuid,
    pub workflow_id: Uuid,
    pub api_key_id: Uuid,
    pub request_ip: &'a str,
    /// RFC 3339, UTC, milliseconds.
    pub request_timestamp: &'a str,
}

/// Builds the context. The request's own keys come first and system keys overwrite them:
/// `context.phone_number` and `context.channel` are always Switchboard's, and a variable
/// named like a reserved top-level name stays only under `vars`.
pub fn api_call(call: ApiCall<'_>, origin: &Origin<'_>) -> Value {
    let mut context = call.context;
    context.insert("phone_number".into(), Value::String(call.phone_number));
    context.insert("channel".into(), Value::String("api".into()));

    let mut root = Map::with_capacity(6 + call.variables.len());
    for (name, value) in &call.variables {
        if !RESERVED.contains(&name.as_str()) {
            root.insert(name.clone(), value.clone());
        }
    }
    root.insert(
        "system".into(),
        json!({
            "trigger_type": "api_call",
            "tracking_id": origin.tracking_id.to_string(),
            "workflow_id": origin.workflow_id.to_string(),
            "api_key_id": origin.api_key_id.to_string(),
            "trigger_whatsapp_config_id": call.number.map(|n| n.whatsapp_config_id),
            "observer_mode": false,
            "allow_outbound": true,
            "test": false,
        }),
    );
    root.insert("context".into(), Value::Object(context));
    root.insert("vars".into(), Value::Object(call.variables));
    root.insert(
        "metadata".into(),
        json!({
            "request_ip": origin.request_ip,
            "request_timestamp": origin.request_timestamp,
        }),
    );
    root.insert("initial_data".into(), call.initial_data);
    Value::Object(root)
}
