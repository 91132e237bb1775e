//! The console's way to data planes (DESIGN §11): executions, conversations and test runs
//! live there, not in the catalog. A call goes to a connected node, at the `Executions`
//! address it advertised in its hello, with the node token and the project the call is
//! for; the node answers for that project only.

use crate::catalog::Catalog;
use crate::db::dataplane_node;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::executions_client::ExecutionsClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// How long a node gets to answer the console.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a data plane could not answer.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "no data-plane node is connected: start one (`data-plane --control-plane …`) and it \
         shows on the nodes page"
    )]
    NoNode,
    #[error("the data plane refused: {}", .0.message())]
    Refused(tonic::Status),
    #[error("data plane {node} unreachable at {address}: {error}")]
    Unreachable {
        node: String,
        address: String,
        error: String,
    },
    #[error("catalog: {0}")]
    Catalog(#[from] crate::catalog::Error),
}

/// Clients of data planes, one channel per address.
#[derive(Clone)]
pub struct DataPlanes {
    catalog: Catalog,
    node_token: MetadataValue<tonic::metadata::Ascii>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl std::fmt::Debug for DataPlanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlanes").finish_non_exhaustive()
    }
}

/// A connected node to call: the one seen last among those that advertise an address.
pub fn pick(nodes: &[dataplane_node::Model]) -> Option<&dataplane_node::Model> {
    nodes
        .iter()
        .filter(|n| n.connected && !n.grpc_address.is_empty())
        .max_by_key(|n| n.last_seen)
}

impl DataPlanes {
    pub fn new(catalog: Catalog, node_token: &str) -> Self {
        Self {
            catalog,
            node_token: node_token
                .parse()
                .unwrap_or_else(|_| MetadataValue::from_static("")),
            channels: Arc::default(),
        }
    }

    /// A client of a connected node for `project_id`, and the node's id.
    async fn client(&self, project_id: &str) -> Result<(Client, String), NodeError> {
        let nodes = self.catalog.list_nodes().await?;
        let node = pick(&nodes).ok_or(NodeError::NoNode)?;
        let unreachable = |error: String| NodeError::Unreachable {
            node: node.node_id.clone(),
            address: node.grpc_address.clone(),
            error,
        };
        let channel = {
            let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            match channels.get(&node.grpc_address) {
                Some(channel) => channel.clone(),
                None => {
                    let endpoint = Endpoint::from_shared(node.grpc_address.clone())
                        .map_err(|e| unreachable(e.to_string()))?
                        .connect_timeout(TIMEOUT)
                        .timeout(TIMEOUT);
                    // Connects on first use, and again by itself after a failure.
                    let channel = endpoint.connect_lazy();
                    channels.insert(node.grpc_address.clone(), channel.clone());
                    channel
                }
            }
        };
        let project = project_id
            .parse()
            .map_err(|_| unreachable(format!("bad project id {project_id:?}")))?;
        let client = Client {
            inner: ExecutionsClient::new(channel),
            token: self.node_token.clone(),
            project,
        };
        Ok((client, node.node_id.clone()))
    }

    pub async fn start_test(
        &self,
        project_id: &str,
        workflow_id: &str,
        request_json: String,
    ) -> Result<pb::StartExecutionResponse, NodeError> {
        let (mut client, node) = self.client(project_id).await?;
        let request = pb::StartTestExecutionRequest {
            workflow_id: workflow_id.to_owned(),
            request_json,
        };
        let call = client.request(request);
        answer(client.inner.start_test_execution(call).await, &node)
    }

    pub async fn execution(
        &self,
        project_id: &str,
        tracking_id: &str,
    ) -> Result<pb::Execution, NodeError> {
        let (mut client, node) = self.client(project_id).await?;
        let call = client.request(pb::GetExecutionRequest {
            tracking_id: tracking_id.to_owned(),
        });
        answer(client.inner.get_execution(call).await, &node)
    }

    pub async fn executions(
        &self,
        project_id: &str,
        workflow_id: &str,
        limit: u32,
        after: Option<String>,
    ) -> Result<pb::ListExecutionsResponse, NodeError> {
        let (mut client, node) = self.client(project_id).await?;
        let call = client.request(pb::ListExecutionsRequest {
            workflow_id: workflow_id.to_owned(),
            project_id: project_id.to_owned(),
            status: None,
            limit,
            after,
        });
        answer(client.inner.list_executions(call).await, &node)
    }

    pub async fn conversation(
        &self,
        project_id: &str,
        conversation_id: &str,
    ) -> Result<pb::Conversation, NodeError> {
        let (mut client, node) = self.client(project_id).await?;
        let call = client.request(pb::GetConversationRequest {
            conversation_id: conversation_id.to_owned(),
        });
        answer(client.inner.get_conversation(call).await, &node)
    }
}

/// A node's answer: unavailable and the like say which node; a refusal is the node's word.
fn answer<T>(
    result: Result<tonic::Response<T>, tonic::Status>,
    node: &str,
) -> Result<T, NodeError> {
    match result {
        Ok(response) => Ok(response.into_inner()),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
            ) =>
        {
            Err(NodeError::Unreachable {
                node: node.to_owned(),
                address: String::new(),
                error: status.message().to_owned(),
            })
        }
        Err(status) => Err(NodeError::Refused(status)),
    }
}

struct Client {
    inner: ExecutionsClient<Channel>,
    token: MetadataValue<tonic::metadata::Ascii>,
    project: MetadataValue<tonic::metadata::Ascii>,
}

impl Client {
    /// `message` with the node token and the project.
    fn request<T>(&mut self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("x-switchboard-node-token", self.token.clone());
        metadata.insert("x-switchboard-project", self.project.clone());
        request
    }
}
