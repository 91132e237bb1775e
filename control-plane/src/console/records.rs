//! Records the data plane keeps, shown by the console: an execution (status, events
//! timeline, context) and a conversation. Read through a connected node for the project the
//! link names (`?project=`); without one, the page asks which project.

use super::views::{self, Chrome, Link};
use super::{Authenticated, Console, Failure, page};
use crate::catalog;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct ProjectQuery {
    project: Option<String>,
}

#[derive(Template)]
#[template(path = "console/pick_project.html")]
struct PickProject {
    chrome: Chrome,
    what: &'static str,
    path: String,
    projects: Vec<Link>,
}

/// The page asking which project a record belongs to.
async fn pick_project(
    console: &Console,
    chrome: Chrome,
    what: &'static str,
    path: String,
) -> Response {
    match console.catalog.list_projects().await {
        Ok(projects) => page(
            StatusCode::OK,
            &PickProject {
                chrome,
                what,
                path,
                projects: projects.iter().map(|p| Link::new(&p.id, &p.name)).collect(),
            },
        ),
        Err(err) => Failure::from(err).render(chrome),
    }
}

#[derive(Template)]
#[template(path = "console/execution.html")]
struct ExecutionPage {
    chrome: Chrome,
    project: Link,
    workflow: Link,
    id: String,
    status: String,
    trigger_type: String,
    test: bool,
    observer_mode: bool,
    conversation_id: String,
    created_at: String,
    updated_at: String,
    events: Vec<EventRow>,
    context: String,
    /// Still moving: the page refreshes itself.
    live: bool,
}

struct EventRow {
    kind: String,
    at: String,
    detail: String,
}

/// An event as the timeline shows it: its type, its time, the rest.
fn event_row(json: &str) -> EventRow {
    let mut value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let kind = value["type"].as_str().unwrap_or("event").to_owned();
    let at = value["at"]
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("type");
        map.remove("at");
    }
    EventRow {
        kind,
        at,
        detail: serde_json::to_string(&value).unwrap_or_default(),
    }
}

pub(super) async fn execution(
    State(console): State<Console>,
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(q): Query<ProjectQuery>,
) -> Response {
    let path = format!("/console/executions/{id}");
    let chrome = Chrome::of(&session);
    let Some(project_id) = q.project.filter(|p| !p.is_empty()) else {
        return pick_project(&console, chrome, "execution", path).await;
    };
    let loaded = async {
        let project = console.catalog.get_project(&project_id).await?;
        let execution = console.nodes.execution(&project.id, &id).await?;
        let workflow = console.catalog.get_workflow(&execution.workflow_id).await;
        Ok::<_, Failure>((project, execution, workflow))
    };
    let (project, e, workflow) = match loaded.await {
        Ok(loaded) => loaded,
        Err(failure) => return failure.render(chrome),
    };
    let workflow = match workflow {
        Ok(w) => Link::new(&w.id, &w.name),
        // Deleted since: the execution outlives it.
        Err(catalog::Error::NotFound { .. }) => Link::new(&e.workflow_id, "(deleted workflow)"),
        Err(err) => return Failure::from(err).render(chrome),
    };
    let live = !matches!(e.status.as_str(), "ended" | "failed");
    page(
        StatusCode::OK,
        &ExecutionPage {
            project: Link::new(&project.id, &project.name),
            workflow,
            status: e.status,
            trigger_type: e.trigger_type,
            test: e.test,
            observer_mode: e.observer_mode,
            conversation_id: e.conversation_id.unwrap_or_default(),
            created_at: e.created_at,
            updated_at: e.updated_at,
            events: e.events_json.iter().map(|j| event_row(j)).collect(),
            context: views::pretty(&e.execution_context_json),
            id: e.id,
            live,
            chrome,
        },
    )
}

#[derive(Template)]
#[template(path = "console/conversation.html")]
struct ConversationPage {
    chrome: Chrome,
    project: Link,
    id: String,
    phone_number: String,
    phone_number_id: String,
    status: String,
    created_at: String,
    last_active_at: String,
    last_message: String,
    execution_id: String,
}

pub(super) async fn conversation(
    State(console): State<Console>,
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(q): Query<ProjectQuery>,
) -> Response {
    let path = format!("/console/conversations/{id}");
    let chrome = Chrome::of(&session);
    let Some(project_id) = q.project.filter(|p| !p.is_empty()) else {
        return pick_project(&console, chrome, "conversation", path).await;
    };
    let loaded = async {
        let project = console.catalog.get_project(&project_id).await?;
        let conversation = console.nodes.conversation(&project.id, &id).await?;
        Ok::<_, Failure>((project, conversation))
    };
    match loaded.await {
        Ok((project, c)) => page(
            StatusCode::OK,
            &ConversationPage {
                project: Link::new(&project.id, &project.name),
                id: c.id,
                phone_number: c.phone_number,
                phone_number_id: c.phone_number_id,
                status: c.status,
                created_at: c.created_at,
                last_active_at: c.last_active_at,
                last_message: c
                    .last_message_json
                    .map(|m| views::pretty(&m))
                    .unwrap_or_default(),
                execution_id: c.execution_id.unwrap_or_default(),
                chrome,
            },
        ),
        Err(failure) => failure.render(chrome),
    }
}
