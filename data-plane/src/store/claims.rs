//! Runners claiming executions (DESIGN §8 `ClaimExecutions` / `AckExecution`): delivery is
//! at least once. A claim gives the execution to one runner for a visibility timeout (a
//! lease on the record); an ack makes it the runner's for good; a lease that runs out
//! without an ack lets the next claim, by any runner, take it again.
//!
//! Redis: every dispatch stream (one per shard) is read through a consumer group per
//! workflow filter (`all`, or a hash of the workflow ids), so runners with different
//! filters never steal each other's entries; the lease on the record, checked and set by
//! one script, decides who has an execution, so the same entry read through two groups is
//! still claimed once. Expired deliveries come back through `XAUTOCLAIM`. The memory store
//! keeps the same rules on its queues (`memory/claims.rs`).

use super::Execution;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Default and bounds of the visibility timeout.
pub const VISIBILITY_DEFAULT_MS: i64 = 30_000;
pub const VISIBILITY_MIN_MS: i64 = 1_000;
pub const VISIBILITY_MAX_MS: i64 = 3_600_000;

#[derive(Clone, Debug)]
pub struct ClaimQuery {
    pub runner: String,
    /// Empty: every workflow.
    pub workflows: BTreeSet<Uuid>,
    pub visibility_ms: i64,
    /// How many executions the runner can take now (Redis may return a few more; see
    /// the Redis backend's `claim`).
    pub max: usize,
}

impl ClaimQuery {
    /// The consumer group of this filter.
    pub fn group(&self) -> String {
        if self.workflows.is_empty() {
            return "all".to_owned();
        }
        let mut hasher = Sha256::new();
        for id in &self.workflows {
            hasher.update(id.as_bytes());
        }
        format!("wf-{}", &hex::encode(hasher.finalize())[..16])
    }

    pub fn wants(&self, workflow_id: &Uuid) -> bool {
        self.workflows.is_empty() || self.workflows.contains(workflow_id)
    }
}

/// A valid runner name: 1-64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_runner(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    pub execution: Execution,
    pub attempt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    Acked,
    NotFound,
    /// Delivered to another runner (or never delivered).
    NotYours,
}
