//! Routing decisions (DESIGN §13) end to end: every outcome produced by a real signed
//! webhook, API call, test run or resume, read back over HTTP and gRPC, scoped to its
//! project; updates of no project kept by the node. Each runs against the real Redis (own
//! key prefix) and the memory store.

use serde_json::{Value, json};
use switchboard_proto::v1 as pb;
use switchboard_tests::platform::Tenant;
use switchboard_tests::runner::Runner;
use switchboard_tests::stack::Stack;
use switchboard_tests::whatsapp::{status, text_message};

switchboard_tests::both_stores!(
    every_webhook_outcome_is_a_decision_naming_what_it_concerns,
    api_calls_test_runs_and_resumes_are_decisions_too,
    a_flood_of_redeliveries_cannot_grow_the_decisions,
    updates_of_no_project_are_counted_logged_and_listed_by_the_node,
);

/// The tenant's decisions with `query`, newest first.
async fn decisions(s: &Stack, key: &str, query: impl AsRef<str>) -> anyhow::Result<Vec<Value>> {
    let query = query.as_ref();
    let reply = s
        .api
        .get(&format!("/platform/v1/routing_decisions?{query}"), key)
        .await?;
    anyhow::ensure!(reply.status == 200, "decisions: {:?}", reply.body);
    Ok(reply.body["data"].as_array().cloned().unwrap_or_default())
}

/// The one decision about webhook message `id`.
async fn about(s: &Stack, id: &str) -> anyhow::Result<Value> {
    let found = decisions(s, &s.tenant.key, &format!("message_id={id}")).await?;
    anyhow::ensure!(found.len() == 1, "decisions about {id}: {found:?}");
    Ok(found[0].clone())
}

async fn executions_client(
    s: &Stack,
) -> anyhow::Result<pb::executions_client::ExecutionsClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Channel::from_shared(s.dp.grpc_url.clone())?
        .connect()
        .await?;
    Ok(pb::executions_client::ExecutionsClient::new(channel))
}

