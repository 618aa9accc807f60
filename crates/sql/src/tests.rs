//! Snapshot tests of every statement kind in every dialect, with ordinary and hostile names,
//! and unit tests of the type mappings and evolution rules.

use sluice_core::pg_type::oid;
use sluice_core::{
    Column, DeleteMode, Lsn, PgType, RelationSchema, ReplicaIdentity, Row, RowOp, TableId, Value,
    meta,
};

use super::*;

fn col<T>(name: &str, ty: T, key: bool) -> TargetColumn<T> {
    TargetColumn {
        name: name.into(),
        ty,
        key,
    }
}

/// A 63-byte column name (PostgreSQL's limit).
const LONG: &str = "c_23456789_123456789_123456789_123456789_123456789_123456789_12";
const HOSTILE_TABLE: &str = "; DROP TABLE x; --";
const HOSTILE_SCHEMA: &str = "we\"ird s";

/// Relation columns of every kind, with hostile names: quotes, spaces, unicode, a reserved
/// word, a 63-byte name and an injection attempt.
fn relation_columns() -> Vec<(&'static str, PgType, bool)> {
    vec![
        ("id", PgType::Int8, true),
        ("we\"ird", PgType::Text, true),
        (
            "with space",
            PgType::Numeric {
                precision: Some(12),
                scale: Some(2),
            },
            false,
        ),
        ("ünïcödé", PgType::Bytea, false),
        ("select", PgType::Array(Box::new(PgType::Int4)), false),
        (LONG, PgType::Jsonb, false),
        ("; DROP TABLE x; --", PgType::TimestampTz, false),
        ("u", PgType::Uuid, false),
        ("vc", PgType::Varchar(Some(10)), false),
    ]
}

fn columns_of<D: SqlDialect>(d: &D) -> Vec<TargetColumn<D::Type>> {
    relation_columns()
        .into_iter()
        .map(|(n, pg, key)| col(n, d.map_type(&pg, 1), key))
        .collect()
}

fn checkpoint_row() -> CheckpointRow<'static> {
    CheckpointRow {
        pipeline: "it's \\ main",
        position: r#"{"partitions":{"0":"12"}}"#,
        applied_lsn: 0x16_B374_D848,
        applied_lsn_text: "16/B374D848",
        applied_commit_ts: 1_700_000_000_123_456,
    }
}

/// Every statement kind of `d`, snapshotted under `prefix`.
fn snapshot_every_statement<D: SqlDialect>(d: &D, prefix: &str) {
    let columns = columns_of(d);
    let keyless: Vec<_> = columns
        .iter()
        .cloned()
        .map(|mut c| {
            c.key = false;
            c
        })
        .collect();
    let s = HOSTILE_SCHEMA;
    let t = HOSTILE_TABLE;
    let snap = |name: &str, sql: String| {
        insta::assert_snapshot!(format!("{prefix}_{name}"), sql);
    };
    snap("quote_ident", d.quote_ident("a\"b; DROP TABLE x; --"));
    snap("quote_literal", d.quote_literal("it's a \\ back'slash"));
    snap("create_schema", d.create_schema(s));
    snap("create_table", d.create_table(s, t, &columns));
    snap("add_column", d.add_column(s, t, LONG, &columns[5].ty));
    snap(
        "alter_column_type",
        d.alter_column_type(s, t, "select", &columns[0].ty),
    );
    snap("table_columns", d.table_columns("it's", t));
    snap("create_stage", d.create_stage(3, 2));
    snap("drop_stage", d.drop_stage());
    snap(
        "merge_soft",
        d.merge(s, t, &columns, DeleteMode::Soft, false, true, Guard::Newer)
            .join(";\n"),
    );
    snap(
        "merge_hard",
        d.merge(s, t, &columns, DeleteMode::Hard, false, true, Guard::Newer)
            .join(";\n"),
    );
    snap(
        "merge_moved",
        d.merge(s, t, &columns, DeleteMode::Soft, true, true, Guard::Newer)
            .join(";\n"),
    );
    snap(
        "merge_without_unchanged",
        d.merge(s, t, &columns, DeleteMode::Soft, false, false, Guard::Newer)
            .join(";\n"),
    );
    snap("append", d.append(s, t, &keyless));
    snap("any_key_loaded", d.any_key_loaded(s, t, &columns));
    snap(
        "truncate_soft",
        d.truncate_below(s, t, 42, DeleteMode::Soft),
    );
    snap(
        "truncate_hard",
        d.truncate_below(s, t, 42, DeleteMode::Hard),
    );
    snap("create_checkpoint_table", d.create_checkpoint_table(s));
    snap(
        "upsert_checkpoint",
        d.upsert_checkpoint(s, &checkpoint_row()).join(";\n"),
    );
    snap("select_checkpoint", d.select_checkpoint(s, "it's \\ main"));
    let types = relation_columns()
        .iter()
        .map(|(n, pg, _)| format!("{n}: {pg:?} -> {}", d.map_type(pg, 1)))
        .collect::<Vec<_>>()
        .join("\n");
    snap("types", types);
}

