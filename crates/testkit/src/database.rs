//! A database of a throwaway cluster and the conveniences tests use on it.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use crate::error::Result;

/// A database created by [`PgCluster::fresh_database`](crate::PgCluster::fresh_database).
/// It lives as long as its cluster.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    host: String,
    port: u16,
    name: String,
}

impl TestDatabase {
    pub(crate) fn new(host: &str, port: u16, name: &str) -> Self {
        TestDatabase {
            host: host.to_owned(),
            port,
            name: name.to_owned(),
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's host (`127.0.0.1`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`: the trusted superuser.
    pub fn url(&self) -> String {
        url(&self.host, self.port, "postgres", None, &self.name)
    }

    /// A URL to this database as `user` with `password` (both percent-encoded).
    pub fn url_for(&self, user: &str, password: &str) -> String {
        url(&self.host, self.port, user, Some(password), &self.name)
    }

    /// A new client connected as `postgres` without TLS; its connection runs on a spawned task.
    pub async fn client(&self) -> Result<Client> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user("postgres")
            .dbname(&self.name)
            .application_name("sluice-testkit");
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            // The error, if any, reaches the client as a closed connection.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs one or more statements (simple query protocol) on a new connection.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.client().await?.batch_execute(sql).await?;
        Ok(())
    }

    /// The rows of `sql` on a new connection, each value in its text output form (simple query
    /// protocol; `None` for NULL).
    pub async fn text_rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let messages = self.client().await?.simple_query(sql).await?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                }
                _ => None,
            })
            .collect())
    }

    /// Runs one statement with parameters on a new connection and returns its rows.
    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        Ok(self.client().await?.query(sql, params).await?)
    }
}

pub(crate) fn url(host: &str, port: u16, user: &str, password: Option<&str>, db: &str) -> String {
    let user = percent_encode(user);
    let db = percent_encode(db);
    match password {
        Some(pw) => format!(
            "postgres://{user}:{}@{host}:{port}/{db}",
            percent_encode(pw)
        ),
        None => format!("postgres://{user}@{host}:{port}/{db}"),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for URL user info and paths.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_user_info() {
        let db = TestDatabase::new("127.0.0.1", 5433, "db_1");
        assert_eq!(db.url(), "postgres://postgres@127.0.0.1:5433/db_1");
        assert_eq!(
            db.url_for("al ice", "p@ss:w/rd%"),
            "postgres://al%20ice:p%40ss%3Aw%2Frd%25@127.0.0.1:5433/db_1"
        );
    }
}
