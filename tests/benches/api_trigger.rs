//! Load benchmark of the API trigger against the real Redis of this machine.
//!
//! In one run it measures, with the same load generator:
//! 1. **switchboard**: the real `data-plane` binary (a child process, following an
//!    in-process control plane with a seeded tenant), `POST …/executions` with a valid key
//!    and body: auth, validation, context, one Lua call creating the execution;
//! 2. **baseline**: a bare hyper handler (this binary re-executed as a child process) that
//!    reads the body and does one equivalent MULTI/EXEC pipeline (record hash, expiry, index
//!    entry and trim, dispatch stream entry), then answers the same 202;
//!
//! first at saturation (N keep-alive connections, closed loop, D seconds each, split into
//! `SB_BENCH_ROUNDS` (4) alternating rounds so that a drift of the machine's speed weighs on
//! both alike), then paced at half the baseline's saturating rate, and switchboard once more
//! at half its own, latency measured from each request's scheduled send time (no coordinated
//! omission). Prints req/s, p50/p99/p999, errors, and the ratios (also per round).
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p switchboard-tests --bench api_trigger
//! SB_BENCH_CONNECTIONS=64 SB_BENCH_SECONDS=10 cargo bench -p switchboard-tests --bench api_trigger
//! ```
//! `SB_BENCH_TARGET=webhook` measures webhook ingest instead: signed Meta POSTs of one text
//! message, each from a new customer, so each creates a conversation and starts an
//! `inbound_message` execution (one script call), against the same baseline.
//!
//! Keys go under a unique prefix, the servers' deleted before every phase (so each starts
//! from the same Redis keyspace) and all at the end; `SB_BENCH_REDIS_FILL` (270000) filler
//! keys hold Redis' key tables at one size throughout, so that no phase pays for a
//! doubling (raise it for webhook runs, which write several keys per request).
//! `SB_BENCH_HOLD=<seconds>` only starts both servers, prints their URLs, key and body, and
//! keeps them up that long for an external load generator (`wrk`, see docs/benchmarks.md).

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard_tests::bench::{
    data_plane_command, env_or, free_port, under_fresh_prefix, wait_http,
};
use switchboard_tests::platform::Tenant;
use switchboard_tests::redis::delete_prefix;
use switchboard_tests::{Backend, ControlPlane, META_APP_SECRET, TestDb};
use tokio::net::{TcpListener, TcpStream};

const BASELINE_ROLE: &str = "SB_BENCH_BASELINE_LISTEN";
const BODY: &str = r#"{"workflow_execution": {"phone_number": "+1 (234) 567-890", "variables": {"name": "Ada", "order": 42}, "context": {"source": "bench"}}}"#;
/// The phone number of [`BODY`], replaced by a new customer's in every request.
const PHONE: &str = "+1 (234) 567-890";

