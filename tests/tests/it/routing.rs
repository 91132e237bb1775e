//! Routing tables end to end: a real control plane compiles the catalog and pushes it to
//! real data planes, which swap, persist and acknowledge it.

use sea_orm::{ConnectionTrait, Database};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_control_plane::catalog::Catalog;
use switchboard_control_plane::routing::encoded::CompiledTable;
use switchboard_control_plane::routing::{compiler, incremental};
use switchboard_data_plane::routing::table::EventType;
use switchboard_proto::v1 as pb;
use switchboard_tests::admin::spec;
use switchboard_tests::{Admin, Backend, ControlPlane, DataPlane, TestDb, both_databases, bulk};

const N1: &str = "106540352242922";
const N2: &str = "106540352242923";

both_databases!(
    one_control_plane_and_three_data_planes_converge_on_every_change,
    data_planes_serve_their_last_table_while_the_control_plane_is_away,
    refused_entries_are_nacked_and_shown_in_nodes_list,
    incremental_compiles_give_what_full_compiles_give,
);

/// Polls `nodes list` until `check` holds (ACKs are recorded asynchronously).
async fn nodes_until(
    admin: &mut Admin,
    check: impl Fn(&[pb::Node]) -> bool,
) -> anyhow::Result<Vec<pb::Node>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let nodes = admin.nodes().await?;
        if check(&nodes) {
            return Ok(nodes);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "nodes never satisfied the check: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn one_control_plane_and_three_data_planes_converge_on_every_change(
    b: Backend,
) -> anyhow::Result<()> {
    let db = TestDb::fresh(b).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut a = cp.admin().await?;
    let state = tempfile::tempdir()?;
    let mut dps = Vec::new();
    for i in 0..3 {
        let dir = state.path().join(format!("dp{i}"));
        dps.push(DataPlane::start(&cp.grpc_url, &format!("dp-{i}"), &dir).await?);
    }
    let converge = |version: i64| {
        let dps = &dps;
        async move {
            for dp in dps {
                dp.wait_version(version).await?;
            }
            anyhow::Ok(())
        }
    };

    let p = a.project("p").await?;
    let n1 = a.number(&p.id, N1, true).await?;
    let n2 = a.number(&p.id, N2, false).await?;
    let w = a.workflow(&p.id, "w", "active").await?;
    let message = a
        .trigger(&w.id, spec("inbound_message", Some(N1), None))
        .await?;
    let read = a
        .trigger(
            &w.id,
            spec("whatsapp_event", None, Some("whatsapp.message.read")),
        )
        .await?;
    converge(a.routing_version().await?).await?;
    for dp in &dps {
        let table = dp.slot.table().ok_or_else(|| anyhow::anyhow!("no table"))?;
        assert!(table.rejected().is_empty(), "{:?}", table.rejected());
        let number = table
            .number(N2)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("number {N2} not routed"))?;
        assert_eq!(number.whatsapp_config_id, n2.whatsapp_config_id);
        assert_eq!(
            table
                .message_trigger(n1.whatsapp_config_id)
                .map(|t| t.id.to_string()),
            Some(message.id.clone())
        );
        // The project-wide event trigger covers every number of the project.
        assert_eq!(
            table
                .event_trigger(event("whatsapp.message.read")?, &number)
                .map(|t| t.id.to_string()),
            Some(read.id.clone())
        );
        assert_eq!(
            table
                .default_number(&uuid(&p.id)?)
                .map(|n| n.phone_number_id.to_string()),
            Some(N1.to_owned())
        );
        assert_eq!(table.workflow(&uuid(&w.id)?).map(|w| w.active), Some(true));
    }

    // A deactivated trigger stops routing on every node.
    a.deactivate(&message.id).await?;
    converge(a.routing_version().await?).await?;
    for dp in &dps {
        let table = dp.slot.table().ok_or_else(|| anyhow::anyhow!("no table"))?;
        assert!(table.message_trigger(n1.whatsapp_config_id).is_none());
        assert!(table.routed_trigger_ids().contains(&uuid(&read.id)?));
    }

    // A draft workflow routes nothing; an API key and its revocation reach every node.
    a.set_workflow_status(pb::SetWorkflowStatusRequest {
        workflow_id: w.id.clone(),
        status: "draft".into(),
    })
    .await?;
    let key = a
        .create_api_key(pb::CreateApiKeyRequest {
            project_id: p.id.clone(),
            name: "k".into(),
            burst_limit: Some(5),
        })
        .await?
        .into_inner();
    let hash = sha_hex(&key.secret);
    converge(a.routing_version().await?).await?;
    for dp in &dps {
        let table = dp.slot.table().ok_or_else(|| anyhow::anyhow!("no table"))?;
        assert!(table.routed_trigger_ids().is_empty());
        let route = table
            .api_key(&hash)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("API key not routed"))?;
        assert_eq!(route.project_id, uuid(&p.id)?);
        assert!(!route.revoked);
        assert_eq!(route.burst_limit, Some(5));
    }
    a.revoke_api_key(pb::RevokeApiKeyRequest {
        api_key_id: key.api_key.map(|k| k.id).unwrap_or_default(),
    })
    .await?;
    let latest = a.routing_version().await?;
    converge(latest).await?;
    for dp in &dps {
        let table = dp.slot.table().ok_or_else(|| anyhow::anyhow!("no table"))?;
        assert!(table.api_key(&hash).is_some_and(|k| k.revoked));
        let (status, body) = dp.readyz().await?;
        assert_eq!(status, 200);
        assert_eq!(body["routing_version"], latest);
        assert_eq!(body["source"], "control_plane");
        assert_eq!(body["control_plane_connected"], true);
    }

    let nodes = nodes_until(&mut a, |nodes| {
        nodes.len() == 3
            && nodes
                .iter()
                .all(|n| n.applied_version == latest && n.connected)
    })
    .await?;
    assert!(
        nodes
            .iter()
            .all(|n| n.latest_version == latest && n.last_error.is_none())
    );
    assert_eq!(nodes[0].node_id, "dp-0");
    for dp in dps {
        dp.stop().await?;
    }
    nodes_until(&mut a, |nodes| nodes.iter().all(|n| !n.connected)).await?;
    cp.stop().await
}

