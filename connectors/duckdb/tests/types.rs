//! Every mapped type's edge values, loaded and read back from DuckDB.

use sluice_core::DeleteMode;
use sluice_core::pg_type::oid;

use crate::support::*;

fn numeric(p: i32, s: i32) -> i32 {
    ((p << 16) | s) + 4
}

/// Column name, type OID, modifier, expected DuckDB type, and per row: the PostgreSQL text
/// (None: NULL) and what DuckDB prints when the value is cast to VARCHAR.
type Case = (
    &'static str,
    u32,
    i32,
    &'static str,
    [(Option<&'static str>, &'static str); 3],
);

fn cases() -> Vec<Case> {
    vec![
        (
            "b",
            oid::BOOL,
            -1,
            "BOOLEAN",
            [(Some("t"), "true"), (Some("f"), "false"), (None, "NULL")],
        ),
        (
            "i2",
            oid::INT2,
            -1,
            "SMALLINT",
            [
                (Some("-32768"), "-32768"),
                (Some("32767"), "32767"),
                (Some("0"), "0"),
            ],
        ),
        (
            "i4",
            oid::INT4,
            -1,
            "INTEGER",
            [
                (Some("-2147483648"), "-2147483648"),
                (Some("2147483647"), "2147483647"),
                (None, "NULL"),
            ],
        ),
        (
            "i8",
            oid::INT8,
            -1,
            "BIGINT",
            [
                (Some("-9223372036854775808"), "-9223372036854775808"),
                (Some("9223372036854775807"), "9223372036854775807"),
                (Some("0"), "0"),
            ],
        ),
        (
            "f4",
            oid::FLOAT4,
            -1,
            "FLOAT",
            [
                (Some("NaN"), "nan"),
                (Some("-Infinity"), "-inf"),
                (Some("3.4028235e+38"), "3.4028235e+38"),
            ],
        ),
        (
            "f8",
            oid::FLOAT8,
            -1,
            "DOUBLE",
            [
                (Some("Infinity"), "inf"),
                (Some("-0"), "-0.0"),
                (Some("5e-324"), "5e-324"),
            ],
        ),
        (
            "n38",
            oid::NUMERIC,
            numeric(38, 10),
            "DECIMAL(38,10)",
            [
                (
                    Some("9999999999999999999999999999.9999999999"),
                    "9999999999999999999999999999.9999999999",
                ),
                (
                    Some("-9999999999999999999999999999.9999999999"),
                    "-9999999999999999999999999999.9999999999",
                ),
                (Some("0.0000000001"), "0.0000000001"),
            ],
        ),
        (
            "n",
            oid::NUMERIC,
            -1,
            "VARCHAR",
            [
                (
                    Some("123456789012345678901234567890.123456789012345678901234567890"),
                    "123456789012345678901234567890.123456789012345678901234567890",
                ),
                (Some("NaN"), "NaN"),
                (Some("-Infinity"), "-Infinity"),
            ],
        ),
        (
            "n50",
            oid::NUMERIC,
            numeric(50, 2),
            "VARCHAR",
            [
                (Some("1.50"), "1.50"),
                (None, "NULL"),
                (Some("0.00"), "0.00"),
            ],
        ),
        (
            "txt",
            oid::TEXT,
            -1,
            "VARCHAR",
            [
                (Some("it's \"q\" ünï 表\n\t\\"), "it's \"q\" ünï 表\n\t\\"),
                (Some(""), ""),
                (Some("NULL"), "NULL"),
            ],
        ),
        (
            "ch",
            oid::BPCHAR,
            9,
            "VARCHAR",
            [
                (Some("ab   "), "ab   "),
                (None, "NULL"),
                (Some("     "), "     "),
            ],
        ),
        (
            "vc",
            oid::VARCHAR,
            14,
            "VARCHAR",
            [(Some("x"), "x"), (None, "NULL"), (Some(" y "), " y ")],
        ),
        (
            "by",
            oid::BYTEA,
            -1,
            "BLOB",
            [
                (Some("\\x00ff00"), "\\x00\\xFF\\x00"),
                (Some("\\x"), ""),
                (Some("\\x41"), "A"),
            ],
        ),
        (
            "u",
            oid::UUID,
            -1,
            "UUID",
            [
                (
                    Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                ),
                (
                    Some("00000000-0000-0000-0000-000000000000"),
                    "00000000-0000-0000-0000-000000000000",
                ),
                (
                    Some("ffffffff-ffff-ffff-ffff-ffffffffffff"),
                    "ffffffff-ffff-ffff-ffff-ffffffffffff",
                ),
            ],
        ),
        (
            "j",
            oid::JSON,
            -1,
            "JSON",
            [
                (
                    Some("{\"a\": [1, 2.50], \"a\": null}"),
                    "{\"a\": [1, 2.50], \"a\": null}",
                ),
                (Some("\"s\""), "\"s\""),
                (Some("null"), "null"),
            ],
        ),
        (
            "jb",
            oid::JSONB,
            -1,
            "JSON",
            [
                (Some("{\"a\": [1, 2.50]}"), "{\"a\": [1, 2.50]}"),
                (Some("[]"), "[]"),
                (None, "NULL"),
            ],
        ),
        (
            "d",
            oid::DATE,
            -1,
            "DATE",
            [
                (Some("2024-02-29"), "2024-02-29"),
                (Some("infinity"), "infinity"),
                (Some("0044-03-15 BC"), "0044-03-15 (BC)"),
            ],
        ),
        (
            "tm",
            oid::TIME,
            -1,
            "TIME",
            [
                (Some("23:59:59.999999"), "23:59:59.999999"),
                (Some("24:00:00"), "24:00:00"),
                (Some("00:00:00"), "00:00:00"),
            ],
        ),
        (
            "ttz",
            oid::TIMETZ,
            -1,
            "TIME WITH TIME ZONE",
            [
                (Some("12:34:56.789+05:30"), "12:34:56.789+05:30"),
                (Some("00:00:00-15:59"), "00:00:00-15:59"),
                (None, "NULL"),
            ],
        ),
        (
            "ts",
            oid::TIMESTAMP,
            -1,
            "TIMESTAMP",
            [
                (
                    Some("2024-01-02 03:04:05.123456"),
                    "2024-01-02 03:04:05.123456",
                ),
                (Some("-infinity"), "-infinity"),
                (
                    Some("0044-03-15 12:00:00.000001 BC"),
                    "0044-03-15 (BC) 12:00:00.000001",
                ),
            ],
        ),
        (
            "tstz",
            oid::TIMESTAMPTZ,
            -1,
            "TIMESTAMP WITH TIME ZONE",
            [
                (
                    Some("2024-01-02 03:04:05.123456+05:30"),
                    "2024-01-01 21:34:05.123456+00",
                ),
                (Some("infinity"), "infinity"),
                (
                    Some("1900-01-01 00:00:00+05:53:28"),
                    "1899-12-31 18:06:32+00",
                ),
            ],
        ),
        (
            "iv",
            oid::INTERVAL,
            -1,
            "INTERVAL",
            [
                (
                    Some("1 year 2 mons 3 days 04:05:06.789"),
                    "1 year 2 months 3 days 04:05:06.789",
                ),
                (Some("-1 days +02:03:00"), "-1 day 02:03:00"),
                (
                    Some("-178956970 years -8 mons -2147483648 days -2562047788:00:54.775807"),
                    "-178956970 years -8 months -2147483648 days -2562047788:00:54.775807",
                ),
            ],
        ),
        (
            "ai",
            oid::INT4_ARRAY,
            -1,
            "INTEGER[]",
            [
                (Some("{1,2,NULL}"), "[1, 2, NULL]"),
                (Some("{}"), "[]"),
                (Some("{NULL}"), "[NULL]"),
            ],
        ),
        (
            "am",
            oid::INT8_ARRAY,
            -1,
            "BIGINT[][]",
            [
                (Some("{{1,2},{3,NULL}}"), "[[1, 2], [3, NULL]]"),
                (Some("{}"), "[]"),
                (Some("{{-9223372036854775808}}"), "[[-9223372036854775808]]"),
            ],
        ),
        (
            "at",
            oid::TEXT_ARRAY,
            -1,
            "VARCHAR[]",
            [
                (
                    Some("{\"a b\",\"c\\\"d\",NULL,\"NULL\",\"e\\\\f\",\"\",\"{x}\",\"g,h\"}"),
                    "[a b, 'c\"d', NULL, 'NULL', e\\f, '', '{x}', 'g,h']",
                ),
                (Some("{ünï,表}"), "[ünï, 表]"),
                (None, "NULL"),
            ],
        ),
        (
            "an",
            oid::NUMERIC_ARRAY,
            -1,
            "VARCHAR[]",
            [
                (Some("{1.50,NaN}"), "[1.50, NaN]"),
                (None, "NULL"),
                (Some("{}"), "[]"),
            ],
        ),
        (
            "ad",
            oid::NUMERIC_ARRAY,
            numeric(5, 2),
            "DECIMAL(5,2)[]",
            [
                (Some("{1.50,-999.99}"), "[1.50, -999.99]"),
                (None, "NULL"),
                (Some("{NULL}"), "[NULL]"),
            ],
        ),
        (
            "ab",
            oid::BYTEA_ARRAY,
            -1,
            "BLOB[]",
            [
                (Some("{\"\\\\x00ff\",NULL}"), "[\\x00\\xFF, NULL]"),
                (None, "NULL"),
                (Some("{}"), "[]"),
            ],
        ),
        (
            "atz",
            oid::TIMESTAMPTZ_ARRAY,
            -1,
            "TIMESTAMP WITH TIME ZONE[]",
            [
                (
                    Some("{\"2024-01-02 03:04:05.5+01\",infinity}"),
                    "['2024-01-02 02:04:05.5+00', infinity]",
                ),
                (None, "NULL"),
                (
                    Some("{\"0001-01-01 00:00:00+00 BC\"}"),
                    "['0001-01-01 (BC) 00:00:00+00']",
                ),
            ],
        ),
        (
            "adt",
            oid::DATE_ARRAY,
            -1,
            "DATE[]",
            [
                (
                    Some("{2024-01-01,\"0044-03-15 BC\"}"),
                    "[2024-01-01, '0044-03-15 (BC)']",
                ),
                (None, "NULL"),
                (Some("{}"), "[]"),
            ],
        ),
        (
            "ab2",
            oid::BOOL_ARRAY,
            -1,
            "BOOLEAN[]",
            [
                (Some("{t,f,NULL}"), "[true, false, NULL]"),
                (None, "NULL"),
                (Some("{}"), "[]"),
            ],
        ),
        (
            "au",
            oid::UUID_ARRAY,
            -1,
            "UUID[]",
            [
                (
                    Some("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"),
                    "[a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11]",
                ),
                (None, "NULL"),
                (Some("{}"), "[]"),
            ],
        ),
        (
            "aj",
            oid::JSONB_ARRAY,
            -1,
            "JSON[]",
            [
                (Some("{\"{\\\"a\\\": 1}\",NULL}"), "[{\"a\": 1}, NULL]"),
                (None, "NULL"),
                (Some("{}"), "[]"),
            ],
        ),
        (
            "pt",
            600,
            -1,
            "VARCHAR",
            [
                (Some("(1,2)"), "(1,2)"),
                (None, "NULL"),
                (Some("(-1.5,0)"), "(-1.5,0)"),
            ],
        ),
    ]
}

