//! Protocol version 1, text and binary tuple formats, from `fixtures/v1_*.hex`.

use bytes::Bytes;
use sluice_core::Lsn;
use sluice_pgoutput::time::pg_to_unix_micros;
use sluice_pgoutput::{
    Begin, Commit, Delete, Insert, LogicalMessage, Message, OldKind, Origin, Relation,
    RelationColumn, ReplicaIdentity, Truncate, TupleValue, TypeMessage, Update,
};

use crate::fixtures::{V1_BINARY, V1_TEXT, decoded_v1, text};

const INT4: u32 = 23;
const TEXT: u32 = 25;
const NUMERIC: u32 = 1700;
const VARCHAR: u32 = 1043;
const BYTEA: u32 = 17;

fn msgs() -> Vec<Message> {
    decoded_v1(V1_TEXT).into_iter().map(|(_, m)| m).collect()
}

fn relation(msgs: &[Message], name: &str) -> Relation {
    msgs.iter()
        .find_map(|m| match m {
            Message::Relation(r) if r.name == name => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Relation message for {name}"))
}

fn col(name: &str, type_oid: u32, type_modifier: i32, is_key: bool) -> RelationColumn {
    RelationColumn {
        is_key,
        name: name.to_owned(),
        type_oid,
        type_modifier,
    }
}

fn changes_of(msgs: &[Message], rel_id: u32) -> Vec<Message> {
    msgs.iter()
        .filter(|m| match m {
            Message::Insert(i) => i.rel_id == rel_id,
            Message::Update(u) => u.rel_id == rel_id,
            Message::Delete(d) => d.rel_id == rel_id,
            _ => false,
        })
        .cloned()
        .collect()
}

#[test]
fn transactions_are_framed_by_begin_and_commit() {
    let decoded = decoded_v1(V1_TEXT);
    let mut open: Option<Begin> = None;
    let mut commits = 0;
    for (row_lsn, m) in &decoded {
        match m {
            Message::Begin(b) => {
                assert!(open.is_none(), "nested Begin");
                assert!(b.xid > 0);
                open = Some(*b);
            }
            Message::Commit(c) => {
                let b = open.take().expect("Commit without Begin");
                assert_eq!(c.flags, 0);
                assert_eq!(c.commit_lsn, b.final_lsn);
                assert_eq!(c.commit_ts, b.commit_ts);
                assert!(c.commit_lsn < c.end_lsn, "{} < {}", c.commit_lsn, c.end_lsn);
                // the slot reports a commit at its end position
                assert_eq!(*row_lsn, c.end_lsn);
                commits += 1;
            }
            Message::Message(lm) if !lm.transactional => assert!(open.is_none()),
            _ => assert!(open.is_some(), "{m:?} outside a transaction"),
        }
    }
    assert!(open.is_none());
    assert_eq!(commits, 18);
    let tags: Vec<u8> = crate::fixtures::messages(V1_TEXT)
        .iter()
        .map(|(_, b)| b[0])
        .collect();
    for tag in b"BCORYIUDTM" {
        assert!(tags.contains(tag), "fixture lacks tag {}", *tag as char);
    }
}

#[test]
fn first_transaction_type_relation_and_inserts() {
    let m = msgs();
    assert_eq!(
        m[0],
        Message::Begin(Begin {
            final_lsn: Lsn(0x193_F0C0),
            commit_ts: 0x0003_03d4_b1b7_0a57,
            xid: 739
        })
    );
    let Message::Type(ty) = &m[1] else {
        panic!("expected Type, got {:?}", m[1]);
    };
    assert_eq!(
        ty,
        &TypeMessage {
            xid: None,
            type_oid: 16386,
            namespace: "public".into(),
            name: "mood".into()
        }
    );
    let Message::Relation(items) = &m[2] else {
        panic!("expected Relation, got {:?}", m[2]);
    };
    assert_eq!(items.xid, None);
    assert_eq!(items.rel_id, 16393);
    assert_eq!(items.namespace, "public");
    assert_eq!(items.name, "items");
    assert_eq!(items.replica_identity, ReplicaIdentity::Default);
    assert_eq!(
        items.columns,
        vec![
            col("id", INT4, -1, true),
            col("name", TEXT, -1, false),
            col("qty", INT4, -1, false),
            // numeric(10,2): ((10 << 16) | 2) + VARHDRSZ
            col("price", NUMERIC, (10 << 16 | 2) + 4, false),
            col("note", VARCHAR, 20 + 4, false),
            col("mood", ty.type_oid, -1, false),
            col("data", BYTEA, -1, false),
        ]
    );
    assert_eq!(
        m[3],
        Message::Insert(Insert {
            xid: None,
            rel_id: items.rel_id,
            new: sluice_pgoutput::Tuple {
                columns: vec![
                    text("1"),
                    text("apple"),
                    text("10"),
                    text("1.50"),
                    text("red"),
                    text("happy"),
                    text("\\x00ff10"),
                ]
            }
        })
    );
    let Message::Insert(nulls) = &m[4] else {
        panic!("expected Insert, got {:?}", m[4]);
    };
    assert_eq!(nulls.new.get(0), Some(&text("2")));
    assert_eq!(nulls.new.len(), 7);
    assert!(nulls.new.columns[1..].iter().all(TupleValue::is_null));
}

#[test]
fn updates_and_deletes_with_default_identity() {
    let m = msgs();
    let items = relation(&m, "items");
    let changes = changes_of(&m, items.rel_id);
    // insert, insert, update (no key change), update (key change), delete, insert (origin)
    assert_eq!(changes.len(), 6);
    let Message::Update(Update { old: None, new, .. }) = &changes[2] else {
        panic!("expected Update without old tuple, got {:?}", changes[2]);
    };
    assert_eq!(new.get(0), Some(&text("1")));
    assert_eq!(new.get(2), Some(&text("11")));

    let Message::Update(Update {
        old: Some((OldKind::Key, old)),
        new,
        ..
    }) = &changes[3]
    else {
        panic!("expected Update with old key, got {:?}", changes[3]);
    };
    assert_eq!(old.get(0), Some(&text("2")));
    assert!(old.columns[1..].iter().all(TupleValue::is_null));
    assert_eq!(new.get(0), Some(&text("3")));

    let Message::Delete(Delete {
        old_kind: OldKind::Key,
        old,
        ..
    }) = &changes[4]
    else {
        panic!("expected Delete with key, got {:?}", changes[4]);
    };
    assert_eq!(old.get(0), Some(&text("3")));
    assert!(old.columns[1..].iter().all(TupleValue::is_null));
}

#[test]
fn full_identity_sends_whole_old_rows() {
    let m = msgs();
    let full = relation(&m, "full_t");
    assert_eq!(full.replica_identity, ReplicaIdentity::Full);
    // with identity full, every column is part of the key
    assert!(full.columns.iter().all(|c| c.is_key));
    let changes = changes_of(&m, full.rel_id);
    assert_eq!(changes.len(), 3);
    assert_eq!(
        changes[1],
        Message::Update(Update {
            xid: None,
            rel_id: full.rel_id,
            old: Some((
                OldKind::Full,
                sluice_pgoutput::Tuple {
                    columns: vec![text("1"), text("one")]
                }
            )),
            new: sluice_pgoutput::Tuple {
                columns: vec![text("1"), text("uno")]
            },
        })
    );
    assert_eq!(
        changes[2],
        Message::Delete(Delete {
            xid: None,
            rel_id: full.rel_id,
            old_kind: OldKind::Full,
            old: sluice_pgoutput::Tuple {
                columns: vec![text("1"), text("uno")]
            },
        })
    );
}

#[test]
fn replica_identity_nothing_and_index() {
    let m = msgs();
    let nokey = relation(&m, "nokey");
    assert_eq!(nokey.replica_identity, ReplicaIdentity::Nothing);
    assert!(nokey.columns.iter().all(|c| !c.is_key));

    let idx = relation(&m, "idx_t");
    assert_eq!(idx.replica_identity, ReplicaIdentity::Index);
    assert_eq!(
        idx.columns,
        vec![col("a", INT4, -1, true), col("b", TEXT, -1, false)]
    );
    let changes = changes_of(&m, idx.rel_id);
    let Message::Update(Update {
        old: Some((OldKind::Key, old)),
        new,
        ..
    }) = &changes[1]
    else {
        panic!("expected Update with old key, got {:?}", changes[1]);
    };
    assert_eq!(old.columns, vec![text("5"), TupleValue::Null]);
    assert_eq!(new.columns, vec![text("6"), text("five")]);
}

#[test]
fn unchanged_toast_is_not_null() {
    let m = msgs();
    let toasty = relation(&m, "toasty");
    let changes = changes_of(&m, toasty.rel_id);
    let Message::Insert(ins) = &changes[0] else {
        panic!("expected Insert, got {:?}", changes[0]);
    };
    let big = ins
        .new
        .get(1)
        .and_then(TupleValue::as_text)
        .expect("big text");
    assert_eq!(big.len(), 16_000);
    assert!(big.iter().all(u8::is_ascii_hexdigit));
    let Message::Update(up) = &changes[1] else {
        panic!("expected Update, got {:?}", changes[1]);
    };
    assert_eq!(up.old, None);
    assert_eq!(
        up.new.columns,
        vec![text("1"), TupleValue::UnchangedToast, text("2")]
    );
}

#[test]
fn truncate_options_and_relations() {
    let m = msgs();
    let parent = relation(&m, "parent").rel_id;
    let child = relation(&m, "child").rel_id;
    let nokey = relation(&m, "nokey").rel_id;
    let truncates: Vec<&Truncate> = m
        .iter()
        .filter_map(|m| match m {
            Message::Truncate(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(
        truncates,
        vec![
            &Truncate {
                xid: None,
                cascade: true,
                restart_identity: true,
                rel_ids: vec![parent, child]
            },
            &Truncate {
                xid: None,
                cascade: false,
                restart_identity: false,
                rel_ids: vec![nokey]
            }
        ]
    );
}

#[test]
fn logical_messages() {
    let decoded = decoded_v1(V1_TEXT);
    let lms: Vec<(Lsn, &LogicalMessage)> = decoded
        .iter()
        .filter_map(|(lsn, m)| match m {
            Message::Message(lm) => Some((*lsn, lm)),
            _ => None,
        })
        .collect();
    assert_eq!(
        lms,
        vec![
            (
                Lsn(0x194_5920),
                &LogicalMessage {
                    xid: None,
                    transactional: true,
                    lsn: Lsn(0x194_5920),
                    prefix: "sluice".into(),
                    content: Bytes::from_static(b"transactional content"),
                }
            ),
            (
                Lsn(0x194_5998),
                &LogicalMessage {
                    xid: None,
                    transactional: false,
                    lsn: Lsn(0x194_5998),
                    prefix: "sluice.nontx".into(),
                    content: Bytes::from_static(&[0x00, 0x01, 0xfe]),
                }
            ),
        ]
    );
}

#[test]
fn origin_follows_begin() {
    let m = msgs();
    let i = m
        .iter()
        .position(|m| matches!(m, Message::Origin(_)))
        .expect("an Origin message");
    let Message::Begin(begin) = &m[i - 1] else {
        panic!("Origin must follow Begin, got {:?}", m[i - 1]);
    };
    assert_eq!(
        m[i],
        Message::Origin(Origin {
            commit_lsn: Lsn(0x1234_ABCD),
            name: "upstream_a".into()
        })
    );
    // pg_replication_origin_xact_setup('0/1234ABCD', '2024-01-02 03:04:05+00')
    assert_eq!(
        pg_to_unix_micros(begin.commit_ts),
        Some(1_704_164_645_000_000)
    );
    let Message::Insert(ins) = &m[i + 1] else {
        panic!("expected Insert after Origin, got {:?}", m[i + 1]);
    };
    assert_eq!(ins.new.get(1), Some(&text("from origin")));
    assert!(matches!(m[i + 2], Message::Commit(Commit { .. })));
}

#[test]
fn binary_format_tuples() {
    let text_msgs = msgs();
    let bin: Vec<Message> = decoded_v1(V1_BINARY).into_iter().map(|(_, m)| m).collect();
    assert_eq!(bin.len(), text_msgs.len());
    // schema messages do not depend on the tuple format
    assert_eq!(relation(&bin, "items"), relation(&text_msgs, "items"));
    let Message::Insert(ins) = &bin[3] else {
        panic!("expected Insert, got {:?}", bin[3]);
    };
    let b = |s: &'static [u8]| TupleValue::Binary(Bytes::from_static(s));
    assert_eq!(
        ins.new.columns,
        vec![
            b(&[0, 0, 0, 1]),
            b(b"apple"),
            b(&[0, 0, 0, 10]),
            // numeric 1.50: ndigits 2, weight 0, sign +, dscale 2, digits 1, 5000
            b(&[0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88]),
            b(b"red"),
            b(b"happy"),
            b(&[0x00, 0xff, 0x10]),
        ]
    );
    // NULLs and unchanged TOAST keep their own kinds in binary mode
    let toasty = relation(&bin, "toasty").rel_id;
    let up = changes_of(&bin, toasty)
        .into_iter()
        .find_map(|m| match m {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .expect("toast update");
    assert_eq!(up.new.columns[1], TupleValue::UnchangedToast);
}
