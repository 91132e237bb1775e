//! API-trigger executions in the customer's conversation (DESIGN §12): started by API, the
//! customer's reply reaches them; a busy conversation is superseded or refused. Every
//! behaviour runs against the real Redis (own key prefix) and the memory store.

use serde_json::{Value, json};
use std::time::Duration;
use switchboard_tests::DataPlane;
use switchboard_tests::platform::Tenant;
use switchboard_tests::runner::Runner;
use switchboard_tests::stack::Stack;
use switchboard_tests::whatsapp::text_message;

switchboard_tests::both_stores!(
    the_customers_reply_reaches_the_execution_the_api_started,
    a_busy_conversation_is_superseded_by_default_and_refused_with_fail,
    the_runner_of_a_superseded_execution_hears_of_it,
    kapsos_patch_shape_moves_an_execution_like_the_plain_one,
    a_waiting_execution_resumes_and_its_runner_hears_it,
    resume_execution_over_grpc_acts_for_the_keys_project,
    a_waiting_execution_times_out_once_and_frees_its_conversation,
);

const CUSTOMER: &str = "+15550107777";

/// Starts the tenant's API workflow for `CUSTOMER` with `extra` members; the reply.
async fn start(s: &Stack, extra: Value) -> anyhow::Result<switchboard_tests::platform::Reply> {
    let mut inner = json!({"phone_number": CUSTOMER});
    if let (Some(inner), Value::Object(extra)) = (inner.as_object_mut(), extra) {
        inner.extend(extra);
    }
    s.api
        .start(
            &s.tenant.workflow_id,
            &s.tenant.key,
            &json!({ "workflow_execution": inner }),
        )
        .await
}

/// Starts it and returns the tracking id of a 202.
async fn started(s: &Stack, extra: Value) -> anyhow::Result<String> {
    let reply = start(s, extra).await?;
    anyhow::ensure!(reply.status == 202, "start: {:?}", reply.body);
    Ok(reply.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

fn events_of<'a>(e: &'a Value, kind: &str) -> Vec<&'a Value> {
    e["events"]
        .as_array()
        .map(|a| a.iter().filter(|ev| ev["type"] == kind).collect())
        .unwrap_or_default()
}

async fn the_customers_reply_reaches_the_execution_the_api_started(
    redis: bool,
) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    // A message trigger and the agent inbox would take the reply if it were not bound.
    let (intake, _) = s
        .workflow("intake", "inbound_message", Some(&pnid), None)
        .await?;
    let (opened, _) = s
        .workflow(
            "opened",
            "whatsapp_event",
            None,
            Some("whatsapp.conversation.created"),
        )
        .await?;
    s.sync().await?;

    // A request's own context.conversation_id is Switchboard's to set.
    let id = started(&s, json!({"context": {"conversation_id": "spoof"}})).await?;
    let e = s.execution(&id).await?;
    let conversation = e["conversation_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(conversation.len(), 36, "{e}");
    assert_eq!(
        e["execution_context"]["context"]["conversation_id"],
        conversation.as_str()
    );
    let c = s.conversation(&conversation).await?;
    assert_eq!(
        (c["phone_number"].as_str(), c["phone_number_id"].as_str()),
        (Some(CUSTOMER), Some(pnid.as_str()))
    );
    assert_eq!(c["status"], "active");
    // The new conversation fired whatsapp.conversation.created, once, for its workflow.
    let fired = s.executions(&opened).await?;
    assert_eq!(fired.len(), 1, "{fired:?}");
    let fired = s
        .execution(fired[0]["id"].as_str().unwrap_or_default())
        .await?;
    assert_eq!(fired["conversation_id"], conversation.as_str());
    let system = &fired["execution_context"]["system"];
    assert_eq!(system["event"]["type"], "whatsapp.conversation.created");
    assert_eq!(system["event"]["payload"]["origin"], "api_call");
    assert_eq!(system["event"]["payload"]["tracking_id"], id.as_str());
    assert_eq!(
        system["event"]["payload"]["conversation_id"],
        conversation.as_str()
    );

    // The customer answers: delivered to the API's execution (rule b), not the trigger.
    let reply = text_message(&pnid, &CUSTOMER[1..], "wamid.API1", "yes please");
    let answer = s.post(&reply).await?;
    let m = &answer["messages"][0];
    assert_eq!(m["route"], "delivered", "{answer}");
    assert_eq!(m["conversation_id"], conversation.as_str());
    assert_eq!(m["execution_id"], id.as_str());
    let e = s.execution(&id).await?;
    assert_eq!(e["execution_context"]["last_user_input"], "yes please");
    let delivered = events_of(&e, "message_received");
    assert_eq!(delivered.len(), 1, "{e}");
    assert_eq!(delivered[0]["message"]["text"], "yes please");
    assert!(s.executions(&intake).await?.is_empty());

    // A second start for the customer joins the same, still active, conversation.
    s.end(&id).await?;
    let again = started(&s, json!({})).await?;
    let e = s.execution(&again).await?;
    assert_eq!(e["conversation_id"], conversation.as_str());
    assert_eq!(s.executions(&opened).await?.len(), 1, "no second created");
    // Without a number (phone_number_id of no number: refused; none given and no
    // default: unbound) — the refusal names its field and writes nothing.
    let bad = start(&s, json!({"phone_number_id": "999999999999999"})).await?;
    assert_eq!(
        (bad.status, bad.code(), bad.field()),
        (
            422,
            "invalid_phone_number_id",
            "workflow_execution.phone_number_id"
        )
    );
    let bad = start(&s, json!({"on_conflict": "later"})).await?;
    assert_eq!(
        (bad.status, bad.code(), bad.field()),
        (422, "invalid_on_conflict", "workflow_execution.on_conflict")
    );
    assert_eq!(s.executions(&s.tenant.workflow_id).await?.len(), 2);
    Ok(())
}

