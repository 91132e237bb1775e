//! WhatsApp state kept next to the executions (DESIGN §5 conversations, §7): conversations
//! per (number, customer), processed message ids, the monotonic status of outbound
//! messages, and the agent inbox stream.
//!
//! Each inbound update is applied by the store as one atomic step: the duplicate check, the
//! conversation, the routing decision of DESIGN §7 and the executions it starts are written
//! together or not at all, and the step's "seen" mark is written last, so a retry of a
//! failed POST completes what is missing without repeating what is done.
//!
//! Contexts are built before the store decides which conversation a message belongs to, so
//! they carry a [`Placeholder`] that the store replaces with the real conversation id (and
//! status) as it writes them.

use super::NewExecution;
use super::rules::Rule;
use uuid::Uuid;

/// How long processed message ids and statuses are remembered (DESIGN §7: at least 7 days).
pub const SEEN_WINDOW_MS: i64 = 8 * 24 * 3600 * 1000;

/// A random token standing for "the conversation" in contexts built before the store
/// chose it. Written as the JSON strings `"<token>"` (the id) and `"<token>/status"` (its
/// status); the store replaces both, quotes included, with JSON values (`null` when there
/// is no conversation). A fresh random token cannot occur in user text by accident, and
/// nobody can send it on purpose before it exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholder(String);

impl Placeholder {
    pub fn new() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    /// The string to put where the conversation id goes.
    pub fn id(&self) -> &str {
        &self.0
    }

    /// The string to put where the conversation status goes.
    pub fn status(&self) -> String {
        format!("{}/status", self.0)
    }

    /// `text` as a template for the Redis scripts: its segments between placeholders and,
    /// between two segments, `i` (the id goes here) or `s` (the status), preceded by the
    /// number of segments. The script joins them with the values it chose; joining is
    /// cheaper in Lua than searching the text.
    pub fn template(&self, text: &str) -> Vec<String> {
        let id = format!("\"{}\"", self.0);
        let status = format!("\"{}/status\"", self.0);
        let mut segments = Vec::new();
        let mut markers = Vec::new();
        let mut rest = text;
        loop {
            let next = [
                (rest.find(&id), "i", id.len()),
                (rest.find(&status), "s", status.len()),
            ]
            .into_iter()
            .filter_map(|(at, marker, len)| at.map(|at| (at, marker, len)))
            .min_by_key(|(at, ..)| *at);
            let Some((at, marker, len)) = next else {
                segments.push(rest);
                break;
            };
            segments.push(&rest[..at]);
            markers.push(marker);
            rest = &rest[at + len..];
        }
        let mut args = Vec::with_capacity(segments.len() * 2);
        args.push(segments.len().to_string());
        for (i, segment) in segments.into_iter().enumerate() {
            if i > 0 {
                args.push(markers[i - 1].to_owned());
            }
            args.push(segment.to_owned());
        }
        args
    }

    /// `text` with the placeholders replaced by JSON values.
    pub fn fill(&self, text: &str, id: Option<&Uuid>, status: Option<&str>) -> String {
        let id = id.map_or_else(|| "null".to_owned(), |id| format!("\"{id}\""));
        let status = status.map_or_else(|| "null".to_owned(), |s| format!("\"{s}\""));
        text.replace(&format!("\"{}\"", self.0), &id)
            .replace(&format!("\"{}/status\"", self.0), &status)
    }
}

impl Default for Placeholder {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversationStatus {
    Active,
    Ended,
}

impl ConversationStatus {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "active" => Some(Self::Active),
            "ended" => Some(Self::Ended),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Ended => "ended",
        }
    }
}

/// Who a conversation is with (DESIGN §12, Meta's business-scoped user ids). A customer
/// always has a phone number (a wa_id) or a BSUID, often both. The phone number keys the
/// conversation when there is one, else the BSUID; a BSUID known beside a phone number
/// points at the same conversation, so a later update carrying only one of them joins it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Customer {
    /// The wa_id: the digits of the phone number.
    pub phone: Option<String>,
    /// The BSUID (`user_id`).
    pub user_id: Option<String>,
    pub username: Option<String>,
}

impl Customer {
    /// A customer known by phone number only.
    pub fn by_phone(wa_id: impl Into<String>) -> Self {
        Customer {
            phone: Some(wa_id.into()),
            ..Customer::default()
        }
    }

    /// The key of their conversation pointer: the phone number, else the BSUID.
    pub fn key(&self) -> &str {
        self.phone
            .as_deref()
            .or(self.user_id.as_deref())
            .unwrap_or_default()
    }

