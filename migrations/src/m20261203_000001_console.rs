//! For the operator console (DESIGN §11): where each data-plane node's `Executions` gRPC
//! service is reached, as the node advertises it in its routing hello (`--advertise-grpc`),
//! so the console can call it; and a workflow's triggers in creation order (ids are UUIDv7),
//! so a page of a workflow with many triggers is an index range, not a sort.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "ALTER TABLE dataplane_nodes ADD COLUMN grpc_address TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX triggers_workflow_id ON triggers (workflow_id, id)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "DROP INDEX triggers_workflow_id",
            "ALTER TABLE dataplane_nodes DROP COLUMN grpc_address",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
