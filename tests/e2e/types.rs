//! Every built-in PostgreSQL type through the whole pipeline into DuckDB: a table with one
//! column per type (and arrays, enums, domains, ranges, ...), holding NULLs, empty values,
//! NaN, infinities, BC and year-294276 timestamps, unicode and large values. After the
//! snapshot and after updates that move values into and out of the edge cases while
//! streaming, the warehouse holds the source's values, value by value.
//!
//! Each column is compared as the DuckDB column's type allows: a column kept as text must
//! hold exactly the text PostgreSQL prints (with capture's session settings); a typed column
//! is compared by value (timestamps and dates by their distance from the epoch, intervals by
//! months, days and microseconds, floats bit for bit, bytea as hex, arrays element by element
//! with their dimensions).

use std::process::Command;

use sluice_testkit::{PgCluster, TestDatabase};
use sluice_tests::{Pipeline, sluice_bin};

const SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'ünï cödé');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN price AS numeric(12,2);
CREATE DOMAIN email AS text;
CREATE TABLE every_type (
    id int PRIMARY KEY,
    b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
    n numeric, n_ps numeric(10,2), n_wide numeric(60,30), n_neg numeric(5,-2),
    n_stream numeric(12,3),
    m money, t text, vc varchar(10), ch char(5), nm name, c1 "char",
    by bytea, u uuid, j json, jb jsonb,
    d date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
    ts_stream timestamp, tstz_stream timestamptz, iv interval,
    a_i int4[], a_t text[], a_2d int8[], a_n numeric(6,2)[], a_f float8[],
    a_ts timestamptz[], a_d date[], a_b bool[], a_by bytea[], a_iv interval[], a_inet inet[],
    a_stream timestamp[],
    ip inet, net cidr, mac macaddr, mac8 macaddr8, bt bit(4), vb varbit,
    en mood, a_en mood[], dm posint, dm_n price, dm_t email,
    r int4range, tr tstzrange, nr numrange, pt point, x xml, tsv tsvector, o oid
);
ALTER TABLE every_type ALTER COLUMN t SET STORAGE EXTERNAL;
ALTER TABLE every_type ALTER COLUMN by SET STORAGE EXTERNAL;
"#;

/// Column list of the INSERTs below.
const COLUMNS: &str = "id, b, i2, i4, i8, f4, f8, n, n_ps, n_wide, n_neg, n_stream, m, t, vc, \
    ch, nm, c1, by, u, j, jb, d, tm, ttz, ts, tstz, ts_stream, tstz_stream, iv, a_i, a_t, a_2d, \
    a_n, a_f, a_ts, a_d, a_b, a_by, a_iv, a_inet, a_stream, ip, net, mac, mac8, bt, vb, en, a_en, \
    dm, dm_n, dm_t, r, tr, nr, pt, x, tsv, o";

/// Ordinary values.
fn ordinary(id: i32) -> String {
    format!(
        r#"({id}, true, 1, 2, 3, 1.5, 2.25, 123.456, 12345678.90, '1.5', 12300, 42.5,
        12.34, 'plain', 'short', 'ab', 'name', 'x',
        '\x0102', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{"a": [1, 2.50]}}', '{{"k": "v"}}',
        '2024-02-29', '12:34:56.789', '12:34:56.789+05:30', '2024-01-02 03:04:05.123456',
        '2024-01-02 03:04:05.123456+05:30', '2024-01-02 03:04:05.5',
        '2024-01-02 03:04:05.5+01', '1 year 2 mons 3 days 04:05:06.789',
        '{{1,2,3}}', '{{a,b}}', '{{{{1,2}},{{3,4}}}}', '{{1.50,2.25}}', '{{1.5,2}}',
        '{{"2024-01-02 03:04:05+00"}}', '{{2024-01-01}}', '{{t,f}}', '{{"\\x00ff"}}',
        '{{"1 day"}}', '{{10.0.0.1}}', '{{"2024-01-02 03:04:05"}}',
        '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
        B'1010', B'101', 'ok', '{{sad,ok}}', 7, 9.99, 'a@b.c',
        '[1,5)', '[2024-01-01 00:00:00+00,2024-02-01 00:00:00+00)', '(1.5,2.5]', '(1,2)',
        '<a>x</a>', 'a fat cat', 1234)"#
    )
}

