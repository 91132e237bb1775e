//! The trigger catalog through the admin API: uniqueness rules, replace-all, API keys,
//! audit, persistence and refusal of bad input.

use sea_orm::{ConnectionTrait, Database, Statement};
use sha2::{Digest, Sha256};
use switchboard_proto::v1 as pb;
use switchboard_tests::admin::spec;
use switchboard_tests::{Admin, Backend, ControlPlane, TestDb, both_databases};
use tonic::Code;

const N1: &str = "106540352242922";
const N2: &str = "106540352242923";
const N3: &str = "106540352242924";

both_databases!(
    second_active_message_trigger_on_number_conflicts,
    project_wide_event_trigger_conflicts_with_per_number_trigger,
    concurrent_conflicting_activations_leave_exactly_one_active,
    concurrent_project_wide_and_per_number_activations_never_overlap,
    replace_all_is_all_or_nothing,
    api_keys_show_the_secret_once_and_revocation_is_recorded,
    audit_log_records_each_change_with_before_and_after,
    catalog_survives_a_restart,
    bad_input_is_refused_naming_the_field_and_writes_nothing,
    only_one_api_call_trigger_per_workflow,
    routing_version_moves_only_with_routing_changes,
    numbers_in_use_cannot_be_deleted_and_defaults_are_unique,
    deleting_a_workflow_deletes_its_triggers,
    calls_without_the_admin_token_are_unauthenticated,
);

async fn boot(backend: Backend) -> anyhow::Result<(TestDb, ControlPlane, Admin)> {
    let db = TestDb::fresh(backend).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let admin = cp.admin().await?;
    Ok((db, cp, admin))
}

fn inactive(mut s: pb::TriggerSpec) -> pb::TriggerSpec {
    s.inactive = true;
    s
}

async fn second_active_message_trigger_on_number_conflicts(b: Backend) -> anyhow::Result<()> {
    let (_db, _cp, mut a) = boot(b).await?;
    let p = a.project("acme").await?;
    a.number(&p.id, N1, true).await?;
    let w1 = a.workflow(&p.id, "first", "active").await?;
    let w2 = a.workflow(&p.id, "second", "active").await?;
    let t1 = a
        .trigger(&w1.id, spec("inbound_message", Some(N1), None))
        .await?;
    assert!(t1.active);

    let err = a
        .trigger(&w2.id, spec("inbound_message", Some(N1), None))
        .await
        .expect_err("second active message trigger must conflict");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&t1.id), "{}", err.message());
    assert!(err.message().contains(&w1.id), "{}", err.message());

    // An inactive second trigger is fine, but it cannot be activated while t1 is.
    let t2 = a
        .trigger(&w2.id, inactive(spec("inbound_message", Some(N1), None)))
        .await?;
    assert!(!t2.active);
    let err = a
        .activate(&t2.id)
        .await
        .expect_err("activation must conflict");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&t1.id));

    a.deactivate(&t1.id).await?;
    let t2 = a.activate(&t2.id).await?;
    assert!(t2.active);
    let err = a.activate(&t1.id).await.expect_err("now t1 conflicts");
    assert!(err.message().contains(&t2.id) && err.message().contains(&w2.id));
    Ok(())
}

