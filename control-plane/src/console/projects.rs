//! The overview (projects, nodes at a glance) and a project's page: its workflows, numbers,
//! customers, API keys and recent audit, with the forms that create and remove them.

use super::views::{self, Chrome, Link};
use super::{Authenticated, Checked, Console, CsrfForm, Failure, actor, page};
use crate::catalog::{self, NewNumber, Window};
use crate::db::{api_key, customer, whatsapp_config, workflow};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    projects: Vec<ProjectRow>,
    nodes: NodesSummary,
}

struct ProjectRow {
    id: String,
    name: String,
    created_at: String,
}

/// Nodes at a glance.
struct NodesSummary {
    total: usize,
    connected: usize,
    behind: usize,
    failing: usize,
}

pub(super) async fn overview(
    State(console): State<Console>,
    Authenticated(session): Authenticated,
) -> Response {
    render_overview(&console, Chrome::of(&session), StatusCode::OK).await
}

async fn render_overview(console: &Console, chrome: Chrome, status: StatusCode) -> Response {
    let loaded = async {
        let projects = console.catalog.list_projects().await?;
        let nodes = console.catalog.list_nodes().await?;
        let latest = console.catalog.routing_version().await?;
        Ok::<_, catalog::Error>((projects, nodes, latest))
    };
    match loaded.await {
        Ok((projects, nodes, latest)) => page(
            status,
            &OverviewPage {
                projects: projects
                    .into_iter()
                    .map(|p| ProjectRow {
                        created_at: views::time(p.created_at),
                        id: p.id,
                        name: p.name,
                    })
                    .collect(),
                nodes: NodesSummary {
                    total: nodes.len(),
                    connected: nodes.iter().filter(|n| n.connected).count(),
                    behind: nodes
                        .iter()
                        .filter(|n| n.connected && n.applied_version < latest)
                        .count(),
                    failing: nodes.iter().filter(|n| n.last_error.is_some()).count(),
                },
                chrome,
            },
        ),
        Err(err) => Failure::from(err).render(chrome),
    }
}

#[derive(Deserialize)]
pub(super) struct NameForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    name: String,
}

pub(super) async fn create_project(
    State(console): State<Console>,
    Checked(session, form): Checked<NameForm>,
) -> Response {
    match console.catalog.create_project(&actor(), &form.name).await {
        Ok(project) => Redirect::to(&format!("/console/projects/{}", project.id)).into_response(),
        Err(err) => {
            let failure = Failure::from(err);
            let chrome = Chrome::of(&session).with("error", failure.message.clone());
            render_overview(&console, chrome, failure.status).await
        }
    }
}

#[derive(Template)]
#[template(path = "console/project.html")]
struct ProjectPage {
    chrome: Chrome,
    project: Link,
    workflows: Vec<WorkflowRow>,
    workflow_total: u64,
    workflows_newer: Option<String>,
    workflows_older: Option<String>,
    numbers: Vec<NumberRow>,
    number_total: u64,
    numbers_newer: Option<String>,
    numbers_older: Option<String>,
    page_size: u64,
    customers: Vec<Link>,
    keys: Vec<KeyRow>,
    audit: Vec<views::AuditRow>,
}

struct WorkflowRow {
    id: String,
    name: String,
    active: bool,
}

struct NumberRow {
    config_id: i64,
    phone_number_id: String,
    display_phone_number: String,
    is_default: bool,
    has_access_token: bool,
    customer: String,
}

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    burst_limit: String,
    revoked: bool,
    created_at: String,
}

/// Audit events on a project's page.
const RECENT_AUDIT: u32 = 10;
/// Workflows and numbers shown per page.
const PAGE: u64 = 50;

/// Which page of each list a project's page shows, as it stands in the URL.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub(super) struct Pages {
    #[serde(default)]
    workflows: u64,
    #[serde(default)]
    numbers: u64,
}

impl Pages {
    fn href(self) -> String {
        format!("?workflows={}&numbers={}", self.workflows, self.numbers)
    }

    fn window(page: u64) -> Window {
        Window {
            offset: page * PAGE,
            limit: PAGE,
        }
    }
}

pub(super) async fn project(
    State(console): State<Console>,
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(pages): Query<Pages>,
) -> Response {
    render_project(&console, Chrome::of(&session), &id, pages, StatusCode::OK).await
}

