//! The data plane's `Executions` gRPC service (DESIGN §8): the platform operations of
//! [`Platform`] for internal callers and workflow runners. StartExecution takes an API key
//! from metadata; the other RPCs take the runner token. [`ApiError`]s map to gRPC codes
//! here, and only here.

use crate::api::{ApiError, Body, Kind, Platform, StartRequest, list_query, rfc3339_ms};
use crate::executions::Execution;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use switchboard_proto::v1 as pb;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use uuid::Uuid;

pub struct ExecutionsService {
    platform: Platform,
    runner_token: Arc<[u8]>,
}

impl ExecutionsService {
    pub fn new(platform: Platform, runner_token: &str) -> Self {
        Self {
            platform,
            runner_token: Arc::from(runner_token.as_bytes()),
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
    pb::Execution {
        id: e.id.to_string(),
        workflow_id: e.workflow_id.to_string(),
        status: e.status.as_str().to_owned(),
        trigger_type: e.trigger_type,
        execution_context_json: e.context,
        project_id: e.project_id.to_string(),
        test: e.test,
        observer_mode: e.observer_mode,
        conversation_id: e.conversation_id,
        created_at: time(e.created_at),
        updated_at: time(e.updated_at),
        events_json: e.events,
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
        self.runner(request.metadata())?;
        let id = Uuid::parse_str(&request.get_ref().tracking_id)
            .map_err(|_| to_status(ApiError::execution_not_found()))?;
        let execution = self
            .platform
            .store()
            .get(id)
            .await
            .map_err(|e| to_status(e.into()))?
            .ok_or_else(|| to_status(ApiError::execution_not_found()))?;
        Ok(Response::new(to_proto(execution)))
    }

    async fn list_executions(
        &self,
        request: Request<pb::ListExecutionsRequest>,
    ) -> Result<Response<pb::ListExecutionsResponse>, Status> {
        self.runner(request.metadata())?;
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
        let query = list_query(
            parse(&r.project_id, "project_id")?,
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
}
