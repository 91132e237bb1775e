//! Triggers and the uniqueness rules of DESIGN §3:
//! - at most one active `inbound_message` trigger per number;
//! - at most one active `whatsapp_event` trigger per (event type, number), where a trigger
//!   without a number covers every number of its project;
//! - at most one `api_call` trigger per workflow.
//!
//! Checks run inside the catalog write lock (see `catalog` module docs), so they hold under
//! concurrency; partial unique indexes in the schema back them.

use super::{
    Actor, Catalog, Change, Error, Holder, Page, Result, Routing, Window, Write, new_id, now,
    validate,
};
use crate::db::{trigger, whatsapp_config, workflow};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    ModelTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use std::collections::HashMap;

use switchboard_proto::wire::{EventType, TriggerType};

/// What a trigger should be (create and replace-all).
#[derive(Clone, Debug, Default)]
pub struct TriggerSpec {
    pub trigger_type: String,
    pub phone_number_id: Option<String>,
    pub event_type: Option<String>,
    pub active: bool,
}

/// A trigger with the Meta id of its number, as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TriggerView {
    #[serde(flatten)]
    pub trigger: trigger::Model,
    pub phone_number_id: Option<String>,
}

/// Which triggers to list.
#[derive(Clone, Debug)]
pub enum TriggerFilter {
    All,
    Workflow(String),
    Project(String),
}

/// One page of a workflow's triggers, filtered (the console's trigger list).
#[derive(Clone, Debug)]
pub struct TriggerQuery {
    pub workflow_id: String,
    pub trigger_type: Option<TriggerType>,
    pub active: Option<bool>,
    /// Meta's id of the number the triggers are on.
    pub phone_number_id: Option<String>,
    pub window: Window,
}

impl Catalog {
    pub async fn create_trigger(
        &self,
        actor: &Actor,
        workflow_id: &str,
        spec: &TriggerSpec,
    ) -> Result<TriggerView> {
        let write = self.write(Routing::Changes).await?;
        let workflow = self
            .workflow(&write.txn, "workflow_id", workflow_id)
            .await?;
        let view = self.insert_trigger(&write.txn, &workflow, spec, "").await?;
        let change = Change::of(
            "trigger.create",
            "trigger",
            &view.trigger.id,
            Some(&workflow.project_id),
            None::<&()>,
            Some(&view),
        );
        write.commit(actor, change).await?;
        Ok(view)
    }

    pub async fn get_trigger(&self, trigger_id: &str) -> Result<TriggerView> {
        let model = self.trigger(&self.db, trigger_id).await?;
        Ok(self.views(&self.db, vec![model]).await?.remove(0))
    }

    pub async fn list_triggers(&self, filter: TriggerFilter) -> Result<Vec<TriggerView>> {
        let query = match filter {
            TriggerFilter::All => trigger::Entity::find(),
            TriggerFilter::Workflow(id) => {
                let workflow = self.workflow(&self.db, "workflow_id", &id).await?;
                trigger::Entity::find().filter(trigger::Column::WorkflowId.eq(workflow.id))
            }
            TriggerFilter::Project(id) => {
                let project = self.project(&self.db, "project_id", &id).await?;
                trigger::Entity::find().filter(trigger::Column::ProjectId.eq(project.id))
            }
        };
        let models = query
            .order_by_asc(trigger::Column::Id)
            .all(&self.db)
            .await?;
        self.views(&self.db, models).await
    }

    /// One page of a workflow's triggers matching `query`, oldest first.
    pub async fn trigger_page(&self, query: &TriggerQuery) -> Result<Page<TriggerView>> {
        use trigger::Column as C;
        let workflow = self
            .workflow(&self.db, "workflow_id", &query.workflow_id)
            .await?;
        let mut select = trigger::Entity::find().filter(C::WorkflowId.eq(workflow.id));
        if let Some(kind) = query.trigger_type {
            select = select.filter(C::TriggerType.eq(kind.as_str()));
        }
        if let Some(active) = query.active {
            select = select.filter(C::Active.eq(active));
        }
        if let Some(pnid) = &query.phone_number_id {
            let number = whatsapp_config::Entity::find()
                .filter(whatsapp_config::Column::PhoneNumberId.eq(pnid.as_str()))
                .filter(whatsapp_config::Column::ProjectId.eq(workflow.project_id.as_str()))
                .one(&self.db)
                .await?;
            // A number of no trigger of this workflow's project: no trigger is on it.
            select = select.filter(C::WhatsappConfigId.eq(number.map_or(-1, |n| n.id)));
        }
        let total = select.clone().count(&self.db).await?;
        // Ids are UUIDv7: their order is the order of creation.
        let models = select
            .order_by_asc(C::Id)
            .limit(query.window.limit)
            .offset(query.window.offset)
            .all(&self.db)
            .await?;
        Ok(Page {
            items: self.views(&self.db, models).await?,
            total,
        })
    }