#[test]
fn duckdb_statements() {
    snapshot_every_statement(&DuckDb { json: true }, "duckdb");
}

#[test]
fn postgres_statements() {
    snapshot_every_statement(&Postgres, "postgres");
}

#[test]
fn redshift_statements() {
    snapshot_every_statement(&Redshift, "redshift");
}

#[test]
fn snowflake_statements() {
    snapshot_every_statement(&Snowflake::default(), "snowflake");
}

#[test]
fn hostile_names_stay_inside_their_quotes() {
    for q in [
        DuckDb { json: true }.quote_ident(HOSTILE_SCHEMA),
        Postgres.quote_ident(HOSTILE_SCHEMA),
        Redshift.quote_ident(HOSTILE_SCHEMA),
        Snowflake::default().quote_ident(HOSTILE_SCHEMA),
    ] {
        assert_eq!(q, "\"we\"\"ird s\"");
    }
    assert_eq!(Postgres.quote_literal("it's"), "'it''s'");
    assert_eq!(Postgres.quote_literal("back\\slash"), "'back\\slash'");
    assert_eq!(Redshift.quote_literal("back\\slash'"), "'back\\\\slash'''");
    // Every quote a statement holds is balanced: the injection stays one identifier.
    for sql in Postgres.merge(
        HOSTILE_SCHEMA,
        HOSTILE_TABLE,
        &columns_of(&Postgres),
        DeleteMode::Soft,
        true,
        true,
        Guard::Newer,
    ) {
        assert_eq!(sql.matches('"').count() % 2, 0, "{sql}");
    }
}

// ---- DuckDB: the statements the DuckDB destination ran before the dialect layer existed ----

fn duck_columns() -> Vec<TargetColumn<DuckType>> {
    vec![
        col("id", DuckType::BigInt, true),
        col("name", DuckType::Varchar, false),
        col("amount", DuckType::Decimal(12, 2), false),
        col("payload", DuckType::Blob, false),
        col(
            "tags",
            DuckType::List(Box::new(DuckType::List(Box::new(DuckType::Integer)))),
            false,
        ),
    ]
}

const DUCK: DuckDb = DuckDb { json: true };

#[test]
fn duckdb_legacy_statements() {
    let d = DUCK;
    insta::assert_snapshot!("create_schema", d.create_schema("we\"ird s"));
    insta::assert_snapshot!(
        "create_table",
        d.create_table("raw", "orders", &duck_columns())
    );
    insta::assert_snapshot!(
        "add_column",
        d.add_column("raw", "; DROP TABLE x; --", "sélect", &DuckType::Uuid)
    );
    insta::assert_snapshot!(
        "alter_column_type",
        d.alter_column_type("raw", "t", "n", &DuckType::BigInt)
    );
    insta::assert_snapshot!("table_columns", d.table_columns("it's", "t"));
    insta::assert_snapshot!("create_stage", d.create_stage(3, 1));
    insta::assert_snapshot!("drop_stage", d.drop_stage());
    insta::assert_snapshot!(
        "check_stage",
        d.check_stage(&duck_columns()).expect("checks").0
    );
    insta::assert_snapshot!(
        "merge_soft",
        d.merge(
            "raw",
            "orders",
            &duck_columns(),
            DeleteMode::Soft,
            false,
            true,
            Guard::Newer
        )
        .join(";\n")
    );
    insta::assert_snapshot!(
        "merge_hard",
        d.merge(
            "raw",
            "orders",
            &duck_columns(),
            DeleteMode::Hard,
            false,
            true,
            Guard::Newer
        )
        .join(";\n")
    );
    insta::assert_snapshot!("append", d.append("raw", "events", &duck_columns()[1..]));
    insta::assert_snapshot!(
        "truncate_soft",
        d.truncate_below("raw", "t", 42, DeleteMode::Soft)
    );
    insta::assert_snapshot!(
        "truncate_hard",
        d.truncate_below("raw", "t", 42, DeleteMode::Hard)
    );
    insta::assert_snapshot!("create_checkpoint_table", d.create_checkpoint_table("raw"));
    insta::assert_snapshot!(
        "upsert_checkpoint",
        d.upsert_checkpoint(
            "raw",
            &CheckpointRow {
                pipeline: "it's",
                position: r#"{"partitions":{"0":"12"}}"#,
                applied_lsn: 0x16_B374_D848,
                applied_lsn_text: "16/B374D848",
                applied_commit_ts: 1_700_000_000_123_456,
            }
        )
        .join(";\n")
    );
    insta::assert_snapshot!("select_checkpoint", d.select_checkpoint("raw", "main"));
}

