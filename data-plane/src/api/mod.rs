//! The platform API (DESIGN §5) as operations, independent of the transport: the HTTP edge
//! (`http::platform`, `http::conversations`) and the gRPC edge (`grpc`) both call
//! [`Platform`]. Every decision is taken from the in-memory routing table; the execution
//! store is the only I/O.
//!
//! The API trigger and executions are here; the conversation endpoints in
//! [`conversations`], test runs in [`test_runs`], resumes in [`resume`], routing decisions
//! in [`decisions`]; the request body
//! in [`request`], its phone number in [`phone`], the execution context it gets in
//! [`context`].

pub mod context;
pub mod conversations;
pub mod decisions;
mod error;
pub mod paging;
pub mod phone;
pub mod request;
mod resume;
pub mod test_runs;

pub use error::{ApiError, Kind};

use crate::observer;
use crate::routing::{ApiKey, RoutingSlot, RoutingTable};
use crate::store::conversations::{Customer, Placeholder};
use crate::store::decisions::Source;
use crate::store::{
    Admission, Binding, Created, Draft, Execution, ListQuery, NewExecution, Origin, Status, Store,
    Transition, keys,
};
use crate::whatsapp::context::Who;
use crate::whatsapp::{Lifecycle, planning};
use paging::{Listed, NumberedPage, Paging, RawPaging};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use switchboard_proto::wire::TriggerType;
use uuid::Uuid;

/// Longest accepted `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;
/// Largest accepted request body.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Page size bounds of execution lists.
pub const LIST_DEFAULT: usize = 20;
pub const LIST_MAX: usize = 100;

/// Who a call acts for: a project, through one of its API keys (the platform API), or named
/// by the control plane with the node token (its console; the edge checked the token).
#[derive(Clone, Copy, Debug)]
pub enum Caller<'a> {
    ApiKey(Option<&'a str>),
    Project(Uuid),
}

/// The body of a start request.
#[derive(Debug)]
pub enum Body<'a> {
    /// A whole HTTP body: `{"workflow_execution": {…}}`.
    Http(&'a [u8]),
    /// The `workflow_execution` object alone (gRPC).
    Inner(&'a [u8]),
}

#[derive(Debug)]
pub struct StartRequest<'a> {
    pub api_key: Option<&'a str>,
    pub workflow_id: &'a str,
    pub body: Body<'a>,
    pub idempotency_key: Option<&'a str>,
    pub request_ip: &'a str,
}

/// A started (or replayed) execution.
#[derive(Debug, PartialEq, Eq)]
pub struct Started {
    pub workflow_id: Uuid,
    pub tracking_id: Uuid,
    pub replayed: bool,
    /// `(limit, remaining)` when the key has a burst limit.
    pub burst: Option<(u32, u32)>,
}

#[derive(Clone)]
pub struct Platform {
    slot: Arc<RoutingSlot>,
    store: Store,
    /// Ends conversations on request.
    lifecycle: Lifecycle,
    /// `switchboard_executions_created_total{trigger_type="api_call"}`, registered once.
    created_api_call: metrics::Counter,
    /// `switchboard_conversations_total{event="created"}`: conversations API calls open.
    conversations_created: metrics::Counter,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
        hasher.update([0u8]);
    }
    hex::encode(hasher.finalize())
}

