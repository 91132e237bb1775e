//! Routing decisions (DESIGN §13): why a webhook update, an API call, a test run or a resume
//! started what it did, or nothing. The store writes a decision in the same atomic step as
//! what it decides — the Redis scripts complete a [`Draft`] with the outcome they reached
//! (`redis/scripts/decision.lua`), the memory store with [`Draft::decide`] — so there is no
//! decision without its effect, nor the other way round. A refusal taken before the store
//! is asked (unknown workflow, invalid body) has no effect and is recorded alone
//! ([`super::Decisions::record_decision`]).
//!
//! Decisions are kept per project, newest first, for `--decision-retention` and at most
//! `--decision-cap` of them; a webhook update delivered again is recorded as `duplicate`
//! once (on its first redelivery), so a flood of redeliveries cannot push other decisions
//! out.

use serde::{Deserialize, Serialize};
use switchboard_proto::wire::EventType;
use uuid::Uuid;

/// What asked for the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A message or status of a Meta webhook.
    Webhook,
    /// An API-trigger call.
    Api,
    /// A test run (Flow Test).
    TestRun,
    /// A resume of a waiting execution.
    Resume,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Api => "api",
            Source::TestRun => "test_run",
            Source::Resume => "resume",
        }
    }
}

/// What happened (DESIGN §13 `outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A workflow started (`trigger_id`, `workflow_id`, `execution_id`).
    Started,
    /// Delivered to an execution already running (rule b; a resume).
    Delivered,
    /// A human has the conversation (rule a).
    Handoff,
    /// To the AI agents' inbox (rule d).
    Inbox,
    /// Seen before: nothing new happened.
    Duplicate,
    /// Accepted, nothing to start (a status no event trigger listens to).
    Ignored,
    /// Refused: the caller got an error.
    Refused,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Started,
        Outcome::Delivered,
        Outcome::Handoff,
        Outcome::Inbox,
        Outcome::Duplicate,
        Outcome::Ignored,
        Outcome::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::Delivered => "delivered",
            Outcome::Handoff => "handoff",
            Outcome::Inbox => "inbox",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Refused => "refused",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// Why not `started` (DESIGN §13 `reason`), one name per case; the decision names the
/// trigger, workflow or execution concerned.
pub mod reason {
    /// No active trigger routes the update: the number has no message trigger (a message,
    /// to the inbox) or no event trigger listens (a status).
    pub const NO_TRIGGER: &str = "no_trigger";
    /// Delivered to the conversation's execution (`execution_id`), which is running.
    pub const EXECUTION_ACTIVE: &str = "execution_active";
    /// The conversation's execution (`execution_id`) is in handoff.
    pub const HANDOFF: &str = "handoff";
    /// The webhook update was processed before.
    pub const ALREADY_PROCESSED: &str = "already_processed";
    /// The `Idempotency-Key` was seen with the same request: the original `execution_id`.
    pub const IDEMPOTENT_REPLAY: &str = "idempotent_replay";
    pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";
    /// Over the key's burst limit.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The conversation is held by `execution_id` and `on_conflict` was `fail`.
    pub const CONVERSATION_BUSY: &str = "conversation_busy";
    /// No workflow of the project has that id.
    pub const WORKFLOW_NOT_FOUND: &str = "workflow_not_found";
    /// The workflow (`workflow_id`) is a draft.
    pub const WORKFLOW_DRAFT: &str = "workflow_draft";
    /// The workflow's trigger of this type (`trigger_id`, when it has one) is inactive.
    pub const TRIGGER_INACTIVE: &str = "trigger_inactive";
    /// The request was invalid (`detail` names the field).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// A resume of an execution that is not waiting.
    pub const NOT_WAITING: &str = "not_waiting";
    /// A resume of an execution the project does not have.
    pub const EXECUTION_NOT_FOUND: &str = "execution_not_found";
}

/// An execution an update started beside its main outcome: an event trigger's observer
/// execution (`whatsapp.conversation.created`, `whatsapp.message.received`, a status).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    #[serde(rename = "type")]
    pub event: String,
    pub trigger_id: Option<Uuid>,
    pub workflow_id: Uuid,
    pub execution_id: Uuid,
}

/// A stored decision (DESIGN §13). Times are Unix milliseconds here; the edges show them
/// as RFC 3339.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub id: Uuid,
    pub project_id: Uuid,
    pub at: i64,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The customer: phone number digits, else BSUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<Uuid>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// More about the reason: the field of an invalid request, the error's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<Uuid>,
    /// The execution an API call's execution ended in its conversation (`on_conflict`
    /// `end_existing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Fired>,
}