async fn render_project(
    console: &Console,
    chrome: Chrome,
    id: &str,
    pages: Pages,
    status: StatusCode,
) -> Response {
    let loaded = async {
        let project = console.catalog.get_project(id).await?;
        let workflows = console
            .catalog
            .workflows_page(&project.id, Pages::window(pages.workflows))
            .await?;
        let numbers = console
            .catalog
            .numbers_page(&project.id, Pages::window(pages.numbers))
            .await?;
        let customers = console.catalog.list_customers(&project.id).await?;
        let keys = console.catalog.list_api_keys(&project.id).await?;
        let audit = console
            .catalog
            .list_audit(Some(&project.id), None, Some(RECENT_AUDIT))
            .await?;
        Ok::<_, catalog::Error>((project, workflows, numbers, customers, keys, audit))
    };
    let (project, workflows, numbers, customers, keys, audit) = match loaded.await {
        Ok(loaded) => loaded,
        Err(err) => return Failure::from(err).render(chrome),
    };
    let names = [(project.id.as_str(), project.name.as_str())]
        .into_iter()
        .collect();
    let customer_name = |id: &Option<String>| {
        id.as_ref()
            .and_then(|id| customers.iter().find(|c| &c.id == id))
            .map(|c| c.name.clone())
            .unwrap_or_default()
    };
    // The links to the neighbouring pages of each list.
    let newer =
        |page: u64, with: fn(Pages, u64) -> Pages| (page > 0).then(|| with(pages, page - 1).href());
    let older = |page: u64, total: u64, with: fn(Pages, u64) -> Pages| {
        ((page + 1) * PAGE < total).then(|| with(pages, page + 1).href())
    };
    let at_workflows = |p: Pages, n| Pages { workflows: n, ..p };
    let at_numbers = |p: Pages, n| Pages { numbers: n, ..p };
    page(
        status,
        &ProjectPage {
            workflows: workflows.items.iter().map(workflow_row).collect(),
            workflow_total: workflows.total,
            workflows_newer: newer(pages.workflows, at_workflows),
            workflows_older: older(pages.workflows, workflows.total, at_workflows),
            numbers: numbers
                .items
                .iter()
                .map(|n| number_row(n, customer_name(&n.customer_id)))
                .collect(),
            number_total: numbers.total,
            numbers_newer: newer(pages.numbers, at_numbers),
            numbers_older: older(pages.numbers, numbers.total, at_numbers),
            page_size: PAGE,
            customers: customers
                .iter()
                .map(|c: &customer::Model| Link::new(&c.id, &c.name))
                .collect(),
            keys: keys.iter().map(key_row).collect(),
            audit: audit
                .iter()
                .map(|e| views::AuditRow::of(e, &names))
                .collect(),
            project: Link::new(&project.id, &project.name),
            chrome,
        },
    )
}

fn workflow_row(w: &workflow::Model) -> WorkflowRow {
    WorkflowRow {
        id: w.id.clone(),
        name: w.name.clone(),
        active: w.status == "active",
    }
}

fn number_row(n: &whatsapp_config::Model, customer: String) -> NumberRow {
    NumberRow {
        config_id: n.id,
        phone_number_id: n.phone_number_id.clone(),
        display_phone_number: n.display_phone_number.clone(),
        is_default: n.is_default,
        has_access_token: n.access_token.is_some(),
        customer,
    }
}

fn key_row(k: &api_key::Model) -> KeyRow {
    KeyRow {
        id: k.id.clone(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        burst_limit: k
            .burst_limit
            .map_or_else(|| "none".to_owned(), |b| format!("{b}/s")),
        revoked: k.revoked_at.is_some(),
        created_at: views::time(k.created_at),
    }
}

/// Every field any of a project's creation forms has.
#[derive(Deserialize)]
pub(super) struct CreateForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    name: String,
    status: Option<String>,
    phone_number_id: Option<String>,
    display_phone_number: Option<String>,
    customer_id: Option<String>,
    is_default: Option<String>,
    access_token: Option<String>,
    burst_limit: Option<String>,
}

#[derive(Template)]
#[template(path = "console/secret.html")]
struct SecretPage {
    chrome: Chrome,
    project: Link,
    key_name: String,
    secret: String,
}