#[tokio::test]
async fn edge_values_round_trip() {
    let cases = cases();
    let mut columns: Vec<Col<'_>> = vec![("id", oid::INT4, -1, true)];
    columns.extend(cases.iter().map(|c| (c.0, c.1, c.2, false)));
    let r = rel("public", "types", 1, &columns);
    let changes = (0..3)
        .map(|row| {
            let mut v = vec![Some(["1", "2", "3"][row])];
            v.extend(cases.iter().map(|c| c.4[row].0));
            ins(&r, vals(&v))
        })
        .collect();
    let mut f = Fixture::new(DeleteMode::Soft);
    f.apply(&[txn(10, changes)]).await;

    let types = f.lines(
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_schema = 'raw' AND table_name = 'types' AND column_name <> 'id' \
         AND column_name NOT LIKE '\\_sluice%' ESCAPE '\\' ORDER BY ordinal_position",
    );
    let expected_types: Vec<String> = cases.iter().map(|c| format!("{}|{}", c.0, c.3)).collect();
    assert_eq!(types, expected_types);

    let select = cases
        .iter()
        .map(|c| format!("\"{}\"", c.0))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = f.query(&format!("SELECT {select} FROM raw.types ORDER BY id"));
    let mut mismatches = Vec::new();
    for (row, got) in rows.iter().enumerate() {
        for (case, value) in cases.iter().zip(got) {
            let value = value.as_deref().unwrap_or("NULL");
            if value != case.4[row].1 {
                mismatches.push(format!(
                    "{} row {}: expected {:?}, got {:?}",
                    case.0,
                    row + 1,
                    case.4[row].1,
                    value
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // Checks that do not rely on DuckDB's printing (epoch_us of infinity is NULL).
    assert_eq!(
        f.lines(
            "SELECT isnan(f4), signbit(f8), octet_length(\"by\"), hex(\"by\"), epoch_us(tstz), \
             to_months(1) = iv, len(am), am[1][2] FROM raw.types WHERE id IN (1, 2) ORDER BY id"
        ),
        vec![
            "true|false|3|00FF00|1704144845123456|false|2|2",
            "false|true|0||NULL|false|0|NULL",
        ]
    );
    assert_eq!(
        f.lines(
            "SELECT datepart('year', d), datepart('microseconds', ts), \
             CAST(n38 AS VARCHAR) = '0.0000000001', \"at\"[2], \"at\"[3] IS NULL, len(\"at\") \
             FROM raw.types WHERE id IN (1, 3) ORDER BY id"
        ),
        vec![
            "2024|5123456|false|c\"d|true|8",
            "-43|1|true|NULL|true|NULL"
        ]
    );
}

/// Values a typed column cannot hold (numeric `NaN` in a `DECIMAL`, timestamps after DuckDB's
/// last one, also inside lists) turn the column into text in the batch that brings them: the
/// values already loaded become PostgreSQL's exact text, and nothing fails or is lost.
#[tokio::test]
async fn values_beyond_the_type_turn_the_column_into_text() {
    let columns: Vec<Col<'_>> = vec![
        ("id", oid::INT4, -1, true),
        ("n", oid::NUMERIC, numeric(10, 2), false),
        ("ts", oid::TIMESTAMP, -1, false),
        ("tz", oid::TIMESTAMPTZ, -1, false),
        ("d", oid::DATE, -1, false),
        ("l", oid::TIMESTAMPTZ_ARRAY, -1, false),
        ("keep", oid::NUMERIC, numeric(10, 2), false),
    ];
    let r = rel("public", "beyond", 1, &columns);
    let row = |id: &'static str, n, ts, tz, l| {
        ins(
            &r,
            vals(&[Some(id), n, ts, tz, Some("0044-03-15 BC"), l, Some("1.50")]),
        )
    };
    let mut f = Fixture::new(DeleteMode::Soft);
    f.apply(&[txn(
        10,
        vec![
            row(
                "1",
                Some("-12.50"),
                Some("0044-03-15 12:00:00.5 BC"),
                Some("2024-01-02 03:04:05.5+05:30"),
                Some("{\"0001-01-01 00:00:00+00 BC\",infinity,NULL}"),
            ),
            row("2", None, Some("infinity"), Some("-infinity"), Some("{}")),
        ],
    )])
    .await;
    let types = "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_schema = 'raw' AND table_name = 'beyond' \
                 AND column_name NOT LIKE '\\_sluice%' ESCAPE '\\' ORDER BY ordinal_position";
    assert_eq!(
        f.lines(types),
        vec![
            "id|INTEGER",
            "n|DECIMAL(10,2)",
            "ts|TIMESTAMP",
            "tz|TIMESTAMP WITH TIME ZONE",
            "d|DATE",
            "l|TIMESTAMP WITH TIME ZONE[]",
            "keep|DECIMAL(10,2)",
        ]
    );
    f.apply(&[txn(
        20,
        vec![row(
            "3",
            Some("NaN"),
            Some("294276-12-31 23:59:59.999999"),
            Some("294276-12-31 23:59:59.999999+00"),
            Some("{\"294276-01-01 00:00:00+00\"}"),
        )],
    )])
    .await;
    assert_eq!(
        f.lines(types),
        vec![
            "id|INTEGER",
            "n|VARCHAR",
            "ts|VARCHAR",
            "tz|VARCHAR",
            "d|DATE",
            "l|VARCHAR[]",
            "keep|DECIMAL(10,2)",
        ]
    );
    // The text PostgreSQL prints (DateStyle ISO, TimeZone UTC), for old and new values.
    assert_eq!(
        f.lines("SELECT id, n, ts, tz, l FROM raw.beyond ORDER BY id"),
        vec![
            "1|-12.50|0044-03-15 12:00:00.5 BC|2024-01-01 21:34:05.5+00|\
             ['0001-01-01 00:00:00+00 BC', infinity, NULL]",
            "2|NULL|infinity|-infinity|[]",
            "3|NaN|294276-12-31 23:59:59.999999|294276-12-31 23:59:59.999999+00|\
             ['294276-01-01 00:00:00+00']",
        ]
    );
    // Later batches keep the text columns and load ordinary values as text.
    f.apply(&[txn(
        30,
        vec![row(
            "4",
            Some("7.00"),
            Some("2024-01-01 00:00:00"),
            None,
            Some("{\"2024-01-01 00:00:00+00\"}"),
        )],
    )])
    .await;
    assert_eq!(
        f.lines("SELECT n, ts, l FROM raw.beyond WHERE id = 4"),
        vec!["7.00|2024-01-01 00:00:00|['2024-01-01 00:00:00+00']"]
    );
}
