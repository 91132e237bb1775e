//! Workflow runners over the `Executions` service (DESIGN §8): claims, acks, redelivery
//! after the visibility timeout, workflow filters. Every behaviour runs against the real
//! Redis (own key prefix) and the in-process memory store.

use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use switchboard_proto::v1 as pb;
use switchboard_tests::runner::{Runner, authorized};
use switchboard_tests::stack::Stack;
use tonic::Code;

switchboard_tests::both_stores!(
    a_claimed_execution_runs_once_and_is_acked,
    an_unacked_execution_is_redelivered_once_to_another_runner,
    four_runners_share_the_work_exactly_once_by_filter,
    runner_rpcs_refuse_bad_tokens_names_and_others_deliveries,
    a_message_for_a_held_execution_reaches_its_runner,
);

/// Starts an execution of `workflow_id` through the API trigger; its tracking id.
/// Starts an execution for a customer of its own: executions for one customer would
/// share a conversation and supersede each other (DESIGN §12).
async fn start_execution(s: &Stack, workflow_id: &str) -> anyhow::Result<String> {
    static CUSTOMER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CUSTOMER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let reply = s
        .api
        .start(
            workflow_id,
            &s.tenant.key,
            &json!({"workflow_execution": {"phone_number": format!("+1555{n:07}")}}),
        )
        .await?;
    anyhow::ensure!(reply.status == 202, "start: {:?}", reply.body);
    Ok(reply.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn connect(s: &Stack, name: &str) -> anyhow::Result<Runner> {
    Runner::connect(&s.dp.grpc_url, name).await
}

/// The next claimed execution, or `None` if none comes within `wait`.
async fn next(
    claims: &mut tonic::Streaming<pb::ClaimedExecution>,
    wait: Duration,
) -> anyhow::Result<Option<pb::ClaimedExecution>> {
    match tokio::time::timeout(wait, claims.message()).await {
        Ok(message) => Ok(message?),
        Err(_) => Ok(None),
    }
}

async fn a_claimed_execution_runs_once_and_is_acked(redis: bool) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    let id = start_execution(&s, &s.tenant.workflow_id).await?;
    let mut runner = connect(&s, "runner-a").await?;
    let mut claims = runner.claims(&[], 1000).await?;
    let claimed = next(&mut claims, Duration::from_secs(10))
        .await?
        .ok_or_else(|| anyhow::anyhow!("nothing claimed"))?;
    assert_eq!(claimed.attempt, 1);
    let execution = claimed.execution.unwrap_or_default();
    assert_eq!(execution.id, id);
    assert_eq!(
        execution.status, "running",
        "claiming moves pending to running"
    );
    assert_eq!(execution.trigger_type, "api_call");
    let context: serde_json::Value = serde_json::from_str(&execution.execution_context_json)?;
    assert!(
        context["context"]["phone_number"]
            .as_str()
            .is_some_and(|p| p.starts_with("+1555")),
        "{context}"
    );
    runner.ack(&id).await?;
    runner.ack(&id).await?; // acking again is harmless

    // Acked: past the visibility timeout nobody gets it again.
    let mut other = connect(&s, "runner-b").await?;
    let mut other_claims = other.claims(&[], 1000).await?;
    assert!(
        next(&mut other_claims, Duration::from_millis(2500))
            .await?
            .is_none()
    );
    assert!(
        next(&mut claims, Duration::from_millis(200))
            .await?
            .is_none()
    );

    let shown = s.api.execution(&id, &s.tenant.key).await?;
    assert_eq!(shown.body["status"], "running");
    let events: Vec<&str> = shown.body["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["type"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(events, ["status_changed", "claimed"]);
    assert_eq!(shown.body["events"][1]["runner"], "runner-a");
    runner.set_status(&id, "ended").await?;
    Ok(())
}

async fn an_unacked_execution_is_redelivered_once_to_another_runner(
    redis: bool,
) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    let id = start_execution(&s, &s.tenant.workflow_id).await?;
    {
        // A runner that takes the execution and dies before acking it.
        let mut doomed = connect(&s, "doomed").await?;
        let mut claims = doomed.claims(&[], 1000).await?;
        let claimed = next(&mut claims, Duration::from_secs(10)).await?;
        assert_eq!(
            claimed.and_then(|c| c.execution).map(|e| e.id),
            Some(id.clone())
        );
    }
    let mut heir = connect(&s, "heir").await?;
    let mut claims = heir.claims(&[], 1000).await?;
    let claimed = next(&mut claims, Duration::from_secs(10))
        .await?
        .ok_or_else(|| anyhow::anyhow!("not redelivered"))?;
    assert_eq!(claimed.attempt, 2);
    assert_eq!(claimed.execution.map(|e| e.id), Some(id.clone()));
    heir.ack(&id).await?;
    // Once: acked, it does not come back.
    assert!(
        next(&mut claims, Duration::from_millis(2500))
            .await?
            .is_none()
    );
    let shown = s.api.execution(&id, &s.tenant.key).await?;
    let runners: Vec<&str> = shown.body["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["runner"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(runners, ["doomed", "heir"]);
    Ok(())
}

async fn four_runners_share_the_work_exactly_once_by_filter(redis: bool) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let (second, _) = s.workflow("second", "api_call", None, None).await?;
    let first = s.tenant.workflow_id.clone();
    let mut expected_first = HashSet::new();
    let mut expected_second = HashSet::new();
    for i in 0..40 {
        if i % 2 == 0 {
            expected_first.insert(start_execution(&s, &first).await?);
        } else {
            expected_second.insert(start_execution(&s, &second).await?);
        }
    }
    // Two runners serve only the first workflow, two serve everything.
    let mut tasks = Vec::new();
    for (name, filter) in [
        ("only-first-1", vec![first.clone()]),
        ("only-first-2", vec![first.clone()]),
        ("any-1", vec![]),
        ("any-2", vec![]),
    ] {
        let mut runner = connect(&s, name).await?;
        let filter_copy = filter.clone();
        tasks.push(tokio::spawn(async move {
            let claims = runner.claims(&filter_copy, 30_000).await?;
            let ran = runner
                .run(claims, Duration::from_millis(1500), None)
                .await?;
            anyhow::Ok((filter, ran))
        }));
    }
    // Each runner runs until its stream is quiet; collect what each ran.
    let mut all = Vec::new();
    let mut seen_first = HashSet::new();
    for task in tasks {
        let (filter, ran) = task.await??;
        for id in &ran {
            if !filter.is_empty() {
                assert!(expected_first.contains(id), "a filtered runner got {id}");
            }
            if expected_first.contains(id) {
                seen_first.insert(id.clone());
            }
        }
        all.extend(ran);
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "an execution ran twice");
    assert_eq!(all.len(), 40);
    assert_eq!(seen_first, expected_first);
    for id in expected_first.iter().chain(&expected_second) {
        let shown = s.api.execution(id, &s.tenant.key).await?;
        assert_eq!(shown.body["status"], "ended", "{id}");
    }
    Ok(())
}

async fn runner_rpcs_refuse_bad_tokens_names_and_others_deliveries(
    redis: bool,
) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    let id = start_execution(&s, &s.tenant.workflow_id).await?;
    let mut runner = connect(&s, "runner-a").await?;

    let request = pb::ClaimExecutionsRequest {
        runner: "x".into(),
        ..Default::default()
    };
    let refused = runner.client().claim_executions(request).await;
    assert_eq!(refused.err().map(|e| e.code()), Some(Code::Unauthenticated));
    for (runner_name, workflows, visibility) in [
        ("", vec![], 0),
        ("has space", vec![], 0),
        ("ok", vec!["not-a-uuid".to_owned()], 0),
        ("ok", vec![], 10),
    ] {
        let request = pb::ClaimExecutionsRequest {
            runner: runner_name.into(),
            workflow_ids: workflows,
            visibility_timeout_ms: visibility,
        };
        let refused = runner.client().claim_executions(authorized(request)).await;
        assert_eq!(
            refused.err().map(|e| e.code()),
            Some(Code::InvalidArgument),
            "{runner_name:?} {visibility}"
        );
    }

    // Not delivered yet: nobody may ack it.
    let err = runner.ack(&id).await.err().map(|e| e.code());
    assert_eq!(err, Some(Code::FailedPrecondition));
    let mut claims = runner.claims(&[], 5000).await?;
    assert!(next(&mut claims, Duration::from_secs(10)).await?.is_some());
    let mut other = connect(&s, "runner-b").await?;
    assert_eq!(
        other.ack(&id).await.err().map(|e| e.code()),
        Some(Code::FailedPrecondition)
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        runner.ack(&unknown).await.err().map(|e| e.code()),
        Some(Code::NotFound)
    );
    assert_eq!(
        runner.ack("garbage").await.err().map(|e| e.code()),
        Some(Code::NotFound)
    );
    runner.ack(&id).await?;
    Ok(())
}

