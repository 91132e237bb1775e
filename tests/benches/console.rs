//! Weight and speed of the console's pages (`cargo bench -p switchboard-tests --bench
//! console`; needs PostgreSQL). A control plane (in this process) on a PostgreSQL catalog
//! with `SB_BENCH_TRIGGERS` (10000) message triggers on as many numbers in one workflow,
//! plus a handful of workflows and audit events; each page is fetched
//! `SB_BENCH_REQUESTS` (200) times, one after another, logged in. Prints each page's size
//! and its p50 / p99 / max time from request to last byte, which on loopback is the
//! server's time plus a few tens of microseconds.

use hdrhistogram::Histogram;
use std::time::Instant;
use switchboard_tests::bench::env_or;
use switchboard_tests::console::Console;
use switchboard_tests::{ADMIN_TOKEN, Backend, ControlPlane, TestDb, bulk};

/// The control plane runs in this process: the allocator of the `control-plane` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let triggers: u64 = env_or("SB_BENCH_TRIGGERS", 10_000);
    let requests: u64 = env_or("SB_BENCH_REQUESTS", 200);
    let db = TestDb::fresh(Backend::Postgres).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut admin = cp.admin().await?;
    let project = admin.project("bench").await?;
    let big = admin
        .workflow(&project.id, "ten thousand", "active")
        .await?;
    for i in 0..20 {
        admin
            .workflow(&project.id, &format!("workflow {i}"), "draft")
            .await?;
    }
    bulk::message_triggers(&db.url, &project.id, &big.id, 100_000_000_000_000, triggers).await?;
    admin
        .trigger(
            &big.id,
            switchboard_tests::admin::spec("api_call", None, None),
        )
        .await?;
    let mut console = Console::new(&cp.http_url)?;
    anyhow::ensure!(
        console.login(ADMIN_TOKEN).await?.status == 303,
        "login failed"
    );

    let pages = [
        ("overview", "/console/".to_owned()),
        ("project", format!("/console/projects/{}", project.id)),
        (
            "workflow (10k triggers)",
            format!("/console/workflows/{}", big.id),
        ),
        (
            "workflow, page 100",
            format!("/console/workflows/{}?page=100", big.id),
        ),
        (
            "workflow, filtered by number",
            format!("/console/workflows/{}?number=100000000005000", big.id),
        ),
        ("nodes", "/console/nodes".to_owned()),
        ("audit log", "/console/audit".to_owned()),
    ];
    println!(
        "Console pages: {triggers} triggers in one workflow, {requests} requests each, PostgreSQL"
    );
    println!("| page | size | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    for (name, path) in pages {
        let mut times = Histogram::<u64>::new(3)?;
        let mut size = 0;
        for _ in 0..requests {
            let started = Instant::now();
            let page = console.get(&path).await?;
            times.record(started.elapsed().as_micros() as u64)?;
            anyhow::ensure!(page.status == 200, "{path}: {}", page.status);
            size = page.body.len();
        }
        let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
        println!(
            "| {name} | {:.1} KB | {} | {} | {} |",
            size as f64 / 1024.0,
            ms(times.value_at_quantile(0.5)),
            ms(times.value_at_quantile(0.99)),
            ms(times.max()),
        );
    }
    cp.stop().await
}