fn main() -> anyhow::Result<()> {
    let redis_url = switchboard_tests::redis::redis_url();
    if let Ok(listen) = std::env::var(BASELINE_ROLE) {
        let prefix = std::env::var("SB_BENCH_PREFIX")?;
        return tokio::runtime::Runtime::new()?
            .block_on(baseline::serve(&listen, &redis_url, &prefix));
    }
    let connections: usize = env_or("SB_BENCH_CONNECTIONS", 64);
    let seconds: u64 = env_or("SB_BENCH_SECONDS", 10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let duration = Duration::from_secs(seconds);
    let url = redis_url.as_str();
    runtime.block_on(under_fresh_prefix(url, |prefix| async move {
        measure(url, &prefix, connections, duration).await
    }))
}

async fn measure(
    redis_url: &str,
    prefix: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let db = TestDb::fresh(Backend::Sqlite).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut admin = cp.admin().await?;
    let tenant = Tenant::seed(&mut admin, "bench", None).await?;
    let webhook = std::env::var("SB_BENCH_TARGET").is_ok_and(|t| t == "webhook");
    if webhook {
        let intake = admin
            .workflow(&tenant.project_id, "intake", "active")
            .await?;
        admin
            .trigger(
                &intake.id,
                switchboard_tests::admin::spec(
                    "inbound_message",
                    Some(&tenant.phone_number_id),
                    None,
                ),
            )
            .await?;
    }
    let state = tempfile::tempdir()?;

    let dp_addr = free_port()?;
    let mut dp = data_plane_command(&cp.grpc_url, "bench", (dp_addr, free_port()?), state.path())?
        .args(["--redis-url", redis_url, "--redis-key-prefix", prefix])
        .args(["--execution-retention", "10m"])
        .env("SWITCHBOARD_META_APP_SECRET", META_APP_SECRET)
        .spawn()?;
    wait_http(dp_addr, "/readyz").await?;

    let base_addr = free_port()?;
    let mut base = tokio::process::Command::new(std::env::current_exe()?)
        .env(BASELINE_ROLE, base_addr.to_string())
        .env("SB_BENCH_PREFIX", format!("{prefix}-baseline"))
        .kill_on_drop(true)
        .spawn()?;
    wait_http(base_addr, "/healthz").await?;

    let path = format!("/platform/v1/workflows/{}/executions", tenant.workflow_id);
    let product = Target {
        addr: dp_addr,
        path: if webhook {
            "/webhooks/whatsapp".to_owned()
        } else {
            path.clone()
        },
        key: tenant.key.clone(),
        webhook_number: webhook.then(|| tenant.phone_number_id.clone()),
    };
    // In webhook mode the baselines receive the same signed POSTs, so the load generator
    // does the same work for all: `baseline` (on the API path) does the API trigger's one
    // pipeline, `equivalent` (on the webhook path) one MULTI/EXEC of the writes a message
    // that opens a conversation and starts an execution makes, without deciding anything.
    let baseline = Target {
        addr: base_addr,
        path,
        key: tenant.key.clone(),
        webhook_number: product.webhook_number.clone(),
    };
    let equivalent = webhook.then(|| Target {
        addr: base_addr,
        path: "/webhooks/whatsapp".to_owned(),
        key: tenant.key.clone(),
        webhook_number: product.webhook_number.clone(),
    });
    // A request of each, checked, before measuring.
    for target in [Some(&product), Some(&baseline), equivalent.as_ref()]
        .into_iter()
        .flatten()
    {
        let stats = load(target, 1, Pace::Closed, Duration::from_millis(200)).await?;
        anyhow::ensure!(
            stats.errors == 0 && stats.ok > 0,
            "{} answers errors",
            target.addr
        );
    }
    if let Some(hold) = std::env::var("SB_BENCH_HOLD")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // Leave both servers up for an external load generator (e.g. wrk).
        println!("switchboard http://{dp_addr}{}", product.path);
        println!("baseline    http://{base_addr}{}", baseline.path);
        println!("authorization: Bearer {}", tenant.key);
        println!("body: {BODY}");
        println!(
            "dp pid {} baseline pid {}",
            dp.id().unwrap_or(0),
            base.id().unwrap_or(0)
        );
        tokio::time::sleep(Duration::from_secs(hold)).await;
        let _ = dp.kill().await;
        let _ = base.kill().await;
        return Ok(());
    }
    println!(
        "{} load: {connections} keep-alive connections, {} s per run, 2-core machine, Redis at {redis_url}",
        if webhook {
            "Webhook ingest"
        } else {
            "API trigger"
        },
        duration.as_secs()
    );
    let warm = Duration::from_secs(2);
    let (dp_pid, base_pid) = (dp.id().unwrap_or(0), base.id().unwrap_or(0));
    let redis_pid = process_named("redis-server");
    // Every phase starts from the same keyspace: Redis doubles its key tables at each power
    // of two and rehashes for a while after, stalling for 10-25 ms and raising its latency
    // (at 2^20 keys: +5 ms for ~150k writes on this machine); with keys piling up across
    // phases, whichever phase crossed a doubling had the worse tail. And within a phase:
    // from an empty keyspace each paced phase crossed 2^16 and 2^17, a stall that the 64
    // connections' queues turned into a p99 of 30-56 ms for either server. So filler keys
    // (with expiry, like the records) hold the tables at 2^19 slots throughout, and each
    // phase deletes only the servers' keys: a phase adds at most ~190k keys, no doubling.
    let fill: usize = env_or("SB_BENCH_REDIS_FILL", 270_000);
    fill_keyspace(redis_url, &format!("{prefix}-filler"), fill).await?;
    let reset = || async {
        delete_prefix(redis_url, &format!("{prefix}:")).await?;
        delete_prefix(redis_url, &format!("{prefix}-baseline:"))
            .await
            .map(drop)
    };
    reset().await?;
    load(&baseline, connections, Pace::Closed, warm).await?;
    reset().await?;
    load(&product, connections, Pace::Closed, warm).await?;
    // Saturation in alternating rounds (baseline then switchboard, then the other way
    // round, …): this VM's speed drifts by ±15 % over tens of seconds, and one long run of
    // each would compare two different machines.
    let rounds: u32 = env_or("SB_BENCH_ROUNDS", 4).max(1);
    let mut sides = [
        Side::new(&baseline, base_pid)?,
        Side::new(&product, dp_pid)?,
    ];
    let mut round_ratios = Vec::new();
    for round in 0..rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut rates = [0.0; 2];
        for i in order {
            reset().await?;
            rates[i] = sides[i]
                .saturate(connections, duration / rounds, redis_pid)
                .await?;
        }
        round_ratios.push(100.0 * rates[1] / rates[0]);
    }
    let [base_side, prod_side] = sides;
    let (base_sat, base_cpu, base_redis) = (base_side.stats, base_side.cpu, base_side.redis_cpu);
    let (prod_sat, prod_cpu, prod_redis) = (prod_side.stats, prod_side.cpu, prod_side.redis_cpu);
    let half = base_sat.rate() / 2.0;
    reset().await?;
    let base_half = load(&baseline, connections, Pace::Rate(half), duration).await?;
    reset().await?;
    let prod_half = load(&product, connections, Pace::Rate(half), duration).await?;
    // Half of switchboard's *own* saturating rate: the same utilisation as the baseline's
    // paced run, so the two tails compare like for like.
    let own_half = prod_sat.rate() / 2.0;
    reset().await?;
    let prod_own_half = load(&product, connections, Pace::Rate(own_half), duration).await?;
    let mut equivalent_runs = None;
    if let Some(equivalent) = &equivalent {
        reset().await?;
        load(equivalent, connections, Pace::Closed, warm).await?;
        let sat = load(equivalent, connections, Pace::Closed, duration).await?;
        let half = sat.rate() / 2.0;
        reset().await?;
        let eq_half = load(equivalent, connections, Pace::Rate(half), duration).await?;
        reset().await?;
        let prod_half = load(&product, connections, Pace::Rate(half), duration).await?;
        equivalent_runs = Some((sat, half, eq_half, prod_half));
    }

    println!(
        "\n{:<34} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "run", "req/s", "p50 ms", "p99 ms", "p999 ms", "errors"
    );
    for (name, stats) in [
        ("baseline (hyper + 1 pipeline)", &base_sat),
        ("switchboard", &prod_sat),
    ] {
        stats.print(&format!("{name}, saturating"));
    }
    for (name, stats) in [("baseline", &base_half), ("switchboard", &prod_half)] {
        stats.print(&format!("{name}, paced at {half:.0}/s"));
    }
    prod_own_half.print(&format!("switchboard, paced at {own_half:.0}/s"));
    if let Some((sat, half, eq_half, prod_eq_half)) = &equivalent_runs {
        sat.print("equivalent writes (1 MULTI), saturating");
        eq_half.print(&format!("equivalent, paced at {half:.0}/s"));
        prod_eq_half.print(&format!("switchboard, paced at {half:.0}/s"));
        println!(
            "\nthroughput ratio switchboard/equivalent writes: {:.1} %",
            100.0 * prod_sat.rate() / sat.rate()
        );
        println!(
            "p99 at half the equivalent's saturating rate: switchboard {:.3} ms, equivalent {:.3} ms",
            prod_eq_half.quantile_ms(0.99),
            eq_half.quantile_ms(0.99)
        );
    }
    println!(
        "\nthroughput ratio switchboard/baseline: {:.1} % (rounds: {})",
        100.0 * prod_sat.rate() / base_sat.rate(),
        round_ratios
            .iter()
            .map(|r| format!("{r:.1} %"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "server CPU per request at saturation: switchboard {:.1} µs, baseline {:.1} µs",
        1e6 * prod_cpu / prod_sat.ok.max(1) as f64,
        1e6 * base_cpu / base_sat.ok.max(1) as f64
    );
    println!(
        "Redis CPU per request at saturation: switchboard {:.1} µs, baseline {:.1} µs",
        1e6 * prod_redis / prod_sat.ok.max(1) as f64,
        1e6 * base_redis / base_sat.ok.max(1) as f64
    );
    println!(
        "p99 at half the baseline's saturating rate: switchboard {:.3} ms, baseline {:.3} ms",
        prod_half.quantile_ms(0.99),
        base_half.quantile_ms(0.99)
    );
    println!(
        "p99 at half its own saturating rate: switchboard {:.3} ms, baseline {:.3} ms",
        prod_own_half.quantile_ms(0.99),
        base_half.quantile_ms(0.99)
    );
    println!(
        "the same from each request's actual send (p50 / p99): switchboard {:.3} / {:.3} ms and {:.3} / {:.3} ms (own half), baseline {:.3} / {:.3} ms",
        prod_half.answer_ms(0.5),
        prod_half.answer_ms(0.99),
        prod_own_half.answer_ms(0.5),
        prod_own_half.answer_ms(0.99),
        base_half.answer_ms(0.5),
        base_half.answer_ms(0.99)
    );

    let _ = dp.kill().await;
    let _ = base.kill().await;
    cp.stop().await?;
    Ok(())
}

/// One server's saturating rounds, summed.
struct Side<'t> {
    target: &'t Target,
    pid: u32,
    stats: Stats,
    /// The server's and Redis' CPU seconds over the rounds.
    cpu: f64,
    redis_cpu: f64,
}

