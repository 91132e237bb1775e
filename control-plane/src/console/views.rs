//! What the console's templates show, computed once per row: texts, badges and links, so the
//! templates hold no logic but loops and conditions.

use super::session::Session;
use crate::db::{audit_event, dataplane_node};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// The parts of every page around its content.
#[derive(Clone, Debug)]
pub struct Chrome {
    /// Empty when nobody is logged in (the page shows no navigation).
    pub csrf: String,
    /// A message at the top of the page.
    pub notice: Option<Notice>,
}

#[derive(Clone, Debug)]
pub struct Notice {
    /// `ok`, `error` or `secret` (the CSS class).
    pub kind: &'static str,
    pub text: String,
}

impl Chrome {
    pub fn of(session: &Session) -> Self {
        Self {
            csrf: session.csrf.clone(),
            notice: None,
        }
    }

    pub fn anonymous() -> Self {
        Self {
            csrf: String::new(),
            notice: None,
        }
    }

    pub fn with(mut self, kind: &'static str, text: impl Into<String>) -> Self {
        self.notice = Some(Notice {
            kind,
            text: text.into(),
        });
        self
    }

    pub fn logged_in(&self) -> bool {
        !self.csrf.is_empty()
    }
}

/// An entity to link to: its id and its name.
#[derive(Clone, Debug)]
pub struct Link {
    pub id: String,
    pub name: String,
}

impl Link {
    pub fn new(id: &str, name: &str) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// A time as the console shows it: UTC to the second.
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How long ago, roughly.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86400 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86400),
    }
}

/// JSON, indented, for a `<pre>` (the template escapes it).
pub fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| json.to_owned())
}

/// A data-plane node.
#[derive(Clone, Debug)]
pub struct NodeRow {
    pub node_id: String,
    pub address: String,
    pub grpc_address: String,
    pub build_version: String,
    pub applied: i64,
    pub lag: i64,
    pub last_seen: String,
    pub connected: bool,
    pub last_error: String,
}

impl NodeRow {
    pub fn of(n: &dataplane_node::Model, latest: i64) -> Self {
        Self {
            node_id: n.node_id.clone(),
            address: n.address.clone(),
            grpc_address: n.grpc_address.clone(),
            build_version: n.build_version.clone(),
            applied: n.applied_version,
            lag: (latest - n.applied_version).max(0),
            last_seen: ago(n.last_seen, Utc::now()),
            connected: n.connected,
            last_error: n.last_error.clone().unwrap_or_default(),
        }
    }
}

/// An audit event.
#[derive(Clone, Debug)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    /// Where the entity's page is, when it has one.
    pub entity_href: Option<String>,
    pub project: Option<Link>,
    pub before: String,
    pub after: String,
}

impl AuditRow {
    pub fn of(e: &audit_event::Model, projects: &HashMap<&str, &str>) -> Self {
        let entity_href = match e.entity.as_str() {
            "project" => Some(format!("/console/projects/{}", e.entity_id)),
            "workflow" => Some(format!("/console/workflows/{}", e.entity_id)),
            "trigger" => workflow_of(&e.after_json)
                .or_else(|| workflow_of(&e.before_json))
                .map(|w| format!("/console/workflows/{w}")),
            _ => None,
        };
        Self {
            at: time(e.occurred_at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            entity: e.entity.clone(),
            entity_id: e.entity_id.clone(),
            entity_href,
            project: e
                .project_id
                .as_deref()
                .map(|id| Link::new(id, projects.get(id).copied().unwrap_or(id))),
            before: pretty(&e.before_json),
            after: pretty(&e.after_json),
        }
    }
}

/// The `workflow_id` of a trigger's audit JSON.
fn workflow_of(json: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value["workflow_id"].as_str().map(str::to_owned)
}

/// An option of a `<select>`.
#[derive(Clone, Debug)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// The options `(value, label)` with `selected` chosen; an empty value first (`any`).
pub fn choices<'a>(
    any: &'a str,
    options: impl IntoIterator<Item = (&'a str, &'a str)>,
    selected: &str,
) -> Vec<Choice> {
    std::iter::once(("", any))
        .chain(options)
        .map(|(value, label)| Choice {
            value: value.to_owned(),
            label: label.to_owned(),
            selected: value == selected,
        })
        .collect()
}
