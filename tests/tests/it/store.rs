//! Behaviour of the execution store, run against the real Redis (own key prefix) and the
//! in-process memory store alike: both must behave the same.

use std::time::Duration;
use switchboard_data_plane::store::conversations::{
    Apply, Customer, InboundMessage, MessageOutcome, Placeholder, Route,
};
use switchboard_data_plane::store::{
    Admission, Applied, Created, ListQuery, NewExecution, Status, Store, Transition, keys, rules,
};
use switchboard_proto::wire::TriggerType;
use switchboard_tests::TestRedis;
use uuid::Uuid;

macro_rules! both_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() -> anyhow::Result<()> {
                let redis = switchboard_tests::TestRedis::new();
                super::$name(super::Kind::Redis(&redis)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() -> anyhow::Result<()> {
                super::$name(super::Kind::Memory).await
            }
        }
    )+};
}

both_stores!(
    a_created_execution_is_read_back_whole_and_dispatched,
    idempotency_replays_and_refuses_without_writing,
    the_burst_limit_counts_per_key_workflow_and_second,
    status_changes_follow_the_table_and_are_recorded,
    lists_are_newest_first_paged_filtered_and_per_workflow,
    records_expire_after_the_retention,
    inbound_messages_follow_the_routing_rules_case_by_case,
);

enum Kind<'a> {
    Redis(&'a TestRedis),
    Memory,
}

