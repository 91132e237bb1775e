//! Meta's WhatsApp webhook end to end (DESIGN §5 conversations, §6 contexts, §7): a real
//! control plane, real data planes, the shared fixtures signed like Meta signs them. Every
//! behaviour runs against the real Redis (own key prefix) and the in-process memory store.

use serde_json::{Value, json};
use std::time::Duration;
use switchboard_tests::platform::{Platform, Tenant};
use switchboard_tests::stack::Stack;
use switchboard_tests::whatsapp::{FIXTURES, Meta, fixture, status, text_message};
use switchboard_tests::{
    Backend, ControlPlane, DataPlane, META_VERIFY_TOKEN, RedisProxy, TestDb, TestRedis,
};

switchboard_tests::both_stores!(
    each_message_type_starts_the_message_trigger_with_its_input,
    routing_goes_inbox_trigger_delivery_handoff_in_order,
    every_event_type_starts_its_observer_workflow,
    fixtures_sent_three_times_change_nothing_after_the_first,
    bad_signatures_and_bodies_are_refused_and_record_nothing,
    conversations_end_by_inactivity_and_by_patch_firing_ended_once,
    conversations_are_listed_filtered_paged_and_scoped,
    numbers_route_exactly_as_the_control_plane_accepted_them,
);

/// The one message route of a webhook answer.
fn route(answer: &Value) -> (String, String, Option<String>) {
    let m = &answer["messages"][0];
    (
        m["route"].as_str().unwrap_or_default().to_owned(),
        m["conversation_id"].as_str().unwrap_or_default().to_owned(),
        m["execution_id"].as_str().map(str::to_owned),
    )
}

async fn each_message_type_starts_the_message_trigger_with_its_input(
    redis: bool,
) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    let (intake, _) = s
        .workflow("intake", "inbound_message", Some(&pnid), None)
        .await?;
    s.sync().await?;
    let cases = [
        ("message_text.json", "Does it come in another color?"),
        ("message_interactive_button_reply.json", "Large"),
        ("message_image_caption.json", "This one please"),
    ];
    let mut conversation = None;
    for (name, input) in cases {
        let answer = s.post(&fixture(name, &pnid)?).await?;
        let (route_name, conversation_id, execution_id) = route(&answer);
        assert_eq!(route_name, "trigger", "{name}: {answer}");
        // One conversation for the customer across the three messages.
        assert_eq!(
            *conversation.get_or_insert(conversation_id.clone()),
            conversation_id
        );
        let execution_id = execution_id.expect("an execution");
        let e = s.execution(&execution_id).await?;
        assert_eq!(e["trigger_type"], "inbound_message");
        assert_eq!(e["workflow_id"], intake.as_str());
        assert_eq!(e["observer_mode"], false);
        assert_eq!(e["conversation_id"], conversation_id.as_str());
        let c = &e["execution_context"];
        assert_eq!(c["last_user_input"], input, "{name}");
        assert_eq!(
            c["system"],
            json!({
                "trigger_type": "inbound_message",
                "tracking_id": execution_id,
                "workflow_id": intake,
                "trigger_whatsapp_config_id": s.tenant.whatsapp_config_id,
                "observer_mode": false,
                "allow_outbound": true,
                "test": false,
            })
        );
        assert_eq!(
            c["context"],
            json!({
                "phone_number": "+16505551234",
                "channel": "whatsapp",
                "conversation_id": conversation_id,
                "contact_name": "Sheena Nelson",
            })
        );
        // Ended, so the next message starts a new execution rather than joining this one.
        s.end(&execution_id).await?;
    }
    let conversation = s
        .conversation(conversation.as_deref().unwrap_or_default())
        .await?;
    assert_eq!(conversation["status"], "active");
    assert_eq!(conversation["phone_number"], "+16505551234");
    assert_eq!(conversation["phone_number_id"], pnid.as_str());
    assert_eq!(conversation["last_message"]["type"], "image");
    assert_eq!(conversation["last_message"]["text"], "This one please");
    assert_eq!(s.executions(&intake).await?.len(), 3);
    Ok(())
}

