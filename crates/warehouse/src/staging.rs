//! The staging-row layout every SQL warehouse loads, whatever the file or wire format.
//!
//! Rows of one target table are staged into the dialect's staging table
//! ([`sluice_sql::STAGE`]): one text value per target column (`c0`, `c1`, ... in relation
//! order; the dialect's `convert` casts it to the column's type), then the op (`U` upsert, `D`
//! delete), the position (`_sluice_lsn`, the commit LSN bit for bit as a signed 64-bit
//! number), the commit time (microseconds since the Unix epoch), the unchanged marks (one
//! `0`/`1` per column, `1` for an unchanged TOAST value; NULL when there is none), then one
//! text per key column holding the old key of a moved row ([`sluice_core::Row::moved_from`];
//! NULL for other rows).
//!
//! [`StagedRow`] is that layout for one row; each session writes it in its own format
//! (binary COPY, Arrow record batches, Parquet). A delete carries only its key: the other
//! values of the old image are not loaded. The shared formats live here, behind features:
//! `arrow` (`ArrowChunk`: record batches whose fields are named like the staging columns) and
//! `parquet` (`write_parquet`: content-addressed Parquet files for warehouses that load files
//! from a stage).

use std::borrow::Cow;
use std::sync::Arc;

use sluice_core::{Batch, Row, RowOp, TableBatch, Value};
use sluice_sql::TargetColumn;

use crate::error::{Error, RefusedValue};

#[cfg(feature = "arrow")]
mod arrow;
#[cfg(feature = "parquet")]
mod parquet;

#[cfg(feature = "arrow")]
pub use self::arrow::ArrowChunk;
#[cfg(feature = "parquet")]
pub use self::parquet::{
    DEFAULT_MAX_FILE_BYTES, DEFAULT_ROW_GROUP_ROWS, ParquetOptions, StagedFile, write_parquet,
};

/// One row in the staging layout. Values borrow the row's text where the target takes it as
/// the source printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRow<'a> {
    pub values: Vec<Option<Cow<'a, str>>>,
    /// `"U"` or `"D"`.
    pub op: &'static str,
    pub lsn: i64,
    pub commit_ts: i64,
    pub unchanged: Option<String>,
    pub moved_from: Vec<Option<Cow<'a, str>>>,
}

impl StagedRow<'_> {
    /// Bytes of staged data in the row: the text of its values, op, marks and old key, and 8
    /// bytes for each of the position and the commit time. What file-size limits count.
    pub fn staged_bytes(&self) -> usize {
        let text = |values: &[Option<Cow<'_, str>>]| -> usize {
            values.iter().flatten().map(|v| v.len()).sum()
        };
        text(&self.values)
            + self.op.len()
            + 16
            + self.unchanged.as_ref().map_or(0, String::len)
            + text(&self.moved_from)
    }
}

/// How a session rewrites PostgreSQL's text of a value for its engine: the text to stage
/// (borrowed where it is the source's text or a part of it), or why the value cannot be
/// staged (never quoting the value).
pub trait Encode<T>: for<'a> Fn(&'a str, &T) -> Result<Cow<'a, str>, String> {}
impl<T, F: for<'a> Fn(&'a str, &T) -> Result<Cow<'a, str>, String>> Encode<T> for F {}

/// One table of a batch to stage, with its target columns as planned. Cloning shares the
/// batch.
#[derive(Clone)]
pub struct StageTable<T> {
    /// The batch (shared, so a session can move it to a blocking thread).
    pub batch: Arc<Batch>,
    /// The table's position in `batch.tables`.
    pub index: usize,
    /// Target columns in relation order (then the target's columns the source dropped).
    pub columns: Vec<TargetColumn<T>>,
    /// `schema.name` of the target, quoted, for messages.
    pub target: String,
    /// The staging table as the dialect's statements name it ([`sluice_sql::SqlDialect::stage`]).
    pub stage: String,
}

impl<T> StageTable<T> {
    /// The table's rows and relation.
    pub fn table(&self) -> &TableBatch {
        &self.batch.tables[self.index]
    }

