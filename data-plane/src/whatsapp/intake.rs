//! A webhook POST, from bytes to stored effects: signature → parse → plan → apply. The POST
//! is answered 200 only after the store applied every update (DESIGN §7).

use super::unrouted::Reason;
use super::{WhatsApp, payload, planning, signature};
use crate::store::conversations::{Apply, MessageOutcome, Route, StatusOutcome};
use crate::store::rules::Rule;
use crate::store::{Applied, StoreError};
use payload::Update;
use switchboard_proto::wire::TriggerType;
use uuid::Uuid;

/// Largest accepted webhook body (DESIGN §7).
pub const WEBHOOK_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Why a POST was refused; nothing of it was applied.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("this data plane has no --meta-app-secret; webhooks cannot be verified")]
    NotConfigured,
    #[error("the body is over {} KiB", WEBHOOK_BODY_LIMIT / 1024)]
    TooLarge,
    #[error("X-Hub-Signature-256 is missing or is not the HMAC-SHA256 of the body")]
    InvalidSignature,
    #[error("invalid webhook body: {0}")]
    InvalidJson(payload::PayloadError),
    #[error("no routing table loaded yet; retry shortly")]
    NotReady,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one POST did (counted in metrics, answered to the caller).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub applied: usize,
    pub duplicates: usize,
    pub ignored: usize,
    pub started: Vec<Uuid>,
    /// Where each applied message went.
    pub routes: Vec<Routed>,
}

/// Where a message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub message_id: String,
    pub conversation_id: Uuid,
    pub route: Route,
}

/// Metric handles of the hot path, registered once (a labelled `counter!` per request
/// costs a registry lookup each time).
pub(super) struct Counters {
    applied: metrics::Counter,
    duplicates: metrics::Counter,
    /// By rule, in [`RULES`] order.
    routes: [metrics::Counter; 4],
    conversations_created: metrics::Counter,
    started_inbound: metrics::Counter,
    started_event: metrics::Counter,
}

const RULES: [Rule; 4] = [Rule::Handoff, Rule::Deliver, Rule::Trigger, Rule::Inbox];

impl Counters {
    pub(super) fn new() -> Self {
        let updates = |outcome: &'static str| metrics::counter!("switchboard_webhook_updates_total", "outcome" => outcome);
        let route = |rule: Rule| metrics::counter!("switchboard_webhook_messages_total", "route" => rule.as_str());
        let started = |t: TriggerType| metrics::counter!("switchboard_executions_created_total", "trigger_type" => t.as_str());
        Self {
            applied: updates("applied"),
            duplicates: updates("duplicate"),
            routes: RULES.map(route),
            conversations_created: metrics::counter!("switchboard_conversations_total", "event" => "created"),
            started_inbound: started(TriggerType::InboundMessage),
            started_event: started(TriggerType::WhatsappEvent),
        }
    }

    fn route(&self, rule: Rule) -> &metrics::Counter {
        // `RULES` lists the rules in their declared order.
        &self.routes[rule as usize]
    }
}

impl WhatsApp {
    /// A webhook POST: checks the signature over the raw bytes, applies every update.
    pub async fn ingest(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<Report, IngestError> {
        let secret = self
            .app_secret
            .as_deref()
            .ok_or(IngestError::NotConfigured)?;
        if body.len() > WEBHOOK_BODY_LIMIT {
            return Err(IngestError::TooLarge);
        }
        if !signature::verify(secret.as_bytes(), body, signature) {
            return Err(IngestError::InvalidSignature);
        }
        let parsed = payload::parse(body).map_err(IngestError::InvalidJson)?;
        let mut report = Report::default();
        let at = crate::time::now_ms();
        let unrouted = &self.unrouted;
        if !parsed.known_object {
            unrouted.record(Reason::Object, None, parsed.object.as_deref(), at);
            report.ignored = 1;
            return Ok(report);
        }
        for skipped in &parsed.ignored {
            let detail = skipped.detail.as_deref();
            unrouted.record(skipped.reason, skipped.phone_number_id, detail, at);
        }
        report.ignored = parsed.ignored.len();
        // Without a table nothing can be routed: 503, and Meta delivers it again later.
        let table = self.slot.table().ok_or(IngestError::NotReady)?;
        let mut messages = Vec::new();
        let mut statuses = Vec::new();
        let mut order = Vec::with_capacity(parsed.updates.len());
        for update in &parsed.updates {
            let pnid = match update {
                Update::Message(m) => m.metadata.phone_number_id,
                Update::Status(s) => s.metadata.phone_number_id,
            };
            let Some(number) = table.number(pnid) else {
                unrouted.record(Reason::Number, Some(pnid), None, at);
                report.ignored += 1;
                continue;
            };
            match update {
                Update::Message(m) => {
                    order.push((true, messages.len()));
                    messages.push(planning::message(&table, number, m, at));
                }
                Update::Status(s) => {
                    order.push((false, statuses.len()));
                    statuses.push(planning::status(&table, number, s, at));
                }
            }
        }
        let applies: Vec<Apply<'_>> = order
            .iter()
            .map(|&(is_message, i)| {
                if is_message {
                    Apply::Message(&messages[i])
                } else {
                    Apply::Status(&statuses[i])
                }
            })
            .collect();
        let results = self.store.apply(&applies).await?;
        self.count(&applies, results, &mut report);
        Ok(report)
    }

    /// Adds what the store did to `report` and the metrics.
    fn count(&self, applies: &[Apply<'_>], results: Vec<Applied>, report: &mut Report) {
        let counters = &self.counters;
        for (update, result) in applies.iter().zip(results) {
            match result {
                Applied::Message(MessageOutcome::Duplicate)
                | Applied::Status(StatusOutcome::Duplicate) => report.duplicates += 1,
                Applied::Message(MessageOutcome::Applied {
                    started,
                    route,
                    conversation_created,
                    conversation_id,
                }) => {
                    report.applied += 1;
                    if conversation_created {
                        counters.conversations_created.increment(1);
                    }
                    counters.route(route.rule()).increment(1);
                    let by_trigger = usize::from(matches!(route, Route::Started(_)));
                    counters.started_inbound.increment(by_trigger as u64);
                    if started.len() > by_trigger {
                        counters
                            .started_event
                            .increment((started.len() - by_trigger) as u64);
                    }
                    if let Apply::Message(m) = update {
                        report.routes.push(Routed {
                            message_id: m.message_id.clone(),
                            conversation_id,
                            route,
                        });
                    }
                    report.started.extend(started);
                }
                Applied::Status(StatusOutcome::Applied { started, .. }) => {
                    report.applied += 1;
                    if started.is_some() {
                        counters.started_event.increment(1);
                    }
                    report.started.extend(started);
                }
            }
        }
        counters.applied.increment(report.applied as u64);
        if report.duplicates > 0 {
            counters.duplicates.increment(report.duplicates as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RULES;

    #[test]
    fn route_counters_are_indexed_by_rule() {
        for (i, rule) in RULES.into_iter().enumerate() {
            assert_eq!(rule as usize, i, "{rule:?}");
        }
    }
}