async fn a_busy_conversation_is_superseded_by_default_and_refused_with_fail(
    redis: bool,
) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    let first = started(&s, json!({})).await?;
    for status in ["running", "waiting"] {
        let reply = s.api.set_status(&first, &s.tenant.key, status).await?;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }

    // Default end_existing: the new one starts, the waiting one ends as superseded.
    let second = started(&s, json!({"on_conflict": "end_existing"})).await?;
    let old = s.execution(&first).await?;
    assert_eq!(old["status"], "ended");
    let superseded = events_of(&old, "superseded");
    assert_eq!(superseded.len(), 1, "{old}");
    assert_eq!(superseded[0]["by"], second.as_str());
    assert_eq!(superseded[0]["reason"], "superseded");
    let moved = events_of(&old, "status_changed");
    assert_eq!(
        moved.last().map(|m| (m["from"].clone(), m["to"].clone())),
        Some((json!("waiting"), json!("ended")))
    );
    let new = s.execution(&second).await?;
    assert_eq!(new["conversation_id"], old["conversation_id"]);
    let supersedes = events_of(&new, "supersedes");
    assert_eq!(supersedes.len(), 1, "{new}");
    assert_eq!(supersedes[0]["execution"], first.as_str());

    // fail: refused with the holder named, nothing written.
    let refused = start(&s, json!({"on_conflict": "fail"})).await?;
    assert_eq!(
        (refused.status, refused.code(), refused.field()),
        (409, "conversation_busy", "workflow_execution.on_conflict")
    );
    let message = refused.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains(&second), "{message}");
    assert_eq!(s.executions(&s.tenant.workflow_id).await?.len(), 2);
    assert_eq!(s.execution(&second).await?["status"], "pending");

    // A human holds it (handoff): still busy for fail, and superseded by default.
    let reply = s.api.set_status(&second, &s.tenant.key, "running").await?;
    assert_eq!(reply.status, 200);
    let reply = s.api.set_status(&second, &s.tenant.key, "handoff").await?;
    assert_eq!(reply.status, 200);
    let refused = start(&s, json!({"on_conflict": "fail"})).await?;
    assert_eq!((refused.status, refused.code()), (409, "conversation_busy"));

    // Once it ended nothing holds the conversation: fail starts, in the same conversation.
    s.end(&second).await?;
    let third = started(&s, json!({"on_conflict": "fail"})).await?;
    let third_e = s.execution(&third).await?;
    assert_eq!(third_e["conversation_id"], new["conversation_id"]);
    assert!(events_of(&third_e, "supersedes").is_empty());
    // And the customer's reply goes to it.
    let answer = s
        .post(&text_message(&pnid, &CUSTOMER[1..], "wamid.B1", "ok"))
        .await?;
    assert_eq!(answer["messages"][0]["execution_id"], third.as_str());
    Ok(())
}