impl<'t> Side<'t> {
    fn new(target: &'t Target, pid: u32) -> anyhow::Result<Self> {
        Ok(Self {
            target,
            pid,
            stats: Stats::empty()?,
            cpu: 0.0,
            redis_cpu: 0.0,
        })
    }

    /// One closed-loop round; returns its rate.
    async fn saturate(
        &mut self,
        connections: usize,
        duration: Duration,
        redis_pid: Option<u32>,
    ) -> anyhow::Result<f64> {
        let redis_cpu = || redis_pid.map_or(0.0, cpu_seconds);
        let (cpu, redis) = (cpu_seconds(self.pid), redis_cpu());
        let stats = load(self.target, connections, Pace::Closed, duration).await?;
        self.cpu += cpu_seconds(self.pid) - cpu;
        self.redis_cpu += redis_cpu() - redis;
        let rate = stats.rate();
        self.stats.absorb(stats)?;
        Ok(rate)
    }
}

/// The pid of a local process by name (e.g. the Redis server), from /proc.
fn process_named(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == name).then_some(pid)
        })
}

/// User plus system CPU time a process has used, from /proc (Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

struct Target {
    addr: SocketAddr,
    path: String,
    key: String,
    /// Send signed webhooks to this number instead of API calls.
    webhook_number: Option<String>,
}

