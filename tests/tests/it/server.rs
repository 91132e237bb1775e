//! The control-plane process: HTTP health and metrics, the `migrate` command, flags.

use switchboard_tests::{Backend, ControlPlane, TestDb, binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_are_served_on_the_http_port() -> anyhow::Result<()> {
    let db = TestDb::fresh(Backend::Postgres).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut admin = cp.admin().await?;
    admin.project("p").await?;

    let health = reqwest::get(format!("{}/healthz", cp.http_url)).await?;
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await?;
    assert_eq!(body["status"], "ok");

    let metrics = reqwest::get(format!("{}/metrics", cp.http_url)).await?;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await?;
    assert!(text.contains("switchboard_routing_version"), "{text}");
    assert!(text.contains(r#"switchboard_catalog_changes_total{action="project.create"}"#));
    cp.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_pending_migrations_once() -> anyhow::Result<()> {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let db = TestDb::fresh(backend).await?;
        let run = || {
            tokio::process::Command::new(binary("control-plane").unwrap_or_default())
                .args(["migrate", "--database-url", &db.url])
                .output()
        };
        let first = run().await?;
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        assert!(String::from_utf8(first.stdout)?.contains("applied m20261125_000001_catalog"));
        let second = run().await?;
        assert!(second.status.success());
        assert_eq!(
            String::from_utf8(second.stdout)?.trim(),
            "schema is up to date"
        );
        // A migrated database serves.
        ControlPlane::start(&db.url).await?.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_exit_with_one_line_naming_the_flag() -> anyhow::Result<()> {
    let out = tokio::process::Command::new(binary("control-plane")?)
        .args([
            "serve",
            "--admin-token",
            "short",
            "--node-token",
            "long-enough-token",
        ])
        .env_remove("SWITCHBOARD_ADMIN_TOKEN")
        .env_remove("SWITCHBOARD_NODE_TOKEN")
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr)?;
    assert!(stderr.contains("--admin-token"), "{stderr}");

    let out = tokio::process::Command::new(binary("control-plane")?)
        .args([
            "--grpc-listen",
            "not-an-address",
            "--admin-token",
            "long-enough-token",
        ])
        .args(["--node-token", "long-enough-token"])
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)?.contains("--grpc-listen"));
    Ok(())
}

/// The data-plane process counts and times requests by route template, method and status
/// (requests to no route count as `unmatched`). The API trigger, answered without the
/// router, goes through the same layers as every route: counted alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_plane_counts_requests_by_route_template() -> anyhow::Result<()> {
    use switchboard_tests::bench::{data_plane_command, free_port, wait_http};
    let db = TestDb::fresh(Backend::Sqlite).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let state = tempfile::tempdir()?;
    let http = free_port()?;
    let mut dp = data_plane_command(
        &cp.grpc_url,
        "metrics-dp",
        (http, free_port()?),
        state.path(),
    )?
    .args(["--redis-url", "memory"])
    .spawn()?;
    wait_http(http, "/readyz").await?;
    let client = reqwest::Client::new();
    let base = format!("http://{http}");
    for _ in 0..2 {
        let reply = client
            .post(format!(
                "{base}/platform/v1/workflows/01a214e0-0000-7000-8000-00000000000b/executions"
            ))
            .bearer_auth("sk_unknown")
            .json(&serde_json::json!({"workflow_execution": {"phone_number": "+1234567890"}}))
            .send()
            .await?;
        assert_eq!(reply.status(), 401);
    }
    // A workflow id that needs percent-decoding goes through the router: the same route.
    let reply = client
        .post(format!(
            "{base}/platform/v1/workflows/%30{}/executions",
            "1a214e0-0000-7000-8000-00000000000b"
        ))
        .bearer_auth("sk_unknown")
        .json(&serde_json::json!({"workflow_execution": {"phone_number": "+1234567890"}}))
        .send()
        .await?;
    assert_eq!(reply.status(), 401);
    assert_eq!(
        client.get(format!("{base}/nowhere")).send().await?.status(),
        404
    );

    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let count = |labels: &str| {
        let prefix = format!("switchboard_http_requests_total{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    assert_eq!(
        count(
            r#"route="/platform/v1/workflows/{workflow_id}/executions",method="POST",status="401""#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        count(r#"route="unmatched",method="GET",status="404""#),
        Some(1.0),
        "{text}"
    );
    assert!(
        count(r#"route="/readyz",method="GET",status="200""#) >= Some(1.0),
        "{text}"
    );
    assert!(
        text.contains(r#"switchboard_http_request_duration_seconds_count{route="/platform/v1/workflows/{workflow_id}/executions",method="POST",status="401"} 3"#),
        "{text}"
    );
    // A histogram (its buckets add up across nodes), every request within the last bucket.
    assert!(
        text.contains(r#"switchboard_http_request_duration_seconds_bucket{route="/platform/v1/workflows/{workflow_id}/executions",method="POST",status="401",le="10"} 3"#),
        "{text}"
    );
    dp.kill().await?;
    cp.stop().await
}

/// A webhook for a number no project has is answered 200 (Meta must not retry it), counted
/// by reason in `/metrics` and logged at WARN with its `phone_number_id` — at most once a
/// second per reason, however many arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_updates_are_counted_and_warned_at_most_once_a_second() -> anyhow::Result<()> {
    use switchboard_tests::bench::{data_plane_command, free_port, wait_http};
    use tokio::io::AsyncReadExt;
    let db = TestDb::fresh(Backend::Sqlite).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let state = tempfile::tempdir()?;
    let http = free_port()?;
    let mut dp = data_plane_command(
        &cp.grpc_url,
        "unrouted-dp",
        (http, free_port()?),
        state.path(),
    )?
    .args(["--redis-url", "memory"])
    .env(
        "SWITCHBOARD_META_APP_SECRET",
        switchboard_tests::META_APP_SECRET,
    )
    .stderr(std::process::Stdio::piped())
    .spawn()?;
    wait_http(http, "/readyz").await?;
    let meta = switchboard_tests::whatsapp::Meta::new(&format!("http://{http}"));
    let started = std::time::Instant::now();
    let posts = 20;
    for n in 0..posts {
        let body = switchboard_tests::whatsapp::text_message(
            "999000111222333",
            "15550107777",
            &format!("wamid.UNR{n}"),
            "hello",
        );
        assert_eq!(meta.post(&body).await?.status, 200);
    }
    let elapsed = started.elapsed().as_secs();
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await?
        .text()
        .await?;
    let line = format!("switchboard_webhook_ignored_total{{reason=\"number\"}} {posts}");
    assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    dp.kill().await?;
    let mut stderr = String::new();
    if let Some(mut pipe) = dp.stderr.take() {
        pipe.read_to_string(&mut stderr).await?;
    }
    let warned = stderr
        .lines()
        .filter(|l| l.contains("matches no project") && l.contains("999000111222333"))
        .count();
    assert!(
        (1..=1 + elapsed as usize).contains(&warned),
        "{warned} WARN lines for {posts} updates in {elapsed} s:\n{stderr}"
    );
    cp.stop().await
}
