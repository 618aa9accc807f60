//! The replication connection: `replication=database` start-up, replication commands, and
//! copy-both streaming.
//!
//! Commands run over the simple query protocol. Slot names and option names are quoted as
//! identifiers and option values as literals ([`quote_ident`], [`quote_literal`]).
//! `START_REPLICATION` switches the connection into copy-both mode; [`ReplicationStream`]
//! hands out the raw `CopyData` payloads (`w` XLogData and `k` keepalive frames; decoding them
//! is `sluice-pgoutput`'s job) and sends the client's `CopyData` (standby status updates).
//! [`ReplicationStream::finish`] ends copy-both mode and gives the connection back.

use bytes::Bytes;
use fallible_iterator::FallibleIterator as _;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use sluice_core::Lsn;

use crate::SourceConfig;
use crate::error::{Error, Result};
use sluice_postgres_client::connect::{
    Backend, Wire, open_stream, server_error, startup, within_connect_timeout,
};
use sluice_postgres_client::{quote_ident, quote_literal};

/// The answer to `IDENTIFY_SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentity {
    /// The cluster's system identifier (a 64-bit number, kept as the server prints it).
    pub systemid: String,
    pub timeline: u32,
    /// The current WAL flush position.
    pub xlogpos: Lsn,
    /// The database connected to.
    pub dbname: Option<String>,
}

/// What `CREATE_REPLICATION_SLOT` does with the snapshot at the slot's consistent point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotAction {
    /// Export it for `SET TRANSACTION SNAPSHOT` on other connections, valid until the next
    /// command on this connection or its end.
    #[default]
    Export,
    /// Use it in the current transaction of this connection (which must be in one).
    Use,
    /// Neither.
    Nothing,
}

/// Options of [`ReplicationClient::create_slot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotOptions {
    /// Dropped when the connection ends.
    pub temporary: bool,
    pub snapshot: SnapshotAction,
}

/// The answer to `CREATE_REPLICATION_SLOT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    pub slot_name: String,
    /// Changes committed after this position are streamed; the snapshot sees everything before.
    pub consistent_point: Lsn,
    /// The exported snapshot, with [`SnapshotAction::Export`].
    pub snapshot_name: Option<String>,
    pub output_plugin: Option<String>,
}

/// Rows of a simple query, every value as text (`None` is SQL NULL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextRows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl TextRows {
    /// The value of column `column` in row `row`, if both exist and the value is not null.
    pub fn get(&self, row: usize, column: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.rows.get(row)?.get(i)?.as_deref()
    }
}

/// A connection in `replication=database` mode, ready for replication commands.
pub struct ReplicationClient {
    wire: Wire,
    parameters: Vec<(String, String)>,
    process_id: i32,
}

impl std::fmt::Debug for ReplicationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationClient")
            .field("process_id", &self.process_id)
            .field("tls", &self.wire.is_tls())
            .finish_non_exhaustive()
    }
}

impl ReplicationClient {
    /// Connects (TLS as `cfg.sslmode` says), authenticates and enters logical replication mode.
    pub async fn connect(cfg: &SourceConfig) -> Result<ReplicationClient> {
        let started = within_connect_timeout(cfg, async {
            let stream = open_stream(cfg).await?;
            // The session settings make pgoutput print values exactly as the snapshot's COPY
            // does.
            startup(
                stream,
                cfg,
                &[
                    ("replication", "database"),
                    ("DateStyle", "ISO"),
                    ("IntervalStyle", "postgres"),
                    ("extra_float_digits", "3"),
                    ("TimeZone", "UTC"),
                ],
            )
            .await
        })
        .await?;
        Ok(ReplicationClient {
            wire: started.wire,
            parameters: started.parameters,
            process_id: started.process_id,
        })
    }