    /// Number of key columns (old-key staging columns).
    pub fn keys(&self) -> usize {
        self.columns.iter().filter(|c| c.key).count()
    }

    /// The rows in the staging layout, each value rewritten by `encode`; a value `encode` refuses ends the rows with an [`Error::Value`]
    /// naming the table, the column and the row's key.
    pub fn rows<'a>(
        &'a self,
        encode: &'a impl Encode<T>,
    ) -> impl Iterator<Item = Result<StagedRow<'a>, Error>> + 'a {
        self.table().rows.iter().map(move |row| {
            stage_row(row, &self.columns, encode)
                .map_err(|(i, reason)| self.value_error(i, Some(row), reason))
        })
    }

    /// A value error of column `i` (of a row, when known).
    pub fn value_error(&self, i: usize, row: Option<&Row>, reason: String) -> Error {
        Error::Value(Box::new(RefusedValue {
            table: self.table().relation.table.clone(),
            target: self.target.clone(),
            column: self
                .columns
                .get(i)
                .map_or_else(String::new, |c| c.name.clone()),
            key: row.map(|row| key_text(row, &self.columns)),
            reason,
        }))
    }
}

/// A row's key as `(a, b)=(1, x)`, as PostgreSQL prints keys in its messages.
pub fn key_text<T>(row: &Row, columns: &[TargetColumn<T>]) -> String {
    let (names, values): (Vec<&str>, Vec<&str>) = columns
        .iter()
        .zip(&row.values)
        .filter(|(c, _)| c.key)
        .map(|(c, v)| (c.name.as_str(), v.as_text().unwrap_or("NULL")))
        .unzip();
    format!("({})=({})", names.join(", "), values.join(", "))
}

