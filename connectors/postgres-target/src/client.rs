//! The connection to the target database: opening it with the source's TLS and login code,
//! running statements, streaming COPY data. Transport only: statements come from the dialect.

use std::pin::pin;

use bytes::Bytes;
use futures_util::SinkExt as _;
use sluice_postgres_client::PgConfig as SourceConfig;
use tokio_postgres::SimpleQueryMessage;

use crate::error::{Error, Result};

/// Session settings the load relies on: literals without backslash escapes (the dialect's
/// quoting), ISO dates, and UTC for anything printed.
const SESSION: &str = "SET standard_conforming_strings = on; SET datestyle = 'ISO, YMD'; \
                       SET intervalstyle = 'postgres'; SET timezone = 'UTC'";

/// An open connection.
pub(crate) struct Client {
    inner: tokio_postgres::Client,
}

impl Client {
    /// Connects (TLS as `sslmode` says) and prepares the session.
    pub(crate) async fn connect(config: &SourceConfig) -> Result<Client> {
        let inner = sluice_postgres_client::connect(config)
            .await
            .map_err(|source| Error::Connect {
                target: config.to_string(),
                source,
            })?;
        inner
            .batch_execute(SESSION)
            .await
            .map_err(Error::sql("preparing the session"))?;
        Ok(Client { inner })
    }

    /// Whether the connection is gone (the next call reconnects).
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Runs one statement (or several separated by `;`) that returns no rows.
    pub(crate) async fn execute(&self, statement: &str, context: &str) -> Result<()> {
        self.inner
            .batch_execute(statement)
            .await
            .map_err(Error::sql(context))
    }

    /// The rows of a query as text (`None` for NULL), through the simple query protocol.
    pub(crate) async fn query_text(
        &self,
        query: &str,
        context: &str,
    ) -> Result<Vec<Vec<Option<String>>>> {
        let messages = self
            .inner
            .simple_query(query)
            .await
            .map_err(Error::sql(context))?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    /// Streams `chunks` of binary COPY data into `COPY <statement>`.
    pub(crate) async fn copy_in(
        &self,
        statement: &str,
        chunks: impl IntoIterator<Item = Bytes>,
        context: &str,
    ) -> Result<u64> {
        let sink = self
            .inner
            .copy_in::<_, Bytes>(statement)
            .await
            .map_err(Error::sql(context))?;
        let mut sink = pin!(sink);
        for chunk in chunks {
            sink.send(chunk).await.map_err(Error::sql(context))?;
        }
        sink.as_mut().finish().await.map_err(Error::sql(context))
    }
}
