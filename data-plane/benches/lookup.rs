//! Routing-table lookups must cost the same at 1k and 1M entries (hash lookups only).
//! `cargo bench -p switchboard-data-plane --bench lookup`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard_data_plane::routing::RoutingTable;
use switchboard_data_plane::routing::table::ParsedChunk;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::routing_entry::Entry;

const PROJECT: &str = "01a214e0-e947-73ea-a4b3-c83d70da0507";
const WORKFLOW: &str = "01a214e0-e9c2-765a-b4bc-c3d00d4eb95c";

/// A table with `n` numbers, each with an active message trigger, and `n` API keys.
fn table(n: u64) -> RoutingTable {
    RoutingTable::build(1, entries(n))
}

/// The entries of [`table`].
fn entries(n: u64) -> Vec<pb::RoutingEntry> {
    let mut all = vec![pb::RoutingEntry {
        key: format!("w:{WORKFLOW}"),
        entry: Some(Entry::Workflow(pb::WorkflowRoute {
            id: WORKFLOW.into(),
            project_id: PROJECT.into(),
            status: "active".into(),
            ..Default::default()
        })),
    }];
    for i in 0..n {
        let config_id = i as i64 + 1;
        all.push(pb::RoutingEntry {
            key: format!("n:{config_id}"),
            entry: Some(Entry::Number(pb::NumberRoute {
                whatsapp_config_id: config_id,
                project_id: PROJECT.into(),
                phone_number_id: (100_000_000_000_000 + i).to_string(),
                display_phone_number: format!("+1555{i:07}"),
                ..Default::default()
            })),
        });
        let id = format!("01a214e0-0000-7000-8000-{i:012}");
        all.push(pb::RoutingEntry {
            key: format!("t:{id}"),
            entry: Some(Entry::Trigger(pb::TriggerRoute {
                id,
                workflow_id: WORKFLOW.into(),
                project_id: PROJECT.into(),
                r#type: "inbound_message".into(),
                whatsapp_config_id: Some(config_id),
                event_type: None,
            })),
        });
        let key_id = format!("01a214e0-1111-7000-8000-{i:012}");
        all.push(pb::RoutingEntry {
            key: format!("k:{key_id}"),
            entry: Some(Entry::ApiKey(pb::ApiKeyRoute {
                id: key_id,
                project_id: PROJECT.into(),
                secret_sha256: format!("{i:064x}"),
                ..Default::default()
            })),
        });
    }
    all
}

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing_lookup");
    for n in [1_000u64, 100_000, 1_000_000] {
        let t = table(n);
        let workflow = uuid::Uuid::parse_str(WORKFLOW).unwrap_or_default();
        // Probe keys spread over the table, precomputed so only the lookup is timed.
        let probes: Vec<(String, [u8; 32])> = (0..1024u64)
            .map(|j| {
                let i = (j * 7919) % n;
                let mut hash = [0u8; 32];
                hash[24..].copy_from_slice(&i.to_be_bytes());
                ((100_000_000_000_000 + i).to_string(), hash)
            })
            .collect();
        group.bench_with_input(
            BenchmarkId::new("webhook_number_then_message_trigger", n),
            &n,
            |b, _| {
                let mut j = 0;
                b.iter(|| {
                    let (pnid, _) = &probes[j % probes.len()];
                    j += 1;
                    let number = t.number(black_box(pnid));
                    black_box(number.and_then(|n| t.message_trigger(n.whatsapp_config_id)))
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("api_key_then_workflow", n), &n, |b, _| {
            let mut j = 0;
            b.iter(|| {
                let (_, hash) = &probes[j % probes.len()];
                j += 1;
                // The API path hashes the presented key itself and looks up the digest.
                let key = t.api_key_by_hash(black_box(hash));
                black_box(key.and_then(|_| t.workflow(&workflow)))
            })
        });
    }
    group.finish();
}

/// Applying a one-trigger delta (what a node does for a single catalog change).
fn deltas(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing_delta");
    group.sample_size(10);
    for n in [1_000u64, 100_000, 1_000_000] {
        let t = table(n);
        let delta = pb::Delta {
            from_version: 1,
            to_version: 2,
            upserts: vec![],
            removals: vec![format!("t:01a214e0-0000-7000-8000-{:012}", n / 2)],
        };
        group.bench_with_input(BenchmarkId::new("remove_one_trigger", n), &n, |b, _| {
            b.iter(|| black_box(t.apply(&delta)))
        });
    }
    group.finish();
}

/// Receiving a snapshot: one ~1 MiB chunk decoded and parsed, and a whole table indexed.
fn snapshots(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing_snapshot");
    let chunk = prost::Message::encode_to_vec(&pb::RoutingEntries {
        entries: entries(2_500),
    });
    group.throughput(criterion::Throughput::Bytes(chunk.len() as u64));
    group.bench_function("chunk_prost_then_parse", |b| {
        b.iter(|| {
            let decoded: pb::RoutingEntries =
                prost::Message::decode(black_box(&chunk[..])).unwrap_or_default();
            black_box(ParsedChunk::parse(decoded.entries))
        })
    });
    group.bench_function("chunk_decode", |b| {
        b.iter(|| black_box(ParsedChunk::decode(black_box(&chunk[..]))))
    });
    group.throughput(criterion::Throughput::Elements(3_000_000));
    group.sample_size(10);
    let all = entries(1_000_000);
    group.bench_function("build_1m", |b| {
        b.iter_batched(
            || all.clone(),
            |entries| black_box(RoutingTable::build(1, entries)),
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, lookups, deltas, snapshots);
criterion_main!(benches);
