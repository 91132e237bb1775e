//! Reading the audit log (writing happens in `catalog::Write::commit`).

use super::{Catalog, Error, Result, validate};
use crate::db::audit_event;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

/// Default and largest page of `list_audit`.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

impl Catalog {
    /// Audit events, newest first, optionally of one project.
    pub async fn list_audit(
        &self,
        project_id: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<audit_event::Model>> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let mut query = audit_event::Entity::find();
        if let Some(id) = project_id {
            let id = validate::id("project_id", id)?;
            query = query.filter(audit_event::Column::ProjectId.eq(id));
        }
        Ok(query
            .order_by_desc(audit_event::Column::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await?)
    }
}