impl Platform {
    pub fn new(slot: Arc<RoutingSlot>, store: Store, lifecycle: Lifecycle) -> Self {
        Self {
            slot,
            store,
            lifecycle,
            created_api_call: metrics::counter!(
                "switchboard_executions_created_total",
                "trigger_type" => TriggerType::ApiCall.as_str()
            ),
            conversations_created: metrics::counter!(
                "switchboard_conversations_total",
                "event" => "created"
            ),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn table(&self) -> Result<Arc<RoutingTable>, ApiError> {
        self.slot.table().ok_or_else(ApiError::not_ready)
    }

    /// The key presented, if it is known and not revoked.
    pub fn authenticate<'t>(
        table: &'t RoutingTable,
        presented: Option<&str>,
    ) -> Result<&'t ApiKey, ApiError> {
        let presented = presented
            .filter(|k| !k.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        table
            .api_key_by_hash(&digest)
            .filter(|k| !k.revoked)
            .ok_or_else(ApiError::unauthorized)
    }

    /// The API trigger: `POST /platform/v1/workflows/{workflow_id}/executions`. Once the key
    /// names the project, every outcome is a routing decision: the store records those it
    /// takes with the execution, [`Platform::refused`] those taken here.
    pub async fn start(&self, request: StartRequest<'_>) -> Result<Started, ApiError> {
        let table = self.table()?;
        let key = Self::authenticate(&table, request.api_key)?;
        let now = chrono::Utc::now();
        let mut draft = Draft::new(key.project_id, Source::Api, now.timestamp_millis());
        draft.workflow_id = Uuid::parse_str(request.workflow_id).ok();
        let (execution, mut admission, customer) =
            match Self::admit(&table, key, &request, now, &mut draft) {
                Ok(admitted) => admitted,
                Err(err) => return Err(self.refused(&draft, err).await),
            };
        admission.decision = Some(draft);
        let (workflow_id, tracking_id) = (execution.workflow_id, execution.id);
        match self.store.create(&execution, &admission).await? {
            Created::New {
                burst_remaining,
                joined,
            } => {
                if joined.as_ref().is_some_and(|j| j.created) {
                    self.conversations_created.increment(1);
                }
                self.created_api_call.increment(1);
                Ok(Started {
                    workflow_id,
                    tracking_id,
                    replayed: false,
                    burst: key.burst_limit.zip(burst_remaining),
                })
            }
            Created::Replayed { tracking_id } => Ok(Started {
                workflow_id,
                tracking_id,
                replayed: true,
                burst: None,
            }),
            Created::IdempotencyKeyReused => Err(ApiError::field(
                "idempotency_key_reused",
                "Idempotency-Key",
                "this Idempotency-Key was used with a different request in the last 24 hours",
            )),
            Created::ConversationBusy { holder } => Err(ApiError {
                kind: Kind::Conflict,
                code: "conversation_busy",
                message: format!(
                    "execution {holder} holds the conversation of {} on this number; \
                     on_conflict \"end_existing\" (the default) ends it and starts this one",
                    customer.as_deref().unwrap_or_default()
                ),
                field: Some("workflow_execution.on_conflict".to_owned()),
            }),
            Created::RateLimited => Err(ApiError::new(
                Kind::RateLimited,
                "rate_limited",
                format!(
                    "burst limit of {} requests per second for this key and workflow reached",
                    key.burst_limit.unwrap_or_default()
                ),
            )),
        }
    }

    /// The checks of a start request, in order, and what it asks the store: the execution,
    /// its admission (without its decision) and the customer it names, if any. Fills in
    /// `draft` what the request tells.
    fn admit(
        table: &RoutingTable,
        key: &ApiKey,
        request: &StartRequest<'_>,
        now: chrono::DateTime<chrono::Utc>,
        draft: &mut Draft,
    ) -> Result<(NewExecution, Admission, Option<String>), ApiError> {
        let raw = match request.body {
            Body::Http(bytes) | Body::Inner(bytes) => bytes,
        };
        if raw.len() > BODY_LIMIT {
            return Err(ApiError::payload_too_large(BODY_LIMIT));
        }
        let body = match request.body {
            Body::Http(bytes) => request::parse_http(bytes)?,
            Body::Inner(bytes) => request::parse_inner(bytes)?,
        };

        let workflow_id =
            Uuid::parse_str(request.workflow_id).map_err(|_| ApiError::workflow_not_found())?;
        let workflow = table
            .workflow(&workflow_id)
            .filter(|w| w.project_id == key.project_id)
            .ok_or_else(ApiError::workflow_not_found)?;
        if !workflow.active {
            return Err(ApiError::new(
                Kind::Conflict,
                "workflow_inactive",
                "the workflow is not active",
            ));
        }
        draft.trigger_id = workflow.api_trigger.map(|(id, _)| id);
        if !workflow.api_trigger.is_some_and(|(_, active)| active) {
            return Err(ApiError::new(
                Kind::Conflict,
                "trigger_inactive",
                "the workflow has no active API trigger",
            ));
        }

        let idempotency = match request.idempotency_key {
            None => None,
            Some(k) if k.is_empty() || k.len() > IDEMPOTENCY_KEY_MAX => {
                return Err(ApiError::field(
                    "invalid_idempotency_key",
                    "Idempotency-Key",
                    format!("Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} characters"),
                ));
            }
            Some(k) => {
                // The request is the workflow and the canonical (key-sorted) JSON of its
                // body, so formatting differences are the same request.
                let canonical = canonical_request(&request.body);
                Some((
                    sha256_hex(&[k.as_bytes()]),
                    sha256_hex(&[workflow_id.as_bytes(), &canonical]),
                ))
            }
        };

        let call = request::resolve(body, table, &key.project_id)?;
        let at = now.timestamp_millis();
        let tracking_id = keys::new_tracking_id(&key.project_id);
        // With a number, the execution joins the customer's conversation on it (DESIGN §12):
        // its id is chosen by the store, a placeholder until then.
        let binding = call.number.map(|number| {
            let placeholder = Placeholder::new();
            let who = Who {
                phone_number: call.phone_number.as_deref(),
                user_id: call.recipient.as_deref(),
                username: None,
            };
            Binding {
                whatsapp_config_id: number.whatsapp_config_id,
                phone_number_id: number.phone_number_id.to_string(),
                customer: Customer {
                    phone: call
                        .phone_number
                        .as_deref()
                        .map(|p| p.trim_start_matches('+').to_owned()),
                    user_id: call.recipient.clone(),
                    username: None,
                },
                new_conversation: keys::new_tracking_id(&key.project_id),
                on_conflict: call.on_conflict,
                on_created: planning::api_conversation(
                    table,
                    number,
                    who,
                    &placeholder,
                    (tracking_id, draft.id),
                    at,
                ),
                placeholder,
            }
        });
        let conversation_id = binding.as_ref().map(|b| b.placeholder.id());
        let context = api_context(
            &call,
            Some(key.id),
            workflow_id,
            tracking_id,
            request.request_ip,
            now,
            Run::Live { conversation_id },
        );
        let trigger_type = TriggerType::ApiCall;
        let execution = NewExecution {
            id: tracking_id,
            project_id: key.project_id,
            workflow_id,
            trigger_type,
            test: false,
            observer_mode: observer::of(trigger_type).observer_mode,
            conversation_id: conversation_id.map(str::to_owned),
            context,
            created_at: at,
            origin: Some(Origin {
                decision_id: draft.id,
                trigger_id: draft.trigger_id,
                event: None,
            }),
        };
        let customer = call.phone_number.as_deref().or(call.recipient.as_deref());
        if let Some(b) = &binding {
            draft.phone_number_id = Some(b.phone_number_id.clone());
            draft.from = Some(b.customer.key().to_owned());
        }
        let admission = Admission {
            idempotency,
            burst: key.burst_limit.map(|limit| (key.id, limit)),
            conversation: binding,
            decision: None,
        };
        Ok((execution, admission, customer.map(str::to_owned)))
    }

    /// An execution of the key's project (another project's is not found).
    pub async fn execution(&self, api_key: Option<&str>, id: &str) -> Result<Execution, ApiError> {
        let project_id = self.project_of(api_key)?;
        self.execution_of(project_id, id).await
    }

    /// Executions of a workflow of the key's project: a cursor page, newest first, or a
    /// numbered page, oldest first ([`paging`]).
    pub async fn executions(
        &self,
        api_key: Option<&str>,
        workflow_id: &str,
        status: Option<&str>,
        paging: RawPaging<'_>,
    ) -> Result<Listed<Execution, Uuid>, ApiError> {
        let table = self.table()?;
        let project_id = Self::authenticate(&table, api_key)?.project_id;
        let workflow_id = Uuid::parse_str(workflow_id)
            .ok()
            .filter(|id| {
                table
                    .workflow(id)
                    .is_some_and(|w| w.project_id == project_id)
            })
            .ok_or_else(ApiError::workflow_not_found)?;
        match paging.parse()? {
            Paging::Cursor { after, .. } => {
                let query = list_query(project_id, workflow_id, status, paging.limit, after)?;
                let page = self.store.list(&query).await?;
                Ok(Listed::Cursor {
                    rows: page.executions,
                    after: page.after,
                })
            }
            Paging::Numbered { page, per_page } => {
                let query = ListQuery {
                    workflow_id,
                    project_id,
                    status: parse_status(status)?,
                    limit: per_page,
                    after: None,
                };
                let numbered = self.store.numbered(&query, page).await?;
                Ok(Listed::Numbered(NumberedPage {
                    rows: numbered.rows,
                    page,
                    per_page,
                    total_count: numbered.total,
                }))
            }
        }
    }

    /// Moves an execution of the key's project to `status` (`None`: the key is a runner's,
    /// any project).
    pub async fn set_status(
        &self,
        project_id: Option<Uuid>,
        id: &str,
        status: Option<&str>,
    ) -> Result<Execution, ApiError> {
        let id = Uuid::parse_str(id).map_err(|_| ApiError::execution_not_found())?;
        let to = parse_status(status)?
            .ok_or_else(|| ApiError::field("missing_field", "status", "status is required"))?;
        if let Some(project_id) = project_id {
            let owned = self
                .store
                .get(id)
                .await?
                .is_some_and(|e| e.project_id == project_id);
            if !owned {
                return Err(ApiError::execution_not_found());
            }
        }
        match self.store.set_status(id, to, crate::time::now_ms()).await? {
            Transition::Done(execution) => Ok(*execution),
            Transition::NotFound => Err(ApiError::execution_not_found()),
            Transition::Invalid { from } => Err(ApiError::field(
                "invalid_transition",
                "status",
                format!("an execution cannot go from {from} to {to}"),
            )),
        }
    }

    /// The project of a presented API key.
    pub fn project_of(&self, api_key: Option<&str>) -> Result<Uuid, ApiError> {
        Ok(Self::authenticate(&*self.table()?, api_key)?.project_id)
    }

    /// The project a caller acts for, and its API key if it presented one.
    fn scope<'t>(
        table: &'t RoutingTable,
        caller: Caller<'_>,
    ) -> Result<(Uuid, Option<&'t ApiKey>), ApiError> {
        match caller {
            Caller::ApiKey(presented) => {
                let key = Self::authenticate(table, presented)?;
                Ok((key.project_id, Some(key)))
            }
            Caller::Project(project_id) => Ok((project_id, None)),
        }
    }

