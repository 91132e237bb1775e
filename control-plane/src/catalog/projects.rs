//! Projects (tenants) and their customers.

use super::{Actor, Catalog, Change, Result, Routing, new_id, now, validate};
use crate::db::{customer, project};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

impl Catalog {
    pub async fn create_project(&self, actor: &Actor, name: &str) -> Result<project::Model> {
        let name = validate::name("name", name)?;
        let write = self.write(Routing::Unchanged).await?;
        let model = project::ActiveModel {
            id: Set(new_id()),
            name: Set(name),
            created_at: Set(now()),
        }
        .insert(&write.txn)
        .await?;
        let change = Change::of(
            "project.create",
            "project",
            &model.id,
            Some(&model.id),
            None::<&()>,
            Some(&model),
        );
        write.commit(actor, change).await?;
        Ok(model)
    }

    pub async fn list_projects(&self) -> Result<Vec<project::Model>> {
        Ok(project::Entity::find()
            .order_by_asc(project::Column::Id)
            .all(&self.db)
            .await?)
    }

    pub async fn get_project(&self, project_id: &str) -> Result<project::Model> {
        self.project(&self.db, "project_id", project_id).await
    }

    /// The project `id` (validated as `field`), or `NOT_FOUND` naming `field`.
    pub(crate) async fn project(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        field: &str,
        id: &str,
    ) -> Result<project::Model> {
        let id = validate::id(field, id)?;
        project::Entity::find_by_id(id.clone())
            .one(conn)
            .await?
            .ok_or_else(|| super::Error::not_found(field, format!("project {id} not found")))
    }

    pub async fn create_customer(
        &self,
        actor: &Actor,
        project_id: &str,
        name: &str,
    ) -> Result<customer::Model> {
        let name = validate::name("name", name)?;
        let write = self.write(Routing::Unchanged).await?;
        let project = self.project(&write.txn, "project_id", project_id).await?;
        let model = customer::ActiveModel {
            id: Set(new_id()),
            project_id: Set(project.id.clone()),
            name: Set(name),
            created_at: Set(now()),
        }
        .insert(&write.txn)
        .await?;
        let change = Change::of(
            "customer.create",
            "customer",
            &model.id,
            Some(&project.id),
            None::<&()>,
            Some(&model),
        );
        write.commit(actor, change).await?;
        Ok(model)
    }

    pub async fn list_customers(&self, project_id: &str) -> Result<Vec<customer::Model>> {
        let project = self.project(&self.db, "project_id", project_id).await?;
        Ok(customer::Entity::find()
            .filter(customer::Column::ProjectId.eq(project.id))
            .order_by_asc(customer::Column::Id)
            .all(&self.db)
            .await?)
    }
}