    /// A parameter the server reported (`server_version`, `integer_datetimes`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The PID of the server process (the walsender) serving this connection.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.wire.is_tls()
    }

    /// Runs `sql` with the simple query protocol and returns all rows as text. With several
    /// statements, the columns are those of the last result that had any.
    pub async fn simple_query(&mut self, sql: &str) -> Result<TextRows> {
        reject_nul("query", sql)?;
        self.wire.send(|buf| frontend::query(sql, buf)).await?;
        let mut out = TextRows::default();
        let mut failure = None;
        loop {
            match self.wire.recv().await? {
                Backend::Message(Message::ReadyForQuery(_)) => break,
                Backend::Message(Message::RowDescription(body)) => {
                    let mut fields = body.fields();
                    out.columns.clear();
                    while let Some(f) = fields.next().map_err(protocol)? {
                        out.columns.push(f.name().to_owned());
                    }
                }
                Backend::Message(Message::DataRow(body)) => {
                    let buf = body.buffer();
                    let mut ranges = body.ranges();
                    let mut row = Vec::new();
                    while let Some(range) = ranges.next().map_err(protocol)? {
                        row.push(match range {
                            Some(r) => {
                                let bytes = buf.get(r).ok_or_else(|| {
                                    Error::protocol("data row value out of bounds".to_owned())
                                })?;
                                Some(
                                    std::str::from_utf8(bytes)
                                        .map_err(|_| {
                                            Error::protocol(
                                                "data row value is not UTF-8".to_owned(),
                                            )
                                        })?
                                        .to_owned(),
                                )
                            }
                            None => None,
                        });
                    }
                    out.rows.push(row);
                }
                Backend::Message(Message::ErrorResponse(body)) => {
                    failure = Some(server_error(body.fields()));
                }
                Backend::Message(
                    Message::CommandComplete(_)
                    | Message::EmptyQueryResponse
                    | Message::NoticeResponse(_)
                    | Message::ParameterStatus(_),
                ) => {}
                Backend::CopyBothResponse
                | Backend::Message(Message::CopyOutResponse(_) | Message::CopyInResponse(_)) => {
                    return Err(Error::protocol(
                        "simple_query cannot run a command that starts copy mode; use start_replication".to_owned(),
                    ));
                }
                Backend::Message(_) => {
                    return Err(Error::protocol(
                        "unexpected message in a query response".to_owned(),
                    ));
                }
            }
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    /// `IDENTIFY_SYSTEM`.
    pub async fn identify_system(&mut self) -> Result<SystemIdentity> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let field = |name: &str| {
            rows.get(0, name)
                .ok_or_else(|| Error::protocol(format!("IDENTIFY_SYSTEM returned no {name}")))
        };
        Ok(SystemIdentity {
            systemid: field("systemid")?.to_owned(),
            timeline: field("timeline")?.parse().map_err(|_| {
                Error::protocol("IDENTIFY_SYSTEM returned a non-numeric timeline".to_owned())
            })?,
            xlogpos: parse_lsn(field("xlogpos")?)?,
            dbname: rows.get(0, "dbname").map(str::to_owned),
        })
    }

    /// `CREATE_REPLICATION_SLOT "name" [TEMPORARY] LOGICAL pgoutput (SNAPSHOT '...')`.
    ///
    /// With [`SnapshotAction::Export`], the snapshot stays valid until the next command on
    /// this connection: run the initial copy first, then `start_replication`.
    pub async fn create_slot(&mut self, name: &str, options: &SlotOptions) -> Result<CreatedSlot> {
        let sql = create_slot_command(name, options)?;
        let rows = self.simple_query(&sql).await?;
        let field = |name: &str| rows.get(0, name).map(str::to_owned);
        Ok(CreatedSlot {
            slot_name: field("slot_name").ok_or_else(|| {
                Error::protocol("CREATE_REPLICATION_SLOT returned no slot_name".to_owned())
            })?,
            consistent_point: parse_lsn(&field("consistent_point").ok_or_else(|| {
                Error::protocol("CREATE_REPLICATION_SLOT returned no consistent_point".to_owned())
            })?)?,
            snapshot_name: field("snapshot_name"),
            output_plugin: field("output_plugin"),
        })
    }

    /// `DROP_REPLICATION_SLOT "name" [WAIT]`; with `wait`, waits for an active slot to be
    /// released instead of failing.
    pub async fn drop_slot(&mut self, name: &str, wait: bool) -> Result<()> {
        let sql = format!(
            "DROP_REPLICATION_SLOT {}{}",
            replication_ident("replication slot name", name)?,
            if wait { " WAIT" } else { "" }
        );
        self.simple_query(&sql).await.map(drop)
    }

    /// `START_REPLICATION SLOT "slot" LOGICAL X/Y ("name" 'value', ...)`, entering copy-both
    /// mode. `options` go to the output plugin, e.g.
    /// `[("proto_version", "1"), ("publication_names", "\"sluice\"")]`; publication names
    /// inside the value are themselves identifiers ([`publication_names`](crate::publication_names)).
    pub async fn start_replication(
        mut self,
        slot: &str,
        start_lsn: Lsn,
        options: &[(&str, &str)],
    ) -> Result<ReplicationStream> {
        let sql = start_replication_command(slot, start_lsn, options)?;
        self.wire.send(|buf| frontend::query(&sql, buf)).await?;
        loop {
            match self.wire.recv().await? {
                Backend::CopyBothResponse => {
                    return Ok(ReplicationStream {
                        client: self,
                        client_done: false,
                        server_done: false,
                    });
                }
                Backend::Message(Message::ErrorResponse(body)) => {
                    let error = server_error(body.fields());
                    // The connection stays usable: consume up to ReadyForQuery.
                    loop {
                        if let Backend::Message(Message::ReadyForQuery(_)) =
                            self.wire.recv().await?
                        {
                            break;
                        }
                    }
                    return Err(error.into());
                }
                Backend::Message(Message::NoticeResponse(_) | Message::ParameterStatus(_)) => {}
                Backend::Message(_) => {
                    return Err(Error::protocol(
                        "unexpected message in answer to START_REPLICATION".to_owned(),
                    ));
                }
            }
        }
    }

    /// Ends the session (`Terminate`).
    pub async fn close(self) -> Result<()> {
        Ok(self.wire.terminate().await?)
    }
}

