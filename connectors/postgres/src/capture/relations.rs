//! Relation bookkeeping: the schemas the server describes in Relation messages, versioned when
//! their shape changes, and the row messages turned into [`Change`]s against them.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_core::{Change, Column, Op, RelationSchema, TableId, Value};
use sluice_pgoutput::{Message, OldKind, Relation, Tuple, TupleValue};
use tokio_postgres::Client;

use crate::catalog;
use crate::error::{Error, Result};

/// The changes of one row message, and the (sub)transaction they belong to inside a streamed
/// block.
pub(super) type RowChanges = (Vec<Change>, Option<u32>);

/// The relations described so far on this stream, by relation OID.
#[derive(Default)]
pub(super) struct Relations {
    by_oid: HashMap<u32, Arc<RelationSchema>>,
}

impl Relations {
    /// Takes a Relation message: key flags are reconciled with the catalog (the stream's are
    /// those of the replica identity), and a changed shape gets the next version.
    pub(super) async fn describe(&mut self, client: &Client, r: Relation) -> Result<()> {
        let mut relation = schema(&r);
        match catalog::relation_schema(client, &relation.table).await {
            Ok(from_catalog) => catalog::reconcile(&mut relation, &from_catalog),
            Err(e) => {
                tracing::warn!(table = %relation.table, error = %e, "catalog lookup failed; using the stream's key flags")
            }
        }
        if let Some(previous) = self.by_oid.get(&r.rel_id) {
            if previous.same_shape(&relation) {
                return Ok(());
            }
            relation.version = previous.version + 1;
        }
        tracing::debug!(table = %relation.table, version = relation.version, "relation described");
        self.by_oid.insert(r.rel_id, Arc::new(relation));
        Ok(())
    }

    fn get(&self, rel_id: u32) -> Result<Arc<RelationSchema>> {
        self.by_oid.get(&rel_id).cloned().ok_or_else(|| {
            Error::protocol(format!(
                "change for relation {rel_id} before its Relation message"
            ))
        })
    }

    /// The changes a row message carries (a truncate names several relations), with the
    /// (sub)transaction the server sent them for inside a streamed block; `None` for a
    /// message that is not a row change.
    pub(super) fn changes(&self, message: &Message) -> Result<Option<RowChanges>> {
        let change = |relation, op, new, old| Change {
            relation,
            op,
            new,
            old,
        };
        let decoded = match message {
            Message::Insert(i) => {
                let relation = self.get(i.rel_id)?;
                let new = values(&relation, &i.new)?;
                (vec![change(relation, Op::Insert, Some(new), None)], i.xid)
            }
            Message::Update(u) => {
                let relation = self.get(u.rel_id)?;
                let new = values(&relation, &u.new)?;
                let old = match &u.old {
                    Some((OldKind::Key | OldKind::Full, tuple)) => Some(values(&relation, tuple)?),
                    None => None,
                };
                (vec![change(relation, Op::Update, Some(new), old)], u.xid)
            }
            Message::Delete(d) => {
                let relation = self.get(d.rel_id)?;
                let old = values(&relation, &d.old)?;
                (vec![change(relation, Op::Delete, None, Some(old))], d.xid)
            }
            Message::Truncate(t) => {
                let changes = t
                    .rel_ids
                    .iter()
                    .map(|rel_id| Ok(change(self.get(*rel_id)?, Op::Truncate, None, None)))
                    .collect::<Result<_>>()?;
                (changes, t.xid)
            }
            _ => return Ok(None),
        };
        Ok(Some(decoded))
    }
}

/// The schema a Relation message describes, at version 1. Pure.
fn schema(r: &Relation) -> RelationSchema {
    RelationSchema {
        table: TableId::new(r.namespace.clone(), r.name.clone()),
        oid: r.rel_id,
        version: 1,
        replica_identity: match r.replica_identity {
            sluice_pgoutput::ReplicaIdentity::Default => sluice_core::ReplicaIdentity::Default,
            sluice_pgoutput::ReplicaIdentity::Nothing => sluice_core::ReplicaIdentity::Nothing,
            sluice_pgoutput::ReplicaIdentity::Full => sluice_core::ReplicaIdentity::Full,
            sluice_pgoutput::ReplicaIdentity::Index => sluice_core::ReplicaIdentity::Index,
        },
        columns: r
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                type_oid: c.type_oid,
                type_modifier: c.type_modifier,
                key: c.is_key,
                nullable: true,
            })
            .collect(),
    }
}

fn values(relation: &RelationSchema, tuple: &Tuple) -> Result<Vec<Value>> {
    if tuple.columns.len() != relation.columns.len() {
        return Err(Error::protocol(format!(
            "row of {} has {} columns, its relation {}",
            relation.table,
            tuple.columns.len(),
            relation.columns.len()
        )));
    }
    tuple
        .columns
        .iter()
        .zip(&relation.columns)
        .map(|(v, column)| match v {
            TupleValue::Null => Ok(Value::Null),
            TupleValue::UnchangedToast => Ok(Value::Unchanged),
            TupleValue::Text(b) => {
                String::from_utf8(b.to_vec())
                    .map(Value::Text)
                    .map_err(|_| Error::Value {
                        table: relation.table.clone(),
                        column: column.name.clone(),
                        reason: "the value is not valid UTF-8".to_owned(),
                    })
            }
            TupleValue::Binary(_) => Err(Error::Value {
                table: relation.table.clone(),
                column: column.name.clone(),
                reason: "binary tuple data was not requested".to_owned(),
            }),
        })
        .collect()
}
