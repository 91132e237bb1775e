//! The API trigger and execution endpoints end to end: a real control plane (SQLite
//! catalog), real data planes, the real Redis of the test run.

use serde_json::{Value, json};
use std::time::Duration;
use switchboard_proto::v1 as pb;
use switchboard_tests::platform::{Platform, Tenant};
use switchboard_tests::{Admin, Backend, ControlPlane, DataPlane, RedisProxy, TestDb, TestRedis};

/// A control plane, one data plane on Redis, and one seeded tenant.
struct Stack {
    _db: TestDb,
    _state: tempfile::TempDir,
    redis: TestRedis,
    cp: ControlPlane,
    dp: DataPlane,
    admin: Admin,
    tenant: Tenant,
    api: Platform,
}

impl Stack {
    async fn start() -> anyhow::Result<Self> {
        Self::start_on(None).await
    }

    /// With `redis_url` the data plane reaches Redis there (a proxy) instead.
    async fn start_on(redis_url: Option<&str>) -> anyhow::Result<Self> {
        let db = TestDb::fresh(Backend::Sqlite).await?;
        let cp = ControlPlane::start(&db.url).await?;
        let mut admin = cp.admin().await?;
        let tenant = Tenant::seed(&mut admin, "acme", None).await?;
        let redis = TestRedis::new();
        let state = tempfile::tempdir()?;
        let dp = DataPlane::start_with_store(
            &cp.grpc_url,
            "dp-1",
            state.path(),
            redis_url.unwrap_or(&redis.url),
            &redis.prefix,
        )
        .await?;
        dp.wait_version(admin.routing_version().await?).await?;
        let api = Platform::new(&dp.http_url);
        Ok(Self {
            _db: db,
            _state: state,
            redis,
            cp,
            dp,
            admin,
            tenant,
            api,
        })
    }

    /// Waits until the data plane holds the catalog's current version.
    async fn sync(&mut self) -> anyhow::Result<()> {
        let version = self.admin.routing_version().await?;
        self.dp.wait_version(version).await
    }

    async fn start_exec(&self, body: &Value) -> anyhow::Result<switchboard_tests::platform::Reply> {
        self.api
            .start(&self.tenant.workflow_id, &self.tenant.key, body)
            .await
    }
}

fn is_uuid_v7(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok_and(|id| id.get_version_num() == 7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_curl_example_starts_an_execution_readable_by_tracking_id() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let reply = s
        .start_exec(&json!({"workflow_execution": {"phone_number": "+1234567890"}}))
        .await?;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body["message"], "Workflow execution initiated");
    assert_eq!(reply.body["workflow_id"], s.tenant.workflow_id);
    let tracking_id = reply.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(is_uuid_v7(&tracking_id), "{tracking_id}");
    assert_eq!(
        reply.header("x-burst-ratelimit-limit"),
        None,
        "no burst limit on this key"
    );

    let got = s.api.execution(&tracking_id, &s.tenant.key).await?;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert_eq!(got.body["id"], tracking_id.as_str());
    assert_eq!(got.body["tracking_id"], tracking_id.as_str());
    assert_eq!(got.body["workflow_id"], s.tenant.workflow_id);
    assert_eq!(got.body["status"], "pending");
    assert_eq!(got.body["trigger_type"], "api_call");
    assert_eq!(got.body["test"], false);
    assert_eq!(got.body["observer_mode"], false);
    // The default number's conversation with the customer, opened by this execution.
    let conversation_id = got.body["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        got.body["execution_context"]["context"]["conversation_id"],
        conversation_id.as_str()
    );
    let conversation = s
        .api
        .get(
            &format!("/platform/v1/whatsapp/conversations/{conversation_id}"),
            &s.tenant.key,
        )
        .await?;
    assert_eq!(conversation.status, 200, "{:?}", conversation.body);
    assert_eq!(conversation.body["phone_number"], "+1234567890");
    assert_eq!(conversation.body["status"], "active");
    assert_eq!(got.body["events"], json!([]));
    assert!(
        got.body["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(
        got.body["execution_context"]["system"]["tracking_id"],
        tracking_id.as_str()
    );

    // Recorded in Redis under the data plane's prefix only, with a retention TTL.
    let keys = s.redis.keys()?;
    assert!(
        keys.iter()
            .any(|k| k.ends_with(&format!(":e:{tracking_id}"))),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("{}:{{x", s.redis.prefix))),
        "{keys:?}"
    );
    let client = redis::Client::open(s.redis.url.as_str())?;
    let mut connection = client.get_connection()?;
    let record_key = keys
        .iter()
        .find(|k| k.contains(":e:"))
        .cloned()
        .unwrap_or_default();
    let ttl: i64 = redis::cmd("TTL").arg(&record_key).query(&mut connection)?;
    assert!(
        ttl > 6 * 24 * 3600 && ttl <= 7 * 24 * 3600,
        "retention 7d, ttl {ttl}"
    );
    let dispatch: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg(
            keys.iter()
                .find(|k| k.ends_with(":dispatch"))
                .cloned()
                .unwrap_or_default(),
        )
        .arg("-")
        .arg("+")
        .query(&mut connection)?;
    assert_eq!(dispatch.len(), 1, "one dispatch entry for the runners");
    Ok(())
}

