//! Helpers shared by the load benchmarks in `tests/benches/` (and tests that run the real
//! data-plane binary).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

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

/// A `data-plane` process command (for benchmarks, and tests of the real binary): following `control_plane` as `node_id`,
/// serving HTTP on `http` and gRPC on `grpc`, state in `state_dir`, the test tokens,
/// warnings only, killed with its handle. Callers add store or Meta flags.
pub fn data_plane_command(
    control_plane: &str,
    node_id: &str,
    (http, grpc): (SocketAddr, SocketAddr),
    state_dir: &Path,
) -> anyhow::Result<Command> {
    let mut command = Command::new(crate::binary("data-plane")?);
    command
        .args(["--control-plane", control_plane, "--node-id", node_id])
        .args(["--http-listen", &http.to_string()])
        .args(["--grpc-listen", &grpc.to_string()])
        .arg("--state-dir")
        .arg(state_dir)
        .env("SWITCHBOARD_NODE_TOKEN", crate::NODE_TOKEN)
        .env("SWITCHBOARD_RUNNER_TOKEN", crate::RUNNER_TOKEN)
        // `SB_BENCH_DP_LOG=info` shows the nodes' timings (snapshot indexed, delta applied).
        .env(
            "RUST_LOG",
            std::env::var("SB_BENCH_DP_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .kill_on_drop(true);
    Ok(command)
}

/// Runs `bench` under a fresh Redis key prefix and deletes the keys afterwards, also when
/// the bench fails.
pub async fn under_fresh_prefix<F, Fut>(redis_url: &str, bench: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let prefix = format!("sbbench-{}", uuid::Uuid::now_v7().simple());
    let result = bench(prefix.clone()).await;
    let deleted = crate::redis::delete_prefix(redis_url, &prefix).await?;
    println!("deleted {deleted} bench keys");
    result
}
