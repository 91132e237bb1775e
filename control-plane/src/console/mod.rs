//! The operator web console (DESIGN §11) on the control plane's HTTP port: server-rendered
//! pages (askama templates in `templates/console/`, HTML-escaped), plain forms that work
//! without script, one small script and stylesheet embedded in the binary.
//!
//! Every change goes through the same catalog operations as `TriggerAdmin` — rules,
//! conflicts, audit (actor `console`) — and executions, conversations and test runs through
//! a connected data plane ([`dataplane`]). Login and forms are guarded by [`session`];
//! every answer carries a CSP without inline script, `frame-ancestors 'none'` and
//! `Cache-Control: no-store`.
//!
//! Pages: [`projects`] (overview, a project), [`workflows`] (a workflow, its triggers, the
//! Flow Test), [`records`] (an execution, a conversation), and here the login, the nodes
//! and the audit log.

pub mod dataplane;
mod projects;
mod records;
pub mod session;
mod views;
mod workflows;

use crate::catalog::{self, Actor, Catalog};
use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use dataplane::DataPlanes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use session::{Key, LOGIN_COOKIE, SESSION_COOKIE, SESSION_SECONDS, Session};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use views::Chrome;

/// Everything the console's handlers share.
#[derive(Clone)]
pub struct Console {
    catalog: Catalog,
    key: Key,
    admin_token: Arc<str>,
    nodes: DataPlanes,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

/// The actor of console changes in the audit log.
fn actor() -> Actor {
    Actor("console".to_owned())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Console {
    pub fn new(catalog: Catalog, admin_token: &str, node_token: &str) -> Self {
        Self {
            nodes: DataPlanes::new(catalog.clone(), node_token),
            catalog,
            key: Key::derive(admin_token),
            admin_token: admin_token.into(),
        }
    }
}

/// The console's routes (`/console/…`), with its security headers.
pub fn routes(console: Console) -> Router {
    Router::new()
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", get(logout_page).post(logout))
        .route("/console/", get(projects::overview))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/projects", post(projects::create_project))
        .route("/console/projects/{id}", get(projects::project))
        .route(
            "/console/projects/{id}/{what}",
            post(projects::create_in_project),
        )
        .route(
            "/console/numbers/{id}/delete",
            post(projects::delete_number),
        )
        .route("/console/api-keys/{id}/revoke", post(projects::revoke_key))
        .route("/console/workflows/{id}", get(workflows::workflow))
        .route(
            "/console/workflows/{id}/{action}",
            post(workflows::change_workflow),
        )
        .route(
            "/console/triggers/{id}/{action}",
            post(workflows::change_trigger),
        )
        .route("/console/executions/{id}", get(records::execution))
        .route("/console/conversations/{id}", get(records::conversation))
        .route("/console/nodes", get(nodes))
        .route("/console/audit", get(audit))
        .fallback(not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

/// Headers on every console answer: no inline script, no framing, nothing cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::CACHE_CONTROL, "no-store");
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../assets/console.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../assets/console.js"),
    )
}

/// A rendered page with `status`.
fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A handler's refusal: a page saying what went wrong and what to do.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form is stale or did not come from the console (CSRF check). Reload the \
             page and try again.",
        )
    }
}

impl From<catalog::Error> for Failure {
    fn from(err: catalog::Error) -> Self {
        let status = match &err {
            catalog::Error::InvalidArgument { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            catalog::Error::NotFound { .. } => StatusCode::NOT_FOUND,
            catalog::Error::Conflict(_) | catalog::Error::SlotTaken { .. } => StatusCode::CONFLICT,
            catalog::Error::FailedPrecondition(_) => StatusCode::CONFLICT,
            catalog::Error::Database(db) => {
                tracing::error!(error = %db, "catalog database error");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The catalog database is unavailable; try again in a moment.",
                );
            }
        };
        Self::new(status, err.to_string())
    }
}

impl From<dataplane::NodeError> for Failure {
    fn from(err: dataplane::NodeError) -> Self {
        let status = match &err {
            dataplane::NodeError::Refused(status) => match status.code() {
                tonic::Code::NotFound => StatusCode::NOT_FOUND,
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                _ => StatusCode::BAD_GATEWAY,
            },
            dataplane::NodeError::NoNode => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        Self::new(status, err.to_string())
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    chrome: Chrome,
    title: String,
    message: String,
}

impl Failure {
    fn render(self, chrome: Chrome) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        page(
            self.status,
            &MessagePage {
                chrome,
                title,
                message: self.message,
            },
        )
    }
}

/// A page request of a logged-in operator; without a session, the login page (which comes
/// back here).
pub(crate) struct Authenticated(pub Session);

impl FromRequestParts<Console> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        match Session::from_headers(&console.key, &parts.headers, now()) {
            Some(session) => Ok(Self(session)),
            None => {
                let here = parts
                    .uri
                    .path_and_query()
                    .map_or("/console/", |p| p.as_str());
                let next = urlencode(here);
                Err(Redirect::to(&format!("/console/login?next={next}")).into_response())
            }
        }
    }
}

/// A form that carries the session's CSRF token (`_csrf`).
pub(crate) trait Csrf {
    fn csrf(&self) -> &str;
}

/// A state-changing form of a logged-in operator, checked: the session's CSRF token and, when
/// the browser sends one, an `Origin` of this host; else 403 and nothing happens.
pub(crate) struct Checked<F>(pub Session, pub F);