/// The HTTP port answers `POST …/executions` itself and everything else through its router;
/// a percent-encoded workflow id takes the router's way. Both ways answer alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_trigger_answers_alike_directly_and_through_the_router() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let w = s.tenant.workflow_id.as_str();
    let encoded = format!("%{:02X}{}", w.as_bytes()[0], &w[1..]);
    let good = json!({"workflow_execution": {"phone_number": "+1234567890"}});
    let no_phone = json!({"workflow_execution": {}});
    for workflow in [w, encoded.as_str()] {
        let reply = s.api.start(workflow, &s.tenant.key, &good).await?;
        assert_eq!(reply.status, 202, "{workflow}: {:?}", reply.body);
        assert_eq!(reply.body["workflow_id"], w);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let tracking_id = reply.body["tracking_id"].as_str().unwrap_or_default();
        assert_eq!(
            s.api.execution(tracking_id, &s.tenant.key).await?.status,
            200
        );

        let reply = s.api.start(workflow, &s.tenant.key, &no_phone).await?;
        assert_eq!(reply.status, 422, "{workflow}: {:?}", reply.body);
        assert_eq!(reply.field(), "workflow_execution.phone_number");
        let reply = s.api.start(workflow, "sk_unknown", &good).await?;
        assert_eq!(reply.status, 401, "{workflow}: {:?}", reply.body);
        assert_eq!(reply.code(), "unauthorized");
    }
    // The same path's other method and a near miss still reach the router.
    let listed = s.api.list(w, &s.tenant.key, "").await?;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(2));
    let trailing = s
        .api
        .send(
            reqwest::Client::new()
                .post(format!(
                    "{}/platform/v1/workflows/{w}/executions/",
                    s.api.base
                ))
                .bearer_auth(&s.tenant.key)
                .body(good.to_string()),
        )
        .await?;
    assert_eq!(trailing.status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_call_context_matches_the_design_field_by_field() -> anyhow::Result<()> {
    let mut s = Stack::start().await?;
    // A second number of the project, named by phone_number_id.
    let other = switchboard_tests::platform::meta_id();
    let number = s.admin.number(&s.tenant.project_id, &other, false).await?;
    s.sync().await?;
    let before = chrono_now_ms();
    let reply = s
        .start_exec(&json!({"workflow_execution": {
            "phone_number": "00 56 (9) 1234-5678",
            "phone_number_id": other,
            "variables": {"name": "Ada", "plan": {"tier": 2}, "system": "spoof", "context": 1,
                          "vars": 2, "metadata": 3, "initial_data": 4, "last_user_input": 5},
            "context": {"source": "crm", "phone_number": "+999", "channel": "sms"},
            "initial_data": {"order": 42}
        }}))
        .await?;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let tracking_id = reply.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let got = s.api.execution(&tracking_id, &s.tenant.key).await?;
    let c = &got.body["execution_context"];

    assert_eq!(
        c["system"],
        json!({
            "trigger_type": "api_call",
            "tracking_id": tracking_id,
            "api_key_id": s.tenant.key_id,
            "workflow_id": s.tenant.workflow_id,
            "trigger_whatsapp_config_id": number.whatsapp_config_id,
            "observer_mode": false,
            "allow_outbound": true,
            "test": false,
        })
    );
    // The request's context, then Switchboard's keys, which win.
    assert_eq!(
        c["context"],
        json!({"source": "crm", "phone_number": "+56912345678", "channel": "api",
               "conversation_id": got.body["conversation_id"]})
    );
    let vars = json!({"name": "Ada", "plan": {"tier": 2}, "system": "spoof", "context": 1,
                      "vars": 2, "metadata": 3, "initial_data": 4, "last_user_input": 5});
    assert_eq!(c["vars"], vars);
    // Variables at the top level, except reserved names.
    assert_eq!(c["name"], "Ada");
    assert_eq!(c["plan"], json!({"tier": 2}));
    assert!(
        c.get("last_user_input").is_none(),
        "reserved: only under vars"
    );
    assert_eq!(c["initial_data"], json!({"order": 42}));
    assert_eq!(c["metadata"]["request_ip"], "127.0.0.1");
    let stamp = c["metadata"]["request_timestamp"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(stamp.len(), "2026-11-26T00:00:00.000Z".len(), "{stamp}");
    let parsed = chrono::DateTime::parse_from_rfc3339(stamp)?.timestamp_millis();
    assert!(parsed >= before - 1 && parsed <= chrono_now_ms(), "{stamp}");
    let mut top: Vec<&str> = c
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    top.sort_unstable();
    assert_eq!(
        top,
        [
            "context",
            "initial_data",
            "metadata",
            "name",
            "plan",
            "system",
            "vars"
        ]
    );

    // Neither id: the project's default number; by deprecated whatsapp_config_id: that one.
    for (body, want) in [
        (
            json!({"phone_number": "1234567890"}),
            json!(s.tenant.whatsapp_config_id),
        ),
        (
            json!({"phone_number": "1234567890", "whatsapp_config_id": number.whatsapp_config_id}),
            json!(number.whatsapp_config_id),
        ),
        (
            json!({"phone_number": "1234567890", "whatsapp_config_id": number.whatsapp_config_id,
                   "phone_number_id": other}),
            json!(number.whatsapp_config_id),
        ),
    ] {
        let reply = s.start_exec(&json!({ "workflow_execution": body })).await?;
        assert_eq!(reply.status, 202, "{:?}", reply.body);
        let id = reply.body["tracking_id"].as_str().unwrap_or_default();
        let got = s.api.execution(id, &s.tenant.key).await?;
        let c = &got.body["execution_context"];
        assert_eq!(c["system"]["trigger_whatsapp_config_id"], want, "{body}");
        assert_eq!(c["context"]["phone_number"], "+1234567890");
        assert_eq!(c["vars"], json!({}));
        assert_eq!(c["initial_data"], json!({}));
    }
    Ok(())
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_status_code_and_field_and_writes_nothing() -> anyhow::Result<()>
{
    let mut s = Stack::start().await?;
    let tenant = s.tenant.clone();
    // Another project, with its own workflow and number.
    let other = Tenant::seed(&mut s.admin, "other", None).await?;
    // A draft workflow, and an active one whose API trigger is inactive.
    let draft = s
        .admin
        .workflow(&tenant.project_id, "draft", "draft")
        .await?;
    s.admin
        .trigger(
            &draft.id,
            switchboard_tests::admin::spec("api_call", None, None),
        )
        .await?;
    let no_trigger = s
        .admin
        .workflow(&tenant.project_id, "quiet", "active")
        .await?;
    let mut inactive_spec = switchboard_tests::admin::spec("api_call", None, None);
    inactive_spec.inactive = true;
    let inactive = s
        .admin
        .workflow(&tenant.project_id, "paused", "active")
        .await?;
    s.admin.trigger(&inactive.id, inactive_spec).await?;
    let (revoked_id, revoked) = s.admin.api_key(&tenant.project_id, None).await?;
    s.admin
        .revoke_api_key(pb::RevokeApiKeyRequest {
            api_key_id: revoked_id,
        })
        .await?;
    s.sync().await?;

    let ok = |extra: Value| {
        let mut body = json!({"phone_number": "+1234567890"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        json!({ "workflow_execution": body })
    };
    let w = tenant.workflow_id.as_str();
    let k = tenant.key.as_str();
    let big = format!(
        r#"{{"workflow_execution": {{"phone_number": "+1234567890", "variables": {{"x": "{}"}}}}}}"#,
        "a".repeat(256 * 1024)
    );
    // (workflow, key, body, status, code, field)
    let cases: Vec<(&str, &str, String, u16, &str, &str)> = vec![
        (w, k, "{not json".into(), 400, "invalid_json", ""),
        (w, k, "".into(), 400, "invalid_json", ""),
        (w, k, big, 413, "payload_too_large", ""),
        (
            w,
            k,
            "{}".into(),
            422,
            "missing_field",
            "workflow_execution",
        ),
        (
            w,
            k,
            "[]".into(),
            422,
            "missing_field",
            "workflow_execution",
        ),
        (
            w,
            k,
            r#"{"workflow_execution": "x"}"#.into(),
            422,
            "invalid_type",
            "workflow_execution",
        ),
        (
            w,
            k,
            r#"{"workflow_execution": {}}"#.into(),
            422,
            "missing_field",
            "workflow_execution.phone_number",
        ),
        (
            w,
            k,
            ok(json!({"phone_number": 1234567890})).to_string(),
            422,
            "invalid_type",
            "workflow_execution.phone_number",
        ),
        (
            w,
            k,
            ok(json!({"phone_number": "+0123456789"})).to_string(),
            422,
            "invalid_phone_number",
            "workflow_execution.phone_number",
        ),
        (
            w,
            k,
            ok(json!({"phone_number": "+12345"})).to_string(),
            422,
            "invalid_phone_number",
            "workflow_execution.phone_number",
        ),
        (
            w,
            k,
            ok(json!({"phone_number": "call me"})).to_string(),
            422,
            "invalid_phone_number",
            "workflow_execution.phone_number",
        ),
        (
            w,
            k,
            ok(json!({"variables": "x"})).to_string(),
            422,
            "invalid_type",
            "workflow_execution.variables",
        ),
        (
            w,
            k,
            ok(json!({"context": [1]})).to_string(),
            422,
            "invalid_type",
            "workflow_execution.context",
        ),
        (
            w,
            k,
            ok(json!({"initial_data": 3})).to_string(),
            422,
            "invalid_type",
            "workflow_execution.initial_data",
        ),
        (
            w,
            k,
            ok(json!({"whatsapp_config_id": "x"})).to_string(),
            422,
            "invalid_type",
            "workflow_execution.whatsapp_config_id",
        ),
        (
            w,
            k,
            ok(json!({"phone_number_id": other.phone_number_id})).to_string(),
            422,
            "invalid_phone_number_id",
            "workflow_execution.phone_number_id",
        ),
        (
            w,
            k,
            ok(json!({"phone_number_id": "999999999999999"})).to_string(),
            422,
            "invalid_phone_number_id",
            "workflow_execution.phone_number_id",
        ),
        (
            w,
            k,
            ok(json!({"whatsapp_config_id": other.whatsapp_config_id})).to_string(),
            422,
            "invalid_whatsapp_config_id",
            "workflow_execution.whatsapp_config_id",
        ),
        (w, "", ok(json!({})).to_string(), 401, "unauthorized", ""),
        (
            w,
            "sbk_unknown",
            ok(json!({})).to_string(),
            401,
            "unauthorized",
            "",
        ),
        (
            w,
            revoked.as_str(),
            ok(json!({})).to_string(),
            401,
            "unauthorized",
            "",
        ),
        (
            other.workflow_id.as_str(),
            k,
            ok(json!({})).to_string(),
            404,
            "workflow_not_found",
            "",
        ),
        (
            "not-a-uuid",
            k,
            ok(json!({})).to_string(),
            404,
            "workflow_not_found",
            "",
        ),
        (
            "01a2155a-0000-7000-8000-000000000000",
            k,
            ok(json!({})).to_string(),
            404,
            "workflow_not_found",
            "",
        ),
        (
            draft.id.as_str(),
            k,
            ok(json!({})).to_string(),
            409,
            "workflow_inactive",
            "",
        ),
        (
            no_trigger.id.as_str(),
            k,
            ok(json!({})).to_string(),
            409,
            "trigger_inactive",
            "",
        ),
        (
            inactive.id.as_str(),
            k,
            ok(json!({})).to_string(),
            409,
            "trigger_inactive",
            "",
        ),
    ];
    let mut recorded = 0;
    for (workflow, key, body, status, code, field) in cases {
        let label = format!("{workflow} {code} {}", &body[..body.len().min(80)]);
        let reply = s.api.send(s.api.start_raw(workflow, key, body)).await?;
        assert_eq!(reply.status, status, "{label}: {:?}", reply.body);
        assert_eq!(reply.code(), code, "{label}");
        assert_eq!(reply.field(), field, "{label}");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        // Each refusal of a known key is a routing decision naming why (DESIGN §13); an
        // unknown key has no project to record one in, and a body over the limit is
        // refused by the HTTP edge while it is read, before the key is looked at.
        let decisions = s
            .api
            .get("/platform/v1/routing_decisions?limit=100", k)
            .await?;
        let data = decisions.body["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if status == 401 || status == 413 {
            assert_eq!(data.len(), recorded, "{label}: {data:?}");
            continue;
        }
        recorded += 1;
        assert_eq!(data.len(), recorded, "{label}: {data:?}");
        let d = &data[0];
        let (reason, detail) = match code {
            "workflow_not_found" => ("workflow_not_found", Value::Null),
            "workflow_inactive" => ("workflow_draft", Value::Null),
            "trigger_inactive" => ("trigger_inactive", Value::Null),
            _ if field.is_empty() => ("invalid_request", json!(code)),
            _ => ("invalid_request", json!(field)),
        };
        assert_eq!(
            (&d["source"], &d["outcome"], &d["reason"], &d["detail"]),
            (&json!("api"), &json!("refused"), &json!(reason), &detail),
            "{label}: {d}"
        );
        assert_eq!(d["execution_id"], Value::Null, "{label}: {d}");
        if uuid::Uuid::parse_str(workflow).is_ok() {
            assert_eq!(d["workflow_id"], json!(workflow), "{label}: {d}");
        }
    }
    // Both ids naming different numbers.
    let second = switchboard_tests::platform::meta_id();
    s.admin.number(&tenant.project_id, &second, false).await?;
    s.sync().await?;
    let reply = s
        .start_exec(&ok(
            json!({"phone_number_id": second, "whatsapp_config_id": tenant.whatsapp_config_id}),
        ))
        .await?;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "invalid_whatsapp_config_id")
    );
    // X-API-Key without Bearer works; a malformed Authorization does not.
    let reply = s
        .api
        .send(
            reqwest::Client::new()
                .post(format!(
                    "{}/platform/v1/workflows/{w}/executions",
                    s.api.base
                ))
                .header("authorization", format!("Basic {k}"))
                .body(ok(json!({})).to_string()),
        )
        .await?;
    assert_eq!(reply.status, 401);

    // No refusal wrote anything but its routing decision.
    let keys = s.redis.keys()?;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].contains(&format!(":d:{}", tenant.project_id)),
        "{keys:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_original_answer_and_refuses_another_body()
-> anyhow::Result<()> {
    let mut s = Stack::start().await?;
    let w = s.tenant.workflow_id.clone();
    let api = s.api.clone();
    let send = |key: &str, body: &Value, idem: &str| {
        api.start_raw(&w, key, body.to_string())
            .header("idempotency-key", idem.to_owned())
    };
    let body = json!({"workflow_execution": {"phone_number": "+1234567890", "variables": {"a": 1, "b": 2}}});
    let first = s.api.send(send(&s.tenant.key, &body, "order-17")).await?;
    assert_eq!(first.status, 202);
    assert_eq!(first.header("idempotent-replayed"), None);
    // Same request (keys in another order, other whitespace): the original answer.
    let same = r#"{ "workflow_execution": { "variables": {"b": 2, "a": 1}, "phone_number": "+1234567890" } }"#;
    let again = s
        .api
        .send(
            s.api
                .start_raw(&w, &s.tenant.key, same)
                .header("idempotency-key", "order-17"),
        )
        .await?;
    assert_eq!(again.status, 202);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    // Another body under the same key.
    let other =
        json!({"workflow_execution": {"phone_number": "+1234567890", "variables": {"a": 2}}});
    let reused = s.api.send(send(&s.tenant.key, &other, "order-17")).await?;
    assert_eq!(
        (reused.status, reused.code(), reused.field()),
        (422, "idempotency_key_reused", "Idempotency-Key")
    );
    // Keys are per project: another project may use the same key.
    let tenant2 = Tenant::seed(&mut s.admin, "second", None).await?;
    s.sync().await?;
    let theirs = s
        .api
        .send(
            s.api
                .start_raw(&tenant2.workflow_id, &tenant2.key, body.to_string())
                .header("idempotency-key", "order-17"),
        )
        .await?;
    assert_eq!(theirs.status, 202);
    assert_ne!(theirs.body["tracking_id"], first.body["tracking_id"]);
    // Too long a key.
    let long = s
        .api
        .send(send(&s.tenant.key, &body, &"k".repeat(256)))
        .await?;
    assert_eq!((long.status, long.field()), (422, "Idempotency-Key"));
    // Exactly one execution of the first workflow exists.
    let list = s.api.list(&w, &s.tenant.key, "").await?;
    assert_eq!(
        list.body["data"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        list.body
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_burst_limit_holds_per_key_and_workflow_across_nodes() -> anyhow::Result<()> {
    let mut s = Stack::start().await?;
    let limited = Tenant::seed(&mut s.admin, "limited", Some(3)).await?;
    let state = tempfile::tempdir()?;
    let dp2 = DataPlane::start_with_store(
        &s.cp.grpc_url,
        "dp-2",
        state.path(),
        &s.redis.url,
        &s.redis.prefix,
    )
    .await?;
    let version = s.admin.routing_version().await?;
    s.dp.wait_version(version).await?;
    dp2.wait_version(version).await?;
    let apis = [s.api.clone(), Platform::new(&dp2.http_url)];
    let body = json!({"workflow_execution": {"phone_number": "+1234567890"}});
    // Four requests inside one wall-clock second, alternating nodes; retried when they
    // happen to straddle a second boundary.
    for attempt in 0.. {
        anyhow::ensure!(
            attempt < 20,
            "never managed four requests inside one second"
        );
        let ms = chrono_now_ms() % 1000;
        if ms > 300 {
            tokio::time::sleep(Duration::from_millis(u64::try_from(1005 - ms).unwrap_or(0))).await;
        }
        let second = chrono_now_ms() / 1000;
        let mut replies = Vec::new();
        for i in 0..4 {
            replies.push(
                apis[i % 2]
                    .start(&limited.workflow_id, &limited.key, &body)
                    .await?,
            );
        }
        if chrono_now_ms() / 1000 != second {
            continue;
        }
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [202, 202, 202, 429]);
        let remaining: Vec<Option<&str>> = replies
            .iter()
            .map(|r| r.header("x-burst-ratelimit-remaining"))
            .collect();
        assert_eq!(remaining, [Some("2"), Some("1"), Some("0"), None]);
        assert!(
            replies[..3]
                .iter()
                .all(|r| r.header("x-burst-ratelimit-limit") == Some("3"))
        );
        assert_eq!(replies[3].code(), "rate_limited");
        assert_eq!(replies[3].header("retry-after"), Some("1"));
        break;
    }
    // Another key of no limit, same project and workflow semantics, is not limited.
    for _ in 0..5 {
        let reply = s.start_exec(&body).await?;
        assert_eq!(reply.status, 202);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_executions_and_a_revoked_key_stops_on_both() -> anyhow::Result<()> {
    let mut s = Stack::start().await?;
    let state = tempfile::tempdir()?;
    let dp2 = DataPlane::start_with_store(
        &s.cp.grpc_url,
        "dp-2",
        state.path(),
        &s.redis.url,
        &s.redis.prefix,
    )
    .await?;
    dp2.wait_version(s.admin.routing_version().await?).await?;
    let api2 = Platform::new(&dp2.http_url);
    let body = json!({"workflow_execution": {"phone_number": "+1234567890"}});
    let reply = s.start_exec(&body).await?;
    assert_eq!(reply.status, 202);
    let id = reply.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let on_two = api2.execution(&id, &s.tenant.key).await?;
    assert_eq!(on_two.status, 200);
    assert_eq!(on_two.body["tracking_id"], id.as_str());
    // Another project's key sees nothing of it on either node.
    let other = Tenant::seed(&mut s.admin, "other", None).await?;
    s.sync().await?;
    dp2.wait_version(s.admin.routing_version().await?).await?;
    for api in [&s.api, &api2] {
        let reply = api.execution(&id, &other.key).await?;
        assert_eq!((reply.status, reply.code()), (404, "execution_not_found"));
        let reply = api.set_status(&id, &other.key, "ended").await?;
        assert_eq!(reply.status, 404);
        let reply = api.list(&s.tenant.workflow_id, &other.key, "").await?;
        assert_eq!((reply.status, reply.code()), (404, "workflow_not_found"));
    }

    s.admin
        .revoke_api_key(pb::RevokeApiKeyRequest {
            api_key_id: s.tenant.key_id.clone(),
        })
        .await?;
    let version = s.admin.routing_version().await?;
    s.dp.wait_version(version).await?;
    dp2.wait_version(version).await?;
    for api in [&s.api, &api2] {
        let reply = api
            .start(&s.tenant.workflow_id, &s.tenant.key, &body)
            .await?;
        assert_eq!((reply.status, reply.code()), (401, "unauthorized"));
        assert_eq!(api.execution(&id, &s.tenant.key).await?.status, 401);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_list_newest_first_with_cursors_and_move_by_the_transition_table()
-> anyhow::Result<()> {
    let s = Stack::start().await?;
    let mut ids = Vec::new();
    for i in 0..5 {
        // One customer each: one customer's would supersede each other (DESIGN §12).
        let body = json!({"workflow_execution": {"phone_number": format!("+123456789{i}")}});
        let reply = s.start_exec(&body).await?;
        ids.push(
            reply.body["tracking_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    ids.reverse(); // newest first
    let w = &s.tenant.workflow_id;
    let k = &s.tenant.key;
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let page = s.api.list(w, k, &query).await?;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let data = page.body["data"].as_array().cloned().unwrap_or_default();
        assert!(data.len() <= 2);
        seen.extend(
            data.iter()
                .map(|e| e["id"].as_str().unwrap_or_default().to_owned()),
        );
        match page.body["paging"]["cursors"]["after"].as_str() {
            Some(after) => query = format!("limit=2&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let all = s.api.list(w, k, "").await?;
    assert_eq!(all.body["data"].as_array().map(Vec::len), Some(5));
    assert_eq!(all.body["paging"]["cursors"]["after"], Value::Null);

    // pending → running → waiting → handoff → ended; ended is final.
    let id = &ids[0];
    for status in ["running", "waiting", "handoff", "ended"] {
        let reply = s.api.set_status(id, k, status).await?;
        assert_eq!(reply.status, 200, "{status}: {:?}", reply.body);
        assert_eq!(reply.body["status"], status);
    }
    let reply = s.api.set_status(id, k, "running").await?;
    assert_eq!(
        (reply.status, reply.code(), reply.field()),
        (422, "invalid_transition", "status")
    );
    let got = s.api.execution(id, k).await?;
    let events = got.body["events"].as_array().cloned().unwrap_or_default();
    let moves: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap_or_default(),
                e["to"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("pending", "running"),
            ("running", "waiting"),
            ("waiting", "handoff"),
            ("handoff", "ended")
        ]
    );
    assert!(events.iter().all(|e| e["type"] == "status_changed"));
    assert_ne!(got.body["updated_at"], got.body["created_at"]);
    // pending → waiting is not allowed; pending → failed is.
    let reply = s.api.set_status(&ids[1], k, "waiting").await?;
    assert_eq!(reply.code(), "invalid_transition");
    assert_eq!(s.api.set_status(&ids[1], k, "failed").await?.status, 200);
    // Bad input.
    assert_eq!(
        s.api.set_status(&ids[2], k, "done").await?.code(),
        "invalid_status"
    );
    assert_eq!(s.api.set_status("nope", k, "ended").await?.status, 404);
    for (query, field) in [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("after=x", "after"),
    ] {
        let reply = s.api.list(w, k, query).await?;
        assert_eq!((reply.status, reply.field()), (422, field), "{query}");
    }
    // Status filter.
    let ended = s.api.list(w, k, "status=ended").await?;
    let ended: Vec<&str> = ended.body["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|e| e["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ended, [ids[0].as_str()]);
    let pending = s.api.list(w, k, "status=pending").await?;
    assert_eq!(pending.body["data"].as_array().map(Vec::len), Some(3));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_503_writes_nothing_and_recovers_without_a_restart() -> anyhow::Result<()>
{
    let mut proxy = RedisProxy::start().await?;
    let s = Stack::start_on(Some(&proxy.url)).await?;
    let body = json!({"workflow_execution": {"phone_number": "+1234567890"}});
    assert_eq!(s.start_exec(&body).await?.status, 202);

    proxy.cut().await;
    for _ in 0..3 {
        let reply = s.start_exec(&body).await?;
        assert_eq!(
            (reply.status, reply.code()),
            (503, "unavailable"),
            "{:?}",
            reply.body
        );
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
    let reply = s.api.list(&s.tenant.workflow_id, &s.tenant.key, "").await?;
    assert_eq!(reply.status, 503);

    proxy.restore().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let recovered = loop {
        let reply = s.start_exec(&body).await?;
        if reply.status == 202 {
            break reply;
        }
        assert_eq!(reply.status, 503);
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no recovery within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = recovered.body["tracking_id"].as_str().unwrap_or_default();
    assert_eq!(s.api.execution(id, &s.tenant.key).await?.status, 200);
    // Exactly the two accepted executions exist: the refused ones left nothing.
    let list = s.api.list(&s.tenant.workflow_id, &s.tenant.key, "").await?;
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(2));
    let records = s.redis.keys()?.iter().filter(|k| k.contains(":e:")).count();
    assert_eq!(records, 2);
    Ok(())
}

/// A gRPC request carrying `header: value`.
fn with<T>(value: &str, header: &'static str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = value.parse() {
        request.metadata_mut().insert(header, value);
    }
    request
}

/// `Executions` over gRPC: StartExecution with an API key, the rest with the runner token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executions_grpc_service_starts_reads_lists_and_moves_executions() -> anyhow::Result<()>
{
    use pb::executions_client::ExecutionsClient;
    use tonic::Code;
    let s = Stack::start().await?;
    let channel = tonic::transport::Channel::from_shared(s.dp.grpc_url.clone())?
        .connect()
        .await?;
    let mut client = ExecutionsClient::new(channel);
    let start = |idem: Option<&str>| pb::StartExecutionRequest {
        workflow_id: s.tenant.workflow_id.clone(),
        workflow_execution_json: r#"{"phone_number": "+1 234 567 890", "variables": {"x": 1}}"#
            .into(),
        idempotency_key: idem.map(str::to_owned),
    };

    let started = client
        .start_execution(with(&s.tenant.key, "x-api-key", start(Some("g-1"))))
        .await?
        .into_inner();
    assert_eq!(started.message, "Workflow execution initiated");
    assert_eq!(started.workflow_id, s.tenant.workflow_id);
    assert!(is_uuid_v7(&started.tracking_id));
    assert!(!started.idempotent_replayed);
    let replay = client
        .start_execution(with(
            &format!("Bearer {}", s.tenant.key),
            "authorization",
            start(Some("g-1")),
        ))
        .await?
        .into_inner();
    assert!(replay.idempotent_replayed);
    assert_eq!(replay.tracking_id, started.tracking_id);

    let refused = client
        .start_execution(with("sbk_nope", "x-api-key", start(None)))
        .await;
    assert_eq!(refused.err().map(|e| e.code()), Some(Code::Unauthenticated));
    let mut bad = start(None);
    bad.workflow_execution_json = r#"{"phone_number": "+0"}"#.into();
    let refused = client
        .start_execution(with(&s.tenant.key, "x-api-key", bad))
        .await;
    let status = refused
        .err()
        .ok_or_else(|| anyhow::anyhow!("bad phone accepted"))?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("workflow_execution.phone_number"),
        "{}",
        status.message()
    );

    let mut big = start(None);
    big.workflow_execution_json = format!(
        r#"{{"phone_number": "+1234567890", "variables": {{"x": "{}"}}}}"#,
        "a".repeat(300 * 1024)
    );
    let refused = client
        .start_execution(with(&s.tenant.key, "x-api-key", big))
        .await;
    let status = refused
        .err()
        .ok_or_else(|| anyhow::anyhow!("300 KiB accepted"))?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("payload_too_large"),
        "{}",
        status.message()
    );

    let runner = format!("Bearer {}", switchboard_tests::RUNNER_TOKEN);
    let get = |id: &str| pb::GetExecutionRequest {
        tracking_id: id.to_owned(),
    };
    let refused = client
        .get_execution(with(
            "Bearer wrong-token",
            "authorization",
            get(&started.tracking_id),
        ))
        .await;
    assert_eq!(refused.err().map(|e| e.code()), Some(Code::Unauthenticated));
    let refused = client
        .get_execution(with(&s.tenant.key, "x-api-key", get(&started.tracking_id)))
        .await;
    assert_eq!(
        refused.err().map(|e| e.code()),
        Some(Code::Unauthenticated),
        "an API key is not a runner token"
    );
    let execution = client
        .get_execution(with(&runner, "authorization", get(&started.tracking_id)))
        .await?
        .into_inner();
    assert_eq!(execution.id, started.tracking_id);
    assert_eq!(execution.project_id, s.tenant.project_id);
    assert_eq!(execution.status, "pending");
    let context: Value = serde_json::from_str(&execution.execution_context_json)?;
    assert_eq!(context["context"]["phone_number"], "+1234567890");
    assert_eq!(context["x"], 1);
    let missing = client
        .get_execution(with(
            &runner,
            "authorization",
            get(&uuid::Uuid::now_v7().to_string()),
        ))
        .await;
    assert_eq!(missing.err().map(|e| e.code()), Some(Code::NotFound));

    let update = |status: &str| pb::UpdateExecutionStatusRequest {
        tracking_id: started.tracking_id.clone(),
        status: status.to_owned(),
    };
    let moved = client
        .update_execution_status(with(&runner, "authorization", update("running")))
        .await?
        .into_inner();
    assert_eq!(moved.status, "running");
    assert_eq!(moved.events_json.len(), 1);
    let refused = client
        .update_execution_status(with(&runner, "authorization", update("pending")))
        .await;
    assert_eq!(
        refused.err().map(|e| e.code()),
        Some(Code::FailedPrecondition)
    );

    let listed = client
        .list_executions(with(
            &runner,
            "authorization",
            pb::ListExecutionsRequest {
                workflow_id: s.tenant.workflow_id.clone(),
                project_id: s.tenant.project_id.clone(),
                status: Some("running".into()),
                limit: 10,
                after: None,
            },
        ))
        .await?
        .into_inner();
    let ids: Vec<&str> = listed.executions.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [started.tracking_id.as_str()]);
    assert_eq!(listed.next_after, None);
    Ok(())
}
