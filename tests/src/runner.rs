//! The reference workflow runner (DESIGN §8): claims executions from a data plane's
//! `Executions` service, acks each as it takes it over, runs it, and ends it. Used by the
//! end-to-end tests; the shape any runner follows.

use crate::RUNNER_TOKEN;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::executions_client::ExecutionsClient;
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

/// A runner's connection to one data plane.
#[derive(Clone, Debug)]
pub struct Runner {
    pub name: String,
    client: ExecutionsClient<Channel>,
}

/// `request` with the runner token.
pub fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = format!("Bearer {RUNNER_TOKEN}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

impl Runner {
    pub async fn connect(grpc_url: &str, name: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(grpc_url.to_owned())?.connect().await?;
        Ok(Self {
            name: name.to_owned(),
            client: ExecutionsClient::new(channel),
        })
    }

    pub fn client(&mut self) -> &mut ExecutionsClient<Channel> {
        &mut self.client
    }

    /// Opens the claim stream: executions of `workflows` (all when empty).
    pub async fn claims(
        &mut self,
        workflows: &[String],
        visibility_timeout_ms: u32,
    ) -> Result<Streaming<pb::ClaimedExecution>, Status> {
        let request = pb::ClaimExecutionsRequest {
            runner: self.name.clone(),
            workflow_ids: workflows.to_vec(),
            visibility_timeout_ms,
        };
        Ok(self
            .client
            .claim_executions(authorized(request))
            .await?
            .into_inner())
    }

    pub async fn ack(&mut self, tracking_id: &str) -> Result<(), Status> {
        let request = pb::AckExecutionRequest {
            tracking_id: tracking_id.to_owned(),
            runner: self.name.clone(),
        };
        self.client.ack_execution(authorized(request)).await?;
        Ok(())
    }

    pub async fn set_status(
        &mut self,
        tracking_id: &str,
        status: &str,
    ) -> Result<pb::Execution, Status> {
        let request = pb::UpdateExecutionStatusRequest {
            tracking_id: tracking_id.to_owned(),
            status: status.to_owned(),
        };
        Ok(self
            .client
            .update_execution_status(authorized(request))
            .await?
            .into_inner())
    }

    /// The reference loop: take each claimed execution over (ack), run it (send `text`,
    /// rendered by the data plane against the execution's context, when given), end it.
    /// Returns the ids it ran once the stream ends or stays quiet for `idle`.
    pub async fn run(
        &mut self,
        mut claims: Streaming<pb::ClaimedExecution>,
        idle: std::time::Duration,
        text: Option<&str>,
    ) -> anyhow::Result<Vec<String>> {
        let mut ran = Vec::new();
        loop {
            let Ok(message) = tokio::time::timeout(idle, claims.message()).await else {
                break;
            };
            let Some(claimed) = message? else {
                break;
            };
            let Some(execution) = claimed.execution else {
                continue;
            };
            if claimed.message_json.is_some() {
                // A customer's message for an execution this runner holds; this runner
                // ends executions at once, so there is nothing to continue.
                continue;
            }
            self.ack(&execution.id).await?;
            if let Some(text) = text {
                let request = pb::SendMessageRequest {
                    tracking_id: execution.id.clone(),
                    content: Some(pb::send_message_request::Content::Text(text.to_owned())),
                    to_phone_number: None,
                    whatsapp_config_id: None,
                };
                self.client.send_message(authorized(request)).await?;
            }
            self.set_status(&execution.id, "ended").await?;
            ran.push(execution.id);
        }
        Ok(ran)
    }
}
