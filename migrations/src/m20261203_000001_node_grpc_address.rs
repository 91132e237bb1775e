//! Where each data-plane node's `Executions` gRPC service is reached, as the node advertises
//! it in its routing hello (`--advertise-grpc`): the console calls nodes there (DESIGN §11).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE dataplane_nodes ADD COLUMN grpc_address TEXT NOT NULL DEFAULT ''",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE dataplane_nodes DROP COLUMN grpc_address")
            .await?;
        Ok(())
    }
}
