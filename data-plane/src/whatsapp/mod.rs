//! WhatsApp on the data plane (DESIGN §7): Meta's webhook (verification handshake, signed
//! POSTs of messages and statuses), conversations and their inactivity sweep, and the
//! conversation endpoints of the platform API (DESIGN §5). Transport-independent: the HTTP
//! edge is `http::whatsapp`.
//!
//! A POST is parsed, every update is looked up in the routing table (number → project,
//! message trigger, event triggers) and turned into a plan with its contexts built, and the
//! plans go to the store as one ordered pipeline in which each update is atomic and
//! idempotent. The POST is answered 200 only after the store applied all of them.

pub mod context;
pub mod payload;
pub mod signature;
pub mod sweeper;

use crate::api::{ApiError, Kind, Platform, page_size, phone};
use crate::executions::conversations::{
    Conversation, ConversationPage, ConversationQuery, ConversationStatus, EndConversation,
    EndOutcome, InboundMessage, InboundStatus, MessageOutcome, MessageState, Placeholder, Route,
    StatusOutcome,
};
use crate::executions::{Applied, Apply, NewExecution, Store, keys};
use crate::routing::{EventType, Number, RoutingSlot, RoutingTable};
use context::{Common, ConversationRef, EventMessage};
use payload::Update;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

/// Largest accepted webhook body (DESIGN §7).
pub const WEBHOOK_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// What one POST did (counted in metrics, returned to tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub applied: usize,
    pub duplicates: usize,
    pub ignored: usize,
    pub started: Vec<Uuid>,
    /// Where each applied message went: (message id, conversation, route, execution).
    pub routes: Vec<(String, Uuid, &'static str, Option<Uuid>)>,
}

#[derive(Clone)]
pub struct WhatsApp {
    slot: Arc<RoutingSlot>,
    store: Store,
    app_secret: Option<Arc<str>>,
    verify_token: Option<Arc<str>>,
    counters: Arc<Counters>,
}

/// Metric handles of the hot path, registered once (a labelled `counter!` per request
/// costs a registry lookup each time).
struct Counters {
    applied: metrics::Counter,
    duplicates: metrics::Counter,
    /// By [`route_name`] order: handoff, delivered, trigger, inbox.
    routes: [metrics::Counter; 4],
    conversations_created: metrics::Counter,
    conversations_ended: metrics::Counter,
    started_inbound: metrics::Counter,
    started_event: metrics::Counter,
}

impl Counters {
    fn new() -> Self {
        let updates = |outcome: &'static str| metrics::counter!("switchboard_webhook_updates_total", "outcome" => outcome);
        let route = |route: &'static str| metrics::counter!("switchboard_webhook_messages_total", "route" => route);
        let conversations = |event: &'static str| metrics::counter!("switchboard_conversations_total", "event" => event);
        let started = |trigger_type: &'static str| metrics::counter!("switchboard_executions_created_total", "trigger_type" => trigger_type);
        Self {
            applied: updates("applied"),
            duplicates: updates("duplicate"),
            routes: ROUTES.map(route),
            conversations_created: conversations("created"),
            conversations_ended: conversations("ended"),
            started_inbound: started("inbound_message"),
            started_event: started("whatsapp_event"),
        }
    }
}

const ROUTES: [&str; 4] = ["handoff", "delivered", "trigger", "inbox"];

/// The name and index of a route, and the execution it went to.
fn route_name(route: Route) -> (usize, Option<Uuid>) {
    match route {
        Route::Handoff(id) => (0, Some(id)),
        Route::Delivered(id) => (1, Some(id)),
        Route::Started(id) => (2, Some(id)),
        Route::Inbox => (3, None),
    }
}

impl std::fmt::Debug for WhatsApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsApp").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ignored(reason: &'static str) {
    metrics::counter!("switchboard_webhook_ignored_total", "reason" => reason).increment(1);
}

