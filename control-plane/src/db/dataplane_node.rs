//! What the control plane knows of one data-plane node.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "dataplane_nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub node_id: String,
    pub address: String,
    /// The node's Executions gRPC address, as it advertises it ('' when unknown).
    pub grpc_address: String,
    pub build_version: String,
    pub applied_version: i64,
    pub connected: bool,
    pub last_seen: DateTimeUtc,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
