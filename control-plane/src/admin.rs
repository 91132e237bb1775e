//! The `TriggerAdmin` gRPC service: the edge where catalog operations meet the wire. Catalog
//! errors become `tonic::Status` here and nowhere else.

use crate::catalog::{self, Actor, Catalog, NewNumber, TriggerFilter, TriggerSpec, TriggerView};
use crate::db::{
    api_key, audit_event, customer, dataplane_node, project, whatsapp_config, workflow,
};
use chrono::{DateTime, SecondsFormat, Utc};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::trigger_admin_server::TriggerAdmin;
use tonic::{Request, Response, Status};

/// Metadata key the CLI uses to say which operator acts (recorded in the audit log).
const ACTOR_HEADER: &str = "x-switchboard-actor";

/// Serves `TriggerAdmin` over the catalog. Authentication happens in `crate::auth`.
#[derive(Clone, Debug)]
pub struct AdminService {
    catalog: Catalog,
}

impl AdminService {
    pub fn new(catalog: Catalog) -> Self {
        Self { catalog }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// The operator named in metadata (bounded, printable), or `admin`.
fn actor<T>(request: &Request<T>) -> Actor {
    let name = request
        .metadata()
        .get(ACTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        })
        .filter(|v| !v.trim().is_empty());
    Actor(match name {
        Some(name) => format!("admin:{name}"),
        None => "admin".to_owned(),
    })
}

/// Maps a catalog error to a gRPC status; database details go to the log only.
fn status(err: catalog::Error) -> Status {
    match err {
        catalog::Error::InvalidArgument { .. } => Status::invalid_argument(err.to_string()),
        catalog::Error::NotFound { .. } => Status::not_found(err.to_string()),
        catalog::Error::Conflict(message) => Status::already_exists(message),
        catalog::Error::SlotTaken { .. } => Status::already_exists(err.to_string()),
        catalog::Error::FailedPrecondition(message) => Status::failed_precondition(message),
        catalog::Error::Database(db) => {
            tracing::error!(error = %db, "catalog database error");
            Status::internal("internal error (see control-plane log)")
        }
    }
}

fn ok<T>(value: T) -> Reply<T> {
    Ok(Response::new(value))
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn project(m: project::Model) -> pb::Project {
    pb::Project {
        id: m.id,
        name: m.name,
        created_at: time(m.created_at),
    }
}

fn customer(m: customer::Model) -> pb::Customer {
    pb::Customer {
        id: m.id,
        project_id: m.project_id,
        name: m.name,
        created_at: time(m.created_at),
    }
}

fn number(m: whatsapp_config::Model) -> pb::WhatsappNumber {
    pb::WhatsappNumber {
        whatsapp_config_id: m.id,
        project_id: m.project_id,
        customer_id: m.customer_id,
        phone_number_id: m.phone_number_id,
        display_phone_number: m.display_phone_number,
        is_default: m.is_default,
        has_access_token: m.access_token.is_some(),
        created_at: time(m.created_at),
    }
}

fn workflow(m: workflow::Model) -> pb::Workflow {
    pb::Workflow {
        id: m.id,
        project_id: m.project_id,
        name: m.name,
        status: m.status,
        created_at: time(m.created_at),
        updated_at: time(m.updated_at),
    }
}

fn trigger(v: TriggerView) -> pb::Trigger {
    let t = v.trigger;
    pb::Trigger {
        id: t.id,
        workflow_id: t.workflow_id,
        project_id: t.project_id,
        r#type: t.trigger_type,
        phone_number_id: v.phone_number_id,
        whatsapp_config_id: t.whatsapp_config_id,
        event_type: t.event_type,
        active: t.active,
        created_at: time(t.created_at),
        updated_at: time(t.updated_at),
    }
}

fn triggers(views: Vec<TriggerView>) -> pb::ListTriggersResponse {
    pb::ListTriggersResponse {
        triggers: views.into_iter().map(trigger).collect(),
    }
}

fn spec(s: pb::TriggerSpec) -> TriggerSpec {
    TriggerSpec {
        trigger_type: s.r#type,
        phone_number_id: s.phone_number_id,
        event_type: s.event_type,
        active: !s.inactive,
    }
}

fn api_key(m: api_key::Model) -> pb::ApiKey {
    pb::ApiKey {
        id: m.id,
        project_id: m.project_id,
        name: m.name,
        prefix: m.prefix,
        burst_limit: m.burst_limit.and_then(|b| u32::try_from(b).ok()),
        revoked_at: m.revoked_at.map(time),
        created_at: time(m.created_at),
    }
}

fn audit_event(m: audit_event::Model) -> pb::AuditEvent {
    pb::AuditEvent {
        id: m.id,
        time: time(m.occurred_at),
        actor: m.actor,
        action: m.action,
        entity: m.entity,
        entity_id: m.entity_id,
        project_id: m.project_id,
        before: m.before_json,
        after: m.after_json,
        routing_version: m.routing_version,
    }
}

fn node(m: dataplane_node::Model, latest_version: i64) -> pb::Node {
    pb::Node {
        node_id: m.node_id,
        address: m.address,
        build_version: m.build_version,
        applied_version: m.applied_version,
        latest_version,
        last_seen: time(m.last_seen),
        last_error: m.last_error,
        connected: m.connected,
        grpc_address: m.grpc_address,
    }
}

#[tonic::async_trait]
impl TriggerAdmin for AdminService {
    async fn create_project(&self, req: Request<pb::CreateProjectRequest>) -> Reply<pb::Project> {
        let actor = actor(&req);
        let r = req.into_inner();
        let m = self
            .catalog
            .create_project(&actor, &r.name)
            .await
            .map_err(status)?;
        ok(project(m))
    }

    async fn list_projects(
        &self,
        _req: Request<pb::ListProjectsRequest>,
    ) -> Reply<pb::ListProjectsResponse> {
        let all = self.catalog.list_projects().await.map_err(status)?;
        ok(pb::ListProjectsResponse {
            projects: all.into_iter().map(project).collect(),
        })
    }

    async fn create_customer(
        &self,
        req: Request<pb::CreateCustomerRequest>,
    ) -> Reply<pb::Customer> {
        let actor = actor(&req);
        let r = req.into_inner();
        let m = self
            .catalog
            .create_customer(&actor, &r.project_id, &r.name)
            .await
            .map_err(status)?;
        ok(customer(m))
    }

    async fn list_customers(
        &self,
        req: Request<pb::ListCustomersRequest>,
    ) -> Reply<pb::ListCustomersResponse> {
        let all = self
            .catalog
            .list_customers(&req.into_inner().project_id)
            .await
            .map_err(status)?;
        ok(pb::ListCustomersResponse {
            customers: all.into_iter().map(customer).collect(),
        })
    }

    async fn create_number(
        &self,
        req: Request<pb::CreateNumberRequest>,
    ) -> Reply<pb::WhatsappNumber> {
        let actor = actor(&req);
        let r = req.into_inner();
        let new = NewNumber {
            project_id: r.project_id,
            customer_id: r.customer_id,
            phone_number_id: r.phone_number_id,
            display_phone_number: r.display_phone_number,
            is_default: r.is_default,
            access_token: r.access_token,
        };
        let m = self
            .catalog
            .create_number(&actor, new)
            .await
            .map_err(status)?;
        ok(number(m))
    }

    async fn list_numbers(
        &self,
        req: Request<pb::ListNumbersRequest>,
    ) -> Reply<pb::ListNumbersResponse> {
        let all = self
            .catalog
            .list_numbers(&req.into_inner().project_id)
            .await
            .map_err(status)?;
        ok(pb::ListNumbersResponse {
            numbers: all.into_iter().map(number).collect(),
        })
    }

    async fn delete_number(
        &self,
        req: Request<pb::DeleteNumberRequest>,
    ) -> Reply<pb::DeleteResponse> {
        let actor = actor(&req);
        let id = req.into_inner().whatsapp_config_id;
        self.catalog
            .delete_number(&actor, id)
            .await
            .map_err(status)?;
        ok(pb::DeleteResponse { id: id.to_string() })
    }

    async fn create_workflow(
        &self,
        req: Request<pb::CreateWorkflowRequest>,
    ) -> Reply<pb::Workflow> {
        let actor = actor(&req);
        let r = req.into_inner();
        let m = self
            .catalog
            .create_workflow(&actor, &r.project_id, &r.name, &r.status)
            .await
            .map_err(status)?;
        ok(workflow(m))
    }

    async fn list_workflows(
        &self,
        req: Request<pb::ListWorkflowsRequest>,
    ) -> Reply<pb::ListWorkflowsResponse> {
        let all = self
            .catalog
            .list_workflows(&req.into_inner().project_id)
            .await
            .map_err(status)?;
        ok(pb::ListWorkflowsResponse {
            workflows: all.into_iter().map(workflow).collect(),
        })
    }

    async fn set_workflow_status(
        &self,
        req: Request<pb::SetWorkflowStatusRequest>,
    ) -> Reply<pb::Workflow> {
        let actor = actor(&req);
        let r = req.into_inner();
        let m = self
            .catalog
            .set_workflow_status(&actor, &r.workflow_id, &r.status)
            .await
            .map_err(status)?;
        ok(workflow(m))
    }

    async fn delete_workflow(
        &self,
        req: Request<pb::DeleteWorkflowRequest>,
    ) -> Reply<pb::DeleteResponse> {
        let actor = actor(&req);
        let id = req.into_inner().workflow_id;
        self.catalog
            .delete_workflow(&actor, &id)
            .await
            .map_err(status)?;
        ok(pb::DeleteResponse { id })
    }

    async fn create_trigger(&self, req: Request<pb::CreateTriggerRequest>) -> Reply<pb::Trigger> {
        let actor = actor(&req);
        let r = req.into_inner();
        let s = r
            .spec
            .ok_or_else(|| Status::invalid_argument("spec: required"))?;
        let v = self
            .catalog
            .create_trigger(&actor, &r.workflow_id, &spec(s))
            .await
            .map_err(status)?;
        ok(trigger(v))
    }

    async fn get_trigger(&self, req: Request<pb::GetTriggerRequest>) -> Reply<pb::Trigger> {
        let v = self
            .catalog
            .get_trigger(&req.into_inner().trigger_id)
            .await
            .map_err(status)?;
        ok(trigger(v))
    }

    async fn list_triggers(
        &self,
        req: Request<pb::ListTriggersRequest>,
    ) -> Reply<pb::ListTriggersResponse> {
        let r = req.into_inner();
        let filter = match (r.workflow_id, r.project_id) {
            (Some(_), Some(_)) => {
                return Err(Status::invalid_argument(
                    "workflow_id: give either workflow_id or project_id, not both",
                ));
            }
            (Some(w), None) => TriggerFilter::Workflow(w),
            (None, Some(p)) => TriggerFilter::Project(p),
            (None, None) => TriggerFilter::All,
        };
        let views = self.catalog.list_triggers(filter).await.map_err(status)?;
        ok(triggers(views))
    }

    async fn activate_trigger(
        &self,
        req: Request<pb::ActivateTriggerRequest>,
    ) -> Reply<pb::Trigger> {
        let actor = actor(&req);
        let id = req.into_inner().trigger_id;
        let v = self
            .catalog
            .set_trigger_active(&actor, &id, true)
            .await
            .map_err(status)?;
        ok(trigger(v))
    }

    async fn deactivate_trigger(
        &self,
        req: Request<pb::DeactivateTriggerRequest>,
    ) -> Reply<pb::Trigger> {
        let actor = actor(&req);
        let id = req.into_inner().trigger_id;
        let v = self
            .catalog
            .set_trigger_active(&actor, &id, false)
            .await
            .map_err(status)?;
        ok(trigger(v))
    }

    async fn delete_trigger(
        &self,
        req: Request<pb::DeleteTriggerRequest>,
    ) -> Reply<pb::DeleteResponse> {
        let actor = actor(&req);
        let id = req.into_inner().trigger_id;
        self.catalog
            .delete_trigger(&actor, &id)
            .await
            .map_err(status)?;
        ok(pb::DeleteResponse { id })
    }

    async fn replace_triggers(
        &self,
        req: Request<pb::ReplaceTriggersRequest>,
    ) -> Reply<pb::ListTriggersResponse> {
        let actor = actor(&req);
        let r = req.into_inner();
        let specs: Vec<TriggerSpec> = r.triggers.into_iter().map(spec).collect();
        let views = self
            .catalog
            .replace_triggers(&actor, &r.workflow_id, &specs)
            .await
            .map_err(status)?;
        ok(triggers(views))
    }

    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Reply<pb::CreateApiKeyResponse> {
        let actor = actor(&req);
        let r = req.into_inner();
        let (m, secret) = self
            .catalog
            .create_api_key(&actor, &r.project_id, &r.name, r.burst_limit)
            .await
            .map_err(status)?;
        ok(pb::CreateApiKeyResponse {
            api_key: Some(api_key(m)),
            secret,
        })
    }

    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Reply<pb::ListApiKeysResponse> {
        let all = self
            .catalog
            .list_api_keys(&req.into_inner().project_id)
            .await
            .map_err(status)?;
        ok(pb::ListApiKeysResponse {
            api_keys: all.into_iter().map(api_key).collect(),
        })
    }

    async fn revoke_api_key(&self, req: Request<pb::RevokeApiKeyRequest>) -> Reply<pb::ApiKey> {
        let actor = actor(&req);
        let id = req.into_inner().api_key_id;
        let m = self
            .catalog
            .revoke_api_key(&actor, &id)
            .await
            .map_err(status)?;
        ok(api_key(m))
    }

    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Reply<pb::ListAuditEventsResponse> {
        let r = req.into_inner();
        let all = self
            .catalog
            .list_audit(r.project_id.as_deref(), None, r.limit)
            .await
            .map_err(status)?;
        ok(pb::ListAuditEventsResponse {
            events: all.into_iter().map(audit_event).collect(),
        })
    }

    async fn list_nodes(
        &self,
        _req: Request<pb::ListNodesRequest>,
    ) -> Reply<pb::ListNodesResponse> {
        let latest = self.catalog.routing_version().await.map_err(status)?;
        let all = self.catalog.list_nodes().await.map_err(status)?;
        ok(pb::ListNodesResponse {
            nodes: all.into_iter().map(|n| node(n, latest)).collect(),
        })
    }

    async fn get_routing_version(
        &self,
        _req: Request<pb::GetRoutingVersionRequest>,
    ) -> Reply<pb::RoutingVersion> {
        let version = self.catalog.routing_version().await.map_err(status)?;
        ok(pb::RoutingVersion { version })
    }
}
