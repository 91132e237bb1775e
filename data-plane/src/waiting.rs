//! The waiting timeout (DESIGN §12 `--waiting-timeout`): an execution `waiting` longer than
//! the limit fails with reason `waiting_timeout`, which frees its conversation for the next
//! message trigger or API call, and its runner hears of it on its claim stream. Every node
//! sweeps; the store fails each execution once ([`crate::store::Executions::time_out_waiting`]).

use crate::store::Store;
use crate::time::{now_ms, sweep_interval};
use std::time::Duration;
use tokio::sync::watch;

/// Executions failed per shard per round of the sweep.
const BATCH: usize = 100;

/// Sweeps until `stop`: every [`sweep_interval`] of `timeout`, and again at once after a
/// full batch.
pub async fn sweep(store: Store, timeout: Duration, mut stop: watch::Receiver<bool>) {
    let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    let failed = metrics::counter!("switchboard_executions_timed_out_total");
    let mut every = tokio::time::interval(sweep_interval(timeout));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            let now = now_ms();
            match store
                .time_out_waiting(now.saturating_sub(timeout_ms), now, BATCH)
                .await
            {
                Ok(ids) => {
                    for id in &ids {
                        tracing::info!(execution = %id, "waiting timeout: execution failed");
                    }
                    failed.increment(ids.len() as u64);
                    if ids.len() < BATCH {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "waiting-timeout sweep failed; retrying");
                    break;
                }
            }
        }
    }
}