    /// Whether a workflow has a trigger of `kind`, active or not.
    pub async fn has_trigger(&self, workflow_id: &str, kind: TriggerType) -> Result<bool> {
        let workflow = self.workflow(&self.db, "workflow_id", workflow_id).await?;
        let found = trigger::Entity::find()
            .filter(trigger::Column::WorkflowId.eq(workflow.id))
            .filter(trigger::Column::TriggerType.eq(kind.as_str()))
            .one(&self.db)
            .await?;
        Ok(found.is_some())
    }

    /// Activates or deactivates a trigger; a no-op leaves the routing version alone.
    pub async fn set_trigger_active(
        &self,
        actor: &Actor,
        trigger_id: &str,
        active: bool,
    ) -> Result<TriggerView> {
        let write = self.write(Routing::Changes).await?;
        let before = self.trigger(&write.txn, trigger_id).await?;
        if before.active == active {
            return Ok(self.views(&write.txn, vec![before]).await?.remove(0));
        }
        let (after, change) = self.switch(&write, before, active).await?;
        write.commit(actor, change).await?;
        Ok(after)
    }

    /// Activates `trigger_id` in the place of `holder_id`, the active trigger holding its
    /// slot, which is deactivated — in one transaction, both changes audited. Refused when
    /// `holder_id` is not what holds the slot, or something else would still conflict.
    pub async fn activate_replacing(
        &self,
        actor: &Actor,
        trigger_id: &str,
        holder_id: &str,
    ) -> Result<TriggerView> {
        let write = self.write(Routing::Changes).await?;
        let before = self.trigger(&write.txn, trigger_id).await?;
        let mut candidate = before.clone();
        candidate.active = true;
        self.vacate(&write, actor, &candidate, holder_id).await?;
        let (after, change) = self.switch(&write, before, true).await?;
        write.commit(actor, change).await?;
        Ok(after)
    }

    /// Creates a trigger in the place of `holder_id`, the active trigger holding the slot
    /// the new one takes, which is deactivated — in one transaction (see
    /// [`Catalog::activate_replacing`]).
    pub async fn create_trigger_replacing(
        &self,
        actor: &Actor,
        workflow_id: &str,
        spec: &TriggerSpec,
        holder_id: &str,
    ) -> Result<TriggerView> {
        let write = self.write(Routing::Changes).await?;
        let workflow = self
            .workflow(&write.txn, "workflow_id", workflow_id)
            .await?;
        let holder = self.trigger(&write.txn, holder_id).await?;
        // The new trigger, checked first as if the holder stayed: it must be what holds
        // its slot (a trigger written here goes with the transaction).
        let probe = self.insert_trigger(&write.txn, &workflow, spec, "").await;
        held_by(probe, &holder.id, "the new trigger")?;
        let (_, deactivated) = self.switch(&write, holder, false).await?;
        write.record(actor, deactivated).await?;
        let view = self.insert_trigger(&write.txn, &workflow, spec, "").await?;
        let change = Change::of(
            "trigger.create",
            "trigger",
            &view.trigger.id,
            Some(&workflow.project_id),
            None::<&()>,
            Some(&view),
        );
        write.commit(actor, change).await?;
        Ok(view)
    }

