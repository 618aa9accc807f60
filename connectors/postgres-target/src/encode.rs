//! Rows into the binary COPY stream of the staging table.
//!
//! Format (PostgreSQL's `COPY ... (FORMAT binary)`): the header `PGCOPY\n\377\r\n\0`, a 32-bit
//! flags field (0) and a 32-bit header extension length (0); then per row a 16-bit field
//! count and per field a 32-bit length (`-1` for NULL) followed by that many bytes; then the
//! trailer, a 16-bit `-1`. All integers are big-endian.
//!
//! The staging table's data columns are `text`, whose binary form is the UTF-8 bytes: each
//! value is written exactly as the source printed it, and the MERGE casts it to the column's
//! type. Then come `_sluice_op` (text `U` or `D`), `_sluice_lsn` and `_sluice_commit_ts`
//! (`int8`: 8 bytes) and `_sluice_unchanged` (text, one `0`/`1` per column; NULL when no value
//! is an unchanged TOAST value), then one text field per key column holding the old key of a
//! moved row ([`sluice_core::Row::moved_from`]; NULL for other rows).

use bytes::{BufMut as _, BytesMut};
use sluice_core::{Row, RowOp, Value};
use sluice_sql::{PgTarget, Postgres, SqlDialect as _, TargetColumn};

/// The signature, flags and header extension length.
pub(crate) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The file trailer: a field count of -1.
pub(crate) const TRAILER: &[u8] = &[0xff, 0xff];

/// Staging columns after the data columns: op, LSN, commit time, unchanged marker.
const META_FIELDS: usize = 4;

/// Why a row cannot be staged: the column position and the reason (never the value).
pub(crate) type EncodeError = (usize, String);

fn text_field(out: &mut BytesMut, bytes: &[u8]) -> Result<(), String> {
    let len = i32::try_from(bytes.len()).map_err(|_| {
        format!(
            "a value of {} bytes is longer than COPY can carry",
            bytes.len()
        )
    })?;
    out.put_i32(len);
    out.put_slice(bytes);
    Ok(())
}

