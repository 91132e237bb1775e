//! Reading the audit log (writing happens in `catalog::Write::commit`).

use super::{Catalog, Error, Result, validate};
use crate::db::audit_event;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

/// Default and largest page of `list_audit`.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

impl Catalog {
    /// Audit events, newest first, optionally of one project.
    /// Audit events, newest first: of one project when `project_id`, older than the event
    /// `before` when given (the next page).
    pub async fn list_audit(
        &self,
        project_id: Option<&str>,
        before: Option<&str>,
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
        if let Some(before) = before {
            // Ids are UUIDv7: their order is the events' order.
            let before = validate::id("before", before)?;
            query = query.filter(audit_event::Column::Id.lt(before));
        }
        Ok(query
            .order_by_desc(audit_event::Column::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await?)
    }
}
