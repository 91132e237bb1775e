//! Rendering of control-plane objects as aligned tables or JSON (ids always strings).

use serde_json::{Value, json};
use switchboard_proto::v1 as pb;

/// An object the CLI can print.
pub trait Show {
    const HEADERS: &'static [&'static str];
    fn json(&self) -> Value;
    fn row(&self) -> Vec<String>;
}

fn opt(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".to_owned())
}

impl Show for pb::Project {
    const HEADERS: &'static [&'static str] = &["ID", "NAME", "CREATED"];
    fn json(&self) -> Value {
        json!({ "id": self.id, "name": self.name, "created_at": self.created_at })
    }
    fn row(&self) -> Vec<String> {
        vec![self.id.clone(), self.name.clone(), self.created_at.clone()]
    }
}

impl Show for pb::Customer {
    const HEADERS: &'static [&'static str] = &["ID", "PROJECT", "NAME", "CREATED"];
    fn json(&self) -> Value {
        json!({ "id": self.id, "project_id": self.project_id, "name": self.name,
                "created_at": self.created_at })
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.project_id.clone(),
            self.name.clone(),
            self.created_at.clone(),
        ]
    }
}

impl Show for pb::WhatsappNumber {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "PHONE_NUMBER_ID",
        "DISPLAY",
        "DEFAULT",
        "CUSTOMER",
        "TOKEN",
    ];
    fn json(&self) -> Value {
        json!({
            "id": self.whatsapp_config_id.to_string(),
            "whatsapp_config_id": self.whatsapp_config_id.to_string(),
            "project_id": self.project_id,
            "customer_id": self.customer_id,
            "phone_number_id": self.phone_number_id,
            "display_phone_number": self.display_phone_number,
            "is_default": self.is_default,
            "has_access_token": self.has_access_token,
            "created_at": self.created_at,
        })
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.whatsapp_config_id.to_string(),
            self.phone_number_id.clone(),
            self.display_phone_number.clone(),
            self.is_default.to_string(),
            opt(&self.customer_id),
            if self.has_access_token { "set" } else { "-" }.to_owned(),
        ]
    }
}

impl Show for pb::Workflow {
    const HEADERS: &'static [&'static str] = &["ID", "NAME", "STATUS", "UPDATED"];
    fn json(&self) -> Value {
        json!({ "id": self.id, "project_id": self.project_id, "name": self.name,
                "status": self.status, "created_at": self.created_at,
                "updated_at": self.updated_at })
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.status.clone(),
            self.updated_at.clone(),
        ]
    }
}

impl Show for pb::Trigger {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "WORKFLOW",
        "TYPE",
        "EVENT",
        "PHONE_NUMBER_ID",
        "ACTIVE",
    ];
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "workflow_id": self.workflow_id,
            "project_id": self.project_id,
            "type": self.r#type,
            "event_type": self.event_type,
            "phone_number_id": self.phone_number_id,
            "whatsapp_config_id": self.whatsapp_config_id.map(|id| id.to_string()),
            "active": self.active,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.workflow_id.clone(),
            self.r#type.clone(),
            opt(&self.event_type),
            opt(&self.phone_number_id),
            self.active.to_string(),
        ]
    }
}

impl Show for pb::ApiKey {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "NAME",
        "PREFIX",
        "BURST_LIMIT",
        "REVOKED_AT",
        "CREATED",
    ];
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "prefix": self.prefix,
            "burst_limit": self.burst_limit,
            "revoked": self.revoked_at.is_some(),
            "revoked_at": self.revoked_at,
            "created_at": self.created_at,
        })
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.prefix.clone(),
            self.burst_limit
                .map_or_else(|| "-".to_owned(), |b| b.to_string()),
            opt(&self.revoked_at),
            self.created_at.clone(),
        ]
    }
}

