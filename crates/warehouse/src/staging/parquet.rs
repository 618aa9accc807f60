//! The staging layout as Parquet files, for warehouses that load files from a stage
//! (Snowflake's `COPY INTO`, BigQuery's load jobs, Redshift's `COPY ... FORMAT PARQUET`).
//!
//! Columns are the fields of [`ArrowChunk`], named like the staging table's columns so a
//! warehouse can match them by name: text as `BYTE_ARRAY` annotated `STRING`, the position
//! and commit time as `INT64`. Pages are Snappy-compressed; the format version is Parquet 1.0,
//! which every loader reads.
//!
//! A table's rows, in batch order, are split into files of at most
//! [`ParquetOptions::max_file_bytes`] of staged data ([`StagedRow::staged_bytes`]; a single
//! larger row gets a file of its own), each cut into row groups of at most
//! [`ParquetOptions::row_group_rows`] rows.
//!
//! A file is named by its content: the hex SHA-256 of its bytes, then `.parquet`. The writer
//! stores no time or random identifier, so the same rows with the same options give the same
//! bytes (for one version of the `parquet` crate): a retried upload of the same rows lands
//! under the same name, and a COPY whose load history already holds that name skips it.
//!
//! Memory: beyond the files already returned, the writer holds the encoded bytes of the file
//! being written and the column builders of one row group.

use ::parquet::arrow::ArrowWriter;
use ::parquet::basic::Compression;
use ::parquet::errors::ParquetError;
use ::parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

use super::{ArrowChunk, Encode, StageTable, StagedRow};
use crate::error::{Error, Result};

/// Staged bytes per file by default: 128 MiB, which compresses to files in the size range the
/// cloud warehouses load fastest in parallel (tens to a few hundred MB) while the file being
/// written stays a bounded part of the loader's memory.
pub const DEFAULT_MAX_FILE_BYTES: usize = 128 * 1024 * 1024;

/// Rows per row group by default: 64 Ki, enough rows for dictionaries and column statistics to
/// pay off, few enough that one row group of column builders stays small for ordinary rows.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 64 * 1024;

/// How [`write_parquet`] splits a table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParquetOptions {
    /// A file holds at most this many bytes of staged data (at least one row).
    pub max_file_bytes: usize,
    /// A row group holds at most this many rows (at least one).
    pub row_group_rows: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
        }
    }
}

/// One Parquet file of staged rows, ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    /// `<hex SHA-256 of bytes>.parquet`.
    pub name: String,
    pub bytes: Vec<u8>,
    /// Rows in the file.
    pub rows: usize,
}

/// Writes the table's staged rows (each value rewritten by `encode`) as Parquet files, in row
/// order; no rows give no files. A value `encode` refuses is the [`Error::Value`] of
/// [`StageTable::rows`]. CPU-bound: a session calls it off the async runtime.
pub fn write_parquet<T>(
    table: &StageTable<T>,
    encode: &impl Encode<T>,
    options: &ParquetOptions,
) -> Result<Vec<StagedFile>> {
    let failed = |e: ParquetError| Error::Format {
        table: table.table().relation.table.clone(),
        target: table.target.clone(),
        format: "Parquet",
        source: Box::new(e),
    };
    let mut files = Files::new(table.columns.len(), table.keys(), options);
    for row in table.rows(encode) {
        files.push(row?).map_err(failed)?;
    }
    files.finish().map_err(failed)
}

/// The files written so far and the one being written.
struct Files {
    options: ParquetOptions,
    chunk: ArrowChunk,
    writer: Option<ArrowWriter<Vec<u8>>>,
    /// Staged bytes and rows of the open file, the chunk's included.
    staged: usize,
    rows: usize,
    done: Vec<StagedFile>,
}

impl Files {
    fn new(columns: usize, keys: usize, options: &ParquetOptions) -> Files {
        Files {
            options: ParquetOptions {
                max_file_bytes: options.max_file_bytes,
                row_group_rows: options.row_group_rows.max(1),
            },
            chunk: ArrowChunk::new(columns, keys),
            writer: None,
            staged: 0,
            rows: 0,
            done: Vec::new(),
        }
    }