async fn project_wide_event_trigger_conflicts_with_per_number_trigger(
    b: Backend,
) -> anyhow::Result<()> {
    let (_db, _cp, mut a) = boot(b).await?;
    let pa = a.project("a").await?;
    let pb_ = a.project("b").await?;
    a.number(&pa.id, N1, false).await?;
    a.number(&pa.id, N2, false).await?;
    a.number(&pb_.id, N3, false).await?;
    let wa1 = a.workflow(&pa.id, "a1", "active").await?;
    let wa2 = a.workflow(&pa.id, "a2", "active").await?;
    let wb = a.workflow(&pb_.id, "b", "active").await?;
    let read = Some("whatsapp.message.read");

    // Per-number first, then project-wide in the same project: conflict.
    let per_number = a
        .trigger(&wa1.id, spec("whatsapp_event", Some(N1), read))
        .await?;
    let err = a
        .trigger(&wa2.id, spec("whatsapp_event", None, read))
        .await
        .expect_err("project-wide must conflict with per-number");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&per_number.id) && err.message().contains(&wa1.id));

    // The same in another project is independent.
    let wide_b = a
        .trigger(&wb.id, spec("whatsapp_event", None, read))
        .await?;
    assert!(wide_b.active);
    // ...and there, a per-number trigger conflicts with the project-wide one.
    let err = a
        .trigger(&wb.id, spec("whatsapp_event", Some(N3), read))
        .await
        .expect_err("per-number must conflict with project-wide");
    assert!(err.message().contains(&wide_b.id));

    // Other event types and other numbers are free.
    a.trigger(&wa2.id, spec("whatsapp_event", Some(N2), read))
        .await?;
    a.trigger(
        &wa2.id,
        spec(
            "whatsapp_event",
            Some(N1),
            Some("whatsapp.message.delivered"),
        ),
    )
    .await?;
    let delivered_wide = a
        .trigger(
            &wa1.id,
            spec("whatsapp_event", None, Some("whatsapp.message.sent")),
        )
        .await?;
    let err = a
        .trigger(
            &wa2.id,
            spec("whatsapp_event", Some(N2), Some("whatsapp.message.sent")),
        )
        .await
        .expect_err("number covered by the project-wide trigger");
    assert!(err.message().contains(&delivered_wide.id));
    Ok(())
}

async fn concurrent_conflicting_activations_leave_exactly_one_active(
    b: Backend,
) -> anyhow::Result<()> {
    let (_db, _cp, mut a) = boot(b).await?;
    let p = a.project("race").await?;
    a.number(&p.id, N1, false).await?;
    let mut ids = Vec::new();
    for i in 0..20 {
        let w = a.workflow(&p.id, &format!("w{i}"), "active").await?;
        let t = a
            .trigger(&w.id, inactive(spec("inbound_message", Some(N1), None)))
            .await?;
        ids.push(t.id);
    }
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut a = a.clone();
            let id = id.clone();
            tokio::spawn(async move { a.activate(&id).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await? {
            Ok(_) => won += 1,
            Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "{status:?}"),
        }
    }
    assert_eq!(won, 1);
    let active = a
        .list_triggers(pb::ListTriggersRequest {
            workflow_id: None,
            project_id: Some(p.id.clone()),
        })
        .await?
        .into_inner()
        .triggers
        .into_iter()
        .filter(|t| t.active)
        .count();
    assert_eq!(active, 1);
    Ok(())
}

async fn concurrent_project_wide_and_per_number_activations_never_overlap(
    b: Backend,
) -> anyhow::Result<()> {
    let (_db, _cp, mut a) = boot(b).await?;
    let p = a.project("race").await?;
    let event = Some("whatsapp.conversation.created");
    let mut ids = Vec::new();
    for i in 0..10 {
        let pnid = format!("20000000000{i:02}");
        a.number(&p.id, &pnid, false).await?;
        let w = a.workflow(&p.id, &format!("n{i}"), "active").await?;
        ids.push(
            a.trigger(&w.id, inactive(spec("whatsapp_event", Some(&pnid), event)))
                .await?
                .id,
        );
        let w = a.workflow(&p.id, &format!("wide{i}"), "active").await?;
        ids.push(
            a.trigger(&w.id, inactive(spec("whatsapp_event", None, event)))
                .await?
                .id,
        );
    }
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut a = a.clone();
            let id = id.clone();
            tokio::spawn(async move { a.activate(&id).await })
        })
        .collect();
    for task in tasks {
        if let Err(status) = task.await? {
            assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        }
    }
    let active: Vec<pb::Trigger> = a
        .list_triggers(pb::ListTriggersRequest {
            workflow_id: None,
            project_id: Some(p.id.clone()),
        })
        .await?
        .into_inner()
        .triggers
        .into_iter()
        .filter(|t| t.active)
        .collect();
    let wide = active
        .iter()
        .filter(|t| t.phone_number_id.is_none())
        .count();
    let per_number = active.len() - wide;
    assert!(!active.is_empty());
    // Either exactly one project-wide trigger and nothing else, or per-number ones only.
    assert!(
        (wide == 1 && per_number == 0) || wide == 0,
        "wide={wide} per_number={per_number}"
    );
    Ok(())
}

