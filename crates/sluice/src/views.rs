//! `sluice views install`: the KPI views over the loaded tables.
//!
//! The views are plain SQL files in the repository's `sql/<dialect>/<view>.sql`, embedded in
//! the binary. Each file is one `CREATE OR REPLACE VIEW {schema}.<view> AS ...` statement;
//! `{schema}` is replaced by the configured target schema, quoted, at install time. The files
//! say in a header comment what each view answers and how its window works (always by event
//! time, soft-deleted rows left out).
//!
//! Installing runs every view of the target's dialect in one transaction, in catalog order (a
//! view before the views that read it), so a failure leaves the previous views in place; on
//! Snowflake, where every DDL statement commits on its own, a failure leaves the views before
//! it replaced and the others as they were. The views read the retail tables of the demo
//! (`tests/demo/retail.sql`), which must already be loaded: PostgreSQL, DuckDB and Snowflake
//! check a view's tables when it is created. A DuckDB file is opened read-write only for the
//! install, and the install fails while `sluice sync` holds it.

use crate::Failure;
use crate::settings::Settings;

/// One KPI view: its name and its `CREATE OR REPLACE VIEW` statement with `{schema}` unfilled.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub name: &'static str,
    sql: &'static str,
}

/// The placeholder in the SQL files that becomes the quoted target schema.
const SCHEMA_PLACEHOLDER: &str = "{schema}";

/// Dialects with KPI views; the others (`bigquery`, `redshift`) get a directory under `sql/`
/// when their target exists.
pub const DIALECTS: &[&str] = &["duckdb", "postgres", "snowflake"];

/// `sql/duckdb/`, in install order.
const DUCKDB: &[View] = &[
    View {
        name: "stock_on_hand",
        sql: include_str!("../../../sql/duckdb/stock_on_hand.sql"),
    },
    View {
        name: "low_stock",
        sql: include_str!("../../../sql/duckdb/low_stock.sql"),
    },
    View {
        name: "orders_per_minute",
        sql: include_str!("../../../sql/duckdb/orders_per_minute.sql"),
    },
    View {
        name: "revenue_15m_hopping",
        sql: include_str!("../../../sql/duckdb/revenue_15m_hopping.sql"),
    },
    View {
        name: "product_revenue_1h_moving_avg",
        sql: include_str!("../../../sql/duckdb/product_revenue_1h_moving_avg.sql"),
    },
    View {
        name: "customer_sessions",
        sql: include_str!("../../../sql/duckdb/customer_sessions.sql"),
    },
    View {
        name: "fraud_card_countries",
        sql: include_str!("../../../sql/duckdb/fraud_card_countries.sql"),
    },
    View {
        name: "fraud_card_velocity",
        sql: include_str!("../../../sql/duckdb/fraud_card_velocity.sql"),
    },
    View {
        name: "fraud_refund_share",
        sql: include_str!("../../../sql/duckdb/fraud_refund_share.sql"),
    },
    View {
        name: "pipeline_freshness",
        sql: include_str!("../../../sql/duckdb/pipeline_freshness.sql"),
    },
];

/// `sql/postgres/`, in install order.
const POSTGRES: &[View] = &[
    View {
        name: "stock_on_hand",
        sql: include_str!("../../../sql/postgres/stock_on_hand.sql"),
    },
    View {
        name: "low_stock",
        sql: include_str!("../../../sql/postgres/low_stock.sql"),
    },
    View {
        name: "orders_per_minute",
        sql: include_str!("../../../sql/postgres/orders_per_minute.sql"),
    },
    View {
        name: "revenue_15m_hopping",
        sql: include_str!("../../../sql/postgres/revenue_15m_hopping.sql"),
    },
    View {
        name: "product_revenue_1h_moving_avg",
        sql: include_str!("../../../sql/postgres/product_revenue_1h_moving_avg.sql"),
    },
    View {
        name: "customer_sessions",
        sql: include_str!("../../../sql/postgres/customer_sessions.sql"),
    },
    View {
        name: "fraud_card_countries",
        sql: include_str!("../../../sql/postgres/fraud_card_countries.sql"),
    },
    View {
        name: "fraud_card_velocity",
        sql: include_str!("../../../sql/postgres/fraud_card_velocity.sql"),
    },
    View {
        name: "fraud_refund_share",
        sql: include_str!("../../../sql/postgres/fraud_refund_share.sql"),
    },
    View {
        name: "pipeline_freshness",
        sql: include_str!("../../../sql/postgres/pipeline_freshness.sql"),
    },
];

/// `sql/snowflake/`, in install order.
const SNOWFLAKE: &[View] = &[
    View {
        name: "stock_on_hand",
        sql: include_str!("../../../sql/snowflake/stock_on_hand.sql"),
    },
    View {
        name: "low_stock",
        sql: include_str!("../../../sql/snowflake/low_stock.sql"),
    },
    View {
        name: "orders_per_minute",
        sql: include_str!("../../../sql/snowflake/orders_per_minute.sql"),
    },
    View {
        name: "revenue_15m_hopping",
        sql: include_str!("../../../sql/snowflake/revenue_15m_hopping.sql"),
    },
    View {
        name: "product_revenue_1h_moving_avg",
        sql: include_str!("../../../sql/snowflake/product_revenue_1h_moving_avg.sql"),
    },
    View {
        name: "customer_sessions",
        sql: include_str!("../../../sql/snowflake/customer_sessions.sql"),
    },
    View {
        name: "fraud_card_countries",
        sql: include_str!("../../../sql/snowflake/fraud_card_countries.sql"),
    },
    View {
        name: "fraud_card_velocity",
        sql: include_str!("../../../sql/snowflake/fraud_card_velocity.sql"),
    },
    View {
        name: "fraud_refund_share",
        sql: include_str!("../../../sql/snowflake/fraud_refund_share.sql"),
    },
    View {
        name: "pipeline_freshness",
        sql: include_str!("../../../sql/snowflake/pipeline_freshness.sql"),
    },
];