async fn every_webhook_outcome_is_a_decision_naming_what_it_concerns(
    redis: bool,
) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    let customer = "15550104444";
    let send = |n: u32| text_message(&pnid, customer, &format!("wamid.D{n}"), &format!("m{n}"));
    let (observer, observer_trigger) = s
        .workflow(
            "observer",
            "whatsapp_event",
            None,
            Some("whatsapp.message.received"),
        )
        .await?;

    // No message trigger: to the inbox, and the observer fired.
    s.post(&send(1)).await?;
    let d = about(&s, "wamid.D1").await?;
    assert_eq!(
        (&d["source"], &d["outcome"], &d["reason"]),
        (&json!("webhook"), &json!("inbox"), &json!("no_trigger")),
        "{d}"
    );
    assert_eq!(d["phone_number_id"], pnid.as_str());
    assert_eq!(d["from"], customer);
    assert!(d["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{d}");
    let conversation = d["conversation_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(conversation.len(), 36, "{d}");
    let events = d["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 1, "{d}");
    assert_eq!(events[0]["type"], "whatsapp.message.received");
    assert_eq!(events[0]["trigger_id"], observer_trigger.as_str());
    assert_eq!(events[0]["workflow_id"], observer.as_str());
    let fired = s
        .execution(events[0]["execution_id"].as_str().unwrap_or_default())
        .await?;
    assert_eq!(fired["routing_decision_id"], d["id"], "{fired}");

    // With a message trigger: started, naming trigger, workflow and execution.
    let (intake, trigger) = s
        .workflow("intake", "inbound_message", Some(&pnid), None)
        .await?;
    s.post(&send(2)).await?;
    let d = about(&s, "wamid.D2").await?;
    assert_eq!(
        (&d["outcome"], &d["reason"]),
        (&json!("started"), &Value::Null)
    );
    assert_eq!(
        (&d["trigger_id"], &d["workflow_id"]),
        (&json!(trigger), &json!(intake)),
        "{d}"
    );
    let started = d["execution_id"].as_str().unwrap_or_default().to_owned();
    let e = s.execution(&started).await?;
    assert_eq!(e["routing_decision_id"], d["id"]);
    assert_eq!(d["conversation_id"], conversation.as_str());

    // Running: delivered to it. Handoff: a human has it.
    s.api.set_status(&started, &s.tenant.key, "running").await?;
    s.post(&send(3)).await?;
    let d = about(&s, "wamid.D3").await?;
    assert_eq!(
        (&d["outcome"], &d["reason"], &d["execution_id"]),
        (
            &json!("delivered"),
            &json!("execution_active"),
            &json!(started)
        ),
        "{d}"
    );
    s.api.set_status(&started, &s.tenant.key, "handoff").await?;
    s.post(&send(4)).await?;
    let d = about(&s, "wamid.D4").await?;
    assert_eq!(
        (&d["outcome"], &d["reason"], &d["execution_id"]),
        (&json!("handoff"), &json!("handoff"), &json!(started)),
        "{d}"
    );

    // Meta delivers D4 three times more: one duplicate.
    for _ in 0..3 {
        s.post(&send(4)).await?;
    }
    let found = decisions(&s, &s.tenant.key, "message_id=wamid.D4").await?;
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        (&found[0]["outcome"], &found[0]["reason"]),
        (&json!("duplicate"), &json!("already_processed"))
    );

    // Statuses: no trigger listens to `delivered` (ignored); one listens to `read`.
    s.post(&status(&pnid, customer, "wamid.OUT1", "delivered"))
        .await?;
    let d = about(&s, "wamid.OUT1").await?;
    assert_eq!(
        (&d["outcome"], &d["reason"], &d["conversation_id"]),
        (
            &json!("ignored"),
            &json!("no_trigger"),
            &json!(conversation)
        ),
        "{d}"
    );
    let (reader, read_trigger) = s
        .workflow(
            "reader",
            "whatsapp_event",
            None,
            Some("whatsapp.message.read"),
        )
        .await?;
    s.post(&status(&pnid, customer, "wamid.OUT1", "read"))
        .await?;
    let found = decisions(&s, &s.tenant.key, "message_id=wamid.OUT1").await?;
    let d = &found[0];
    assert_eq!(
        (&d["outcome"], &d["trigger_id"], &d["workflow_id"]),
        (&json!("started"), &json!(read_trigger), &json!(reader)),
        "{d}"
    );
    assert_eq!(d["events"][0]["type"], "whatsapp.message.read", "{d}");

    // Filters: by outcome, conversation and workflow (its own or an event's); paging.
    let all = decisions(&s, &s.tenant.key, "limit=100").await?;
    assert_eq!(all.len(), 7, "{all:?}");
    let ids: Vec<&Value> = all.iter().map(|d| &d["id"]).collect();
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| std::cmp::Reverse(id.as_str().map(str::to_owned)));
    assert_eq!(ids, sorted, "newest first");
    let by = |q: &str| decisions(&s, &s.tenant.key, q.to_owned());
    assert_eq!(by("outcome=duplicate").await?.len(), 1);
    assert_eq!(
        by(&format!("conversation_id={conversation}")).await?.len(),
        7
    );
    assert_eq!(by(&format!("workflow_id={observer}")).await?.len(), 4);
    assert_eq!(by(&format!("phone_number_id={pnid}")).await?.len(), 7);
    let first = s
        .api
        .get("/platform/v1/routing_decisions?limit=4", &s.tenant.key)
        .await?;
    let after = first.body["paging"]["cursors"]["after"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let rest = by(&format!("limit=4&after={after}")).await?;
    let paged: Vec<&Value> = first.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(&rest)
        .map(|d| &d["id"])
        .collect();
    assert_eq!(paged, ids, "two pages, no gap or repeat");
    // One by id; bad filters name their field.
    let one = s
        .api
        .get(
            &format!(
                "/platform/v1/routing_decisions/{}",
                all[0]["id"].as_str().unwrap_or("")
            ),
            &s.tenant.key,
        )
        .await?;
    assert_eq!((one.status, &one.body), (200, &all[0]));
    for (query, field) in [
        ("outcome=maybe", "outcome"),
        ("conversation_id=x", "conversation_id"),
        ("workflow_id=1", "workflow_id"),
        ("limit=0", "limit"),
        ("after=nope", "after"),
        ("page=2", "page"),
    ] {
        let reply = s
            .api
            .get(
                &format!("/platform/v1/routing_decisions?{query}"),
                &s.tenant.key,
            )
            .await?;
        assert_eq!((reply.status, reply.field()), (422, field), "{query}");
    }

    // The same over gRPC with the key.
    let mut client = executions_client(&s).await?;
    let mut request = tonic::Request::new(pb::ListRoutingDecisionsRequest {
        limit: 100,
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-api-key", s.tenant.key.parse()?);
    let listed = client.list_routing_decisions(request).await?.into_inner();
    let grpc_ids: Vec<String> = listed.decisions.iter().map(|d| d.id.clone()).collect();
    let http_ids: Vec<String> = ids
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert_eq!(grpc_ids, http_ids);
    let started_one = listed
        .decisions
        .iter()
        .find(|d| d.message_id.as_deref() == Some("wamid.D2"))
        .expect("D2's decision");
    assert_eq!(
        (
            started_one.outcome.as_str(),
            started_one.execution_id.as_deref()
        ),
        ("started", Some(started.as_str()))
    );

    // Another project sees none of it, by list or by id.
    let other = Tenant::seed(&mut s.admin, "other", None).await?;
    s.sync().await?;
    assert!(decisions(&s, &other.key, "limit=100").await?.is_empty());
    let reply = s
        .api
        .get(
            &format!(
                "/platform/v1/routing_decisions/{}",
                all[0]["id"].as_str().unwrap_or("")
            ),
            &other.key,
        )
        .await?;
    assert_eq!(
        (reply.status, reply.code()),
        (404, "routing_decision_not_found")
    );
    let reply = s
        .api
        .get("/platform/v1/routing_decisions", "sbk_nobody")
        .await?;
    assert_eq!(reply.status, 401);
    Ok(())
}

async fn api_calls_test_runs_and_resumes_are_decisions_too(redis: bool) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let key = s.tenant.key.clone();
    let workflow = s.tenant.workflow_id.clone();
    let start = |body: Value, idempotency: Option<&'static str>| {
        let mut request = s.api.start_raw(&workflow, &key, body.to_string());
        if let Some(k) = idempotency {
            request = request.header("idempotency-key", k);
        }
        s.api.send(request)
    };
    let body = |extra: Value| {
        let mut inner = json!({"phone_number": "+15550105555"});
        if let (Some(inner), Value::Object(extra)) = (inner.as_object_mut(), extra) {
            inner.extend(extra);
        }
        json!({ "workflow_execution": inner })
    };

    // 202: started, in the customer's conversation.
    let first = start(body(json!({})), Some("idem-1")).await?;
    assert_eq!(first.status, 202, "{:?}", first.body);
    let id = first.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let latest = |n: usize| decisions(&s, &key, format!("limit={n}"));
    let d = latest(1).await?.remove(0);
    assert_eq!(
        (
            &d["source"],
            &d["outcome"],
            &d["execution_id"],
            &d["workflow_id"]
        ),
        (
            &json!("api"),
            &json!("started"),
            &json!(id),
            &json!(workflow)
        ),
        "{d}"
    );
    assert_eq!(d["from"], "15550105555", "{d}");
    assert_eq!(d["phone_number_id"], s.pnid(), "{d}");
    let e = s.execution(&id).await?;
    assert_eq!(e["routing_decision_id"], d["id"]);
    assert_eq!(d["conversation_id"], e["conversation_id"], "{d}");
    assert!(d["trigger_id"].is_string(), "the API trigger named: {d}");

    // The same request again: a duplicate naming the original.
    let replay = start(body(json!({})), Some("idem-1")).await?;
    assert_eq!(replay.status, 202);
    let d = latest(1).await?.remove(0);
    assert_eq!(
        (&d["outcome"], &d["reason"], &d["execution_id"]),
        (&json!("duplicate"), &json!("idempotent_replay"), &json!(id)),
        "{d}"
    );
    // on_conflict fail while the first holds the conversation: refused, naming it.
    let busy = start(body(json!({"on_conflict": "fail"})), None).await?;
    assert_eq!(busy.status, 409);
    let d = latest(1).await?.remove(0);
    assert_eq!(
        (&d["outcome"], &d["reason"], &d["execution_id"]),
        (&json!("refused"), &json!("conversation_busy"), &json!(id)),
        "{d}"
    );
    // end_existing: started, superseding the first.
    let second = start(body(json!({})), None).await?;
    let second_id = second.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let d = latest(1).await?.remove(0);
    assert_eq!(
        (&d["outcome"], &d["execution_id"], &d["superseded"]),
        (&json!("started"), &json!(second_id), &json!(id)),
        "{d}"
    );

    // A test run: started, source test_run.
    let test = s
        .api
        .post(
            &format!("/platform/v1/workflows/{workflow}/test_executions"),
            &key,
            json!({"trigger_type": "api_call", "workflow_execution": {"phone_number": "+15550105555"}})
                .to_string(),
        )
        .await?;
    assert_eq!(test.status, 202, "{:?}", test.body);
    let d = latest(1).await?.remove(0);
    assert_eq!(
        (&d["source"], &d["outcome"], &d["execution_id"]),
        (
            &json!("test_run"),
            &json!("started"),
            &test.body["tracking_id"]
        ),
        "{d}"
    );
    let refused = s
        .api
        .post(
            &format!("/platform/v1/workflows/{workflow}/test_executions"),
            &key,
            json!({"trigger_type": "inbound_message"}).to_string(),
        )
        .await?;
    assert_eq!(refused.status, 422);
    let d = latest(1).await?.remove(0);
    assert_eq!(
        (&d["source"], &d["outcome"], &d["reason"]),
        (&json!("test_run"), &json!("refused"), &json!("no_trigger")),
        "{d}"
    );

    // Resumes: refused while running, delivered once waiting, not found for an unknown id.
    let mut runner = Runner::connect(&s.dp.grpc_url, "runner-d").await?;
    runner.set_status(&second_id, "running").await?;
    let path = format!("/platform/v1/workflow_executions/{second_id}/resume");
    let answer = json!({"message": {"kind": "payload", "data": "yes"}}).to_string();
    let reply = s.api.post(&path, &key, answer.clone()).await?;
    assert_eq!(reply.status, 409);
    let d = latest(1).await?.remove(0);
    assert_eq!(
        (
            &d["source"],
            &d["outcome"],
            &d["reason"],
            &d["execution_id"]
        ),
        (
            &json!("resume"),
            &json!("refused"),
            &json!("not_waiting"),
            &json!(second_id)
        ),
        "{d}"
    );
    runner.set_status(&second_id, "waiting").await?;
    let reply = s.api.post(&path, &key, answer.clone()).await?;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let d = latest(1).await?.remove(0);
    assert_eq!(
        (&d["outcome"], &d["execution_id"], &d["workflow_id"]),
        (&json!("delivered"), &json!(second_id), &json!(workflow)),
        "{d}"
    );
    let unknown = "/platform/v1/workflow_executions/01a2155a-0000-7000-8000-000000000000/resume";
    let reply = s.api.post(unknown, &key, answer).await?;
    assert_eq!(reply.status, 404);
    let d = latest(1).await?.remove(0);
    assert_eq!(
        (&d["outcome"], &d["reason"]),
        (&json!("refused"), &json!("execution_not_found")),
        "{d}"
    );
    // Burst limit: a key of 1 request a second, asked twice at once.
    let (_, limited) = s.admin.api_key(&s.tenant.project_id, Some(1)).await?;
    s.sync().await?;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let reply = s
            .api
            .send(
                s.api
                    .start_raw(&workflow, &limited, body(json!({})).to_string()),
            )
            .await?;
        statuses.push(reply.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let limited_decisions = decisions(&s, &key, "outcome=refused&limit=100").await?;
    assert!(
        limited_decisions
            .iter()
            .any(|d| d["reason"] == "rate_limited" && d["workflow_id"] == workflow.as_str()),
        "{limited_decisions:?}"
    );
    Ok(())
}

async fn a_flood_of_redeliveries_cannot_grow_the_decisions(redis: bool) -> anyhow::Result<()> {
    let s = Stack::start_with(redis, |c| c.decision_cap = 50).await?;
    let pnid = s.pnid().to_owned();
    // 60 messages: the newest 50 kept.
    let batch = |from: u32, to: u32| {
        let messages: Vec<Value> = (from..to)
            .map(|n| {
                json!({"from": "15550106666", "id": format!("wamid.F{n}"), "timestamp": "1",
                       "type": "text", "text": {"body": format!("f{n}")}})
            })
            .collect();
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages",
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": "15550000000", "phone_number_id": pnid},
                      "messages": messages}}]}]})
        .to_string()
    };
    s.post(&batch(0, 60)).await?;
    let kept = decisions(&s, &s.tenant.key, "limit=100").await?;
    assert_eq!(kept.len(), 50);
    assert_eq!(kept[0]["message_id"], "wamid.F59");
    assert_eq!(kept[49]["message_id"], "wamid.F10");
    // The same 60 delivered 20 times more (1200 redeliveries): at most one duplicate each.
    for _ in 0..20 {
        s.post(&batch(0, 60)).await?;
    }
    let after = decisions(&s, &s.tenant.key, "limit=100").await?;
    assert_eq!(after.len(), 50, "capped");
    let duplicates = decisions(&s, &s.tenant.key, "outcome=duplicate&limit=100").await?;
    let mut names: Vec<&str> = duplicates
        .iter()
        .filter_map(|d| d["message_id"].as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), duplicates.len(), "one duplicate per message");
    if let Some(redis) = &s.redis {
        // One decisions key, holding no more than the cap.
        let keys: Vec<String> = redis
            .keys()?
            .into_iter()
            .filter(|k| k.contains(":d:"))
            .collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let mut connection = redis::Client::open(redis.url.as_str())?.get_connection()?;
        let size: usize = redis::cmd("ZCARD").arg(&keys[0]).query(&mut connection)?;
        assert_eq!(size, 50);
    }
    Ok(())
}