/// A project with number N1, an active workflow and its active message trigger on N1.
struct MessageRoute {
    project: pb::Project,
    number: pb::WhatsappNumber,
    workflow: pb::Workflow,
    trigger: pb::Trigger,
}

async fn message_route(a: &mut Admin) -> anyhow::Result<MessageRoute> {
    let project = a.project("p").await?;
    let number = a.number(&project.id, N1, false).await?;
    let workflow = a.workflow(&project.id, "w", "active").await?;
    let trigger = a
        .trigger(&workflow.id, spec("inbound_message", Some(N1), None))
        .await?;
    Ok(MessageRoute {
        project,
        number,
        workflow,
        trigger,
    })
}

fn uuid(id: &str) -> anyhow::Result<uuid::Uuid> {
    Ok(uuid::Uuid::parse_str(id)?)
}

fn event(name: &str) -> anyhow::Result<EventType> {
    EventType::parse(name).ok_or_else(|| anyhow::anyhow!("unknown event {name}"))
}

fn sha_hex(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}

async fn data_planes_serve_their_last_table_while_the_control_plane_is_away(
    b: Backend,
) -> anyhow::Result<()> {
    let db = TestDb::fresh(b).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let grpc_addr = cp.grpc_url.trim_start_matches("http://").to_owned();
    let mut a = cp.admin().await?;
    let state = tempfile::tempdir()?;

    // Before any table: not ready.
    let dp = DataPlane::start(&cp.grpc_url, "dp-a", state.path()).await?;
    let MessageRoute {
        number: n1,
        trigger: t,
        ..
    } = message_route(&mut a).await?;
    let version = a.routing_version().await?;
    dp.wait_version(version).await?;
    nodes_until(&mut a, |n| n.iter().any(|n| n.applied_version == version)).await?;

    // The control plane goes away: the node keeps serving what it has.
    cp.stop().await?;
    let (status, body) = dp.readyz().await?;
    assert_eq!(status, 200);
    assert_eq!(body["source"], "control_plane");
    assert_eq!(body["routing_version"], version);

    // Restarted while the control plane is still away: it serves from disk.
    dp.stop().await?;
    let dp = DataPlane::start(&format!("http://{grpc_addr}"), "dp-a", state.path()).await?;
    let (status, body) = dp.readyz().await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "disk");
    assert_eq!(body["routing_version"], version);
    assert_eq!(body["control_plane_connected"], false);
    let table = dp.slot.table().ok_or_else(|| anyhow::anyhow!("no table"))?;
    assert_eq!(
        table
            .message_trigger(n1.whatsapp_config_id)
            .map(|x| x.id.to_string()),
        Some(t.id.clone())
    );

    // The control plane returns at the same address: the node reconnects without a restart
    // and, holding the current version, is told so; then it follows new changes.
    let cp = ControlPlane::start_on(&db.url, &grpc_addr).await?;
    let mut a = cp.admin().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = dp.readyz().await?;
        if body["source"] == "control_plane" && body["control_plane_connected"] == true {
            assert_eq!(body["routing_version"], version);
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "never confirmed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.deactivate(&t.id).await?;
    let newer = a.routing_version().await?;
    dp.wait_version(newer).await?;
    let (_, body) = dp.readyz().await?;
    assert_eq!(body["source"], "control_plane");
    assert_eq!(body["control_plane_connected"], true);
    let table = dp.slot.table().ok_or_else(|| anyhow::anyhow!("no table"))?;
    assert!(table.message_trigger(n1.whatsapp_config_id).is_none());
    dp.stop().await?;
    cp.stop().await
}

