//! Append and read-back throughput of the local change log, in bytes (MB/s) and records.
//!
//! Rows are shaped like the shared workload's `orders` table (`shared/bench/workload.sql`):
//! ten columns with a 100-character note and a small jsonb payload, about 250 bytes encoded.
//! Two shapes of append, each one `append` call (one fsync):
//!
//! - `oltp`: 100 stream transactions of 10 row changes (small commits, many per batch);
//! - `bulk`: 100 transactions of 1000 row changes (snapshot chunks, large transactions).
//!
//! Read-back reads the `bulk` log from the start through a reader in the writer's process.
//! Figures depend on the disk's fsync latency; run `cargo bench -p sluice-log-local`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_core::{
    Change, ChangeLogReader, ChangeLogWriter, Column, LogPosition, LogRecord, Lsn, Op,
    RelationSchema, ReplicaIdentity, TableId, Transaction, TxnKind, Value, encode_record,
};
use sluice_log_local::{LocalLog, LogOptions};

fn orders() -> Arc<RelationSchema> {
    let col = |name: &str, type_oid: u32, key: bool| Column {
        name: name.into(),
        type_oid,
        type_modifier: -1,
        key,
        nullable: !key,
    };
    Arc::new(RelationSchema {
        table: TableId::new("public", "orders"),
        oid: 16400,
        version: 1,
        replica_identity: ReplicaIdentity::Default,
        columns: vec![
            col("id", 20, true),
            col("customer_id", 20, false),
            col("product_id", 20, false),
            col("qty", 23, false),
            col("price", 1700, false),
            col("status", 25, false),
            col("created_at", 1184, false),
            col("updated_at", 1184, false),
            col("note", 25, false),
            col("payload", 3802, false),
        ],
    })
}

fn row(i: u64) -> Vec<Value> {
    let note = format!(
        "order {i} note: lorem ipsum dolor sit amet lorem ipsum dolor sit amet lorem ipsum dolor sit amet lorem"
    );
    vec![
        i.to_string().into(),
        ((i * 7919) % 100_000 + 1).to_string().into(),
        ((i * 104_729) % 50_000 + 1).to_string().into(),
        (i % 10 + 1).to_string().into(),
        format!("{}.{:02}", (i * 37) % 1000, i % 100).into(),
        ["new", "paid", "shipped", "delivered", "cancelled"][(i % 5) as usize].into(),
        "2024-01-01 00:00:00.123456+00".into(),
        "2024-01-02 00:00:00.123456+00".into(),
        Value::Text(note[..100.min(note.len())].to_owned()),
        format!(
            "{{\"v\": {}, \"gift\": false, \"channel\": \"web\"}}",
            i % 7
        )
        .into(),
    ]
}

fn batch(txns: u64, changes: u64, start: u64) -> Vec<LogRecord> {
    let rel = orders();
    (0..txns)
        .map(|t| {
            let n = start + t;
            LogRecord::Transaction(Transaction {
                kind: TxnKind::Stream,
                xid: n as u32,
                commit_lsn: Lsn(n * 1000),
                end_lsn: Lsn(n * 1000 + 40),
                commit_ts: 1_700_000_000_000_000,
                changes: (0..changes)
                    .map(|c| Change {
                        relation: rel.clone(),
                        op: Op::Insert,
                        new: Some(row(n * changes + c)),
                        old: None,
                    })
                    .collect(),
            })
        })
        .collect()
}

fn encoded_bytes(records: &[LogRecord]) -> u64 {
    let mut buf = Vec::new();
    for r in records {
        encode_record(r, &mut buf);
    }
    // plus the 16-byte frame of each record
    (buf.len() + 16 * records.len()) as u64
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (name, txns, changes) in [("oltp_100x10", 100, 10), ("bulk_100x1000", 100, 1000)] {
        let records = batch(txns, changes, 0);
        let bytes = encoded_bytes(&records);
        eprintln!("append/{name}: {txns} records, {bytes} bytes per append");
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let tmp = tempfile::tempdir().expect("tempdir");
                    let mut log = LocalLog::open(LogOptions::new(tmp.path()))
                        .await
                        .expect("opens");
                    let mut reader = log.reader();
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        log.append(black_box(&records)).await.expect("appends");
                        spent += start.elapsed();
                        // keep the disk footprint flat; not measured
                        let end = LogPosition::single("0", log.next_offset());
                        reader.release(&end).await.expect("releases");
                    }
                    spent
                })
            });
        });
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (log, bytes, count) = rt.block_on(async {
        let mut log = LocalLog::open(LogOptions::new(tmp.path()))
            .await
            .expect("opens");
        let mut bytes = 0;
        for i in 0..4 {
            let records = batch(100, 1000, i * 100);
            bytes += encoded_bytes(&records);
            log.append(&records).await.expect("appends");
        }
        let count = log.next_offset();
        (log, bytes, count)
    });
    eprintln!("read/bulk: {count} records, {bytes} bytes");
    let mut group = c.benchmark_group("read");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("bulk_400x1000", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut reader = log.reader();
                let mut n = 0;
                while n < count {
                    let got = reader.read(8 << 20, Duration::ZERO).await.expect("reads");
                    n += got.len() as u64;
                    black_box(got);
                }
            })
        });
    });
    group.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