impl Show for pb::AuditEvent {
    const HEADERS: &'static [&'static str] =
        &["TIME", "ACTOR", "ACTION", "ENTITY", "ENTITY_ID", "VERSION"];
    fn json(&self) -> Value {
        let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
        json!({
            "id": self.id,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "entity": self.entity,
            "entity_id": self.entity_id,
            "project_id": self.project_id,
            "before": parse(&self.before),
            "after": parse(&self.after),
            "routing_version": self.routing_version.map(|v| v.to_string()),
        })
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.time.clone(),
            self.actor.clone(),
            self.action.clone(),
            self.entity.clone(),
            self.entity_id.clone(),
            self.routing_version
                .map_or_else(|| "-".to_owned(), |v| v.to_string()),
        ]
    }
}

impl Show for pb::Node {
    const HEADERS: &'static [&'static str] = &[
        "NODE_ID",
        "ADDRESS",
        "GRPC_ADDRESS",
        "APPLIED",
        "LATEST",
        "LAST_SEEN",
        "CONNECTED",
        "LAST_ERROR",
    ];
    fn json(&self) -> Value {
        json!({
            "id": self.node_id,
            "node_id": self.node_id,
            "address": self.address,
            "grpc_address": self.grpc_address,
            "build_version": self.build_version,
            "applied_version": self.applied_version.to_string(),
            "latest_version": self.latest_version.to_string(),
            "last_seen": self.last_seen,
            "connected": self.connected,
            "last_error": self.last_error,
        })
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.node_id.clone(),
            self.address.clone(),
            self.grpc_address.clone(),
            self.applied_version.to_string(),
            self.latest_version.to_string(),
            self.last_seen.clone(),
            self.connected.to_string(),
            opt(&self.last_error),
        ]
    }
}

impl Show for pb::RoutingDecision {
    const HEADERS: &'static [&'static str] = &[
        "AT",
        "SOURCE",
        "OUTCOME",
        "REASON",
        "MESSAGE_OR_WORKFLOW",
        "EXECUTION",
        "EVENTS",
    ];
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "at": self.at,
            "source": self.source,
            "phone_number_id": self.phone_number_id,
            "message_id": self.message_id,
            "from": self.from,
            "conversation_id": self.conversation_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "detail": self.detail,
            "trigger_id": self.trigger_id,
            "workflow_id": self.workflow_id,
            "execution_id": self.execution_id,
            "superseded": self.superseded,
            "events": self.events.iter().map(|e| json!({
                "type": e.r#type,
                "trigger_id": e.trigger_id,
                "workflow_id": e.workflow_id,
                "execution_id": e.execution_id,
            })).collect::<Vec<_>>(),
        })
    }
    fn row(&self) -> Vec<String> {
        let reason = match (&self.reason, &self.detail) {
            (Some(reason), Some(detail)) => format!("{reason} ({detail})"),
            (reason, _) => opt(reason),
        };
        let events: Vec<&str> = self.events.iter().map(|e| e.r#type.as_str()).collect();
        vec![
            self.at.clone(),
            self.source.clone(),
            self.outcome.clone(),
            reason,
            opt(&self.message_id.clone().or_else(|| self.workflow_id.clone())),
            opt(&self.execution_id),
            if events.is_empty() {
                "-".to_owned()
            } else {
                events.join(",")
            },
        ]
    }
}

impl Show for pb::UnroutedUpdate {
    const HEADERS: &'static [&'static str] = &["AT", "REASON", "PHONE_NUMBER_ID", "DETAIL"];
    fn json(&self) -> Value {
        json!({
            "at": self.at,
            "reason": self.reason,
            "phone_number_id": self.phone_number_id,
            "detail": self.detail,
        })
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.at.clone(),
            self.reason.clone(),
            opt(&self.phone_number_id),
            opt(&self.detail),
        ]
    }
}

/// Formats rows under headers, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let rendered = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "demo".into()],
                vec!["22".into(), "x".into()],
            ],
        );
        assert_eq!(rendered, "ID  NAME\n1   demo\n22  x");
    }

    #[test]
    fn number_ids_are_strings_in_json() {
        let n = pb::WhatsappNumber {
            whatsapp_config_id: 7,
            ..Default::default()
        };
        assert_eq!(n.json()["id"], json!("7"));
    }
}