    /// Deactivates `holder_id` inside `write` if it is what keeps `candidate` from its slot.
    async fn vacate(
        &self,
        write: &Write,
        actor: &Actor,
        candidate: &trigger::Model,
        holder_id: &str,
    ) -> Result<()> {
        let holder = self.trigger(&write.txn, holder_id).await?;
        let checked = ensure_no_conflict(&write.txn, candidate).await;
        held_by(checked, &holder.id, &format!("trigger {}", candidate.id))?;
        let (_, change) = self.switch(write, holder, false).await?;
        write.record(actor, change).await
    }

    /// Sets `before.active` to `active` inside `write` after the conflict check; the view
    /// after, and the audit record to write.
    async fn switch(
        &self,
        write: &Write,
        before: trigger::Model,
        active: bool,
    ) -> Result<(TriggerView, Change<'static>)> {
        let mut candidate = before.clone();
        candidate.active = active;
        ensure_no_conflict(&write.txn, &candidate).await?;
        let mut model = before.clone().into_active_model();
        model.active = Set(active);
        model.updated_at = Set(now());
        let after = model.update(&write.txn).await?;
        let mut views = self.views(&write.txn, vec![before, after]).await?;
        let (after, before) = (views.remove(1), views.remove(0));
        let action = if active {
            "trigger.activate"
        } else {
            "trigger.deactivate"
        };
        let change = Change::of(
            action,
            "trigger",
            &after.trigger.id,
            Some(&after.trigger.project_id),
            Some(&before),
            Some(&after),
        );
        Ok((after, change))
    }

    pub async fn delete_trigger(&self, actor: &Actor, trigger_id: &str) -> Result<()> {
        let write = self.write(Routing::Changes).await?;
        let model = self.trigger(&write.txn, trigger_id).await?;
        let before = self.views(&write.txn, vec![model.clone()]).await?.remove(0);
        model.delete(&write.txn).await?;
        let change = Change::of(
            "trigger.delete",
            "trigger",
            &before.trigger.id,
            Some(&before.trigger.project_id),
            Some(&before),
            None::<&()>,
        );
        write.commit(actor, change).await
    }

