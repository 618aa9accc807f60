//! Decoding throughput of a stream of Insert and Update messages, in messages per second.
//!
//! The stream repeats the real Insert and Update messages captured in
//! `tests/fixtures/v1_text.hex` (7-column rows with text, numeric, enum and bytea values, NULLs,
//! an unchanged TOAST column, old key and full old tuples), each wrapped in an XLogData frame,
//! so one iteration decodes a frame and the message inside it, as the capture loop does.

use std::hint::black_box;

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_pgoutput::{Frame, Message, decode_frame, decode_message};

const FIXTURE: &str = include_str!("../tests/fixtures/v1_text.hex");
const STREAM_LEN: usize = 10_000;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("fixture is valid hex"))
        .collect()
}

fn frames() -> Vec<Bytes> {
    let changes: Vec<Vec<u8>> = FIXTURE
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(_, hex)| unhex(hex))
        .filter(|m| matches!(m.first(), Some(b'I' | b'U')))
        .collect();
    assert!(
        !changes.is_empty(),
        "fixture has Insert and Update messages"
    );
    changes
        .iter()
        .cycle()
        .take(STREAM_LEN)
        .enumerate()
        .map(|(i, m)| {
            let mut f = BytesMut::with_capacity(25 + m.len());
            f.put_u8(b'w');
            f.put_u64(i as u64);
            f.put_u64(i as u64);
            f.put_i64(0);
            f.put_slice(m);
            f.freeze()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("insert_update_stream", |b| {
        b.iter(|| {
            let mut columns = 0usize;
            for f in &frames {
                let Ok(Frame::XLogData(x)) = decode_frame(f.clone()) else {
                    panic!("fixture frame decodes");
                };
                match decode_message(x.data) {
                    Ok(Message::Insert(i)) => columns += i.new.len(),
                    Ok(Message::Update(u)) => columns += u.new.len(),
                    other => panic!("unexpected {other:?}"),
                }
            }
            black_box(columns)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