#[test]
fn duckdb_conversions() {
    let d = DUCK;
    let list2 = DuckType::List(Box::new(DuckType::List(Box::new(DuckType::Blob))));
    assert_eq!(
        d.convert("c0", &list2),
        "list_transform(CAST(c0 AS VARCHAR[][]), lambda x1: list_transform(x1, lambda x2: \
         from_hex(x2)))"
    );
    let texts = DuckType::List(Box::new(DuckType::Varchar));
    assert_eq!(d.convert("c0", &texts), "CAST(c0 AS VARCHAR[])");
    assert_eq!(d.convert("c0", &DuckType::Varchar), "c0");
    assert_eq!(d.convert("c0", &DuckType::Date), "CAST(c0 AS DATE)");
    assert_eq!(
        d.check_stage(&duck_columns()).expect("checks").1,
        vec![0, 2, 4]
    );
    assert!(
        d.check_stage(&[col("a", DuckType::Varchar, true)])
            .is_none()
    );
}

fn numeric(p: i32, s: i32) -> i32 {
    ((p << 16) | s) + 4
}

/// A column whose staged values its type cannot hold becomes text, its values converted into
/// the text PostgreSQL prints; a later relation keeps the text column.
#[test]
fn duckdb_to_text() {
    let d = DUCK;
    let list = |t| DuckType::List(Box::new(t));
    assert_eq!(
        DuckDb::text_type(&DuckType::Decimal(10, 2)),
        DuckType::Varchar
    );
    assert_eq!(
        DuckDb::text_type(&list(list(DuckType::Timestamp))),
        list(list(DuckType::Varchar))
    );
    insta::assert_snapshot!(
        "to_text_decimal",
        d.to_text_column("raw", "t", "n", &DuckType::Decimal(10, 2))
            .expect("decimal")
    );
    insta::assert_snapshot!(
        "to_text_timestamptz_list",
        d.to_text_column("raw", "t", "ts", &list(DuckType::TimestampTz))
            .expect("timestamptz")
    );
    // PostgreSQL values of the other types always fit: one that does not is a bad value.
    for ty in [
        DuckType::Integer,
        DuckType::Double,
        DuckType::Date,
        DuckType::Interval,
        list(DuckType::SmallInt),
    ] {
        assert!(d.to_text_column("raw", "t", "c", &ty).is_none(), "{ty}");
    }
    // A source column changed to text: DuckDB's text with PostgreSQL's BC years.
    insta::assert_snapshot!(
        "alter_into_text_list",
        d.alter_column_type("raw", "t", "ts", &list(list(DuckType::Varchar)))
    );
    // The next batch's relation maps to the typed column again: the text column stays.
    for ty in [
        DuckType::Decimal(10, 2),
        DuckType::Timestamp,
        DuckType::TimestampTz,
        list(DuckType::Timestamp),
    ] {
        assert!(
            d.converts_exactly(&ty, &DuckDb::text_type(&ty)),
            "{ty} into text"
        );
    }
}