async fn the_runner_of_a_superseded_execution_hears_of_it(redis: bool) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    let first = started(&s, json!({})).await?;
    let mut runner = Runner::connect(&s.dp.grpc_url, "runner-a").await?;
    let mut claims = runner.claims(&[], 30_000).await?;
    let claimed = tokio::time::timeout(Duration::from_secs(10), claims.message())
        .await??
        .and_then(|c| c.execution)
        .map(|e| e.id);
    assert_eq!(claimed.as_deref(), Some(first.as_str()));
    runner.ack(&first).await?;

    let second = started(&s, json!({})).await?;
    // The holder's runner gets the superseded event on its stream; the new one is work.
    let mut heard = None;
    let mut new_work = None;
    while heard.is_none() || new_work.is_none() {
        let Some(c) = tokio::time::timeout(Duration::from_secs(10), claims.message()).await??
        else {
            anyhow::bail!("the claim stream ended");
        };
        let e = c.execution.unwrap_or_default();
        match c.message_json {
            Some(message) => heard = Some((e.id, e.status, message)),
            None => new_work = Some(e.id),
        }
    }
    let (id, status, message) = heard.unwrap_or_default();
    assert_eq!((id.as_str(), status.as_str()), (first.as_str(), "ended"));
    let message: Value = serde_json::from_str(&message)?;
    assert_eq!(message["type"], "superseded");
    assert_eq!(message["by"], second.as_str());
    assert_eq!(new_work.as_deref(), Some(second.as_str()));
    Ok(())
}

async fn kapsos_patch_shape_moves_an_execution_like_the_plain_one(
    redis: bool,
) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    let id = started(&s, json!({})).await?;
    let path = format!("/platform/v1/workflow_executions/{id}");
    let patch = |body: Value| {
        let (api, key, path) = (&s.api, &s.tenant.key, &path);
        async move { api.patch(path, key, &body).await }
    };
    let moved = patch(json!({"workflow_execution": {"status": "running"}})).await?;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.body["status"], "running");
    // The plain shape still works, on the same execution.
    let moved = patch(json!({"status": "waiting"})).await?;
    assert_eq!(
        (moved.status, &moved.body["status"]),
        (200, &json!("waiting"))
    );
    // Refusals name the nested field, and change nothing.
    for (body, code, field) in [
        (
            json!({"workflow_execution": {"status": "pending"}}),
            "invalid_transition",
            "workflow_execution.status",
        ),
        (
            json!({"workflow_execution": {"status": "done"}}),
            "invalid_status",
            "workflow_execution.status",
        ),
        (
            json!({"workflow_execution": {"status": 3}}),
            "invalid_type",
            "workflow_execution.status",
        ),
        (
            json!({"workflow_execution": {}}),
            "missing_field",
            "workflow_execution.status",
        ),
        (
            json!({"workflow_execution": "ended"}),
            "invalid_type",
            "workflow_execution",
        ),
    ] {
        let refused = patch(body.clone()).await?;
        assert_eq!(
            (refused.status, refused.code(), refused.field()),
            (422, code, field),
            "{body}"
        );
    }
    assert_eq!(s.execution(&id).await?["status"], "waiting");
    // Without a valid key nothing moves.
    let other = s
        .api
        .patch(
            &path,
            "sk_not_a_key",
            &json!({"workflow_execution": {"status": "ended"}}),
        )
        .await?;
    assert_eq!(other.status, 401);
    Ok(())
}