async fn routing_goes_inbox_trigger_delivery_handoff_in_order(redis: bool) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    let send = |n: u32| {
        text_message(
            &pnid,
            "15550100001",
            &format!("wamid.R{n}"),
            &format!("m{n}"),
        )
    };

    // (d) No message trigger: the agents get it.
    let answer = s.post(&send(1)).await?;
    let (r, conversation, _) = route(&answer);
    assert_eq!(r, "inbox");

    // (c) With an active message trigger: a new execution.
    let (intake, trigger) = s
        .workflow("intake", "inbound_message", Some(&pnid), None)
        .await?;
    s.sync().await?;
    let (r, same_conversation, started) = route(&s.post(&send(2)).await?);
    assert_eq!(
        (r.as_str(), same_conversation.as_str()),
        ("trigger", conversation.as_str())
    );
    let started = started.expect("started");

    // (b) While it runs, the next message is delivered to it: no second execution.
    let reply = s.api.set_status(&started, &s.tenant.key, "running").await?;
    assert_eq!(reply.status, 200);
    let (r, _, target) = route(&s.post(&send(3)).await?);
    assert_eq!(
        (r.as_str(), target.as_deref()),
        ("delivered", Some(started.as_str()))
    );
    let e = s.execution(&started).await?;
    assert_eq!(e["execution_context"]["last_user_input"], "m3");
    let delivered: Vec<&Value> = e["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|ev| ev["type"] == "message_received")
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["message"]["text"], "m3");

    // (a) Handoff: a human has it, no workflow runs.
    let reply = s.api.set_status(&started, &s.tenant.key, "handoff").await?;
    assert_eq!(reply.status, 200);
    let (r, _, _) = route(&s.post(&send(4)).await?);
    assert_eq!(r, "handoff");
    assert_eq!(s.executions(&intake).await?.len(), 1);

    // Once it ended, the message trigger starts again.
    s.end(&started).await?;
    let (r, _, again) = route(&s.post(&send(5)).await?);
    assert_eq!(r, "trigger");
    assert_ne!(again.as_deref(), Some(started.as_str()));

    // A deactivated trigger routes to the agents again.
    s.admin.deactivate(&trigger).await?;
    s.sync().await?;
    s.end(&again.unwrap_or_default()).await?;
    let (r, _, _) = route(&s.post(&send(6)).await?);
    assert_eq!(r, "inbox");
    assert_eq!(s.executions(&intake).await?.len(), 2);
    Ok(())
}

async fn every_event_type_starts_its_observer_workflow(redis: bool) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    let mut workflows = std::collections::HashMap::new();
    for (i, event) in switchboard_proto::wire::EventType::ALL.iter().enumerate() {
        // Odd ones project-wide, even ones on the number.
        let number = (i % 2 == 0).then_some(pnid.as_str());
        let (workflow, _) = s
            .workflow(
                &format!("on-{event}"),
                "whatsapp_event",
                number,
                Some(event.as_str()),
            )
            .await?;
        workflows.insert(event.as_str(), workflow);
    }
    s.sync().await?;

    let answer = s.post(&fixture("message_text.json", &pnid)?).await?;
    let (r, conversation, _) = route(&answer);
    assert_eq!(r, "inbox", "event triggers observe; they do not intercept");
    for name in [
        "status_sent.json",
        "status_delivered.json",
        "status_read.json",
        "status_failed.json",
    ] {
        s.post(&fixture(name, &pnid)?).await?;
    }
    let reply = s
        .api
        .patch(
            &format!("/platform/v1/whatsapp/conversations/{conversation}"),
            &s.tenant.key,
            &json!({"whatsapp_conversation": {"status": "ended"}}),
        )
        .await?;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "ended");

    for (event, workflow) in &workflows {
        let executions = s.executions(workflow).await?;
        assert_eq!(executions.len(), 1, "{event}: {executions:?}");
        let e = s
            .execution(executions[0]["id"].as_str().unwrap_or_default())
            .await?;
        assert_eq!(e["trigger_type"], "whatsapp_event");
        assert_eq!(e["observer_mode"], true);
        let system = &e["execution_context"]["system"];
        assert_eq!(system["trigger_type"], "whatsapp_event");
        assert_eq!(system["observer_mode"], true);
        assert_eq!(system["allow_outbound"], false);
        assert_eq!(system["test"], false);
        assert_eq!(system["workflow_id"], workflow.as_str());
        assert_eq!(system["tracking_id"], e["id"]);
        assert_eq!(
            system["trigger_whatsapp_config_id"],
            s.tenant.whatsapp_config_id
        );
        let ev = &system["event"];
        assert_eq!(ev["type"], *event);
        assert_eq!(
            ev["payload"]["metadata"]["phone_number_id"],
            pnid.as_str(),
            "{event}"
        );
        assert_eq!(ev["conversation"]["id"], conversation.as_str(), "{event}");
        assert_eq!(ev["conversation"]["phone_number"], "+16505551234");
        let context = &e["execution_context"]["context"];
        assert_eq!(context["phone_number"], "+16505551234");
        assert_eq!(context["channel"], "whatsapp");
        assert_eq!(context["conversation_id"], conversation.as_str());
        match *event {
            "whatsapp.message.received" => {
                assert_eq!(ev["conversation"]["status"], "active");
                assert_eq!(ev["message"]["status"], "received");
                assert_eq!(ev["message"]["type"], "text");
                assert_eq!(
                    ev["message"]["text"]["body"],
                    "Does it come in another color?"
                );
                assert_eq!(
                    ev["payload"]["text"]["body"],
                    "Does it come in another color?"
                );
            }
            "whatsapp.conversation.created" => {
                assert_eq!(ev["conversation"]["status"], "active");
                assert!(ev.get("message").is_none());
            }
            "whatsapp.conversation.ended" => {
                assert_eq!(ev["conversation"]["status"], "ended");
                assert_eq!(ev["payload"]["reason"], "api");
            }
            status_event => {
                let status = status_event.rsplit('.').next().unwrap_or_default();
                assert_eq!(ev["message"]["status"], status);
                assert_eq!(ev["payload"]["status"], status);
                assert_eq!(ev["conversation"]["status"], "active");
                if status == "failed" {
                    assert_eq!(ev["payload"]["errors"][0]["code"], 131049);
                }
            }
        }
    }
    Ok(())
}

