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

use std::borrow::Cow;

use bytes::{BufMut as _, BytesMut};
use sluice_sql::{PgTarget, Postgres, SqlDialect as _};
use sluice_warehouse::StagedRow;

/// The signature, flags and header extension length.
pub(crate) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The file trailer: a field count of -1.
pub(crate) const TRAILER: &[u8] = &[0xff, 0xff];

/// Staging columns after the data columns: op, LSN, commit time, unchanged marker.
const META_FIELDS: usize = 4;

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

/// The source's text as the staging table takes it ([`sluice_warehouse::staging::Encode`]):
/// as printed, unless PostgreSQL could not hold it (a NUL character) or the dialect's pure
/// check refuses it.
pub(crate) fn stage_value<'a>(text: &'a str, ty: &PgTarget) -> Result<Cow<'a, str>, String> {
    if text.contains('\0') {
        return Err("text contains a NUL character".to_owned());
    }
    if let Some(reason) = Postgres.reject(ty, text) {
        return Err(reason);
    }
    Ok(Cow::Borrowed(text))
}

/// Appends one row in the staging layout to `out`. On failure nothing of the row is kept.
pub(crate) fn write_row(row: &StagedRow<'_>, out: &mut BytesMut) -> Result<(), String> {
    let fields = i16::try_from(row.values.len() + META_FIELDS + row.moved_from.len())
        .map_err(|_| format!("{} columns are more than COPY can carry", row.values.len()))?;
    let start = out.len();
    let result = (|| {
        out.put_i16(fields);
        for value in &row.values {
            optional_field(out, value.as_deref())?;
        }
        text_field(out, row.op.as_bytes())?;
        out.put_i32(8);
        out.put_i64(row.lsn);
        out.put_i32(8);
        out.put_i64(row.commit_ts);
        optional_field(out, row.unchanged.as_deref())?;
        for value in &row.moved_from {
            optional_field(out, value.as_deref())?;
        }
        Ok(())
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn optional_field(out: &mut BytesMut, value: Option<&str>) -> Result<(), String> {
    match value {
        Some(text) => text_field(out, text.as_bytes()),
        None => {
            out.put_i32(-1);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::{Lsn, Row, RowOp, Value};
    use sluice_sql::TargetColumn;
    use sluice_warehouse::staging::stage_row;

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

    fn write(row: &Row, out: &mut BytesMut) -> Result<(), (usize, String)> {
        let staged = stage_row(row, &columns(), &stage_value)?;
        write_row(&staged, out).map_err(|e| (0, e))
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
        write(&row, &mut out).expect("encodes");
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
        write(&moved, &mut moved_out).expect("encodes");
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
        write(&delete, &mut out).expect("encodes");
        assert_eq!(&out[7..11], &(-1i32).to_be_bytes());
        assert_eq!(&out[out.len() - 4..], &(-1i32).to_be_bytes());
    }

    #[test]
    fn a_nul_character_is_refused_naming_the_column() {
        let mut out = BytesMut::from(&b"x"[..]);
        let row = Row {
            op: RowOp::Upsert,
            values: vec![Value::from("1"), Value::from("a\0b")],
            lsn: Lsn(1),
            commit_ts: 0,
            moved_from: None,
        };
        let (i, _) = write(&row, &mut out).expect_err("NUL");
        assert_eq!(i, 1);
        assert_eq!(&out[..], b"x");
    }
}
