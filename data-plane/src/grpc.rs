//! The data plane's `Executions` gRPC service (DESIGN §8): the platform operations of
//! [`Platform`] for internal callers and workflow runners. StartExecution takes an API key
//! from metadata; the other RPCs take the runner token; the reads and test runs of the
//! control plane's console take the node token and the project they are for (DESIGN §11).
//! [`ApiError`]s map to gRPC codes here, and only here.

use crate::api::decisions::DecisionParams;
use crate::api::{ApiError, Body, Caller, Kind, Platform, StartRequest, list_query};
use crate::sends::{Content, Outcome, SendRequest, Sender};
use crate::store::{Decision, Execution, Store, claims};
use crate::time::rfc3339_ms;
use crate::whatsapp::unrouted::{self, Reason, Unrouted};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use switchboard_proto::v1 as pb;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use uuid::Uuid;

pub struct ExecutionsService {
    platform: Platform,
    sender: Sender,
    unrouted: Arc<Unrouted>,
    runner_token: Arc<[u8]>,
    node_token: Arc<[u8]>,
}

/// Metadata of the control plane's calls (DESIGN §11): the node token, and the project the
/// call is for.
const NODE_TOKEN: &str = "x-switchboard-node-token";
const PROJECT: &str = "x-switchboard-project";

/// Who calls a runner-or-console RPC.
#[derive(Clone, Copy, Debug)]
enum Reader {
    /// A workflow runner: every project.
    Runner,
    /// The control plane, for one project.
    Project(Uuid),
}

impl Reader {
    /// Whether the caller may see a record of `project_id`.
    fn sees(self, project_id: Uuid) -> bool {
        match self {
            Reader::Runner => true,
            Reader::Project(own) => own == project_id,
        }
    }
}

impl ExecutionsService {
    pub fn new(
        platform: Platform,
        (sender, unrouted): (Sender, Arc<Unrouted>),
        runner_token: &str,
        node_token: &str,
    ) -> Self {
        Self {
            platform,
            sender,
            unrouted,
            runner_token: Arc::from(runner_token.as_bytes()),
            node_token: Arc::from(node_token.as_bytes()),
        }
    }

    fn runner(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        match presented {
            Some(token) if bool::from(token.ct_eq(&self.runner_token)) => Ok(()),
            _ => Err(Status::unauthenticated("missing or invalid runner token")),
        }
    }

    /// The control plane's project, when the call carries the node token (`None` without
    /// one; an error with a wrong one, or without a valid project).
    fn control_plane(&self, metadata: &MetadataMap) -> Result<Option<Uuid>, Status> {
        let Some(presented) = metadata.get(NODE_TOKEN) else {
            return Ok(None);
        };
        if !bool::from(presented.as_bytes().ct_eq(&self.node_token)) {
            return Err(Status::unauthenticated("invalid node token"));
        }
        metadata
            .get(PROJECT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::parse_str(v).ok())
            .map(Some)
            .ok_or_else(|| Status::invalid_argument(format!("{PROJECT}: a project id is required")))
    }

    /// The project a platform call acts for: the control plane's (node token), else the API
    /// key's.
    fn caller<'m>(&self, metadata: &'m MetadataMap) -> Result<Caller<'m>, Status> {
        Ok(match self.control_plane(metadata)? {
            Some(project) => Caller::Project(project),
            None => Caller::ApiKey(api_key(metadata)),
        })
    }

    /// An operator: the node token, no project.
    fn operator(&self, metadata: &MetadataMap) -> Result<(), Status> {
        match metadata.get(NODE_TOKEN) {
            Some(token) if bool::from(token.as_bytes().ct_eq(&self.node_token)) => Ok(()),
            _ => Err(Status::unauthenticated(format!(
                "missing or invalid node token ({NODE_TOKEN})"
            ))),
        }
    }

    /// A runner, or the control plane for a project.
    fn reader(&self, metadata: &MetadataMap) -> Result<Reader, Status> {
        match self.control_plane(metadata)? {
            Some(project) => Ok(Reader::Project(project)),
            None => self.runner(metadata).map(|()| Reader::Runner),
        }
    }
}