    /// The second key pointing at their conversation: the BSUID, when the phone number is
    /// the first.
    pub fn alias(&self) -> Option<&str> {
        self.phone.as_ref().and(self.user_id.as_deref())
    }

    /// `+<wa_id>`, or `""` without a phone number.
    pub fn phone_number(&self) -> String {
        self.phone
            .as_deref()
            .map_or_else(String::new, |p| format!("+{p}"))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub id: Uuid,
    pub project_id: Uuid,
    pub whatsapp_config_id: i64,
    pub phone_number_id: String,
    /// `+<wa_id>`; `""` while only the customer's BSUID is known.
    pub phone_number: String,
    /// The customer's BSUID and username, when Meta sent them.
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub status: ConversationStatus,
    pub created_at: i64,
    pub last_active_at: i64,
    /// `{id, type, text}` of the last inbound message, JSON.
    pub last_message: Option<String>,
    /// The latest intercepting (non-observer) execution started for it.
    pub execution: Option<Uuid>,
}

/// An inbound message, ready to be applied.
#[derive(Clone, Debug)]
pub struct InboundMessage {
    pub project_id: Uuid,
    pub whatsapp_config_id: i64,
    pub phone_number_id: String,
    pub customer: Customer,
    pub message_id: String,
    /// `{id, type, text}`, JSON.
    pub last_message: String,
    pub last_user_input: String,
    /// Unix milliseconds.
    pub at: i64,
    /// The id a new conversation gets (a tracking-style id carrying the project's shard).
    pub new_conversation: Uuid,
    pub placeholder: Placeholder,
    /// Event executions to start when a conversation is created / for the message.
    pub on_created: Option<NewExecution>,
    pub on_received: Option<NewExecution>,
    /// The `inbound_message` execution to start under rule (c).
    pub trigger: Option<NewExecution>,
    /// The event appended to a running execution under rule (b), JSON.
    pub delivery: String,
    /// The agent inbox entry under rule (d), JSON (may hold the placeholder).
    pub inbox: String,
    /// The routing decision, completed with the rule that matched.
    pub decision: super::Draft,
}

/// Where DESIGN §7's routing sent a message: the [`Rule`] that matched, with the
/// execution concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// (a) an execution of the conversation is in handoff.
    Handoff(Uuid),
    /// (b) delivered to the conversation's running execution.
    Delivered(Uuid),
    /// (c) a new `inbound_message` execution.
    Started(Uuid),
    /// (d) the agent inbox.
    Inbox,
}

impl Route {
    pub fn rule(self) -> Rule {
        match self {
            Route::Handoff(_) => Rule::Handoff,
            Route::Delivered(_) => Rule::Deliver,
            Route::Started(_) => Rule::Trigger,
            Route::Inbox => Rule::Inbox,
        }
    }