#[derive(Clone, Copy)]
enum Pace {
    /// Each connection sends its next request when the previous answers.
    Closed,
    /// Requests per second over all connections, on a fixed schedule.
    Rate(f64),
}

struct Stats {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    /// Microseconds, from each request's scheduled send time (closed loop: its send).
    latency: Histogram<u64>,
    /// Microseconds, from the moment each request was handed to the connection: paced,
    /// this leaves out the wait of a release for a busy connection and the load
    /// generator's own lateness.
    from_send: Histogram<u64>,
}

impl Stats {
    fn empty() -> anyhow::Result<Self> {
        Ok(Self {
            ok: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            from_send: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        })
    }

    /// Adds another run's counts, time and latencies.
    fn absorb(&mut self, other: Stats) -> anyhow::Result<()> {
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latency.add(other.latency)?;
        self.from_send.add(other.from_send)?;
        Ok(())
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    fn answer_ms(&self, q: f64) -> f64 {
        self.from_send.value_at_quantile(q) as f64 / 1000.0
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<34} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>7}",
            self.rate(),
            self.quantile_ms(0.5),
            self.quantile_ms(0.99),
            self.quantile_ms(0.999),
            self.errors
        );
    }
}

async fn load(
    target: &Target,
    connections: usize,
    pace: Pace,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let start = tokio::time::Instant::now();
    let end = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    let mut schedules = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (addr, path, key) = (target.addr, target.path.clone(), target.key.clone());
        let webhook = target.webhook_number.clone();
        let schedule = match pace {
            Pace::Closed => None,
            Pace::Rate(_) => {
                let (release, schedule) = tokio::sync::mpsc::unbounded_channel();
                schedules.push(release);
                Some(schedule)
            }
        };
        tasks.push(tokio::spawn(connection(
            addr, path, key, webhook, schedule, end,
        )));
    }
    let pacer = match pace {
        Pace::Closed => None,
        Pace::Rate(rate) => Some(std::thread::spawn(move || {
            pace_requests(rate, schedules, start.into_std(), end.into_std())
        })),
    };
    let mut stats = Stats::empty()?;
    for task in tasks {
        let (ok, errors, latency, from_send) = task.await??;
        stats.ok += ok;
        stats.errors += errors;
        stats.latency.add(latency)?;
        stats.from_send.add(from_send)?;
    }
    if let Some(pacer) = pacer {
        let _ = pacer.join();
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

/// Writes `count` small keys with an expiry under `prefix`, in pipelined batches.
async fn fill_keyspace(redis_url: &str, prefix: &str, count: usize) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    for first in (0..count).step_by(10_000) {
        let mut pipe = redis::pipe();
        for i in first..count.min(first + 10_000) {
            pipe.cmd("SET")
                .arg(format!("{prefix}:{i}"))
                .arg("x")
                .arg("PX")
                .arg(600_000)
                .ignore();
        }
        pipe.query_async::<()>(&mut connection).await?;
    }
    Ok(())
}

