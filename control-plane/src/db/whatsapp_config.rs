//! A WhatsApp business number (`whatsapp_config_id` is its numeric id).

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "whatsapp_configs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The owning project; for a customer's number, the customer's project.
    pub project_id: String,
    pub customer_id: Option<String>,
    /// Meta's id of the number, unique across the installation.
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub is_default: bool,
    /// Write-only: never serialised, never returned by an API, never logged.
    #[serde(skip)]
    pub access_token: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