async fn replace_all_is_all_or_nothing(b: Backend) -> anyhow::Result<()> {
    let (_db, _cp, mut a) = boot(b).await?;
    let p = a.project("p").await?;
    a.number(&p.id, N1, false).await?;
    a.number(&p.id, N2, false).await?;
    let w = a.workflow(&p.id, "w", "active").await?;
    let other = a.workflow(&p.id, "other", "active").await?;
    a.trigger(&w.id, spec("api_call", None, None)).await?;
    a.trigger(&w.id, spec("inbound_message", Some(N1), None))
        .await?;
    let held = a
        .trigger(&other.id, spec("inbound_message", Some(N2), None))
        .await?;
    let before = a.triggers_of(&w.id).await?;
    let version = a.routing_version().await?;
    let audit_len = a.audit(1000).await?.len();

    let replace = |triggers: Vec<pb::TriggerSpec>| pb::ReplaceTriggersRequest {
        workflow_id: w.id.clone(),
        triggers,
    };
    // A bad entry after good ones: refused, naming the entry.
    let err = a
        .replace_triggers(replace(vec![
            spec("api_call", None, None),
            spec("whatsapp_event", None, Some("whatsapp.message.bogus")),
        ]))
        .await
        .expect_err("invalid entry");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("triggers[1].event_type"),
        "{}",
        err.message()
    );
    // A conflicting entry: refused, naming the holder.
    let err = a
        .replace_triggers(replace(vec![
            spec("whatsapp_event", None, Some("whatsapp.message.read")),
            spec("inbound_message", Some(N2), None),
        ]))
        .await
        .expect_err("conflicting entry");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&held.id), "{}", err.message());

    assert_eq!(a.triggers_of(&w.id).await?, before, "nothing changed");
    assert_eq!(a.routing_version().await?, version);
    assert_eq!(a.audit(1000).await?.len(), audit_len);

    let after = a
        .replace_triggers(replace(vec![
            spec("api_call", None, None),
            spec("whatsapp_event", None, Some("whatsapp.message.read")),
        ]))
        .await?
        .into_inner()
        .triggers;
    assert_eq!(after.len(), 2);
    assert_eq!(a.triggers_of(&w.id).await?, after);
    assert!(after.iter().all(|t| before.iter().all(|o| o.id != t.id)));
    let last = a.audit(1).await?.remove(0);
    assert_eq!(last.action, "trigger.replace_all");
    let before_json: serde_json::Value = serde_json::from_str(&last.before)?;
    let after_json: serde_json::Value = serde_json::from_str(&last.after)?;
    assert_eq!(before_json.as_array().map(Vec::len), Some(2));
    assert_eq!(after_json[1]["event_type"], "whatsapp.message.read");
    assert_eq!(last.routing_version, Some(version + 1));
    Ok(())
}

