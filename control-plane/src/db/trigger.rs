//! A trigger: when a workflow starts.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "triggers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub workflow_id: String,
    /// Copied from the workflow so the project-wide uniqueness index can see it.
    pub project_id: String,
    /// `inbound_message`, `whatsapp_event` or `api_call`.
    pub trigger_type: String,
    pub whatsapp_config_id: Option<i64>,
    pub event_type: Option<String>,
    pub active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