/// A replication connection in copy-both mode.
#[derive(Debug)]
pub struct ReplicationStream {
    client: ReplicationClient,
    client_done: bool,
    server_done: bool,
}

impl ReplicationStream {
    /// The next `CopyData` payload from the server, or `None` once the server has ended the
    /// stream (`CopyDone`, or `CommandComplete` from a walsender stopped by a shutdown).
    /// Cancellation safe: a dropped call loses no data.
    pub async fn recv(&mut self) -> Result<Option<Bytes>> {
        if self.server_done {
            return Ok(None);
        }
        loop {
            match self.client.wire.recv().await? {
                Backend::Message(Message::CopyData(body)) => return Ok(Some(body.into_bytes())),
                // A walsender stopped by a fast or smart shutdown ends with CommandComplete
                // alone, once its client has confirmed everything it sent.
                Backend::Message(Message::CopyDone | Message::CommandComplete(_)) => {
                    self.server_done = true;
                    return Ok(None);
                }
                Backend::Message(Message::ErrorResponse(body)) => {
                    self.server_done = true;
                    return Err(server_error(body.fields()).into());
                }
                Backend::Message(Message::NoticeResponse(_) | Message::ParameterStatus(_)) => {}
                Backend::Message(_) | Backend::CopyBothResponse => {
                    return Err(Error::protocol(
                        "unexpected message in copy-both mode".to_owned(),
                    ));
                }
            }
        }
    }

    /// Sends `payload` as one `CopyData` message (a standby status update, for instance) and
    /// flushes it. Not cancellation safe.
    pub async fn send(&mut self, payload: &[u8]) -> Result<()> {
        if self.client_done {
            return Err(Error::protocol("send after finish".to_owned()));
        }
        Ok(self
            .client
            .wire
            .send(|buf| {
                frontend::CopyData::new(payload)?.write(buf);
                Ok(())
            })
            .await?)
    }

    /// Ends copy-both mode: sends `CopyDone`, discards what the server still sends until it
    /// is ready for a query, and returns the connection for further commands.
    pub async fn finish(mut self) -> Result<ReplicationClient> {
        if !self.client_done {
            self.client
                .wire
                .send(|buf| {
                    frontend::copy_done(buf);
                    Ok(())
                })
                .await?;
            self.client_done = true;
        }
        let mut failure = None;
        loop {
            match self.client.wire.recv().await? {
                Backend::Message(Message::ReadyForQuery(_)) => break,
                Backend::Message(Message::ErrorResponse(body)) => {
                    failure = Some(server_error(body.fields()));
                }
                // Remaining XLogData and keepalives, the server's CopyDone, CommandComplete,
                // and a timeline result set (physical replication only).
                Backend::Message(_) | Backend::CopyBothResponse => {}
            }
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(self.client),
        }
    }
}

fn protocol(e: std::io::Error) -> Error {
    Error::protocol(e.to_string())
}

fn parse_lsn(s: &str) -> Result<Lsn> {
    s.parse()
        .map_err(|_| Error::protocol(format!("the server sent an invalid LSN {s:?}")))
}

/// A NUL byte cannot be sent in a query string; refuse instead of truncating the command.
fn reject_nul(what: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(Error::config(format!("{what} contains a NUL byte")));
    }
    Ok(())
}

/// `name` quoted as an identifier of a replication command. The replication lexer
/// (`repl_scanner.l`) has no escape for `"` inside a quoted identifier, unlike SQL, so a name
/// containing one cannot be expressed and is refused here rather than sent mangled.
fn replication_ident(what: &str, name: &str) -> Result<String> {
    reject_nul(what, name)?;
    if name.contains('"') {
        return Err(Error::config(format!(
            "{what} {} contains a double quote, which replication commands cannot express",
            quote_literal(name)
        )));
    }
    Ok(quote_ident(name))
}

