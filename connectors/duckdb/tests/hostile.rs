//! Every generated statement run against DuckDB with hostile identifiers: quotes, spaces,
//! unicode, reserved words, 63-byte names and an injection attempt, in schema, table and
//! column names, through both delete modes.

use sluice_core::pg_type::oid;
use sluice_core::{DeleteMode, Value};

use crate::support::*;

const SCHEMA: &str = "we\"ird s";

fn names() -> Vec<String> {
    vec![
        "select".into(),
        "my \"table\"".into(),
        "ünï cødé 表".into(),
        // 63 bytes, PostgreSQL's longest identifier.
        "x".repeat(63),
        "it's".into(),
    ]
}

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[tokio::test]
async fn hostile_identifiers_everywhere() {
    for mode in [DeleteMode::Soft, DeleteMode::Hard] {
        let mut f = Fixture::with_schema(mode, SCHEMA);
        for table in names() {
            let key = "; DROP TABLE x; --";
            let cols_v1: Vec<Col<'_>> = vec![
                (key, oid::INT4, -1, true),
                ("select", oid::INT2, -1, false),
                ("a \"quoted\" col", oid::TEXT, -1, false),
                ("ünï", oid::INT4_ARRAY, -1, false),
            ];
            let mut cols_v2 = cols_v1.clone();
            // Widened type, and an added column with a hostile name.
            cols_v2[1].1 = oid::INT8;
            let long = "y".repeat(63);
            cols_v2.push((&long, oid::BYTEA, -1, false));
            let v1 = rel("public", &table, 1, &cols_v1);
            let v2 = rel("public", &table, 2, &cols_v2);
            let keyless = rel("public", &format!("{table} log"), 1, &cols_v1[1..]);

            f.apply(&[txn(
                10,
                vec![
                    ins(
                        &v1,
                        vals(&[Some("1"), Some("1"), Some("a'b\"c"), Some("{1,NULL}")]),
                    ),
                    ins(&v1, vals(&[Some("2"), Some("2"), Some("x"), None])),
                    ins(&v1, vals(&[Some("3"), Some("3"), Some("y"), None])),
                    ins(&keyless, vals(&[Some("1"), Some("e"), None])),
                ],
            )])
            .await;
            f.apply(&[
                txn(
                    20,
                    vec![
                        upd(
                            &v2,
                            None,
                            vec![
                                t("1"),
                                t("9000000000"),
                                Value::Unchanged,
                                t("{2}"),
                                t("\\x00"),
                            ],
                        ),
                        del(&v2, vals(&[Some("2"), None, None, None, None])),
                        ins(&keyless, vals(&[Some("2"), Some("f"), Some("{}")])),
                    ],
                ),
                txn(30, vec![truncate(&keyless)]),
            ])
            .await;
            let target = format!("{}.{}", q(SCHEMA), q(&table));
            let expected: Vec<String> = match mode {
                DeleteMode::Soft => vec![
                    "1|9000000000|a'b\"c|[2]|\\x00|false".into(),
                    "2|2|x|NULL|NULL|true".into(),
                    "3|3|y|NULL|NULL|false".into(),
                ],
                DeleteMode::Hard => vec![
                    "1|9000000000|a'b\"c|[2]|\\x00|false".into(),
                    "3|3|y|NULL|NULL|false".into(),
                ],
            };
            assert_eq!(
                f.lines(&format!(
                    "SELECT {}, {}, {}, {}, {}, _sluice_deleted FROM {target} ORDER BY 1",
                    q(key),
                    q("select"),
                    q("a \"quoted\" col"),
                    q("ünï"),
                    q(&long)
                )),
                expected,
                "{mode:?} {table}"
            );
            let log = format!("{}.{}", q(SCHEMA), q(&format!("{table} log")));
            let live = f.lines(&format!(
                "SELECT count(*) FROM {log} WHERE NOT _sluice_deleted"
            ));
            assert_eq!(live, vec!["0"], "{mode:?} {table}: truncated");
        }
        // The injection attempt created nothing and dropped nothing.
        assert_eq!(
            f.lines(&format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = {}",
                "'we\"ird s'"
            )),
            vec![(2 * names().len() + 1).to_string()],
            "{mode:?}"
        );
        assert_eq!(f.reopen().await.map(|c| c.applied_lsn.0), Some(31));
    }
}