    /// Replaces every trigger of a workflow with `specs` in one transaction: when any spec
    /// is invalid or conflicts, nothing changes.
    pub async fn replace_triggers(
        &self,
        actor: &Actor,
        workflow_id: &str,
        specs: &[TriggerSpec],
    ) -> Result<Vec<TriggerView>> {
        let write = self.write(Routing::Changes).await?;
        let workflow = self
            .workflow(&write.txn, "workflow_id", workflow_id)
            .await?;
        let old = trigger::Entity::find()
            .filter(trigger::Column::WorkflowId.eq(workflow.id.as_str()))
            .order_by_asc(trigger::Column::Id)
            .all(&write.txn)
            .await?;
        let before = self.views(&write.txn, old).await?;
        trigger::Entity::delete_many()
            .filter(trigger::Column::WorkflowId.eq(workflow.id.as_str()))
            .exec(&write.txn)
            .await?;
        let mut after = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let prefix = format!("triggers[{i}].");
            after.push(
                self.insert_trigger(&write.txn, &workflow, spec, &prefix)
                    .await?,
            );
        }
        let change = Change::of(
            "trigger.replace_all",
            "workflow",
            &workflow.id,
            Some(&workflow.project_id),
            Some(&before),
            Some(&after),
        );
        write.commit(actor, change).await?;
        Ok(after)
    }

    /// Validates `spec` against `workflow`, checks uniqueness and inserts the trigger.
    /// `field_prefix` places error fields inside a batch (`triggers[2].`).
    async fn insert_trigger(
        &self,
        conn: &impl ConnectionTrait,
        workflow: &workflow::Model,
        spec: &TriggerSpec,
        field_prefix: &str,
    ) -> Result<TriggerView> {
        let at = now();
        let identity = (new_id(), at);
        let view = self
            .validated(conn, workflow, spec, field_prefix, identity)
            .await?;
        let model = view.trigger.into_active_model().insert(conn).await?;
        Ok(TriggerView {
            trigger: model,
            phone_number_id: view.phone_number_id,
        })
    }

    /// Changes the number and event of a trigger (its type, workflow and state stay), with
    /// the checks and uniqueness rules of a new one.
    pub async fn configure_trigger(
        &self,
        actor: &Actor,
        trigger_id: &str,
        phone_number_id: Option<&str>,
        event_type: Option<&str>,
    ) -> Result<TriggerView> {
        let write = self.write(Routing::Changes).await?;
        let before = self.trigger(&write.txn, trigger_id).await?;
        let workflow = self
            .workflow(&write.txn, "workflow_id", &before.workflow_id)
            .await?;
        let spec = TriggerSpec {
            trigger_type: before.trigger_type.clone(),
            phone_number_id: phone_number_id.map(str::to_owned),
            event_type: event_type.map(str::to_owned),
            active: before.active,
        };
        let identity = (before.id.clone(), before.created_at);
        let after = self
            .validated(&write.txn, &workflow, &spec, "", identity)
            .await?;
        let mut model = after.trigger.clone().into_active_model();
        model.whatsapp_config_id = Set(after.trigger.whatsapp_config_id);
        model.event_type = Set(after.trigger.event_type.clone());
        model.updated_at = Set(now());
        let updated = model.update(&write.txn).await?;
        let mut views = self.views(&write.txn, vec![before, updated]).await?;
        let (after, before) = (views.remove(1), views.remove(0));
        let change = Change::of(
            "trigger.configure",
            "trigger",
            &after.trigger.id,
            Some(&after.trigger.project_id),
            Some(&before),
            Some(&after),
        );
        write.commit(actor, change).await?;
        Ok(after)
    }

    /// The trigger `spec` describes in `workflow`, with the id and creation time of
    /// `identity`, once it passes every check and no other trigger holds its slot.
    async fn validated(
        &self,
        conn: &impl ConnectionTrait,
        workflow: &workflow::Model,
        spec: &TriggerSpec,
        field_prefix: &str,
        (id, created_at): (String, chrono::DateTime<chrono::Utc>),
    ) -> Result<TriggerView> {
        let field = |name: &str| format!("{field_prefix}{name}");
        let raw_kind = spec.trigger_type.trim();
        let kind = TriggerType::parse(raw_kind).ok_or_else(|| {
            Error::invalid(
                field("type"),
                format!(
                    "{raw_kind:?} is not a trigger type ({})",
                    TriggerType::names()
                ),
            )
        })?;
        let event_type = spec.event_type.as_deref().map(str::trim);
        let phone_number_id = spec.phone_number_id.as_deref().map(str::trim);
        match (kind, event_type) {
            (TriggerType::WhatsappEvent, None) => {
                return Err(Error::invalid(
                    field("event_type"),
                    "required for whatsapp_event triggers",
                ));
            }
            (TriggerType::WhatsappEvent, Some(event)) if EventType::parse(event).is_none() => {
                return Err(Error::invalid(
                    field("event_type"),
                    format!("{event:?} is not an event type ({})", EventType::names()),
                ));
            }
            (TriggerType::InboundMessage | TriggerType::ApiCall, Some(_)) => {
                return Err(Error::invalid(
                    field("event_type"),
                    "only whatsapp_event triggers take an event type",
                ));
            }
            _ => {}
        }
        match (kind, phone_number_id) {
            (TriggerType::InboundMessage, None) => {
                return Err(Error::invalid(
                    field("phone_number_id"),
                    "required for inbound_message triggers",
                ));
            }
            (TriggerType::ApiCall, Some(_)) => {
                return Err(Error::invalid(
                    field("phone_number_id"),
                    "api_call triggers take no number (the request names it)",
                ));
            }
            _ => {}
        }
        let number = match phone_number_id {
            Some(id) => Some(
                self.number_in_project(conn, &field("phone_number_id"), &workflow.project_id, id)
                    .await?,
            ),
            None => None,
        };
        let candidate = trigger::Model {
            id,
            workflow_id: workflow.id.clone(),
            project_id: workflow.project_id.clone(),
            trigger_type: kind.as_str().to_owned(),
            whatsapp_config_id: number.as_ref().map(|n| n.id),
            event_type: event_type.map(str::to_owned),
            active: spec.active,
            created_at,
            updated_at: created_at,
        };
        ensure_no_conflict(conn, &candidate)
            .await
            .map_err(|err| match err {
                Error::SlotTaken { slot, holder } if !field_prefix.is_empty() => {
                    let slot = format!("{}: {slot}", field_prefix.trim_end_matches('.'));
                    Error::SlotTaken { slot, holder }
                }
                other => other,
            })?;
        Ok(TriggerView {
            trigger: candidate,
            phone_number_id: number.map(|n| n.phone_number_id),
        })
    }

    async fn trigger(&self, conn: &impl ConnectionTrait, id: &str) -> Result<trigger::Model> {
        let id = validate::id("trigger_id", id)?;
        trigger::Entity::find_by_id(id.clone())
            .one(conn)
            .await?
            .ok_or_else(|| Error::not_found("trigger_id", format!("trigger {id} not found")))
    }

    /// Attaches each trigger's Meta `phone_number_id` with one query.
    async fn views(
        &self,
        conn: &impl ConnectionTrait,
        models: Vec<trigger::Model>,
    ) -> Result<Vec<TriggerView>> {
        let ids: Vec<i64> = models.iter().filter_map(|t| t.whatsapp_config_id).collect();
        let numbers: HashMap<i64, String> = if ids.is_empty() {
            HashMap::new()
        } else {
            whatsapp_config::Entity::find()
                .filter(whatsapp_config::Column::Id.is_in(ids))
                .all(conn)
                .await?
                .into_iter()
                .map(|n| (n.id, n.phone_number_id))
                .collect()
        };
        Ok(models
            .into_iter()
            .map(|trigger| TriggerView {
                phone_number_id: trigger
                    .whatsapp_config_id
                    .and_then(|id| numbers.get(&id).cloned()),
                trigger,
            })
            .collect())
    }
}

