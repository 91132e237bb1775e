//! Data-plane nodes as the control plane last saw them.

use super::{Catalog, Result};
use crate::db::dataplane_node;
use sea_orm::{EntityTrait, QueryOrder};

impl Catalog {
    pub async fn list_nodes(&self) -> Result<Vec<dataplane_node::Model>> {
        Ok(dataplane_node::Entity::find()
            .order_by_asc(dataplane_node::Column::NodeId)
            .all(&self.db)
            .await?)
    }
}
