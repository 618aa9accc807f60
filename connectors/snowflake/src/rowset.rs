//! Result rows as text, from either form Snowflake sends them in.
//!
//! - **JSON** (`queryResultFormat: json`, `rowset`): every value is already a string, but in
//!   Snowflake's internal form for some types (dates as days since 1970, timestamps as
//!   `seconds.fraction` with a `timezone` suffix for TIMESTAMP_TZ, booleans as `1`/`0`,
//!   binary as hex); they are rewritten by the column's `rowtype` type into the forms below.
//! - **Arrow** (`queryResultFormat: arrow`, `rowsetBase64` and each chunk): an Arrow IPC
//!   stream whose fields carry Snowflake's metadata `logicalType` and `scale`.
//!
//! The text of each value, the same from both forms:
//!
//! | Snowflake type | Arrow form | text |
//! |---|---|---|
//! | NUMBER(p,s) | int8-64 scaled by 10^s, or decimal128(p,s) | exact decimal, `-12.50` |
//! | FLOAT | float64 | Rust's shortest round-trip `Display`, `0.1`, `1e300` printed in full |
//! | BOOLEAN | boolean | `true` / `false` |
//! | DATE | date32 | `YYYY-MM-DD` |
//! | TIME(s) | int32/int64 scaled by 10^s | `HH:MM:SS[.f]` |
//! | TIMESTAMP_NTZ(s) | int64 scaled by 10^s, or struct{epoch: seconds, fraction: ns} | `YYYY-MM-DD HH:MM:SS[.f]` |
//! | TIMESTAMP_LTZ(s) | as NTZ (the instant in UTC) | `YYYY-MM-DD HH:MM:SS[.f]+00:00` |
//! | TIMESTAMP_TZ(s) | struct{epoch scaled by 10^s, timezone} or struct{epoch, fraction, timezone}; timezone = offset in minutes + 1440 | local time and offset, `2024-01-02 03:04:05.5+01:00` |
//! | BINARY | binary | lower-case hex |
//! | VARCHAR, VARIANT, OBJECT, ARRAY | utf8 | as is (JSON text for the semi-structured) |
//!
//! `[.f]` is the fraction without trailing zeros, absent when zero (the ISO 8601 form
//! PostgreSQL prints, with a space between date and time). NULL is `None`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray as _;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
};
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_buffer::Buffer;
use arrow_ipc::MessageHeader;
use arrow_ipc::reader::read_record_batch;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use serde::Deserialize;

/// One row of text values; `None` is NULL.
pub type Row = Vec<Option<String>>;

/// A column as `rowtype` describes it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RowType {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// Rewrites a JSON rowset into the text forms of the module doc.
pub(crate) fn json_rows(rowtype: &[RowType], rows: Vec<Row>) -> Result<Vec<Row>, String> {
    rows.into_iter()
        .map(|row| {
            if row.len() != rowtype.len() {
                return Err(format!(
                    "a row has {} values for {} columns",
                    row.len(),
                    rowtype.len()
                ));
            }
            row.into_iter()
                .zip(rowtype)
                .map(|(value, column)| value.map(|v| json_value(column, v)).transpose())
                .collect()
        })
        .collect()
}

fn json_value(column: &RowType, value: String) -> Result<String, String> {
    let bad = || format!("column \"{}\": bad {} value", column.name, column.kind);
    Ok(match column.kind.as_str() {
        "boolean" => match value.to_ascii_lowercase().as_str() {
            "1" | "true" => "true".into(),
            "0" | "false" => "false".into(),
            _ => return Err(bad()),
        },
        "date" => date(value.parse().map_err(|_| bad())?),
        "time" => {
            let nanos = decimal_nanos(&value).ok_or_else(bad)?;
            time_of_day(nanos)
        }
        "timestamp_ntz" => timestamp(decimal_nanos(&value).ok_or_else(bad)?, None),
        "timestamp_ltz" => timestamp(decimal_nanos(&value).ok_or_else(bad)?, Some(0)),
        "timestamp_tz" => {
            let (instant, zone) = value.split_once(' ').ok_or_else(bad)?;
            let zone: i64 = zone.parse().map_err(|_| bad())?;
            timestamp(decimal_nanos(instant).ok_or_else(bad)?, Some(zone - 1440))
        }
        "binary" => value.to_ascii_lowercase(),
        "real" => match value.parse::<f64>() {
            Ok(v) => v.to_string(),
            Err(_) => value,
        },
        _ => value,
    })
}