/// A new execution of a WhatsApp trigger.
fn execution(
    project_id: Uuid,
    tracking_id: Uuid,
    workflow_id: Uuid,
    trigger_type: &'static str,
    conversation: Option<String>,
    context: String,
    at: i64,
) -> NewExecution {
    NewExecution {
        id: tracking_id,
        project_id,
        workflow_id,
        trigger_type,
        test: false,
        observer_mode: trigger_type == "whatsapp_event",
        conversation_id: conversation,
        context,
        created_at: at,
    }
}

impl WhatsApp {
    pub fn new(
        slot: Arc<RoutingSlot>,
        store: Store,
        app_secret: Option<String>,
        verify_token: Option<String>,
    ) -> Self {
        Self {
            slot,
            store,
            app_secret: app_secret.filter(|s| !s.is_empty()).map(Into::into),
            verify_token: verify_token.filter(|s| !s.is_empty()).map(Into::into),
            counters: Arc::new(Counters::new()),
        }
    }

    /// The GET handshake: the challenge when mode and token match, else `None` (403).
    pub fn verify<'c>(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&'c str>,
    ) -> Option<&'c str> {
        let expected = self.verify_token.as_deref()?;
        let matches = token.is_some_and(|t| {
            subtle::ConstantTimeEq::ct_eq(t.as_bytes(), expected.as_bytes()).into()
        });
        (mode == Some("subscribe") && matches)
            .then_some(challenge)
            .flatten()
    }

    /// A webhook POST: checks the signature over the raw bytes, applies every update.
    pub async fn ingest(&self, body: &[u8], signature: Option<&str>) -> Result<Report, ApiError> {
        let Some(secret) = self.app_secret.as_deref() else {
            return Err(ApiError::new(
                Kind::Unavailable,
                "not_configured",
                "this data plane has no --meta-app-secret; webhooks cannot be verified",
            ));
        };
        if body.len() > WEBHOOK_BODY_LIMIT {
            return Err(ApiError::payload_too_large(WEBHOOK_BODY_LIMIT));
        }
        if !signature::verify(secret.as_bytes(), body, signature) {
            return Err(ApiError::new(
                Kind::Unauthorized,
                "invalid_signature",
                "X-Hub-Signature-256 is missing or is not the HMAC-SHA256 of the body",
            ));
        }
        let parsed = payload::parse(body).map_err(|e| {
            ApiError::new(
                Kind::BadRequest,
                "invalid_json",
                format!("invalid webhook body: {e}"),
            )
        })?;
        let mut report = Report::default();
        if !parsed.known_object {
            ignored("object");
            report.ignored = 1;
            return Ok(report);
        }
        for reason in &parsed.ignored {
            ignored(reason);
        }
        report.ignored = parsed.ignored.len();
        // Without a table nothing can be routed: 503, and Meta delivers it again later.
        let table = self.slot.table().ok_or_else(ApiError::not_ready)?;
        let at = now_ms();
        let mut messages = Vec::new();
        let mut statuses = Vec::new();
        let mut order = Vec::with_capacity(parsed.updates.len());
        for update in &parsed.updates {
            let pnid = match update {
                Update::Message(m) => m.metadata.phone_number_id,
                Update::Status(s) => s.metadata.phone_number_id,
            };
            let Some(number) = table.number(pnid) else {
                ignored("number");
                report.ignored += 1;
                continue;
            };
            match update {
                Update::Message(m) => {
                    order.push((true, messages.len()));
                    messages.push(plan_message(&table, number, m, at));
                }
                Update::Status(s) => {
                    order.push((false, statuses.len()));
                    statuses.push(plan_status(&table, number, s, at));
                }
            }
        }
        let applies: Vec<Apply<'_>> = order
            .iter()
            .map(|(is_message, i)| {
                if *is_message {
                    Apply::Message(&messages[*i])
                } else {
                    Apply::Status(&statuses[*i])
                }
            })
            .collect();
        let results = self.store.apply(&applies).await?;
        let counters = &self.counters;
        for (update, result) in applies.iter().zip(results) {
            match result {
                Applied::Message(MessageOutcome::Duplicate)
                | Applied::Status(StatusOutcome::Duplicate) => report.duplicates += 1,
                Applied::Message(MessageOutcome::Applied {
                    started,
                    route,
                    conversation_created,
                    conversation_id,
                }) => {
                    report.applied += 1;
                    if conversation_created {
                        counters.conversations_created.increment(1);
                    }
                    let (index, execution) = route_name(route);
                    counters.routes[index].increment(1);
                    let by_trigger = usize::from(matches!(route, Route::Started(_)));
                    counters.started_inbound.increment(by_trigger as u64);
                    if started.len() > by_trigger {
                        counters
                            .started_event
                            .increment((started.len() - by_trigger) as u64);
                    }
                    if let Apply::Message(m) = update {
                        report.routes.push((
                            m.message_id.clone(),
                            conversation_id,
                            ROUTES[index],
                            execution,
                        ));
                    }
                    report.started.extend(started);
                }
                Applied::Status(StatusOutcome::Applied { started, .. }) => {
                    report.applied += 1;
                    if started.is_some() {
                        counters.started_event.increment(1);
                    }
                    report.started.extend(started);
                }
            }
        }
        counters.applied.increment(report.applied as u64);
        if report.duplicates > 0 {
            counters.duplicates.increment(report.duplicates as u64);
        }
        Ok(report)
    }

    /// Ends idle conversations (see [`sweeper`]); returns how many this call ended.
    pub async fn end_idle(&self, inactivity_ms: i64) -> Result<usize, ApiError> {
        let Some(table) = self.slot.table() else {
            return Ok(0);
        };
        let now = now_ms();
        let idle = self
            .store
            .idle_conversations(now - inactivity_ms, sweeper::BATCH)
            .await?;
        let mut ended = 0;
        for conversation in idle {
            let end = plan_end(
                &table,
                &conversation,
                now,
                "inactivity",
                Some(conversation.last_active_at),
            );
            if let EndOutcome::Ended { started } = self.store.end_conversation(&end).await? {
                ended += 1;
                self.counters.conversations_ended.increment(1);
                if started.is_some() {
                    self.counters.started_event.increment(1);
                }
            }
        }
        Ok(ended)
    }

    /// `GET /platform/v1/whatsapp/conversations/{id}`.
    pub async fn conversation(
        &self,
        platform: &Platform,
        api_key: Option<&str>,
        id: &str,
    ) -> Result<Conversation, ApiError> {
        let project_id = platform.project_of(api_key)?;
        let id = Uuid::parse_str(id).map_err(|_| conversation_not_found())?;
        self.store
            .conversation(id)
            .await?
            .filter(|c| c.project_id == project_id)
            .ok_or_else(conversation_not_found)
    }

    /// `GET /platform/v1/whatsapp/conversations`.
    pub async fn conversations(
        &self,
        platform: &Platform,
        api_key: Option<&str>,
        params: &ListParams<'_>,
    ) -> Result<ConversationPage, ApiError> {
        let project_id = platform.project_of(api_key)?;
        let table = self.slot.table().ok_or_else(ApiError::not_ready)?;
        if let Some(pnid) = params.phone_number_id
            && table
                .number(pnid)
                .is_none_or(|n| n.project_id != project_id)
        {
            return Err(ApiError::new(
                Kind::NotFound,
                "phone_number_not_found",
                "phone_number_id is not a number of this project",
            ));
        }
        let phone_number = params
            .phone_number
            .map(|p| {
                phone::normalize(p).ok_or_else(|| {
                    ApiError::field(
                        "invalid_phone_number",
                        "phone_number",
                        "phone_number must be + and 7-15 digits",
                    )
                })
            })
            .transpose()?;
        let status = params
            .status
            .map(|s| {
                ConversationStatus::parse(s).ok_or_else(|| {
                    ApiError::field("invalid_status", "status", "status must be active or ended")
                })
            })
            .transpose()?;
        let limit = page_size(params.limit)?;
        let after = params
            .after
            .filter(|a| !a.is_empty())
            .map(|a| {
                parse_cursor(a).ok_or_else(|| {
                    ApiError::field(
                        "invalid_cursor",
                        "after",
                        "after must be a cursor from a previous page",
                    )
                })
            })
            .transpose()?;
        let query = ConversationQuery {
            project_id,
            phone_number_id: params.phone_number_id.map(str::to_owned),
            phone_number,
            status,
            limit,
            after,
        };
        Ok(self.store.conversations(&query).await?)
    }

    /// `PATCH /platform/v1/whatsapp/conversations/{id}`: ends it (once; ending an ended
    /// conversation changes nothing and fires nothing).
    pub async fn update_conversation(
        &self,
        platform: &Platform,
        api_key: Option<&str>,
        id: &str,
        body: &[u8],
    ) -> Result<Conversation, ApiError> {
        let conversation = self.conversation(platform, api_key, id).await?;
        let body: Value = serde_json::from_slice(body).map_err(|e| ApiError::invalid_json(&e))?;
        let inner = body
            .get("whatsapp_conversation")
            .ok_or_else(|| {
                ApiError::field(
                    "missing_field",
                    "whatsapp_conversation",
                    "whatsapp_conversation is required",
                )
            })?
            .as_object()
            .ok_or_else(|| {
                ApiError::field(
                    "invalid_type",
                    "whatsapp_conversation",
                    "whatsapp_conversation must be an object",
                )
            })?;
        match inner.get("status") {
            Some(Value::String(s)) if s == "ended" => {}
            None => {
                return Err(ApiError::field(
                    "missing_field",
                    "whatsapp_conversation.status",
                    "whatsapp_conversation.status is required",
                ));
            }
            Some(_) => {
                return Err(ApiError::field(
                    "invalid_status",
                    "whatsapp_conversation.status",
                    "a conversation can only be set to ended",
                ));
            }
        }
        if conversation.status == ConversationStatus::Active {
            let table = self.slot.table().ok_or_else(ApiError::not_ready)?;
            let end = plan_end(&table, &conversation, now_ms(), "api", None);
            if let EndOutcome::Ended { started } = self.store.end_conversation(&end).await? {
                self.counters.conversations_ended.increment(1);
                if started.is_some() {
                    self.counters.started_event.increment(1);
                }
            }
        }
        self.conversation(platform, api_key, id).await
    }

    /// `GET /platform/v1/whatsapp/messages/{wamid}`: the stored status of an outbound
    /// message of the key's project.
    pub async fn message(
        &self,
        platform: &Platform,
        api_key: Option<&str>,
        id: &str,
    ) -> Result<MessageState, ApiError> {
        let project_id = platform.project_of(api_key)?;
        let not_found = || ApiError::new(Kind::NotFound, "message_not_found", "message not found");
        self.store
            .message_state(&project_id, id)
            .await?
            .filter(|m| m.project_id == project_id)
            .ok_or_else(not_found)
    }
}