async fn api_keys_show_the_secret_once_and_revocation_is_recorded(
    b: Backend,
) -> anyhow::Result<()> {
    let (db, _cp, mut a) = boot(b).await?;
    let p = a.project("p").await?;
    let created = a
        .create_api_key(pb::CreateApiKeyRequest {
            project_id: p.id.clone(),
            name: "server".into(),
            burst_limit: Some(50),
        })
        .await?
        .into_inner();
    let key = created.api_key.clone().unwrap_or_default();
    assert!(created.secret.starts_with("sbk_") && created.secret.len() > 40);
    assert!(created.secret.starts_with(&key.prefix) && key.prefix.len() < 16);
    assert_eq!(key.burst_limit, Some(50));

    // Only the SHA-256 is stored.
    let conn = Database::connect(&db.url).await?;
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT * FROM api_keys WHERE id = '{}'", key.id),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("key row missing"))?;
    let stored: String = row.try_get("", "secret_sha256")?;
    assert_eq!(
        stored,
        hex::encode(Sha256::digest(created.secret.as_bytes()))
    );
    let dump = format!("{row:?}");
    assert!(!dump.contains(&created.secret), "secret stored in clear");
    conn.close().await?;

    let list = |a: &mut Admin| {
        let mut a = a.clone();
        let project_id = p.id.clone();
        async move {
            a.list_api_keys(pb::ListApiKeysRequest { project_id })
                .await
                .map(|r| r.into_inner().api_keys)
        }
    };
    let listed = list(&mut a).await?;
    assert_eq!(listed, vec![key.clone()]);
    assert!(listed[0].revoked_at.is_none());

    let revoked = a
        .revoke_api_key(pb::RevokeApiKeyRequest {
            api_key_id: key.id.clone(),
        })
        .await?
        .into_inner();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(list(&mut a).await?[0].revoked_at, revoked.revoked_at);
    // Revoking again changes nothing.
    let again = a
        .revoke_api_key(pb::RevokeApiKeyRequest {
            api_key_id: key.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    let audit = a.audit(10).await?;
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(&actions[..2], ["api_key.revoke", "api_key.create"]);
    assert!(audit.iter().all(|e| !e.after.contains(&created.secret)));
    Ok(())
}

async fn audit_log_records_each_change_with_before_and_after(b: Backend) -> anyhow::Result<()> {
    let (_db, _cp, mut a) = boot(b).await?;
    let p = a.project("p").await?;
    let n = a.number(&p.id, N1, true).await?;
    let w = a.workflow(&p.id, "w", "draft").await?;
    let t = a
        .trigger(&w.id, spec("inbound_message", Some(N1), None))
        .await?;
    a.deactivate(&t.id).await?;
    a.set_workflow_status(pb::SetWorkflowStatusRequest {
        workflow_id: w.id.clone(),
        status: "active".into(),
    })
    .await?;
    a.delete_trigger(pb::DeleteTriggerRequest {
        trigger_id: t.id.clone(),
    })
    .await?;

    let events = a.audit(100).await?;
    let actions: Vec<&str> = events.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "project.create",
            "number.create",
            "workflow.create",
            "trigger.create",
            "trigger.deactivate",
            "workflow.set_status",
            "trigger.delete"
        ]
    );
    let by_action = |action: &str| {
        events
            .iter()
            .find(|e| e.action == action)
            .cloned()
            .unwrap_or_default()
    };
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or_default();

    let deactivate = by_action("trigger.deactivate");
    assert_eq!(deactivate.entity, "trigger");
    assert_eq!(deactivate.entity_id, t.id);
    assert_eq!(deactivate.project_id.as_deref(), Some(p.id.as_str()));
    assert_eq!(json(&deactivate.before)["active"], true);
    assert_eq!(json(&deactivate.after)["active"], false);
    assert!(deactivate.routing_version.is_some());

    let status = by_action("workflow.set_status");
    assert_eq!(json(&status.before)["status"], "draft");
    assert_eq!(json(&status.after)["status"], "active");

    let deleted = by_action("trigger.delete");
    assert_eq!(json(&deleted.before)["id"], t.id.as_str());
    assert!(json(&deleted.after).is_null());

    // The number's access token never reaches the audit log.
    let number = by_action("number.create");
    assert_eq!(number.entity_id, n.whatsapp_config_id.to_string());
    assert!(!number.after.contains("EAAG-test-token"));
    assert!(json(&number.after).get("access_token").is_none());

    let scoped = a
        .list_audit_events(pb::ListAuditEventsRequest {
            project_id: Some(p.id.clone()),
            limit: Some(3),
        })
        .await?
        .into_inner()
        .events;
    assert_eq!(scoped.len(), 3);
    assert_eq!(scoped[0].action, "trigger.delete");
    Ok(())
}