    /// An execution of `project_id` (another project's is not found).
    pub async fn execution_of(&self, project_id: Uuid, id: &str) -> Result<Execution, ApiError> {
        let id = Uuid::parse_str(id).map_err(|_| ApiError::execution_not_found())?;
        self.store
            .get(id)
            .await?
            .filter(|e| e.project_id == project_id)
            .ok_or_else(ApiError::execution_not_found)
    }
}

fn parse_status(status: Option<&str>) -> Result<Option<Status>, ApiError> {
    status
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                ApiError::field(
                    "invalid_status",
                    "status",
                    "status must be one of pending, running, waiting, handoff, ended, failed",
                )
            })
        })
        .transpose()
}

/// The canonical (key-sorted, compact) JSON of a start request's `workflow_execution`,
/// read again as a tree: only requests with an `Idempotency-Key` pay for it.
fn canonical_request(body: &Body<'_>) -> Vec<u8> {
    let inner = match *body {
        Body::Http(bytes) => serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|mut whole| whole.get_mut("workflow_execution").map(Value::take)),
        Body::Inner(bytes) => serde_json::from_slice(bytes).ok(),
    };
    inner
        .and_then(|inner| serde_json::to_vec(&inner).ok())
        .unwrap_or_default()
}

/// How an `api_call` execution runs: live, in the conversation it joins (where its id goes,
/// a placeholder), or as a test run (which joins none: a test must not take a customer's
/// conversation from its workflow).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Run<'a> {
    Live { conversation_id: Option<&'a str> },
    Test,
}