/// All NULL but the key.
fn nulls(id: i32) -> String {
    let n = COLUMNS.split(',').count() - 1;
    format!("({id}{})", ", NULL".repeat(n))
}

/// Lower edges: minimums, NaN, negative infinities, BC, unicode, deep json, odd arrays.
fn low(id: i32) -> String {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    format!(
        r#"({id}, false, -32768, -2147483648, -9223372036854775808, 'NaN', '-Infinity',
        'NaN', 'NaN', '-123456789012345678901234567890.123456789012345678901234567890',
        -9999900, -999999999.999,
        '-92233720368547758.08', E'ünï 表 😀 "q" \\ \n\t end', '', '', '', E'\\001',
        '\x00', '00000000-0000-0000-0000-000000000000', '{deep}',
        '{{"ünï": "表😀", "esc": "\"\\\u00e9", "n": null, "nested": {{"a": [{{"b": [[]]}}]}}}}',
        '4714-11-24 BC', '00:00:00', '00:00:00-15:59', '4714-11-24 00:00:00 BC',
        '4714-11-24 00:00:00+00 BC', '0044-03-15 12:00:00.5 BC', '0001-01-01 00:00:00+00 BC',
        '-178956970 years -8 mons -2147483648 days -2562047788:00:54.775807',
        '{{NULL}}', '{{NULL,"NULL","","a b","c\"d","e\\f","{{x}}","g,h","ünï"}}',
        '{{{{-9223372036854775808,NULL}},{{NULL,NULL}}}}', '{{NaN,1.50,NULL,-9999.99}}',
        '{{NaN,-Infinity,-0,5e-324}}', '{{-infinity,"4714-11-24 00:00:00+00 BC",NULL}}',
        '{{"4714-11-24 BC",-infinity}}', '{{NULL,f}}', '{{"\\x",NULL}}',
        '{{"-1 days +02:03:00",NULL}}', '{{::1,NULL}}', '{{"0044-03-15 12:00:00 BC",-infinity}}',
        '::/0', '::/0', '00:00:00:00:00:00', '00:00:00:00:00:00:00:00', B'0000', B'0',
        'ünï cödé', '{{NULL}}', 1, '-9999999999.99', 'ünï@表',
        'empty', '(,)', '(-Infinity,Infinity)', '(-1.5e-300,-Infinity)',
        '<?xml version="1.0"?><a b="ü">&amp;</a>', E'''a'':1A ''ünï'':2B,3', 0)"#
    )
}

/// Upper edges: maximums, infinities, year 294276, large values.
fn high(id: i32) -> String {
    format!(
        r#"({id}, true, 32767, 2147483647, 9223372036854775807, 'Infinity', '-0',
        'Infinity', 'NaN', '999999999999999999999999999999.999999999999999999999999999999',
        9999900, 999999999.999,
        '92233720368547758.07', repeat('ünï表', 60000), 'ünï表ünï表ün', 'ünï  ', 'ünï',
        E'\\377',
        decode(repeat('00ff10', 100000), 'hex'), 'ffffffff-ffff-ffff-ffff-ffffffffffff',
        '"\u0000-less \ud83d\ude00"', '[]',
        '5874897-12-31', '24:00:00', '24:00:00-15:59', '294276-12-31 23:59:59.999999',
        'infinity', '2024-02-29 23:59:59.999999', 'infinity',
        '178956970 years 7 mons 2147483647 days 2562047788:00:54.775807',
        '{{2147483647,-2147483648}}', '{{}}', '{{}}', '{{}}', '{{Infinity,3.4e+38}}', '{{}}', '{{}}',
        '{{}}', '{{}}', '{{}}', '{{}}', '{{}}',
        'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128', '255.255.255.255/32',
        'ff:ff:ff:ff:ff:ff', 'ff:ff:ff:ff:ff:ff:ff:ff', B'1111', repeat('1', 5000)::varbit,
        'sad', '{{}}', 2147483647, '9999999999.99', '',
        '[-2147483648,2147483647)', '["294276-12-31 23:59:59.999999+00",infinity]',
        '[0,1e100]', '(1e308,-1e-308)', '', '', 4294967295)"#
    )
}

async fn execute_all(db: &TestDatabase, statements: &[String]) {
    for sql in statements {
        db.execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{e:?}\n{sql}"));
    }
}

/// The session capture uses, so that `::text` prints what capture sent.
const SESSION: &str = "SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; \
    SET extra_float_digits = 3; SET bytea_output = 'hex'; SET TimeZone = 'UTC'";

/// How a column is read on both sides: the same text when the values are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Render {
    /// PostgreSQL's text, compared as is.
    Text,
    /// Float text, compared as the number it parses to.
    Float,
    /// `<dims> <json array of the flattened elements>`, elements rendered by the element's rule.
    List(&'static str),
}

/// `(PostgreSQL expression, DuckDB expression, how to compare)` for a value `x` of a DuckDB
/// column of type `duck` (as `information_schema` prints it).
fn scalar(duck: &str, pg_x: &str, duck_x: &str) -> (String, String, bool) {
    // A column is read as its type's output function prints it (what capture sends; `::text`
    // differs for char(n), inet and xml); an array element as its text.
    let out = |x: &str| {
        if x == "x" {
            "x::text".to_owned()
        } else {
            x.to_owned()
        }
    };
    let finite = |pg: &str, duck: &str| {
        (
            format!("CASE WHEN isfinite({pg_x}) THEN ({pg})::text ELSE {pg_x}::text END"),
            format!(
                "CASE WHEN isfinite({duck_x}) THEN CAST({duck} AS VARCHAR) \
                 ELSE CAST({duck_x} AS VARCHAR) END"
            ),
            false,
        )
    };
    match duck {
        // `true` / `false` on both sides.
        "BOOLEAN" => (
            format!("{pg_x}::text"),
            format!("CAST({duck_x} AS VARCHAR)"),
            false,
        ),
        "BLOB" => (
            format!("encode({pg_x}, 'hex')"),
            format!("lower(hex({duck_x}))"),
            false,
        ),
        "DATE" => finite(
            &format!("{pg_x} - DATE '1970-01-01'"),
            &format!("{duck_x} - DATE '1970-01-01'"),
        ),
        "TIMESTAMP" | "TIMESTAMP WITH TIME ZONE" => finite(
            &format!("trunc(extract(epoch FROM {pg_x}) * 1000000)"),
            &format!("epoch_us({duck_x})"),
        ),
        "INTERVAL" => (
            format!(
                "(extract(year FROM {pg_x}) * 12 + extract(month FROM {pg_x}))::text || ' ' || \
                 extract(day FROM {pg_x})::text || ' ' || (extract(hour FROM {pg_x}) * 3600000000 \
                 + extract(minute FROM {pg_x}) * 60000000 + extract(microseconds FROM {pg_x}))::text"
            ),
            format!(
                "CAST(datepart('year', {duck_x}) * 12 + datepart('month', {duck_x}) AS VARCHAR) \
                 || ' ' || CAST(datepart('day', {duck_x}) AS VARCHAR) || ' ' || \
                 CAST(datepart('hour', {duck_x}) * 3600000000 + datepart('minute', {duck_x}) * \
                 60000000 + datepart('microseconds', {duck_x}) AS VARCHAR)"
            ),
            false,
        ),
        "FLOAT" | "REAL" | "DOUBLE" => (
            out(pg_x),
            format!(
                "CASE WHEN isnan({duck_x}) THEN 'NaN' WHEN {duck_x} = 'inf' THEN 'Infinity' \
                 WHEN {duck_x} = '-inf' THEN '-Infinity' ELSE CAST({duck_x} AS VARCHAR) END"
            ),
            true,
        ),
        _ => (out(pg_x), format!("CAST({duck_x} AS VARCHAR)"), false),
    }
}

/// The expressions and rule of one column.
fn column(name: &str, duck: &str) -> (String, String, Render) {
    let q = format!("\"{name}\"");
    let depth = duck.matches("[]").count();
    if depth == 0 {
        let (pg, dk, float) = scalar(duck, &q, &q);
        return (pg, dk, if float { Render::Float } else { Render::Text });
    }
    let element = duck.trim_end_matches("[]");
    let (pg_e, duck_e, float) = scalar(element, "x", "x");
    let mut flat = q.clone();
    for _ in 1..depth {
        flat = format!("flatten({flat})");
    }
    let mut dims = format!("'[1:' || len({q}) || ']'");
    let mut inner = q.clone();
    for _ in 1..depth {
        inner = format!("{inner}[1]");
        dims = format!("{dims} || '[1:' || len({inner}) || ']'");
    }
    let pg = format!(
        "CASE WHEN {q} IS NULL THEN NULL ELSE coalesce(array_dims({q}), '') || ' ' || \
         (SELECT coalesce(json_agg({pg_e} ORDER BY o), '[]')::text \
          FROM unnest({q}) WITH ORDINALITY AS u(x, o)) END"
    );
    let dk = format!(
        "CASE WHEN {q} IS NULL THEN NULL ELSE (CASE WHEN len({q}) = 0 THEN '' ELSE {dims} END) \
         || ' ' || CAST(to_json(list_transform({flat}, lambda x: {duck_e})) AS VARCHAR) END"
    );
    (pg, dk, Render::List(if float { "float" } else { "text" }))
}

fn canonical_float(text: &str) -> String {
    match text.parse::<f64>() {
        Ok(f) if f.is_nan() => "NaN".to_owned(),
        Ok(f) => format!("{f:?}"),
        Err(_) => format!("not a float: {text}"),
    }
}

fn canonical(render: Render, text: Option<String>) -> Option<String> {
    let text = text?;
    Some(match render {
        Render::Text => text,
        Render::Float => canonical_float(&text),
        Render::List(element) => {
            let (dims, json) = text.split_once(' ').unwrap_or((&text, ""));
            let items: Vec<serde_json::Value> = match serde_json::from_str(json) {
                Ok(serde_json::Value::Array(items)) => items,
                _ => return Some(format!("not a json array: {text}")),
            };
            let items: Vec<serde_json::Value> = items
                .into_iter()
                .map(|v| match (element, v) {
                    ("float", serde_json::Value::String(s)) => {
                        serde_json::Value::String(canonical_float(&s))
                    }
                    (_, v) => v,
                })
                .collect();
            format!("{dims} {}", serde_json::Value::Array(items))
        }
    })
}

/// The DuckDB types of the table's data columns, in order.
fn duck_types(wh: &duckdb::Connection, table: &str) -> Vec<(String, String)> {
    let mut stmt = wh
        .prepare(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = 'raw' AND table_name = ? AND column_name NOT LIKE '\\_sluice%' \
             ESCAPE '\\' ORDER BY ordinal_position",
        )
        .expect("prepare");
    stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("columns")
        .map(|r| r.expect("column"))
        .collect()
}

/// Asserts that every live row of `table` holds the source's values, column by column; returns
/// the DuckDB types of the columns.
async fn assert_same_values(
    db: &TestDatabase,
    pipeline: &Pipeline,
    table: &str,
) -> Vec<(String, String)> {
    let wh = pipeline.warehouse();
    let types = duck_types(&wh, table);
    let specs: Vec<(String, String, Render)> = types.iter().map(|(n, t)| column(n, t)).collect();
    let client = db.client().await.expect("client");
    client.batch_execute(SESSION).await.expect("session");
    let pg_select = specs
        .iter()
        .map(|s| s.0.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    // The simple query protocol returns every value as its type's output function prints it.
    let mut source: Vec<Vec<Option<String>>> = client
        .simple_query(&format!(
            "SELECT {pg_select} FROM public.\"{table}\" ORDER BY id"
        ))
        .await
        .unwrap_or_else(|e| panic!("source query: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                specs
                    .iter()
                    .enumerate()
                    .map(|(i, s)| canonical(s.2, r.get(i).map(str::to_owned)))
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    let duck_select = specs
        .iter()
        .map(|s| s.1.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let sql =
        format!("SELECT {duck_select} FROM raw.\"{table}\" WHERE NOT _sluice_deleted ORDER BY id");
    let mut stmt = wh.prepare(&sql).unwrap_or_else(|e| panic!("{e:?}\n{sql}"));
    let mut target: Vec<Vec<Option<String>>> = stmt
        .query_map([], |r| {
            (0..specs.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("target rows")
        .map(|r| {
            r.expect("row")
                .into_iter()
                .zip(&specs)
                .map(|(v, s)| canonical(s.2, v))
                .collect()
        })
        .collect();
    assert_eq!(source.len(), target.len(), "row counts of {table}");
    let mut mismatches = Vec::new();
    for (want, got) in source.iter_mut().zip(target.iter_mut()) {
        for (i, (w, g)) in want.iter().zip(got.iter()).enumerate() {
            if w != g {
                let short = |v: &Option<String>| {
                    v.as_ref().map(|s| {
                        if s.len() > 200 {
                            format!(
                                "{}... ({} bytes)",
                                s.chars().take(200).collect::<String>(),
                                s.len()
                            )
                        } else {
                            s.clone()
                        }
                    })
                };
                mismatches.push(format!(
                    "row id={:?} column {} ({}): source {:?}, target {:?}",
                    want[0],
                    types[i].0,
                    types[i].1,
                    short(w),
                    short(g)
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} values differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    types
}

fn sync(pipeline: &Pipeline) -> String {
    let out = pipeline.sync_until_caught_up();
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn type_of<'a>(types: &'a [(String, String)], column: &str) -> &'a str {
    types
        .iter()
        .find(|(n, _)| n == column)
        .map(|(_, t)| t.as_str())
        .unwrap_or_else(|| panic!("no column {column}"))
}

#[tokio::test]
async fn every_type_round_trips_into_duckdb() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute(SCHEMA).await.expect("schema");
    execute_all(
        &db,
        &[format!(
            "INSERT INTO every_type ({COLUMNS}) VALUES {}, {}, {}, {}, {}, {}",
            ordinary(1),
            nulls(2),
            low(3),
            high(4),
            ordinary(5),
            // Never changed: its BC timestamps are converted when their columns become text.
            low(8)
        )],
    )
    .await;
    let pipeline = Pipeline::new(&db, &["public.every_type"], "");

    // The snapshot.
    sync(&pipeline);
    let types = assert_same_values(&db, &pipeline, "every_type").await;
    // Types the snapshot's values fit keep their native type.
    for (column, ty) in [
        ("n_stream", "DECIMAL(12,3)"),
        ("ts_stream", "TIMESTAMP"),
        ("tstz_stream", "TIMESTAMP WITH TIME ZONE"),
        ("a_stream", "TIMESTAMP[]"),
        ("tstz", "TIMESTAMP WITH TIME ZONE"),
        ("o", "BIGINT"),
    ] {
        assert_eq!(type_of(&types, column), ty, "column {column}");
    }

    // Streaming: values move into the edge cases (the typed columns above now get values
    // their DuckDB type cannot hold), out of them, and a row holding them arrives and leaves.
    execute_all(
        &db,
        &[
            "UPDATE every_type SET f4 = 'NaN', n_stream = 'NaN', \
             ts_stream = '294276-12-31 23:59:59.999999', \
             tstz_stream = '294276-12-31 23:59:59.999999+00', \
             a_stream = '{\"294276-01-01 00:00:00\",NULL}', \
             a_2d = '{{NULL}}', jb = '[[[[[[[\"ünï\"]]]]]]]' WHERE id = 1"
                .to_owned(),
            format!(
                "UPDATE every_type SET ({COLUMNS}) = {} WHERE id = 3",
                ordinary(3).replacen("(3,", "ROW(3,", 1)
            ),
            format!("INSERT INTO every_type ({COLUMNS}) VALUES {}", high(6)),
            format!("INSERT INTO every_type ({COLUMNS}) VALUES {}", low(7)),
            "DELETE FROM every_type WHERE id = 5".to_owned(),
            // Only small columns: the large text and bytea of row 4 arrive as unchanged TOAST.
            "UPDATE every_type SET i4 = 0, n_stream = 'NaN' WHERE id = 4".to_owned(),
        ],
    )
    .await;
    let out = sync(&pipeline);
    let types = assert_same_values(&db, &pipeline, "every_type").await;
    for (column, ty) in [
        ("n_stream", "VARCHAR"),
        ("ts_stream", "VARCHAR"),
        ("tstz_stream", "VARCHAR"),
        ("a_stream", "VARCHAR[]"),
    ] {
        assert_eq!(type_of(&types, column), ty, "column {column}");
        assert!(
            out.contains(&format!("column=\"{column}\""))
                || out.contains(&format!("column={column}")),
            "the switch of {column} to {ty} is logged:\n{out}"
        );
    }

    // And back out of the edge cases, into ordinary values again.
    execute_all(
        &db,
        &[
            format!(
                "UPDATE every_type SET ({COLUMNS}) = {} WHERE id = 1",
                ordinary(1).replacen("(1,", "ROW(1,", 1)
            ),
            "UPDATE every_type SET n_stream = 1.5, ts_stream = '1999-12-31 23:59:59', \
             tstz_stream = NULL WHERE id IN (4, 6, 7)"
                .to_owned(),
        ],
    )
    .await;
    sync(&pipeline);
    assert_same_values(&db, &pipeline, "every_type").await;

    // `sluice check` names the columns kept as text, including those switched while loading.
    let out = Command::new(sluice_bin())
        .args(["check", "-c"])
        .arg(&pipeline.config)
        .output()
        .expect("run sluice check");
    let report = String::from_utf8_lossy(&out.stdout);
    for column in [
        "n_stream",
        "ts_stream",
        "tstz_stream",
        "a_stream",
        "n",
        "ip",
    ] {
        assert!(
            report.contains(&format!("every_type\".{column} ("))
                || report.contains(&format!("every_type.{column} (")),
            "check lists {column}:\n{report}"
        );
    }
}

/// Every column of `table` as PostgreSQL prints it (capture's session settings), by id.
async fn as_text(db: &TestDatabase, table: &str, filter: &str) -> Vec<Vec<Option<String>>> {
    let client = db.client().await.expect("client");
    client.batch_execute(SESSION).await.expect("session");
    // The simple query protocol returns every value as its type's output function prints it.
    client
        .simple_query(&format!(
            "SELECT {COLUMNS} FROM {table} WHERE {filter} ORDER BY id"
        ))
        .await
        .unwrap_or_else(|e| panic!("{table}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

async fn assert_same_text(source: &TestDatabase, target: &TestDatabase) {
    let want = as_text(source, "public.every_type", "true").await;
    let got = as_text(target, "raw.every_type", "NOT _sluice_deleted").await;
    assert_eq!(got.len(), want.len(), "row counts");
    let names: Vec<&str> = COLUMNS.split(',').map(str::trim).collect();
    let mut mismatches = Vec::new();
    for (w, g) in want.iter().zip(&got) {
        for (i, (a, b)) in w.iter().zip(g).enumerate() {
            if a != b {
                mismatches.push(format!(
                    "row id={:?} column {}: source {a:?}, target {b:?}",
                    w[0], names[i]
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[tokio::test]
async fn every_type_round_trips_into_postgres() {
    let cluster = PgCluster::shared();
    let source = cluster.fresh_database().await.expect("source");
    let target = cluster.fresh_database().await.expect("target");
    source.execute(SCHEMA).await.expect("schema");
    execute_all(
        &source,
        &[format!(
            "INSERT INTO every_type ({COLUMNS}) VALUES {}, {}, {}, {}, {}, {}",
            ordinary(1),
            nulls(2),
            low(3),
            high(4),
            ordinary(5),
            // Never changed: its BC timestamps are converted when their columns become text.
            low(8)
        )],
    )
    .await;
    let dir = sluice_tests::tempfile_dir::Dir::new();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{src}\"\ntables = [\"public.every_type\"]\nslot = \"s_{slot}\"\n\
             publication = \"sluice_pub\"\n\n\
             [log]\nkind = \"local\"\npath = \"{log}\"\n\n\
             [target]\nkind = \"postgres\"\nurl = \"{dst}\"\nschema = \"raw\"\n\n\
             [load]\nflush_interval_ms = 200\n",
            src = source.url(),
            slot = source.name(),
            log = dir.path().join("log").display(),
            dst = target.url(),
        ),
    )
    .expect("write config");
    let sync = || {
        let out = Command::new(sluice_bin())
            .args(["sync", "--until-caught-up", "-c"])
            .arg(&config)
            .output()
            .expect("run sluice");
        assert!(
            out.status.success(),
            "sluice sync failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sync();
    assert_same_text(&source, &target).await;
    // Native types on the target, not text.
    let client = target.client().await.expect("client");
    let types: Vec<(String, String)> = client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'raw.every_type'::regclass AND attnum > 0 AND NOT attisdropped",
            &[],
        )
        .await
        .expect("types")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (column, ty) in [
        ("n_ps", "numeric(10,2)"),
        ("ts", "timestamp without time zone"),
        ("ip", "inet"),
        ("bt", "bit varying"),
        ("r", "int4range"),
        ("pt", "point"),
        ("tsv", "tsvector"),
        ("o", "oid"),
        ("dm", "integer"),
        ("dm_n", "numeric(12,2)"),
        ("a_2d", "bigint[]"),
        ("en", "text"),
    ] {
        assert_eq!(type_of(&types, column), ty, "column {column}");
    }

    execute_all(
        &source,
        &[
            "UPDATE every_type SET f4 = 'NaN', n_stream = 'NaN', \
             ts_stream = '294276-12-31 23:59:59.999999', \
             tstz_stream = '294276-12-31 23:59:59.999999+00', \
             a_stream = '{\"294276-01-01 00:00:00\",NULL}', \
             a_2d = '{{NULL}}', jb = '[[[[[[[\"ünï\"]]]]]]]' WHERE id = 1"
                .to_owned(),
            format!(
                "UPDATE every_type SET ({COLUMNS}) = {} WHERE id = 3",
                ordinary(3).replacen("(3,", "ROW(3,", 1)
            ),
            format!("INSERT INTO every_type ({COLUMNS}) VALUES {}", high(6)),
            format!("INSERT INTO every_type ({COLUMNS}) VALUES {}", low(7)),
            "DELETE FROM every_type WHERE id = 5".to_owned(),
            "UPDATE every_type SET i4 = 0, n_stream = 'NaN' WHERE id = 4".to_owned(),
        ],
    )
    .await;
    sync();
    assert_same_text(&source, &target).await;
}

/// `sluice verify` reads the columns the DuckDB destination changed to text (numeric `NaN`,
/// timestamps after 294247, BC) and intervals with months: source and target agree.
#[tokio::test]
async fn verify_reads_columns_changed_to_text() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute(
        "CREATE TABLE verified (id int PRIMARY KEY, n numeric(10,2), ts timestamp, \
         tstz timestamptz, iv interval);
         INSERT INTO verified VALUES
           (1, 1.50, '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5+05:30', '1 year 2 mons'),
           (2, NULL, '0044-03-15 12:00:00.5 BC', '0001-01-01 00:00:00+00 BC',
            '-178956970 years -8 mons -2147483648 days -2562047788:00:54.775807'),
           (3, -99999999.99, 'infinity', '-infinity', '-1 days +02:03:00');",
    )
    .await
    .expect("schema");
    let pipeline = Pipeline::new(&db, &["public.verified"], "");
    sync(&pipeline);
    db.execute(
        "INSERT INTO verified VALUES (4, 'NaN', '294276-12-31 23:59:59.999999', \
         '294276-12-31 23:59:59.999999+00', '178956970 years 7 mons 2147483647 days')",
    )
    .await
    .expect("insert");
    sync(&pipeline);
    let types = assert_same_values(&db, &pipeline, "verified").await;
    for column in ["n", "ts", "tstz"] {
        assert_eq!(type_of(&types, column), "VARCHAR", "column {column}");
    }
    let out = Command::new(sluice_bin())
        .args(["verify", "-c"])
        .arg(&pipeline.config)
        .output()
        .expect("run sluice verify");
    assert!(
        out.status.success(),
        "sluice verify:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