async fn a_message_for_a_held_execution_reaches_its_runner(redis: bool) -> anyhow::Result<()> {
    use switchboard_tests::whatsapp::text_message;
    let mut s = Stack::start(redis).await?;
    let pnid = s.tenant.phone_number_id.clone();
    let (intake, _) = s
        .workflow("intake", "inbound_message", Some(&pnid), None)
        .await?;
    let meta = &s.meta;
    let first = meta
        .post(&text_message(
            &pnid,
            "15550100200",
            "wamid.H1",
            "I need help",
        ))
        .await?;
    let id = first.body["messages"][0]["execution_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let mut runner = connect(&s, "holder").await?;
    let mut claims = runner.claims(std::slice::from_ref(&intake), 5000).await?;
    let claimed = next(&mut claims, Duration::from_secs(10))
        .await?
        .and_then(|c| c.execution)
        .map(|e| e.id);
    assert_eq!(claimed.as_deref(), Some(id.as_str()));
    runner.ack(&id).await?;

    let second = meta
        .post(&text_message(
            &pnid,
            "15550100200",
            "wamid.H2",
            "my order is late",
        ))
        .await?;
    assert_eq!(second.body["messages"][0]["route"], "delivered");
    let message = next(&mut claims, Duration::from_secs(10))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the message did not reach the runner"))?;
    assert_eq!(message.attempt, 0);
    let delivered: serde_json::Value =
        serde_json::from_str(message.message_json.as_deref().unwrap_or("null"))?;
    assert_eq!(delivered["message"]["text"], "my order is late");
    let execution = message.execution.unwrap_or_default();
    assert_eq!(execution.id, id);
    let context: serde_json::Value = serde_json::from_str(&execution.execution_context_json)?;
    assert_eq!(context["last_user_input"], "my order is late");
    // Once.
    assert!(
        next(&mut claims, Duration::from_millis(500))
            .await?
            .is_none()
    );
    Ok(())
}
