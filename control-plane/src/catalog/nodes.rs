//! Data-plane nodes as the control plane last saw them: written by routing distribution,
//! read by `switchboard nodes list`.

use super::{Catalog, Result, now};
use crate::db::dataplane_node;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

/// How a node's applied version came out.
#[derive(Clone, Debug)]
pub enum Applied {
    Ack,
    /// Applied without some entries; the text summarises which and why.
    Nack(String),
}

/// What a node says of itself when it connects.
#[derive(Clone, Debug)]
pub struct NodeHello<'a> {
    pub node_id: &'a str,
    /// Its HTTP address (platform API, webhooks).
    pub address: &'a str,
    /// Its Executions gRPC address (`--advertise-grpc`); empty when unknown.
    pub grpc_address: &'a str,
    pub build_version: &'a str,
    pub held_version: i64,
}

impl Catalog {
    pub async fn list_nodes(&self) -> Result<Vec<dataplane_node::Model>> {
        Ok(dataplane_node::Entity::find()
            .order_by_asc(dataplane_node::Column::NodeId)
            .all(&self.db)
            .await?)
    }

    /// Records a node that said hello on this replica.
    pub async fn node_connected(&self, hello: &NodeHello<'_>) -> Result<()> {
        let model = dataplane_node::ActiveModel {
            node_id: Set(hello.node_id.to_owned()),
            address: Set(hello.address.to_owned()),
            grpc_address: Set(hello.grpc_address.to_owned()),
            build_version: Set(hello.build_version.to_owned()),
            applied_version: Set(hello.held_version),
            connected: Set(true),
            last_seen: Set(now()),
            last_error: Set(None),
        };
        dataplane_node::Entity::insert(model)
            .on_conflict(
                OnConflict::column(dataplane_node::Column::NodeId)
                    .update_columns([
                        dataplane_node::Column::Address,
                        dataplane_node::Column::GrpcAddress,
                        dataplane_node::Column::BuildVersion,
                        dataplane_node::Column::AppliedVersion,
                        dataplane_node::Column::Connected,
                        dataplane_node::Column::LastSeen,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Records the version a node applied, and its error when it refused entries.
    pub async fn node_applied(&self, node_id: &str, version: i64, outcome: Applied) -> Result<()> {
        let last_error = match outcome {
            Applied::Ack => None,
            Applied::Nack(reason) => Some(reason),
        };
        self.update_node(node_id, |m| {
            m.applied_version = Set(version);
            m.last_error = Set(last_error);
        })
        .await
    }

    /// Records that a node is alive.
    pub async fn node_seen(&self, node_id: &str) -> Result<()> {
        self.update_node(node_id, |_| {}).await
    }

    /// Records that a node's stream ended.
    pub async fn node_disconnected(&self, node_id: &str) -> Result<()> {
        self.update_node(node_id, |m| m.connected = Set(false))
            .await
    }

    async fn update_node(
        &self,
        node_id: &str,
        change: impl FnOnce(&mut dataplane_node::ActiveModel),
    ) -> Result<()> {
        let mut model = dataplane_node::ActiveModel {
            last_seen: Set(now()),
            ..Default::default()
        };
        change(&mut model);
        dataplane_node::Entity::update_many()
            .set(model)
            .filter(dataplane_node::Column::NodeId.eq(node_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