async fn fixtures_sent_three_times_change_nothing_after_the_first(
    redis: bool,
) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    let (intake, _) = s
        .workflow("intake", "inbound_message", Some(&pnid), None)
        .await?;
    let (read, _) = s
        .workflow(
            "on-read",
            "whatsapp_event",
            None,
            Some("whatsapp.message.read"),
        )
        .await?;
    s.sync().await?;
    let mut snapshot = None;
    for round in 0..3 {
        for name in FIXTURES {
            let answer = s.post(&fixture(name, &pnid)?).await?;
            if round > 0 {
                assert_eq!(answer["applied"], 0, "{name} round {round}: {answer}");
                assert!(answer["duplicates"].as_u64() > Some(0), "{name}: {answer}");
            }
        }
        let now = (
            s.executions(&intake).await?.len(),
            s.executions(&read).await?.len(),
            s.conversations("limit=100").await?["data"].clone(),
        );
        assert_eq!(*snapshot.get_or_insert(now.clone()), now, "round {round}");
    }
    // The batch: two customers, two conversations; read listed before delivered ends as read.
    let (executions, reads, conversations) = snapshot.unwrap_or_default();
    assert_eq!(conversations.as_array().map(Vec::len), Some(2));
    assert_eq!(
        executions, 2,
        "one per conversation: later messages join the first"
    );
    assert_eq!(
        reads, 2,
        "status_read.json and the batch's read of wamid.OUT0001"
    );
    let message = s
        .api
        .get(
            "/platform/v1/whatsapp/messages/wamid.OUT0001",
            &s.tenant.key,
        )
        .await?;
    assert_eq!(message.status, 200, "{:?}", message.body);
    assert_eq!(message.body["status"], "read");
    assert_eq!(message.body["recipient"], "+16505551234");
    // A late `sent` does not move it back.
    s.post(&status(&pnid, "16505551234", "wamid.OUT0001", "sent"))
        .await?;
    let message = s
        .api
        .get(
            "/platform/v1/whatsapp/messages/wamid.OUT0001",
            &s.tenant.key,
        )
        .await?;
    assert_eq!(message.body["status"], "read");
    Ok(())
}

