//! Test runs (DESIGN §5 `POST …/test_executions`, §8 `StartTestExecution`): every trigger
//! type, from a stored conversation or an API body, on a draft workflow, with
//! `system.test`. Every behaviour runs against the real Redis and the memory store.

use serde_json::{Value, json};
use switchboard_proto::v1 as pb;
use switchboard_tests::platform::{Reply, Tenant};
use switchboard_tests::stack::Stack;
use switchboard_tests::whatsapp::fixture;

switchboard_tests::both_stores!(
    each_trigger_type_is_tested_on_a_draft_with_its_documented_context,
    test_runs_refuse_what_they_cannot_run,
);

/// The usual stack, a draft workflow with one trigger of each type, and a conversation.
struct Testing {
    stack: Stack,
    /// A draft workflow with one trigger of each type.
    draft: String,
    /// A conversation of the tenant's number with +16505551234.
    conversation: String,
}

impl std::ops::Deref for Testing {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.stack
    }
}

impl std::ops::DerefMut for Testing {
    fn deref_mut(&mut self) -> &mut Stack {
        &mut self.stack
    }
}

impl Testing {
    async fn start(redis: bool) -> anyhow::Result<Self> {
        let mut stack = Stack::start(redis).await?;
        let draft = stack
            .admin
            .workflow(&stack.tenant.project_id, "draft", "draft")
            .await?
            .id;
        let pnid = stack.tenant.phone_number_id.clone();
        for spec in [
            switchboard_tests::admin::spec("api_call", None, None),
            switchboard_tests::admin::spec("inbound_message", Some(&pnid), None),
            switchboard_tests::admin::spec(
                "whatsapp_event",
                Some(&pnid),
                Some("whatsapp.message.received"),
            ),
        ] {
            stack.admin.trigger(&draft, spec).await?;
        }
        stack.sync().await?;
        let answer = stack.post(&fixture("message_text.json", &pnid)?).await?;
        let conversation = answer["messages"][0]["conversation_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            stack,
            draft,
            conversation,
        })
    }

    async fn test(&self, workflow_id: &str, key: &str, body: &Value) -> anyhow::Result<Reply> {
        self.api
            .send(
                reqwest::Client::new()
                    .post(format!(
                        "{}/platform/v1/workflows/{workflow_id}/test_executions",
                        self.api.base
                    ))
                    .bearer_auth(key)
                    .json(body),
            )
            .await
    }

    /// Starts a test run of the draft and reads the execution back.
    async fn run(&self, body: &Value) -> anyhow::Result<Value> {
        let reply = self.test(&self.draft, &self.tenant.key, body).await?;
        anyhow::ensure!(reply.status == 202, "{body}: {:?}", reply.body);
        assert_eq!(reply.body["message"], "Workflow test execution initiated");
        let id = reply.body["tracking_id"].as_str().unwrap_or_default();
        let shown = self.api.execution(id, &self.tenant.key).await?;
        anyhow::ensure!(shown.status == 200, "{:?}", shown.body);
        Ok(shown.body)
    }
}