/// `POST /console/projects/{id}/{workflows|numbers|customers|api-keys}`.
pub(super) async fn create_in_project(
    State(console): State<Console>,
    Path((id, what)): Path<(String, String)>,
    Checked(session, form): Checked<CreateForm>,
) -> Response {
    let chrome = Chrome::of(&session);
    let catalog = &console.catalog;
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let done: Result<String, Failure> = match what.as_str() {
        "workflows" => {
            let status = text(&form.status).unwrap_or_else(|| "draft".to_owned());
            catalog
                .create_workflow(&actor(), &id, &form.name, &status)
                .await
                .map(|w| format!("/console/workflows/{}", w.id))
                .map_err(Failure::from)
        }
        "numbers" => {
            let new = NewNumber {
                project_id: id.clone(),
                customer_id: text(&form.customer_id),
                phone_number_id: text(&form.phone_number_id).unwrap_or_default(),
                display_phone_number: text(&form.display_phone_number).unwrap_or_default(),
                is_default: form.is_default.is_some(),
                access_token: text(&form.access_token),
            };
            catalog
                .create_number(&actor(), new)
                .await
                .map(|_| format!("/console/projects/{id}"))
                .map_err(Failure::from)
        }
        "customers" => catalog
            .create_customer(&actor(), &id, &form.name)
            .await
            .map(|_| format!("/console/projects/{id}"))
            .map_err(Failure::from),
        "api-keys" => {
            let burst = match text(&form.burst_limit).map(|b| b.parse::<u32>()) {
                None => Ok(None),
                Some(Ok(b)) => Ok(Some(b)),
                Some(Err(_)) => Err(Failure::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "burst_limit: must be a whole number of requests per second",
                )),
            };
            match burst {
                Err(failure) => Err(failure),
                Ok(burst) => match catalog
                    .create_api_key(&actor(), &id, &form.name, burst)
                    .await
                {
                    // The secret is shown once, on this answer only (never stored, never cached).
                    Ok((key, secret)) => {
                        let project = match catalog.get_project(&id).await {
                            Ok(p) => Link::new(&p.id, &p.name),
                            Err(err) => return Failure::from(err).render(chrome),
                        };
                        return page(
                            StatusCode::OK,
                            &SecretPage {
                                chrome,
                                project,
                                key_name: key.name,
                                secret,
                            },
                        );
                    }
                    Err(err) => Err(Failure::from(err)),
                },
            }
        }
        _ => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "There is no such console page.",
        )),
    };
    match done {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(failure) if failure.status == StatusCode::NOT_FOUND => failure.render(chrome),
        Err(failure) => {
            let chrome = chrome.with("error", failure.message.clone());
            render_project(&console, chrome, &id, Pages::default(), failure.status).await
        }
    }
}

/// The project of a number, to go back to after changing it.
async fn project_of_number(console: &Console, config_id: i64) -> Option<String> {
    let catalog = &console.catalog;
    let number = catalog
        .number_by_config_id(catalog.connection(), "config_id", config_id)
        .await
        .ok()?;
    Some(number.project_id)
}

pub(super) async fn delete_number(
    State(console): State<Console>,
    Path(id): Path<String>,
    Checked(session, _): Checked<CsrfForm>,
) -> Response {
    let chrome = Chrome::of(&session);
    let Ok(config_id) = id.parse::<i64>() else {
        return Failure::new(StatusCode::NOT_FOUND, "number not found").render(chrome);
    };
    let project = project_of_number(&console, config_id).await;
    match console.catalog.delete_number(&actor(), config_id).await {
        Ok(()) => Redirect::to(&project.map_or_else(
            || "/console/".to_owned(),
            |p| format!("/console/projects/{p}"),
        ))
        .into_response(),
        Err(err) => {
            let failure = Failure::from(err);
            match project {
                Some(p) => {
                    let chrome = chrome.with("error", failure.message.clone());
                    render_project(&console, chrome, &p, Pages::default(), failure.status).await
                }
                None => failure.render(chrome),
            }
        }
    }
}

pub(super) async fn revoke_key(
    State(console): State<Console>,
    Path(id): Path<String>,
    Checked(session, _): Checked<CsrfForm>,
) -> Response {
    match console.catalog.revoke_api_key(&actor(), &id).await {
        Ok(key) => Redirect::to(&format!("/console/projects/{}", key.project_id)).into_response(),
        Err(err) => Failure::from(err).render(Chrome::of(&session)),
    }
}

impl super::Csrf for NameForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl super::Csrf for CreateForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
