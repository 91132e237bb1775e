//! WhatsApp usernames (DESIGN §12, Meta's "Business-scoped user IDs"): updates that carry a
//! BSUID, a username, or no phone number at all are routed, never dropped; a conversation is
//! keyed by the phone number when there is one, else by the BSUID, and joined when a later
//! update carries both; the API trigger takes `recipient`. The fixtures under
//! `tests/fixtures/whatsapp` follow Meta's documented payloads. On the real Redis (own key
//! prefix) and the memory store.

use serde_json::{Value, json};
use switchboard_tests::stack::Stack;
use switchboard_tests::whatsapp::{fixture, text_message};

switchboard_tests::both_stores!(
    a_bsuid_only_message_starts_the_message_trigger_and_a_later_phone_joins_it,
    statuses_to_a_bsuid_are_applied_and_fire_their_event,
    the_api_trigger_takes_a_recipient_bsuid,
);

const BSUID: &str = "US.13491208655302741918";
const PHONE: &str = "16505551234";

fn first_message(answer: &Value) -> (&str, &str, &str) {
    let m = &answer["messages"][0];
    (
        m["route"].as_str().unwrap_or_default(),
        m["conversation_id"].as_str().unwrap_or_default(),
        m["execution_id"].as_str().unwrap_or_default(),
    )
}

async fn a_bsuid_only_message_starts_the_message_trigger_and_a_later_phone_joins_it(
    redis: bool,
) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    s.workflow("intake", "inbound_message", Some(&pnid), None)
        .await?;

    let answer = s
        .post(&fixture("message_text_bsuid_only.json", &pnid)?)
        .await?;
    assert_eq!(answer["applied"], 1, "{answer}");
    let (route, conversation, execution) = first_message(&answer);
    assert_eq!(route, "trigger", "{answer}");
    let conversation = conversation.to_owned();
    let e = s.execution(execution).await?;
    let context = &e["execution_context"]["context"];
    assert_eq!(context["user_id"], BSUID, "{e}");
    assert_eq!(context["username"], "sheena.nelson");
    assert_eq!(context["phone_number"], Value::Null);
    assert_eq!(context["contact_name"], "Sheena Nelson");
    assert_eq!(
        e["execution_context"]["last_user_input"],
        "Hello from my username"
    );
    let c = s.conversation(&conversation).await?;
    assert_eq!(
        (
            &c["phone_number"],
            c["user_id"].as_str(),
            c["username"].as_str()
        ),
        (&Value::Null, Some(BSUID), Some("sheena.nelson")),
        "{c}"
    );

    // The same customer with phone number and BSUID: the same conversation, now with the
    // number; the message goes to the running execution.
    let answer = s
        .post(&fixture("message_text_phone_and_bsuid.json", &pnid)?)
        .await?;
    let (route, joined, delivered_to) = first_message(&answer);
    assert_eq!(
        (route, joined),
        ("delivered", conversation.as_str()),
        "{answer}"
    );
    assert_eq!(delivered_to, execution);
    let c = s.conversation(&conversation).await?;
    assert_eq!(c["phone_number"], format!("+{PHONE}"), "{c}");
    assert_eq!(c["user_id"], BSUID);

    // Later, the phone number alone finds it too.
    let answer = s
        .post(&text_message(
            &pnid,
            PHONE,
            "wamid.BSUID0003",
            "and by number only",
        ))
        .await?;
    assert_eq!(first_message(&answer).1, conversation.as_str(), "{answer}");
    let page = s.conversations("page=1&per_page=10").await?;
    assert_eq!(page["meta"]["total_count"], 1, "one conversation: {page}");

    // Neither a phone number nor a BSUID: skipped and counted, the rest applied.
    let anonymous = fixture("message_text_bsuid_only.json", &pnid)?
        .replace(BSUID, "not a bsuid")
        .replace("wamid.BSUID0001", "wamid.BSUID0004");
    let answer = s.post(&anonymous).await?;
    assert_eq!(
        (answer["applied"].as_u64(), answer["ignored"].as_u64()),
        (Some(0), Some(1))
    );
    Ok(())
}