/// Webhook messages sent so far in this process.
static MESSAGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Releases `rate` requests per second, round robin over the connections, each with its
/// scheduled send time, until `end`: a thread sleeping on the kernel's high-resolution
/// timer, waking every [`PACER_QUANTUM`] at most and releasing what is due. tokio's timer
/// fires on whole milliseconds, which sent each millisecond's requests as one burst and
/// measured the load generator's quantum as latency. A connection still busy queues its next
/// release, which then counts from its scheduled time (no coordinated omission).
fn pace_requests(
    rate: f64,
    connections: Vec<tokio::sync::mpsc::UnboundedSender<tokio::time::Instant>>,
    start: std::time::Instant,
    end: std::time::Instant,
) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut next = start;
    let mut connections = connections.iter().cycle();
    while next < end {
        let now = std::time::Instant::now();
        if next > now {
            std::thread::sleep((next - now).max(PACER_QUANTUM));
        }
        let now = std::time::Instant::now();
        while next <= now && next < end {
            let Some(connection) = connections.next() else {
                return;
            };
            if connection.send(next.into()).is_err() {
                return;
            }
            next += interval;
        }
    }
}

/// The pacer's shortest sleep: fewer wake-ups of its own on the two shared cores, at the
/// price of releasing up to this much of the schedule at once.
const PACER_QUANTUM: Duration = Duration::from_micros(200);

