//! Time as the data plane stores and shows it: Unix milliseconds inside, RFC 3339 (UTC,
//! milliseconds) on the wire.

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Unix milliseconds as RFC 3339, UTC, with milliseconds.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// How often to sweep for what outlived `limit` (idle conversations, waiting executions):
/// a tenth of it, between 100 ms and 5 s, so a short limit (tests) is honoured closely and
/// a long one costs a few reads per 5 s.
pub fn sweep_interval(limit: std::time::Duration) -> std::time::Duration {
    use std::time::Duration;
    (limit / 10).clamp(Duration::from_millis(100), Duration::from_secs(5))
}
