//! The operator console in a real browser: Debian's Chromium, headless, driven over
//! WebDriver (fantoccini) by Debian's chromedriver (scripts/test installs both; nothing is
//! downloaded).
//! Real control plane, real data plane, the memory store. Screenshots of every screen go to
//! `target/tmp/console-screenshots/` (described in docs/console.md).
//!
//! The whole walk of an operator, in order: log in, create a project, its number and a
//! workflow with a message trigger; hit a conflict on a second workflow and resolve it; run
//! a Flow Test of each trigger type and watch the execution.

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use switchboard_tests::platform::meta_id;
use switchboard_tests::stack::Stack;
use switchboard_tests::whatsapp::text_message;
use switchboard_tests::{ADMIN_TOKEN, bench::free_port};

/// Debian's chromedriver, or `SWITCHBOARD_CHROMEDRIVER`.
fn chromedriver() -> PathBuf {
    std::env::var_os("SWITCHBOARD_CHROMEDRIVER")
        .map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from)
}

/// Debian's Chromium, or `SWITCHBOARD_CHROMIUM`.
fn chromium() -> String {
    std::env::var("SWITCHBOARD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// A browser session on a chromedriver of its own; both end with it.
struct Browser {
    driver: Client,
    _chromedriver: tokio::process::Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    async fn start() -> anyhow::Result<Self> {
        let path = chromedriver();
        anyhow::ensure!(
            path.exists(),
            "{} is missing: install Debian's chromium and chromium-driver (scripts/test does)",
            path.display()
        );
        let port = free_port()?.port();
        let chromedriver = tokio::process::Command::new(&path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        switchboard_tests::bench::wait_http(([127, 0, 0, 1], port).into(), "/status").await?;
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,1600".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium(), "args": args},
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            anyhow::bail!("capabilities are an object");
        };
        let driver = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await?;
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
        std::fs::create_dir_all(&shots)?;
        Ok(Self {
            driver,
            _chromedriver: chromedriver,
            _profile: profile,
            shots,
        })
    }

    async fn shot(&self, name: &str) -> anyhow::Result<()> {
        let png = self.driver.screenshot().await?;
        std::fs::write(self.shots.join(format!("{name}.png")), png)?;
        Ok(())
    }

    async fn goto(&self, url: &str) -> anyhow::Result<()> {
        Ok(self.driver.goto(url).await?)
    }

    async fn find(&self, css: &str) -> anyhow::Result<Element> {
        Ok(self.driver.find(Locator::Css(css)).await?)
    }

    async fn fill(&self, form: &Element, name: &str, value: &str) -> anyhow::Result<()> {
        let field = form.find(Locator::Css(&format!("[name='{name}']"))).await?;
        field.clear().await?;
        field.send_keys(value).await?;
        Ok(())
    }

    async fn choose(&self, form: &Element, name: &str, value: &str) -> anyhow::Result<()> {
        let css = format!("select[name='{name}'] option[value='{value}']");
        form.find(Locator::Css(&css)).await?.click().await?;
        Ok(())
    }

    async fn submit(&self, form: &Element) -> anyhow::Result<()> {
        form.find(Locator::Css("button[type='submit']"))
            .await?
            .click()
            .await?;
        Ok(())
    }

    /// The form posting to a path ending in `action`.
    async fn form(&self, action: &str) -> anyhow::Result<Element> {
        self.find(&format!("form[action$='{action}']")).await
    }

    async fn text(&self) -> anyhow::Result<String> {
        Ok(self.find("main").await?.text().await?)
    }

    async fn path(&self) -> anyhow::Result<String> {
        Ok(self.driver.current_url().await?.path().to_owned())
    }

    /// Waits (up to 10 s) until the page's main text contains `text`.
    async fn wait_for_text(&self, text: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            // A page still loading may swap its <main> under the read: look again.
            if self.text().await.is_ok_and(|t| t.contains(text)) {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{text:?} never appeared on {}",
                self.path().await?
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_triggers_and_runs_the_flow_test_in_a_browser() -> anyhow::Result<()> {
    let mut s = Stack::start(false).await?;
    let b = Browser::start().await?;
    let result = walk(&mut s, &b).await;
    if result.is_err() {
        let _ = b.shot("failure").await;
    }
    b.driver.clone().close().await?;
    result
}

async fn walk(s: &mut Stack, b: &Browser) -> anyhow::Result<()> {
    let console = s.cp.http_url.clone();
    // Log in (the console sends us there first).
    b.goto(&format!("{console}/console/")).await?;
    assert_eq!(b.path().await?, "/console/login");
    b.shot("01-login").await?;
    let login = b.form("/console/login").await?;
    b.fill(&login, "token", "not-the-token").await?;
    b.submit(&login).await?;
    b.wait_for_text("not this control plane's admin token")
        .await?;
    let login = b.form("/console/login").await?;
    b.fill(&login, "token", ADMIN_TOKEN).await?;
    b.submit(&login).await?;
    b.wait_for_text("Projects").await?;
    assert_eq!(b.path().await?, "/console/");
    b.shot("02-overview").await?;

    // A project, its number, a workflow with a message trigger.
    let form = b.form("/console/projects").await?;
    b.fill(&form, "name", "browser <shop>").await?;
    b.submit(&form).await?;
    b.wait_for_text("WhatsApp numbers").await?;
    let project = b
        .path()
        .await?
        .trim_start_matches("/console/projects/")
        .to_owned();
    let pnid = meta_id();
    let form = b.form("/numbers").await?;
    b.fill(&form, "phone_number_id", &pnid).await?;
    b.fill(&form, "display_phone_number", "+15550123456")
        .await?;
    b.fill(&form, "access_token", "EAAG-browser-token").await?;
    b.submit(&form).await?;
    b.wait_for_text(&pnid).await?;
    assert!(!b.driver.source().await?.contains("EAAG-browser-token"));
    let mut workflows = Vec::new();
    for name in ["first", "second"] {
        b.goto(&format!("{console}/console/projects/{project}"))
            .await?;
        let form = b.form("/workflows").await?;
        b.fill(&form, "name", name).await?;
        b.choose(&form, "status", "active").await?;
        b.submit(&form).await?;
        b.wait_for_text("Add a trigger").await?;
        workflows.push(
            b.path()
                .await?
                .trim_start_matches("/console/workflows/")
                .to_owned(),
        );
        let form = b.find("#add-trigger").await?;
        b.choose(&form, "type", "inbound_message").await?;
        b.choose(&form, "phone_number_id", &pnid).await?;
        b.submit(&form).await?;
        if name == "first" {
            b.wait_for_text("routes").await?;
            b.shot("03-project").await?;
        }
    }
    // The second message trigger on the number conflicts: the holder is named and linked.
    b.wait_for_text("Held by trigger").await?;
    let conflict = b.find("#conflict").await?;
    let link = conflict
        .find(Locator::Css(&format!(
            "a[href='/console/workflows/{}']",
            workflows[0]
        )))
        .await?;
    assert_eq!(
        link.text().await?,
        "first",
        "the holder's workflow, by name"
    );
    b.shot("04-conflict").await?;
    b.submit(&conflict.find(Locator::Css("form")).await?)
        .await?;
    b.wait_for_text("routes").await?;
    assert_eq!(
        b.path().await?,
        format!("/console/workflows/{}", workflows[1])
    );
    b.shot("05-workflow").await?;
    let first = s.cp.admin().await?.triggers_of(&workflows[0]).await?;
    assert!(!first[0].active, "the holder was deactivated");

    // An API trigger and an event trigger (inactive: tests run them anyway).
    for (kind, event, active) in [
        ("api_call", "", true),
        ("whatsapp_event", "whatsapp.message.read", false),
    ] {
        let form = b.find("#add-trigger").await?;
        b.choose(&form, "type", kind).await?;
        if !event.is_empty() {
            b.choose(&form, "event_type", event).await?;
        }
        if !active {
            form.find(Locator::Css("input[name='active']"))
                .await?
                .click()
                .await?;
        }
        b.submit(&form).await?;
        b.wait_for_text(kind).await?;
    }
    b.wait_for_text("curl -s -X POST").await?;

    // A customer writes in: the conversation the message and event tests use.
    s.sync().await?;
    let answer = s
        .post(&text_message(&pnid, "15550009999", "wamid.browser.1", "hi"))
        .await?;
    let conversation = answer["messages"][0]["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!conversation.is_empty(), "{answer}");

    // Flow Test: each trigger type, then its execution.
    let tests: [(&str, &str, Option<&str>); 3] = [
        ("test-api", "api_call", None),
        ("test-message", "inbound_message", None),
        (
            "test-event",
            "whatsapp_event",
            Some("whatsapp.message.read"),
        ),
    ];
    for (i, (form_id, kind, event)) in tests.into_iter().enumerate() {
        b.goto(&format!("{console}/console/workflows/{}", workflows[1]))
            .await?;
        let form = b.find(&format!("#{form_id}")).await?;
        // Open its <details> when it is folded.
        let summary = form
            .find(Locator::XPath("./ancestor::details/summary"))
            .await?;
        if !form.is_displayed().await? {
            summary.click().await?;
        }
        if kind != "api_call" {
            b.fill(&form, "conversation_id", &conversation).await?;
        }
        if let Some(event) = event {
            b.choose(&form, "event_type", event).await?;
        }
        if i == 0 {
            b.shot("06-flow-test").await?;
        }
        b.submit(&form).await?;
        b.wait_for_text("Context").await?;
        assert!(b.path().await?.starts_with("/console/executions/"));
        let text = b.text().await?;
        assert!(text.contains(kind), "{kind}: {text}");
        let mut badges = Vec::new();
        for badge in b.driver.find_all(Locator::Css("#execution .badge")).await? {
            badges.push(badge.text().await?);
        }
        assert!(badges.iter().any(|t| t == "TEST"), "{kind}: {badges:?}");
        let observer = badges.iter().any(|t| t == "observer");
        assert_eq!(observer, kind == "whatsapp_event", "{kind}: {badges:?}");
        b.shot(&format!("07-execution-{kind}")).await?;
    }

    // The conversation, the nodes and the audit log.
    b.goto(&format!(
        "{console}/console/conversations/{conversation}?project={project}"
    ))
    .await?;
    b.wait_for_text("+15550009999").await?;
    b.shot("08-conversation").await?;
    b.goto(&format!("{console}/console/nodes")).await?;
    b.wait_for_text(&s.dp.node_id).await?;
    b.shot("09-nodes").await?;
    b.goto(&format!("{console}/console/audit")).await?;
    b.wait_for_text("trigger.deactivate").await?;
    b.shot("10-audit").await?;
    // Logging out ends it.
    b.submit(&b.form("/console/logout").await?).await?;
    b.wait_for_text("admin token").await?;
    b.goto(&format!("{console}/console/")).await?;
    assert_eq!(b.path().await?, "/console/login");
    Ok(())
}
