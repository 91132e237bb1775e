//! sea-orm entities of the catalog, one file per table (schema: `switchboard-migrations`).

pub mod api_key;
pub mod audit_event;
pub mod customer;
pub mod dataplane_node;
pub mod project;
pub mod trigger;
pub mod whatsapp_config;
pub mod workflow;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use std::time::Duration;

/// Connects to the catalog database (PostgreSQL or SQLite, by URL scheme).
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30));
    Database::connect(options).await
}
