//! The real `switchboard` binary against a real control plane: JSON output, exit codes,
//! messages on stderr.

use serde_json::Value;
use std::process::Output;
use switchboard_tests::{ADMIN_TOKEN, Backend, ControlPlane, TestDb, binary};

struct Cli {
    url: String,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let out = tokio::process::Command::new(binary("switchboard")?)
            .arg("--control-plane")
            .arg(&self.url)
            .args(args)
            .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .await?;
        Ok(out)
    }

    /// Runs with `-o json`, expects exit 0 and returns the parsed output.
    async fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let out = self.run(&[&["-o", "json"], args].concat()).await?;
        anyhow::ensure!(
            out.status.code() == Some(0),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_owned()
}

async fn boot() -> anyhow::Result<(TestDb, ControlPlane, Cli)> {
    let db = TestDb::fresh(Backend::Sqlite).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let cli = Cli {
        url: cp.grpc_url.clone(),
    };
    Ok((db, cp, cli))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_walkthrough_creates_and_lists_with_json_output() -> anyhow::Result<()> {
    let (_db, _cp, cli) = boot().await?;
    let project = cli.json(&["projects", "create", "--name", "demo"]).await?;
    let p = id(&project);
    assert_eq!(project["name"], "demo");

    let number = cli
        .json(&[
            "numbers",
            "create",
            "--project",
            &p,
            "--phone-number-id",
            "123456789012345",
            "--display-phone-number",
            "+15550000000",
            "--default",
            "--access-token",
            "EAAG-secret",
        ])
        .await?;
    assert_eq!(
        number["id"], "1",
        "a number's id is its whatsapp_config_id, as a string"
    );
    assert_eq!(number["is_default"], true);
    assert_eq!(number["has_access_token"], true);
    assert!(!number.to_string().contains("EAAG-secret"));

    let workflow = cli
        .json(&[
            "workflows",
            "create",
            "--project",
            &p,
            "--name",
            "demo",
            "--status",
            "active",
        ])
        .await?;
    let w = id(&workflow);
    let api = cli
        .json(&["triggers", "create", "--workflow", &w, "--type", "api_call"])
        .await?;
    assert_eq!(api["type"], "api_call");
    assert_eq!(api["active"], true);
    let event = cli
        .json(&[
            "triggers",
            "create",
            "--workflow",
            &w,
            "--type",
            "whatsapp_event",
            "--event",
            "whatsapp.message.read",
            "--inactive",
        ])
        .await?;
    assert_eq!(event["active"], false);
    let activated = cli.json(&["triggers", "activate", &id(&event)]).await?;
    assert_eq!(activated["active"], true);

    let listed = cli.json(&["triggers", "list", "--workflow", &w]).await?;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));

    let key = cli
        .json(&[
            "api-keys",
            "create",
            "--project",
            &p,
            "--name",
            "ci",
            "--burst-limit",
            "10",
        ])
        .await?;
    let secret = key["secret"].as_str().unwrap_or_default().to_owned();
    assert!(secret.starts_with("sbk_"));
    let keys = cli.json(&["api-keys", "list", "--project", &p]).await?;
    assert!(
        !keys.to_string().contains(&secret),
        "list never shows the secret"
    );
    let revoked = cli.json(&["api-keys", "revoke", &id(&key)]).await?;
    assert_eq!(revoked["revoked"], true);

    let audit = cli
        .json(&["audit", "list", "--project", &p, "--limit", "2"])
        .await?;
    assert_eq!(audit[0]["action"], "api_key.revoke");
    assert_eq!(audit.as_array().map(Vec::len), Some(2));
    let nodes = cli.json(&["nodes", "list"]).await?;
    assert_eq!(nodes, Value::Array(vec![]));

    // Table output has a header and a row per object.
    let out = cli.run(&["workflows", "list", "--project", &p]).await?;
    let text = String::from_utf8(out.stdout)?;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("STATUS"));
    assert!(lines[1].contains(&w) && lines[1].contains("active"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_replace_reads_a_file_and_is_all_or_nothing() -> anyhow::Result<()> {
    let (_db, _cp, cli) = boot().await?;
    let p = id(&cli.json(&["projects", "create", "--name", "p"]).await?);
    let w = id(&cli
        .json(&["workflows", "create", "--project", &p, "--name", "w"])
        .await?);
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"[{"type": "api_call"},
            {"type": "whatsapp_event", "event": "whatsapp.conversation.created", "active": false}]"#,
    )?;
    let replaced = cli
        .json(&[
            "triggers",
            "replace",
            "--workflow",
            &w,
            "--file",
            &good.to_string_lossy(),
        ])
        .await?;
    assert_eq!(replaced.as_array().map(Vec::len), Some(2));
    assert_eq!(replaced[1]["active"], false);

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"[{"type": "api_call"}, {"type": "api_call"}]"#)?;
    let out = cli
        .run(&[
            "triggers",
            "replace",
            "--workflow",
            &w,
            "--file",
            &bad.to_string_lossy(),
        ])
        .await?;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr)?;
    assert!(
        stderr.contains("triggers[1]") && stderr.contains("conflict"),
        "{stderr}"
    );
    let after = cli.json(&["triggers", "list", "--workflow", &w]).await?;
    assert_eq!(after, replaced, "the refused replace changed nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_exits_1_with_the_server_message_when_refused() -> anyhow::Result<()> {
    let (_db, _cp, cli) = boot().await?;
    let out = cli
        .run(&[
            "triggers",
            "create",
            "--workflow",
            "nope",
            "--type",
            "api_call",
        ])
        .await?;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr)?;
    assert!(
        stderr.contains("workflow_id") && stderr.contains("not a valid id"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // A wrong token is refused too.
    let out = tokio::process::Command::new(binary("switchboard")?)
        .args([
            "--control-plane",
            &cli.url,
            "--admin-token",
            "wrong-token",
            "projects",
            "list",
        ])
        .env_remove("SWITCHBOARD_ADMIN_TOKEN")
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)?.contains("unauthenticated"));
    Ok(())
}

