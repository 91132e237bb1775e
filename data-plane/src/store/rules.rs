//! Where an inbound message goes (DESIGN §7 step 4): four rules, in order, the first that
//! matches wins. One conversation never runs two intercepting workflows at once: while its
//! execution is live, messages go to it.
//!
//! The memory store calls [`route`]; the Redis script (`redis/scripts/message.lua`)
//! follows the same cases, labelled (a)–(d). `tests/it/store.rs` runs one table of cases
//! through both stores.

use super::Status;

/// A rule of DESIGN §7 step 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// (a) the conversation's execution is in `handoff`: a human has it, no workflow runs.
    Handoff,
    /// (b) the conversation's execution is `pending`, `running` or `waiting`: the message
    /// is delivered to it.
    Deliver,
    /// (c) the number has an active `inbound_message` trigger: a new execution.
    Trigger,
    /// (d) otherwise: the agent inbox.
    Inbox,
}

impl Rule {
    /// The route's name in reports and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Handoff => "handoff",
            Rule::Deliver => "delivered",
            Rule::Trigger => "trigger",
            Rule::Inbox => "inbox",
        }
    }
}

/// The rule for a message, given the status of the conversation's intercepting execution
/// (`None` when it has none, or it expired) and whether the number has an active message
/// trigger. Observer and test executions never become a conversation's execution.
pub fn route(execution: Option<Status>, message_trigger: bool) -> Rule {
    match execution {
        Some(Status::Handoff) => Rule::Handoff,
        Some(Status::Pending | Status::Running | Status::Waiting) => Rule::Deliver,
        Some(Status::Ended | Status::Failed) | None if message_trigger => Rule::Trigger,
        Some(Status::Ended | Status::Failed) | None => Rule::Inbox,
    }
}

/// Whether an intercepting execution in `status` holds its conversation: a new API-trigger
/// execution in it supersedes the holder or is refused (DESIGN §12). The statuses of rules
/// (a) and (b): while one of them applies, the conversation has its workflow, so a second
/// one would make two.
pub fn holds(status: Status) -> bool {
    matches!(route(Some(status), false), Rule::Handoff | Rule::Deliver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_wins() {
        use Status::*;
        for trigger in [false, true] {
            assert_eq!(route(Some(Handoff), trigger), Rule::Handoff);
            for live in [Pending, Running, Waiting] {
                assert_eq!(route(Some(live), trigger), Rule::Deliver);
            }
            let idle = if trigger { Rule::Trigger } else { Rule::Inbox };
            for gone in [None, Some(Ended), Some(Failed)] {
                assert_eq!(route(gone, trigger), idle);
            }
        }
        for status in Status::ALL {
            assert_eq!(holds(status), !status.is_final(), "{status}");
        }
    }
}
