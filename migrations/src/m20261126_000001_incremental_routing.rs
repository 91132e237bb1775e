//! Indexes for incremental routing compiles: the audit log read as a change log by routing
//! version, and a workflow's triggers by type (whether a workflow has a trigger of a type
//! is one index probe, however many triggers it has). The second index covers every query
//! the old `triggers_workflow` index served, which it replaces.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE INDEX audit_events_routing_version ON audit_events (routing_version)",
            "CREATE INDEX triggers_workflow_type ON triggers (workflow_id, trigger_type)",
            "DROP INDEX triggers_workflow",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE INDEX triggers_workflow ON triggers (workflow_id)",
            "DROP INDEX triggers_workflow_type",
            "DROP INDEX audit_events_routing_version",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
