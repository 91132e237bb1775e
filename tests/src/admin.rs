//! A `TriggerAdmin` client with shorthands for the objects tests build.

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::trigger_admin_client::TriggerAdminClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Adds `authorization: Bearer <token>` when a token is set.
#[derive(Clone, Debug)]
pub struct Token(Option<String>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("bad test token"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// The admin client; `Deref`s to the generated client for every RPC.
#[derive(Clone, Debug)]
pub struct Admin {
    client: TriggerAdminClient<InterceptedService<Channel, Token>>,
}

impl std::ops::Deref for Admin {
    type Target = TriggerAdminClient<InterceptedService<Channel, Token>>;
    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl std::ops::DerefMut for Admin {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.client
    }
}

/// A trigger spec in one line.
pub fn spec(kind: &str, phone_number_id: Option<&str>, event: Option<&str>) -> pb::TriggerSpec {
    pb::TriggerSpec {
        r#type: kind.to_owned(),
        phone_number_id: phone_number_id.map(str::to_owned),
        event_type: event.map(str::to_owned),
        inactive: false,
    }
}

impl Admin {
    pub async fn connect(url: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url.to_owned())?.connect().await?;
        Ok(Self {
            client: TriggerAdminClient::with_interceptor(channel, Token(token.map(str::to_owned))),
        })
    }

    pub async fn project(&mut self, name: &str) -> Result<pb::Project, Status> {
        let r = pb::CreateProjectRequest {
            name: name.to_owned(),
        };
        Ok(self.client.create_project(r).await?.into_inner())
    }

    pub async fn number(
        &mut self,
        project_id: &str,
        phone_number_id: &str,
        is_default: bool,
    ) -> Result<pb::WhatsappNumber, Status> {
        let r = pb::CreateNumberRequest {
            project_id: project_id.to_owned(),
            customer_id: None,
            phone_number_id: phone_number_id.to_owned(),
            display_phone_number: format!("+1{}", &phone_number_id[phone_number_id.len() - 10..]),
            is_default,
            access_token: Some("EAAG-test-token".to_owned()),
        };
        Ok(self.client.create_number(r).await?.into_inner())
    }

    pub async fn workflow(
        &mut self,
        project_id: &str,
        name: &str,
        status: &str,
    ) -> Result<pb::Workflow, Status> {
        let r = pb::CreateWorkflowRequest {
            project_id: project_id.to_owned(),
            name: name.to_owned(),
            status: status.to_owned(),
        };
        Ok(self.client.create_workflow(r).await?.into_inner())
    }

    pub async fn trigger(
        &mut self,
        workflow_id: &str,
        spec: pb::TriggerSpec,
    ) -> Result<pb::Trigger, Status> {
        let r = pb::CreateTriggerRequest {
            workflow_id: workflow_id.to_owned(),
            spec: Some(spec),
        };
        Ok(self.client.create_trigger(r).await?.into_inner())
    }

    pub async fn activate(&mut self, trigger_id: &str) -> Result<pb::Trigger, Status> {
        let r = pb::ActivateTriggerRequest {
            trigger_id: trigger_id.to_owned(),
        };
        Ok(self.client.activate_trigger(r).await?.into_inner())
    }

    pub async fn deactivate(&mut self, trigger_id: &str) -> Result<pb::Trigger, Status> {
        let r = pb::DeactivateTriggerRequest {
            trigger_id: trigger_id.to_owned(),
        };
        Ok(self.client.deactivate_trigger(r).await?.into_inner())
    }

    pub async fn projects(&mut self) -> Result<Vec<pb::Project>, Status> {
        let r = pb::ListProjectsRequest {};
        Ok(self.client.list_projects(r).await?.into_inner().projects)
    }

    pub async fn api_keys(&mut self, project_id: &str) -> Result<Vec<pb::ApiKey>, Status> {
        let r = pb::ListApiKeysRequest {
            project_id: project_id.to_owned(),
        };
        Ok(self.client.list_api_keys(r).await?.into_inner().api_keys)
    }

    pub async fn triggers_of(&mut self, workflow_id: &str) -> Result<Vec<pb::Trigger>, Status> {
        let r = pb::ListTriggersRequest {
            workflow_id: Some(workflow_id.to_owned()),
            project_id: None,
        };
        Ok(self.client.list_triggers(r).await?.into_inner().triggers)
    }

    pub async fn audit(&mut self, limit: u32) -> Result<Vec<pb::AuditEvent>, Status> {
        let r = pb::ListAuditEventsRequest {
            project_id: None,
            limit: Some(limit),
        };
        Ok(self.client.list_audit_events(r).await?.into_inner().events)
    }

    /// `nodes list`: every data plane the control plane has seen.
    pub async fn nodes(&mut self) -> Result<Vec<pb::Node>, Status> {
        let r = pb::ListNodesRequest {};
        Ok(self.client.list_nodes(r).await?.into_inner().nodes)
    }

    pub async fn routing_version(&mut self) -> Result<i64, Status> {
        let r = pb::GetRoutingVersionRequest {};
        Ok(self
            .client
            .get_routing_version(r)
            .await?
            .into_inner()
            .version)
    }

    /// A new API key: `(id, secret)`.
    pub async fn api_key(
        &mut self,
        project_id: &str,
        burst_limit: Option<u32>,
    ) -> Result<(String, String), Status> {
        let r = pb::CreateApiKeyRequest {
            project_id: project_id.to_owned(),
            name: "test".to_owned(),
            burst_limit,
        };
        let created = self.client.create_api_key(r).await?.into_inner();
        let id = created.api_key.map(|k| k.id).unwrap_or_default();
        Ok((id, created.secret))
    }
}
