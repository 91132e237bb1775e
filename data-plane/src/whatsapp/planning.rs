//! Planning: what the store needs to apply an update, decided from the routing table before
//! anything is written — the number's project, the executions the update may start (event
//! triggers, the message trigger) with their contexts, and the texts the store writes
//! (last message, delivery event, inbox entry). Which of them happen is the store's
//! decision, in the same atomic step (`store::rules`).

use super::context::{self, Common, ConversationRef, EventMessage, Who};
use super::payload;
use crate::observer;
use crate::routing::table::Trigger;
use crate::routing::{Number, RoutingTable};
use crate::store::conversations::{
    Conversation, EndConversation, InboundMessage, InboundStatus, Placeholder,
};
use crate::store::decisions::Source;
use crate::store::events::{self, MessageSummary};
use crate::store::{Draft, NewExecution, Origin, keys};
use serde_json::json;
use switchboard_proto::wire::{EventType, TriggerType};
use uuid::Uuid;

/// A new execution of `trigger` of `number`'s project, started by the decision
/// `decision_id` (`None`: no routing decision starts it, the end of a conversation): a tracking id, the context `context` builds for it, the mode of its
/// trigger type.
fn execution(
    number: &Number,
    trigger: &Trigger,
    decision_id: Option<Uuid>,
    customer: (Who<'_>, ConversationRef<'_>),
    at: i64,
    context: impl FnOnce(&Common<'_>) -> String,
) -> NewExecution {
    let (customer, conversation) = customer;
    let (workflow_id, trigger_type) = (trigger.workflow_id, trigger.trigger_type());
    let tracking_id = keys::new_tracking_id(&number.project_id);
    let common = Common {
        tracking_id,
        workflow_id,
        whatsapp_config_id: number.whatsapp_config_id,
        customer,
        conversation,
        test: false,
    };
    NewExecution {
        id: tracking_id,
        project_id: number.project_id,
        workflow_id,
        trigger_type,
        test: false,
        observer_mode: observer::of(trigger_type).observer_mode,
        conversation_id: Some(conversation.id_string()),
        context: context(&common),
        created_at: at,
        origin: decision_id.map(|decision_id| Origin {
            decision_id,
            trigger_id: Some(trigger.id),
            event: trigger.event,
        }),
    }
}

/// The observer execution of the event trigger for `event` on `number`, if one listens.
fn on_event(
    table: &RoutingTable,
    number: &Number,
    event: EventType,
    (decision_id, customer): (Option<Uuid>, (Who<'_>, ConversationRef<'_>)),
    at: i64,
    context: impl FnOnce(&Common<'_>) -> String,
) -> Option<NewExecution> {
    let trigger = table.event_trigger(event, number)?;
    Some(execution(
        number,
        trigger,
        decision_id,
        customer,
        at,
        context,
    ))
}

/// The draft of the decision on a webhook update of `number` from or to `customer`.
fn draft(
    number: &Number,
    phone_number_id: &str,
    message_id: &str,
    customer: &str,
    at: i64,
) -> Draft {
    let mut draft = Draft::new(number.project_id, Source::Webhook, at);
    draft.phone_number_id = Some(phone_number_id.to_owned());
    draft.message_id = Some(message_id.to_owned());
    draft.from = Some(customer.to_owned());
    draft
}

/// An entry of the agent inbox.
#[derive(serde::Serialize)]
struct InboxEntry<'a> {
    conversation_id: &'a str,
    project_id: Uuid,
    phone_number_id: &'a str,
    phone_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    contact_name: Option<&'a str>,
    message: &'a MessageSummary<'a>,
    at: i64,
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

/// Everything the store needs to apply an inbound message.
pub(super) fn message(
    table: &RoutingTable,
    number: &Number,
    m: &payload::Message<'_>,
    at: i64,
) -> InboundMessage {
    let placeholder = Placeholder::new();
    let phone_number = m.from.phone_number();
    let who = Who {
        phone_number: phone_number.as_deref(),
        user_id: m.from.user_id.as_deref(),
        username: m.from.username.as_deref(),
    };
    let from = m.from.customer();
    let decision = draft(number, m.metadata.phone_number_id, &m.id, from.key(), at);
    let customer = (who, ConversationRef::Pending(&placeholder));
    let message = EventMessage {
        id: &m.id,
        kind: Some(&m.kind),
        status: "received",
        text: (!m.text.is_empty()).then_some(m.text.as_str()),
    };
    let event = |event: EventType, with_message: bool| {
        on_event(
            table,
            number,
            event,
            (Some(decision.id), customer),
            at,
            |common| {
                let payload = context::payload(m.raw.get(), m.metadata.raw.get());
                context::whatsapp_event(common, event, payload, with_message.then_some(&message))
            },
        )
    };
    let on_created = event(EventType::ConversationCreated, false);
    let on_received = event(EventType::MessageReceived, true);
    let trigger = table
        .message_trigger(number.whatsapp_config_id)
        .map(|trigger| {
            execution(number, trigger, Some(decision.id), customer, at, |common| {
                context::inbound_message(common, m.contact_name.as_deref(), &m.text)
            })
        });
    let summary = MessageSummary {
        id: &m.id,
        kind: &m.kind,
        text: &m.text,
    };
    let inbox = to_json(&InboxEntry {
        conversation_id: placeholder.id(),
        project_id: number.project_id,
        phone_number_id: m.metadata.phone_number_id,
        phone_number: who.phone_number,
        user_id: who.user_id,
        username: who.username,
        contact_name: m.contact_name.as_deref(),
        message: &summary,
        at,
    });
    InboundMessage {
        project_id: number.project_id,
        whatsapp_config_id: number.whatsapp_config_id,
        phone_number_id: m.metadata.phone_number_id.to_owned(),
        customer: from,
        message_id: m.id.clone().into_owned(),
        last_message: to_json(&summary),
        last_user_input: m.text.clone(),
        at,
        new_conversation: keys::new_tracking_id(&number.project_id),
        on_created,
        on_received,
        trigger,
        delivery: events::message_received(&summary, at),
        inbox,
        placeholder,
        decision,
    }
}

/// Everything the store needs to apply a status of an outbound message.
pub(super) fn status(
    table: &RoutingTable,
    number: &Number,
    s: &payload::Status<'_>,
    at: i64,
) -> InboundStatus {
    let placeholder = Placeholder::new();
    let event = s.status.event_type();
    let phone_number = s.recipient.phone_number();
    let who = Who {
        phone_number: phone_number.as_deref(),
        user_id: s.recipient.user_id.as_deref(),
        username: s.recipient.username.as_deref(),
    };
    let recipient = s.recipient.customer();
    let decision = draft(
        number,
        s.metadata.phone_number_id,
        &s.id,
        recipient.key(),
        at,
    );
    let customer = (who, ConversationRef::Pending(&placeholder));
    let on_status = on_event(
        table,
        number,
        event,
        (Some(decision.id), customer),
        at,
        |common| {
            let message = EventMessage {
                id: &s.id,
                kind: None,
                status: s.status.as_str(),
                text: None,
            };
            let payload = context::payload(s.raw.get(), s.metadata.raw.get());
            context::whatsapp_event(common, event, payload, Some(&message))
        },
    );
    InboundStatus {
        project_id: number.project_id,
        whatsapp_config_id: number.whatsapp_config_id,
        phone_number_id: s.metadata.phone_number_id.to_owned(),
        customer: recipient,
        message_id: s.id.clone().into_owned(),
        status: s.status.as_str(),
        rank: s.status.rank(),
        at,
        placeholder,
        on_status,
        decision,
    }
}

/// The `whatsapp.conversation.created` execution, when a trigger listens, of the
/// conversation the API-trigger execution `tracking_id` opens with `customer` on `number`
/// (DESIGN §12), started by the call's decision `decision_id`. Its conversation id is
/// `placeholder`'s, filled by the store.
pub(crate) fn api_conversation(
    table: &RoutingTable,
    number: &Number,
    customer: Who<'_>,
    placeholder: &Placeholder,
    (tracking_id, decision_id): (Uuid, Uuid),
    at: i64,
) -> Option<NewExecution> {
    let event = EventType::ConversationCreated;
    let customer = (customer, ConversationRef::Pending(placeholder));
    on_event(
        table,
        number,
        event,
        (Some(decision_id), customer),
        at,
        |common| {
            let payload = json!({
                "origin": TriggerType::ApiCall.as_str(),
                "tracking_id": tracking_id.to_string(),
                "conversation_id": placeholder.id(),
                "metadata": {
                    "phone_number_id": number.phone_number_id.to_string(),
                    "display_phone_number": &*number.display_phone_number,
                },
            });
            context::whatsapp_event(common, event, payload, None)
        },
    )
}

/// Ending a conversation, with its `whatsapp.conversation.ended` execution when a trigger
/// listens.
pub(super) fn end(
    table: &RoutingTable,
    conversation: &Conversation,
    at: i64,
    reason: &'static str,
    expected_last_active: Option<i64>,
) -> EndConversation {
    let event = EventType::ConversationEnded;
    let ended = ConversationRef::Known {
        id: conversation.id,
        status: "ended",
    };
    let on_ended = table
        .number_by_config_id(conversation.whatsapp_config_id)
        .filter(|n| n.project_id == conversation.project_id)
        .and_then(|number| {
            let customer = (Who::of(conversation), ended);
            // No routing decision: the end of a conversation is the node's own act.
            on_event(table, number, event, (None, customer), at, |common| {
                let payload = json!({
                    "reason": reason,
                    "conversation_id": conversation.id.to_string(),
                    "last_active_at": crate::time::rfc3339_ms(conversation.last_active_at),
                    "metadata": {
                        "phone_number_id": &conversation.phone_number_id,
                        "display_phone_number": &*number.display_phone_number,
                    },
                });
                context::whatsapp_event(common, event, payload, None)
            })
        });
    EndConversation {
        id: conversation.id,
        at,
        reason,
        expected_last_active,
        on_ended,
    }
}
