//! Replication frames captured from a real walsender (`fixtures/frames.hex`).

use std::time::{Duration, UNIX_EPOCH};

use bytes::BytesMut;
use sluice_core::Lsn;
use sluice_pgoutput::time::pg_micros_to_system_time;
use sluice_pgoutput::{
    Frame, Message, StatusUpdate, decode_frame, decode_message, encode_status_update,
};

use crate::fixtures::{V1_TEXT, frames, messages};

#[test]
fn xlogdata_carries_the_same_messages_as_the_sql_interface() {
    let frames = frames();
    let sql: Vec<_> = messages(V1_TEXT);
    let mut xlog = Vec::new();
    let mut keepalives = 0;
    for f in frames {
        match decode_frame(f).expect("captured frame decodes") {
            Frame::XLogData(x) => {
                assert!(x.wal_start <= x.wal_end || x.wal_start == Lsn::ZERO);
                let sent = pg_micros_to_system_time(x.send_time).expect("valid time");
                // captured in 2026: sanity that the epoch is applied
                assert!(sent > UNIX_EPOCH + Duration::from_secs(1_700_000_000));
                xlog.push(x);
            }
            Frame::PrimaryKeepalive(k) => {
                assert!(!k.wal_end.is_zero());
                assert!(!k.reply_requested);
                keepalives += 1;
            }
        }
    }
    assert_eq!(xlog.len(), 7);
    assert_eq!(keepalives, 4);
    for (x, (_, bytes)) in xlog.iter().zip(&sql) {
        // byte for byte what pg_logical_slot_peek_binary_changes returned
        assert_eq!(&x.data, bytes);
    }
    let m: Vec<Message> = xlog
        .iter()
        .map(|x| decode_message(x.data.clone()).expect("message decodes"))
        .collect();
    let Message::Begin(b) = &m[0] else {
        panic!("expected Begin, got {:?}", m[0]);
    };
    assert_eq!(xlog[0].wal_start, b.final_lsn.min(xlog[0].wal_start));
    // Type and Relation messages have no WAL position of their own
    assert!(matches!(m[1], Message::Type(_)));
    assert_eq!(xlog[1].wal_start, Lsn::ZERO);
    assert!(matches!(m[2], Message::Relation(_)));
    assert_eq!(xlog[2].wal_start, Lsn::ZERO);
    let Message::Commit(c) = &m[5] else {
        panic!("expected Commit, got {:?}", m[5]);
    };
    assert_eq!(c.commit_lsn, b.final_lsn);
}

#[test]
fn status_update_matches_what_the_server_accepted() {
    // the capture script sent exactly this update (all zero, reply requested) and the server
    // answered with a keepalive
    let mut out = BytesMut::new();
    encode_status_update(
        &StatusUpdate {
            write: Lsn::ZERO,
            flush: Lsn::ZERO,
            apply: Lsn::ZERO,
            client_time: 0,
            reply_requested: true,
        },
        &mut out,
    );
    let mut want = vec![b'r'];
    want.extend_from_slice(&[0; 32]);
    want.push(1);
    assert_eq!(&out[..], &want[..]);
}
