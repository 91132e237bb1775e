//! WhatsApp numbers (`whatsapp_configs`): ownership, the project default, write-only tokens.

use super::{Actor, Catalog, Change, Error, Page, Result, Routing, Window, now, validate};
use crate::db::{customer, trigger, whatsapp_config};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ModelTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

/// What an operator gives to register a number.
#[derive(Clone, Debug, Default)]
pub struct NewNumber {
    pub project_id: String,
    pub customer_id: Option<String>,
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub is_default: bool,
    pub access_token: Option<String>,
}

impl Catalog {
    pub async fn create_number(
        &self,
        actor: &Actor,
        new: NewNumber,
    ) -> Result<whatsapp_config::Model> {
        let phone_number_id = validate::phone_number_id("phone_number_id", &new.phone_number_id)?;
        let display = validate::e164("display_phone_number", &new.display_phone_number)?;
        let access_token = match new.access_token.as_deref().map(str::trim) {
            Some("") => return Err(Error::invalid("access_token", "must not be empty")),
            other => other.map(str::to_owned),
        };
        let write = self.write(Routing::Changes).await?;
        let project = self
            .project(&write.txn, "project_id", &new.project_id)
            .await?;
        let customer_id = match new.customer_id.as_deref() {
            None => None,
            Some(raw) => {
                let id = validate::id("customer_id", raw)?;
                let found = customer::Entity::find_by_id(id.clone())
                    .filter(customer::Column::ProjectId.eq(project.id.as_str()))
                    .one(&write.txn)
                    .await?;
                if found.is_none() {
                    return Err(Error::not_found(
                        "customer_id",
                        format!("customer {id} not found in project {}", project.id),
                    ));
                }
                Some(id)
            }
        };
        let taken = whatsapp_config::Entity::find()
            .filter(whatsapp_config::Column::PhoneNumberId.eq(phone_number_id.as_str()))
            .count(&write.txn)
            .await?;
        if taken > 0 {
            // Meta ids are unique across the installation; say so without naming the
            // project that holds it.
            return Err(Error::Conflict(format!(
                "phone_number_id: {phone_number_id} is already registered"
            )));
        }
        if new.is_default
            && let Some(current) = whatsapp_config::Entity::find()
                .filter(whatsapp_config::Column::ProjectId.eq(project.id.as_str()))
                .filter(whatsapp_config::Column::IsDefault.eq(true))
                .one(&write.txn)
                .await?
        {
            return Err(Error::Conflict(format!(
                "default: project {} already has default number {} (whatsapp_config_id {})",
                project.id, current.display_phone_number, current.id
            )));
        }
        let model = whatsapp_config::ActiveModel {
            project_id: Set(project.id.clone()),
            customer_id: Set(customer_id),
            phone_number_id: Set(phone_number_id),
            display_phone_number: Set(display),
            is_default: Set(new.is_default),
            access_token: Set(access_token),
            created_at: Set(now()),
            ..Default::default()
        }
        .insert(&write.txn)
        .await?;
        let change = Change::of(
            "number.create",
            "whatsapp_config",
            model.id.to_string(),
            Some(&project.id),
            None::<&()>,
            Some(&model),
        );
        write.commit(actor, change).await?;
        Ok(model)
    }

    pub async fn list_numbers(&self, project_id: &str) -> Result<Vec<whatsapp_config::Model>> {
        let project = self.project(&self.db, "project_id", project_id).await?;
        Ok(whatsapp_config::Entity::find()
            .filter(whatsapp_config::Column::ProjectId.eq(project.id))
            .order_by_asc(whatsapp_config::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// One page of a project's numbers, in the order they were added.
    pub async fn numbers_page(
        &self,
        project_id: &str,
        window: Window,
    ) -> Result<Page<whatsapp_config::Model>> {
        let project = self.project(&self.db, "project_id", project_id).await?;
        let select = whatsapp_config::Entity::find()
            .filter(whatsapp_config::Column::ProjectId.eq(project.id));
        Ok(Page {
            total: select.clone().count(&self.db).await?,
            items: select
                .order_by_asc(whatsapp_config::Column::Id)
                .offset(window.offset)
                .limit(window.limit)
                .all(&self.db)
                .await?,
        })
    }

    /// A project's first `limit` numbers, in the order they were added.
    pub async fn first_numbers(
        &self,
        project_id: &str,
        limit: u64,
    ) -> Result<Vec<whatsapp_config::Model>> {
        let project = self.project(&self.db, "project_id", project_id).await?;
        Ok(whatsapp_config::Entity::find()
            .filter(whatsapp_config::Column::ProjectId.eq(project.id))
            .order_by_asc(whatsapp_config::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Deletes a number that no trigger uses any more.
    pub async fn delete_number(&self, actor: &Actor, config_id: i64) -> Result<()> {
        let write = self.write(Routing::Changes).await?;
        let number = self
            .number_by_config_id(&write.txn, "whatsapp_config_id", config_id)
            .await?;
        let in_use = trigger::Entity::find()
            .filter(trigger::Column::WhatsappConfigId.eq(number.id))
            .count(&write.txn)
            .await?;
        if in_use > 0 {
            return Err(Error::FailedPrecondition(format!(
                "whatsapp_config_id: number {config_id} is used by {in_use} trigger(s); \
                 delete or replace them first"
            )));
        }
        number.clone().delete(&write.txn).await?;
        let change = Change::of(
            "number.delete",
            "whatsapp_config",
            config_id.to_string(),
            Some(&number.project_id),
            Some(&number),
            None::<&()>,
        );
        write.commit(actor, change).await
    }

    pub(crate) async fn number_by_config_id(
        &self,
        conn: &impl ConnectionTrait,
        field: &str,
        config_id: i64,
    ) -> Result<whatsapp_config::Model> {
        whatsapp_config::Entity::find_by_id(config_id)
            .one(conn)
            .await?
            .ok_or_else(|| Error::not_found(field, format!("number {config_id} not found")))
    }

    /// The number with Meta id `phone_number_id` that belongs to `project_id`; a number of
    /// another project is reported exactly like a missing one.
    pub(crate) async fn number_in_project(
        &self,
        conn: &impl ConnectionTrait,
        field: &str,
        project_id: &str,
        phone_number_id: &str,
    ) -> Result<whatsapp_config::Model> {
        let phone_number_id = validate::phone_number_id(field, phone_number_id)?;
        whatsapp_config::Entity::find()
            .filter(whatsapp_config::Column::PhoneNumberId.eq(phone_number_id.as_str()))
            .filter(whatsapp_config::Column::ProjectId.eq(project_id))
            .one(conn)
            .await?
            .ok_or_else(|| {
                Error::not_found(
                    field,
                    format!("number {phone_number_id} not found in project {project_id}"),
                )
            })
    }
}