async fn connection(
    addr: SocketAddr,
    path: String,
    key: String,
    webhook: Option<String>,
    mut schedule: Option<tokio::sync::mpsc::UnboundedReceiver<tokio::time::Instant>>,
    end: tokio::time::Instant,
) -> anyhow::Result<(u64, u64, Histogram<u64>, Histogram<u64>)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut from_send = histogram.clone();
    let (mut ok, mut errors) = (0u64, 0u64);
    let authorization = format!("Bearer {key}");
    loop {
        let sent_at = match &mut schedule {
            Some(schedule) => match schedule.recv().await {
                Some(at) => at,
                None => break,
            },
            None => {
                let now = tokio::time::Instant::now();
                if now >= end {
                    break;
                }
                now
            }
        };
        let request = match &webhook {
            None => {
                // A customer of its own per request, as real traffic has: each API call
                // opens its customer's conversation (DESIGN §12).
                let sequence = MESSAGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let body = BODY.replacen(PHONE, &format!("+1 {sequence:010}"), 1);
                Request::post(path.as_str())
                    .header("host", "bench")
                    .header("authorization", authorization.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))?
            }
            Some(number) => {
                // Unique over the whole run (warm-up and every phase): each webhook is a
                // new message of a new customer, never a cheap duplicate.
                let sequence = MESSAGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let from = format!("1{sequence:014}");
                let text = switchboard_tests::whatsapp::text_message(
                    number,
                    &from,
                    &format!("wamid.bench{from}"),
                    "Does it come in another color?",
                );
                let signature = switchboard_data_plane::whatsapp::signature::sign(
                    META_APP_SECRET.as_bytes(),
                    text.as_bytes(),
                );
                Request::post(path.as_str())
                    .header("host", "bench")
                    .header("x-hub-signature-256", signature)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(text)))?
            }
        };
        sender.ready().await?;
        let handed_over = tokio::time::Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        let micros = |since: tokio::time::Instant| {
            u64::try_from(since.elapsed().as_micros())
                .unwrap_or(u64::MAX)
                .max(1)
        };
        histogram.saturating_record(micros(sent_at));
        from_send.saturating_record(micros(handed_over));
        if status == StatusCode::ACCEPTED || status == StatusCode::OK {
            ok += 1;
        } else {
            errors += 1;
        }
    }
    Ok((ok, errors, histogram, from_send))
}

/// The bare hyper handler of the baseline.
mod baseline {
    use super::*;
    use redis::aio::ConnectionManager;