#[test]
fn duckdb_mapping() {
    let d = DUCK;
    let cases = [
        (PgType::Bool, "BOOLEAN"),
        (PgType::Int8, "BIGINT"),
        (PgType::Float4, "REAL"),
        (
            PgType::from_oid(oid::NUMERIC, numeric(38, 10)),
            "DECIMAL(38,10)",
        ),
        (PgType::from_oid(oid::NUMERIC, numeric(39, 2)), "VARCHAR"),
        (PgType::from_oid(oid::NUMERIC, -1), "VARCHAR"),
        (PgType::from_oid(oid::NUMERIC, numeric(5, 7)), "VARCHAR"),
        (PgType::Bpchar(Some(3)), "VARCHAR"),
        (PgType::Bytea, "BLOB"),
        (PgType::Jsonb, "JSON"),
        (PgType::TimeTz, "TIMETZ"),
        (PgType::TimestampTz, "TIMESTAMPTZ"),
        (PgType::Interval, "INTERVAL"),
        (PgType::Other(600), "VARCHAR"),
        (PgType::from_oid(oid::INT4_ARRAY, -1), "INTEGER[]"),
        (PgType::from_oid(oid::OID, -1), "BIGINT"),
        (PgType::from_oid(oid::OID_ARRAY, -1), "BIGINT[]"),
        (PgType::from_oid(oid::INTERVAL_ARRAY, -1), "INTERVAL[]"),
        (PgType::from_oid(oid::TIMETZ_ARRAY, -1), "TIMETZ[]"),
    ];
    for (pg, duck) in cases {
        assert_eq!(d.map_type(&pg, 1).to_string(), duck, "{pg:?}");
    }
    assert_eq!(
        DuckDb { json: false }.map_type(&PgType::Json, 1),
        DuckType::Varchar
    );
    assert_eq!(
        d.map_type(&PgType::from_oid(oid::TEXT_ARRAY, -1), 2)
            .to_string(),
        "VARCHAR[][]"
    );
}

#[test]
fn duckdb_parses_catalog_names() {
    for t in [
        "BOOLEAN",
        "DECIMAL(38,10)",
        "BIGINT[]",
        "VARCHAR[][]",
        "JSON",
        "UUID",
        "INTERVAL",
        "TIMESTAMP",
    ] {
        assert_eq!(
            DuckType::parse(t).map(|t| t.to_string()).as_deref(),
            Some(t)
        );
    }
    assert_eq!(
        DuckType::parse("TIMESTAMP WITH TIME ZONE"),
        Some(DuckType::TimestampTz)
    );
    assert_eq!(
        DuckType::parse("TIME WITH TIME ZONE"),
        Some(DuckType::TimeTz)
    );
    assert_eq!(DuckType::parse("FLOAT"), Some(DuckType::Real));
    assert_eq!(DuckType::parse("STRUCT(a INTEGER)"), None);
}

#[test]
fn dims() {
    assert_eq!(array_dims("{1,2}"), Some(1));
    assert_eq!(array_dims("{{1,2},{3,4}}"), Some(2));
    assert_eq!(array_dims("{\"{x\"}"), Some(1));
    assert_eq!(array_dims("{}"), None);
    assert_eq!(array_dims("[0:1]={1,2}"), Some(1));
}

// ---- PostgreSQL ----

#[test]
fn postgres_mapping_is_identity() {
    let d = Postgres;
    let cases = [
        (oid::BOOL, -1, "boolean"),
        (oid::INT2, -1, "smallint"),
        (oid::FLOAT8, -1, "double precision"),
        (oid::NUMERIC, numeric(38, 10), "numeric(38,10)"),
        (oid::NUMERIC, -1, "numeric"),
        (
            oid::NUMERIC,
            ((5 << 16) | (0xFFFF & -2)) + 4,
            "numeric(5,-2)",
        ),
        (oid::VARCHAR, 14, "character varying(10)"),
        (oid::VARCHAR, -1, "character varying"),
        (oid::BPCHAR, 7, "character(3)"),
        (oid::TIMETZ, -1, "time with time zone"),
        (oid::TIMESTAMPTZ, -1, "timestamp with time zone"),
        (oid::INT4_ARRAY, -1, "integer[]"),
        (oid::VARCHAR_ARRAY, 9, "character varying(5)[]"),
        (869, -1, "inet"),
        (1041, -1, "inet[]"),
        (1187, -1, "interval[]"),
        (600, -1, "point"),
        (1560, 8, "bit varying"),
        (3911, -1, "tstzrange[]"),
        (18, -1, "\"char\""),
        (790, -1, "text"),
        (16_500, -1, "text"),
    ];
    for (o, m, want) in cases {
        let ty = d.map_type(&PgType::from_oid(o, m), 1);
        assert_eq!(ty.to_string(), want, "{o}");
        // format_type() prints what Display prints: catalog types parse back.
        assert_eq!(PgTarget::parse(want), Some(ty), "{want}");
    }
}

