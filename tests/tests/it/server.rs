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