/// The control plane refuses a `phone_number_id` no data plane could route (the rule of
/// `wire::is_phone_number_id`), naming the field; one with a leading zero is accepted (that
/// it routes is `webhooks::numbers_route_exactly_as_the_control_plane_accepted_them`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_refuses_a_phone_number_id_no_data_plane_could_route() -> anyhow::Result<()> {
    let (_db, _cp, cli) = boot().await?;
    let p = id(&cli.json(&["projects", "create", "--name", "acme"]).await?);
    let create = |pnid: &'static str| {
        let p = p.clone();
        let cli = &cli;
        async move {
            cli.run(&[
                "numbers",
                "create",
                "--project",
                &p,
                "--phone-number-id",
                pnid,
                "--display-phone-number",
                "+15550000001",
            ])
            .await
        }
    };
    for refused in [
        "106540352242922106540",
        "10654035224292a",
        "+106540352242922",
    ] {
        let out = create(refused).await?;
        assert_eq!(out.status.code(), Some(1), "{refused}");
        let stderr = String::from_utf8(out.stderr)?;
        assert!(
            stderr.contains("phone_number_id") && stderr.contains("1-20 digits"),
            "{refused}: {stderr}"
        );
    }
    let out = create("0106540352242922").await?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_exits_2_on_usage_errors() -> anyhow::Result<()> {
    let (_db, _cp, cli) = boot().await?;
    for args in [
        vec!["projects", "explode"],
        vec!["triggers", "create", "--workflow", "w", "--type", "cron"],
        vec!["triggers", "list", "--workflow", "w", "--project", "p"],
        vec![
            "triggers",
            "replace",
            "--workflow",
            "w",
            "--file",
            "/nonexistent.json",
        ],
    ] {
        let out = cli.run(&args).await?;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    // Unreachable control plane: a refusal, not a usage error.
    let out = tokio::process::Command::new(binary("switchboard")?)
        .args(["--control-plane", "http://127.0.0.1:1", "projects", "list"])
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(1));
    Ok(())
}
