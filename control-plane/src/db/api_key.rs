//! A project's API key; only the SHA-256 of the secret is stored.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub project_id: String,
    pub name: String,
    /// The first characters of the secret, so operators can tell keys apart.
    pub prefix: String,
    /// Hex SHA-256 of the secret; never serialised.
    #[serde(skip)]
    pub secret_sha256: String,
    pub burst_limit: Option<i64>,
    pub revoked_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