async fn updates_of_no_project_are_counted_logged_and_listed_by_the_node(
    redis: bool,
) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    s.post(&text_message(
        "999000111222333",
        "15550107777",
        "wamid.U1",
        "hello",
    ))
    .await?;
    s.post(r#"{"object": "page", "entry": []}"#).await?;
    let account = json!({"object": "whatsapp_business_account", "entry": [{"id": "1",
        "changes": [{"field": "account_update", "value": {}}]}]});
    s.post(&account.to_string()).await?;
    // None of it is any project's decision.
    assert!(decisions(&s, &s.tenant.key, "limit=100").await?.is_empty());

    let mut client = executions_client(&s).await?;
    let list = |reason: Option<&str>, token: &str| {
        let mut request = tonic::Request::new(pb::ListUnroutedUpdatesRequest {
            reason: reason.map(str::to_owned),
            limit: 0,
        });
        if let Ok(value) = token.parse() {
            request
                .metadata_mut()
                .insert("x-switchboard-node-token", value);
        }
        request
    };
    let all = client
        .list_unrouted_updates(list(None, switchboard_tests::NODE_TOKEN))
        .await?
        .into_inner()
        .updates;
    let seen: Vec<(&str, Option<&str>, Option<&str>)> = all
        .iter()
        .map(|u| {
            (
                u.reason.as_str(),
                u.phone_number_id.as_deref(),
                u.detail.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("field", None, Some("account_update")),
            ("object", None, Some("page")),
            ("number", Some("999000111222333"), None),
        ]
    );
    let numbers = client
        .list_unrouted_updates(list(Some("number"), switchboard_tests::NODE_TOKEN))
        .await?
        .into_inner()
        .updates;
    assert_eq!(numbers.len(), 1);
    let denied = client.list_unrouted_updates(list(None, "wrong")).await;
    assert_eq!(
        denied.map(|_| ()).map_err(|e| e.code()),
        Err(tonic::Code::Unauthenticated)
    );
    let bad = client
        .list_unrouted_updates(list(Some("nope"), switchboard_tests::NODE_TOKEN))
        .await;
    assert_eq!(
        bad.map(|_| ()).map_err(|e| e.code()),
        Err(tonic::Code::InvalidArgument)
    );

    Ok(())
}

/// `switchboard decisions list|unrouted`: the real binary against a data plane's gRPC port,
/// JSON and table output, and a wrong token refused with exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_decisions_and_unrouted_updates() -> anyhow::Result<()> {
    let s = Stack::start(false).await?;
    let pnid = s.pnid().to_owned();
    s.post(&text_message(&pnid, "15550108888", "wamid.CLI1", "hi"))
        .await?;
    s.post(&text_message(
        "999000111222444",
        "15550108888",
        "wamid.CLI2",
        "hi",
    ))
    .await?;
    let cli = |args: &[&str]| {
        let mut command = tokio::process::Command::new(switchboard_tests::binary("switchboard")?);
        command
            .args(args)
            .args(["--data-plane-grpc", &s.dp.grpc_url])
            .env("SWITCHBOARD_API_KEY", &s.tenant.key)
            .env("SWITCHBOARD_NODE_TOKEN", switchboard_tests::NODE_TOKEN);
        anyhow::Ok(command)
    };
    let out = cli(&[
        "-o",
        "json",
        "decisions",
        "list",
        "--message-id",
        "wamid.CLI1",
    ])?
    .output()
    .await?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        (
            &listed[0]["outcome"],
            &listed[0]["reason"],
            &listed[0]["from"]
        ),
        (&json!("inbox"), &json!("no_trigger"), &json!("15550108888"))
    );
    let out = cli(&["decisions", "unrouted"])?.output().await?;
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.starts_with("AT"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("number") && l.contains("999000111222444")),
        "{table}"
    );
    let out = cli(&["decisions", "unrouted", "--node-token", "wrong"])?
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthenticated"));
    Ok(())
}

