//! Throughput of runners claiming and acking executions, against the real Redis of this
//! machine: the real `data-plane` binary (child process), N executions dispatched up front,
//! then R runners (default 4), each on its own gRPC connection, claim every execution
//! (`ClaimExecutions`) and ack it (`AckExecution`); optionally end it too
//! (`SB_BENCH_END=1`: `UpdateExecutionStatus` to ended). Prints executions per second.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p switchboard-tests --bench runners
//! SB_BENCH_EXECUTIONS=20000 SB_BENCH_RUNNERS=4 cargo bench -p switchboard-tests --bench runners
//! ```
//! Keys go under a unique prefix and are deleted at the end.

use std::collections::HashSet;
use std::time::{Duration, Instant};
use switchboard_data_plane::store::{Admission, DecisionLimits, NewExecution, Store, keys};
use switchboard_proto::wire::TriggerType;
use switchboard_tests::bench::{
    data_plane_command, env_or, free_port, under_fresh_prefix, wait_http,
};
use switchboard_tests::platform::Tenant;
use switchboard_tests::runner::Runner;
use switchboard_tests::{Backend, ControlPlane, TestDb};
use uuid::Uuid;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let redis_url = switchboard_tests::redis::redis_url();
    let executions = env_or("SB_BENCH_EXECUTIONS", 20_000);
    let runners = env_or("SB_BENCH_RUNNERS", 4);
    let end = std::env::var("SB_BENCH_END").is_ok_and(|v| v == "1");
    let url = redis_url.as_str();
    runtime.block_on(under_fresh_prefix(url, |prefix| async move {
        measure(url, &prefix, executions, runners, end).await
    }))
}

async fn measure(
    redis_url: &str,
    prefix: &str,
    executions: usize,
    runners: usize,
    end: bool,
) -> anyhow::Result<()> {
    let db = TestDb::fresh(Backend::Sqlite).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut admin = cp.admin().await?;
    let tenant = Tenant::seed(&mut admin, "bench", None).await?;
    let state = tempfile::tempdir()?;
    let (http, grpc) = (free_port()?, free_port()?);
    let mut dp = data_plane_command(&cp.grpc_url, "bench", (http, grpc), state.path())?
        .args(["--redis-url", redis_url, "--redis-key-prefix", prefix])
        .args(["--execution-retention", "10m"])
        .spawn()?;
    wait_http(http, "/readyz").await?;

    // Dispatch the executions directly through the store, 64 at a time.
    let store = Store::open(
        redis_url,
        prefix,
        Duration::from_secs(600),
        DecisionLimits::default(),
    )?;
    let project = Uuid::parse_str(&tenant.project_id)?;
    let workflow = Uuid::parse_str(&tenant.workflow_id)?;
    let started = Instant::now();
    let mut ids = HashSet::new();
    for chunk in (0..executions).collect::<Vec<_>>().chunks(64) {
        let mut batch = Vec::new();
        for _ in chunk {
            let execution = NewExecution {
                id: keys::new_tracking_id(&project),
                project_id: project,
                workflow_id: workflow,
                trigger_type: TriggerType::ApiCall,
                test: false,
                observer_mode: false,
                conversation_id: None,
                context: r#"{"system":{"trigger_type":"api_call"}}"#.to_owned(),
                created_at: chrono::Utc::now().timestamp_millis(),
                origin: None,
            };
            ids.insert(execution.id.to_string());
            let store = store.clone();
            batch.push(tokio::spawn(async move {
                store.create(&execution, &Admission::default()).await
            }));
        }
        for task in batch {
            task.await??;
        }
    }
    println!(
        "dispatched {executions} executions in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..runners {
        let mut runner = Runner::connect(&format!("http://{grpc}"), &format!("bench-{i}")).await?;
        tasks.push(tokio::spawn(async move {
            let mut claims = runner.claims(&[], 60_000).await?;
            let mut done = Vec::new();
            loop {
                let message =
                    match tokio::time::timeout(Duration::from_secs(2), claims.message()).await {
                        Ok(message) => message?,
                        Err(_) => break,
                    };
                let Some(execution) = message.and_then(|c| c.execution) else {
                    break;
                };
                runner
                    .ack(&execution.id)
                    .await
                    .map_err(|e| anyhow::anyhow!("{} acking {}: {e}", runner.name, execution.id))?;
                if end {
                    runner.set_status(&execution.id, "ended").await?;
                }
                done.push(execution.id);
            }
            anyhow::Ok(done)
        }));
    }
    let mut handled = Vec::new();
    for task in tasks {
        handled.extend(task.await??);
    }
    // The last 2 s were each runner noticing the queue was empty.
    let elapsed = started.elapsed().as_secs_f64() - 2.0;
    let unique: HashSet<&String> = handled.iter().collect();
    anyhow::ensure!(
        unique.len() == handled.len(),
        "an execution was delivered twice"
    );
    anyhow::ensure!(
        unique.len() == ids.len(),
        "{} of {} executions handled",
        unique.len(),
        ids.len()
    );
    println!(
        "{runners} runners: {} executions claimed + acked{} in {elapsed:.2} s: {:.0} per second",
        handled.len(),
        if end { " + ended" } else { "" },
        handled.len() as f64 / elapsed
    );

    let _ = dp.kill().await;
    cp.stop().await?;
    Ok(())
}