impl<F> FromRequest<Console> for Checked<F>
where
    F: DeserializeOwned + Csrf + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, console: &Console) -> Result<Self, Response> {
        let headers = request.headers().clone();
        let Form(form) = Form::<F>::from_request(request, console)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(session) = Session::from_headers(&console.key, &headers, now()) else {
            return Err(Failure::forbidden().render(Chrome::anonymous()));
        };
        if !session.accepts(form.csrf()) || !session::same_origin(&headers) {
            tracing::warn!(
                session = session.id(),
                "console form refused: CSRF check failed"
            );
            return Err(Failure::forbidden().render(Chrome::of(&session)));
        }
        Ok(Self(session, form))
    }
}

fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Where to go after logging in: a console path, never elsewhere.
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with("/console/") && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/console/")
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn login_form(next: &str, error: Option<String>, status: StatusCode) -> Response {
    let csrf = hex::encode(rand::random::<[u8; 16]>());
    let mut response = page(
        status,
        &LoginPage {
            csrf: csrf.clone(),
            next: next.to_owned(),
            error,
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(LOGIN_COOKIE, &csrf, 3600),
    );
    response
}

async fn login_page(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if Session::from_headers(&console.key, &headers, now()).is_some() {
        return Redirect::to(next).into_response();
    }
    login_form(next, None, StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
    next: Option<String>,
}

async fn login(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let double_submit = session::cookie(&headers, LOGIN_COOKIE)
        .is_some_and(|c| !c.is_empty() && bool::from(c.as_bytes().ct_eq(form.csrf.as_bytes())));
    if !double_submit || !session::same_origin(&headers) {
        return Failure::forbidden().render(Chrome::anonymous());
    }
    let token = form.token.trim();
    if !bool::from(token.as_bytes().ct_eq(console.admin_token.as_bytes())) {
        let from = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::warn!(
            forwarded_for = from,
            "console login refused: wrong admin token"
        );
        return login_form(
            next,
            Some("That is not this control plane's admin token.".to_owned()),
            StatusCode::UNAUTHORIZED,
        );
    }
    let (session, cookie) = Session::start(&console.key, now());
    tracing::info!(session = session.id(), "console login");
    let mut response = Redirect::to(next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        session::set_cookie(SESSION_COOKIE, &cookie, SESSION_SECONDS),
    );
    headers.append(header::SET_COOKIE, session::set_cookie(LOGIN_COOKIE, "", 0));
    response
}

#[derive(Template)]
#[template(path = "console/logout.html")]
struct LogoutPage {
    chrome: Chrome,
}

async fn logout_page(Authenticated(session): Authenticated) -> Response {
    page(
        StatusCode::OK,
        &LogoutPage {
            chrome: Chrome::of(&session),
        },
    )
}

/// A form with nothing but its CSRF token (a button).
#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

impl Csrf for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn logout(Checked(_, _): Checked<CsrfForm>) -> Response {
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(SESSION_COOKIE, "", 0),
    );
    response
}

async fn not_found(State(console): State<Console>, headers: HeaderMap) -> Response {
    let chrome = Session::from_headers(&console.key, &headers, now())
        .map_or_else(Chrome::anonymous, |s| Chrome::of(&s));
    Failure::new(StatusCode::NOT_FOUND, "There is no such console page.").render(chrome)
}

#[derive(Template)]
#[template(path = "console/nodes.html")]
struct NodesPage {
    chrome: Chrome,
    nodes: Vec<views::NodeRow>,
    latest: i64,
}

async fn nodes(State(console): State<Console>, Authenticated(session): Authenticated) -> Response {
    let chrome = Chrome::of(&session);
    let loaded = async {
        let latest = console.catalog.routing_version().await?;
        let nodes = console.catalog.list_nodes().await?;
        Ok::<_, catalog::Error>((latest, nodes))
    };
    match loaded.await {
        Ok((latest, nodes)) => page(
            StatusCode::OK,
            &NodesPage {
                chrome,
                nodes: nodes
                    .iter()
                    .map(|n| views::NodeRow::of(n, latest))
                    .collect(),
                latest,
            },
        ),
        Err(err) => Failure::from(err).render(chrome),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    project: Option<String>,
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    projects: Vec<views::Choice>,
    project: String,
    events: Vec<views::AuditRow>,
    older: Option<String>,
}

/// Audit events shown per page.
const AUDIT_PAGE: u32 = 50;

async fn audit(
    State(console): State<Console>,
    Authenticated(session): Authenticated,
    Query(q): Query<AuditQuery>,
) -> Response {
    let chrome = Chrome::of(&session);
    let project = q.project.filter(|p| !p.is_empty());
    let before = q.before.filter(|b| !b.is_empty());
    let loaded = async {
        let projects = console.catalog.list_projects().await?;
        let events = console
            .catalog
            .list_audit(project.as_deref(), before.as_deref(), Some(AUDIT_PAGE))
            .await?;
        Ok::<_, catalog::Error>((projects, events))
    };
    match loaded.await {
        Ok((projects, events)) => {
            let older = (events.len() == AUDIT_PAGE as usize)
                .then(|| events.last().map(|e| e.id.clone()))
                .flatten();
            let names: std::collections::HashMap<&str, &str> = projects
                .iter()
                .map(|p| (p.id.as_str(), p.name.as_str()))
                .collect();
            page(
                StatusCode::OK,
                &AuditPage {
                    chrome,
                    events: events
                        .iter()
                        .map(|e| views::AuditRow::of(e, &names))
                        .collect(),
                    projects: views::choices(
                        "every project",
                        projects.iter().map(|p| (p.id.as_str(), p.name.as_str())),
                        project.as_deref().unwrap_or_default(),
                    ),
                    project: project.clone().unwrap_or_default(),
                    older,
                },
            )
        }
        Err(err) => Failure::from(err).render(chrome),
    }
}