async fn bad_signatures_and_bodies_are_refused_and_record_nothing(
    redis: bool,
) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    s.workflow("intake", "inbound_message", Some(&pnid), None)
        .await?;
    s.sync().await?;
    let body = fixture("message_text.json", &pnid)?;

    assert_eq!(s.meta.post_signed(&body, None).await?.status, 401);
    let wrong =
        switchboard_data_plane::whatsapp::signature::sign(b"not the secret", body.as_bytes());
    let reply = s.meta.post_signed(&body, Some(&wrong)).await?;
    assert_eq!((reply.status, reply.code()), (401, "invalid_signature"));
    let right = switchboard_data_plane::whatsapp::signature::sign(
        switchboard_tests::META_APP_SECRET.as_bytes(),
        body.as_bytes(),
    );
    // Signed over other bytes than those sent.
    let tampered = body.replace("another color", "another price");
    assert_eq!(
        s.meta.post_signed(&tampered, Some(&right)).await?.status,
        401
    );
    let reply = s.meta.post("{\"object\": ").await?;
    assert_eq!((reply.status, reply.code()), (400, "invalid_json"));
    assert_eq!(oversize_status(&s.dp.http_url).await?, 413);

    // Well-formed but not for us: 200, ignored.
    let other_object = body.replace("whatsapp_business_account", "instagram");
    let answer = s.post(&other_object).await?;
    assert_eq!(
        (answer["applied"].as_u64(), answer["ignored"].as_u64()),
        (Some(0), Some(1))
    );
    let unknown_number = fixture("message_text.json", "999999999999999")?;
    let answer = s.post(&unknown_number).await?;
    assert_eq!(
        (answer["applied"].as_u64(), answer["ignored"].as_u64()),
        (Some(0), Some(1))
    );
    let played = status(&pnid, "16505551234", "wamid.P", "played");
    let answer = s.post(&played).await?;
    assert_eq!(
        (answer["applied"].as_u64(), answer["ignored"].as_u64()),
        (Some(0), Some(1))
    );

    assert_eq!(s.conversations("").await?["data"], json!([]));
    if let Some(redis) = &s.redis {
        assert_eq!(redis.keys()?, Vec::<String>::new());
    }

    // The verification handshake.
    assert_eq!(
        s.meta.handshake(META_VERIFY_TOKEN, "c-123").await?,
        (200, "c-123".to_owned())
    );
    assert_eq!(s.meta.handshake("wrong", "c-123").await?.0, 403);

    // And the real message still goes through afterwards, once.
    let answer = s.post(&body).await?;
    assert_eq!(answer["applied"], 1);
    Ok(())
}