/// `Ok` when `checked`, the conflict check of `what`, failed on `holder_id` holding its
/// slot: the one case in which taking that holder's place is what the caller asked for.
fn held_by<T>(checked: Result<T>, holder_id: &str, what: &str) -> Result<()> {
    match checked {
        Err(Error::SlotTaken { holder, .. }) if holder.trigger_id == holder_id => Ok(()),
        Err(other) => Err(other),
        Ok(_) => Err(Error::FailedPrecondition(format!(
            "trigger {holder_id} does not hold the slot of {what}"
        ))),
    }
}

/// Refuses `candidate` when another trigger already holds its slot (DESIGN §3); the message
/// names that trigger and its workflow.
async fn ensure_no_conflict(conn: &impl ConnectionTrait, candidate: &trigger::Model) -> Result<()> {
    use trigger::Column as C;
    let others = trigger::Entity::find()
        .filter(C::Id.ne(candidate.id.as_str()))
        .filter(C::TriggerType.eq(candidate.trigger_type.as_str()));
    let (query, slot) = match TriggerType::parse(&candidate.trigger_type) {
        Some(TriggerType::ApiCall) => (
            others.filter(C::WorkflowId.eq(candidate.workflow_id.as_str())),
            format!(
                "workflow {} already has an api_call trigger",
                candidate.workflow_id
            ),
        ),
        _ if !candidate.active => return Ok(()),
        Some(TriggerType::InboundMessage) => (
            others
                .filter(C::Active.eq(true))
                .filter(C::WhatsappConfigId.eq(candidate.whatsapp_config_id)),
            "the number already has an active inbound_message trigger".to_owned(),
        ),
        _ => {
            let event = candidate.event_type.as_deref().unwrap_or_default();
            let scope = match candidate.whatsapp_config_id {
                // Per-number: the same number, or a project-wide trigger covering it.
                Some(number) => Condition::any()
                    .add(C::WhatsappConfigId.eq(number))
                    .add(C::WhatsappConfigId.is_null()),
                // Project-wide: any trigger of the project for this event.
                None => Condition::all(),
            };
            (
                others
                    .filter(C::Active.eq(true))
                    .filter(C::EventType.eq(event))
                    .filter(C::ProjectId.eq(candidate.project_id.as_str()))
                    .filter(scope),
                format!("{event} already has an active trigger covering this number"),
            )
        }
    };
    match query.one(conn).await? {
        None => Ok(()),
        Some(existing) => Err(Error::SlotTaken {
            slot,
            holder: Holder {
                trigger_id: existing.id,
                workflow_id: existing.workflow_id,
            },
        }),
    }
}
