//! Errors of the demo: the source it writes traffic into and the warehouse it reads.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} at the source failed")]
    Postgres {
        action: String,
        source: tokio_postgres::Error,
    },
    #[error("cannot connect to the source")]
    Connect(#[source] sluice_postgres::Error),
    #[error(
        "the source's table \"{0}\" is empty; load the retail schema first (tests/demo/retail.sql)"
    )]
    EmptyShop(&'static str),
    #[error("the KPI views are missing")]
    Views(#[source] sluice::views::Unsupported),
    #[error("{action} in the warehouse failed")]
    Warehouse {
        action: String,
        source: duckdb::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;
