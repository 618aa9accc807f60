//! Protocol version 2 streamed transactions, from `fixtures/v2_stream.hex`.

use std::collections::{BTreeMap, BTreeSet};

use sluice_pgoutput::{
    DecodeError, Message, MessageDecoder, ReplicaIdentity, StreamAbort, decode_message,
    decode_streamed_message,
};

use crate::fixtures::{V2_STREAM, messages};

#[test]
fn streamed_blocks_carry_the_xid() {
    let mut dec = MessageDecoder::new();
    let mut current: Option<u32> = None;
    let mut seen_first = Vec::new();
    let (mut starts, mut stops, mut inserts, mut aborts, mut commits) = (0, 0, 0, 0, 0);
    let mut abort_msgs = Vec::new();
    // xids seen on changes, per streamed (top-level) transaction: a change made in a
    // subtransaction carries the subtransaction's xid
    let mut change_xids: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    let mut note = |top: Option<u32>, xid: Option<u32>| {
        let Some(top) = top else {
            assert_eq!(xid, None, "a change outside a streamed block has no xid");
            return;
        };
        let xid = xid.expect("a streamed change carries its xid");
        assert!(xid >= top, "subtransactions get later xids");
        change_xids.entry(top).or_default().insert(xid);
    };
    for (lsn, bytes) in messages(V2_STREAM) {
        let was_in_stream = dec.in_stream();
        let m = dec
            .decode(bytes)
            .unwrap_or_else(|e| panic!("message at {lsn} failed: {e}"));
        match m {
            Message::StreamStart(s) => {
                assert!(!was_in_stream);
                assert_eq!(s.first_segment, !seen_first.contains(&s.xid));
                seen_first.push(s.xid);
                current = Some(s.xid);
                starts += 1;
            }
            Message::StreamStop => {
                assert!(was_in_stream);
                current = None;
                stops += 1;
            }
            Message::Relation(r) => {
                note(current, r.xid);
                assert_eq!(r.name, "nokey");
                assert_eq!(r.replica_identity, ReplicaIdentity::Nothing);
            }
            Message::Insert(i) => {
                note(current, i.xid);
                assert_eq!(i.new.len(), 2);
                inserts += 1;
            }
            Message::StreamAbort(a) => {
                assert!(!was_in_stream);
                abort_msgs.push(a);
                aborts += 1;
            }
            Message::StreamCommit(c) => {
                assert!(!was_in_stream);
                assert_eq!(c.xid, seen_first[0]);
                assert_eq!(c.flags, 0);
                assert!(c.commit_lsn < c.end_lsn);
                assert_eq!(lsn, c.end_lsn);
                commits += 1;
            }
            Message::Begin(_) | Message::Commit(_) => assert!(!was_in_stream),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((starts, stops, commits, aborts), (9, 9, 1, 2));
    assert_eq!(inserts, 9 * 3 + 1);
    assert!(!dec.in_stream());
    // a subtransaction abort names the subxact; a whole-transaction abort repeats the xid
    let [sub, whole] = abort_msgs[..] else {
        panic!("two aborts expected");
    };
    assert_eq!(sub.xid, seen_first[0]);
    assert_ne!(sub.subxid, sub.xid);
    assert!(change_xids[&sub.xid].contains(&sub.subxid));
    assert!(change_xids[&sub.xid].contains(&sub.xid));
    assert_eq!(change_xids[&whole.xid], BTreeSet::from([whole.xid]));
    assert_eq!(
        whole,
        StreamAbort {
            xid: whole.xid,
            subxid: whole.xid,
            abort_position: None
        }
    );
}

#[test]
fn streamed_messages_need_the_streamed_decoder() {
    let msgs = messages(V2_STREAM);
    let (_, insert) = msgs
        .iter()
        .find(|(_, b)| b[0] == b'I')
        .expect("a streamed insert");
    assert!(matches!(
        decode_streamed_message(insert.clone()),
        Ok(Message::Insert(i)) if i.xid.is_some()
    ));
    // without the xid the rel_id is misread and the 'N' marker is not where expected
    assert!(matches!(
        decode_message(insert.clone()),
        Err(DecodeError::UnexpectedTupleMarker { offset: 5, .. })
    ));
}