fn create_slot_command(name: &str, options: &SlotOptions) -> Result<String> {
    let name = replication_ident("replication slot name", name)?;
    let snapshot = match options.snapshot {
        SnapshotAction::Export => "export",
        SnapshotAction::Use => "use",
        SnapshotAction::Nothing => "nothing",
    };
    Ok(format!(
        "CREATE_REPLICATION_SLOT {name}{} LOGICAL pgoutput (SNAPSHOT {})",
        if options.temporary { " TEMPORARY" } else { "" },
        quote_literal(snapshot)
    ))
}

fn start_replication_command(
    slot: &str,
    start_lsn: Lsn,
    options: &[(&str, &str)],
) -> Result<String> {
    let slot = replication_ident("replication slot name", slot)?;
    let mut sql = format!("START_REPLICATION SLOT {slot} LOGICAL {start_lsn}");
    if !options.is_empty() {
        let mut list = Vec::with_capacity(options.len());
        for (name, value) in options {
            let name = replication_ident("replication option", name)?;
            reject_nul("replication option value", value)?;
            list.push(format!("{name} {}", quote_literal(value)));
        }
        sql.push_str(&format!(" ({})", list.join(", ")));
    }
    Ok(sql)
}

#[cfg(test)]
mod tests {

    /// A peer that accepts connections and never answers (a hung server, or a partitioned
    /// network behind a proxy) fails the replication connection after `connect_timeout`.
    #[tokio::test]
    async fn a_silent_peer_fails_the_replication_connection_after_connect_timeout() {
        let port = sluice_testkit::proxy::silent_peer().await.expect("bind");
        let mut cfg = crate::SourceConfig::new("127.0.0.1", port, "u", "db");
        cfg.connect_timeout = Some(std::time::Duration::from_millis(300));
        let replication = ReplicationClient::connect(&cfg)
            .await
            .expect_err("no answer");
        assert!(
            matches!(
                replication,
                Error::Connection(sluice_postgres_client::Error::ConnectTimeout { port: p, .. })
                    if p == port
            ),
            "{replication:?}"
        );
    }

    use super::*;

    #[test]
    fn create_slot_quotes_the_name() {
        let sql =
            create_slot_command("x'; DROP TABLE x; -- ü", &SlotOptions::default()).expect("valid");
        assert_eq!(
            sql,
            r#"CREATE_REPLICATION_SLOT "x'; DROP TABLE x; -- ü" LOGICAL pgoutput (SNAPSHOT 'export')"#
        );
        let sql = create_slot_command(
            "t",
            &SlotOptions {
                temporary: true,
                snapshot: SnapshotAction::Nothing,
            },
        )
        .expect("valid");
        assert_eq!(
            sql,
            r#"CREATE_REPLICATION_SLOT "t" TEMPORARY LOGICAL pgoutput (SNAPSHOT 'nothing')"#
        );
    }

    #[test]
    fn start_replication_quotes_names_and_values() {
        let sql = start_replication_command(
            "slot 1",
            Lsn(0x1_0000_00A0),
            &[
                ("proto_version", "1"),
                ("publication_names", r#""it's","b""c""#),
            ],
        )
        .expect("valid");
        assert_eq!(
            sql,
            r#"START_REPLICATION SLOT "slot 1" LOGICAL 1/A0 ("proto_version" '1', "publication_names" '"it''s","b""c"')"#
        );
        assert_eq!(
            start_replication_command("s", Lsn(0), &[]).expect("valid"),
            r#"START_REPLICATION SLOT "s" LOGICAL 0/0"#
        );
    }

    #[test]
    fn double_quotes_in_replication_identifiers_are_refused() {
        let err = create_slot_command(r#"x"; DROP TABLE x; --"#, &SlotOptions::default())
            .expect_err("unrepresentable");
        assert_eq!(err.class(), sluice_core::ErrorClass::Fatal);
        assert!(err.to_string().contains("double quote"), "{err}");
        assert!(start_replication_command(r#"a"b"#, Lsn(0), &[]).is_err());
        assert!(start_replication_command("s", Lsn(0), &[(r#"k""#, "v")]).is_err());
    }

    #[test]
    fn nul_bytes_are_refused() {
        assert!(create_slot_command("a\0b", &SlotOptions::default()).is_err());
        assert!(start_replication_command("s", Lsn(0), &[("k", "v\0")]).is_err());
    }

    #[test]
    fn text_rows_by_column_name() {
        let rows = TextRows {
            columns: vec!["a".into(), "b".into()],
            rows: vec![vec![Some("1".into()), None]],
        };
        assert_eq!(rows.get(0, "a"), Some("1"));
        assert_eq!(rows.get(0, "b"), None);
        assert_eq!(rows.get(0, "c"), None);
        assert_eq!(rows.get(1, "a"), None);
    }
}