/// Raw query parameters of the conversation list.
#[derive(Debug, Default)]
pub struct ListParams<'a> {
    pub phone_number_id: Option<&'a str>,
    pub phone_number: Option<&'a str>,
    pub status: Option<&'a str>,
    pub limit: Option<&'a str>,
    pub after: Option<&'a str>,
}

fn conversation_not_found() -> ApiError {
    ApiError::new(
        Kind::NotFound,
        "conversation_not_found",
        "conversation not found",
    )
}

/// A page cursor: `<last activity ms>_<conversation id>`.
pub fn cursor((at, id): (i64, Uuid)) -> String {
    format!("{at}_{id}")
}

fn parse_cursor(raw: &str) -> Option<(i64, Uuid)> {
    let (at, id) = raw.split_once('_')?;
    Some((at.parse().ok()?, Uuid::parse_str(id).ok()?))
}

/// The JSON form of a conversation (DESIGN §5).
pub fn conversation_json(c: &Conversation) -> Value {
    let time = crate::api::rfc3339_ms;
    json!({
        "id": c.id.to_string(),
        "phone_number": c.phone_number,
        "phone_number_id": c.phone_number_id,
        "status": c.status.as_str(),
        "created_at": time(c.created_at),
        "last_active_at": time(c.last_active_at),
        "last_message": c
            .last_message
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok()),
    })
}