/// Appends one row of the staging table to `out`. On failure nothing of the row is kept.
pub(crate) fn stage_row(
    row: &Row,
    columns: &[TargetColumn<PgTarget>],
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if row.values.len() > columns.len() {
        return Err((
            columns.len(),
            format!(
                "row has {} values but the relation has {} columns",
                row.values.len(),
                columns.len()
            ),
        ));
    }
    let keys: Vec<(usize, &TargetColumn<PgTarget>)> =
        columns.iter().enumerate().filter(|(_, c)| c.key).collect();
    if let Some(from) = &row.moved_from
        && from.len() != keys.len()
    {
        return Err((
            columns.len(),
            format!(
                "a moved row has {} old key values but the relation has {} key columns",
                from.len(),
                keys.len()
            ),
        ));
    }
    let fields = i16::try_from(columns.len() + META_FIELDS + keys.len()).map_err(|_| {
        (
            0,
            format!("{} columns are more than COPY can carry", columns.len()),
        )
    })?;
    let start = out.len();
    let result = (|| {
        out.put_i16(fields);
        let mut unchanged = vec![b'0'; columns.len()];
        let mut any_unchanged = false;
        for (i, column) in columns.iter().enumerate() {
            let value = row.values.get(i).unwrap_or(&Value::Null);
            match value {
                // A delete needs only its key; other values of the old image are not loaded.
                Value::Text(_) if row.op == RowOp::Delete && !column.key => out.put_i32(-1),
                Value::Text(text) => {
                    if text.contains('\0') {
                        return Err((i, "text contains a NUL character".to_owned()));
                    }
                    if let Some(reason) = Postgres.reject(&column.ty, text) {
                        return Err((i, reason));
                    }
                    text_field(out, text.as_bytes()).map_err(|e| (i, e))?;
                }
                Value::Null => out.put_i32(-1),
                Value::Unchanged => {
                    unchanged[i] = b'1';
                    any_unchanged = true;
                    out.put_i32(-1);
                }
            }
        }
        let op: &[u8] = match row.op {
            RowOp::Upsert => b"U",
            RowOp::Delete => b"D",
        };
        text_field(out, op).map_err(|e| (columns.len(), e))?;
        out.put_i32(8);
        // Bit for bit as a signed 64-bit number, like the target's `_sluice_lsn`.
        out.put_i64(row.lsn.0 as i64);
        out.put_i32(8);
        out.put_i64(row.commit_ts);
        if any_unchanged {
            text_field(out, &unchanged).map_err(|e| (columns.len(), e))?;
        } else {
            out.put_i32(-1);
        }
        for (j, &(i, column)) in keys.iter().enumerate() {
            match row.moved_from.as_ref().map(|from| &from[j]) {
                Some(Value::Text(text)) => {
                    if text.contains('\0') {
                        return Err((i, "text contains a NUL character".to_owned()));
                    }
                    if let Some(reason) = Postgres.reject(&column.ty, text) {
                        return Err((i, reason));
                    }
                    text_field(out, text.as_bytes()).map_err(|e| (i, e))?;
                }
                _ => out.put_i32(-1),
            }
        }
        Ok(())
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

#[cfg(test)]
mod tests {
    use sluice_core::Lsn;

    use super::*;

    fn columns() -> Vec<TargetColumn<PgTarget>> {
        vec![
            TargetColumn {
                name: "id".into(),
                ty: PgTarget::BigInt,
                key: true,
            },
            TargetColumn {
                name: "v".into(),
                ty: PgTarget::Text,
                key: false,
            },
        ]
    }

    #[test]
    fn header_and_trailer() {
        assert_eq!(HEADER.len(), 11 + 4 + 4);
        assert_eq!(&HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(TRAILER, (-1i16).to_be_bytes());
    }

    #[test]
    fn rows() {
        let mut out = BytesMut::new();
        let row = Row {
            op: RowOp::Upsert,
            values: vec![Value::from("7"), Value::Unchanged],
            lsn: Lsn(0x10),
            commit_ts: 5,
            moved_from: None,
        };
        stage_row(&row, &columns(), &mut out).expect("encodes");
        let mut want = Vec::new();
        want.extend(7i16.to_be_bytes());
        want.extend(1i32.to_be_bytes());
        want.extend(b"7");
        want.extend((-1i32).to_be_bytes());
        want.extend(1i32.to_be_bytes());
        want.extend(b"U");
        want.extend(8i32.to_be_bytes());
        want.extend(16i64.to_be_bytes());
        want.extend(8i32.to_be_bytes());
        want.extend(5i64.to_be_bytes());
        want.extend(2i32.to_be_bytes());
        want.extend(b"01");
        want.extend((-1i32).to_be_bytes());
        assert_eq!(&out[..], &want[..]);

        // A moved row carries its old key after the marker.
        let mut moved_out = BytesMut::new();
        let moved = Row {
            moved_from: Some(vec![Value::from("3")]),
            ..row.clone()
        };
        stage_row(&moved, &columns(), &mut moved_out).expect("encodes");
        let mut want_moved = want[..want.len() - 4].to_vec();
        want_moved.extend(1i32.to_be_bytes());
        want_moved.extend(b"3");
        assert_eq!(&moved_out[..], &want_moved[..]);

        // A delete carries only its key; no unchanged marker.
        let mut out = BytesMut::new();
        let delete = Row {
            op: RowOp::Delete,
            values: vec![Value::from("7"), Value::from("old")],
            lsn: Lsn(1),
            commit_ts: 0,
            moved_from: None,
        };
        stage_row(&delete, &columns(), &mut out).expect("encodes");
        assert_eq!(&out[7..11], &(-1i32).to_be_bytes());
        assert_eq!(&out[out.len() - 4..], &(-1i32).to_be_bytes());
    }

    #[test]
    fn failures_name_the_column_and_leave_nothing() {
        let mut out = BytesMut::from(&b"x"[..]);
        let row = Row {
            op: RowOp::Upsert,
            values: vec![Value::from("1"), Value::from("a\0b")],
            lsn: Lsn(1),
            commit_ts: 0,
            moved_from: None,
        };
        let (i, _) = stage_row(&row, &columns(), &mut out).expect_err("NUL");
        assert_eq!(i, 1);
        assert_eq!(&out[..], b"x");
        let long = Row {
            op: RowOp::Upsert,
            values: vec![Value::from("1"), Value::from("a"), Value::from("b")],
            lsn: Lsn(1),
            commit_ts: 0,
            moved_from: None,
        };
        assert!(stage_row(&long, &columns(), &mut out).is_err());
    }
}
