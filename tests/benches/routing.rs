//! Routing-table benchmark (`cargo bench -p switchboard-tests --bench routing`; needs
//! `cargo build --release --bins` and PostgreSQL). Prints, for each table size, how long the
//! control plane takes to compile the catalog, how long a change takes to be compiled,
//! pushed and applied by a data-plane process, and that process's memory; then the time one
//! trigger change takes to be visible on 10 connected data planes.
//!
//! Sizes: `SWITCHBOARD_BENCH_SIZES=1000,100000,1000000` (the default).

use std::time::{Duration, Instant};
use switchboard_control_plane::catalog::Catalog;
use switchboard_control_plane::routing::compiler;
use switchboard_proto::v1 as pb;
use switchboard_tests::admin::spec;
use switchboard_tests::bench::{data_plane_command, free_port};
use switchboard_tests::{Admin, Backend, ControlPlane, DataPlane, TestDb, bulk};

/// The control plane runs in this process: the allocator of the `control-plane` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `SB_BENCH_CP_LOG=info` shows the control plane's timings (compiled, streamed).
    if let Ok(filter) = std::env::var("SB_BENCH_CP_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let sizes: Vec<u64> = std::env::var("SWITCHBOARD_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "| triggers | compile (CP) | change → applied on DP | → ACK (persisted) | DP RSS at ACK | DP RSS 2 s later | DP peak RSS | new DP joins (push + apply) | one trigger change → applied |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        table_size(n).await?;
    }
    propagation(10, 100).await
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// VmRSS and VmHWM of a process, in MiB.
fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts a `data-plane` process; returns it and its `/readyz` URL.
fn spawn_data_plane(
    control_plane: &str,
    node_id: &str,
    state_dir: &std::path::Path,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let http = free_port()?;
    let child =
        data_plane_command(control_plane, node_id, (http, free_port()?), state_dir)?.spawn()?;
    Ok((child, format!("http://{http}/readyz")))
}

/// An event trigger on a number of its own, to change through the admin API.
async fn probe_trigger(
    admin: &mut Admin,
    project_id: &str,
    workflow_id: &str,
) -> anyhow::Result<pb::Trigger> {
    admin.number(project_id, "999999999999999", false).await?;
    admin
        .trigger(
            workflow_id,
            spec(
                "whatsapp_event",
                Some("999999999999999"),
                Some("whatsapp.message.read"),
            ),
        )
        .await
        .map_err(Into::into)
}