/// The views of a dialect (the directory under `sql/`), in install order.
pub fn catalog(dialect: &str) -> Result<&'static [View], Unsupported> {
    match dialect {
        "duckdb" => Ok(DUCKDB),
        "postgres" => Ok(POSTGRES),
        "snowflake" => Ok(SNOWFLAKE),
        other => Err(Unsupported(other.to_owned())),
    }
}

/// A dialect without KPI views.
#[derive(Debug, thiserror::Error)]
#[error(
    "no KPI views for the {0:?} dialect; views exist for: {dialects}",
    dialects = DIALECTS.join(", ")
)]
pub struct Unsupported(String);

impl View {
    /// The statement creating this view in the schema `quoted_schema` (quoted for the
    /// target's dialect).
    pub fn statement(&self, quoted_schema: &str) -> String {
        self.sql.replace(SCHEMA_PLACEHOLDER, quoted_schema)
    }

    /// What installing it is called in errors.
    fn action(&self) -> String {
        format!("installing view {:?}", self.name)
    }
}

/// Printed when a view cannot be created (a table or column it reads is missing).
pub const HINT: &str = "hint: the views read the retail tables (products, warehouses, \
    stock_snapshot, inventory_movements, customers, orders, order_lines, payments) and \
    _sluice_checkpoints in the target schema. Capture those tables and run `sluice sync` \
    before installing the views.";

/// What `install` did.
#[derive(Debug)]
pub struct Installed {
    pub dialect: &'static str,
    pub schema: String,
    pub views: Vec<&'static str>,
}

/// Creates or replaces every view of the target's dialect in the target schema, in one
/// transaction.
pub async fn install(settings: &Settings) -> Result<Installed, Failure> {
    let unsupported = |e: Unsupported| Failure::fatal("target", e.into());
    let target = &settings.target;
    let views = catalog(target.views_dialect()).map_err(unsupported)?;
    let schema = target.schema().to_owned();
    let quoted = target.quote_ident(&schema);
    let statements = views
        .iter()
        .map(|v| (v.action(), v.statement(&quoted)))
        .collect();
    target.run_script(statements).await?;
    Ok(installed(target.views_dialect(), schema, views))
}

fn installed(dialect: &'static str, schema: String, views: &[View]) -> Installed {
    Installed {
        dialect,
        schema,
        views: views.iter().map(|v| v.name).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dialect_has_every_view_in_the_same_order() {
        let names = |d| {
            catalog(d)
                .expect("dialect")
                .iter()
                .map(|v| v.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("duckdb"), names("postgres"));
        assert_eq!(names("duckdb"), names("snowflake"));
        assert_eq!(names("duckdb").len(), 10);
    }

    #[test]
    fn each_file_creates_its_own_view_in_the_schema() {
        for dialect in DIALECTS {
            for view in catalog(dialect).expect("dialect") {
                let sql = view.statement("\"raw\"");
                let create = format!("CREATE OR REPLACE VIEW \"raw\".{} AS", view.name);
                assert_eq!(
                    sql.matches("CREATE OR REPLACE VIEW").count(),
                    1,
                    "{dialect}/{}: one statement",
                    view.name
                );
                assert!(sql.contains(&create), "{dialect}/{}: {create}", view.name);
                assert!(sql.starts_with("-- "), "{dialect}/{}: header", view.name);
                assert!(!sql.contains(SCHEMA_PLACEHOLDER));
            }
        }
    }

    #[test]
    fn the_schema_is_quoted() {
        let view = catalog("postgres").expect("dialect")[0];
        let sql = view.statement("\"we\"\"ird schema\"");
        assert!(sql.contains("CREATE OR REPLACE VIEW \"we\"\"ird schema\".stock_on_hand AS"));
        assert!(sql.contains("FROM \"we\"\"ird schema\".stock_snapshot"));
    }

    #[test]
    fn views_before_the_views_that_read_them() {
        for dialect in DIALECTS {
            let views = catalog(dialect).expect("dialect");
            for (i, view) in views.iter().enumerate() {
                for later in &views[i + 1..] {
                    let reads = format!("\"raw\".{} ", later.name);
                    assert!(
                        !view.statement("\"raw\"").contains(&reads),
                        "{dialect}/{} reads {} which is installed after it",
                        view.name,
                        later.name
                    );
                }
            }
        }
    }

    #[test]
    fn an_unsupported_dialect_is_named() {
        let err = catalog("bigquery").expect_err("no bigquery views");
        assert_eq!(
            err.to_string(),
            "no KPI views for the \"bigquery\" dialect; views exist for: duckdb, postgres, \
             snowflake"
        );
    }
}