fn event_trigger(table: &RoutingTable, event: &str, number: &Number) -> Option<Uuid> {
    let event = EventType::parse(event)?;
    table.event_trigger(event, number).map(|t| t.workflow_id)
}

/// `{id, type, text}` of a message.
#[derive(serde::Serialize)]
struct Summary<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    text: &'a str,
}

/// The event appended to an execution a message is delivered to.
#[derive(serde::Serialize)]
struct Delivery<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    at: i64,
    message: &'a Summary<'a>,
}

/// An entry of the agent inbox.
#[derive(serde::Serialize)]
struct InboxEntry<'a> {
    conversation_id: &'a str,
    project_id: Uuid,
    phone_number_id: &'a str,
    phone_number: &'a str,
    contact_name: Option<&'a str>,
    message: &'a Summary<'a>,
    at: i64,
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

/// Everything the store needs to apply an inbound message.
fn plan_message(
    table: &RoutingTable,
    number: &Number,
    m: &payload::Message<'_>,
    at: i64,
) -> InboundMessage {
    let project_id = number.project_id;
    let placeholder = Placeholder::new();
    let phone_number = format!("+{}", m.from);
    let conversation = Some(placeholder.id().to_owned());
    let message = EventMessage {
        id: &m.id,
        kind: Some(&m.kind),
        status: "received",
        text: (!m.text.is_empty()).then_some(m.text.as_str()),
    };
    let event = |event_type: &str, with_message: bool| {
        let workflow_id = event_trigger(table, event_type, number)?;
        let tracking_id = keys::new_tracking_id(&project_id);
        let common = Common {
            tracking_id,
            workflow_id,
            whatsapp_config_id: number.whatsapp_config_id,
            phone_number: &phone_number,
            conversation: ConversationRef::Pending(&placeholder),
            test: false,
        };
        let payload = context::payload(m.raw.get(), m.metadata.raw.get());
        let context = context::whatsapp_event(
            &common,
            event_type,
            payload,
            with_message.then_some(&message),
        );
        Some(execution(
            project_id,
            tracking_id,
            workflow_id,
            "whatsapp_event",
            conversation.clone(),
            context,
            at,
        ))
    };
    let on_created = event("whatsapp.conversation.created", false);
    let on_received = event("whatsapp.message.received", true);
    let trigger = table
        .message_trigger(number.whatsapp_config_id)
        .map(|trigger| {
            let tracking_id = keys::new_tracking_id(&project_id);
            let common = Common {
                tracking_id,
                workflow_id: trigger.workflow_id,
                whatsapp_config_id: number.whatsapp_config_id,
                phone_number: &phone_number,
                conversation: ConversationRef::Pending(&placeholder),
                test: false,
            };
            let context = context::inbound_message(&common, m.contact_name.as_deref(), &m.text);
            execution(
                project_id,
                tracking_id,
                trigger.workflow_id,
                "inbound_message",
                conversation.clone(),
                context,
                at,
            )
        });
    let summary = Summary {
        id: &m.id,
        kind: &m.kind,
        text: &m.text,
    };
    let last_message = to_json(&summary);
    let delivery = to_json(&Delivery {
        kind: "message_received",
        at,
        message: &summary,
    });
    let inbox = to_json(&InboxEntry {
        conversation_id: placeholder.id(),
        project_id,
        phone_number_id: m.metadata.phone_number_id,
        phone_number: &phone_number,
        contact_name: m.contact_name.as_deref(),
        message: &summary,
        at,
    });
    InboundMessage {
        project_id,
        whatsapp_config_id: number.whatsapp_config_id,
        phone_number_id: m.metadata.phone_number_id.to_owned(),
        customer: m.from.clone().into_owned(),
        message_id: m.id.clone().into_owned(),
        last_message,
        last_user_input: m.text.clone(),
        at,
        new_conversation: keys::new_tracking_id(&project_id),
        placeholder,
        on_created,
        on_received,
        trigger,
        delivery,
        inbox,
    }
}