async fn catalog_survives_a_restart(b: Backend) -> anyhow::Result<()> {
    let db = TestDb::fresh(b).await?;
    let cp = ControlPlane::start(&db.url).await?;
    let mut a = cp.admin().await?;
    let p = a.project("p").await?;
    a.number(&p.id, N1, true).await?;
    let w = a.workflow(&p.id, "w", "active").await?;
    let t = a
        .trigger(&w.id, spec("inbound_message", Some(N1), None))
        .await?;
    let version = a.routing_version().await?;
    cp.stop().await?;

    let cp = ControlPlane::start(&db.url).await?;
    let mut a = cp.admin().await?;
    assert_eq!(a.routing_version().await?, version);
    let got = a
        .get_trigger(pb::GetTriggerRequest {
            trigger_id: t.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(got, t);
    let projects = a
        .list_projects(pb::ListProjectsRequest {})
        .await?
        .into_inner()
        .projects;
    assert_eq!(projects, vec![p]);
    // Rules still hold after the restart.
    let w2 = a.workflow(&projects[0].id, "w2", "active").await?;
    let err = a
        .trigger(&w2.id, spec("inbound_message", Some(N1), None))
        .await
        .expect_err("conflict survives restart");
    assert_eq!(err.code(), Code::AlreadyExists);
    cp.stop().await
}

async fn bad_input_is_refused_naming_the_field_and_writes_nothing(
    b: Backend,
) -> anyhow::Result<()> {
    let (_db, _cp, mut a) = boot(b).await?;
    let p = a.project("p").await?;
    let other = a.project("other").await?;
    a.number(&p.id, N1, false).await?;
    a.number(&other.id, N2, false).await?;
    let w = a.workflow(&p.id, "w", "active").await?;
    let version = a.routing_version().await?;
    let audit_len = a.audit(1000).await?.len();
    let missing = "01a214e0-0000-7000-8000-000000000000";

    let cases: Vec<(&str, Result<(), tonic::Status>, Code, &str)> = vec![
        (
            "invalid workflow id",
            a.trigger("not-an-id", spec("api_call", None, None))
                .await
                .map(drop),
            Code::InvalidArgument,
            "workflow_id",
        ),
        (
            "unknown workflow",
            a.trigger(missing, spec("api_call", None, None))
                .await
                .map(drop),
            Code::NotFound,
            "workflow_id",
        ),
        (
            "unknown event type",
            a.trigger(
                &w.id,
                spec("whatsapp_event", None, Some("whatsapp.message.seen")),
            )
            .await
            .map(drop),
            Code::InvalidArgument,
            "event_type",
        ),
        (
            "event trigger without event",
            a.trigger(&w.id, spec("whatsapp_event", None, None))
                .await
                .map(drop),
            Code::InvalidArgument,
            "event_type",
        ),
        (
            "unknown trigger type",
            a.trigger(&w.id, spec("cron", None, None)).await.map(drop),
            Code::InvalidArgument,
            "type",
        ),
        (
            "message trigger without number",
            a.trigger(&w.id, spec("inbound_message", None, None))
                .await
                .map(drop),
            Code::InvalidArgument,
            "phone_number_id",
        ),
        (
            "number of another project",
            a.trigger(&w.id, spec("inbound_message", Some(N2), None))
                .await
                .map(drop),
            Code::NotFound,
            "phone_number_id",
        ),
        (
            "api trigger with a number",
            a.trigger(&w.id, spec("api_call", Some(N1), None))
                .await
                .map(drop),
            Code::InvalidArgument,
            "phone_number_id",
        ),
        (
            "empty project name",
            a.project("  ").await.map(drop),
            Code::InvalidArgument,
            "name",
        ),
        (
            "empty workflow name",
            a.workflow(&p.id, "", "active").await.map(drop),
            Code::InvalidArgument,
            "name",
        ),
        (
            "bad workflow status",
            a.workflow(&p.id, "x", "paused").await.map(drop),
            Code::InvalidArgument,
            "status",
        ),
        (
            "api key of a missing project",
            a.create_api_key(pb::CreateApiKeyRequest {
                project_id: missing.into(),
                name: "k".into(),
                burst_limit: None,
            })
            .await
            .map(drop),
            Code::NotFound,
            "project_id",
        ),
        (
            "zero burst limit",
            a.create_api_key(pb::CreateApiKeyRequest {
                project_id: p.id.clone(),
                name: "k".into(),
                burst_limit: Some(0),
            })
            .await
            .map(drop),
            Code::InvalidArgument,
            "burst_limit",
        ),
        (
            "number with a bad display number",
            a.create_number(pb::CreateNumberRequest {
                project_id: p.id.clone(),
                phone_number_id: "555".into(),
                display_phone_number: "5550000".into(),
                ..Default::default()
            })
            .await
            .map(drop),
            Code::InvalidArgument,
            "display_phone_number",
        ),
        (
            "number with a customer of another project",
            {
                let c = a
                    .create_customer(pb::CreateCustomerRequest {
                        project_id: other.id.clone(),
                        name: "c".into(),
                    })
                    .await?
                    .into_inner();
                a.create_number(pb::CreateNumberRequest {
                    project_id: p.id.clone(),
                    customer_id: Some(c.id),
                    phone_number_id: "555".into(),
                    display_phone_number: "+15550000000".into(),
                    ..Default::default()
                })
                .await
                .map(drop)
            },
            Code::NotFound,
            "customer_id",
        ),
        (
            "revoking an unknown key",
            a.revoke_api_key(pb::RevokeApiKeyRequest {
                api_key_id: missing.into(),
            })
            .await
            .map(drop),
            Code::NotFound,
            "api_key_id",
        ),
    ];
    for (what, result, code, field) in cases {
        let err = result.expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err:?}");
        assert!(
            err.message().starts_with(&format!("{field}:")),
            "{what}: message {:?} should name {field}",
            err.message()
        );
    }
    assert_eq!(
        a.routing_version().await?,
        version,
        "nothing routed changed"
    );
    // Only the customer of "number with a customer of another project" was written.
    let audit = a.audit(1000).await?;
    assert_eq!(audit.len(), audit_len + 1);
    assert_eq!(audit[0].action, "customer.create");
    assert!(a.triggers_of(&w.id).await?.is_empty());
    Ok(())
}

async fn only_one_api_call_trigger_per_workflow(b: Backend) -> anyhow::Result<()> {
    let (_db, _cp, mut a) = boot(b).await?;
    let p = a.project("p").await?;
    let w = a.workflow(&p.id, "w", "active").await?;
    let first = a
        .trigger(&w.id, inactive(spec("api_call", None, None)))
        .await?;
    let err = a
        .trigger(&w.id, inactive(spec("api_call", None, None)))
        .await
        .expect_err("second api trigger");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&first.id) && err.message().contains(&w.id));
    // Another workflow may have its own.
    let w2 = a.workflow(&p.id, "w2", "active").await?;
    a.trigger(&w2.id, spec("api_call", None, None)).await?;
    Ok(())
}