fn open(kind: &Kind<'_>, retention: Duration) -> anyhow::Result<Store> {
    Ok(match kind {
        Kind::Redis(r) => Store::open(&r.url, &r.prefix, retention)?,
        Kind::Memory => Store::open("memory", "unused", retention)?,
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn execution(project: Uuid, workflow: Uuid, created_at: i64) -> NewExecution {
    NewExecution {
        id: keys::new_tracking_id(&project),
        project_id: project,
        workflow_id: workflow,
        trigger_type: TriggerType::ApiCall,
        test: false,
        observer_mode: false,
        conversation_id: None,
        context: format!(r#"{{"system":{{"created":{created_at}}}}}"#),
        created_at,
    }
}

fn query(project: Uuid, workflow: Uuid, limit: usize) -> ListQuery {
    ListQuery {
        workflow_id: workflow,
        project_id: project,
        status: None,
        limit,
        after: None,
    }
}

async fn a_created_execution_is_read_back_whole_and_dispatched(
    kind: Kind<'_>,
) -> anyhow::Result<()> {
    let store = open(&kind, Duration::from_secs(3600))?;
    let (project, workflow) = (Uuid::now_v7(), Uuid::now_v7());
    let mut new = execution(project, workflow, now_ms());
    new.test = true;
    new.observer_mode = true;
    new.conversation_id = Some("conv-1".into());
    new.trigger_type = TriggerType::WhatsappEvent;
    let created = store.create(&new, &Admission::default()).await?;
    assert_eq!(
        created,
        Created::New {
            burst_remaining: None,
            joined: None,
        }
    );
    let got = store
        .get(new.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("not stored"))?;
    assert_eq!(got.id, new.id);
    assert_eq!(got.project_id, project);
    assert_eq!(got.workflow_id, workflow);
    assert_eq!(got.status, Status::Pending);
    assert_eq!(got.trigger_type, TriggerType::WhatsappEvent);
    assert!(got.test && got.observer_mode);
    assert_eq!(got.conversation_id.as_deref(), Some("conv-1"));
    assert_eq!(
        (got.created_at, got.updated_at),
        (new.created_at, new.created_at)
    );
    assert_eq!(got.context, new.context);
    assert!(got.events.is_empty());
    let shard = keys::shard_of_project(&project);
    assert_eq!(store.dispatched(shard).await?, vec![new.id]);
    assert_eq!(store.get(Uuid::now_v7()).await?, None);
    Ok(())
}

async fn idempotency_replays_and_refuses_without_writing(kind: Kind<'_>) -> anyhow::Result<()> {
    let store = open(&kind, Duration::from_secs(3600))?;
    let (project, workflow) = (Uuid::now_v7(), Uuid::now_v7());
    let admission = |request: &str| Admission {
        idempotency: Some(("key-hash".into(), request.into())),
        ..Admission::default()
    };
    let first = execution(project, workflow, now_ms());
    assert!(matches!(
        store.create(&first, &admission("req-a")).await?,
        Created::New { .. }
    ));
    let second = execution(project, workflow, now_ms());
    assert_eq!(
        store.create(&second, &admission("req-a")).await?,
        Created::Replayed {
            tracking_id: first.id
        }
    );
    let third = execution(project, workflow, now_ms());
    assert_eq!(
        store.create(&third, &admission("req-b")).await?,
        Created::IdempotencyKeyReused
    );
    assert_eq!(store.get(second.id).await?, None);
    assert_eq!(store.get(third.id).await?, None);
    assert_eq!(
        store
            .list(&query(project, workflow, 100))
            .await?
            .executions
            .len(),
        1
    );
    assert_eq!(
        store.dispatched(keys::shard_of_project(&project)).await?,
        vec![first.id]
    );
    // The same key in another project is another key.
    let elsewhere = execution(Uuid::now_v7(), workflow, now_ms());
    assert!(matches!(
        store.create(&elsewhere, &admission("req-b")).await?,
        Created::New { .. }
    ));
    Ok(())
}

async fn the_burst_limit_counts_per_key_workflow_and_second(kind: Kind<'_>) -> anyhow::Result<()> {
    let store = open(&kind, Duration::from_secs(3600))?;
    let (project, workflow, key) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let admission = Admission {
        burst: Some((key, 2)),
        ..Admission::default()
    };
    // The window is the execution's own second, so the test controls it.
    let second = (now_ms() / 1000) * 1000;
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let e = execution(project, workflow, second + 10);
        outcomes.push(store.create(&e, &admission).await?);
    }
    assert_eq!(
        outcomes,
        [
            Created::New {
                burst_remaining: Some(1),
                joined: None,
            },
            Created::New {
                burst_remaining: Some(0),
                joined: None,
            },
            Created::RateLimited,
        ]
    );
    // Another workflow of the same key, and the next second, have their own counters.
    let other = execution(project, Uuid::now_v7(), second + 20);
    assert_eq!(
        store.create(&other, &admission).await?,
        Created::New {
            burst_remaining: Some(1),
            joined: None,
        }
    );
    let next = execution(project, workflow, second + 1000);
    assert_eq!(
        store.create(&next, &admission).await?,
        Created::New {
            burst_remaining: Some(1),
            joined: None,
        }
    );
    assert_eq!(
        store
            .list(&query(project, workflow, 100))
            .await?
            .executions
            .len(),
        3
    );
    Ok(())
}

async fn status_changes_follow_the_table_and_are_recorded(kind: Kind<'_>) -> anyhow::Result<()> {
    let store = open(&kind, Duration::from_secs(3600))?;
    let (project, workflow) = (Uuid::now_v7(), Uuid::now_v7());
    let e = execution(project, workflow, now_ms());
    store.create(&e, &Admission::default()).await?;
    let t = e.created_at;
    let Transition::Done(running) = store.set_status(e.id, Status::Running, t + 5).await? else {
        anyhow::bail!("pending → running refused");
    };
    assert_eq!(
        (running.status, running.updated_at),
        (Status::Running, t + 5)
    );
    assert_eq!(
        store.set_status(e.id, Status::Pending, t + 6).await?,
        Transition::Invalid {
            from: Status::Running
        }
    );
    assert!(matches!(
        store.set_status(e.id, Status::Failed, t + 7).await?,
        Transition::Done(_)
    ));
    assert_eq!(
        store.set_status(e.id, Status::Running, t + 8).await?,
        Transition::Invalid {
            from: Status::Failed
        }
    );
    assert_eq!(
        store.set_status(Uuid::now_v7(), Status::Running, t).await?,
        Transition::NotFound
    );
    let got = store
        .get(e.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    assert_eq!(got.status, Status::Failed);
    let events: Vec<serde_json::Value> = got
        .events
        .iter()
        .map(|e| serde_json::from_str(e))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        events,
        [
            serde_json::json!({"type": "status_changed", "from": "pending", "to": "running", "at": t + 5}),
            serde_json::json!({"type": "status_changed", "from": "running", "to": "failed", "at": t + 7}),
        ]
    );
    Ok(())
}

async fn lists_are_newest_first_paged_filtered_and_per_workflow(
    kind: Kind<'_>,
) -> anyhow::Result<()> {
    let store = open(&kind, Duration::from_secs(3600))?;
    let (project, workflow) = (Uuid::now_v7(), Uuid::now_v7());
    let mut ids = Vec::new();
    for _ in 0..7 {
        let e = execution(project, workflow, now_ms());
        store.create(&e, &Admission::default()).await?;
        ids.push(e.id);
    }
    // Another workflow of the project and another project are not listed.
    store
        .create(
            &execution(project, Uuid::now_v7(), now_ms()),
            &Admission::default(),
        )
        .await?;
    store
        .create(
            &execution(Uuid::now_v7(), workflow, now_ms()),
            &Admission::default(),
        )
        .await?;
    ids.reverse();
    let mut seen = Vec::new();
    let mut q = query(project, workflow, 3);
    loop {
        let page = store.list(&q).await?;
        assert!(page.executions.len() <= 3);
        seen.extend(page.executions.iter().map(|e| e.id));
        match page.after {
            Some(after) => q.after = Some(after),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    store.set_status(ids[2], Status::Ended, now_ms()).await?;
    store.set_status(ids[5], Status::Ended, now_ms()).await?;
    let mut q = query(project, workflow, 100);
    q.status = Some(Status::Ended);
    let ended: Vec<Uuid> = store
        .list(&q)
        .await?
        .executions
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ended, [ids[2], ids[5]]);
    // A project that does not own the workflow lists nothing.
    assert!(
        store
            .list(&query(Uuid::now_v7(), workflow, 100))
            .await?
            .executions
            .is_empty()
    );
    Ok(())
}

async fn records_expire_after_the_retention(kind: Kind<'_>) -> anyhow::Result<()> {
    let store = open(&kind, Duration::from_secs(1))?;
    let (project, workflow) = (Uuid::now_v7(), Uuid::now_v7());
    let e = execution(project, workflow, now_ms());
    store.create(&e, &Admission::default()).await?;
    assert!(store.get(e.id).await?.is_some());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(store.get(e.id).await?, None);
    assert!(
        store
            .list(&query(project, workflow, 10))
            .await?
            .executions
            .is_empty()
    );
    assert_eq!(
        store.set_status(e.id, Status::Running, now_ms()).await?,
        Transition::NotFound
    );
    // Its dispatch entry goes with it at the next trim; a young one stays.
    let young = execution(project, workflow, now_ms());
    store.create(&young, &Admission::default()).await?;
    let shard = keys::shard_of_project(&project);
    assert_eq!(store.dispatched(shard).await?, [e.id, young.id]);
    assert_eq!(store.trim_streams(now_ms()).await?, 1);
    assert_eq!(store.dispatched(shard).await?, [young.id]);
    Ok(())
}

/// An inbound message from `customer` to number 1 of `project`, with the message trigger's
/// execution of `workflow` when `trigger`.
fn inbound(project: Uuid, workflow: Uuid, customer: &str, trigger: bool) -> InboundMessage {
    let at = now_ms();
    let placeholder = Placeholder::new();
    let conversation = Some(placeholder.id().to_owned());
    InboundMessage {
        project_id: project,
        whatsapp_config_id: 1,
        phone_number_id: "106540352242922".into(),
        customer: Customer::by_phone(customer),
        message_id: format!("wamid.{}", Uuid::now_v7()),
        last_message: r#"{"id":"m","type":"text","text":"hi"}"#.into(),
        last_user_input: "hi".into(),
        at,
        new_conversation: keys::new_tracking_id(&project),
        on_created: None,
        on_received: None,
        trigger: trigger.then(|| NewExecution {
            trigger_type: TriggerType::InboundMessage,
            conversation_id: conversation,
            ..execution(project, workflow, at)
        }),
        delivery: r#"{"type":"message_received"}"#.into(),
        inbox: format!(r#"{{"conversation_id":"{}"}}"#, placeholder.id()),
        placeholder,
    }
}

async fn route_of(store: &Store, message: &InboundMessage) -> anyhow::Result<Route> {
    match store.apply(&[Apply::Message(message)]).await?.as_slice() {
        [Applied::Message(MessageOutcome::Applied { route, .. })] => Ok(*route),
        other => anyhow::bail!("applied as {other:?}"),
    }
}

/// DESIGN §7 step 4, one table of cases: the conversation's execution in each status (or
/// none), with and without a message trigger. Both stores must route as `rules::route`.
async fn inbound_messages_follow_the_routing_rules_case_by_case(
    kind: Kind<'_>,
) -> anyhow::Result<()> {
    use Status::*;
    let store = open(&kind, Duration::from_secs(3600))?;
    // The statuses a conversation's execution is brought to, and how.
    let cases: [(Option<Status>, &[Status]); 7] = [
        (None, &[]),
        (Some(Pending), &[]),
        (Some(Running), &[Running]),
        (Some(Waiting), &[Running, Waiting]),
        (Some(Handoff), &[Running, Handoff]),
        (Some(Ended), &[Ended]),
        (Some(Failed), &[Running, Failed]),
    ];
    for (status, path) in cases {
        for trigger in [false, true] {
            let (project, workflow) = (Uuid::now_v7(), Uuid::now_v7());
            let customer = format!("1555{:08}", Uuid::now_v7().as_u128() % 100_000_000);
            let case = format!("execution {status:?}, message trigger {trigger}");
            let message = match status {
                None => inbound(project, workflow, &customer, trigger),
                Some(_) => {
                    // A first message starts the conversation's execution...
                    let first = inbound(project, workflow, &customer, true);
                    let Route::Started(execution) = route_of(&store, &first).await? else {
                        anyhow::bail!("{case}: the first message started nothing");
                    };
                    // ...which is brought to the case's status.
                    for to in path {
                        let moved = store.set_status(execution, *to, now_ms()).await?;
                        anyhow::ensure!(matches!(moved, Transition::Done(_)), "{case}: {moved:?}");
                    }
                    inbound(project, workflow, &customer, trigger)
                }
            };
            let route = route_of(&store, &message).await?;
            assert_eq!(route.rule(), rules::route(status, trigger), "{case}");
            if let Route::Started(id) = route {
                assert_eq!(Some(id), message.trigger.as_ref().map(|e| e.id), "{case}");
            }
        }
    }
    Ok(())
}