    fn push(&mut self, row: StagedRow<'_>) -> Result<(), ParquetError> {
        let size = row.staged_bytes();
        if self.rows > 0 && self.staged.saturating_add(size) > self.options.max_file_bytes {
            self.close_file()?;
        }
        self.staged = self.staged.saturating_add(size);
        self.rows += 1;
        self.chunk.push(row);
        if self.chunk.len() >= self.options.row_group_rows {
            self.write_row_group()?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<StagedFile>, ParquetError> {
        self.close_file()?;
        Ok(self.done)
    }

    /// Encodes the chunk's rows as one row group of the open file (opening one if needed).
    fn write_row_group(&mut self) -> Result<(), ParquetError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let batch = self.chunk.finish()?;
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(self.options.row_group_rows))
                    .build();
                self.writer.insert(ArrowWriter::try_new(
                    Vec::new(),
                    self.chunk.schema(),
                    Some(properties),
                )?)
            }
        };
        writer.write(&batch)?;
        writer.flush()
    }

    /// Ends the open file, if any, and names it by its content.
    fn close_file(&mut self) -> Result<(), ParquetError> {
        self.write_row_group()?;
        if let Some(writer) = self.writer.take() {
            let bytes = writer.into_inner()?;
            self.done.push(StagedFile {
                name: content_name(&bytes),
                bytes,
                rows: self.rows,
            });
        }
        self.staged = 0;
        self.rows = 0;
        Ok(())
    }
}

