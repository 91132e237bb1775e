//! The CPU part of the API trigger, without I/O: parsing and validating the request body,
//! and building the execution context.
//! `cargo bench -p switchboard-data-plane --bench api`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard_data_plane::api::{context, phone, request};
use switchboard_data_plane::routing::RoutingTable;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::routing_entry::Entry;
use uuid::Uuid;

const PROJECT: &str = "01a214e0-e947-73ea-a4b3-c83d70da0507";
const BODY: &str = r#"{"workflow_execution": {"phone_number": "+1 (234) 567-890", "phone_number_id": "106540352242922", "variables": {"name": "Ada", "order": 42}, "context": {"source": "bench"}, "initial_data": {"cart": [1, 2, 3]}}}"#;

fn table() -> RoutingTable {
    RoutingTable::build(
        1,
        [pb::RoutingEntry {
            key: "n:7".into(),
            entry: Some(Entry::Number(pb::NumberRoute {
                whatsapp_config_id: 7,
                project_id: PROJECT.into(),
                phone_number_id: "106540352242922".into(),
                display_phone_number: "+15550000000".into(),
                is_default: true,
                ..Default::default()
            })),
        }],
    )
}

fn bench(c: &mut Criterion) {
    let table = table();
    let project = Uuid::parse_str(PROJECT).unwrap_or_default();
    let origin = |id| context::Origin {
        tracking_id: id,
        workflow_id: project,
        api_key_id: Some(project),
        request_ip: "127.0.0.1",
        request_timestamp: "2026-11-26T01:02:03.456Z",
        test: false,
        // The default number binds the execution to a conversation (a placeholder here).
        conversation_id: Some("5b0e8e0b8a1f4c7e9d2a6b3c4d5e6f70"),
    };
    c.bench_function("api_trigger/phone_normalize", |b| {
        b.iter(|| phone::normalize(black_box("+1 (234) 567-890")))
    });
    c.bench_function("api_trigger/parse_and_validate", |b| {
        b.iter(|| {
            let body = request::parse_http(black_box(BODY.as_bytes())).ok()?;
            request::resolve(body, &table, &project)
                .ok()
                .map(|call| call.phone_number.map_or(0, |p| p.len()))
        })
    });
    c.bench_function("api_trigger/parse_validate_context_serialize", |b| {
        b.iter(|| {
            let body = request::parse_http(black_box(BODY.as_bytes())).ok()?;
            let call = request::resolve(body, &table, &project).ok()?;
            Some(context::api_call(&call, &origin(project)).len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
