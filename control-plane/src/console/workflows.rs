//! A workflow's page: its status, its triggers (add, configure by replacing them all,
//! activate, deactivate, delete; a conflict names the trigger holding the slot and offers
//! to take its place in one catalog transaction), the ready curl of its API trigger, its
//! recent executions and the Flow Test.

use super::views::{self, Choice, Chrome, Link};
use super::{Authenticated, Checked, Console, Failure, actor, page, urlencode};
use crate::catalog::{self, Holder, TriggerQuery, TriggerSpec, TriggerView, Window};
use crate::db::workflow;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use switchboard_proto::wire::{EventType, TriggerType};

/// Triggers shown per page.
const PAGE: u64 = 50;
/// Up to this many numbers, the forms offer them in a list; past it, the number is typed.
const LISTED_NUMBERS: u64 = 100;
/// Executions shown on a workflow's page.
const RECENT_EXECUTIONS: u32 = 10;

/// The trigger list's filters and page, as they stand in the URL.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct Filters {
    #[serde(rename = "type")]
    kind: Option<String>,
    state: Option<String>,
    number: Option<String>,
    page: Option<u64>,
    /// A trigger to show the configure form of.
    configure: Option<String>,
}

impl Filters {
    /// The query string of these filters on page `page`.
    fn href(&self, page: u64) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("type", &self.kind),
            ("state", &self.state),
            ("number", &self.number),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                parts.push(format!("{name}={}", urlencode(v)));
            }
        }
        if page > 0 {
            parts.push(format!("page={page}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

#[derive(Template)]
#[template(path = "console/workflow.html")]
struct WorkflowPage {
    chrome: Chrome,
    workflow: Link,
    project: Link,
    active: bool,
    triggers: Vec<TriggerRow>,
    total: u64,
    type_filter: Vec<Choice>,
    state_filter: Vec<Choice>,
    number_filter: Vec<Choice>,
    /// Past [`LISTED_NUMBERS`]: the forms take a typed number.
    many_numbers: bool,
    number: String,
    newer: Option<String>,
    older: Option<String>,
    numbers: Vec<String>,
    events: Vec<&'static str>,
    trigger_types: Vec<&'static str>,
    conflict: Option<Conflict>,
    configure: Option<Configure>,
    curl: Option<String>,
    executions: Result<Vec<ExecutionRow>, String>,
    replace_json: String,
}

struct TriggerRow {
    id: String,
    kind: &'static str,
    number: String,
    event: String,
    active: bool,
    /// `routes`, `inactive` or `workflow_draft`.
    state: &'static str,
    created_at: String,
}

struct ExecutionRow {
    id: String,
    status: String,
    trigger_type: String,
    test: bool,
    created_at: String,
}

/// The configure form of one message or event trigger: its number and event.
struct Configure {
    id: String,
    kind: &'static str,
    event_trigger: bool,
    number: String,
    numbers: Vec<Choice>,
    events: Vec<Choice>,
}

/// A refused change whose slot another trigger holds, with how to take its place.
struct Conflict {
    message: String,
    holder: Holder,
    /// The name of the holder's workflow (its id when it cannot be read).
    holder_workflow: String,
    /// The form that takes the slot: where it posts and the fields it sends again.
    action: String,
    fields: Vec<(String, String)>,
}

pub(super) async fn workflow(
    State(console): State<Console>,
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(filters): Query<Filters>,
) -> Response {
    render(
        &console,
        Chrome::of(&session),
        &id,
        &filters,
        None,
        StatusCode::OK,
    )
    .await
}

fn trigger_row(t: &TriggerView, workflow_active: bool) -> TriggerRow {
    let kind = TriggerType::parse(&t.trigger.trigger_type);
    TriggerRow {
        id: t.trigger.id.clone(),
        kind: kind.map_or("unknown", TriggerType::as_str),
        number: t.phone_number_id.clone().unwrap_or_default(),
        event: t.trigger.event_type.clone().unwrap_or_default(),
        active: t.trigger.active,
        state: match (t.trigger.active, workflow_active) {
            (false, _) => "inactive",
            (true, false) => "workflow_draft",
            (true, true) => "routes",
        },
        created_at: views::time(t.trigger.created_at),
    }
}

/// The JSON a "replace all" starts from: the triggers as they are.
fn replace_json(triggers: &[TriggerView]) -> String {
    let specs: Vec<serde_json::Value> = triggers
        .iter()
        .map(|t| {
            serde_json::json!({
                "type": t.trigger.trigger_type,
                "phone_number_id": t.phone_number_id,
                "event": t.trigger.event_type,
                "active": t.trigger.active,
            })
        })
        .collect();
    serde_json::to_string_pretty(&specs).unwrap_or_else(|_| "[]".to_owned())
}

async fn render(
    console: &Console,
    chrome: Chrome,
    id: &str,
    filters: &Filters,
    mut conflict: Option<Conflict>,
    status: StatusCode,
) -> Response {
    if let Some(c) = &mut conflict
        && let Ok(w) = console.catalog.get_workflow(&c.holder.workflow_id).await
    {
        c.holder_workflow = w.name;
    }
    let page_no = filters.page.unwrap_or(0);
    let query = TriggerQuery {
        workflow_id: id.to_owned(),
        trigger_type: filters.kind.as_deref().and_then(TriggerType::parse),
        active: match filters.state.as_deref() {
            Some("active") => Some(true),
            Some("inactive") => Some(false),
            _ => None,
        },
        phone_number_id: filters.number.clone().filter(|n| !n.is_empty()),
        window: Window {
            offset: page_no * PAGE,
            limit: PAGE,
        },
    };
    let catalog = &console.catalog;
    let loaded = async {
        let workflow = catalog.get_workflow(id).await?;
        let project = catalog.get_project(&workflow.project_id).await?;
        let triggers = catalog.trigger_page(&query).await?;
        let has_api = catalog
            .has_trigger(&workflow.id, TriggerType::ApiCall)
            .await?;
        let numbers = catalog
            .first_numbers(&project.id, LISTED_NUMBERS + 1)
            .await?;
        let nodes = catalog.list_nodes().await?;
        let configured = match filters.configure.as_deref() {
            Some(id) => Some(catalog.get_trigger(id).await?),
            None => None,
        };
        Ok::<_, catalog::Error>((
            workflow, project, triggers, has_api, numbers, nodes, configured,
        ))
    };
    let (workflow, project, triggers, has_api, numbers, nodes, configured) = match loaded.await {
        Ok(loaded) => loaded,
        Err(err) => return Failure::from(err).render(chrome),
    };
    let active = workflow.status == "active";
    let many_numbers = numbers.len() as u64 > LISTED_NUMBERS;
    let numbers = if many_numbers { Vec::new() } else { numbers };
    let configure = configured
        .filter(|t| t.trigger.workflow_id == workflow.id)
        .map(|t| {
            let kind = TriggerType::parse(&t.trigger.trigger_type);
            let event_trigger = kind == Some(TriggerType::WhatsappEvent);
            let number = t.phone_number_id.clone().unwrap_or_default();
            let any = if event_trigger {
                "every number"
            } else {
                "pick a number"
            };
            Configure {
                id: t.trigger.id.clone(),
                kind: kind.map_or("unknown", TriggerType::as_str),
                event_trigger,
                numbers: views::choices(
                    any,
                    numbers
                        .iter()
                        .map(|n| (n.phone_number_id.as_str(), n.phone_number_id.as_str())),
                    &number,
                ),
                events: views::choices(
                    "pick an event",
                    EventType::ALL.iter().map(|e| (e.as_str(), e.as_str())),
                    t.trigger.event_type.as_deref().unwrap_or_default(),
                ),
                number,
            }
        });
    // "Replace all" starts from the triggers when this page holds all of them.
    let unfiltered = filters.kind.is_none() && filters.state.is_none() && filters.number.is_none();
    let whole = unfiltered && page_no == 0 && triggers.total <= PAGE;
    let http = super::dataplane::pick(&nodes).map(|n| format!("http://{}", n.address));
    let curl = has_api.then(|| curl(&workflow, http.as_deref()));
    let executions = match console
        .nodes
        .executions(&project.id, &workflow.id, RECENT_EXECUTIONS, None)
        .await
    {
        Ok(list) => Ok(list
            .executions
            .into_iter()
            .map(|e| ExecutionRow {
                id: e.id,
                status: e.status,
                trigger_type: e.trigger_type,
                test: e.test,
                created_at: e.created_at,
            })
            .collect()),
        Err(err) => Err(err.to_string()),
    };
    let shown = triggers.items.len() as u64;
    page(
        status,
        &WorkflowPage {
            workflow: Link::new(&workflow.id, &workflow.name),
            project: Link::new(&project.id, &project.name),
            active,
            triggers: triggers
                .items
                .iter()
                .map(|t| trigger_row(t, active))
                .collect(),
            total: triggers.total,
            newer: (page_no > 0).then(|| filters.href(page_no - 1)),
            older: (page_no * PAGE + shown < triggers.total).then(|| filters.href(page_no + 1)),
            type_filter: views::choices(
                "any type",
                TriggerType::ALL.iter().map(|t| (t.as_str(), t.as_str())),
                filters.kind.as_deref().unwrap_or_default(),
            ),
            state_filter: views::choices(
                "any state",
                [("active", "active"), ("inactive", "inactive")],
                filters.state.as_deref().unwrap_or_default(),
            ),
            number_filter: views::choices(
                "any number",
                numbers
                    .iter()
                    .map(|n| (n.phone_number_id.as_str(), n.phone_number_id.as_str())),
                filters.number.as_deref().unwrap_or_default(),
            ),
            numbers: numbers.iter().map(|n| n.phone_number_id.clone()).collect(),
            many_numbers,
            number: filters.number.clone().unwrap_or_default(),
            events: EventType::ALL.iter().map(|e| e.as_str()).collect(),
            trigger_types: TriggerType::ALL.iter().map(|t| t.as_str()).collect(),
            replace_json: if whole {
                replace_json(&triggers.items)
            } else {
                String::new()
            },
            conflict,
            configure,
            curl,
            executions,
            chrome,
        },
    )
}

/// A ready-to-paste start of the workflow through its API trigger.
fn curl(workflow: &workflow::Model, data_plane: Option<&str>) -> String {
    let base = data_plane.unwrap_or("http://DATA_PLANE_HOST:8081");
    format!(
        "curl -s -X POST {base}/platform/v1/workflows/{}/executions \\\n  \
         -H \"Authorization: Bearer $API_KEY\" -H 'Content-Type: application/json' \\\n  \
         -d '{{\"workflow_execution\": {{\"phone_number\": \"+15550001111\", \"variables\": {{}}}}}}'",
        workflow.id
    )
}

/// Every field of the workflow page's forms.
#[derive(Deserialize)]
pub(super) struct WorkflowForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    phone_number_id: Option<String>,
    event_type: Option<String>,
    active: Option<String>,
    /// The trigger whose slot a new trigger takes (the conflict's offer).
    replacing: Option<String>,
    /// Replace all: the JSON array of specs.
    triggers: Option<String>,
    /// Flow Test.
    trigger_type: Option<String>,
    body: Option<String>,
    conversation_id: Option<String>,
    message: Option<String>,
}

fn present(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A spec from a replace-all file entry (the CLI's format).
#[derive(Deserialize)]
struct FileSpec {
    #[serde(rename = "type")]
    kind: String,
    phone_number_id: Option<String>,
    event: Option<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

/// `POST /console/workflows/{id}/{status|triggers|replace|test|delete}`.
pub(super) async fn change_workflow(
    State(console): State<Console>,
    Path((id, action)): Path<(String, String)>,
    Checked(session, form): Checked<WorkflowForm>,
) -> Response {
    let chrome = Chrome::of(&session);
    let catalog = &console.catalog;
    let back = format!("/console/workflows/{id}");
    let result: Result<String, (Failure, Option<Conflict>)> = match action.as_str() {
        "status" => {
            let status = present(&form.status).unwrap_or_default();
            catalog
                .set_workflow_status(&actor(), &id, &status)
                .await
                .map(|_| back.clone())
                .map_err(|e| (Failure::from(e), None))
        }
        "triggers" => {
            let spec = TriggerSpec {
                trigger_type: present(&form.kind).unwrap_or_default(),
                phone_number_id: present(&form.phone_number_id),
                event_type: present(&form.event_type),
                active: form.active.is_some(),
            };
            let created = match present(&form.replacing) {
                Some(holder) => {
                    catalog
                        .create_trigger_replacing(&actor(), &id, &spec, &holder)
                        .await
                }
                None => catalog.create_trigger(&actor(), &id, &spec).await,
            };
            created.map(|_| back.clone()).map_err(|err| {
                let offer = |holder: &Holder| {
                    let mut fields = vec![
                        ("type".to_owned(), spec.trigger_type.clone()),
                        ("active".to_owned(), "on".to_owned()),
                        ("replacing".to_owned(), holder.trigger_id.clone()),
                    ];
                    fields.extend(
                        spec.phone_number_id
                            .clone()
                            .map(|p| ("phone_number_id".to_owned(), p)),
                    );
                    fields.extend(
                        spec.event_type
                            .clone()
                            .map(|e| ("event_type".to_owned(), e)),
                    );
                    (format!("/console/workflows/{id}/triggers"), fields)
                };
                // An api_call slot is the workflow's own, active or not: nothing to take.
                if TriggerType::parse(&spec.trigger_type) == Some(TriggerType::ApiCall) {
                    (Failure::from(err), None)
                } else {
                    conflict(err, offer)
                }
            })
        }
        "replace" => {
            let raw = present(&form.triggers).unwrap_or_else(|| "[]".to_owned());
            match serde_json::from_str::<Vec<FileSpec>>(&raw) {
                Err(e) => Err((
                    Failure::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "triggers: not a JSON array of {{\"type\", \"phone_number_id\", \"event\", \"active\"}}: {e}"
                        ),
                    ),
                    None,
                )),
                Ok(specs) => {
                    let specs: Vec<TriggerSpec> = specs
                        .into_iter()
                        .map(|s| TriggerSpec {
                            trigger_type: s.kind,
                            phone_number_id: s.phone_number_id,
                            event_type: s.event,
                            active: s.active,
                        })
                        .collect();
                    catalog
                        .replace_triggers(&actor(), &id, &specs)
                        .await
                        .map(|_| back.clone())
                        .map_err(|e| (Failure::from(e), None))
                }
            }
        }
        "test" => flow_test(&console, &id, &form).await.map_err(|f| (f, None)),
        "delete" => match catalog.get_workflow(&id).await {
            Ok(w) => catalog
                .delete_workflow(&actor(), &id)
                .await
                .map(|()| format!("/console/projects/{}", w.project_id))
                .map_err(|e| (Failure::from(e), None)),
            Err(e) => Err((Failure::from(e), None)),
        },
        _ => Err((
            Failure::new(StatusCode::NOT_FOUND, "There is no such console page."),
            None,
        )),
    };
    match result {
        Ok(to) => Redirect::to(&to).into_response(),
        Err((failure, _)) if failure.status == StatusCode::NOT_FOUND => failure.render(chrome),
        Err((failure, conflict)) => {
            let chrome = refused(chrome, &failure, &conflict);
            render(
                &console,
                chrome,
                &id,
                &Filters::default(),
                conflict,
                failure.status,
            )
            .await
        }
    }
}

/// The page's notice of a refusal: a conflict has its own card, anything else is the notice.
fn refused(chrome: Chrome, failure: &Failure, conflict: &Option<Conflict>) -> Chrome {
    match conflict {
        Some(_) => chrome,
        None => chrome.with("error", failure.message.clone()),
    }
}

/// A refusal, with the offer to take the slot when another trigger holds it.
fn conflict(
    err: catalog::Error,
    offer: impl FnOnce(&Holder) -> (String, Vec<(String, String)>),
) -> (Failure, Option<Conflict>) {
    let conflict = match &err {
        catalog::Error::SlotTaken { holder, .. } => {
            let (action, fields) = offer(holder);
            Some(Conflict {
                message: err.to_string(),
                holder_workflow: holder.workflow_id.clone(),
                holder: holder.clone(),
                action,
                fields,
            })
        }
        _ => None,
    };
    (Failure::from(err), conflict)
}

/// Runs a test of the workflow on a data plane; where to watch its execution.
async fn flow_test(console: &Console, id: &str, form: &WorkflowForm) -> Result<String, Failure> {
    let workflow = console.catalog.get_workflow(id).await?;
    let invalid = |m: &str| Failure::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let kind = present(&form.trigger_type)
        .and_then(|t| TriggerType::parse(&t))
        .ok_or_else(|| invalid("trigger_type: pick what to test"))?;
    let request = match kind {
        TriggerType::ApiCall => {
            let body = present(&form.body).unwrap_or_else(|| "{}".to_owned());
            let mut body: serde_json::Value = serde_json::from_str(&body)
                .map_err(|e| invalid(&format!("body: not JSON: {e}")))?;
            if !body.is_object() {
                return Err(invalid(
                    "body: must be a JSON object like {\"workflow_execution\": {…}}",
                ));
            }
            body["trigger_type"] = kind.as_str().into();
            body
        }
        TriggerType::InboundMessage => serde_json::json!({
            "trigger_type": kind.as_str(),
            "conversation_id": present(&form.conversation_id).unwrap_or_default(),
            "message": form.message.clone().unwrap_or_default(),
        }),
        TriggerType::WhatsappEvent => serde_json::json!({
            "trigger_type": kind.as_str(),
            "conversation_id": present(&form.conversation_id).unwrap_or_default(),
            "event_type": present(&form.event_type).unwrap_or_default(),
        }),
    };
    let started = console
        .nodes
        .start_test(&workflow.project_id, &workflow.id, request.to_string())
        .await
        .map_err(|err| {
            let mut failure = Failure::from(err);
            if failure.status == StatusCode::NOT_FOUND {
                // The node's "not found" is about what the test names (a conversation).
                failure.status = StatusCode::UNPROCESSABLE_ENTITY;
            }
            failure
        })?;
    Ok(format!(
        "/console/executions/{}?project={}",
        started.tracking_id, workflow.project_id
    ))
}

#[derive(Deserialize)]
pub(super) struct TriggerForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    /// Take-over: the trigger that holds the slot.
    holder: Option<String>,
    /// Configure: the trigger's number and event.
    phone_number_id: Option<String>,
    event_type: Option<String>,
}

/// `POST /console/triggers/{id}/{activate|deactivate|configure|delete|take-over}`.
pub(super) async fn change_trigger(
    State(console): State<Console>,
    Path((id, action)): Path<(String, String)>,
    Checked(session, form): Checked<TriggerForm>,
) -> Response {
    let chrome = Chrome::of(&session);
    let catalog = &console.catalog;
    let trigger = match catalog.get_trigger(&id).await {
        Ok(t) => t,
        Err(err) => return Failure::from(err).render(chrome),
    };
    let workflow_id = trigger.trigger.workflow_id.clone();
    let result = match action.as_str() {
        "activate" => catalog
            .set_trigger_active(&actor(), &id, true)
            .await
            .map(drop),
        "deactivate" => catalog
            .set_trigger_active(&actor(), &id, false)
            .await
            .map(drop),
        "delete" => catalog.delete_trigger(&actor(), &id).await,
        "configure" => catalog
            .configure_trigger(
                &actor(),
                &id,
                present(&form.phone_number_id).as_deref(),
                present(&form.event_type).as_deref(),
            )
            .await
            .map(drop),
        "take-over" => match present(&form.holder) {
            Some(holder) => catalog
                .activate_replacing(&actor(), &id, &holder)
                .await
                .map(drop),
            None => Err(catalog::Error::invalid(
                "holder",
                "name the trigger to replace",
            )),
        },
        _ => {
            return Failure::new(StatusCode::NOT_FOUND, "There is no such console page.")
                .render(chrome);
        }
    };
    match result {
        Ok(()) => Redirect::to(&format!("/console/workflows/{workflow_id}")).into_response(),
        Err(err) => {
            let (failure, conflict) = conflict(err, |holder| {
                (
                    format!("/console/triggers/{id}/take-over"),
                    vec![("holder".to_owned(), holder.trigger_id.clone())],
                )
            });
            let chrome = refused(chrome, &failure, &conflict);
            render(
                &console,
                chrome,
                &workflow_id,
                &Filters::default(),
                conflict,
                failure.status,
            )
            .await
        }
    }
}

impl super::Csrf for WorkflowForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl super::Csrf for TriggerForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