async fn conversations_end_by_inactivity_and_by_patch_firing_ended_once(
    redis: bool,
) -> anyhow::Result<()> {
    let mut s = Stack::start_with(redis, |c| {
        c.conversation_inactivity = Duration::from_millis(800);
    })
    .await?;
    let pnid = s.pnid().to_owned();
    let (ended, _) = s
        .workflow(
            "on-ended",
            "whatsapp_event",
            Some(&pnid),
            Some("whatsapp.conversation.ended"),
        )
        .await?;
    // With Redis a second node sweeps the same conversations.
    let second = match &s.redis {
        Some(r) => {
            let dir = tempfile::tempdir()?;
            let dp =
                DataPlane::start_with(&s.cp.grpc_url, "dp-2", dir.path(), &r.url, &r.prefix, |c| {
                    c.conversation_inactivity = Duration::from_millis(800);
                })
                .await?;
            Some((dp, dir))
        }
        None => None,
    };
    s.sync().await?;
    if let Some((dp, _)) = &second {
        dp.wait_version(s.admin.routing_version().await?).await?;
    }

    let (_, idle, _) = route(
        &s.post(&text_message(&pnid, "15550100002", "wamid.I1", "hello"))
            .await?,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if s.conversation(&idle).await?["status"] == "ended" {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not ended by inactivity"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Sweeps keep running on both nodes; the end fired once.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let fired = s.executions(&ended).await?;
    assert_eq!(fired.len(), 1, "{fired:?}");
    let e = s
        .execution(fired[0]["id"].as_str().unwrap_or_default())
        .await?;
    assert_eq!(
        e["execution_context"]["system"]["event"]["payload"]["reason"],
        "inactivity"
    );
    assert_eq!(e["conversation_id"], idle.as_str());

    // A new message after the end opens a new conversation.
    let (_, next, _) = route(
        &s.post(&text_message(&pnid, "15550100002", "wamid.I2", "again"))
            .await?,
    );
    assert_ne!(next, idle);
    // Ended by PATCH before the sweep: once, and a second PATCH changes nothing.
    for _ in 0..2 {
        let reply = s
            .api
            .patch(
                &format!("/platform/v1/whatsapp/conversations/{next}"),
                &s.tenant.key,
                &json!({"whatsapp_conversation": {"status": "ended"}}),
            )
            .await?;
        assert_eq!(
            (reply.status, reply.body["status"].as_str()),
            (200, Some("ended"))
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.executions(&ended).await?.len(), 2);

    // Bad PATCH bodies name the field.
    for (body, field) in [
        (json!({}), "whatsapp_conversation"),
        (json!({"whatsapp_conversation": 3}), "whatsapp_conversation"),
        (
            json!({"whatsapp_conversation": {}}),
            "whatsapp_conversation.status",
        ),
        (
            json!({"whatsapp_conversation": {"status": "active"}}),
            "whatsapp_conversation.status",
        ),
    ] {
        let reply = s
            .api
            .patch(
                &format!("/platform/v1/whatsapp/conversations/{next}"),
                &s.tenant.key,
                &body,
            )
            .await?;
        assert_eq!((reply.status, reply.field()), (422, field), "{body}");
    }
    if let Some((dp, _dir)) = second {
        dp.stop().await?;
    }
    Ok(())
}

async fn conversations_are_listed_filtered_paged_and_scoped(redis: bool) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    for i in 0..5 {
        s.post(&text_message(
            &pnid,
            &format!("1555010010{i}"),
            &format!("wamid.L{i}"),
            "hi",
        ))
        .await?;
    }
    let page = s.conversations("limit=2").await?;
    let first: Vec<String> = page["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["phone_number"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        first,
        ["+15550100104", "+15550100103"],
        "newest activity first"
    );
    let after = page["paging"]["cursors"]["after"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut seen = first.clone();
    let mut cursor = after;
    while !cursor.is_empty() {
        let page = s.conversations(&format!("limit=2&after={cursor}")).await?;
        for c in page["data"].as_array().cloned().unwrap_or_default() {
            seen.push(c["phone_number"].as_str().unwrap_or_default().to_owned());
        }
        cursor = page["paging"]["cursors"]["after"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    assert_eq!(seen.len(), 5);
    let one = s
        .conversations("phone_number=%2B1%20555%20010%200102")
        .await?;
    assert_eq!(one["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["data"][0]["phone_number"], "+15550100102");
    assert_eq!(
        s.conversations(&format!("phone_number_id={pnid}&status=active"))
            .await?["data"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    assert_eq!(s.conversations("status=ended").await?["data"], json!([]));
    for (query, field) in [
        ("status=open", "status"),
        ("limit=0", "limit"),
        ("after=x", "after"),
        ("phone_number=12", "phone_number"),
    ] {
        let reply = s
            .api
            .get(
                &format!("/platform/v1/whatsapp/conversations?{query}"),
                &s.tenant.key,
            )
            .await?;
        assert_eq!((reply.status, reply.field()), (422, field), "{query}");
    }

    // Another project sees none of it.
    let other = Tenant::seed(&mut s.admin, "globex", None).await?;
    s.sync().await?;
    let id = s.conversations("limit=1").await?["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let reply = s
        .api
        .get(
            &format!("/platform/v1/whatsapp/conversations/{id}"),
            &other.key,
        )
        .await?;
    assert_eq!(
        (reply.status, reply.code()),
        (404, "conversation_not_found")
    );
    let reply = s
        .api
        .patch(
            &format!("/platform/v1/whatsapp/conversations/{id}"),
            &other.key,
            &json!({"whatsapp_conversation": {"status": "ended"}}),
        )
        .await?;
    assert_eq!(reply.status, 404);
    let reply = s
        .api
        .get("/platform/v1/whatsapp/conversations", &other.key)
        .await?;
    assert_eq!(reply.body["data"], json!([]));
    let reply = s
        .api
        .get(
            &format!("/platform/v1/whatsapp/conversations?phone_number_id={pnid}"),
            &other.key,
        )
        .await?;
    assert_eq!(reply.status, 404);
    let reply = s
        .api
        .get("/platform/v1/whatsapp/conversations", "sk_wrong")
        .await?;
    assert_eq!(reply.status, 401);
    assert_eq!(s.conversation(&id).await?["status"], "active");
    Ok(())
}

/// Declares a body over 4 MiB and reads the answer without sending it (the server refuses
/// on the header; a client still writing would see the connection close under it).
async fn oversize_status(base: &str) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!(
        "POST /webhooks/whatsapp HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         x-hub-signature-256: sha256=00\r\ncontent-length: {}\r\n\r\n",
        4 * 1024 * 1024 + 1
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    let line = String::from_utf8_lossy(&head);
    Ok(line[9..12].parse()?)
}

/// Redis down: 503 so Meta retries, nothing half-written; the retry completes what was
/// missing (one message of the batch had already been applied) and repeats nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_503_and_metas_retry_completes_once() -> anyhow::Result<()> {
    let mut proxy = RedisProxy::start().await?;
    let db = TestDb::fresh(Backend::Sqlite).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut admin = cp.admin().await?;
    let tenant = Tenant::seed(&mut admin, "acme", None).await?;
    let intake = admin
        .workflow(&tenant.project_id, "intake", "active")
        .await?;
    admin
        .trigger(
            &intake.id,
            switchboard_tests::admin::spec("inbound_message", Some(&tenant.phone_number_id), None),
        )
        .await?;
    let redis = TestRedis::new();
    let state = tempfile::tempdir()?;
    let dp = DataPlane::start_with_store(
        &cp.grpc_url,
        "dp-1",
        state.path(),
        &proxy.url,
        &redis.prefix,
    )
    .await?;
    dp.wait_version(admin.routing_version().await?).await?;
    let meta = Meta::new(&dp.http_url);
    let api = Platform::new(&dp.http_url);
    let body = fixture("batch_mixed.json", &tenant.phone_number_id)?;

    // The first message of the batch arrived on its own before.
    let first = text_message(
        &tenant.phone_number_id,
        "16505551234",
        "wamid.BATCH0001",
        "Hi again",
    );
    let answer = meta.post(&first).await?;
    assert_eq!(answer.body["applied"], 1, "{:?}", answer.body);
    let written = redis.contents()?;

    proxy.cut().await;
    let reply = meta.post(&body).await?;
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(
        redis.contents()? == written,
        "nothing written while Redis was away"
    );

    proxy.restore().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let answer = loop {
        let reply = meta.post(&body).await?;
        if reply.status == 200 {
            break reply.body;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no recovery: {:?}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (answer["applied"].as_u64(), answer["duplicates"].as_u64()),
        (Some(3), Some(1)),
        "{answer}"
    );
    let again = meta.post(&body).await?;
    assert_eq!(
        (
            again.body["applied"].as_u64(),
            again.body["duplicates"].as_u64()
        ),
        (Some(0), Some(4))
    );
    let list = api.list(&intake.id, &tenant.key, "").await?;
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(2));
    Ok(())
}

/// Whatever `phone_number_id` the control plane accepts routes on the data plane, as the
/// text it is: a leading zero is kept (`0…` and the same digits without it are two
/// numbers), and the longest id is not cut. Both planes apply `wire::is_phone_number_id`.
async fn numbers_route_exactly_as_the_control_plane_accepted_them(
    redis: bool,
) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let project = s.tenant.project_id.clone();
    for pnid in ["0106540352242922", "98765432109876543210"] {
        s.admin.number(&project, pnid, false).await?;
        let (workflow, _) = s
            .workflow(&format!("on-{pnid}"), "inbound_message", Some(pnid), None)
            .await?;
        let body = text_message(pnid, "15551230001", &format!("wamid.{pnid}"), "hello");
        let answer = s.post(&body).await?;
        let (r, _, execution) = route(&answer);
        assert_eq!(r, "trigger", "{pnid}: {answer}");
        let e = s.execution(&execution.unwrap_or_default()).await?;
        assert_eq!(e["workflow_id"], workflow.as_str(), "{pnid}");
    }
    // The same digits without the zero are no number of this installation.
    let body = text_message("106540352242922", "15551230001", "wamid.nozero", "hello");
    let answer = s.post(&body).await?;
    assert_eq!(answer["ignored"], 1, "{answer}");
    Ok(())
}