/// The `api_call` context of an execution started (or test-run) with the key `api_key_id`
/// at `now`.
pub(crate) fn api_context(
    call: &request::ApiCall<'_, '_>,
    api_key_id: Option<Uuid>,
    workflow_id: Uuid,
    tracking_id: Uuid,
    request_ip: &str,
    now: chrono::DateTime<chrono::Utc>,
    run: Run<'_>,
) -> String {
    let (test, conversation_id) = match run {
        Run::Live { conversation_id } => (false, conversation_id),
        Run::Test => (true, None),
    };
    let timestamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let origin = context::Origin {
        tracking_id,
        workflow_id,
        api_key_id,
        request_ip,
        request_timestamp: &timestamp,
        test,
        conversation_id,
    };
    context::api_call(call, &origin)
}

/// A list query from its raw parameters.
pub fn list_query(
    project_id: Uuid,
    workflow_id: Uuid,
    status: Option<&str>,
    limit: Option<&str>,
    after: Option<&str>,
) -> Result<ListQuery, ApiError> {
    let limit = paging::limit(limit)?;
    let after = after
        .filter(|a| !a.is_empty())
        .map(|a| {
            Uuid::parse_str(a).map_err(|_| {
                ApiError::field(
                    "invalid_cursor",
                    "after",
                    "after must be a cursor from a previous page",
                )
            })
        })
        .transpose()?;
    Ok(ListQuery {
        workflow_id,
        project_id,
        status: parse_status(status)?,
        limit,
        after,
    })
}

