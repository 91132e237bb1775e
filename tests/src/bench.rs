//! Helpers shared by the load benchmarks in `tests/benches/`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The environment variable `name` parsed, else `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A free local port (bound, read, released) for a child process to listen on.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Waits (up to 30 s) until `GET http://{addr}{path}` answers 2xx.
pub async fn wait_http(addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("http://{addr}{path}")).await
            && r.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{addr}{path} not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