async fn a_waiting_execution_resumes_and_its_runner_hears_it(redis: bool) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let id = started(&s, json!({"variables": {"plan": "silver"}})).await?;
    let mut runner = Runner::connect(&s.dp.grpc_url, "runner-r").await?;
    let mut claims = runner.claims(&[], 30_000).await?;
    let claimed = tokio::time::timeout(Duration::from_secs(10), claims.message())
        .await??
        .and_then(|c| c.execution)
        .map(|e| e.id);
    assert_eq!(claimed.as_deref(), Some(id.as_str()));
    runner.ack(&id).await?;
    let path = format!("/platform/v1/workflow_executions/{id}/resume");
    let body = json!({
        "message": {"kind": "payload", "data": "yes"},
        "variables": {"plan": "gold", "system": "spoof", "n": [1, 2]},
    })
    .to_string();

    // Running, not waiting: refused, nothing changes.
    let refused = s.api.post(&path, &s.tenant.key, body.clone()).await?;
    assert_eq!((refused.status, refused.code()), (409, "not_waiting"));
    runner.set_status(&id, "waiting").await?;

    // Bad bodies name their field and change nothing.
    for (bad, status, field) in [
        ("{", 400, ""),
        (r#"{"message": "yes"}"#, 422, "message"),
        (r#"{"message": {"data": 3}}"#, 422, "message.data"),
        (r#"{"message": {"kind": 1}}"#, 422, "message.kind"),
        (r#"{"variables": []}"#, 422, "variables"),
        ("[]", 422, "body"),
    ] {
        let reply = s.api.post(&path, &s.tenant.key, bad).await?;
        assert_eq!((reply.status, reply.field()), (status, field), "{bad}");
    }
    // Another project's key does not find it; an unknown id neither.
    let other = Tenant::seed(&mut s.admin, "other", None).await?;
    s.sync().await?;
    let reply = s.api.post(&path, &other.key, body.clone()).await?;
    assert_eq!((reply.status, reply.code()), (404, "execution_not_found"));
    let unknown = format!("/platform/v1/workflow_executions/{}/resume", uuid_like());
    let reply = s.api.post(&unknown, &s.tenant.key, body.clone()).await?;
    assert_eq!(reply.status, 404);
    assert_eq!(s.execution(&id).await?["status"], "waiting");

    let resumed = s.api.post(&path, &s.tenant.key, body).await?;
    assert_eq!(resumed.status, 202, "{:?}", resumed.body);
    assert_eq!(resumed.body["id"], id.as_str());
    assert_eq!(resumed.body["tracking_id"], id.as_str());
    assert_eq!(resumed.body["workflow_id"], s.tenant.workflow_id.as_str());
    assert_eq!(resumed.body["status"], "running");
    assert!(resumed.body["updated_at"].is_string());

    let e = s.execution(&id).await?;
    let c = &e["execution_context"];
    assert_eq!(c["last_user_input"], "yes");
    assert_eq!(c["vars"]["plan"], "gold");
    assert_eq!(c["vars"]["n"], json!([1, 2]));
    assert_eq!(c["plan"], "gold");
    assert_eq!(c["vars"]["system"], "spoof");
    assert_eq!(
        c["system"]["tracking_id"],
        id.as_str(),
        "reserved names stay"
    );
    let events = events_of(&e, "resumed");
    assert_eq!(events.len(), 1, "{e}");
    assert_eq!(events[0]["message"]["data"], "yes");
    assert_eq!(events[0]["variables"]["plan"], "gold");

    // The runner holding it hears the resume on its stream.
    let heard = tokio::time::timeout(Duration::from_secs(10), claims.message())
        .await??
        .ok_or_else(|| anyhow::anyhow!("the claim stream ended"))?;
    assert_eq!(heard.attempt, 0);
    assert_eq!(heard.execution.map(|e| e.id).as_deref(), Some(id.as_str()));
    let message: Value = serde_json::from_str(heard.message_json.as_deref().unwrap_or("{}"))?;
    assert_eq!(message["type"], "resumed");
    Ok(())
}

/// A well-formed tracking id nobody has.
fn uuid_like() -> String {
    "01900000-0000-7000-8000-000000000000".to_owned()
}

async fn resume_execution_over_grpc_acts_for_the_keys_project(redis: bool) -> anyhow::Result<()> {
    use switchboard_proto::v1 as pb;
    use tonic::Code;
    let mut s = Stack::start(redis).await?;
    let id = started(&s, json!({})).await?;
    let mut runner = Runner::connect(&s.dp.grpc_url, "runner-g").await?;
    runner.set_status(&id, "running").await?;
    runner.set_status(&id, "waiting").await?;
    let channel = tonic::transport::Channel::from_shared(s.dp.grpc_url.clone())?
        .connect()
        .await?;
    let mut client = pb::executions_client::ExecutionsClient::new(channel);
    let resume = |key: &str| {
        let mut request = tonic::Request::new(pb::ResumeExecutionRequest {
            tracking_id: id.clone(),
            resume_json: r#"{"message": {"kind": "payload", "data": "ok"}}"#.into(),
        });
        if let Ok(value) = key.parse() {
            request.metadata_mut().insert("x-api-key", value);
        }
        request
    };
    let other = Tenant::seed(&mut s.admin, "other", None).await?;
    s.sync().await?;
    let refused = client.resume_execution(resume(&other.key)).await;
    assert_eq!(refused.err().map(|e| e.code()), Some(Code::NotFound));
    let refused = client.resume_execution(resume("sbk_nope")).await;
    assert_eq!(refused.err().map(|e| e.code()), Some(Code::Unauthenticated));
    let e = client
        .resume_execution(resume(&s.tenant.key))
        .await?
        .into_inner();
    assert_eq!((e.id.as_str(), e.status.as_str()), (id.as_str(), "running"));
    let context: Value = serde_json::from_str(&e.execution_context_json)?;
    assert_eq!(context["last_user_input"], "ok");
    let again = client.resume_execution(resume(&s.tenant.key)).await;
    let err = again.err();
    assert_eq!(
        err.as_ref().map(|e| e.code()),
        Some(Code::FailedPrecondition)
    );
    assert!(err.is_some_and(|e| e.message().starts_with("not_waiting")));
    Ok(())
}

async fn a_waiting_execution_times_out_once_and_frees_its_conversation(
    redis: bool,
) -> anyhow::Result<()> {
    const TIMEOUT: Duration = Duration::from_millis(700);
    let mut s = Stack::start_with(redis, |c| c.waiting_timeout = TIMEOUT).await?;
    let pnid = s.pnid().to_owned();
    let (intake, _) = s
        .workflow("intake", "inbound_message", Some(&pnid), None)
        .await?;
    // With Redis a second node sweeps the same executions.
    let second = match &s.redis {
        Some(r) => {
            let dir = tempfile::tempdir()?;
            let dp =
                DataPlane::start_with(&s.cp.grpc_url, "dp-2", dir.path(), &r.url, &r.prefix, |c| {
                    c.waiting_timeout = TIMEOUT;
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

    let id = started(&s, json!({})).await?;
    // Another waits too but moves on before the limit: it is left alone.
    let other = s
        .api
        .start(
            &s.tenant.workflow_id,
            &s.tenant.key,
            &json!({"workflow_execution": {"phone_number": "+15550107778"}}),
        )
        .await?;
    let other = other.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut runner = Runner::connect(&s.dp.grpc_url, "runner-w").await?;
    let mut claims = runner.claims(&[], 30_000).await?;
    for _ in 0..2 {
        let claimed = tokio::time::timeout(Duration::from_secs(10), claims.message())
            .await??
            .and_then(|c| c.execution)
            .map(|e| e.id)
            .unwrap_or_default();
        runner.ack(&claimed).await?;
    }
    runner.set_status(&id, "waiting").await?;
    runner.set_status(&other, "waiting").await?;
    runner.set_status(&other, "running").await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let e = loop {
        let e = s.execution(&id).await?;
        if e["status"] != "waiting" {
            break e;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(e["status"], "failed", "{e}");
    // Both nodes keep sweeping: it failed once.
    tokio::time::sleep(TIMEOUT).await;
    let e = s.execution(&id).await?;
    let timed_out = events_of(&e, "waiting_timeout");
    assert_eq!(timed_out.len(), 1, "{e}");
    assert_eq!(timed_out[0]["reason"], "waiting_timeout");
    let to_failed: Vec<_> = events_of(&e, "status_changed")
        .into_iter()
        .filter(|ev| ev["to"] == "failed")
        .collect();
    assert_eq!(to_failed.len(), 1, "{e}");
    assert_eq!(to_failed[0]["from"], "waiting");
    assert!(e["ended_at"].is_string());
    assert_eq!(s.execution(&other).await?["status"], "running");

    // Its runner hears of it on the claim stream.
    let heard = tokio::time::timeout(Duration::from_secs(10), claims.message())
        .await??
        .ok_or_else(|| anyhow::anyhow!("the claim stream ended"))?;
    assert_eq!(heard.execution.map(|e| e.id).as_deref(), Some(id.as_str()));
    let message: Value = serde_json::from_str(heard.message_json.as_deref().unwrap_or("{}"))?;
    assert_eq!(message["type"], "waiting_timeout");

    // The conversation is free: the customer's next message starts the message trigger.
    let answer = s
        .post(&text_message(&pnid, &CUSTOMER[1..], "wamid.WT1", "hello?"))
        .await?;
    assert_eq!(answer["messages"][0]["route"], "trigger", "{answer}");
    assert_eq!(s.executions(&intake).await?.len(), 1);
    Ok(())
}