/// `execution_context` as JSON, with the latest delivered message as `last_user_input`
/// (DESIGN §7 rule b) and the variables of resumes merged into `vars` and, unless their
/// name is reserved, the top level (DESIGN §6, §12).
pub fn execution_context(e: &Execution) -> String {
    if e.last_user_input.is_none() && e.variables.is_empty() {
        return e.context.clone();
    }
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(&e.context) else {
        return e.context.clone();
    };
    if let Some(input) = &e.last_user_input {
        map.insert("last_user_input".to_owned(), Value::String(input.clone()));
    }
    for (name, raw) in &e.variables {
        let value = serde_json::from_str::<Value>(raw).unwrap_or(Value::Null);
        // Executions of WhatsApp triggers have no `vars` until a resume gives some.
        let vars = map
            .entry("vars")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Value::Object(vars) = vars {
            vars.insert(name.clone(), value.clone());
        }
        if !context::RESERVED.contains(&name.as_str()) {
            map.insert(name.clone(), value);
        }
    }
    Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumed_variables_merge_into_vars_and_unreserved_names_into_the_top_level() {
        let e = |context: &str| Execution {
            id: Uuid::nil(),
            project_id: Uuid::nil(),
            workflow_id: Uuid::nil(),
            status: Status::Running,
            trigger_type: TriggerType::InboundMessage,
            test: false,
            observer_mode: false,
            conversation_id: None,
            created_at: 0,
            updated_at: 0,
            context: context.to_owned(),
            last_user_input: Some("yes".to_owned()),
            variables: [("plan", r#""gold""#), ("system", "1")]
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .into(),
            events: Vec::new(),
            last_event_at: 0,
            decision_id: None,
        };
        // A WhatsApp trigger's context has no `vars`: a resume gives it one.
        let merged: Value = serde_json::from_str(&execution_context(&e(r#"{"system": {"x": 1}}"#)))
            .unwrap_or_default();
        assert_eq!(
            merged,
            serde_json::json!({
                "system": {"x": 1},
                "vars": {"plan": "gold", "system": 1},
                "plan": "gold",
                "last_user_input": "yes",
            })
        );
        let merged: Value =
            serde_json::from_str(&execution_context(&e(r#"{"vars": {"a": 1, "plan": "s"}}"#)))
                .unwrap_or_default();
        assert_eq!(
            merged["vars"],
            serde_json::json!({"a": 1, "plan": "gold", "system": 1})
        );
    }
}
