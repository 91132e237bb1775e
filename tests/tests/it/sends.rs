//! Send steps (DESIGN §9, `Executions.SendMessage`) against a fake Graph API: rendering,
//! observer mode, Graph errors recorded once, statuses of a sent message. Every behaviour
//! runs against the real Redis (own key prefix) and the in-process memory store.

use serde_json::Value;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::send_message_request::Content;
use switchboard_tests::graph::FakeGraph;
use switchboard_tests::runner::{Runner, authorized};
use switchboard_tests::stack::Stack;
use switchboard_tests::whatsapp::{fixture, status};
use tonic::Code;

switchboard_tests::both_stores!(
    an_observer_send_is_skipped_unless_it_names_a_destination,
    a_send_renders_the_context_and_its_statuses_fire_events,
    graph_errors_are_recorded_once_and_bad_sends_refused,
    the_reference_runner_claims_sends_and_ends,
);

/// The usual stack with its data plane sending to a fake Graph API, and a runner.
struct Sending {
    stack: Stack,
    graph: FakeGraph,
    runner: Runner,
}

impl std::ops::Deref for Sending {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.stack
    }
}

impl std::ops::DerefMut for Sending {
    fn deref_mut(&mut self) -> &mut Stack {
        &mut self.stack
    }
}

impl Sending {
    async fn start(redis: bool) -> anyhow::Result<Self> {
        let graph = FakeGraph::start().await?;
        let graph_url = graph.url.clone();
        let stack = Stack::start_with(redis, |c| c.graph_api_base = graph_url).await?;
        let runner = Runner::connect(&stack.dp.grpc_url, "sender").await?;
        Ok(Self {
            stack,
            graph,
            runner,
        })
    }

    async fn event_workflow(&mut self, event: &str) -> anyhow::Result<String> {
        let (workflow, _) = self
            .workflow(event, "whatsapp_event", None, Some(event))
            .await?;
        Ok(workflow)
    }

    async fn send(
        &mut self,
        tracking_id: &str,
        text: &str,
        to: Option<&str>,
    ) -> Result<pb::SendMessageResponse, tonic::Status> {
        let request = pb::SendMessageRequest {
            tracking_id: tracking_id.to_owned(),
            content: Some(Content::Text(text.to_owned())),
            to_phone_number: to.map(str::to_owned),
            whatsapp_config_id: None,
        };
        Ok(self
            .runner
            .client()
            .send_message(authorized(request))
            .await?
            .into_inner())
    }

    async fn events(&self, tracking_id: &str) -> anyhow::Result<Vec<Value>> {
        let reply = self.api.execution(tracking_id, &self.tenant.key).await?;
        Ok(reply.body["events"].as_array().cloned().unwrap_or_default())
    }

    async fn only_execution(&self, workflow_id: &str) -> anyhow::Result<String> {
        let list = self.api.list(workflow_id, &self.tenant.key, "").await?;
        let data = list.body["data"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(data.len() == 1, "{workflow_id}: {data:?}");
        Ok(data[0]["id"].as_str().unwrap_or_default().to_owned())
    }
}

async fn an_observer_send_is_skipped_unless_it_names_a_destination(
    redis: bool,
) -> anyhow::Result<()> {
    let mut s = Sending::start(redis).await?;
    let observer = s.event_workflow("whatsapp.message.received").await?;
    let pnid = s.tenant.phone_number_id.clone();
    let reply = s.meta.post(&fixture("message_text.json", &pnid)?).await?;
    assert_eq!(reply.status, 200);
    let id = s.only_execution(&observer).await?;

    let skipped = s
        .send(&id, "Seen: {{system.event.message.text.body}}", None)
        .await?;
    assert_eq!(skipped.result, "SKIPPED");
    assert_eq!(skipped.reason.as_deref(), Some("observer_mode"));
    assert!(s.graph.sent().is_empty(), "nothing may reach Meta");

    let sent = s
        .send(
            &id,
            "Seen: {{system.event.message.text.body}}",
            Some("+1 555 010 0999"),
        )
        .await?;
    assert_eq!(sent.result, "SENT");
    let requests = s.graph.sent();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].phone_number_id, pnid);
    assert_eq!(requests[0].authorization, "Bearer EAAG-test-token");
    assert_eq!(requests[0].body["messaging_product"], "whatsapp");
    assert_eq!(requests[0].body["to"], "15550100999");
    assert_eq!(requests[0].body["type"], "text");
    assert_eq!(
        requests[0].body["text"]["body"],
        "Seen: Does it come in another color?"
    );

    let events = s.events(&id).await?;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds, ["message_skipped", "message_sent"]);
    assert_eq!(events[0]["reason"], "observer_mode");
    assert_eq!(
        events[1]["wamid"],
        sent.wamid.as_deref().unwrap_or_default()
    );
    Ok(())
}