/// `seconds[.fraction]` as nanoseconds.
fn decimal_nanos(text: &str) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i128 = int.parse().ok()?;
    let frac: i128 = format!("{frac:0<9}").parse().ok()?;
    let nanos = seconds.checked_mul(1_000_000_000)?.checked_add(frac)?;
    Some(if negative { -nanos } else { nanos })
}

/// Appends the rows of one Arrow IPC stream (a `rowsetBase64` or a chunk).
///
/// The stream is read message by message rather than with `StreamReader`, to read it with
/// every field nullable: fakesnow marks the children of its timestamp structs non-nullable and
/// then puts a NULL timestamp's nulls in them (not in the struct), which arrow's validation
/// refuses. Nullability does not change the text of any value.
pub(crate) fn arrow_rows(ipc: &[u8], out: &mut Vec<Row>) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("arrow stream: {e}");
    let mut rest = ipc;
    let mut schema: Option<SchemaRef> = None;
    while !rest.is_empty() {
        let mut len = i32::from_le_bytes(take(&mut rest, 4)?.try_into().map_err(|e| err(&e))?);
        if len == -1 {
            // The continuation marker of the current format; the length follows.
            len = i32::from_le_bytes(take(&mut rest, 4)?.try_into().map_err(|e| err(&e))?);
        }
        if len == 0 {
            break;
        }
        let len = usize::try_from(len).map_err(|e| err(&e))?;
        let message = arrow_ipc::root_as_message(take(&mut rest, len)?).map_err(|e| err(&e))?;
        let body_len = usize::try_from(message.bodyLength()).map_err(|e| err(&e))?;
        let body = take(&mut rest, body_len)?;
        match message.header_type() {
            MessageHeader::Schema => {
                let fb = message
                    .header_as_schema()
                    .ok_or_else(|| err(&"bad schema"))?;
                let fields: Vec<Field> = arrow_ipc::convert::fb_to_schema(fb)
                    .fields()
                    .iter()
                    .map(|f| nullable(f))
                    .collect();
                schema = Some(Arc::new(Schema::new(fields)));
            }
            MessageHeader::RecordBatch => {
                let schema = schema
                    .clone()
                    .ok_or_else(|| err(&"a batch before the schema"))?;
                let fb = message
                    .header_as_record_batch()
                    .ok_or_else(|| err(&"bad batch"))?;
                let batch = read_record_batch(
                    &Buffer::from(body),
                    fb,
                    schema,
                    &HashMap::new(),
                    None,
                    &message.version(),
                )
                .map_err(|e| err(&e))?;
                append(&batch, out)?;
            }
            other => return Err(err(&format!("unexpected {other:?} message"))),
        }
    }
    Ok(())
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if rest.len() < n {
        return Err("arrow stream: truncated".into());
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

/// The field with it and all its children nullable, metadata kept.
fn nullable(field: &Field) -> Field {
    let data_type = match field.data_type() {
        DataType::Struct(children) => {
            DataType::Struct(children.iter().map(|c| nullable(c)).collect::<Fields>())
        }
        other => other.clone(),
    };
    field.clone().with_data_type(data_type).with_nullable(true)
}

fn append(batch: &RecordBatch, out: &mut Vec<Row>) -> Result<(), String> {
    let schema = batch.schema();
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| column_text(array.as_ref(), field))
        .collect::<Result<Vec<_>, _>>()?;
    let first = out.len();
    out.extend((0..batch.num_rows()).map(|_| Vec::with_capacity(columns.len())));
    for column in columns {
        for (row, value) in out[first..].iter_mut().zip(column) {
            row.push(value);
        }
    }
    Ok(())
}