#[test]
fn postgres_widening() {
    use PgTarget::*;
    let ok = [
        (SmallInt, BigInt),
        (Integer, Numeric(Some((12, 2)))),
        (Numeric(Some((10, 2))), Numeric(Some((12, 4)))),
        (Numeric(Some((10, 2))), Numeric(None)),
        (Varchar(Some(5)), Varchar(Some(10))),
        (Varchar(Some(5)), Text),
        (Real, Double),
        (Array(Box::new(Integer)), Array(Box::new(BigInt))),
    ];
    for (a, b) in ok {
        assert!(a.converts_exactly_into(&b), "{a} -> {b}");
    }
    let refused = [
        (BigInt, Integer),
        (Integer, Numeric(Some((9, 2)))),
        (Numeric(Some((12, 4))), Numeric(Some((12, 2)))),
        (Varchar(Some(10)), Varchar(Some(5))),
        (Char(Some(3)), Text),
        (Timestamp, TimestampTz),
        (Text, Integer),
    ];
    for (a, b) in refused {
        assert!(!a.converts_exactly_into(&b), "{a} -> {b}");
    }
}

// ---- Redshift ----

#[test]
fn redshift_mapping_and_limits() {
    let d = Redshift;
    let cases = [
        (PgType::Jsonb, "SUPER"),
        (PgType::Array(Box::new(PgType::Int4)), "SUPER"),
        (PgType::Text, "VARCHAR(65535)"),
        (PgType::Varchar(Some(10)), "VARCHAR(40)"),
        (PgType::Varchar(Some(100_000)), "VARCHAR(65535)"),
        (PgType::Uuid, "CHAR(36)"),
        (PgType::Bytea, "VARBYTE(1024000)"),
        (PgType::TimestampTz, "TIMESTAMPTZ"),
        (
            PgType::from_oid(oid::NUMERIC, numeric(38, 10)),
            "NUMERIC(38,10)",
        ),
        (
            PgType::from_oid(oid::NUMERIC, numeric(39, 10)),
            "VARCHAR(65535)",
        ),
        (PgType::from_oid(oid::NUMERIC, -1), "VARCHAR(65535)"),
        (PgType::Interval, "VARCHAR(65535)"),
    ];
    for (pg, want) in cases {
        let ty = d.map_type(&pg, 1);
        assert_eq!(ty.to_string(), want, "{pg:?}");
        assert_eq!(RsType::parse(want), Some(ty));
    }
    let long = "é".repeat(40_000);
    let reason = d.reject(&RsType::Varchar(65535), &long).expect("too long");
    assert_eq!(
        reason,
        "a value of 80000 bytes is longer than the 65535 bytes VARCHAR(65535) holds"
    );
    assert!(d.reject(&RsType::Varchar(65535), "short").is_none());
    assert!(d.reject(&RsType::Numeric(10, 2), "NaN").is_some());
    assert!(d.reject(&RsType::TimestampTz, "infinity").is_some());
    assert!(d.converts_exactly(&RsType::Varchar(10), &RsType::Varchar(20)));
    assert!(!d.converts_exactly(&RsType::Integer, &RsType::BigInt));
    assert_eq!(
        RsType::parse("character varying(256)"),
        Some(RsType::Varchar(256))
    );
    assert_eq!(
        RsType::parse("timestamp with time zone"),
        Some(RsType::TimestampTz)
    );
}

// ---- evolution, for every dialect ----

fn relation(columns: &[(&str, u32, i32, bool)]) -> RelationSchema {
    RelationSchema {
        table: TableId::new("public", "t"),
        oid: 1,
        version: 1,
        replica_identity: ReplicaIdentity::Default,
        columns: columns
            .iter()
            .map(|&(name, type_oid, type_modifier, key)| Column {
                name: name.into(),
                type_oid,
                type_modifier,
                key,
                nullable: true,
            })
            .collect(),
    }
}