async fn statuses_to_a_bsuid_are_applied_and_fire_their_event(redis: bool) -> anyhow::Result<()> {
    let mut s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    let (observer, _) = s
        .workflow(
            "delivered",
            "whatsapp_event",
            Some(&pnid),
            Some("whatsapp.message.delivered"),
        )
        .await?;
    // The customer's conversation, opened by a BSUID-only message.
    let answer = s
        .post(&fixture("message_text_bsuid_only.json", &pnid)?)
        .await?;
    let conversation = first_message(&answer).1.to_owned();

    let answer = s
        .post(&fixture("status_delivered_bsuid_only.json", &pnid)?)
        .await?;
    assert_eq!(answer["applied"], 1, "{answer}");
    let fired = s.executions(&observer).await?;
    assert_eq!(fired.len(), 1, "{fired:?}");
    let e = s
        .execution(fired[0]["id"].as_str().unwrap_or_default())
        .await?;
    let context = &e["execution_context"];
    assert_eq!(context["context"]["user_id"], BSUID, "{e}");
    assert_eq!(context["context"]["username"], "sheena.nelson");
    assert_eq!(context["context"]["conversation_id"], conversation.as_str());
    assert_eq!(
        context["system"]["event"]["payload"]["recipient_user_id"],
        BSUID
    );
    let message = s
        .api
        .get(
            "/platform/v1/whatsapp/messages/wamid.OUTBSUID01",
            &s.tenant.key,
        )
        .await?;
    assert_eq!(
        (
            message.body["status"].as_str(),
            message.body["recipient"].as_str()
        ),
        (Some("delivered"), Some(BSUID)),
        "{:?}",
        message.body
    );
    Ok(())
}

async fn the_api_trigger_takes_a_recipient_bsuid(redis: bool) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    let pnid = s.pnid().to_owned();
    // The customer wrote first, with their BSUID only.
    let answer = s
        .post(&fixture("message_text_bsuid_only.json", &pnid)?)
        .await?;
    let conversation = first_message(&answer).1.to_owned();
    let start = |inner: Value| {
        let api = s.api.clone();
        let (workflow, key) = (s.tenant.workflow_id.clone(), s.tenant.key.clone());
        async move {
            api.start(&workflow, &key, &json!({ "workflow_execution": inner }))
                .await
        }
    };

    let reply = start(json!({"recipient": BSUID})).await?;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let id = reply.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let e = s.execution(&id).await?;
    assert_eq!(
        e["conversation_id"],
        conversation.as_str(),
        "joins the BSUID's: {e}"
    );
    let context = &e["execution_context"]["context"];
    assert_eq!(context["user_id"], BSUID);
    assert_eq!(context["phone_number"], Value::Null);

    // With both, the phone number routes and the BSUID is kept: the same conversation.
    let reply = start(json!({"recipient": BSUID, "phone_number": format!("+{PHONE}")})).await?;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let both = s
        .execution(reply.body["tracking_id"].as_str().unwrap_or_default())
        .await?;
    assert_eq!(both["conversation_id"], conversation.as_str(), "{both}");
    assert_eq!(both["execution_context"]["context"]["user_id"], BSUID);
    assert_eq!(
        both["execution_context"]["context"]["phone_number"],
        format!("+{PHONE}")
    );
    // The customer's reply by phone number reaches the newest execution.
    let answer = s
        .post(&text_message(&pnid, PHONE, "wamid.BSUIDAPI1", "yes"))
        .await?;
    assert_eq!(first_message(&answer).0, "delivered", "{answer}");
    assert_eq!(
        first_message(&answer).2,
        both["id"].as_str().unwrap_or_default()
    );

    for (body, code, field) in [
        (
            json!({"recipient": "15551234"}),
            "invalid_recipient",
            "workflow_execution.recipient",
        ),
        (
            json!({"recipient": 7}),
            "invalid_type",
            "workflow_execution.recipient",
        ),
        (
            json!({}),
            "missing_field",
            "workflow_execution.phone_number",
        ),
    ] {
        let reply = start(body.clone()).await?;
        assert_eq!(reply.status, 422, "{body}: {:?}", reply.body);
        assert_eq!((reply.code(), reply.field()), (code, field), "{body}");
    }
    Ok(())
}