    /// The execution the message went to or started.
    pub fn execution(self) -> Option<Uuid> {
        match self {
            Route::Handoff(id) | Route::Delivered(id) | Route::Started(id) => Some(id),
            Route::Inbox => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageOutcome {
    Duplicate,
    Applied {
        conversation_id: Uuid,
        conversation_created: bool,
        route: Route,
        /// Executions started (event triggers and the message trigger).
        started: Vec<Uuid>,
    },
}

/// A status of an outbound message, ready to be applied.
#[derive(Clone, Debug)]
pub struct InboundStatus {
    pub project_id: Uuid,
    pub whatsapp_config_id: i64,
    pub phone_number_id: String,
    /// The recipient.
    pub customer: Customer,
    pub message_id: String,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: &'static str,
    /// Its rank in the monotonic order.
    pub rank: u8,
    pub at: i64,
    pub placeholder: Placeholder,
    /// The event execution to start.
    pub on_status: Option<NewExecution>,
    /// The routing decision.
    pub decision: super::Draft,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusOutcome {
    Duplicate,
    Applied {
        /// The message's status after this one (a late lower status leaves it unchanged).
        current: String,
        started: Option<Uuid>,
    },
}

/// One update of a webhook POST, for [`super::Conversations::apply`].
#[derive(Debug)]
pub enum Apply<'a> {
    Message(&'a InboundMessage),
    Status(&'a InboundStatus),
}

/// What [`super::Conversations::apply`] did with an update.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Message(MessageOutcome),
    Status(StatusOutcome),
}

/// The stored state of an outbound message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageState {
    pub id: String,
    pub project_id: Uuid,
    pub status: String,
    pub recipient: String,
    pub phone_number_id: String,
    pub updated_at: i64,
}

/// Ends a conversation; `expected_last_active` guards the inactivity sweep against a
/// message that arrived after the sweep read the conversation.
#[derive(Clone, Debug)]
pub struct EndConversation {
    pub id: Uuid,
    pub at: i64,
    pub reason: &'static str,
    pub expected_last_active: Option<i64>,
    /// The `whatsapp.conversation.ended` execution to start.
    pub on_ended: Option<NewExecution>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndOutcome {
    NotFound,
    AlreadyEnded,
    /// Activity after the sweep looked: still active.
    Active,
    Ended {
        started: Option<Uuid>,
    },
}

/// What an API-trigger execution does when its conversation is held by another
/// intercepting execution (DESIGN §12 `workflow_execution.on_conflict`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnConflict {
    /// The new execution starts; the holder ends (`superseded`). The default.
    #[default]
    EndExisting,
    /// Nothing is written; the holder is named (409 `conversation_busy`).
    Fail,
}

impl OnConflict {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "end_existing" => Some(Self::EndExisting),
            "fail" => Some(Self::Fail),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndExisting => "end_existing",
            Self::Fail => "fail",
        }
    }
}

/// The conversation a new API-trigger execution joins (DESIGN §12): the active one of
/// (number, customer), or a new one. The execution's meta and context hold `placeholder`
/// where the conversation id goes, as the webhook's do.
#[derive(Clone, Debug)]
pub struct Binding {
    pub whatsapp_config_id: i64,
    /// Meta's id of the number.
    pub phone_number_id: String,
    pub customer: Customer,
    /// The id a new conversation gets (carrying the project's shard).
    pub new_conversation: Uuid,
    pub placeholder: Placeholder,
    pub on_conflict: OnConflict,
    /// The `whatsapp.conversation.created` execution, when a new conversation has a
    /// listener.
    pub on_created: Option<NewExecution>,
}

/// What binding did (see [`super::Created::New`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub conversation_id: Uuid,
    /// The conversation is new.
    pub created: bool,
    /// The execution that held it and ended (`superseded`).
    pub superseded: Option<Uuid>,
    /// The `whatsapp.conversation.created` execution started.
    pub started: Option<Uuid>,
}

#[derive(Clone, Debug)]
pub struct ConversationQuery {
    pub project_id: Uuid,
    pub phone_number_id: Option<String>,
    pub phone_number: Option<String>,
    pub status: Option<ConversationStatus>,
    pub limit: usize,
    /// `(last_active_at, id)` of the last conversation of the previous page.
    pub after: Option<(i64, Uuid)>,
}

impl ConversationQuery {
    /// Whether `c` is one this query lists (both backends filter with it).
    pub fn matches(&self, c: &Conversation) -> bool {
        c.project_id == self.project_id
            && self
                .phone_number_id
                .as_ref()
                .is_none_or(|p| *p == c.phone_number_id)
            && self
                .phone_number
                .as_ref()
                .is_none_or(|p| *p == c.phone_number)
            && self.status.is_none_or(|s| s == c.status)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConversationPage {
    pub conversations: Vec<Conversation>,
    pub after: Option<(i64, Uuid)>,
}

#[cfg(test)]
mod tests {
    use super::Placeholder;

    #[test]
    fn a_template_joined_with_values_is_the_filled_text() {
        let p = Placeholder::new();
        let text = format!(
            r#"{{"a":"{id}","b":{{"id":"{id}","status":"{status}"}},"c":"x{id}y","d":"{id}"}}"#,
            id = p.id(),
            status = p.status()
        );
        let template = p.template(&text);
        // Join like the Lua scripts do.
        let n: usize = template[0].parse().expect("count");
        let mut joined = String::new();
        for i in 0..n {
            joined.push_str(&template[1 + 2 * i]);
            if i + 1 < n {
                joined.push_str(match template[2 + 2 * i].as_str() {
                    "i" => "\"X\"",
                    _ => "null",
                });
            }
        }
        let id = uuid::Uuid::nil();
        assert_eq!(n, 5, "{template:?}");
        assert_eq!(
            joined.replace("\"X\"", &format!("\"{id}\"")),
            p.fill(&text, Some(&id), None)
        );
        assert_eq!(p.template("{}"), vec!["1".to_owned(), "{}".to_owned()]);
    }
}