fn existing(cols: &[(&str, &str)], meta_types: [&str; 4]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = cols
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    for (n, t) in [meta::LSN, meta::COMMIT_TS, meta::DELETED, meta::SYNCED_AT]
        .into_iter()
        .zip(meta_types)
    {
        v.push((n.to_owned(), t.to_owned()));
    }
    v
}

const DUCK_META: [&str; 4] = [
    "BIGINT",
    "TIMESTAMP WITH TIME ZONE",
    "BOOLEAN",
    "TIMESTAMP WITH TIME ZONE",
];
const PG_META: [&str; 4] = [
    "bigint",
    "timestamp with time zone",
    "boolean",
    "timestamp with time zone",
];

#[test]
fn duckdb_evolution() {
    let r = relation(&[
        ("id", oid::INT8, -1, true),
        ("n", oid::INT4, -1, false),
        ("amount", oid::NUMERIC, numeric(12, 2), false),
        ("added", oid::TEXT, -1, false),
    ]);
    let cols = existing(
        &[
            ("id", "BIGINT"),
            ("n", "SMALLINT"),
            ("amount", "DECIMAL(10,2)"),
            ("gone", "VARCHAR"),
        ],
        DUCK_META,
    );
    let p = plan(&DUCK, "raw", &r, Some(&cols), &[]).expect("safe changes");
    assert_eq!(
        p.ddl,
        vec![
            "ALTER TABLE \"raw\".\"t\" ALTER COLUMN \"n\" SET DATA TYPE INTEGER",
            "ALTER TABLE \"raw\".\"t\" ALTER COLUMN \"amount\" SET DATA TYPE DECIMAL(12,2)",
            "ALTER TABLE \"raw\".\"t\" ADD COLUMN \"added\" VARCHAR",
        ]
    );
    // The dropped column follows the relation's columns, staged NULL from now on.
    let names: Vec<_> = p.columns.iter().map(|c| (c.name.as_str(), c.key)).collect();
    assert_eq!(
        names,
        [
            ("id", true),
            ("n", false),
            ("amount", false),
            ("added", false),
            ("gone", false)
        ]
    );
    let narrower = existing(&[("id", "BIGINT"), ("n", "BIGINT")], DUCK_META);
    let p = plan(&DUCK, "raw", &r, Some(&narrower), &[]).expect("narrower source");
    assert_eq!(p.columns[1].ty, DuckType::BigInt);

    let unsafe_change = existing(&[("id", "BIGINT"), ("n", "TIMESTAMP")], DUCK_META);
    let err = plan(&DUCK, "raw", &r, Some(&unsafe_change), &[]).expect_err("unsafe");
    assert_eq!(
        err.to_string(),
        "table \"raw\".\"t\": column \"n\" changed from TIMESTAMP to INTEGER, which cannot \
         hold every existing value exactly"
    );
    assert_eq!(err.source_table, r.table, "the source table to park");
}

#[test]
fn postgres_evolution() {
    let r = relation(&[
        ("id", oid::INT8, -1, true),
        ("n", oid::INT4, -1, false),
        ("amount", oid::NUMERIC, numeric(12, 2), false),
        ("v", oid::VARCHAR, 24, false),
        ("added", oid::JSONB, -1, false),
    ]);
    let cols = existing(
        &[
            ("id", "bigint"),
            ("n", "smallint"),
            ("amount", "numeric(10,2)"),
            ("v", "character varying(10)"),
        ],
        PG_META,
    );
    let p = plan(&Postgres, "raw", &r, Some(&cols), &[]).expect("safe changes");
    insta::assert_snapshot!("postgres_evolution_ddl", p.ddl.join(";\n"));
    let unsafe_change = existing(
        &[("id", "bigint"), ("n", "timestamp without time zone")],
        PG_META,
    );
    let err = plan(&Postgres, "raw", &r, Some(&unsafe_change), &[]).expect_err("unsafe");
    assert_eq!(
        err.to_string(),
        "table \"raw\".\"t\": column \"n\" changed from timestamp without time zone to integer, which cannot hold \
         every existing value exactly"
    );
}