fn column_text(array: &dyn Array, field: &Field) -> Result<Vec<Option<String>>, String> {
    let meta = field.metadata();
    let logical = meta.get("logicalType").map_or("", String::as_str);
    let scale: u32 = match meta.get("scale") {
        Some(s) => s
            .parse()
            .map_err(|_| format!("column \"{}\": bad scale {s:?}", field.name()))?,
        None => 0,
    };
    let texts = |f: &dyn Fn(usize) -> Result<String, String>| {
        (0..array.len())
            .map(|i| (!array.is_null(i)).then(|| f(i)).transpose())
            .collect::<Result<Vec<_>, String>>()
    };
    let int = |i: usize| -> i128 {
        match array.data_type() {
            DataType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
            DataType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
            DataType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
            _ => array.as_primitive::<Int64Type>().value(i).into(),
        }
    };
    let is_int = matches!(
        array.data_type(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    );
    match (logical, array.data_type()) {
        (_, DataType::Utf8) => texts(&|i| Ok(array.as_string::<i32>().value(i).to_owned())),
        (_, DataType::LargeUtf8) => texts(&|i| Ok(array.as_string::<i64>().value(i).to_owned())),
        (_, DataType::Boolean) => texts(&|i| Ok(array.as_boolean().value(i).to_string())),
        (_, DataType::Date32) => {
            texts(&|i| Ok(date(array.as_primitive::<Date32Type>().value(i).into())))
        }
        ("DATE", _) if is_int => texts(&|i| Ok(date(int(i) as i64))),
        ("TIME", _) if is_int => texts(&|i| Ok(time_of_day(scaled_nanos(int(i), scale)?))),
        ("TIMESTAMP_NTZ", _) if is_int => {
            texts(&|i| Ok(timestamp(scaled_nanos(int(i), scale)?, None)))
        }
        ("TIMESTAMP_LTZ", _) if is_int => {
            texts(&|i| Ok(timestamp(scaled_nanos(int(i), scale)?, Some(0))))
        }
        ("TIMESTAMP_NTZ" | "TIMESTAMP_LTZ" | "TIMESTAMP_TZ", DataType::Struct(_)) => {
            let parts = timestamp_parts(array.as_struct(), logical, scale, field.name())?;
            (0..array.len())
                .map(|i| {
                    (!array.is_null(i))
                        .then(|| parts(i))
                        .transpose()
                        .map(Option::flatten)
                })
                .collect()
        }
        (_, DataType::Decimal128(_, s)) => {
            let s = u32::try_from(*s).map_err(|_| format!("negative scale {s}"))?;
            texts(&|i| Ok(decimal(array.as_primitive::<Decimal128Type>().value(i), s)))
        }
        (_, _) if is_int => texts(&|i| Ok(decimal(int(i), scale))),
        (_, DataType::Float64) => {
            texts(&|i| Ok(array.as_primitive::<Float64Type>().value(i).to_string()))
        }
        (_, DataType::Float32) => {
            texts(&|i| Ok(array.as_primitive::<Float32Type>().value(i).to_string()))
        }
        (_, DataType::Binary) => texts(&|i| Ok(hex(array.as_binary::<i32>().value(i)))),
        (_, DataType::LargeBinary) => texts(&|i| Ok(hex(array.as_binary::<i64>().value(i)))),
        (_, DataType::FixedSizeBinary(_)) => {
            texts(&|i| Ok(hex(array.as_fixed_size_binary().value(i))))
        }
        (_, other) => Err(format!(
            "column \"{}\" of snowflake type {logical:?} came as arrow {other}, which this client \
             does not decode",
            field.name()
        )),
    }
}

/// The text of row `i` of a timestamp struct (see the module doc for its layouts).
fn timestamp_parts<'a>(
    array: &'a StructArray,
    logical: &'a str,
    scale: u32,
    name: &'a str,
) -> Result<impl Fn(usize) -> Result<Option<String>, String> + 'a, String> {
    let child = |n: &str| array.column_by_name(n);
    let epoch = child("epoch")
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| format!("column \"{name}\": timestamp without an int64 epoch"))?;
    let fraction = child("fraction").and_then(|c| c.as_primitive_opt::<Int32Type>());
    let zone = child("timezone").and_then(|c| c.as_primitive_opt::<Int32Type>());
    if logical == "TIMESTAMP_TZ" && zone.is_none() {
        return Err(format!(
            "column \"{name}\": TIMESTAMP_TZ without a timezone"
        ));
    }
    Ok(move |i: usize| {
        // fakesnow marks a NULL timestamp in the children, not in the struct.
        if epoch.is_null(i) {
            return Ok(None);
        }
        let nanos = match fraction {
            // With a fraction field the epoch is in seconds and the fraction in nanoseconds.
            Some(f) => i128::from(epoch.value(i)) * 1_000_000_000 + i128::from(f.value(i)),
            None => scaled_nanos(epoch.value(i).into(), scale)?,
        };
        let offset = match (logical, zone) {
            ("TIMESTAMP_TZ", Some(z)) => Some(i64::from(z.value(i)) - 1440),
            ("TIMESTAMP_LTZ", _) => Some(0),
            _ => None,
        };
        Ok(Some(timestamp(nanos, offset)))
    })
}