    pub async fn serve(listen: &str, redis_url: &str, prefix: &str) -> anyhow::Result<()> {
        let listener = TcpListener::bind(listen).await?;
        let redis = ConnectionManager::new(redis::Client::open(redis_url)?).await?;
        let prefix: std::sync::Arc<str> = prefix.into();
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let (redis, prefix) = (redis.clone(), prefix.clone());
            let service = hyper::service::service_fn(move |request| {
                handle(request, redis.clone(), prefix.clone())
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    }

    async fn handle(
        request: Request<hyper::body::Incoming>,
        mut redis: ConnectionManager,
        prefix: std::sync::Arc<str>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        if request.uri().path() == "/healthz" {
            return Ok(Response::new(Full::new(Bytes::from_static(b"ok"))));
        }
        if request.uri().path() == "/webhooks/whatsapp" {
            return Ok(equivalent(request, redis, prefix).await);
        }
        let workflow_id = request
            .uri()
            .path()
            .split('/')
            .nth(4)
            .unwrap_or_default()
            .to_owned();
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
        };
        let id = uuid::Uuid::now_v7();
        let record = format!("{prefix}:{{x0}}:e:{id}");
        let index = format!("{prefix}:{{x0}}:w:{workflow_id}");
        let id_text = id.to_string();
        let result: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .hset_multiple(
                &record,
                &[
                    ("workflow", workflow_id.as_bytes()),
                    ("status", b"pending".as_slice()),
                    ("trigger_type", b"api_call".as_slice()),
                    ("context", &body[..]),
                ],
            )
            .ignore()
            .pexpire(&record, 600_000)
            .ignore()
            .zadd(&index, &id_text, 0)
            .ignore()
            .cmd("ZREMRANGEBYLEX")
            .arg(&index)
            .arg("-")
            .arg("(0")
            .ignore()
            .pexpire(&index, 600_000)
            .ignore()
            .xadd(
                format!("{prefix}:{{x0}}:dispatch"),
                "*",
                &[("id", &id_text), ("workflow", &workflow_id)],
            )
            .ignore()
            .query_async(&mut redis)
            .await;
        if result.is_err() {
            return Ok(status(StatusCode::SERVICE_UNAVAILABLE));
        }
        let answer = format!(
            r#"{{"message":"Workflow execution initiated","workflow_id":"{workflow_id}","tracking_id":"{id}"}}"#
        );
        let mut response = Response::new(Full::new(Bytes::from(answer)));
        *response.status_mut() = StatusCode::ACCEPTED;
        response.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }

    /// The writes of a message that opens a conversation and starts an execution, as one
    /// MULTI/EXEC, decided by nobody: seen mark, conversation, customer pointer, both
    /// activity indexes, record, workflow index, dispatch entry, with their expiries.
    async fn equivalent(
        request: Request<hyper::body::Incoming>,
        mut redis: ConnectionManager,
        prefix: std::sync::Arc<str>,
    ) -> Response<Full<Bytes>> {
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return status(StatusCode::BAD_REQUEST),
        };
        let (id, conversation) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let (id_text, conversation_text) = (id.to_string(), conversation.to_string());
        let key = |rest: std::fmt::Arguments<'_>| format!("{prefix}:{{x0}}:{rest}");
        let record = key(format_args!("e:{id}"));
        let conv = key(format_args!("c:{conversation}"));
        let list = key(format_args!("cl:p"));
        let index = key(format_args!("w:w"));
        let now = chrono::Utc::now().timestamp_millis();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(key(format_args!("m:{id}")))
            .arg(&conversation_text)
            .arg("PX")
            .arg(691_200_000)
            .ignore()
            .hset_multiple(
                &conv,
                &[
                    ("status", "active"),
                    ("last", &now.to_string()),
                    ("lm", "{}"),
                ],
            )
            .ignore()
            .pexpire(&conv, 600_000)
            .ignore()
            .cmd("SET")
            .arg(key(format_args!("cn:{id}")))
            .arg(&conversation_text)
            .arg("PX")
            .arg(600_000)
            .ignore()
            .zadd(key(format_args!("ca")), &conversation_text, now)
            .ignore()
            .zadd(&list, &conversation_text, now)
            .ignore()
            .pexpire(&list, 600_000)
            .ignore()
            .hset_multiple(
                &record,
                &[("status", b"pending".as_slice()), ("context", &body[..])],
            )
            .ignore()
            .pexpire(&record, 600_000)
            .ignore()
            .zadd(&index, &id_text, 0)
            .ignore()
            .pexpire(&index, 600_000)
            .ignore()
            .xadd(key(format_args!("dispatch")), "*", &[("id", &id_text)])
            .ignore();
        let result: redis::RedisResult<()> = pipe.query_async(&mut redis).await;
        match result {
            Ok(()) => Response::new(Full::new(Bytes::from_static(b"{}"))),
            Err(_) => status(StatusCode::SERVICE_UNAVAILABLE),
        }
    }

    fn status(code: StatusCode) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = code;
        response
    }
}
