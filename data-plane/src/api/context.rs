//! The execution context of an `api_call` execution (DESIGN §6).

use super::request::{ApiCall, Members};
use crate::observer;
use serde::ser::{Serialize, SerializeMap, Serializer};
use switchboard_proto::wire::TriggerType;
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
    /// The API key that started it; `None` for the control plane's test runs.
    pub api_key_id: Option<Uuid>,
    pub request_ip: &'a str,
    /// RFC 3339, UTC, milliseconds.
    pub request_timestamp: &'a str,
    /// A test run (`system.test`).
    pub test: bool,
    /// Where the id of the conversation it joins goes (a [`Placeholder`] id), when it joins
    /// one (DESIGN §12).
    ///
    /// [`Placeholder`]: crate::store::conversations::Placeholder
    pub conversation_id: Option<&'a str>,
}

/// Builds the context and serialises it. The request's own keys come first and system keys
/// overwrite them: `context.phone_number` and `context.channel` are always Switchboard's,
/// and a variable named like a reserved top-level name stays only under `vars`. Written
/// straight from the request's members, their values as the request gave them.
pub fn api_call(call: &ApiCall<'_, '_>, origin: &Origin<'_>) -> String {
    serde_json::to_string(&Root { call, origin }).unwrap_or_else(|_| "{}".to_owned())
}

struct Root<'a> {
    call: &'a ApiCall<'a, 'a>,
    origin: &'a Origin<'a>,
}

#[derive(serde::Serialize)]
struct System {
    trigger_type: &'static str,
    tracking_id: Uuid,
    workflow_id: Uuid,
    api_key_id: Option<Uuid>,
    trigger_whatsapp_config_id: Option<i64>,
    observer_mode: bool,
    allow_outbound: bool,
    test: bool,
}

#[derive(serde::Serialize)]
struct Metadata<'a> {
    request_ip: &'a str,
    request_timestamp: &'a str,
}

/// The request's context members, then Switchboard's `phone_number`, `channel` and, when
/// it joins one, `conversation_id`.
struct Context<'a> {
    request: &'a Members<'a>,
    phone_number: Option<&'a str>,
    user_id: Option<&'a str>,
    conversation_id: Option<&'a str>,
}

impl Serialize for Context<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let ours = |name: &str| {
            name == "phone_number"
                || name == "channel"
                || (name == "user_id" && self.user_id.is_some())
                || (name == "conversation_id" && self.conversation_id.is_some())
        };
        for (name, value) in self.request {
            if !ours(name) {
                map.serialize_entry(name, value)?;
            }
        }
        map.serialize_entry("phone_number", &self.phone_number)?;
        if let Some(user_id) = self.user_id {
            map.serialize_entry("user_id", user_id)?;
        }
        map.serialize_entry("channel", "api")?;
        if let Some(id) = self.conversation_id {
            map.serialize_entry("conversation_id", id)?;
        }
        map.end()
    }
}

impl Serialize for Root<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (call, origin) = (self.call, self.origin);
        let trigger_type = TriggerType::ApiCall;
        let mode = observer::of(trigger_type);
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in &call.variables {
            if !RESERVED.contains(&&**name) {
                map.serialize_entry(name, value)?;
            }
        }
        map.serialize_entry(
            "system",
            &System {
                trigger_type: trigger_type.as_str(),
                tracking_id: origin.tracking_id,
                workflow_id: origin.workflow_id,
                api_key_id: origin.api_key_id,
                trigger_whatsapp_config_id: call.number.map(|n| n.whatsapp_config_id),
                observer_mode: mode.observer_mode,
                allow_outbound: mode.allow_outbound,
                test: origin.test,
            },
        )?;
        map.serialize_entry(
            "context",
            &Context {
                request: &call.context,
                phone_number: call.phone_number.as_deref(),
                user_id: call.recipient.as_deref(),
                conversation_id: origin.conversation_id,
            },
        )?;
        map.serialize_entry("vars", &call.variables)?;
        map.serialize_entry(
            "metadata",
            &Metadata {
                request_ip: origin.request_ip,
                request_timestamp: origin.request_timestamp,
            },
        )?;
        map.serialize_entry("initial_data", &call.initial_data)?;
        map.end()
    }
}