#[test]
fn refuses_foreign_tables_reserved_and_long_names() {
    let r = relation(&[("id", oid::INT8, -1, true)]);
    let foreign = vec![("id".to_owned(), "BIGINT".to_owned())];
    assert!(plan(&DUCK, "raw", &r, Some(&foreign), &[]).is_err());
    let reserved = relation(&[("_sluice_lsn", oid::INT8, -1, true)]);
    assert!(plan(&Postgres, "raw", &reserved, None, &[]).is_err());
    let ok = relation(&[(LONG, oid::INT8, -1, true)]);
    assert!(plan(&Postgres, "raw", &ok, None, &[]).is_ok());
    let long = format!("{LONG}x");
    let too_long = relation(&[(long.as_str(), oid::INT8, -1, true)]);
    let err = plan(&Postgres, "raw", &too_long, None, &[]).expect_err("64 bytes");
    assert!(
        err.reason
            .contains("longer than the 63 bytes postgres keeps"),
        "{err}"
    );
    assert!(plan(&DUCK, "raw", &too_long, None, &[]).is_ok());
}

#[test]
fn list_depth_from_rows() {
    let r = relation(&[
        ("id", oid::INT4, -1, true),
        ("m", oid::INT4_ARRAY, -1, false),
    ]);
    let row = Row {
        op: RowOp::Upsert,
        values: vec![Value::from("1"), Value::from("{{1,2},{3,4}}")],
        lsn: Lsn(1),
        commit_ts: 0,
        moved_from: None,
    };
    let p = plan(&DUCK, "raw", &r, None, std::slice::from_ref(&row)).expect("plan");
    assert_eq!(p.columns[1].ty.to_string(), "INTEGER[][]");
    let p = plan(&Postgres, "raw", &r, None, &[row]).expect("plan");
    assert_eq!(p.columns[1].ty.to_string(), "integer[]");
}

#[test]
fn kept_as_text_names_the_duckdb_fallback_columns() {
    let d = DuckDb { json: true };
    let numeric = |precision, scale| PgType::Numeric { precision, scale };
    assert!(d.kept_as_text(&PgType::Int8).is_none());
    assert!(d.kept_as_text(&PgType::Text).is_none());
    assert!(d.kept_as_text(&numeric(Some(10), Some(2))).is_none());
    assert!(d.kept_as_text(&numeric(None, None)).is_some());
    assert!(d.kept_as_text(&numeric(Some(50), Some(2))).is_some());
    // inet (OID 869), alone and in an array.
    assert!(d.kept_as_text(&PgType::Other(869)).is_some());
    assert!(
        d.kept_as_text(&PgType::Array(Box::new(PgType::Other(869))))
            .is_some()
    );
    assert!(d.kept_as_text(&PgType::Jsonb).is_none());
    assert!(
        DuckDb { json: false }
            .kept_as_text(&PgType::Jsonb)
            .is_some()
    );
    // Every column kept as text maps to VARCHAR (or a list of it), and only those.
    for pg in [
        PgType::Int4,
        numeric(None, None),
        numeric(Some(12), Some(3)),
        PgType::Other(869),
        PgType::Uuid,
        PgType::Interval,
    ] {
        let varchar = matches!(d.map_type(&pg, 0), DuckType::Varchar);
        assert_eq!(d.kept_as_text(&pg).is_some(), varchar, "{pg:?}");
    }
}

