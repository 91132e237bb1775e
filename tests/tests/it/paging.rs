//! Kapso's numbered pages on the execution and conversation lists (DESIGN §12): `page` and
//! `per_page` answer `meta`, oldest first, and a client paging while new rows arrive sees
//! every row once; the execution fields Kapso's clients read. On the real Redis (own key
//! prefix) and the memory store.

use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use switchboard_tests::platform::Platform;
use switchboard_tests::stack::Stack;

switchboard_tests::both_stores!(
    numbered_execution_pages_see_every_row_once_while_new_ones_arrive,
    numbered_conversation_pages_see_every_row_once_while_new_ones_arrive,
    numbered_pages_filter_and_refuse_bad_paging_by_field,
    executions_carry_kapsos_time_and_conversation_fields,
);

/// A customer number per `i`, so that every start opens its own conversation.
fn customer(i: usize) -> String {
    format!("+1555{:07}", 200_000 + i)
}

async fn start(api: &Platform, workflow_id: &str, key: &str, i: usize) -> anyhow::Result<String> {
    let body = json!({"workflow_execution": {"phone_number": customer(i)}});
    let reply = api.start(workflow_id, key, &body).await?;
    anyhow::ensure!(reply.status == 202, "start {i}: {:?}", reply.body);
    Ok(reply.body["tracking_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Starts executions for new customers from `from` on until `stop`; how many it started.
fn keep_starting(
    s: &Stack,
    from: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<anyhow::Result<usize>> {
    let (api, workflow, key) = (
        s.api.clone(),
        s.tenant.workflow_id.clone(),
        s.tenant.key.clone(),
    );
    tokio::spawn(async move {
        let mut i = from;
        while !stop.load(Ordering::Relaxed) {
            start(&api, &workflow, &key, i).await?;
            i += 1;
        }
        Ok(i - from)
    })
}

/// Walks `path?…&page=N&per_page=…` from page 1 until an empty page; the ids in order,
/// checking each page's `meta`.
async fn walk(s: &Stack, path: &str, per_page: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for page in 1.. {
        let sep = if path.contains('?') { '&' } else { '?' };
        let reply = s
            .api
            .get(
                &format!("{path}{sep}page={page}&per_page={per_page}"),
                &s.tenant.key,
            )
            .await?;
        anyhow::ensure!(reply.status == 200, "page {page}: {:?}", reply.body);
        let meta = &reply.body["meta"];
        assert_eq!(meta["page"], page, "{meta}");
        assert_eq!(meta["per_page"], per_page, "{meta}");
        let total = meta["total_count"].as_u64().unwrap_or_default() as usize;
        assert_eq!(meta["total_pages"], total.div_ceil(per_page), "{meta}");
        assert!(reply.body.get("paging").is_none(), "{}", reply.body);
        let rows = reply.body["data"].as_array().cloned().unwrap_or_default();
        assert!(rows.len() <= per_page);
        if rows.is_empty() {
            assert!(
                ids.len() <= total,
                "{} rows seen, {total} counted",
                ids.len()
            );
            break;
        }
        ids.extend(
            rows.iter()
                .map(|r| r["id"].as_str().unwrap_or_default().to_owned()),
        );
    }
    Ok(ids)
}

/// Every id of `before` once in `seen`, nothing twice, in creation (id) order.
fn each_once(before: &[String], seen: &[String]) {
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a row was listed twice");
    for id in before {
        assert!(unique.contains(id), "{id} was skipped");
    }
    let mut sorted = seen.to_vec();
    sorted.sort();
    assert_eq!(sorted, seen, "numbered pages list oldest first");
}

async fn numbered_execution_pages_see_every_row_once_while_new_ones_arrive(
    redis: bool,
) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    let (workflow, key) = (&s.tenant.workflow_id, &s.tenant.key);
    let mut before = Vec::new();
    for i in 0..250 {
        before.push(start(&s.api, workflow, key, i).await?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let arriving = keep_starting(&s, 250, stop.clone());
    let path = format!("/platform/v1/workflows/{workflow}/executions");
    let seen = walk(&s, &path, 30).await?;
    stop.store(true, Ordering::Relaxed);
    let arrived = arriving.await??;
    assert!(arrived > 0, "nothing arrived while paging");
    each_once(&before, &seen);

    // Afterwards the count is exact and the pages cut where `meta` says.
    let all = 250 + arrived;
    let last = s
        .api
        .get(
            &format!("{path}?page={}&per_page=100", all.div_ceil(100)),
            key,
        )
        .await?;
    assert_eq!(last.body["meta"]["total_count"], all, "{:?}", last.body);
    assert_eq!(
        last.body["data"].as_array().map(Vec::len),
        Some(all - (all.div_ceil(100) - 1) * 100)
    );
    // The cursor form is unchanged: newest first, with its cursor.
    let cursor = s.api.list(workflow, key, "limit=5").await?;
    let newest: Vec<&str> = cursor.body["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(newest.len(), 5);
    assert!(newest.windows(2).all(|w| w[0] > w[1]), "{newest:?}");
    assert!(cursor.body["paging"]["cursors"]["after"].is_string());
    assert!(cursor.body.get("meta").is_none());
    Ok(())
}

async fn numbered_conversation_pages_see_every_row_once_while_new_ones_arrive(
    redis: bool,
) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    let (workflow, key) = (&s.tenant.workflow_id, &s.tenant.key);
    let mut before = Vec::new();
    for i in 0..120 {
        let id = start(&s.api, workflow, key, i).await?;
        let e = s.execution(&id).await?;
        before.push(e["conversation_id"].as_str().unwrap_or_default().to_owned());
    }
    // Activity in an old conversation moves it up the cursor form, not in numbered pages.
    start(&s.api, workflow, key, 3).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let arriving = keep_starting(&s, 120, stop.clone());
    let seen = walk(&s, "/platform/v1/whatsapp/conversations", 25).await?;
    stop.store(true, Ordering::Relaxed);
    assert!(arriving.await?? > 0, "nothing arrived while paging");
    each_once(&before, &seen);
    let page = s.conversations("page=1&per_page=2").await?;
    let first: Vec<&str> = page["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(first, [before[0].as_str(), before[1].as_str()]);
    Ok(())
}

async fn numbered_pages_filter_and_refuse_bad_paging_by_field(redis: bool) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    let (workflow, key) = (&s.tenant.workflow_id, &s.tenant.key);
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(start(&s.api, workflow, key, i).await?);
    }
    for id in &ids[..3] {
        s.end(id).await?;
    }
    // Page 2 of the ended ones, two a page: the third ended.
    let reply = s
        .api
        .list(workflow, key, "status=ended&page=2&per_page=2")
        .await?;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body["meta"],
        json!({"page": 2, "per_page": 2, "total_pages": 2, "total_count": 3})
    );
    assert_eq!(reply.body["data"][0]["id"], ids[2].as_str());
    assert_eq!(reply.body["data"].as_array().map(Vec::len), Some(1));
    // Past the end: no rows, the same totals.
    let past = s.api.list(workflow, key, "page=9&per_page=5").await?;
    assert_eq!(past.body["data"], json!([]));
    assert_eq!(past.body["meta"]["total_count"], 7);
    assert_eq!(past.body["meta"]["total_pages"], 2);
    // Conversations filtered by status: all seven are active (the API keeps them open).
    let active = s.conversations("status=active&page=1&per_page=5").await?;
    assert_eq!(active["meta"]["total_count"], 7, "{active}");
    let by_phone = s
        .conversations(&format!("phone_number=%2B{}&page=1", &customer(4)[1..]))
        .await?;
    assert_eq!(by_phone["meta"]["total_count"], 1, "{by_phone}");
    assert_eq!(by_phone["data"][0]["phone_number"], customer(4).as_str());

    let executions = format!("/platform/v1/workflows/{workflow}/executions");
    for path in [executions.as_str(), "/platform/v1/whatsapp/conversations"] {
        for (query, code, field) in [
            ("page=0", "invalid_page", "page"),
            ("page=two", "invalid_page", "page"),
            ("per_page=101", "invalid_per_page", "per_page"),
            ("page=1&limit=5", "invalid_paging", "limit"),
            ("per_page=5&after=x", "invalid_paging", "after"),
        ] {
            let reply = s.api.get(&format!("{path}?{query}"), key).await?;
            assert_eq!(reply.status, 422, "{path}?{query}: {:?}", reply.body);
            assert_eq!(
                (reply.code(), reply.field()),
                (code, field),
                "{path}?{query}"
            );
        }
    }
    Ok(())
}

fn rfc3339_ms(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_default();
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|_| panic!("not RFC 3339: {value}"))
}

async fn executions_carry_kapsos_time_and_conversation_fields(redis: bool) -> anyhow::Result<()> {
    let s = Stack::start(redis).await?;
    let (workflow, key) = (&s.tenant.workflow_id, &s.tenant.key);
    let id = start(&s.api, workflow, key, 1).await?;
    let e = s.execution(&id).await?;
    assert_eq!(e["started_at"], e["created_at"], "{e}");
    assert_eq!(e["ended_at"], Value::Null);
    assert_eq!(e["last_event_at"], e["created_at"], "no events yet: {e}");
    assert!(e["conversation_id"].is_string());
    assert_eq!(e["whatsapp_conversation_id"], e["conversation_id"]);

    s.end(&id).await?;
    let e = s.execution(&id).await?;
    let newest = e["events"]
        .as_array()
        .and_then(|events| events.last())
        .map(|ev| ev["at"].as_i64().unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(rfc3339_ms(&e["last_event_at"]), newest, "{e}");
    assert_eq!(e["ended_at"], e["updated_at"], "{e}");
    assert!(rfc3339_ms(&e["ended_at"]) >= rfc3339_ms(&e["started_at"]));
    // Lists carry them too, though not the events.
    for query in ["limit=1", "page=1&per_page=1"] {
        let listed = s.api.list(workflow, key, query).await?;
        let row = &listed.body["data"][0];
        for field in [
            "started_at",
            "ended_at",
            "last_event_at",
            "whatsapp_conversation_id",
        ] {
            assert_eq!(row[field], e[field], "{query} {field}: {row}");
        }
    }
    Ok(())
}
