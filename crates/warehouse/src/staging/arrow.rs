//! The staging layout as Arrow record batches.
//!
//! Fields carry the staging table's own column names (`c0`, `c1`, ..., [`sluice_sql::OP`],
//! [`meta::LSN`], [`meta::COMMIT_TS`], [`sluice_sql::UNCHANGED`], then
//! [`sluice_sql::moved_from_column`] per key column), exactly as every dialect's
//! `create_stage` names them, so that an engine loading by name finds each column. Text is
//! `Utf8`; the position and the commit time are `Int64`; the op, position and commit time are
//! never null, as in the staging table.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use sluice_core::meta;

use super::StagedRow;

/// Staged rows being collected column by column into one record batch.
pub struct ArrowChunk {
    schema: SchemaRef,
    values: Vec<StringBuilder>,
    op: StringBuilder,
    lsn: Int64Builder,
    commit_ts: Int64Builder,
    unchanged: StringBuilder,
    moved_from: Vec<StringBuilder>,
    rows: usize,
}

impl ArrowChunk {
    /// An empty chunk for a staging table of `columns` data columns and `keys` key columns.
    pub fn new(columns: usize, keys: usize) -> ArrowChunk {
        ArrowChunk {
            schema: Arc::new(schema(columns, keys)),
            values: (0..columns).map(|_| StringBuilder::new()).collect(),
            op: StringBuilder::new(),
            lsn: Int64Builder::new(),
            commit_ts: Int64Builder::new(),
            unchanged: StringBuilder::new(),
            moved_from: (0..keys).map(|_| StringBuilder::new()).collect(),
            rows: 0,
        }
    }

    /// The record batches' schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Adds one row. A row with fewer values or old-key values than the chunk has columns
    /// gets NULLs for the missing ones (rows from [`StageTable::rows`](super::StageTable::rows)
    /// always have them all).
    pub fn push(&mut self, row: StagedRow<'_>) {
        fill(&mut self.values, &row.values);
        self.op.append_value(row.op);
        self.lsn.append_value(row.lsn);
        self.commit_ts.append_value(row.commit_ts);
        self.unchanged.append_option(row.unchanged.as_deref());
        fill(&mut self.moved_from, &row.moved_from);
        self.rows += 1;
    }

    /// Rows pushed since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The rows pushed so far as one record batch; the chunk starts over empty.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        arrays.extend(
            self.values
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        arrays.push(Arc::new(self.op.finish()));
        arrays.push(Arc::new(self.lsn.finish()));
        arrays.push(Arc::new(self.commit_ts.finish()));
        arrays.push(Arc::new(self.unchanged.finish()));
        arrays.extend(
            self.moved_from
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

fn fill(builders: &mut [StringBuilder], values: &[Option<std::borrow::Cow<'_, str>>]) {
    for (i, builder) in builders.iter_mut().enumerate() {
        builder.append_option(values.get(i).and_then(|v| v.as_deref()));
    }
}

/// The staging table's columns as Arrow fields.
fn schema(columns: usize, keys: usize) -> Schema {
    let text = |name: String, nullable| Field::new(name, DataType::Utf8, nullable);
    let mut fields = Vec::with_capacity(columns + 4 + keys);
    fields.extend((0..columns).map(|i| text(format!("c{i}"), true)));
    fields.push(text(sluice_sql::OP.into(), false));
    fields.push(Field::new(meta::LSN, DataType::Int64, false));
    fields.push(Field::new(meta::COMMIT_TS, DataType::Int64, false));
    fields.push(text(sluice_sql::UNCHANGED.into(), true));
    fields.extend((0..keys).map(|j| text(sluice_sql::moved_from_column(j), true)));
    Schema::new(fields)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use sluice_sql::{DuckDb, Postgres, Redshift, SqlDialect};

    use super::*;

    fn row<'a>(id: &'a str, op: &'static str) -> StagedRow<'a> {
        StagedRow {
            values: vec![Some(Cow::Borrowed(id)), None],
            op,
            lsn: 16,
            commit_ts: -5,
            unchanged: Some("01".into()),
            moved_from: vec![Some(Cow::Borrowed("3"))],
        }
    }

    /// The column names of a `create_stage` statement, unquoted, in order.
    fn created_columns(statement: &str) -> Vec<String> {
        let (_, list) = statement.split_once(" (").expect("a column list");
        let (list, _) = list.rsplit_once(')').expect("a closed column list");
        list.split(", ")
            .map(|c| {
                c.split(' ')
                    .next()
                    .expect("a name")
                    .trim_matches('"')
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn fields_are_named_as_every_dialect_names_the_staging_columns() {
        let fields: Vec<String> = ArrowChunk::new(3, 2)
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            fields[3..7],
            [
                "_sluice_op",
                "_sluice_lsn",
                "_sluice_commit_ts",
                "_sluice_unchanged"
            ]
        );
        for statement in [
            DuckDb { json: false }.create_stage(3, 2),
            Postgres.create_stage(3, 2),
            Redshift.create_stage(3, 2),
        ] {
            assert_eq!(created_columns(&statement), fields, "{statement}");
        }
    }

    #[test]
    fn only_data_columns_the_unchanged_marks_and_old_keys_are_nullable() {
        let schema = ArrowChunk::new(1, 1).schema();
        let nullable: Vec<bool> = schema.fields().iter().map(|f| f.is_nullable()).collect();
        assert_eq!(nullable, [true, false, false, false, true, true]);
        let types: Vec<&DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types,
            [
                &DataType::Utf8,
                &DataType::Utf8,
                &DataType::Int64,
                &DataType::Int64,
                &DataType::Utf8,
                &DataType::Utf8
            ]
        );
    }

    #[test]
    fn rows_become_columns_and_the_chunk_starts_over() {
        let mut chunk = ArrowChunk::new(2, 1);
        chunk.push(row("7", "U"));
        chunk.push(row("8", "D"));
        assert_eq!(chunk.len(), 2);
        let batch = chunk.finish().expect("builds");
        assert!(chunk.is_empty());
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).as_string::<i32>().value(1), "8");
        assert_eq!(batch.column(1).null_count(), 2);
        assert_eq!(batch.column(2).as_string::<i32>().value(1), "D");
        assert_eq!(batch.column(3).as_primitive::<Int64Type>().value(0), 16);
        assert_eq!(batch.column(4).as_primitive::<Int64Type>().value(0), -5);
        assert_eq!(batch.column(5).as_string::<i32>().value(0), "01");
        assert_eq!(batch.column(6).as_string::<i32>().value(0), "3");
        assert_eq!(chunk.finish().expect("builds").num_rows(), 0);
    }
}