/// Encodes `row` in the staging layout. On failure, returns the position of the column and
/// why.
pub fn stage_row<'a, T>(
    row: &'a Row,
    columns: &[TargetColumn<T>],
    encode: &impl Encode<T>,
) -> Result<StagedRow<'a>, (usize, String)> {
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
    let one = |i: usize, text: &'a str, ty: &T| encode(text, ty).map_err(|reason| (i, reason));
    let mut values = Vec::with_capacity(columns.len());
    let mut unchanged: Option<Vec<u8>> = None;
    for (i, column) in columns.iter().enumerate() {
        let value = row.values.get(i).unwrap_or(&Value::Null);
        // A delete needs only its key; other values of the old image are not loaded.
        if row.op == RowOp::Delete && !column.key {
            values.push(None);
            continue;
        }
        values.push(match value {
            Value::Null => None,
            Value::Unchanged => {
                unchanged.get_or_insert_with(|| vec![b'0'; columns.len()])[i] = b'1';
                None
            }
            Value::Text(text) => Some(one(i, text, &column.ty)?),
        });
    }
    let keys: Vec<(usize, &TargetColumn<T>)> =
        columns.iter().enumerate().filter(|(_, c)| c.key).collect();
    let moved_from = match &row.moved_from {
        Some(from) if from.len() == keys.len() => keys
            .iter()
            .zip(from)
            .map(|(&(i, column), value)| match value {
                Value::Text(text) => one(i, text, &column.ty).map(Some),
                Value::Null | Value::Unchanged => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(from) => {
            return Err((
                columns.len(),
                format!(
                    "a moved row has {} old key values but the relation has {} key columns",
                    from.len(),
                    keys.len()
                ),
            ));
        }
        None => vec![None; keys.len()],
    };
    Ok(StagedRow {
        values,
        op: match row.op {
            RowOp::Upsert => "U",
            RowOp::Delete => "D",
        },
        // Bit for bit as a signed 64-bit number (LSNs stay below 2^63).
        lsn: row.lsn.0 as i64,
        commit_ts: row.commit_ts,
        unchanged: unchanged
            .map(|marks| String::from_utf8(marks).expect("the marks are ASCII '0' and '1'")),
        moved_from,
    })
}

#[cfg(test)]
mod tests {
    use sluice_core::Lsn;

    use super::*;

    fn columns() -> Vec<TargetColumn<&'static str>> {
        vec![
            TargetColumn {
                name: "id".into(),
                ty: "int",
                key: true,
            },
            TargetColumn {
                name: "v".into(),
                ty: "text",
                key: false,
            },
        ]
    }

    fn keep<'a>(text: &'a str, _: &&'static str) -> Result<Cow<'a, str>, String> {
        Ok(Cow::Borrowed(text))
    }

    fn double<'a>(text: &'a str, _: &&'static str) -> Result<Cow<'a, str>, String> {
        Ok(Cow::Owned(format!("{text}{text}")))
    }

    fn refuse_bad<'a>(text: &'a str, _: &&'static str) -> Result<Cow<'a, str>, String> {
        if text == "bad" {
            Err("no".to_owned())
        } else {
            Ok(Cow::Borrowed(text))
        }
    }

    fn row(op: RowOp, values: Vec<Value>) -> Row {
        Row {
            op,
            values,
            lsn: Lsn(0x10),
            commit_ts: 5,
            moved_from: None,
        }
    }

    #[test]
    fn an_upsert_with_an_unchanged_value_marks_its_position() {
        let r = row(RowOp::Upsert, vec![Value::from("7"), Value::Unchanged]);
        let staged = stage_row(&r, &columns(), &keep).expect("stages");
        assert_eq!(staged.values, vec![Some(Cow::Borrowed("7")), None]);
        assert_eq!(staged.op, "U");
        assert_eq!((staged.lsn, staged.commit_ts), (16, 5));
        assert_eq!(staged.unchanged.as_deref(), Some("01"));
        assert_eq!(staged.moved_from, vec![None]);
    }

    #[test]
    fn staged_bytes_count_text_marks_old_keys_and_both_integers() {
        let mut r = row(RowOp::Upsert, vec![Value::from("7"), Value::from("é")]);
        r.moved_from = Some(vec![Value::from("42")]);
        let staged = stage_row(&r, &columns(), &keep).expect("stages");
        // "7" + "é" (2 bytes) + "U" + 16 + "42"
        assert_eq!(staged.staged_bytes(), 1 + 2 + 1 + 16 + 2);
        let r = row(RowOp::Upsert, vec![Value::from("7"), Value::Unchanged]);
        let staged = stage_row(&r, &columns(), &keep).expect("stages");
        assert_eq!(staged.staged_bytes(), 1 + 1 + 16 + 2);
    }

    #[test]
    fn a_delete_carries_only_its_key() {
        let r = row(RowOp::Delete, vec![Value::from("7"), Value::from("old")]);
        let staged = stage_row(&r, &columns(), &keep).expect("stages");
        assert_eq!(staged.values, vec![Some(Cow::Borrowed("7")), None]);
        assert_eq!(staged.op, "D");
        assert_eq!(staged.unchanged, None);
    }

    #[test]
    fn a_moved_row_carries_its_old_key_encoded() {
        let mut r = row(RowOp::Upsert, vec![Value::from("7"), Value::from("x")]);
        r.moved_from = Some(vec![Value::from("3")]);
        let staged = stage_row(&r, &columns(), &double).expect("stages");
        assert_eq!(staged.moved_from, vec![Some(Cow::Owned("33".to_owned()))]);
        assert_eq!(staged.values[1], Some(Cow::Owned("xx".to_owned())));
    }

    #[test]
    fn a_refused_value_names_its_column_and_key() {
        let r = row(RowOp::Upsert, vec![Value::from("7"), Value::from("bad")]);
        assert_eq!(
            stage_row(&r, &columns(), &refuse_bad),
            Err((1, "no".to_owned()))
        );
        assert_eq!(key_text(&r, &columns()), "(id)=(7)");
    }

    #[test]
    fn more_values_than_columns_is_refused() {
        let r = row(
            RowOp::Upsert,
            vec![Value::from("1"), Value::from("a"), Value::from("b")],
        );
        assert_eq!(
            stage_row(&r, &columns(), &keep)
                .map(|_| ())
                .expect_err("refused")
                .0,
            2
        );
    }
}
