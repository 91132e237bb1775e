//! Schema migrations of the trigger catalog, one file per migration. They run unchanged on
//! PostgreSQL and SQLite; the uniqueness rules of the catalog live here as partial unique
//! indexes so that the database, not the application, has the last word.
#![forbid(unsafe_code)]

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_catalog;
mod m20261126_000001_incremental_routing;
mod m20261203_000001_console;

/// Every migration of the catalog, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_catalog::Migration),
            Box::new(m20261126_000001_incremental_routing::Migration),
            Box::new(m20261203_000001_console::Migration),
        ]
    }
}