/// The README's type table says what the code does: every PostgreSQL type it names maps to the
/// DuckDB type and the PostgreSQL target type in its row.
#[test]
fn readme_type_table_matches_map_type() {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));
    let table = readme
        .split("| PostgreSQL | DuckDB | PostgreSQL target | notes |")
        .nth(1)
        .expect("the README has the type table");
    // A name as the README writes it: (type OID, modifier). Modifiers give the README's
    // placeholders: numeric(10,2) is numeric(p,s), varchar(10) and char(3) are (n).
    let source = |name: &str| -> Option<(u32, i32)> {
        Some(match name {
            "bool" => (16, -1),
            "int2" => (21, -1),
            "int4" => (23, -1),
            "int8" => (20, -1),
            "oid" => (26, -1),
            "float4" => (700, -1),
            "float8" => (701, -1),
            "numeric(p,s)" => (1700, ((10 << 16) | 2) + 4),
            "numeric" => (1700, -1),
            "money" => (790, -1),
            "text" => (25, -1),
            "varchar(n)" => (1043, 14),
            "char(n)" => (1042, 7),
            "name" => (19, -1),
            "\"char\"" => (18, -1),
            "bytea" => (17, -1),
            "uuid" => (2950, -1),
            "json" => (114, -1),
            "jsonb" => (3802, -1),
            "date" => (1082, -1),
            "time" => (1083, -1),
            "timetz" => (1266, -1),
            "timestamp" => (1114, -1),
            "timestamptz" => (1184, -1),
            "interval" => (1186, -1),
            "inet" => (869, -1),
            "cidr" => (650, -1),
            "macaddr" => (829, -1),
            "macaddr8" => (774, -1),
            "bit(n)" => (1560, 8),
            "varbit" => (1562, -1),
            "xml" => (142, -1),
            "tsvector" => (3614, -1),
            "point" => (600, -1),
            "int4range" => (3904, -1),
            "int8range" => (3926, -1),
            "numrange" => (3906, -1),
            "tsrange" => (3908, -1),
            "tstzrange" => (3910, -1),
            "daterange" => (3912, -1),
            _ => return None,
        })
    };
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let duck = DuckDb { json: true };
    let placeholders = |t: String| {
        t.replace("DECIMAL(10,2)", "DECIMAL(p,s)")
            .replace("numeric(10,2)", "numeric(p,s)")
            .replace("character varying(10)", "character varying(n)")
            .replace("character(3)", "character(n)")
    };
    let mut checked = 0;
    for line in table.lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').collect();
        let names: Vec<String> = ticked(cells[1])
            .into_iter()
            .filter(|n| source(n).is_some())
            .collect();
        let (duck_cell, pg_cell) = (ticked(cells[2]), ticked(cells[3]));
        // One type per name, or one for all of them.
        let pick = |cell: &[String], i: usize| -> String {
            if cell.len() == names.len() {
                cell[i].clone()
            } else {
                cell[0].clone()
            }
        };
        for (i, name) in names.iter().enumerate() {
            let (oid, modifier) = source(name).expect("filtered");
            let pg = PgType::from_oid(oid, modifier);
            assert_eq!(
                placeholders(duck.map_type(&pg, 0).to_string()),
                pick(&duck_cell, i),
                "DuckDB, README row {line}"
            );
            assert_eq!(
                placeholders(Postgres.map_type(&pg, 0).to_string()),
                pick(&pg_cell, i),
                "PostgreSQL target, README row {line}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 39, "only {checked} README types checked");
    // Enums (any user type), arrays and anything else: text, lists and arrays.
    let user = PgType::from_oid(16_500, -1);
    assert_eq!(duck.map_type(&user, 0).to_string(), "VARCHAR");
    assert_eq!(Postgres.map_type(&user, 0).to_string(), "text");
    let inet_array = PgType::from_oid(1041, -1);
    assert_eq!(duck.map_type(&inet_array, 1).to_string(), "VARCHAR");
    assert_eq!(Postgres.map_type(&inet_array, 1).to_string(), "inet[]");
    let ints = PgType::from_oid(oid::INT4_ARRAY, -1);
    assert_eq!(duck.map_type(&ints, 2).to_string(), "INTEGER[][]");
    assert_eq!(Postgres.map_type(&ints, 2).to_string(), "integer[]");
}

#[test]
fn the_guard_decides_whether_equal_positions_apply() {
    let d = DuckDb { json: true };
    let columns = duck_columns();
    let newer = d.merge(
        "raw",
        "orders",
        &columns,
        DeleteMode::Soft,
        false,
        true,
        Guard::Newer,
    );
    let not_older = d.merge(
        "raw",
        "orders",
        &columns,
        DeleteMode::Soft,
        false,
        true,
        Guard::NotOlder,
    );
    assert!(newer[0].contains(r#"s."_sluice_lsn" > t."_sluice_lsn""#));
    assert!(!newer[0].contains(">="));
    assert!(not_older[0].contains(r#"s."_sluice_lsn" >= t."_sluice_lsn""#));
    for sql in Redshift.merge(
        "raw",
        "orders",
        &columns_of(&Redshift),
        DeleteMode::Hard,
        false,
        true,
        Guard::NotOlder,
    ) {
        assert!(!sql.contains(r#"s."_sluice_lsn" > "#), "{sql}");
    }
}

#[test]
fn a_continued_transaction_truncates_its_own_earlier_rows() {
    assert_eq!(Guard::Newer.truncate_below(Lsn(20)), Lsn(20));
    assert_eq!(Guard::NotOlder.truncate_below(Lsn(20)), Lsn(21));
}
