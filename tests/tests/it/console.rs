//! The operator web console over HTTP, without a browser (DESIGN §11): login, sessions and
//! CSRF, security headers, escaping, catalog changes through forms with their audit, the
//! conflict and its take-over, the one-time secret, pagination. A real control plane on a
//! fresh SQLite catalog.

use switchboard_tests::console::Console;
use switchboard_tests::{ADMIN_TOKEN, Backend, ControlPlane, TestDb};

async fn boot() -> anyhow::Result<(TestDb, ControlPlane, Console)> {
    let db = TestDb::fresh(Backend::Sqlite).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let console = Console::new(&cp.http_url)?;
    Ok((db, cp, console))
}

/// The id in a redirect to `/console/<kind>/<id>`.
fn id_in(location: Option<&str>, kind: &str) -> String {
    location
        .and_then(|l| l.strip_prefix(&format!("/console/{kind}/")))
        .map(|rest| rest.split(['?', '/']).next().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_login_and_the_right_token() -> anyhow::Result<()> {
    let (_db, _cp, mut c) = boot().await?;
    let root = c.get("/").await?;
    assert_eq!((root.status, root.location()), (303, Some("/console/")));
    for path in [
        "/console/",
        "/console/nodes",
        "/console/audit",
        "/console/projects/x",
    ] {
        let page = c.get(path).await?;
        assert_eq!(page.status, 303, "{path}");
        assert!(
            page.location()
                .is_some_and(|l| l.starts_with("/console/login?next=")),
            "{path}: {:?}",
            page.location()
        );
    }
    // The assets and the login page are open.
    assert_eq!(c.get("/console/assets/console.js").await?.status, 200);
    assert_eq!(c.get("/console/assets/console.css").await?.status, 200);

    let wrong = c.login("not-the-admin-token").await?;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("not this control plane"),
        "{}",
        wrong.body
    );
    assert!(!c.has_cookie("sb_session"));

    // A login POST without the double-submit token is refused before the token is looked at.
    let forged = c
        .post(
            "/console/login",
            &[("_csrf", "forged"), ("token", ADMIN_TOKEN)],
        )
        .await?;
    assert_eq!(forged.status, 403);
    assert!(!c.has_cookie("sb_session"));

    let ok = c.login(ADMIN_TOKEN).await?;
    assert_eq!((ok.status, ok.location()), (303, Some("/console/")));
    let cookie = ok.header("set-cookie").unwrap_or_default();
    let session = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("sb_session="))
        .unwrap_or_default();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(session.contains(attribute), "{session} ({cookie})");
    }
    let home = c.get("/console/").await?;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Projects"));
    // A login page for the logged in goes where it was asked to.
    let again = c.get("/console/login?next=/console/nodes").await?;
    assert_eq!(again.location(), Some("/console/nodes"));
    // Never off the console.
    let away = c.get("/console/login?next=//evil.example/").await?;
    assert_eq!(away.location(), Some("/console/"));

    // Logging out ends the session.
    let out = c.submit("/console/logout", &[]).await?;
    assert_eq!((out.status, out.location()), (303, Some("/console/login")));
    assert_eq!(c.get("/console/").await?.status, 303);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() -> anyhow::Result<()> {
    let (_db, _cp, mut c) = boot().await?;
    c.login(ADMIN_TOKEN).await?;
    for path in [
        "/console/login",
        "/console/",
        "/console/nodes",
        "/console/nowhere",
    ] {
        let page = c.get(path).await?;
        let csp = page.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(page.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(
            page.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        // No inline script anywhere.
        assert!(!page.body.contains("<script>"), "{path}");
    }
    assert_eq!(c.get("/console/nowhere").await?.status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_session_token_and_this_origin() -> anyhow::Result<()> {
    let (_db, cp, mut c) = boot().await?;
    c.login(ADMIN_TOKEN).await?;
    let none = c.post("/console/projects", &[("name", "acme")]).await?;
    assert_eq!(none.status, 403);
    let wrong = c
        .post(
            "/console/projects",
            &[("_csrf", "0".repeat(64).as_str()), ("name", "acme")],
        )
        .await?;
    assert_eq!(wrong.status, 403);
    // The right token from another site's page.
    let csrf = c.csrf.clone();
    let cross = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .post(format!("{}/console/projects", cp.http_url))
        .header("origin", "http://evil.example")
        .header("cookie", c.cookie_header())
        .form(&[("_csrf", csrf.as_str()), ("name", "acme")])
        .send()
        .await?;
    assert_eq!(cross.status(), 403);
    let mut admin = cp.admin().await?;
    assert!(admin.projects().await?.is_empty(), "nothing was created");

    let made = c.submit("/console/projects", &[("name", "acme")]).await?;
    assert_eq!(made.status, 303);
    let projects = admin.projects().await?;
    assert_eq!(projects.len(), 1);
    // Console changes are audited as the console's.
    let audit = admin.audit(10).await?;
    assert_eq!(audit[0].actor, "console");
    assert_eq!(audit[0].action, "project.create");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_shown_as_text() -> anyhow::Result<()> {
    let (_db, _cp, mut c) = boot().await?;
    c.login(ADMIN_TOKEN).await?;
    let evil = "<script>alert('x')</script>";
    let made = c.submit("/console/projects", &[("name", evil)]).await?;
    let project = id_in(made.location(), "projects");
    let workflow = c
        .submit(
            &format!("/console/projects/{project}/workflows"),
            &[
                ("name", "<img src=x onerror=alert(1)>"),
                ("status", "draft"),
            ],
        )
        .await?;
    let workflow = id_in(workflow.location(), "workflows");
    for path in [
        "/console/".to_owned(),
        format!("/console/projects/{project}"),
        format!("/console/workflows/{workflow}"),
        "/console/audit".to_owned(),
    ] {
        let page = c.get(&path).await?;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains(evil), "{path}");
        assert!(!page.body.contains("<img src=x"), "{path}");
    }
    let page = c.get(&format!("/console/projects/{project}")).await?;
    assert!(page.body.contains("&#60;script&#62;"), "{}", page.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_names_its_holder_and_offers_to_take_its_place() -> anyhow::Result<()> {
    let (_db, cp, mut c) = boot().await?;
    c.login(ADMIN_TOKEN).await?;
    let project = id_in(
        c.submit("/console/projects", &[("name", "acme")])
            .await?
            .location(),
        "projects",
    );
    let number = c
        .submit(
            &format!("/console/projects/{project}/numbers"),
            &[
                ("phone_number_id", "106540352242922"),
                ("display_phone_number", "+15550783881"),
                ("access_token", "EAAG-secret-token"),
                ("is_default", "on"),
            ],
        )
        .await?;
    assert_eq!(number.status, 303, "{}", number.body);
    let page = c.get(&format!("/console/projects/{project}")).await?;
    assert!(page.body.contains("106540352242922"));
    assert!(
        !page.body.contains("EAAG-secret-token"),
        "the token is write-only"
    );

    let mut workflows = Vec::new();
    for name in ["first", "second"] {
        let made = c
            .submit(
                &format!("/console/projects/{project}/workflows"),
                &[("name", name), ("status", "active")],
            )
            .await?;
        workflows.push(id_in(made.location(), "workflows"));
    }
    let trigger = [
        ("type", "inbound_message"),
        ("phone_number_id", "106540352242922"),
        ("active", "on"),
    ];
    let first = c
        .submit(
            &format!("/console/workflows/{}/triggers", workflows[0]),
            &trigger,
        )
        .await?;
    assert_eq!(first.status, 303, "{}", first.body);
    let second = c
        .submit(
            &format!("/console/workflows/{}/triggers", workflows[1]),
            &trigger,
        )
        .await?;
    assert_eq!(second.status, 409);
    let mut admin = cp.admin().await?;
    let holder = admin.triggers_of(&workflows[0]).await?.remove(0);
    assert!(second.body.contains(&holder.id), "names the holder");
    assert!(
        second
            .body
            .contains(&format!("href=\"/console/workflows/{}\"", workflows[0])),
        "links its workflow"
    );
    assert!(
        second
            .body
            .contains("Deactivate that one and activate this")
    );
    assert!(
        admin.triggers_of(&workflows[1]).await?.is_empty(),
        "nothing written"
    );

    // The offer: one transaction, both changes audited.
    let form = |name: &str| switchboard_tests::console::field_value(&second.body, name);
    assert_eq!(form("replacing").as_deref(), Some(holder.id.as_str()));
    let taken = c
        .submit(
            &format!("/console/workflows/{}/triggers", workflows[1]),
            &[
                ("type", "inbound_message"),
                ("phone_number_id", "106540352242922"),
                ("active", "on"),
                ("replacing", &holder.id),
            ],
        )
        .await?;
    assert_eq!(taken.status, 303, "{}", taken.body);
    assert!(!admin.triggers_of(&workflows[0]).await?[0].active);
    assert!(admin.triggers_of(&workflows[1]).await?[0].active);
    let actions: Vec<String> = admin
        .audit(2)
        .await?
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["trigger.create", "trigger.deactivate"]);

    // Activating the old one now conflicts the other way; its take-over swaps them back.
    let old = &holder.id;
    let refused = c
        .submit(&format!("/console/triggers/{old}/activate"), &[])
        .await?;
    assert_eq!(refused.status, 409);
    let new = admin.triggers_of(&workflows[1]).await?.remove(0);
    assert!(refused.body.contains(&new.id));
    let back = c
        .submit(
            &format!("/console/triggers/{old}/take-over"),
            &[("holder", &new.id)],
        )
        .await?;
    assert_eq!(back.status, 303, "{}", back.body);
    assert!(admin.triggers_of(&workflows[0]).await?[0].active);
    assert!(!admin.triggers_of(&workflows[1]).await?[0].active);
    // Taking over from a trigger that holds nothing is refused, and changes nothing.
    let bogus = c
        .submit(
            &format!("/console/triggers/{}/take-over", new.id),
            &[("holder", &new.id)],
        )
        .await?;
    assert_eq!(bogus.status, 409, "{}", bogus.body);
    assert!(admin.triggers_of(&workflows[0]).await?[0].active);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_secret_is_shown_once() -> anyhow::Result<()> {
    let (_db, cp, mut c) = boot().await?;
    c.login(ADMIN_TOKEN).await?;
    let project = id_in(
        c.submit("/console/projects", &[("name", "acme")])
            .await?
            .location(),
        "projects",
    );
    let made = c
        .submit(
            &format!("/console/projects/{project}/api-keys"),
            &[("name", "backend"), ("burst_limit", "20")],
        )
        .await?;
    assert_eq!(made.status, 200);
    assert_eq!(made.header("cache-control"), Some("no-store"));
    let start = made
        .body
        .find("<pre id=\"secret\">")
        .map(|i| i + 17)
        .unwrap_or(0);
    let secret = made.body[start..]
        .split('<')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(secret.starts_with("sbk_"), "{secret}");
    let page = c.get(&format!("/console/projects/{project}")).await?;
    assert!(page.body.contains("backend"));
    assert!(page.body.contains("20/s"));
    assert!(!page.body.contains(&secret), "never shown again");
    let key = cp.admin().await?.api_keys(&project).await?.remove(0);
    assert!(secret.starts_with(&key.prefix));

    let bad = c
        .submit(
            &format!("/console/projects/{project}/api-keys"),
            &[("name", "x"), ("burst_limit", "lots")],
        )
        .await?;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("burst_limit"));
    let revoked = c
        .submit(&format!("/console/api-keys/{}/revoke", key.id), &[])
        .await?;
    assert_eq!(revoked.status, 303);
    let page = c.get(&format!("/console/projects/{project}")).await?;
    assert!(page.body.contains("revoked"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_are_paged_and_filtered_in_the_url() -> anyhow::Result<()> {
    let (_db, cp, mut c) = boot().await?;
    c.login(ADMIN_TOKEN).await?;
    let mut admin = cp.admin().await?;
    let project = admin.project("acme").await?;
    let workflow = admin.workflow(&project.id, "many", "active").await?;
    let events = switchboard_proto::wire::EventType::ALL;
    // 60 inactive event triggers (inactive ones never conflict) and one API trigger.
    let mut spec = switchboard_tests::admin::spec("whatsapp_event", None, Some(events[0].as_str()));
    spec.inactive = true;
    for _ in 0..60 {
        admin.trigger(&workflow.id, spec.clone()).await?;
    }
    admin
        .trigger(
            &workflow.id,
            switchboard_tests::admin::spec("api_call", None, None),
        )
        .await?;
    let path = format!("/console/workflows/{}", workflow.id);
    let first = c.get(&path).await?;
    assert_eq!(first.status, 200);
    assert!(first.body.contains("Triggers (61)"));
    assert_eq!(first.body.matches("id=\"trigger-").count(), 50);
    assert!(first.body.contains("?page=1"), "a next page");
    let second = c.get(&format!("{path}?page=1")).await?;
    assert_eq!(second.body.matches("id=\"trigger-").count(), 11);
    let api = c.get(&format!("{path}?type=api_call")).await?;
    assert!(api.body.contains("Triggers (1)"));
    assert!(api.body.contains("<option value=\"api_call\" selected>"));
    let inactive = c
        .get(&format!("{path}?state=inactive&type=whatsapp_event"))
        .await?;
    assert!(inactive.body.contains("Triggers (60)"));
    assert!(
        inactive.body.contains("state=inactive"),
        "filters stay in the links"
    );
    // The API trigger's curl, and what to do without a data plane.
    assert!(first.body.contains("id=\"curl\""));
    assert!(first.body.contains(&format!(
        "/platform/v1/workflows/{}/executions",
        workflow.id
    )));
    assert!(first.body.contains("no data-plane node is connected"));
    Ok(())
}

/// The Flow Test of each trigger type, from the console through a connected data plane
/// (node token + project), then the execution and conversation pages read back the same
/// way; another project's records are not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_test_runs_each_trigger_type_on_a_data_plane() -> anyhow::Result<()> {
    use switchboard_tests::stack::Stack;
    use switchboard_tests::whatsapp::fixture;
    let mut s = Stack::start(false).await?;
    let (project, workflow) = (s.tenant.project_id.clone(), s.tenant.workflow_id.clone());
    let pnid = s.pnid().to_owned();
    for (kind, number, event) in [
        ("inbound_message", Some(pnid.as_str()), None),
        ("whatsapp_event", None, Some("whatsapp.message.read")),
    ] {
        let mut spec = switchboard_tests::admin::spec(kind, number, event);
        spec.inactive = true;
        s.admin.trigger(&workflow, spec).await?;
    }
    s.sync().await?;
    let answer = s.post(&fixture("message_text.json", &pnid)?).await?;
    let conversation = answer["messages"][0]["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The node advertises where its Executions service is.
    let nodes = s.admin.nodes().await?;
    assert_eq!(nodes[0].grpc_address, s.dp.grpc_url, "{nodes:?}");

    let mut c = Console::new(&s.cp.http_url)?;
    c.login(ADMIN_TOKEN).await?;
    let test = format!("/console/workflows/{workflow}/test");
    let runs: [&[(&str, &str)]; 3] = [
        &[
            ("trigger_type", "api_call"),
            (
                "body",
                r#"{"workflow_execution": {"phone_number": "+15550001111"}}"#,
            ),
        ],
        &[
            ("trigger_type", "inbound_message"),
            ("conversation_id", &conversation),
            ("message", "hello from the console"),
        ],
        &[
            ("trigger_type", "whatsapp_event"),
            ("conversation_id", &conversation),
            ("event_type", "whatsapp.message.read"),
        ],
    ];
    let mut executions = Vec::new();
    for (form, kind) in runs
        .iter()
        .zip(["api_call", "inbound_message", "whatsapp_event"])
    {
        let started = c.submit(&test, form).await?;
        assert_eq!(started.status, 303, "{kind}: {}", started.body);
        let location = started.location().unwrap_or_default().to_owned();
        assert!(
            location.ends_with(&format!("?project={project}")),
            "{location}"
        );
        let page = c.get(&location).await?;
        assert_eq!(page.status, 200, "{kind}: {}", page.body);
        assert!(page.body.contains(kind), "{kind}");
        assert!(page.body.contains("TEST"), "{kind}: the TEST badge");
        assert_eq!(
            page.body.contains(">observer<"),
            kind == "whatsapp_event",
            "{kind}"
        );
        assert!(
            page.body.contains("&#34;test&#34;: true"),
            "{kind}: the context"
        );
        let id = location
            .trim_start_matches("/console/executions/")
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let stored = s.execution(&id).await?;
        assert_eq!(stored["trigger_type"], kind);
        assert_eq!(stored["test"], true);
        executions.push(id);
    }
    let page = c.get(&format!("/console/workflows/{workflow}")).await?;
    for id in &executions {
        assert!(
            page.body.contains(id.as_str()),
            "recent executions list {id}"
        );
    }
    let page = c
        .get(&format!(
            "/console/conversations/{conversation}?project={project}"
        ))
        .await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("active"));

    // Another project's view of the same records: not found.
    let other = s.admin.project("other").await?;
    let foreign = c
        .get(&format!(
            "/console/executions/{}?project={}",
            executions[0], other.id
        ))
        .await?;
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    let foreign = c
        .get(&format!(
            "/console/conversations/{conversation}?project={}",
            other.id
        ))
        .await?;
    assert_eq!(foreign.status, 404);
    // A test that names no conversation is refused with the node's reason.
    let refused = c
        .submit(
            &test,
            &[("trigger_type", "inbound_message"), ("message", "x")],
        )
        .await?;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("conversation_id"), "{}", refused.body);
    // Without the project in the link, the page asks for it.
    let ask = c
        .get(&format!("/console/executions/{}", executions[0]))
        .await?;
    assert!(ask.body.contains("Which project"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_workflow_takes_its_triggers_and_leaves_its_project() -> anyhow::Result<()> {
    let (_db, cp, mut c) = boot().await?;
    c.login(ADMIN_TOKEN).await?;
    let mut admin = cp.admin().await?;
    let project = admin.project("acme").await?;
    let workflow = admin.workflow(&project.id, "gone", "draft").await?;
    admin
        .trigger(
            &workflow.id,
            switchboard_tests::admin::spec("api_call", None, None),
        )
        .await?;
    let page = c
        .get(&format!("/console/workflows/{}", workflow.id))
        .await?;
    assert!(page.body.contains("Delete the workflow"));
    let gone = c
        .submit(&format!("/console/workflows/{}/delete", workflow.id), &[])
        .await?;
    assert_eq!(
        gone.location(),
        Some(format!("/console/projects/{}", project.id).as_str())
    );
    assert_eq!(
        c.get(&format!("/console/workflows/{}", workflow.id))
            .await?
            .status,
        404
    );
    let audit = admin.audit(1).await?;
    assert_eq!(
        (audit[0].action.as_str(), audit[0].actor.as_str()),
        ("workflow.delete", "console")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_is_configured_with_the_rules_of_a_new_one() -> anyhow::Result<()> {
    let (_db, cp, mut c) = boot().await?;
    c.login(ADMIN_TOKEN).await?;
    let mut admin = cp.admin().await?;
    let project = admin.project("acme").await?;
    admin.number(&project.id, "106540352242922", false).await?;
    let workflow = admin.workflow(&project.id, "events", "active").await?;
    let read = "whatsapp.message.read";
    let sent = "whatsapp.message.sent";
    let on_number = admin
        .trigger(
            &workflow.id,
            switchboard_tests::admin::spec("whatsapp_event", Some("106540352242922"), Some(read)),
        )
        .await?;
    let everywhere = admin
        .trigger(
            &workflow.id,
            switchboard_tests::admin::spec("whatsapp_event", None, Some(sent)),
        )
        .await?;
    let path = format!(
        "/console/workflows/{}?configure={}",
        workflow.id, on_number.id
    );
    let form = c.get(&path).await?;
    assert!(form.body.contains("id=\"configure\""));
    assert!(
        form.body
            .contains("<option value=\"106540352242922\" selected>")
    );
    assert!(
        form.body
            .contains(&format!("<option value=\"{read}\" selected>"))
    );

    // Project-wide for another event: configured in place, audited.
    let configure = format!("/console/triggers/{}/configure", on_number.id);
    let done = c
        .submit(
            &configure,
            &[
                ("phone_number_id", ""),
                ("event_type", "whatsapp.message.failed"),
            ],
        )
        .await?;
    assert_eq!(done.status, 303, "{}", done.body);
    let t = admin.triggers_of(&workflow.id).await?;
    let t = t
        .iter()
        .find(|t| t.id == on_number.id)
        .cloned()
        .unwrap_or_default();
    assert_eq!(t.event_type.as_deref(), Some("whatsapp.message.failed"));
    assert_eq!(t.phone_number_id, None);
    assert_eq!(admin.audit(1).await?[0].action, "trigger.configure");
    // Onto the event the other one covers everywhere: its slot, refused, named, unchanged.
    let refused = c
        .submit(
            &configure,
            &[("phone_number_id", "106540352242922"), ("event_type", sent)],
        )
        .await?;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains(&everywhere.id));
    let t = admin.triggers_of(&workflow.id).await?;
    let t = t
        .iter()
        .find(|t| t.id == on_number.id)
        .cloned()
        .unwrap_or_default();
    assert_eq!(t.event_type.as_deref(), Some("whatsapp.message.failed"));
    // A number of no project of this one: refused with the field.
    let bad = c
        .submit(
            &configure,
            &[("phone_number_id", "999999999999999"), ("event_type", read)],
        )
        .await?;
    assert_eq!(bad.status, 404, "{}", bad.body);
    assert!(bad.body.contains("phone_number_id"));
    Ok(())
}