async fn routing_version_moves_only_with_routing_changes(b: Backend) -> anyhow::Result<()> {
    let (_db, _cp, mut a) = boot(b).await?;
    let v0 = a.routing_version().await?;
    let p = a.project("p").await?;
    assert_eq!(a.routing_version().await?, v0, "projects are not routed");
    let w = a.workflow(&p.id, "w", "active").await?;
    let t = a.trigger(&w.id, spec("api_call", None, None)).await?;
    let v1 = a.routing_version().await?;
    assert_eq!(v1, v0 + 2);
    // Deactivating twice: the second is a no-op and leaves the version alone.
    a.deactivate(&t.id).await?;
    assert_eq!(a.routing_version().await?, v1 + 1);
    a.deactivate(&t.id).await?;
    assert_eq!(a.routing_version().await?, v1 + 1);
    let last = a.audit(1).await?.remove(0);
    assert_eq!(last.action, "trigger.deactivate");
    assert_eq!(last.routing_version, Some(v1 + 1));
    Ok(())
}

async fn numbers_in_use_cannot_be_deleted_and_defaults_are_unique(
    b: Backend,
) -> anyhow::Result<()> {
    let (_db, _cp, mut a) = boot(b).await?;
    let p = a.project("p").await?;
    let n1 = a.number(&p.id, N1, true).await?;
    let err = a.number(&p.id, N2, true).await.expect_err("second default");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&n1.whatsapp_config_id.to_string()));
    let err = a
        .number(&p.id, N1, false)
        .await
        .expect_err("duplicate Meta id");
    assert_eq!(err.code(), Code::AlreadyExists);
    let n2 = a.number(&p.id, N2, false).await?;
    let w = a.workflow(&p.id, "w", "active").await?;
    let t = a
        .trigger(&w.id, spec("inbound_message", Some(N1), None))
        .await?;
    let err = a
        .delete_number(pb::DeleteNumberRequest {
            whatsapp_config_id: n1.whatsapp_config_id,
        })
        .await
        .expect_err("number in use");
    assert_eq!(err.code(), Code::FailedPrecondition);
    a.delete_number(pb::DeleteNumberRequest {
        whatsapp_config_id: n2.whatsapp_config_id,
    })
    .await?;
    a.delete_trigger(pb::DeleteTriggerRequest { trigger_id: t.id })
        .await?;
    a.delete_number(pb::DeleteNumberRequest {
        whatsapp_config_id: n1.whatsapp_config_id,
    })
    .await?;
    let left = a
        .list_numbers(pb::ListNumbersRequest {
            project_id: p.id.clone(),
        })
        .await?
        .into_inner()
        .numbers;
    assert!(left.is_empty());
    Ok(())
}

