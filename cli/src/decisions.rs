//! `switchboard decisions`: routing decisions and unrouted updates, read from a data plane's
//! `Executions` service (DESIGN §13) — decisions with a project's API key, unrouted updates
//! with the nodes' token (each node keeps its own).

use crate::args::{Decisions, Output};
use crate::commands::{Failure, error_chain, many, print};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::executions_client::ExecutionsClient;
use tonic::transport::Channel;

pub(crate) async fn connect(url: &str) -> Result<ExecutionsClient<Channel>, Failure> {
    let endpoint = Channel::from_shared(url.to_owned())
        .map_err(|e| Failure::Usage(format!("--data-plane-grpc: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(5));
    let channel = endpoint.connect().await.map_err(|e| {
        Failure::Refused(format!(
            "cannot reach the data plane at {url}: {}",
            error_chain(&e)
        ))
    })?;
    Ok(ExecutionsClient::new(channel))
}

/// `request` with the metadata `name: value`.
pub(crate) fn with<T>(
    request: T,
    name: &'static str,
    value: &str,
) -> Result<tonic::Request<T>, Failure> {
    let mut request = tonic::Request::new(request);
    let value = value
        .parse()
        .map_err(|_| Failure::Usage(format!("{name}: not a valid header value")))?;
    request.metadata_mut().insert(name, value);
    Ok(request)
}

pub async fn run(command: Decisions, output: Output) -> Result<(), Failure> {
    match command {
        Decisions::List {
            data_plane,
            api_key,
            phone_number_id,
            conversation,
            message_id,
            workflow,
            outcome,
            limit,
            after,
        } => {
            let request = pb::ListRoutingDecisionsRequest {
                phone_number_id,
                conversation_id: conversation,
                message_id,
                workflow_id: workflow,
                outcome,
                limit: limit.unwrap_or(0),
                after,
            };
            let mut client = connect(&data_plane.data_plane_grpc).await?;
            let page = client
                .list_routing_decisions(with(request, "x-api-key", &api_key)?)
                .await?
                .into_inner();
            print(output, many(&page.decisions));
            // Tables say where the next page starts; JSON readers pass the last id as `--after`.
            if let (Output::Table, Some(after)) = (output, &page.next_after) {
                println!("\nmore: --after {after}");
            }
        }
        Decisions::Unrouted {
            data_plane,
            node_token,
            reason,
            limit,
        } => {
            let request = pb::ListUnroutedUpdatesRequest {
                reason,
                limit: limit.unwrap_or(0),
            };
            let mut client = connect(&data_plane.data_plane_grpc).await?;
            let updates = client
                .list_unrouted_updates(with(request, "x-switchboard-node-token", &node_token)?)
                .await?
                .into_inner()
                .updates;
            print(output, many(&updates));
        }
    }
    Ok(())
}
