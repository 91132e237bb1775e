//! `switchboard dev` as a newcomer meets it: the real binary on its default ports, its
//! printed curl run as printed, a clean Ctrl-C, and a second start on the same data.

use std::process::Stdio;
use std::time::Duration;
use switchboard_tests::binary;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `switchboard dev` in `dir` and returns it with the welcome text it printed.
async fn start(dir: &std::path::Path) -> anyhow::Result<(Child, String)> {
    let mut command = Command::new(binary("switchboard")?);
    command
        .arg("dev")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("SWITCHBOARD_") {
            command.env_remove(name);
        }
    }
    let mut child = command.spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut welcome = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await? {
            welcome.push_str(&line);
            welcome.push('\n');
            if line.contains("nodes list") {
                return Ok::<_, anyhow::Error>(());
            }
        }
        anyhow::bail!("switchboard dev exited early:\n{welcome}")
    };
    tokio::time::timeout(Duration::from_secs(60), read).await??;
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, welcome))
}

/// The shell command printed after `heading` (lines continued with `\`).
fn command_after(welcome: &str, heading: &str) -> anyhow::Result<String> {
    let mut lines = welcome
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip(1);
    let mut command = String::new();
    for line in lines.by_ref() {
        command.push_str(line.trim());
        if !line.ends_with('\\') {
            break;
        }
        command.pop();
    }
    anyhow::ensure!(
        command.starts_with("curl"),
        "no curl after {heading:?} in:\n{welcome}"
    );
    Ok(command)
}

async fn sh(command: &str) -> anyhow::Result<serde_json::Value> {
    let out = Command::new("sh").arg("-c").arg(command).output().await?;
    anyhow::ensure!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Runs the printed start curl until the data plane has its first table, then reads the
/// execution back with the printed GET.
async fn try_the_printed_curls(welcome: &str) -> anyhow::Result<serde_json::Value> {
    let start = command_after(welcome, "Start the demo workflow:")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let accepted = loop {
        let reply = sh(&start).await?;
        if reply["tracking_id"].is_string() {
            break reply;
        }
        anyhow::ensure!(
            reply["error"]["code"] == "unavailable" && tokio::time::Instant::now() < deadline,
            "the printed curl failed: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(accepted["message"], "Workflow execution initiated");
    let tracking_id = accepted["tracking_id"].as_str().unwrap_or_default();
    let get =
        command_after(welcome, "Then read the execution")?.replace("TRACKING_ID", tracking_id);
    let execution = sh(&get).await?;
    assert_eq!(execution["tracking_id"], tracking_id);
    assert_eq!(execution["status"], "pending");
    let context = &execution["execution_context"];
    assert_eq!(context["system"]["trigger_type"], "api_call");
    assert_eq!(context["context"]["phone_number"], "+1234567890");
    assert_eq!(context["vars"]["name"], "Ada");
    Ok(accepted)
}

async fn interrupt(mut child: Child) -> anyhow::Result<()> {
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("already exited"))?;
    let status = Command::new("kill")
        .arg("-INT")
        .arg(pid.to_string())
        .status()
        .await?;
    anyhow::ensure!(status.success(), "kill -INT failed");
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    anyhow::ensure!(exit.success(), "Ctrl-C did not stop cleanly: {exit}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchboard_dev_prints_a_curl_that_starts_the_demo_and_restarts_on_its_data()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (child, welcome) = start(dir.path()).await?;
    let first = try_the_printed_curls(&welcome).await?;
    interrupt(child).await?;

    let (child, again) = start(dir.path()).await?;
    assert_eq!(
        command_after(&again, "Start the demo workflow:")?,
        command_after(&welcome, "Start the demo workflow:")?,
        "the second start reuses the demo and its key"
    );
    let second = try_the_printed_curls(&again).await?;
    assert_eq!(first["workflow_id"], second["workflow_id"]);
    assert_ne!(first["tracking_id"], second["tracking_id"]);
    interrupt(child).await
}
