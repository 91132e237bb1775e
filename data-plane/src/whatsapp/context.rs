//! Execution contexts of WhatsApp-started executions (DESIGN §6): `inbound_message` and
//! `whatsapp_event` (observer mode), for live updates and test runs alike. The conversation
//! id and status are written as the store's [`Placeholder`] when the store decides them
//! (see `store::conversations`).

use crate::observer;
use crate::store::conversations::Placeholder;
use serde_json::{Map, Value, json};
use switchboard_proto::wire::{EventType, TriggerType};
use uuid::Uuid;

/// Who the execution is for.
#[derive(Debug)]
pub struct Common<'a> {
    pub tracking_id: Uuid,
    pub workflow_id: Uuid,
    pub whatsapp_config_id: i64,
    pub customer: Who<'a>,
    /// The conversation id as JSON: the placeholder's string, or a known id.
    pub conversation: ConversationRef<'a>,
    pub test: bool,
}

/// The customer of a context: `context.phone_number` (`+<wa_id>`; `null` while only the
/// BSUID is known), `context.user_id` (the BSUID) and `context.username` when known
/// (DESIGN §12).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Who<'a> {
    pub phone_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<&'a str>,
}

impl<'a> Who<'a> {
    /// The customer of a stored conversation.
    pub fn of(c: &'a crate::store::Conversation) -> Self {
        Who {
            phone_number: Some(c.phone_number.as_str()).filter(|p| !p.is_empty()),
            user_id: c.user_id.as_deref(),
            username: c.username.as_deref(),
        }
    }
}

/// The conversation of a context: decided by the store (placeholder), known, or none.
#[derive(Debug, Clone, Copy)]
pub enum ConversationRef<'a> {
    Pending(&'a Placeholder),
    Known { id: Uuid, status: &'static str },
}

impl ConversationRef<'_> {
    /// The id as the execution records it (the placeholder's text until the store chose).
    pub fn id_string(&self) -> String {
        match self {
            ConversationRef::Pending(p) => p.id().to_owned(),
            ConversationRef::Known { id, .. } => id.to_string(),
        }
    }

    fn id(&self) -> Value {
        match self {
            ConversationRef::Pending(p) => Value::String(p.id().to_owned()),
            ConversationRef::Known { id, .. } => Value::String(id.to_string()),
        }
    }

    fn status(&self) -> Value {
        match self {
            ConversationRef::Pending(p) => Value::String(p.status()),
            ConversationRef::Known { status, .. } => Value::String((*status).to_owned()),
        }
    }
}

/// The message of a message event.
#[derive(Debug)]
pub struct EventMessage<'a> {
    pub id: &'a str,
    /// Meta's type; unknown (`None`) for statuses of outbound messages.
    pub kind: Option<&'a str>,
    pub status: &'a str,
    pub text: Option<&'a str>,
}

/// `inbound_message`: a customer's message started the workflow. Serialised straight from
/// borrowed fields (this is on the webhook's hot path).
pub fn inbound_message(common: &Common<'_>, contact_name: Option<&str>, input: &str) -> String {
    #[derive(serde::Serialize)]
    struct Root<'a> {
        system: System,
        context: Context<'a>,
        last_user_input: &'a str,
    }
    #[derive(serde::Serialize)]
    struct System {
        trigger_type: &'static str,
        tracking_id: Uuid,
        workflow_id: Uuid,
        trigger_whatsapp_config_id: i64,
        observer_mode: bool,
        allow_outbound: bool,
        test: bool,
    }
    #[derive(serde::Serialize)]
    struct Context<'a> {
        #[serde(flatten)]
        customer: Who<'a>,
        channel: &'static str,
        conversation_id: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        contact_name: Option<&'a str>,
    }
    let trigger_type = TriggerType::InboundMessage;
    let mode = observer::of(trigger_type);
    let root = Root {
        system: System {
            trigger_type: trigger_type.as_str(),
            tracking_id: common.tracking_id,
            workflow_id: common.workflow_id,
            trigger_whatsapp_config_id: common.whatsapp_config_id,
            observer_mode: mode.observer_mode,
            allow_outbound: mode.allow_outbound,
            test: common.test,
        },
        context: Context {
            customer: common.customer,
            channel: "whatsapp",
            conversation_id: common.conversation.id(),
            contact_name,
        },
        last_user_input: input,
    };
    serde_json::to_string(&root).unwrap_or_else(|_| "{}".to_owned())
}

/// `whatsapp_event` (observer mode). `payload` is the raw Meta object plus `metadata`.
pub fn whatsapp_event(
    common: &Common<'_>,
    event_type: EventType,
    payload: Value,
    message: Option<&EventMessage<'_>>,
) -> String {
    let trigger_type = TriggerType::WhatsappEvent;
    let mode = observer::of(trigger_type);
    let mut context = match serde_json::to_value(common.customer) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    context.insert("channel".into(), "whatsapp".into());
    context.insert("conversation_id".into(), common.conversation.id());
    let mut event = Map::new();
    event.insert("type".into(), event_type.as_str().into());
    event.insert("payload".into(), payload);
    event.insert(
        "conversation".into(),
        json!({
            "id": common.conversation.id(),
            "phone_number": common.customer.phone_number,
            "status": common.conversation.status(),
        }),
    );
    if let Some(m) = message {
        let mut fields = Map::new();
        fields.insert("id".into(), m.id.into());
        fields.insert("type".into(), m.kind.into());
        fields.insert("status".into(), m.status.into());
        if let Some(text) = m.text {
            fields.insert("text".into(), json!({ "body": text }));
        }
        event.insert("message".into(), fields.into());
    }
    json!({
        "system": {
            "trigger_type": trigger_type.as_str(),
            "tracking_id": common.tracking_id.to_string(),
            "workflow_id": common.workflow_id.to_string(),
            "trigger_whatsapp_config_id": common.whatsapp_config_id,
            "observer_mode": mode.observer_mode,
            "allow_outbound": mode.allow_outbound,
            "test": common.test,
            "event": event,
        },
        "context": context,
    })
    .to_string()
}

/// Meta's message or status object with the change's `metadata` added.
pub fn payload(raw: &str, metadata: &str) -> Value {
    let mut object = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            let mut map = Map::new();
            map.insert("value".into(), other);
            map
        }
        Err(_) => Map::new(),
    };
    object.insert(
        "metadata".into(),
        serde_json::from_str(metadata).unwrap_or(Value::Null),
    );
    Value::Object(object)
}