/// What a decision knows before the store decides: who asked, about what. The store adds
/// the outcome and what it concerns. Serialised, its fields are those of [`Decision`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Draft {
    pub id: Uuid,
    pub project_id: Uuid,
    pub at: i64,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Known before the store decides (API calls, test runs, resumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<Uuid>,
    /// The trigger asked (an API call's `api_call` trigger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<Uuid>,
}

impl Draft {
    /// A new draft of `project_id`'s, with an id carrying the project's shard.
    pub fn new(project_id: Uuid, source: Source, at: i64) -> Self {
        Self {
            id: super::keys::new_tracking_id(&project_id),
            project_id,
            at,
            source,
            phone_number_id: None,
            message_id: None,
            from: None,
            workflow_id: None,
            trigger_id: None,
        }
    }

    /// The decision with `outcome` and `reason`; the rest of what it concerns is the
    /// caller's to fill.
    pub fn decide(&self, outcome: Outcome, reason: Option<&str>) -> Decision {
        Decision {
            id: self.id,
            project_id: self.project_id,
            at: self.at,
            source: self.source,
            phone_number_id: self.phone_number_id.clone(),
            message_id: self.message_id.clone(),
            from: self.from.clone(),
            conversation_id: None,
            outcome,
            reason: reason.map(str::to_owned),
            detail: None,
            trigger_id: self.trigger_id,
            workflow_id: self.workflow_id,
            execution_id: None,
            superseded: None,
            events: Vec::new(),
        }
    }
}

impl Decision {
    /// Names `e` as what the decision concerns: its trigger, workflow and id.
    pub fn concerning(mut self, e: &super::NewExecution) -> Self {
        self.trigger_id = e
            .origin
            .as_ref()
            .and_then(|o| o.trigger_id)
            .or(self.trigger_id);
        self.workflow_id = Some(e.workflow_id);
        self.execution_id = Some(e.id);
        self
    }
}

/// Where a new execution comes from: the decision that started it, the trigger, and for
/// an event trigger's execution the event (listed in its decision's `events`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub decision_id: Uuid,
    pub trigger_id: Option<Uuid>,
    pub event: Option<EventType>,
}

impl Origin {
    /// The execution as its decision lists it among `events`, when an event started it.
    pub fn fired(&self, workflow_id: Uuid, execution_id: Uuid) -> Option<Fired> {
        self.event.map(|event| Fired {
            event: event.as_str().to_owned(),
            trigger_id: self.trigger_id,
            workflow_id,
            execution_id,
        })
    }
}

/// The filters of `GET /platform/v1/routing_decisions` (DESIGN §13).
#[derive(Clone, Debug, Default)]
pub struct DecisionQuery {
    pub project_id: Uuid,
    pub phone_number_id: Option<String>,
    pub conversation_id: Option<Uuid>,
    pub message_id: Option<String>,
    /// The decision's workflow, or one of its events'.
    pub workflow_id: Option<Uuid>,
    pub outcome: Option<Outcome>,
    pub limit: usize,
    /// Decisions older than this one.
    pub after: Option<Uuid>,
}

impl DecisionQuery {
    pub fn matches(&self, d: &Decision) -> bool {
        d.project_id == self.project_id
            && self
                .phone_number_id
                .as_ref()
                .is_none_or(|p| d.phone_number_id.as_ref() == Some(p))
            && self
                .conversation_id
                .is_none_or(|c| d.conversation_id == Some(c))
            && self
                .message_id
                .as_ref()
                .is_none_or(|m| d.message_id.as_ref() == Some(m))
            && self.workflow_id.is_none_or(|w| {
                d.workflow_id == Some(w) || d.events.iter().any(|e| e.workflow_id == w)
            })
            && self.outcome.is_none_or(|o| d.outcome == o)
    }
}

/// A page of decisions, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecisionPage {
    pub decisions: Vec<Decision>,
    /// Pass as `after` for the next page; `None` on the last.
    pub after: Option<Uuid>,
}

/// How long decisions are kept and how many per project (DESIGN §13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionLimits {
    pub retention_ms: i64,
    pub cap: usize,
}

impl Default for DecisionLimits {
    fn default() -> Self {
        Self {
            retention_ms: 7 * 24 * 3600 * 1000,
            cap: 10_000,
        }
    }
}