/// A value scaled by 10^scale, in nanoseconds.
fn scaled_nanos(value: i128, scale: u32) -> Result<i128, String> {
    let factor = 9u32
        .checked_sub(scale)
        .and_then(|e| 10i128.checked_pow(e))
        .ok_or_else(|| format!("time scale {scale} above 9"))?;
    value
        .checked_mul(factor)
        .ok_or_else(|| "time value out of range".to_owned())
}

/// An integer scaled by 10^scale as exact decimal text.
fn decimal(value: i128, scale: u32) -> String {
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    let scale = scale as usize;
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    format!("{sign}{int}.{frac}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (proleptic Gregorian).
fn date(days: i64) -> String {
    let (year, month, day) = sluice_core::calendar::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Nanoseconds since midnight as `HH:MM:SS[.f]`.
fn time_of_day(nanos: i128) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let mut text = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let digits = format!("{frac:09}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text
}

/// Nanoseconds since the epoch (UTC) as `YYYY-MM-DD HH:MM:SS[.f]`, shown in the zone
/// `offset_minutes` east of UTC with its `+HH:MM` suffix when there is one.
fn timestamp(utc_nanos: i128, offset_minutes: Option<i64>) -> String {
    let local = utc_nanos + i128::from(offset_minutes.unwrap_or(0)) * 60 * 1_000_000_000;
    let day_nanos = 86_400 * 1_000_000_000;
    let days = local.div_euclid(day_nanos);
    let mut text = format!(
        "{} {}",
        date(i64::try_from(days).unwrap_or(i64::MAX)),
        time_of_day(local.rem_euclid(day_nanos))
    );
    if let Some(offset) = offset_minutes {
        let sign = if offset < 0 { '-' } else { '+' };
        let offset = offset.abs();
        text.push_str(&format!("{sign}{:02}:{:02}", offset / 60, offset % 60));
    }
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use arrow_array::{
        ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array,
        Int32Array, Int64Array, StringArray,
    };
    use arrow_ipc::writer::StreamWriter;

    use super::*;

    fn field(name: &str, data_type: DataType, logical: &str, scale: u32) -> Field {
        Field::new(name, data_type, true).with_metadata(HashMap::from([
            ("logicalType".to_owned(), logical.to_owned()),
            ("scale".to_owned(), scale.to_string()),
        ]))
    }

    fn ts_struct(with_zone: bool, epoch: Vec<i64>, fraction: Vec<i32>) -> (DataType, ArrayRef) {
        let mut fields = vec![
            Field::new("epoch", DataType::Int64, false),
            Field::new("fraction", DataType::Int32, false),
        ];
        let n = epoch.len();
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(epoch)),
            Arc::new(Int32Array::from(fraction)),
        ];
        if with_zone {
            fields.push(Field::new("timezone", DataType::Int32, false));
            arrays.push(Arc::new(Int32Array::from(vec![1440 + 60; n])));
        }
        let fields = Fields::from(fields);
        let array = StructArray::new(fields.clone(), arrays, None);
        (DataType::Struct(fields), Arc::new(array))
    }

    /// An IPC stream of the shapes real Snowflake and fakesnow send.
    pub(crate) fn sample_stream() -> Vec<u8> {
        let (ntz_type, ntz) = ts_struct(false, vec![1_706_745_600, -1], vec![120_000_000, 0]);
        let (tz_type, tz) = ts_struct(true, vec![1_706_745_600, 0], vec![0, 5]);
        let columns: Vec<(Field, ArrayRef)> = vec![
            (
                field("ID", DataType::Int64, "FIXED", 0),
                Arc::new(Int64Array::from(vec![Some(1), None])),
            ),
            (
                field("SCALED", DataType::Int32, "FIXED", 2),
                Arc::new(Int32Array::from(vec![-1250, 5])),
            ),
            (
                field("AMOUNT", DataType::Decimal128(12, 2), "FIXED", 2),
                Arc::new(
                    Decimal128Array::from(vec![1234567, -3])
                        .with_precision_and_scale(12, 2)
                        .expect("valid decimal"),
                ),
            ),
            (
                field("F", DataType::Float64, "REAL", 0),
                Arc::new(Float64Array::from(vec![0.1, 1e300])),
            ),
            (
                field("B", DataType::Boolean, "BOOLEAN", 0),
                Arc::new(BooleanArray::from(vec![Some(true), Some(false)])),
            ),
            (
                field("D", DataType::Date32, "DATE", 0),
                Arc::new(Date32Array::from(vec![19_723, -719_162])),
            ),
            (field("NTZ", ntz_type, "TIMESTAMP_NTZ", 9), ntz),
            (
                field("NTZ3", DataType::Int64, "TIMESTAMP_NTZ", 3),
                Arc::new(Int64Array::from(vec![1_706_745_600_123, -1])),
            ),
            (field("TZ", tz_type, "TIMESTAMP_TZ", 9), tz),
            (
                field("BIN", DataType::Binary, "BINARY", 0),
                Arc::new(BinaryArray::from(vec![&[0xDE, 0xAD][..], &[][..]])),
            ),
            (
                field("V", DataType::Utf8, "VARIANT", 0),
                Arc::new(StringArray::from(vec![Some("{\n  \"a\": 1\n}"), None])),
            ),
        ];
        let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch");
        let mut out = Vec::new();
        let mut writer = StreamWriter::try_new(&mut out, &batch.schema()).expect("writer");
        writer.write(&batch).expect("write");
        writer.finish().expect("finish");
        drop(writer);
        out
    }

    pub(crate) fn sample_rows() -> Vec<Row> {
        let row = |values: [Option<&str>; 11]| values.map(|v| v.map(str::to_owned)).to_vec();
        vec![
            row([
                Some("1"),
                Some("-12.50"),
                Some("12345.67"),
                Some("0.1"),
                Some("true"),
                Some("2024-01-01"),
                Some("2024-02-01 00:00:00.12"),
                Some("2024-02-01 00:00:00.123"),
                Some("2024-02-01 01:00:00+01:00"),
                Some("dead"),
                Some("{\n  \"a\": 1\n}"),
            ]),
            row([
                None,
                Some("0.05"),
                Some("-0.03"),
                Some(&1e300.to_string()),
                Some("false"),
                Some("0001-01-01"),
                Some("1969-12-31 23:59:59"),
                Some("1969-12-31 23:59:59.999"),
                Some("1970-01-01 01:00:00.000000005+01:00"),
                Some(""),
                None,
            ]),
        ]
    }

    #[test]
    fn arrow_values_become_exact_text() {
        let mut rows = Vec::new();
        arrow_rows(&sample_stream(), &mut rows).expect("decode");
        assert_eq!(rows, sample_rows());
    }

    #[test]
    fn empty_and_malformed_streams() {
        let mut rows = Vec::new();
        arrow_rows(b"", &mut rows).expect("empty rowset");
        assert!(rows.is_empty());
        let stream = sample_stream();
        let err = arrow_rows(&stream[..stream.len() / 2], &mut rows).expect_err("truncated");
        assert!(err.starts_with("arrow stream"), "{err}");
    }

    #[test]
    fn json_values_take_the_arrow_forms() {
        let rowtype = |kind: &str| RowType {
            name: "c".into(),
            kind: kind.into(),
        };
        let cases = [
            ("fixed", "-12.50", "-12.50"),
            ("boolean", "1", "true"),
            ("boolean", "0", "false"),
            ("date", "19723", "2024-01-01"),
            ("time", "3723.5", "01:02:03.5"),
            (
                "timestamp_ntz",
                "1706745600.120000000",
                "2024-02-01 00:00:00.12",
            ),
            ("timestamp_ntz", "-0.5", "1969-12-31 23:59:59.5"),
            ("timestamp_ltz", "0", "1970-01-01 00:00:00+00:00"),
            (
                "timestamp_tz",
                "1706745600.000 1380",
                "2024-01-31 23:00:00-01:00",
            ),
            ("binary", "DEAD", "dead"),
            ("real", "1.50", "1.5"),
            ("text", "as is", "as is"),
        ];
        for (kind, raw, text) in cases {
            let rows = json_rows(&[rowtype(kind)], vec![vec![Some(raw.into())]]).expect(kind);
            assert_eq!(rows, vec![vec![Some(text.to_owned())]], "{kind} {raw}");
        }
        let err = json_rows(&[rowtype("date")], vec![vec![Some("x".into())]]).expect_err("bad");
        assert_eq!(err, "column \"c\": bad date value");
    }

    #[test]
    fn decimals_keep_every_digit() {
        assert_eq!(decimal(0, 2), "0.00");
        assert_eq!(decimal(-1, 3), "-0.001");
        assert_eq!(decimal(i128::MAX, 0), i128::MAX.to_string());
        assert_eq!(
            decimal(-99_999_999_999_999_999_999_999_999_999_999_999_999, 37),
            "-9.9999999999999999999999999999999999999"
        );
    }
}