/// Everything the store needs to apply a status of an outbound message.
fn plan_status(
    table: &RoutingTable,
    number: &Number,
    s: &payload::Status<'_>,
    at: i64,
) -> InboundStatus {
    let project_id = number.project_id;
    let placeholder = Placeholder::new();
    let event_type = s.status.event_type();
    let on_status = event_trigger(table, event_type, number).map(|workflow_id| {
        let tracking_id = keys::new_tracking_id(&project_id);
        let phone_number = format!("+{}", s.recipient);
        let common = Common {
            tracking_id,
            workflow_id,
            whatsapp_config_id: number.whatsapp_config_id,
            phone_number: &phone_number,
            conversation: ConversationRef::Pending(&placeholder),
            test: false,
        };
        let message = EventMessage {
            id: &s.id,
            kind: None,
            status: s.status.as_str(),
            text: None,
        };
        let payload = context::payload(s.raw.get(), s.metadata.raw.get());
        let context = context::whatsapp_event(&common, event_type, payload, Some(&message));
        execution(
            project_id,
            tracking_id,
            workflow_id,
            "whatsapp_event",
            Some(placeholder.id().to_owned()),
            context,
            at,
        )
    });
    InboundStatus {
        project_id,
        whatsapp_config_id: number.whatsapp_config_id,
        phone_number_id: s.metadata.phone_number_id.to_owned(),
        customer: s.recipient.clone().into_owned(),
        message_id: s.id.clone().into_owned(),
        status: s.status.as_str(),
        rank: s.status.rank(),
        at,
        placeholder,
        on_status,
    }
}

