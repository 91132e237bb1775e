//! Workflows: creation, status (only `active` workflows route), deletion with their triggers.

use super::{Actor, Catalog, Change, Error, Page, Result, Routing, Window, new_id, now, validate};
use crate::db::{trigger, workflow};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, ModelTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;

impl Catalog {
    pub async fn create_workflow(
        &self,
        actor: &Actor,
        project_id: &str,
        name: &str,
        status: &str,
    ) -> Result<workflow::Model> {
        let name = validate::name("name", name)?;
        let status =
            validate::workflow_status("status", if status.is_empty() { "draft" } else { status })?;
        let write = self.write(Routing::Changes).await?;
        let project = self.project(&write.txn, "project_id", project_id).await?;
        let at = now();
        let model = workflow::ActiveModel {
            id: Set(new_id()),
            project_id: Set(project.id.clone()),
            name: Set(name),
            status: Set(status),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(&write.txn)
        .await?;
        let change = Change::of(
            "workflow.create",
            "workflow",
            &model.id,
            Some(&project.id),
            None::<&()>,
            Some(&model),
        );
        write.commit(actor, change).await?;
        Ok(model)
    }

    pub async fn list_workflows(&self, project_id: &str) -> Result<Vec<workflow::Model>> {
        let project = self.project(&self.db, "project_id", project_id).await?;
        Ok(workflow::Entity::find()
            .filter(workflow::Column::ProjectId.eq(project.id))
            .order_by_asc(workflow::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// One page of a project's workflows, in the order they were created.
    pub async fn workflows_page(
        &self,
        project_id: &str,
        window: Window,
    ) -> Result<Page<workflow::Model>> {
        let project = self.project(&self.db, "project_id", project_id).await?;
        let select = workflow::Entity::find().filter(workflow::Column::ProjectId.eq(project.id));
        Ok(Page {
            total: select.clone().count(&self.db).await?,
            items: select
                .order_by_asc(workflow::Column::Id)
                .offset(window.offset)
                .limit(window.limit)
                .all(&self.db)
                .await?,
        })
    }

    pub async fn set_workflow_status(
        &self,
        actor: &Actor,
        workflow_id: &str,
        status: &str,
    ) -> Result<workflow::Model> {
        let status = validate::workflow_status("status", status)?;
        let write = self.write(Routing::Changes).await?;
        let before = self
            .workflow(&write.txn, "workflow_id", workflow_id)
            .await?;
        if before.status == status {
            // Nothing changes: the transaction rolls back and the version stays.
            return Ok(before);
        }
        let mut active = before.clone().into_active_model();
        active.status = Set(status);
        active.updated_at = Set(now());
        let after = active.update(&write.txn).await?;
        let change = Change::of(
            "workflow.set_status",
            "workflow",
            &after.id,
            Some(&after.project_id),
            Some(&before),
            Some(&after),
        );
        write.commit(actor, change).await?;
        Ok(after)
    }

    /// Deletes a workflow and its triggers in one transaction.
    pub async fn delete_workflow(&self, actor: &Actor, workflow_id: &str) -> Result<()> {
        let write = self.write(Routing::Changes).await?;
        let workflow = self
            .workflow(&write.txn, "workflow_id", workflow_id)
            .await?;
        let triggers = trigger::Entity::find()
            .filter(trigger::Column::WorkflowId.eq(workflow.id.as_str()))
            .all(&write.txn)
            .await?;
        trigger::Entity::delete_many()
            .filter(trigger::Column::WorkflowId.eq(workflow.id.as_str()))
            .exec(&write.txn)
            .await?;
        workflow.clone().delete(&write.txn).await?;
        let before = json!({ "workflow": workflow, "triggers": triggers });
        let change = Change::of(
            "workflow.delete",
            "workflow",
            &workflow.id,
            Some(&workflow.project_id),
            Some(&before),
            None::<&()>,
        );
        write.commit(actor, change).await
    }

    pub async fn get_workflow(&self, workflow_id: &str) -> Result<workflow::Model> {
        self.workflow(&self.db, "workflow_id", workflow_id).await
    }

    /// The workflow `id` (validated as `field`), or `NOT_FOUND` naming `field`.
    pub(crate) async fn workflow(
        &self,
        conn: &impl ConnectionTrait,
        field: &str,
        id: &str,
    ) -> Result<workflow::Model> {
        let id = validate::id(field, id)?;
        workflow::Entity::find_by_id(id.clone())
            .one(conn)
            .await?
            .ok_or_else(|| Error::not_found(field, format!("workflow {id} not found")))
    }
}