/// Waits until the control plane recorded `node_id`'s ACK of `version` (the node ACKs
/// after persisting).
async fn wait_ack(admin: &mut Admin, node_id: &str, version: i64) -> anyhow::Result<()> {
    loop {
        let nodes = admin.nodes().await?;
        if nodes
            .iter()
            .any(|n| n.node_id == node_id && n.applied_version >= version)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn readyz_version(client: &reqwest::Client, url: &str) -> Option<i64> {
    let body: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    body["routing_version"].as_i64()
}

/// Polls `/readyz` every `every_ms` until the node serves `version`; fails if the process
/// exits first.
async fn wait_version(
    client: &reqwest::Client,
    child: &mut tokio::process::Child,
    url: &str,
    version: i64,
    every_ms: u64,
) -> anyhow::Result<()> {
    while readyz_version(client, url).await < Some(version) {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("data plane exited ({status}) before serving version {version}");
        }
        tokio::time::sleep(Duration::from_millis(every_ms)).await;
    }
    Ok(())
}

async fn table_size(n: u64) -> anyhow::Result<()> {
    let db = TestDb::fresh(Backend::Postgres).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut admin = cp.admin().await?;
    let p = admin.project("bench").await?;
    let w = admin.workflow(&p.id, "bench", "active").await?;
    // One trigger to change through the admin API once the catalog is large.
    let probe = probe_trigger(&mut admin, &p.id, &w.id).await?;
    let initial = admin.routing_version().await?;

    let state = tempfile::tempdir()?;
    let (mut child, readyz) = spawn_data_plane(&cp.grpc_url, "bench-dp", state.path())?;
    let pid = child.id().unwrap_or_default();
    let http = reqwest::Client::new();
    wait_version(&http, &mut child, &readyz, initial, 20).await?;

    let version = bulk::message_triggers(&db.url, &p.id, &w.id, 700_000_000_000_000, n).await?;
    let changed = Instant::now();
    wait_version(&http, &mut child, &readyz, version, 2).await?;
    let applied = changed.elapsed();
    wait_ack(&mut admin, "bench-dp", version).await?;
    let acked = changed.elapsed();
    let (rss_now, rss_peak) = rss(pid);
    // Memory freed while applying (received chunks, the persisted file's buffers) goes back
    // to the system shortly after: the steady state is what the node keeps.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_steady, _) = rss(pid);

    // Compile alone, on the same catalog.
    let conn = sea_orm::Database::connect(&db.url).await?;
    let catalog = Catalog::new(conn);
    let started = Instant::now();
    let table = compiler::compile(&catalog).await?;
    let compile = started.elapsed();
    assert!(table.len() as u64 >= 2 * n);

    // A second node joining now gets the compiled table as a snapshot: push + apply only.
    let joined = Instant::now();
    let (mut second, second_readyz) =
        spawn_data_plane(&cp.grpc_url, "bench-dp-2", &state.path().join("second"))?;
    wait_version(&http, &mut second, &second_readyz, version, 2).await?;
    let join = joined.elapsed();
    // The second node persists the table after serving it: let it finish, so that the
    // next measurement does not share the cores with it.
    wait_ack(&mut admin, "bench-dp-2", version).await?;

    // One trigger change on the large catalog: admin call → applied on the first node.
    let changed = Instant::now();
    admin.deactivate(&probe.id).await?;
    let version = admin.routing_version().await?;
    wait_version(&http, &mut child, &readyz, version, 2).await?;
    let one_change = changed.elapsed();

    println!(
        "| {n} | {} | {} | {} | {:.0} MiB | {:.0} MiB | {:.0} MiB | {} | {} |",
        ms(compile),
        ms(applied),
        ms(acked),
        rss_now,
        rss_steady,
        rss_peak,
        ms(join),
        ms(one_change)
    );
    child.kill().await?;
    second.kill().await?;
    cp.stop().await
}

async fn propagation(nodes: usize, changes: usize) -> anyhow::Result<()> {
    let db = TestDb::fresh(Backend::Postgres).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut admin = cp.admin().await?;
    let p = admin.project("bench").await?;
    let w = admin.workflow(&p.id, "bench", "active").await?;
    bulk::message_triggers(&db.url, &p.id, &w.id, 800_000_000_000_000, 1000).await?;
    let t = probe_trigger(&mut admin, &p.id, &w.id).await?;
    let state = tempfile::tempdir()?;
    let mut dps = Vec::new();
    for i in 0..nodes {
        dps.push(
            DataPlane::start(
                &cp.grpc_url,
                &format!("dp-{i}"),
                &state.path().join(i.to_string()),
            )
            .await?,
        );
    }
    let version = admin.routing_version().await?;
    for dp in &dps {
        dp.wait_version(version).await?;
    }
    let mut samples = Vec::with_capacity(changes);
    for i in 0..changes {
        let started = Instant::now();
        let changed = if i % 2 == 0 {
            admin.deactivate(&t.id).await?
        } else {
            admin.activate(&t.id).await?
        };
        let _ = changed;
        let version = admin.routing_version().await?;
        for dp in &dps {
            dp.wait_version(version).await?;
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    println!(
        "\none trigger change (admin call → applied on all {nodes} data planes, 1k-trigger table, {changes} changes): \
         p50 {}, p99 {}, max {}",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(pct(1.0))
    );
    for dp in dps {
        dp.stop().await?;
    }
    cp.stop().await
}
