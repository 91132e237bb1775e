//! Execution statuses and the transition table of DESIGN §5.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Running,
    Waiting,
    Handoff,
    Ended,
    Failed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Running,
        Status::Waiting,
        Status::Handoff,
        Status::Ended,
        Status::Failed,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Waiting => "waiting",
            Status::Handoff => "handoff",
            Status::Ended => "ended",
            Status::Failed => "failed",
        }
    }

    /// `ended` and `failed`: nothing follows.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Ended | Status::Failed)
    }

    /// Whether an execution in `self` may move to `to`.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Pending, Running | Ended | Failed)
                | (Running, Waiting | Handoff | Ended | Failed)
                | (Waiting, Running | Ended | Failed | Handoff)
                | (Handoff, Running | Ended | Failed)
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Status::{self, *};

    #[test]
    fn transition_table_matches_the_design() {
        let allowed: &[(Status, &[Status])] = &[
            (Pending, &[Running, Ended, Failed]),
            (Running, &[Waiting, Handoff, Ended, Failed]),
            (Waiting, &[Running, Ended, Failed, Handoff]),
            (Handoff, &[Running, Ended, Failed]),
            (Ended, &[]),
            (Failed, &[]),
        ];
        for (from, targets) in allowed {
            for to in Status::ALL {
                assert_eq!(from.can_become(to), targets.contains(&to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("Pending"), None);
    }
}