async fn deleting_a_workflow_deletes_its_triggers(b: Backend) -> anyhow::Result<()> {
    let (_db, _cp, mut a) = boot(b).await?;
    let p = a.project("p").await?;
    a.number(&p.id, N1, false).await?;
    let w = a.workflow(&p.id, "w", "active").await?;
    let t = a
        .trigger(&w.id, spec("inbound_message", Some(N1), None))
        .await?;
    a.delete_workflow(pb::DeleteWorkflowRequest {
        workflow_id: w.id.clone(),
    })
    .await?;
    let err = a
        .get_trigger(pb::GetTriggerRequest { trigger_id: t.id })
        .await
        .expect_err("trigger is gone");
    assert_eq!(err.code(), Code::NotFound);
    // The number is free again.
    let w2 = a.workflow(&p.id, "w2", "active").await?;
    a.trigger(&w2.id, spec("inbound_message", Some(N1), None))
        .await?;
    Ok(())
}

async fn calls_without_the_admin_token_are_unauthenticated(b: Backend) -> anyhow::Result<()> {
    let (_db, cp, _a) = boot(b).await?;
    for token in [None, Some("wrong-token")] {
        let mut anon = Admin::connect(&cp.grpc_url, token).await?;
        let err = anon.project("p").await.expect_err("no token");
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    let mut a = cp.admin().await?;
    assert!(
        a.list_projects(pb::ListProjectsRequest {})
            .await?
            .into_inner()
            .projects
            .is_empty()
    );
    Ok(())
}