async fn a_send_renders_the_context_and_its_statuses_fire_events(
    redis: bool,
) -> anyhow::Result<()> {
    let mut s = Sending::start(redis).await?;
    let delivered = s.event_workflow("whatsapp.message.delivered").await?;
    let reply = s
        .api
        .start(
            &s.tenant.workflow_id,
            &s.tenant.key,
            &serde_json::json!({"workflow_execution": {
                "phone_number": "+1 (555) 010-0123",
                "variables": {"name": "Ada", "order": {"id": 7}},
            }}),
        )
        .await?;
    assert_eq!(reply.status, 202);
    let id = reply.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sent = s
        .send(
            &id,
            "Hi {{ vars.name }}, order {{vars.order.id}} {{vars.order}}{{vars.missing}} for {{context.phone_number}}",
            None,
        )
        .await?;
    assert_eq!(sent.result, "SENT", "{sent:?}");
    let requests = s.graph.sent();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["to"], "15550100123");
    assert_eq!(
        requests[0].body["text"]["body"],
        r#"Hi Ada, order 7 {"id":7} for +15550100123"#
    );
    let wamid = sent.wamid.unwrap_or_default();
    let message = s
        .api
        .get(
            &format!("/platform/v1/whatsapp/messages/{wamid}"),
            &s.tenant.key,
        )
        .await?;
    assert_eq!(message.body["status"], "accepted", "{:?}", message.body);

    // Meta reports it delivered: the status is recorded and the event trigger fires.
    let reply = s
        .meta
        .post(&status(
            &s.tenant.phone_number_id,
            "15550100123",
            &wamid,
            "delivered",
        ))
        .await?;
    assert_eq!(reply.status, 200);
    let message = s
        .api
        .get(
            &format!("/platform/v1/whatsapp/messages/{wamid}"),
            &s.tenant.key,
        )
        .await?;
    assert_eq!(message.body["status"], "delivered");
    let fired = s.only_execution(&delivered).await?;
    let e = s.api.execution(&fired, &s.tenant.key).await?;
    assert_eq!(
        e.body["execution_context"]["system"]["event"]["message"]["id"],
        wamid.as_str()
    );
    Ok(())
}

async fn graph_errors_are_recorded_once_and_bad_sends_refused(redis: bool) -> anyhow::Result<()> {
    let mut s = Sending::start(redis).await?;
    let reply = s
        .api
        .start(
            &s.tenant.workflow_id,
            &s.tenant.key,
            &serde_json::json!({"workflow_execution": {"phone_number": "+15550100123"}}),
        )
        .await?;
    let id = reply.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    s.graph.fail_with(Some((131_026, "Message undeliverable")));
    let failed = s.send(&id, "hello", None).await?;
    assert_eq!(failed.result, "FAILED");
    assert_eq!(failed.error_code, Some(131_026));
    assert_eq!(
        failed.error_message.as_deref(),
        Some("Message undeliverable")
    );
    assert_eq!(s.graph.sent().len(), 1, "attempted once, not retried");
    let events = s.events(&id).await?;
    assert_eq!(events[0]["type"], "message_failed");
    assert_eq!(events[0]["error"]["code"], 131_026);

    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        s.send(&unknown, "x", None).await.err().map(|e| e.code()),
        Some(Code::NotFound)
    );
    assert_eq!(
        s.send(&id, "x", Some("12")).await.err().map(|e| e.code()),
        Some(Code::InvalidArgument)
    );
    let mut request = pb::SendMessageRequest {
        tracking_id: id.clone(),
        content: Some(Content::Text("x".into())),
        ..Default::default()
    };
    let refused = s.runner.client().send_message(request.clone()).await;
    assert_eq!(refused.err().map(|e| e.code()), Some(Code::Unauthenticated));
    request.whatsapp_config_id = Some(987_654_321);
    let refused = s
        .runner
        .client()
        .send_message(authorized(request.clone()))
        .await;
    assert_eq!(refused.err().map(|e| e.code()), Some(Code::InvalidArgument));
    request.whatsapp_config_id = None;
    request.content = Some(Content::TemplateJson("[1]".into()));
    let refused = s
        .runner
        .client()
        .send_message(authorized(request.clone()))
        .await;
    assert_eq!(refused.err().map(|e| e.code()), Some(Code::InvalidArgument));
    request.content = None;
    let refused = s.runner.client().send_message(authorized(request)).await;
    assert_eq!(refused.err().map(|e| e.code()), Some(Code::InvalidArgument));
    assert_eq!(s.graph.sent().len(), 1, "no refused send reached Meta");

    // Meta does not answer within the data plane's 10 s: FAILED, recorded, not retried.
    s.graph.fail_with(None);
    s.graph.delay(Some(std::time::Duration::from_secs(15)));
    let timed_out = s.send(&id, "are you there?", None).await?;
    assert_eq!(timed_out.result, "FAILED");
    assert_eq!(timed_out.error_code, Some(0));
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(s.graph.sent().len(), 2, "one more attempt, no retry");
    let events = s.events(&id).await?;
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some("message_failed".into())
    );
    Ok(())
}

async fn the_reference_runner_claims_sends_and_ends(redis: bool) -> anyhow::Result<()> {
    let mut s = Sending::start(redis).await?;
    let reply = s
        .api
        .start(
            &s.tenant.workflow_id,
            &s.tenant.key,
            &serde_json::json!({"workflow_execution": {
                "phone_number": "+15550100321", "variables": {"name": "Grace"}}}),
        )
        .await?;
    let id = reply.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let claims = s.runner.claims(&[], 5000).await?;
    let ran = s
        .runner
        .run(
            claims,
            std::time::Duration::from_millis(1500),
            Some("Hello {{vars.name}}"),
        )
        .await?;
    assert_eq!(ran, std::slice::from_ref(&id));
    let requests = s.graph.sent();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["text"]["body"], "Hello Grace");
    assert_eq!(requests[0].body["to"], "15550100321");
    let shown = s.api.execution(&id, &s.tenant.key).await?;
    assert_eq!(shown.body["status"], "ended");
    let kinds: Vec<&str> = shown.body["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["type"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        kinds,
        [
            "status_changed",
            "claimed",
            "message_sent",
            "status_changed"
        ]
    );
    Ok(())
}