async fn refused_entries_are_nacked_and_shown_in_nodes_list(b: Backend) -> anyhow::Result<()> {
    let db = TestDb::fresh(b).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut a = cp.admin().await?;
    let state = tempfile::tempdir()?;
    let dp = DataPlane::start(&cp.grpc_url, "dp-nack", state.path()).await?;
    let MessageRoute {
        project: p,
        number: n1,
        workflow: w,
        trigger: good,
    } = message_route(&mut a).await?;

    // A row this build cannot route (an event type it does not know), as a newer control
    // plane or a hand-edited database could produce; it arrives in the same version.
    let bad_id = "01a214e0-0000-7000-8000-00000000bad0";
    let conn = Database::connect(&db.url).await?;
    conn.execute_unprepared(&format!(
        "INSERT INTO triggers (id, workflow_id, project_id, trigger_type, whatsapp_config_id,
             event_type, active, created_at, updated_at)
         VALUES ('{bad_id}', '{}', '{}', 'whatsapp_event', NULL, 'whatsapp.message.edited',
             true, '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z')",
        w.id, p.id
    ))
    .await?;
    conn.execute_unprepared("UPDATE routing_state SET version = version + 1 WHERE id = 1")
        .await?;
    conn.close().await?;
    let version = a.routing_version().await?;
    dp.wait_version(version).await?;

    let table = dp.slot.table().ok_or_else(|| anyhow::anyhow!("no table"))?;
    assert_eq!(
        table
            .rejected()
            .iter()
            .map(|r| r.key.clone())
            .collect::<Vec<_>>(),
        [format!("t:{bad_id}")]
    );
    // The valid rest is applied.
    assert_eq!(
        table
            .message_trigger(n1.whatsapp_config_id)
            .map(|t| t.id.to_string()),
        Some(good.id)
    );
    // The row is committed before the version bump, so a compile between the two may
    // already carry it (and be NACKed) at the earlier version: wait for the bumped one.
    let nodes = nodes_until(&mut a, |n| {
        n.iter()
            .any(|n| n.last_error.is_some() && n.applied_version >= version)
    })
    .await?;
    let error = nodes[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains(bad_id) && error.contains("whatsapp.message.edited"),
        "{error}"
    );
    assert_eq!(nodes[0].applied_version, version);
    dp.stop().await?;
    cp.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_node_token_is_refused_and_gets_no_table() -> anyhow::Result<()> {
    let db = TestDb::fresh(Backend::Sqlite).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let channel = tonic::transport::Channel::from_shared(cp.grpc_url.clone())?
        .connect()
        .await?;
    let mut client =
        switchboard_proto::v1::routing_distribution_client::RoutingDistributionClient::new(channel);
    let hello = pb::SyncRequest {
        msg: Some(pb::sync_request::Msg::Hello(pb::Hello {
            node_id: "intruder".into(),
            held_version: 0,
            ..Default::default()
        })),
    };
    let mut request = tonic::Request::new(tokio_stream::iter(vec![hello]));
    request
        .metadata_mut()
        .insert("x-switchboard-node-token", "wrong-token".parse()?);
    let err = client.sync(request).await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mut a = cp.admin().await?;
    assert!(a.nodes().await?.is_empty());
    cp.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_trigger_snapshot_crosses_the_wire_in_chunks() -> anyhow::Result<()> {
    let db = TestDb::fresh(Backend::Postgres).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut a = cp.admin().await?;
    let p = a.project("big").await?;
    let w = a.workflow(&p.id, "w", "active").await?;
    let version =
        bulk::message_triggers(&db.url, &p.id, &w.id, 500_000_000_000_000, 100_000).await?;
    // The whole table is ~30 MB; the node keeps tonic's 4 MiB message limit, so it can only
    // arrive in chunks.
    let state = tempfile::tempdir()?;
    let dp = DataPlane::start(&cp.grpc_url, "dp-big", state.path()).await?;
    dp.wait_version(version).await?;
    // The ACK follows persistence.
    nodes_until(&mut a, |n| n.iter().any(|n| n.applied_version == version)).await?;
    let table = dp.slot.table().ok_or_else(|| anyhow::anyhow!("no table"))?;
    assert_eq!(table.routed_trigger_ids().len(), 100_000);
    assert!(table.rejected().is_empty());
    assert!(table.number("500000000099999").is_some());
    let file = std::fs::metadata(state.path().join("routing.snapshot"))?;
    assert!(
        file.len() > 4 * 1024 * 1024,
        "persisted {} bytes",
        file.len()
    );
    dp.stop().await?;
    cp.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_replica_reaches_data_planes_of_another() -> anyhow::Result<()> {
    let db = TestDb::fresh(Backend::Postgres).await?;
    let first = ControlPlane::start(&db.url).await?;
    let second = ControlPlane::start(&db.url).await?;
    let state = tempfile::tempdir()?;
    let dp = DataPlane::start(&second.grpc_url, "dp-second", state.path()).await?;
    let mut a = first.admin().await?;
    let MessageRoute {
        number: n,
        trigger: t,
        ..
    } = message_route(&mut a).await?;
    dp.wait_version(a.routing_version().await?).await?;
    let table = dp.slot.table().ok_or_else(|| anyhow::anyhow!("no table"))?;
    assert_eq!(
        table
            .message_trigger(n.whatsapp_config_id)
            .map(|x| x.id.to_string()),
        Some(t.id)
    );
    // The node is visible through either replica.
    let mut b = second.admin().await?;
    let nodes = nodes_until(&mut b, |n| n.len() == 1 && n[0].connected).await?;
    assert_eq!(nodes[0].node_id, "dp-second");
    dp.stop().await?;
    first.stop().await?;
    second.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_ahead_of_a_restored_control_plane_gets_a_full_snapshot() -> anyhow::Result<()>
{
    let db = TestDb::fresh(Backend::Postgres).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let grpc_addr = cp.grpc_url.trim_start_matches("http://").to_owned();
    let mut a = cp.admin().await?;
    let state = tempfile::tempdir()?;
    let dp = DataPlane::start(&cp.grpc_url, "dp-ahead", state.path()).await?;
    let MessageRoute {
        number: n,
        trigger: t,
        ..
    } = message_route(&mut a).await?;
    let held = a.routing_version().await?;
    dp.wait_version(held).await?;
    cp.stop().await?;

    // "Restore" an older database: the trigger is gone and the version counter is lower.
    let conn = Database::connect(&db.url).await?;
    conn.execute_unprepared(&format!("DELETE FROM triggers WHERE id = '{}'", t.id))
        .await?;
    conn.execute_unprepared("UPDATE routing_state SET version = 2 WHERE id = 1")
        .await?;
    conn.close().await?;

    let cp = ControlPlane::start_on(&db.url, &grpc_addr).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let table = dp.slot.table().ok_or_else(|| anyhow::anyhow!("no table"))?;
        if table.version() == 2 {
            assert!(table.message_trigger(n.whatsapp_config_id).is_none());
            assert!(table.number(N1).is_some());
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "node still at version {} (held {held})",
            table.version()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dp.stop().await?;
    cp.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_is_ignored_and_the_control_plane_fills_in() -> anyhow::Result<()> {
    let db = TestDb::fresh(Backend::Sqlite).await?;
    let state = tempfile::tempdir()?;
    std::fs::write(
        state.path().join("routing.snapshot"),
        b"SWITCHBOARD-ROUTING-2\nnot a table, and no checksum either",
    )?;
    // No control plane yet: the damaged file is not served.
    let dp = DataPlane::start("http://127.0.0.1:9", "dp-corrupt", state.path()).await?;
    let (status, body) = dp.readyz().await?;
    assert_eq!(status, 503, "{body}");
    dp.stop().await?;

    let cp = ControlPlane::start(&db.url).await?;
    let mut a = cp.admin().await?;
    let p = a.project("p").await?;
    a.workflow(&p.id, "w", "active").await?;
    let version = a.routing_version().await?;
    assert!(version > 0);
    let dp = DataPlane::start(&cp.grpc_url, "dp-corrupt", state.path()).await?;
    dp.wait_version(version).await?;
    nodes_until(&mut a, |n| {
        n.iter()
            .any(|n| n.node_id == "dp-corrupt" && n.applied_version == version)
    })
    .await?;
    let (status, body) = dp.readyz().await?;
    assert_eq!(status, 200);
    assert_eq!(body["source"], "control_plane");
    // The file was replaced by a good one.
    let restarted = {
        dp.stop().await?;
        DataPlane::start("http://127.0.0.1:9", "dp-corrupt", state.path()).await?
    };
    let (status, body) = restarted.readyz().await?;
    assert_eq!(
        (status, body["source"].clone()),
        (200, serde_json::json!("disk"))
    );
    restarted.stop().await?;
    cp.stop().await
}

/// The entries of a table by key, and those its snapshot chunks carry.
fn by_key(table: &CompiledTable) -> anyhow::Result<(BTreeMap<String, pb::RoutingEntry>, usize)> {
    use prost::Message;
    let entries: BTreeMap<_, _> = table.entries().map(|e| (e.key.clone(), e)).collect();
    let mut chunked = BTreeMap::new();
    for chunk in table.chunks() {
        for e in pb::RoutingEntries::decode(chunk)?.entries {
            chunked.insert(e.key.clone(), e);
        }
    }
    anyhow::ensure!(
        chunked == entries,
        "snapshot chunks differ from the table's entries"
    );
    Ok((entries, table.len()))
}

/// Compiles incrementally from `table` and checks the result, and its delta, against a
/// full compile of the catalog; the result becomes `table`.
async fn step(catalog: &Catalog, table: &mut Arc<CompiledTable>, what: &str) -> anyhow::Result<()> {
    let (next, delta) = incremental::compile(catalog, table)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{what}: compiled in full, not incrementally"))?;
    let full = compiler::compile(catalog).await?;
    assert_eq!(next.version, full.version, "{what}");
    let (entries, len) = by_key(&next)?;
    assert_eq!(entries, by_key(&full)?.0, "{what}");
    assert_eq!(len, full.len(), "{what}");
    assert_eq!(next.counts(), full.counts(), "{what}");
    // The delta turns the previous table into the new one.
    let mut applied = by_key(table)?.0;
    for key in &delta.removals {
        assert!(
            applied.remove(key).is_some(),
            "{what}: removal of {key} held nothing"
        );
    }
    for e in &delta.upserts {
        assert_ne!(
            applied.get(&e.key),
            Some(e),
            "{what}: unchanged upsert {}",
            e.key
        );
        applied.insert(e.key.clone(), e.clone());
    }
    assert_eq!(applied, entries, "{what}");
    assert_eq!(
        (delta.from_version, delta.to_version),
        (table.version, next.version)
    );
    *table = Arc::new(next);
    Ok(())
}

/// Every kind of routing change, compiled from the table before it and the audit log, gives
/// exactly the table a full compile gives; a version written behind the catalog's back
/// (no audit event) is left to a full compile.
async fn incremental_compiles_give_what_full_compiles_give(b: Backend) -> anyhow::Result<()> {
    let db = TestDb::fresh(b).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut a = cp.admin().await?;
    let catalog = Catalog::new(Database::connect(&db.url).await?);
    let mut table = Arc::new(compiler::compile(&catalog).await?);
    let p = a.project("acme").await?;
    let t = &mut table;
    let c = &catalog;

    let n1 = a.number(&p.id, N1, true).await?;
    step(c, t, "number created").await?;
    let n2 = a.number(&p.id, N2, false).await?;
    step(c, t, "second number").await?;
    let w1 = a.workflow(&p.id, "one", "active").await?;
    step(c, t, "active workflow").await?;
    let w2 = a.workflow(&p.id, "two", "draft").await?;
    step(c, t, "draft workflow").await?;
    let message = a
        .trigger(&w1.id, spec("inbound_message", Some(N1), None))
        .await?;
    step(c, t, "message trigger").await?;
    a.trigger(
        &w1.id,
        spec("whatsapp_event", Some(N2), Some("whatsapp.message.read")),
    )
    .await?;
    step(c, t, "event trigger").await?;
    a.trigger(&w1.id, spec("api_call", None, None)).await?;
    step(c, t, "api trigger").await?;
    let drafted = a
        .trigger(&w2.id, spec("inbound_message", Some(N2), None))
        .await?;
    step(c, t, "trigger of a draft workflow").await?;
    a.deactivate(&message.id).await?;
    step(c, t, "deactivated").await?;
    a.activate(&message.id).await?;
    step(c, t, "activated").await?;
    for status in ["draft", "active"] {
        a.set_workflow_status(pb::SetWorkflowStatusRequest {
            workflow_id: w1.id.clone(),
            status: status.into(),
        })
        .await?;
        step(c, t, &format!("workflow {status}")).await?;
    }
    let (key, _) = a.api_key(&p.id, Some(5)).await?;
    step(c, t, "api key").await?;
    a.revoke_api_key(pb::RevokeApiKeyRequest { api_key_id: key })
        .await?;
    step(c, t, "revoked key").await?;
    a.replace_triggers(pb::ReplaceTriggersRequest {
        workflow_id: w1.id.clone(),
        triggers: vec![spec("whatsapp_event", None, Some("whatsapp.message.read"))],
    })
    .await?;
    step(c, t, "replace-all").await?;
    a.delete_trigger(pb::DeleteTriggerRequest {
        trigger_id: drafted.id,
    })
    .await?;
    step(c, t, "deleted trigger").await?;
    // Several versions at once.
    let w3 = a.workflow(&p.id, "three", "active").await?;
    a.trigger(&w3.id, spec("inbound_message", Some(N2), None))
        .await?;
    a.delete_workflow(pb::DeleteWorkflowRequest {
        workflow_id: w1.id.clone(),
    })
    .await?;
    step(c, t, "three changes").await?;
    a.delete_workflow(pb::DeleteWorkflowRequest {
        workflow_id: w3.id.clone(),
    })
    .await?;
    a.delete_number(pb::DeleteNumberRequest {
        whatsapp_config_id: n2.whatsapp_config_id,
    })
    .await?;
    step(c, t, "deleted workflow and number").await?;
    assert!(t.get(&format!("n:{}", n1.whatsapp_config_id)).is_some());

    // A version without its audit event: only a full compile can tell what changed.
    let conn = Database::connect(&db.url).await?;
    conn.execute_unprepared("UPDATE routing_state SET version = version + 1 WHERE id = 1")
        .await?;
    assert!(incremental::compile(c, t).await?.is_none());
    cp.stop().await
}

/// A full compile whose changes are too large for a delta hands its segments out while it
/// runs: read concurrently, they are the compiled table, counts announced first and the
/// chunk count on the last chunk only. A compile that changes little never opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_with_large_changes_streams_its_snapshot_while_it_runs() -> anyhow::Result<()> {
    use prost::Message;
    use switchboard_control_plane::routing::streaming::StreamingSnapshot;
    let db = TestDb::fresh(Backend::Postgres).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut a = cp.admin().await?;
    let p = a.project("big").await?;
    let w = a.workflow(&p.id, "w", "active").await?;
    let probe = a.trigger(&w.id, spec("api_call", None, None)).await?;
    let catalog = Catalog::new(Database::connect(&db.url).await?);
    let before = Arc::new(compiler::compile(&catalog).await?);
    let version =
        bulk::message_triggers(&db.url, &p.id, &w.id, 600_000_000_000_000, 30_000).await?;

    let stream = Arc::new(StreamingSnapshot::new(before.clone(), 2 * 1024 * 1024));
    let reader = tokio::spawn({
        let stream = stream.clone();
        async move {
            let mut chunks = stream.chunks();
            let mut all = Vec::new();
            while let Some(chunk) = chunks.next().await? {
                all.push(chunk);
            }
            Ok::<_, anyhow::Error>(all)
        }
    });
    let table = compiler::compile_streamed(&catalog, stream.clone()).await?;
    assert!(
        stream.is_open(),
        "30 000 new triggers and numbers exceed a 2 MiB delta"
    );
    let chunks = reader.await??;
    assert!(chunks.len() > 2, "{} chunks", chunks.len());
    let last = chunks.len() - 1;
    let mut streamed = BTreeMap::new();
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!((chunk.version, chunk.chunk_index as usize), (version, i));
        assert_eq!(
            chunk.chunk_count as usize,
            if i == last { chunks.len() } else { 0 }
        );
        for e in pb::RoutingEntries::decode(chunk.entries.clone())?.entries {
            streamed.insert(e.key.clone(), e);
        }
    }
    let (entries, len) = by_key(&table)?;
    assert_eq!(streamed, entries);
    assert_eq!(len, table.len());
    assert_eq!(table.version, version);
    // The first chunk announces the counts (PostgreSQL's statistics: a hint that may lag).
    assert!(chunks[0].counts.is_some());
    assert!(chunks[1..].iter().all(|c| c.counts.is_none()));
    assert_eq!(table.counts().triggers, 30_000);

    // One change on the large table: a delta, so the compile keeps its segments to itself.
    let table = Arc::new(table);
    a.deactivate(&probe.id).await?;
    let stream = Arc::new(StreamingSnapshot::new(table.clone(), 2 * 1024 * 1024));
    let next = compiler::compile_streamed(&catalog, stream.clone()).await?;
    assert!(!stream.is_open());
    let delta = CompiledTable::diff(&table, &next, usize::MAX).unwrap_or_default();
    assert_eq!(delta.upserts.len(), 1, "the workflow's route changed");
    cp.stop().await
}

/// Data planes connected while a large change compiles get it as it is compiled and end up
/// with the whole table, applied and acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_data_planes_apply_a_large_change_streamed_while_it_compiles()
-> anyhow::Result<()> {
    let db = TestDb::fresh(Backend::Postgres).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut a = cp.admin().await?;
    let p = a.project("big").await?;
    let w = a.workflow(&p.id, "w", "active").await?;
    let initial = a.routing_version().await?;
    let (s1, s2) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let dp1 = DataPlane::start(&cp.grpc_url, "dp-stream-1", s1.path()).await?;
    let dp2 = DataPlane::start(&cp.grpc_url, "dp-stream-2", s2.path()).await?;
    dp1.wait_version(initial).await?;
    dp2.wait_version(initial).await?;

    let version =
        bulk::message_triggers(&db.url, &p.id, &w.id, 610_000_000_000_000, 50_000).await?;
    for dp in [&dp1, &dp2] {
        dp.wait_version(version).await?;
        let table = dp.slot.table().ok_or_else(|| anyhow::anyhow!("no table"))?;
        assert_eq!(table.routed_trigger_ids().len(), 50_000);
        assert!(table.rejected().is_empty());
        for id in ["610000000000000", "610000000025000", "610000000049999"] {
            let number = table
                .number(id)
                .ok_or_else(|| anyhow::anyhow!("{id} missing"))?;
            let trigger = table
                .message_trigger(number.whatsapp_config_id)
                .ok_or_else(|| anyhow::anyhow!("{id}: no message trigger"))?;
            assert_eq!(trigger.workflow_id, uuid(&w.id)?);
        }
    }
    let nodes = nodes_until(&mut a, |n| {
        n.iter().filter(|n| n.applied_version == version).count() == 2
    })
    .await?;
    assert!(nodes.iter().all(|n| n.last_error.is_none()), "{nodes:?}");
    dp1.stop().await?;
    dp2.stop().await?;
    cp.stop().await
}