fn to_status(err: ApiError) -> Status {
    let message = match &err.field {
        Some(field) => format!("{}: {} (field {field})", err.code, err.message),
        None => format!("{}: {}", err.code, err.message),
    };
    match err.kind {
        Kind::BadRequest | Kind::PayloadTooLarge | Kind::Unprocessable => {
            if err.code == "invalid_transition" {
                Status::failed_precondition(message)
            } else {
                Status::invalid_argument(message)
            }
        }
        Kind::Unauthorized => Status::unauthenticated(message),
        Kind::NotFound => Status::not_found(message),
        Kind::Conflict => Status::failed_precondition(message),
        Kind::RateLimited => Status::resource_exhausted(message),
        Kind::Unavailable => Status::unavailable(message),
        Kind::Internal => Status::internal(message),
    }
}

fn to_proto(e: Execution) -> pb::Execution {
    let time = |ms: i64| rfc3339_ms(ms).unwrap_or_default();
    let context = crate::api::execution_context(&e);
    pb::Execution {
        id: e.id.to_string(),
        workflow_id: e.workflow_id.to_string(),
        status: e.status.as_str().to_owned(),
        trigger_type: e.trigger_type.as_str().to_owned(),
        execution_context_json: context,
        project_id: e.project_id.to_string(),
        test: e.test,
        observer_mode: e.observer_mode,
        conversation_id: e.conversation_id,
        created_at: time(e.created_at),
        updated_at: time(e.updated_at),
        events_json: e.events,
        routing_decision_id: e.decision_id.map(|id| id.to_string()),
    }
}

fn decision_to_proto(d: Decision) -> pb::RoutingDecision {
    let id = |id: Option<Uuid>| id.map(|id| id.to_string());
    pb::RoutingDecision {
        id: d.id.to_string(),
        at: rfc3339_ms(d.at).unwrap_or_default(),
        source: d.source.as_str().to_owned(),
        phone_number_id: d.phone_number_id,
        message_id: d.message_id,
        from: d.from,
        conversation_id: id(d.conversation_id),
        outcome: d.outcome.as_str().to_owned(),
        reason: d.reason,
        detail: d.detail,
        trigger_id: id(d.trigger_id),
        workflow_id: id(d.workflow_id),
        execution_id: id(d.execution_id),
        superseded: id(d.superseded),
        events: d
            .events
            .into_iter()
            .map(|e| pb::FiredEvent {
                r#type: e.event,
                trigger_id: id(e.trigger_id),
                workflow_id: e.workflow_id.to_string(),
                execution_id: e.execution_id.to_string(),
            })
            .collect(),
    }
}

