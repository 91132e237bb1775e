//! Webhook updates that match no project (DESIGN §13): an unknown `object`, an unsupported
//! `field`, a malformed change or update, a status Meta may add that nobody tracks, a
//! `phone_number_id` no project has. They have no project to record a routing decision in,
//! so the node keeps them: counted by reason in `switchboard_webhook_ignored_total`, logged
//! at WARN at most once a second per reason, and the newest [`CAP`] kept in memory for
//! operators (`Executions.ListUnroutedUpdates`, `switchboard decisions unrouted`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Unrouted updates a node keeps, newest first.
pub const CAP: usize = 1000;
/// Longest `detail` kept (an unknown object or field name is the sender's choice).
const DETAIL_MAX: usize = 64;

/// Why an update was not routed, the label of `switchboard_webhook_ignored_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `object` is not `whatsapp_business_account`: the whole POST.
    Object,
    /// A change of another `field` than `messages`.
    Field,
    /// A change, message or status without what routing needs.
    Malformed,
    /// A status outside sent, delivered, read and failed.
    Status,
    /// A `phone_number_id` no project has.
    Number,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::Object,
        Reason::Field,
        Reason::Malformed,
        Reason::Status,
        Reason::Number,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Object => "object",
            Reason::Field => "field",
            Reason::Malformed => "malformed",
            Reason::Status => "status",
            Reason::Number => "number",
        }
    }
}

/// One unrouted update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnroutedUpdate {
    /// Unix milliseconds.
    pub at: i64,
    pub reason: Reason,
    pub phone_number_id: Option<String>,
    /// The object, field or status named, when that is the reason.
    pub detail: Option<String>,
}

/// The node-wide record of unrouted updates.
pub struct Unrouted {
    kept: Mutex<VecDeque<UnroutedUpdate>>,
    /// Per reason: the Unix millisecond of its last WARN line.
    warned: [AtomicI64; 5],
    counters: [metrics::Counter; 5],
}

impl std::fmt::Debug for Unrouted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unrouted").finish_non_exhaustive()
    }
}

impl Default for Unrouted {
    fn default() -> Self {
        Self::new()
    }
}

/// `value` cut to at most [`DETAIL_MAX`] bytes, on a character boundary.
fn bounded(value: &str) -> String {
    let mut end = value.len().min(DETAIL_MAX);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

impl Unrouted {
    pub fn new() -> Self {
        Self {
            kept: Mutex::new(VecDeque::with_capacity(CAP)),
            warned: Default::default(),
            counters: Reason::ALL.map(
                |r| metrics::counter!("switchboard_webhook_ignored_total", "reason" => r.as_str()),
            ),
        }
    }

    /// Counts, logs (rate-limited) and keeps one unrouted update.
    pub fn record(
        &self,
        reason: Reason,
        phone_number_id: Option<&str>,
        detail: Option<&str>,
        at: i64,
    ) {
        let i = reason as usize;
        self.counters[i].increment(1);
        let last = self.warned[i].load(Ordering::Relaxed);
        if at - last >= 1000
            && self.warned[i]
                .compare_exchange(last, at, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                reason = reason.as_str(),
                phone_number_id = phone_number_id.unwrap_or(""),
                detail = detail.unwrap_or(""),
                "webhook update matches no project; not routed (at most one such line a second \
                 per reason; all are counted in switchboard_webhook_ignored_total)"
            );
        }
        let update = UnroutedUpdate {
            at,
            reason,
            phone_number_id: phone_number_id.map(bounded),
            detail: detail.map(bounded),
        };
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == CAP {
            kept.pop_back();
        }
        kept.push_front(update);
    }

    /// The newest `limit` kept, newest first, optionally of one reason.
    pub fn list(&self, reason: Option<Reason>, limit: usize) -> Vec<UnroutedUpdate> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter()
            .filter(|u| reason.is_none_or(|r| u.reason == r))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_counters() {
        for (i, reason) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "{reason:?}");
        }
    }

    #[test]
    fn the_newest_are_kept_up_to_the_cap_and_details_are_bounded() {
        let unrouted = Unrouted::new();
        for i in 0..(CAP + 5) {
            let id = format!("{i}");
            unrouted.record(Reason::Number, Some(&id), None, i as i64);
        }
        unrouted.record(Reason::Field, None, Some(&"é".repeat(100)), 0);
        let all = unrouted.list(None, usize::MAX);
        assert_eq!(all.len(), CAP);
        assert_eq!(all[0].reason, Reason::Field);
        assert!(
            all[0]
                .detail
                .as_ref()
                .is_some_and(|d| d.len() <= DETAIL_MAX)
        );
        assert_eq!(
            all[1].phone_number_id.as_deref(),
            Some(&*format!("{}", CAP + 4))
        );
        let numbers = unrouted.list(Some(Reason::Number), 3);
        assert_eq!(numbers.len(), 3);
        assert!(numbers.iter().all(|u| u.reason == Reason::Number));
    }
}
