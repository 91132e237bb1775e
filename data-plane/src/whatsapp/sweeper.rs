//! Ends conversations after `--conversation-inactivity` without an inbound message
//! (DESIGN §7). Every data-plane node sweeps; the store's end step checks that the
//! conversation is still active and was not touched since the sweep read it, so
//! `whatsapp.conversation.ended` fires exactly once however many nodes race.

use super::WhatsApp;
use std::time::Duration;
use tokio::sync::watch;

/// Conversations ended per shard per round.
pub const BATCH: usize = 100;

/// How often to sweep: a tenth of the inactivity limit, between 100 ms and 5 s, so a short
/// limit (tests) is honoured closely and a long one costs a few reads per 5 s.
pub fn interval(inactivity: Duration) -> Duration {
    (inactivity / 10).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

pub async fn run(whatsapp: WhatsApp, inactivity: Duration, mut stop: watch::Receiver<bool>) {
    let inactivity_ms = i64::try_from(inactivity.as_millis()).unwrap_or(i64::MAX);
    let mut every = tokio::time::interval(interval(inactivity));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // A full batch means more may be waiting: go again at once.
        loop {
            match whatsapp.end_idle(inactivity_ms).await {
                Ok(n) if n >= BATCH => continue,
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "conversation sweep failed; retrying");
                    break;
                }
            }
        }
    }
}