/// `x-api-key: <key>`, else `authorization: Bearer <key>`.
fn api_key(metadata: &MetadataMap) -> Option<&str> {
    if let Some(key) = metadata.get("x-api-key") {
        return key.to_str().ok();
    }
    metadata
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

#[tonic::async_trait]
impl pb::executions_server::Executions for ExecutionsService {
    async fn start_execution(
        &self,
        request: Request<pb::StartExecutionRequest>,
    ) -> Result<Response<pb::StartExecutionResponse>, Status> {
        let ip = request
            .remote_addr()
            .map(|a| a.ip().to_canonical().to_string())
            .unwrap_or_default();
        let key = api_key(request.metadata()).map(str::to_owned);
        let body = request.get_ref();
        let started = self
            .platform
            .start(StartRequest {
                api_key: key.as_deref(),
                workflow_id: &body.workflow_id,
                body: Body::Inner(body.workflow_execution_json.as_bytes()),
                idempotency_key: body.idempotency_key.as_deref(),
                request_ip: &ip,
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::StartExecutionResponse {
            message: "Workflow execution initiated".into(),
            workflow_id: started.workflow_id.to_string(),
            tracking_id: started.tracking_id.to_string(),
            idempotent_replayed: started.replayed,
        }))
    }

    async fn get_execution(
        &self,
        request: Request<pb::GetExecutionRequest>,
    ) -> Result<Response<pb::Execution>, Status> {
        let reader = self.reader(request.metadata())?;
        let id = Uuid::parse_str(&request.get_ref().tracking_id)
            .map_err(|_| to_status(ApiError::execution_not_found()))?;
        let execution = self
            .platform
            .store()
            .get(id)
            .await
            .map_err(|e| to_status(e.into()))?
            .filter(|e| reader.sees(e.project_id))
            .ok_or_else(|| to_status(ApiError::execution_not_found()))?;
        Ok(Response::new(to_proto(execution)))
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::Conversation>, Status> {
        let reader = self.reader(request.metadata())?;
        let not_found = || Status::not_found("conversation_not_found: conversation not found");
        let id = Uuid::parse_str(&request.get_ref().conversation_id).map_err(|_| not_found())?;
        let c = self
            .platform
            .store()
            .conversation(id)
            .await
            .map_err(|e| to_status(e.into()))?
            .filter(|c| reader.sees(c.project_id))
            .ok_or_else(not_found)?;
        let time = |ms: i64| rfc3339_ms(ms).unwrap_or_default();
        Ok(Response::new(pb::Conversation {
            id: c.id.to_string(),
            project_id: c.project_id.to_string(),
            phone_number: c.phone_number,
            phone_number_id: c.phone_number_id,
            status: c.status.as_str().to_owned(),
            created_at: time(c.created_at),
            last_active_at: time(c.last_active_at),
            last_message_json: c.last_message,
            execution_id: c.execution.map(|id| id.to_string()),
        }))
    }

    async fn list_executions(
        &self,
        request: Request<pb::ListExecutionsRequest>,
    ) -> Result<Response<pb::ListExecutionsResponse>, Status> {
        let reader = self.reader(request.metadata())?;
        let r = request.get_ref();
        let parse = |value: &str, field: &'static str| {
            Uuid::parse_str(value).map_err(|_| {
                to_status(ApiError::field(
                    "invalid_id",
                    field,
                    format!("{field} must be a UUID"),
                ))
            })
        };
        let limit = (r.limit != 0).then(|| r.limit.to_string());
        let project_id = parse(&r.project_id, "project_id")?;
        if !reader.sees(project_id) {
            return Err(Status::permission_denied(
                "project_id: not the project this call is for",
            ));
        }
        let query = list_query(
            project_id,
            parse(&r.workflow_id, "workflow_id")?,
            r.status.as_deref(),
            limit.as_deref(),
            r.after.as_deref(),
        )
        .map_err(to_status)?;
        let page = self
            .platform
            .store()
            .list(&query)
            .await
            .map_err(|e| to_status(e.into()))?;
        Ok(Response::new(pb::ListExecutionsResponse {
            executions: page.executions.into_iter().map(to_proto).collect(),
            next_after: page.after.map(|id| id.to_string()),
        }))
    }

    async fn update_execution_status(
        &self,
        request: Request<pb::UpdateExecutionStatusRequest>,
    ) -> Result<Response<pb::Execution>, Status> {
        self.runner(request.metadata())?;
        let r = request.get_ref();
        let execution = self
            .platform
            .set_status(None, &r.tracking_id, Some(&r.status))
            .await
            .map_err(to_status)?;
        Ok(Response::new(to_proto(execution)))
    }

    type ClaimExecutionsStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<pb::ClaimedExecution, Status>> + Send>,
    >;

    async fn claim_executions(
        &self,
        request: Request<pb::ClaimExecutionsRequest>,
    ) -> Result<Response<Self::ClaimExecutionsStream>, Status> {
        self.runner(request.metadata())?;
        let r = request.into_inner();
        if !claims::valid_runner(&r.runner) {
            return Err(Status::invalid_argument(
                "runner must be 1-64 of A-Z a-z 0-9 . _ -",
            ));
        }
        let workflows = r
            .workflow_ids
            .iter()
            .map(|id| {
                Uuid::parse_str(id).map_err(|_| {
                    Status::invalid_argument(format!("workflow_ids: {id:?} is not a UUID"))
                })
            })
            .collect::<Result<_, _>>()?;
        let visibility_ms = match i64::from(r.visibility_timeout_ms) {
            0 => claims::VISIBILITY_DEFAULT_MS,
            ms if (claims::VISIBILITY_MIN_MS..=claims::VISIBILITY_MAX_MS).contains(&ms) => ms,
            _ => {
                return Err(Status::invalid_argument(
                    "visibility_timeout_ms must be 1000-3600000 (0 for 30000)",
                ));
            }
        };
        let query = claims::ClaimQuery {
            runner: r.runner,
            workflows,
            visibility_ms,
            max: CLAIM_BUFFER,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(CLAIM_BUFFER);
        tokio::spawn(deliver(self.platform.store().clone(), query, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn ack_execution(
        &self,
        request: Request<pb::AckExecutionRequest>,
    ) -> Result<Response<pb::AckExecutionResponse>, Status> {
        self.runner(request.metadata())?;
        let r = request.get_ref();
        let id = Uuid::parse_str(&r.tracking_id)
            .map_err(|_| Status::not_found("execution_not_found: execution not found"))?;
        match self
            .platform
            .store()
            .ack(id, &r.runner, crate::time::now_ms())
            .await
            .map_err(|e| to_status(e.into()))?
        {
            claims::AckOutcome::Acked => Ok(Response::new(pb::AckExecutionResponse {})),
            claims::AckOutcome::NotFound => Err(Status::not_found(
                "execution_not_found: execution not found",
            )),
            claims::AckOutcome::NotYours => Err(Status::failed_precondition(
                "not_claimed: the execution is not delivered to this runner",
            )),
        }
    }

    async fn start_test_execution(
        &self,
        request: Request<pb::StartTestExecutionRequest>,
    ) -> Result<Response<pb::StartExecutionResponse>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.ip().to_canonical().to_string())
            .unwrap_or_default();
        let project = self.control_plane(request.metadata())?;
        let key = api_key(request.metadata()).map(str::to_owned);
        let caller = match project {
            Some(project) => Caller::Project(project),
            None => Caller::ApiKey(key.as_deref()),
        };
        let r = request.get_ref();
        let started = self
            .platform
            .start_test(caller, &r.workflow_id, r.request_json.as_bytes(), &peer)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::StartExecutionResponse {
            message: "Workflow test execution initiated".into(),
            workflow_id: started.workflow_id.to_string(),
            tracking_id: started.tracking_id.to_string(),
            idempotent_replayed: false,
        }))
    }

    async fn list_routing_decisions(
        &self,
        request: Request<pb::ListRoutingDecisionsRequest>,
    ) -> Result<Response<pb::ListRoutingDecisionsResponse>, Status> {
        let caller = self.caller(request.metadata())?;
        let r = request.get_ref();
        let limit = (r.limit != 0).then(|| r.limit.to_string());
        let params = DecisionParams {
            phone_number_id: r.phone_number_id.as_deref(),
            conversation_id: r.conversation_id.as_deref(),
            message_id: r.message_id.as_deref(),
            workflow_id: r.workflow_id.as_deref(),
            outcome: r.outcome.as_deref(),
            limit: limit.as_deref(),
            after: r.after.as_deref(),
            page: None,
            per_page: None,
        };
        let list = self
            .platform
            .routing_decisions(caller, &params)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListRoutingDecisionsResponse {
            decisions: list.decisions.into_iter().map(decision_to_proto).collect(),
            next_after: list.after.map(|id| id.to_string()),
        }))
    }

    async fn list_unrouted_updates(
        &self,
        request: Request<pb::ListUnroutedUpdatesRequest>,
    ) -> Result<Response<pb::ListUnroutedUpdatesResponse>, Status> {
        self.operator(request.metadata())?;
        let r = request.get_ref();
        let reason = r
            .reason
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|name| {
                Reason::ALL
                    .into_iter()
                    .find(|r| r.as_str() == name)
                    .ok_or_else(|| {
                        Status::invalid_argument(
                            "invalid_reason: reason must be one of object, field, malformed, \
                             status, number (field reason)",
                        )
                    })
            })
            .transpose()?;
        let limit = match r.limit {
            0 => 100,
            n if n as usize <= unrouted::CAP => n as usize,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "invalid_limit: limit must be 1-{} (field limit)",
                    unrouted::CAP
                )));
            }
        };
        let updates = self
            .unrouted
            .list(reason, limit)
            .into_iter()
            .map(|u| pb::UnroutedUpdate {
                at: rfc3339_ms(u.at).unwrap_or_default(),
                reason: u.reason.as_str().to_owned(),
                phone_number_id: u.phone_number_id,
                detail: u.detail,
            })
            .collect();
        Ok(Response::new(pb::ListUnroutedUpdatesResponse { updates }))
    }

    async fn resume_execution(
        &self,
        request: Request<pb::ResumeExecutionRequest>,
    ) -> Result<Response<pb::Execution>, Status> {
        let project = match self.control_plane(request.metadata())? {
            Some(project) => project,
            None => self
                .platform
                .project_of(api_key(request.metadata()))
                .map_err(to_status)?,
        };
        let r = request.get_ref();
        let execution = self
            .platform
            .resume(project, &r.tracking_id, r.resume_json.as_bytes())
            .await
            .map_err(to_status)?;
        Ok(Response::new(to_proto(execution)))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        use pb::send_message_request::Content as Proto;
        self.runner(request.metadata())?;
        let r = request.get_ref();
        let content = match &r.content {
            Some(Proto::Text(text)) => Content::Text(text),
            Some(Proto::TemplateJson(json)) => Content::Template(json),
            Some(Proto::InteractiveJson(json)) => Content::Interactive(json),
            None => {
                return Err(Status::invalid_argument(
                    "missing_field: one of text, template_json, interactive_json is required",
                ));
            }
        };
        let outcome = self
            .sender
            .send(SendRequest {
                tracking_id: &r.tracking_id,
                content,
                to_phone_number: r.to_phone_number.as_deref(),
                whatsapp_config_id: r.whatsapp_config_id,
            })
            .await
            .map_err(to_status)?;
        let response = match outcome {
            Outcome::Sent { wamid } => pb::SendMessageResponse {
                result: "SENT".into(),
                wamid: Some(wamid),
                ..Default::default()
            },
            Outcome::Skipped { reason } => pb::SendMessageResponse {
                result: "SKIPPED".into(),
                reason: Some(reason.into()),
                ..Default::default()
            },
            Outcome::Failed { code, message } => pb::SendMessageResponse {
                result: "FAILED".into(),
                error_code: Some(code),
                error_message: Some(message),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }
}

/// Executions buffered per claim stream; the runner's reading paces the claims.
const CLAIM_BUFFER: usize = 16;
/// How long a claim stream waits before looking again when nothing was dispatched.
const CLAIM_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Claims for one runner's stream until the runner goes away. A failed store call is
/// retried (the stream stays open across a Redis outage); executions claimed but not
/// delivered because the runner left come back when their visibility timeout runs out.
async fn deliver(
    store: Store,
    mut query: claims::ClaimQuery,
    tx: tokio::sync::mpsc::Sender<Result<pb::ClaimedExecution, Status>>,
) {
    loop {
        if tx.is_closed() {
            return;
        }
        // Messages for executions this runner holds first: they are someone waiting.
        match store
            .runner_messages(&query.runner, tx.capacity().max(1))
            .await
        {
            Ok(messages) => {
                for (id, message) in messages {
                    let Ok(Some(execution)) = store.get(id).await else {
                        continue;
                    };
                    let message = pb::ClaimedExecution {
                        execution: Some(to_proto(execution)),
                        attempt: 0,
                        message_json: Some(message),
                    };
                    if tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            }
            Err(err) => {
                tracing::warn!(runner = %query.runner, error = %err, "reading runner messages failed")
            }
        }
        query.max = tx.capacity().max(1);
        let wait = match store.claim(&query, crate::time::now_ms()).await {
            Ok(claimed) if !claimed.is_empty() => {
                for c in claimed {
                    let message = pb::ClaimedExecution {
                        execution: Some(to_proto(c.execution)),
                        attempt: c.attempt,
                        message_json: None,
                    };
                    if tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            Ok(_) => CLAIM_POLL,
            Err(err) => {
                tracing::warn!(runner = %query.runner, error = %err, "claim failed; retrying");
                std::time::Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tx.closed() => return,
        }
    }
}
