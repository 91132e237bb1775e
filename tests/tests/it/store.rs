//! Behaviour of the execution store, run against the real Redis (own key prefix) and the
//! in-process memory store alike: both must behave the same.

use std::time::Duration;
use switchboard_data_plane::store::conversations::{
    Apply, Customer, InboundMessage, MessageOutcome, Placeholder, Route,
};
use switchboard_data_plane::store::decisions::{Outcome, Source, reason};
use switchboard_data_plane::store::{
    Admission, Applied, Created, DecisionLimits, DecisionQuery, Draft, ListQuery, NewExecution,
    Origin, Status, Store, Transition, keys, rules,
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
    decisions_are_recorded_with_their_effect_once_per_duplicate_capped_and_per_project,
    refused_admissions_record_their_reason_and_write_nothing_else,
);

enum Kind<'a> {
    Redis(&'a TestRedis),
    Memory,
}

fn open(kind: &Kind<'_>, retention: Duration) -> anyhow::Result<Store> {
    open_with(kind, retention, DecisionLimits::default())
}

fn open_with(
    kind: &Kind<'_>,
    retention: Duration,
    decisions: DecisionLimits,
) -> anyhow::Result<Store> {
    Ok(match kind {
        Kind::Redis(r) => Store::open(&r.url, &r.prefix, retention, decisions)?,
        Kind::Memory => Store::open("memory", "unused", retention, decisions)?,
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
        origin: None,
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
    let message_id = format!("wamid.{}", Uuid::now_v7());
    let mut decision = Draft::new(project, Source::Webhook, at);
    decision.phone_number_id = Some("106540352242922".into());
    decision.message_id = Some(message_id.clone());
    decision.from = Some(customer.into());
    InboundMessage {
        project_id: project,
        whatsapp_config_id: 1,
        phone_number_id: "106540352242922".into(),
        customer: Customer::by_phone(customer),
        message_id,
        last_message: r#"{"id":"m","type":"text","text":"hi"}"#.into(),
        last_user_input: "hi".into(),
        at,
        new_conversation: keys::new_tracking_id(&project),
        on_created: None,
        on_received: None,
        trigger: trigger.then(|| NewExecution {
            trigger_type: TriggerType::InboundMessage,
            conversation_id: conversation,
            origin: Some(Origin {
                decision_id: decision.id,
                trigger_id: Some(TRIGGER),
                event: None,
            }),
            ..execution(project, workflow, at)
        }),
        delivery: r#"{"type":"message_received"}"#.into(),
        inbox: format!(r#"{{"conversation_id":"{}"}}"#, placeholder.id()),
        placeholder,
        decision,
    }
}

/// The message trigger of [`inbound`]'s executions.
const TRIGGER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_7777);

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

fn decisions_of(project: Uuid, limit: usize) -> DecisionQuery {
    DecisionQuery {
        project_id: project,
        limit,
        ..DecisionQuery::default()
    }
}

/// A message's decision is written with its effect and links to the execution it started;
/// a flood of redeliveries adds one `duplicate`; the cap keeps the newest; another project
/// sees none of it; pages follow one another without gaps or repeats.
async fn decisions_are_recorded_with_their_effect_once_per_duplicate_capped_and_per_project(
    kind: Kind<'_>,
) -> anyhow::Result<()> {
    let cap = 30;
    let limits = DecisionLimits {
        cap,
        ..DecisionLimits::default()
    };
    let store = open_with(&kind, Duration::from_secs(3600), limits)?;
    let (project, other, workflow) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let first = inbound(project, workflow, "15550001111", true);
    let Route::Started(started) = route_of(&store, &first).await? else {
        anyhow::bail!("the message trigger did not start");
    };
    let page = store.decisions(&decisions_of(project, 10)).await?;
    let [d] = page.decisions.as_slice() else {
        anyhow::bail!("one decision expected: {page:?}");
    };
    assert_eq!(d.id, first.decision.id);
    assert_eq!(d.outcome, Outcome::Started);
    assert_eq!(
        (d.trigger_id, d.workflow_id, d.execution_id),
        (Some(TRIGGER), Some(workflow), Some(started))
    );
    assert_eq!(d.message_id.as_deref(), Some(first.message_id.as_str()));
    assert_eq!(d.from.as_deref(), Some("15550001111"));
    assert!(d.conversation_id.is_some(), "{d:?}");
    let execution = store.get(started).await?.expect("the execution");
    assert_eq!(execution.decision_id, Some(d.id));
    assert_eq!(store.decision(project, d.id).await?.as_ref(), Some(d));
    assert_eq!(store.decision(other, d.id).await?, None);
    assert!(
        store
            .decisions(&decisions_of(other, 10))
            .await?
            .decisions
            .is_empty()
    );

    // 200 redeliveries (each planned anew, as the webhook does): one `duplicate`, naming
    // the first's conversation.
    for _ in 0..200 {
        let mut again = first.clone();
        again.decision.id = keys::new_tracking_id(&project);
        store.apply(&[Apply::Message(&again)]).await?;
    }
    let page = store.decisions(&decisions_of(project, 100)).await?;
    assert_eq!(page.decisions.len(), 2, "{page:?}");
    let duplicate = &page.decisions[0];
    assert_eq!(duplicate.outcome, Outcome::Duplicate);
    assert_eq!(duplicate.reason.as_deref(), Some(reason::ALREADY_PROCESSED));
    assert_eq!(duplicate.conversation_id, d.conversation_id);

    // Past the cap the oldest go; the newest `cap` stay, newest first.
    let mut ids = Vec::new();
    for i in 0..(cap + 10) {
        let m = inbound(project, workflow, &format!("1555100{i:04}"), false);
        route_of(&store, &m).await?;
        ids.push(m.decision.id);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut query = decisions_of(project, 7);
    loop {
        let page = store.decisions(&query).await?;
        seen.extend(page.decisions.iter().map(|d| d.id));
        match page.after {
            Some(after) => query.after = Some(after),
            None => break,
        }
    }
    assert_eq!(seen, ids[..cap], "pages of 7 over the capped set");
    let inbox = store
        .decisions(&DecisionQuery {
            outcome: Some(Outcome::Inbox),
            message_id: None,
            ..decisions_of(project, 100)
        })
        .await?;
    assert_eq!(inbox.decisions.len(), cap);
    assert!(
        inbox
            .decisions
            .iter()
            .all(|d| d.reason.as_deref() == Some(reason::NO_TRIGGER))
    );
    Ok(())
}

/// An admission refused by the store records its decision and nothing else; a replay
/// names the original execution.
async fn refused_admissions_record_their_reason_and_write_nothing_else(
    kind: Kind<'_>,
) -> anyhow::Result<()> {
    let store = open(&kind, Duration::from_secs(3600))?;
    let (project, workflow) = (Uuid::now_v7(), Uuid::now_v7());
    let draft = |workflow| {
        let mut d = Draft::new(project, Source::Api, now_ms());
        d.workflow_id = Some(workflow);
        d
    };
    let admission = |key: &str, request: &str, draft: Draft| Admission {
        idempotency: Some((key.to_owned(), request.to_owned())),
        burst: Some((Uuid::nil(), 1)),
        conversation: None,
        decision: Some(draft),
    };
    let first = execution(project, workflow, now_ms());
    let d1 = draft(workflow);
    assert!(matches!(
        store
            .create(&first, &admission("k", "r", d1.clone()))
            .await?,
        Created::New { .. }
    ));
    // The same second as the first: its burst counter.
    let replay = execution(project, workflow, first.created_at);
    let d2 = draft(workflow);
    store
        .create(&replay, &admission("k", "r", d2.clone()))
        .await?;
    let d3 = draft(workflow);
    store
        .create(&replay, &admission("k", "other", d3.clone()))
        .await?;
    let d4 = draft(workflow);
    let limited = store
        .create(&replay, &admission("k2", "r", d4.clone()))
        .await?;
    assert_eq!(limited, Created::RateLimited);
    assert_eq!(store.get(replay.id).await?, None, "nothing written");
    let page = store.decisions(&decisions_of(project, 10)).await?;
    let got: Vec<_> = page
        .decisions
        .iter()
        .map(|d| (d.id, d.outcome, d.reason.as_deref(), d.execution_id))
        .collect();
    assert_eq!(
        got,
        [
            (d4.id, Outcome::Refused, Some(reason::RATE_LIMITED), None),
            (
                d3.id,
                Outcome::Refused,
                Some(reason::IDEMPOTENCY_KEY_REUSED),
                None
            ),
            (
                d2.id,
                Outcome::Duplicate,
                Some(reason::IDEMPOTENT_REPLAY),
                Some(first.id)
            ),
            (d1.id, Outcome::Started, None, Some(first.id)),
        ]
    );
    assert!(
        page.decisions
            .iter()
            .all(|d| d.workflow_id == Some(workflow))
    );
    Ok(())
}