/// `switchboard simulate` builds, signs and posts webhooks and prints the decisions they made
/// (DESIGN §14); what it is not given comes from a `switchboard dev` directory.
#[tokio::test]
async fn the_cli_simulates_webhooks_and_prints_their_decisions() -> anyhow::Result<()> {
    let mut s = Stack::start(false).await?;
    let pnid = s.pnid().to_owned();
    let pnid = pnid.as_str();
    let (workflow, trigger) = s
        .workflow("intake", "inbound_message", Some(pnid), None)
        .await?;
    let nowhere = tempfile::tempdir()?;
    let simulate = |args: &[&str]| {
        let mut command = tokio::process::Command::new(switchboard_tests::binary("switchboard")?);
        command
            .arg("simulate")
            .args(args)
            .args(["--data-plane", &s.dp.http_url])
            .args(["--data-plane-grpc", &s.dp.grpc_url])
            .env_remove("SWITCHBOARD_API_KEY")
            .env_remove("SWITCHBOARD_META_APP_SECRET");
        if !args.contains(&"--dev-dir") {
            command.arg("--dev-dir").arg(nowhere.path());
        }
        anyhow::Ok(command)
    };
    let signed = ["--app-secret", switchboard_tests::META_APP_SECRET];
    let keyed = ["--api-key", s.tenant.key.as_str()];
    let json_run = |args: Vec<&str>| {
        let command = simulate(&args);
        let label = format!("{args:?}");
        async move {
            let out = command?.arg("-o").arg("json").output().await?;
            anyhow::ensure!(
                out.status.code() == Some(0),
                "{label}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            anyhow::Ok(serde_json::from_slice::<Value>(&out.stdout)?)
        }
    };
    let message = |id: &'static str| {
        let mut args = vec!["message", "--phone-number-id", pnid, "--message-id", id];
        args.extend(signed);
        args.extend(keyed);
        args
    };

    // A text message starts the trigger's workflow; the same id again is a redelivery.
    let first = json_run(message("wamid.SIM1")).await?;
    assert_eq!(
        (&first["status"], &first["answer"]["applied"]),
        (&json!(200), &json!(1)),
        "{first}"
    );
    let d = &first["decisions"][0];
    assert_eq!(
        (
            &d["outcome"],
            &d["trigger_id"],
            &d["workflow_id"],
            &d["message_id"]
        ),
        (
            &json!("started"),
            &json!(trigger),
            &json!(workflow),
            &json!("wamid.SIM1")
        ),
        "{first}"
    );
    let execution = d["execution_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        s.execution(&execution).await?["routing_decision_id"],
        d["id"]
    );
    let again = json_run(message("wamid.SIM1")).await?;
    assert_eq!(again["answer"]["duplicates"], 1, "{again}");
    assert_eq!(again["decisions"][0]["outcome"], "duplicate", "{again}");

    // A batch of interactive replies: one decision each, delivered to the started execution.
    let mut batch = message("wamid.SIMB");
    batch.extend(["--type", "interactive", "--text", "Large", "--count", "3"]);
    let batch = json_run(batch).await?;
    assert_eq!(batch["answer"]["applied"], 3, "{batch}");
    let decided = batch["decisions"].as_array().cloned().unwrap_or_default();
    let mut ids: Vec<&str> = decided
        .iter()
        .filter_map(|d| d["message_id"].as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["wamid.SIMB.1", "wamid.SIMB.2", "wamid.SIMB.3"],
        "{batch}"
    );
    assert!(
        decided
            .iter()
            .all(|d| d["outcome"] == "delivered" && d["execution_id"] == execution.as_str()),
        "{batch}"
    );

    // Every message type and status is accepted as Meta shapes it.
    for kind in [
        "text", "button", "list", "image", "video", "document", "audio", "sticker",
    ] {
        let mut args = message("x");
        args.truncate(3);
        args.extend(["--type", kind, "--text", "a caption"]);
        args.extend(signed);
        args.extend(keyed);
        let out = json_run(args).await?;
        assert_eq!(out["answer"]["applied"], 1, "{kind}: {out}");
        assert_eq!(
            out["decisions"].as_array().map(Vec::len),
            Some(1),
            "{kind}: {out}"
        );
    }
    for status in ["sent", "delivered", "read", "failed"] {
        let mut args = vec!["status", "--phone-number-id", pnid, "--status", status];
        args.extend(["--message-id", "wamid.OUT1"]);
        args.extend(signed);
        args.extend(keyed);
        let out = json_run(args).await?;
        assert_eq!(out["status"], 200, "{status}: {out}");
        let d = &out["decisions"][0];
        assert_eq!(
            (&d["source"], &d["message_id"]),
            (&json!("webhook"), &json!("wamid.OUT1")),
            "{status}: {out}"
        );
    }

    // A file, renumbered to the tenant's number.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/whatsapp/message_image_caption.json");
    let fixture = fixture.to_string_lossy().into_owned();
    let mut file = vec!["file", fixture.as_str(), "--phone-number-id", pnid];
    file.extend(signed);
    file.extend(keyed);
    let out = json_run(file).await?;
    assert_eq!(out["answer"]["applied"], 1, "{out}");
    assert_eq!(out["decisions"][0]["outcome"], "delivered", "{out}");

    // With a dev directory's credentials, no flag is needed; tables say what happened.
    let dev = tempfile::tempdir()?;
    std::fs::write(
        dev.path().join("credentials.json"),
        json!({
            "admin_token": "a", "node_token": "n", "meta_verify_token": "v",
            "meta_app_secret": switchboard_tests::META_APP_SECRET,
            "api_key": s.tenant.key,
        })
        .to_string(),
    )?;
    let dev_dir = dev.path().to_string_lossy().into_owned();
    let out = simulate(&["message", "--phone-number-id", pnid, "--dev-dir", &dev_dir])?
        .output()
        .await?;
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("-> 200") && table.contains("routing decisions:"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("delivered") && l.contains(&execution)),
        "{table}"
    );

    // A number of no project: no decision, and the table says where to look.
    let mut unknown = vec!["message", "--phone-number-id", "999000111222555"];
    unknown.extend(signed);
    unknown.extend(keyed);
    let out = simulate(&unknown)?.output().await?;
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("no routing decision") && table.contains("decisions unrouted"),
        "{table}"
    );

    // A wrong secret is the data plane's 401; bad flags are usage errors; nothing is sent
    // without a secret.
    let out = simulate(&[
        "message",
        "--phone-number-id",
        pnid,
        "--app-secret",
        "wrong",
    ])?
    .output()
    .await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
    for bad in [
        vec!["message", "--from", "12"],
        vec!["message", "--phone-number-id", "12a"],
        vec!["message", "--count", "0"],
        vec!["message", "--user-id", "nope"],
        vec!["message"],
    ] {
        let out = simulate(&bad)?.output().await?;
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
    }
    let total = decisions(&s, &s.tenant.key, "limit=100").await?.len();
    assert_eq!(
        total,
        2 + 3 + 8 + 4 + 1 + 1,
        "each simulated update decided once"
    );
    Ok(())
}