async fn each_trigger_type_is_tested_on_a_draft_with_its_documented_context(
    redis: bool,
) -> anyhow::Result<()> {
    let s = Testing::start(redis).await?;
    let conversation = s.conversation.clone();

    let e = s
        .run(
            &json!({"trigger_type": "whatsapp_event", "event_type": "whatsapp.message.received",
                     "conversation_id": conversation}),
        )
        .await?;
    assert_eq!(
        (e["test"].as_bool(), e["observer_mode"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(e["trigger_type"], "whatsapp_event");
    assert_eq!(e["conversation_id"], conversation.as_str());
    let system = &e["execution_context"]["system"];
    assert_eq!(system["test"], true);
    assert_eq!(system["observer_mode"], true);
    assert_eq!(system["allow_outbound"], false);
    assert_eq!(system["trigger_type"], "whatsapp_event");
    assert_eq!(system["workflow_id"], s.draft.as_str());
    assert_eq!(system["event"]["type"], "whatsapp.message.received");
    assert_eq!(system["event"]["conversation"]["id"], conversation.as_str());
    assert_eq!(system["event"]["conversation"]["status"], "active");
    assert_eq!(
        system["event"]["message"]["text"]["body"],
        "Does it come in another color?"
    );
    assert_eq!(
        e["execution_context"]["context"],
        json!({"phone_number": "+16505551234", "channel": "whatsapp",
               "conversation_id": conversation})
    );

    let e = s
        .run(
            &json!({"trigger_type": "inbound_message", "conversation_id": conversation,
                     "message": "testing 1 2 3"}),
        )
        .await?;
    assert_eq!(
        (e["test"].as_bool(), e["observer_mode"].as_bool()),
        (Some(true), Some(false))
    );
    let c = &e["execution_context"];
    assert_eq!(c["last_user_input"], "testing 1 2 3");
    assert_eq!(c["system"]["trigger_type"], "inbound_message");
    assert_eq!(c["system"]["test"], true);
    assert_eq!(
        c["system"]["trigger_whatsapp_config_id"],
        s.tenant.whatsapp_config_id
    );
    assert_eq!(c["context"]["conversation_id"], conversation.as_str());

    let e = s
        .run(&json!({"trigger_type": "api_call", "workflow_execution":
                     {"phone_number": "+1 555 010 0777", "variables": {"name": "Ada"}}}))
        .await?;
    let c = &e["execution_context"];
    assert_eq!(e["test"], true);
    assert_eq!(c["system"]["trigger_type"], "api_call");
    assert_eq!(c["system"]["test"], true);
    assert_eq!(c["context"]["phone_number"], "+15550100777");
    assert_eq!(c["vars"]["name"], "Ada");
    assert_eq!(c["name"], "Ada");

    // A test run never intercepts the conversation: the next live message still goes to
    // the agents (the draft's message trigger does not route).
    let answer = s
        .meta
        .post(&switchboard_tests::whatsapp::text_message(
            &s.tenant.phone_number_id,
            "16505551234",
            "wamid.AFTER",
            "still there?",
        ))
        .await?;
    assert_eq!(answer.body["messages"][0]["route"], "inbox");

    // The same over gRPC, with the API key in metadata.
    let channel = tonic::transport::Channel::from_shared(s.dp.grpc_url.clone())?
        .connect()
        .await?;
    let mut client = pb::executions_client::ExecutionsClient::new(channel);
    let mut request = tonic::Request::new(pb::StartTestExecutionRequest {
        workflow_id: s.draft.clone(),
        request_json: json!({"trigger_type": "inbound_message", "conversation_id": conversation,
                             "message": "over grpc"})
        .to_string(),
    });
    request
        .metadata_mut()
        .insert("x-api-key", s.tenant.key.parse()?);
    let started = client.start_test_execution(request).await?.into_inner();
    let shown = s.api.execution(&started.tracking_id, &s.tenant.key).await?;
    assert_eq!(
        shown.body["execution_context"]["last_user_input"],
        "over grpc"
    );
    Ok(())
}

async fn test_runs_refuse_what_they_cannot_run(redis: bool) -> anyhow::Result<()> {
    let mut s = Testing::start(redis).await?;
    let conversation = s.conversation.clone();
    // The seeded workflow has only an API trigger.
    let api_only = s.tenant.workflow_id.clone();
    let reply = s
        .test(
            &api_only,
            &s.tenant.key,
            &json!({"trigger_type": "inbound_message", "conversation_id": conversation,
                    "message": "x"}),
        )
        .await?;
    assert_eq!(
        (reply.status, reply.code(), reply.field()),
        (422, "no_trigger", "trigger_type")
    );

    for (body, field) in [
        (json!({}), "trigger_type"),
        (json!({"trigger_type": "smoke_signal"}), "trigger_type"),
        (
            json!({"trigger_type": "inbound_message", "message": "x"}),
            "conversation_id",
        ),
        (
            json!({"trigger_type": "inbound_message", "conversation_id": conversation}),
            "message",
        ),
        (
            json!({"trigger_type": "whatsapp_event", "conversation_id": conversation}),
            "event_type",
        ),
        (
            json!({"trigger_type": "whatsapp_event", "event_type": "whatsapp.message.eaten",
                   "conversation_id": conversation}),
            "event_type",
        ),
        (json!({"trigger_type": "api_call"}), "workflow_execution"),
        (
            json!({"trigger_type": "api_call", "workflow_execution": {"phone_number": "12"}}),
            "workflow_execution.phone_number",
        ),
    ] {
        let reply = s.test(&s.draft, &s.tenant.key, &body).await?;
        assert_eq!(
            (reply.status, reply.field()),
            (422, field),
            "{body}: {:?}",
            reply.body
        );
    }
    let unknown = json!({"trigger_type": "inbound_message", "message": "x",
                         "conversation_id": uuid::Uuid::now_v7().to_string()});
    let reply = s.test(&s.draft, &s.tenant.key, &unknown).await?;
    assert_eq!(
        (reply.status, reply.code()),
        (404, "conversation_not_found")
    );

    // Another project: its key sees neither the workflow nor the conversation.
    let other = Tenant::seed(&mut s.admin, "globex", None).await?;
    s.sync().await?;
    let body =
        json!({"trigger_type": "api_call", "workflow_execution": {"phone_number": "+15550100"}});
    let reply = s.test(&s.draft, &other.key, &body).await?;
    assert_eq!((reply.status, reply.code()), (404, "workflow_not_found"));
    let reply = s
        .test(
            &other.workflow_id,
            &other.key,
            &json!({"trigger_type": "api_call", "workflow_execution": {"phone_number": "+15550100123"}}),
        )
        .await?;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let reply = s.test(&s.draft, "sbk_wrong", &body).await?;
    assert_eq!(reply.status, 401);
    let reply = s
        .api
        .send(
            reqwest::Client::new()
                .post(format!(
                    "{}/platform/v1/workflows/{}/test_executions",
                    s.api.base, s.draft
                ))
                .bearer_auth(&s.tenant.key)
                .body("{nope"),
        )
        .await?;
    assert_eq!((reply.status, reply.code()), (400, "invalid_json"));
    Ok(())
}