/// Ending a conversation, with its `whatsapp.conversation.ended` execution when a trigger
/// listens.
fn plan_end(
    table: &RoutingTable,
    conversation: &Conversation,
    at: i64,
    reason: &'static str,
    expected_last_active: Option<i64>,
) -> EndConversation {
    let event_type = "whatsapp.conversation.ended";
    let on_ended = table
        .number_by_config_id(conversation.whatsapp_config_id)
        .filter(|n| n.project_id == conversation.project_id)
        .and_then(|number| {
            let workflow_id = event_trigger(table, event_type, number)?;
            let tracking_id = keys::new_tracking_id(&conversation.project_id);
            let common = Common {
                tracking_id,
                workflow_id,
                whatsapp_config_id: number.whatsapp_config_id,
                phone_number: &conversation.phone_number,
                conversation: ConversationRef::Known {
                    id: conversation.id,
                    status: "ended",
                },
                test: false,
            };
            let payload = json!({
                "reason": reason,
                "conversation_id": conversation.id.to_string(),
                "last_active_at": crate::api::rfc3339_ms(conversation.last_active_at),
                "metadata": {
                    "phone_number_id": &conversation.phone_number_id,
                    "display_phone_number": &*number.display_phone_number,
                },
            });
            let context = context::whatsapp_event(&common, event_type, payload, None);
            Some(execution(
                conversation.project_id,
                tracking_id,
                workflow_id,
                "whatsapp_event",
                Some(conversation.id.to_string()),
                context,
                at,
            ))
        });
    EndConversation {
        id: conversation.id,
        at,
        reason,
        expected_last_active,
        on_ended,
    }
}