/// `<hex SHA-256 of bytes>.parquet`.
fn content_name(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut name = String::with_capacity(64 + ".parquet".len());
    for b in Sha256::digest(bytes) {
        let _ = write!(name, "{b:02x}");
    }
    name.push_str(".parquet");
    name
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{Array, RecordBatch};
    use arrow_schema::{DataType, SchemaRef};
    use sluice_core::{LogRecord, Value};
    use sluice_sql::TargetColumn;
    use sluice_testkit::records::{build, del, ins, orders, txn, upd, vals};

    use super::*;

    /// `orders` staged as `(id int, status text, note text)`.
    fn table(records: &[LogRecord]) -> StageTable<&'static str> {
        let (batch, _) = build(0, records);
        let columns = batch.tables[0]
            .relation
            .columns
            .iter()
            .map(|c| TargetColumn {
                name: c.name.clone(),
                ty: if c.key { "int" } else { "text" },
                key: c.key,
            })
            .collect();
        StageTable {
            batch: Arc::new(batch),
            index: 0,
            columns,
            target: "\"raw\".\"orders\"".into(),
            stage: "_sluice_stage".into(),
        }
    }

    fn keep<'a>(text: &'a str, _: &&'static str) -> Result<Cow<'a, str>, String> {
        Ok(Cow::Borrowed(text))
    }

    fn refuse_bad<'a>(text: &'a str, _: &&'static str) -> Result<Cow<'a, str>, String> {
        if text == "bad" {
            Err("not a status".to_owned())
        } else {
            Ok(Cow::Borrowed(text))
        }
    }

    /// A file read back with the parquet crate's Arrow reader: its schema, its rows as
    /// `|`-joined text (NULL as `NULL`) and its number of row groups.
    fn read(file: &StagedFile) -> (SchemaRef, Vec<String>, usize) {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file.bytes.clone()))
                .expect("a parquet file");
        let groups = builder.metadata().num_row_groups();
        let schema = builder.schema().clone();
        let mut lines = Vec::new();
        for batch in builder.build().expect("a reader") {
            let batch: RecordBatch = batch.expect("readable rows");
            for r in 0..batch.num_rows() {
                let line: Vec<String> = batch
                    .columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(r) {
                            "NULL".to_owned()
                        } else if c.data_type() == &DataType::Int64 {
                            c.as_primitive::<Int64Type>().value(r).to_string()
                        } else {
                            c.as_string::<i32>().value(r).to_owned()
                        }
                    })
                    .collect();
                lines.push(line.join("|"));
            }
        }
        (schema, lines, groups)
    }

    /// Orders `n`, `n + 1`, ... inserted at `commit`.
    fn inserts(commit: u64, ids: std::ops::Range<usize>, status: &str) -> LogRecord {
        let r = orders();
        txn(
            commit,
            ids.map(|id| ins(&r, vals(&[Some(&id.to_string()), Some(status), None])))
                .collect(),
        )
    }

    const TS: i64 = 1_704_067_200_000_000;

    #[test]
    fn every_column_reads_back_with_its_name_type_and_value() {
        let r = orders();
        let records = [txn(
            10,
            vec![
                ins(&r, vals(&[Some("1"), Some("new"), Some("Grüße, 世界 🚀")])),
                ins(&r, vals(&[Some("4"), None, None])),
                // An unchanged TOAST value.
                upd(
                    &r,
                    None,
                    vec![Value::from("3"), Value::from("paid"), Value::Unchanged],
                ),
                del(&r, vals(&[Some("2"), None, None])),
                // A key change that keeps an unchanged value: the row moved from key 5, which
                // the batch deletes.
                upd(
                    &r,
                    Some(vals(&[Some("5"), None, None])),
                    vec![Value::from("6"), Value::from("moved"), Value::Unchanged],
                ),
            ],
        )];
        let files =
            write_parquet(&table(&records), &keep, &ParquetOptions::default()).expect("writes");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].rows, 6);
        let (schema, lines, groups) = read(&files[0]);
        let fields: Vec<(&str, &DataType, bool)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
            .collect();
        assert_eq!(
            fields,
            [
                ("c0", &DataType::Utf8, true),
                ("c1", &DataType::Utf8, true),
                ("c2", &DataType::Utf8, true),
                ("_sluice_op", &DataType::Utf8, false),
                ("_sluice_lsn", &DataType::Int64, false),
                ("_sluice_commit_ts", &DataType::Int64, false),
                ("_sluice_unchanged", &DataType::Utf8, true),
                ("_sluice_from_0", &DataType::Utf8, true),
            ]
        );
        let ts = TS + 10_000_000;
        assert_eq!(
            lines,
            [
                format!("1|new|Grüße, 世界 🚀|U|10|{ts}|NULL|NULL"),
                format!("4|NULL|NULL|U|10|{ts}|NULL|NULL"),
                format!("3|paid|NULL|U|10|{ts}|001|NULL"),
                format!("2|NULL|NULL|D|10|{ts}|NULL|NULL"),
                // The key change deletes the old key and upserts the new one.
                format!("5|NULL|NULL|D|10|{ts}|NULL|NULL"),
                format!("6|moved|NULL|U|10|{ts}|001|5"),
            ]
        );
        assert_eq!(groups, 1);
    }

    #[test]
    fn the_same_rows_give_the_same_name_and_other_rows_another() {
        let options = ParquetOptions::default();
        let write = |status| {
            let files = write_parquet(&table(&[inserts(10, 0..3, status)]), &keep, &options)
                .expect("writes");
            assert_eq!(files.len(), 1);
            files.into_iter().next().expect("one file")
        };
        let first = write("new");
        let again = write("new");
        let other = write("paid");
        assert_eq!(first, again);
        assert_ne!(first.name, other.name);
        let hex: String = Sha256::digest(&first.bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(first.name, format!("{hex}.parquet"));
        assert_eq!(first.name.len(), 64 + ".parquet".len());
    }

    #[test]
    fn a_file_size_limit_splits_the_rows_into_files_holding_each_row_once() {
        let rows = table(&[inserts(10, 100..200, "new")]);
        // Each row stages "1xx" + "new" + "U" + 16 bytes = 23 bytes: 10 rows per file.
        let options = ParquetOptions {
            max_file_bytes: 230,
            row_group_rows: 4,
        };
        let files = write_parquet(&rows, &keep, &options).expect("writes");
        assert_eq!(files.len(), 10);
        let mut ids = Vec::new();
        for file in &files {
            let (_, lines, groups) = read(file);
            assert_eq!(file.rows, 10);
            assert_eq!(lines.len(), 10);
            // 4 + 4 + 2 rows.
            assert_eq!(groups, 3);
            ids.extend(
                lines
                    .iter()
                    .map(|l| l.split('|').next().expect("an id").to_owned()),
            );
        }
        let expected: Vec<String> = (100..200).map(|id| id.to_string()).collect();
        assert_eq!(ids, expected);
        let names: std::collections::HashSet<&str> =
            files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names.len(), files.len());
    }

    #[test]
    fn a_row_larger_than_the_limit_gets_a_file_of_its_own() {
        let rows = table(&[inserts(10, 1..4, "new")]);
        let options = ParquetOptions {
            max_file_bytes: 1,
            row_group_rows: 0,
        };
        let files = write_parquet(&rows, &keep, &options).expect("writes");
        let counts: Vec<usize> = files.iter().map(|f| f.rows).collect();
        assert_eq!(counts, [1, 1, 1]);
    }

    #[test]
    fn no_rows_give_no_files() {
        let mut rows = table(&[inserts(10, 1..2, "new")]);
        Arc::get_mut(&mut rows.batch).expect("one owner").tables[0]
            .rows
            .clear();
        assert_eq!(
            write_parquet(&rows, &keep, &ParquetOptions::default()).expect("writes"),
            []
        );
    }

    #[test]
    fn a_refused_value_is_a_value_error_naming_the_column_and_key() {
        let r = orders();
        let rows = table(&[txn(
            10,
            vec![
                ins(&r, vals(&[Some("6"), Some("new"), None])),
                ins(&r, vals(&[Some("7"), Some("bad"), None])),
            ],
        )]);
        let err =
            write_parquet(&rows, &refuse_bad, &ParquetOptions::default()).expect_err("refused");
        let Error::Value(refused) = err else {
            panic!("not a value error: {err:?}");
        };
        assert_eq!(refused.column, "status");
        assert_eq!(refused.key.as_deref(), Some("(id)=(7)"));
        assert_eq!(refused.reason, "not a status");
        assert_eq!(refused.table, sluice_core::TableId::new("public", "orders"));
    }
}
