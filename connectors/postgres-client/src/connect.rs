//! Opening connections: TCP, the `SSLRequest` negotiation and TLS, then either tokio-postgres'
//! start-up (ordinary connections) or our own start-up and authentication (replication
//! connections), and the framing of protocol messages on the replication connection.
//!
//! Both connection kinds share [`open_stream`], so they obey one TLS policy. After the server's
//! one-byte answer to `SSLRequest` nothing more is read before the handshake: bytes a
//! man-in-the-middle injects there are fed to the TLS layer and fail it (CVE-2021-23222).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use fallible_iterator::FallibleIterator as _;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::{ErrorFields, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::config::{PgConfig, SslMode};
use crate::error::{Error, Result, ServerError};
use crate::tls;

/// The largest backend message accepted. PostgreSQL caps a single allocation at 1 GiB, so no
/// valid message is larger; the cap bounds what a hostile peer can make us allocate.
const MAX_MESSAGE_LEN: usize = 1 << 30;

/// How much to read at once when the buffer is empty.
const READ_CHUNK: usize = 64 * 1024;

/// A TCP stream, encrypted or not.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether TLS is in use.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens TCP to the source and negotiates TLS as `cfg.sslmode` says.
pub async fn open_stream(cfg: &PgConfig) -> Result<Stream> {
    let connect = TcpStream::connect((cfg.host.as_str(), cfg.port));
    let tcp = match cfg.connect_timeout {
        Some(limit) => {
            tokio::time::timeout(limit, connect)
                .await
                .map_err(|_| Error::ConnectTimeout {
                    host: cfg.host.clone(),
                    port: cfg.port,
                })?
        }
        None => connect.await,
    }
    .map_err(|source| Error::Connect {
        host: cfg.host.clone(),
        port: cfg.port,
        source,
    })?;
    // Standby status updates are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);

    let Some(verification) = tls::verification(cfg) else {
        return Ok(Stream::Plain(tcp));
    };
    // Build the TLS configuration before talking to the server: a bad root file is a
    // configuration error whatever the server says.
    let connector = tls::connector(cfg, verification)?;
    let server_name = tls::server_name(cfg)?;

    let mut tcp = tcp;
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    let io_err = |source| Error::Connect {
        host: cfg.host.clone(),
        port: cfg.port,
        source,
    };
    tcp.write_all(&request).await.map_err(io_err)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(io_err)?;
    match answer[0] {
        b'S' => {
            let tls = connector
                .connect(server_name, tcp)
                .await
                .map_err(|source| Error::Tls {
                    host: cfg.host.clone(),
                    port: cfg.port,
                    source,
                })?;
            Ok(Stream::Tls(Box::new(tls)))
        }
        b'N' if cfg.sslmode == SslMode::Prefer => {
            tracing::debug!(host = %cfg.host, port = cfg.port, "server refused tls, continuing in plaintext as sslmode=prefer allows");
            Ok(Stream::Plain(tcp))
        }
        b'N' => Err(Error::TlsRefused {
            host: cfg.host.clone(),
            port: cfg.port,
            sslmode: cfg.sslmode,
        }),
        other => Err(Error::Protocol(format!(
            "unexpected answer {other:#04x} to the ssl request"
        ))),
    }
}

/// How long opening a connection (TCP, TLS and start-up together) may take when the source URL
/// sets no `connect_timeout`. PostgreSQL itself gives up on an unfinished start-up after
/// `authentication_timeout` (a minute by default), so waiting longer would only wait forever on
/// a peer that accepted the connection and then fell silent (a partitioned network behind a
/// proxy, a hung server).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `open`, the whole opening of a connection, within `connect_timeout` (as in libpq: TCP,
/// TLS and authentication together) or [`DEFAULT_CONNECT_TIMEOUT`].
pub async fn within_connect_timeout<T>(
    cfg: &PgConfig,
    open: impl Future<Output = Result<T>>,
) -> Result<T> {
    let limit = cfg.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    tokio::time::timeout(limit, open)
        .await
        .map_err(|_| Error::ConnectTimeout {
            host: cfg.host.clone(),
            port: cfg.port,
        })?
}

/// Opens an ordinary connection (TLS as configured) and returns its client; the connection runs
/// on a spawned task until the client is dropped.
pub async fn connect(cfg: &PgConfig) -> Result<tokio_postgres::Client> {
    let mut pg = tokio_postgres::Config::new();
    pg.user(&cfg.user)
        .dbname(&cfg.dbname)
        // TLS, if any, is already on: tokio-postgres must not negotiate it again.
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    if let Some(pw) = cfg.password_bytes() {
        pg.password(pw);
    }
    if let Some(app) = &cfg.application_name {
        pg.application_name(app);
    }
    let (client, connection) = within_connect_timeout(cfg, async {
        let stream = open_stream(cfg).await?;
        pg.connect_raw(stream, tokio_postgres::NoTls)
            .await
            .map_err(|source| Error::Client {
                action: format!(
                    "connecting to {}:{} as user \"{}\" to database \"{}\"",
                    cfg.host, cfg.port, cfg.user, cfg.dbname
                ),
                source,
            })
    })
    .await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %error, "postgres connection ended with an error");
        }
    });
    Ok(client)
}

/// A backend message, or `CopyBothResponse`, which postgres-protocol does not parse.
pub enum Backend {
    Message(Message),
    CopyBothResponse,
}

/// Message framing over a [`Stream`]: buffered reads, one flush per message written.
pub struct Wire {
    stream: Stream,
    read: BytesMut,
    write: BytesMut,
}

impl Wire {
    pub fn new(stream: Stream) -> Self {
        Wire {
            stream,
            read: BytesMut::with_capacity(READ_CHUNK),
            write: BytesMut::new(),
        }
    }

    /// Encodes one message with `encode` and writes and flushes it. Not cancellation safe.
    pub async fn send(
        &mut self,
        encode: impl FnOnce(&mut BytesMut) -> io::Result<()>,
    ) -> Result<()> {
        self.write.clear();
        encode(&mut self.write).map_err(|e| Error::Protocol(format!("encoding a message: {e}")))?;
        self.stream
            .write_all(&self.write)
            .await
            .map_err(|source| Error::Io { source })?;
        self.stream
            .flush()
            .await
            .map_err(|source| Error::Io { source })
    }

    /// The next backend message. Cancellation safe: bytes read stay in the buffer.
    pub async fn recv(&mut self) -> Result<Backend> {
        loop {
            if let Some(message) = self.parse()? {
                return Ok(message);
            }
            if self.read.capacity() - self.read.len() < READ_CHUNK / 4 {
                self.read.reserve(READ_CHUNK);
            }
            let n = self
                .stream
                .read_buf(&mut self.read)
                .await
                .map_err(|source| Error::Io { source })?;
            if n == 0 {
                return Err(Error::Closed);
            }
        }
    }

    fn parse(&mut self) -> Result<Option<Backend>> {
        if self.read.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if !(4..=MAX_MESSAGE_LEN).contains(&len) {
            return Err(Error::Protocol(format!(
                "message {:?} has invalid length {len}",
                char::from(self.read[0])
            )));
        }
        if self.read[0] == b'W' {
            if self.read.len() <= len {
                self.read.reserve(len + 1 - self.read.len());
                return Ok(None);
            }
            // Format and column formats: nothing to keep for replication.
            self.read.advance(len + 1);
            return Ok(Some(Backend::CopyBothResponse));
        }
        Message::parse(&mut self.read)
            .map(|m| m.map(Backend::Message))
            .map_err(|e| Error::Protocol(e.to_string()))
    }

    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// Sends `Terminate` and closes the stream.
    pub async fn terminate(mut self) -> Result<()> {
        self.send(|buf| {
            frontend::terminate(buf);
            Ok(())
        })
        .await?;
        let _ = self.stream.shutdown().await;
        Ok(())
    }
}

/// An `ErrorResponse` (or `NoticeResponse`) body as a [`ServerError`].
pub fn server_error(mut fields: ErrorFields<'_>) -> Error {
    let mut e = ServerError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
        detail: None,
        hint: None,
    };
    loop {
        match fields.next() {
            Ok(Some(field)) => {
                let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
                match field.type_() {
                    b'V' => e.severity = value,
                    b'S' if e.severity.is_empty() => e.severity = value,
                    b'C' => e.code = value,
                    b'M' => e.message = value,
                    b'D' => e.detail = Some(value),
                    b'H' => e.hint = Some(value),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(err) => return Error::Protocol(format!("malformed error response: {err}")),
        }
    }
    Error::Server(Box::new(e))
}

/// What the start-up exchange left us: the framed connection and the server's parameters.
pub struct Started {
    pub wire: Wire,
    pub parameters: Vec<(String, String)>,
    pub process_id: i32,
}

/// Sends the start-up message with `params` and authenticates as `cfg.user`: trust, cleartext,
/// MD5 or SCRAM-SHA-256 (without channel binding). Returns once the server is ready for a query.
pub async fn startup(stream: Stream, cfg: &PgConfig, params: &[(&str, &str)]) -> Result<Started> {
    let mut wire = Wire::new(stream);
    let mut all: Vec<(&str, &str)> = vec![
        ("user", cfg.user.as_str()),
        ("database", cfg.dbname.as_str()),
        ("client_encoding", "UTF8"),
    ];
    if let Some(app) = &cfg.application_name {
        all.push(("application_name", app.as_str()));
    }
    all.extend_from_slice(params);
    wire.send(|buf| frontend::startup_message(all.iter().copied(), buf))
        .await?;
    authenticate(&mut wire, cfg).await?;

    let mut parameters = Vec::new();
    let mut process_id = 0;
    loop {
        match wire.recv().await? {
            Backend::Message(Message::ReadyForQuery(_)) => break,
            Backend::Message(Message::ParameterStatus(p)) => {
                let name = p.name().map_err(|e| Error::Protocol(e.to_string()))?;
                let value = p.value().map_err(|e| Error::Protocol(e.to_string()))?;
                parameters.push((name.to_owned(), value.to_owned()));
            }
            Backend::Message(Message::BackendKeyData(k)) => process_id = k.process_id(),
            Backend::Message(Message::NoticeResponse(_)) => {}
            Backend::Message(Message::ErrorResponse(body)) => {
                return Err(server_error(body.fields()));
            }
            _ => {
                return Err(Error::Protocol(
                    "unexpected message during start-up".to_owned(),
                ));
            }
        }
    }
    Ok(Started {
        wire,
        parameters,
        process_id,
    })
}

async fn authenticate(wire: &mut Wire, cfg: &PgConfig) -> Result<()> {
    let auth_err = |reason: &str| Error::Auth {
        user: cfg.user.clone(),
        reason: reason.to_owned(),
    };
    let password = || {
        cfg.password_bytes()
            .ok_or_else(|| auth_err("the server asks for a password and none is configured"))
    };
    let mut scram: Option<ScramSha256> = None;
    loop {
        match wire.recv().await? {
            Backend::Message(Message::AuthenticationOk) => return Ok(()),
            Backend::Message(Message::AuthenticationCleartextPassword) => {
                let pw = password()?;
                wire.send(|buf| frontend::password_message(pw, buf)).await?;
            }
            Backend::Message(Message::AuthenticationMd5Password(body)) => {
                let hash = md5_hash(cfg.user.as_bytes(), password()?, body.salt());
                wire.send(|buf| frontend::password_message(hash.as_bytes(), buf))
                    .await?;
            }
            Backend::Message(Message::AuthenticationSasl(body)) => {
                let mut offered = false;
                let mut mechanisms = body.mechanisms();
                while let Some(m) = mechanisms
                    .next()
                    .map_err(|e| Error::Protocol(format!("malformed sasl mechanisms: {e}")))?
                {
                    offered |= m == SCRAM_SHA_256;
                }
                if !offered {
                    return Err(auth_err(
                        "the server offers no SASL mechanism we support (SCRAM-SHA-256)",
                    ));
                }
                // Channel binding is not implemented: "n" tells the server the client does not
                // support it, which servers accept unless configured to require binding.
                let state = ScramSha256::new(password()?, ChannelBinding::unsupported());
                let first = state.message().to_vec();
                scram = Some(state);
                wire.send(|buf| frontend::sasl_initial_response(SCRAM_SHA_256, &first, buf))
                    .await?;
            }
            Backend::Message(Message::AuthenticationSaslContinue(body)) => {
                let state = scram
                    .as_mut()
                    .ok_or_else(|| Error::Protocol("sasl continue before sasl start".to_owned()))?;
                state
                    .update(body.data())
                    .map_err(|e| auth_err(&format!("scram exchange failed: {e}")))?;
                let next = state.message().to_vec();
                wire.send(|buf| frontend::sasl_response(&next, buf)).await?;
            }
            Backend::Message(Message::AuthenticationSaslFinal(body)) => {
                let state = scram
                    .as_mut()
                    .ok_or_else(|| Error::Protocol("sasl final before sasl start".to_owned()))?;
                state
                    .finish(body.data())
                    .map_err(|_| auth_err("the server's SCRAM signature does not verify"))?;
            }
            Backend::Message(Message::ErrorResponse(body)) => {
                return Err(server_error(body.fields()));
            }
            Backend::Message(Message::NoticeResponse(_)) => {}
            Backend::Message(
                Message::AuthenticationGss
                | Message::AuthenticationKerberosV5
                | Message::AuthenticationSspi
                | Message::AuthenticationScmCredential
                | Message::AuthenticationGssContinue(_),
            ) => {
                return Err(auth_err(
                    "the server asks for GSSAPI, SSPI, Kerberos or SCM authentication, which is \
                     not supported: use scram-sha-256 in pg_hba.conf",
                ));
            }
            _ => {
                return Err(Error::Protocol(
                    "unexpected message during authentication".to_owned(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that accepts connections and never answers (a hung server, or a partitioned
    /// network behind a proxy) fails the connection after `connect_timeout`.
    #[tokio::test]
    async fn a_silent_peer_fails_the_connection_after_connect_timeout() {
        let port = sluice_testkit::proxy::silent_peer().await.expect("bind");
        let mut cfg = PgConfig::new("127.0.0.1", port, "u", "db");
        cfg.connect_timeout = Some(Duration::from_millis(300));
        let ordinary = connect(&cfg).await.expect_err("no answer");
        assert!(
            matches!(ordinary, Error::ConnectTimeout { port: p, .. } if p == port),
            "{ordinary:?}"
        );
        assert_eq!(
            ordinary.to_string(),
            format!("timed out connecting to 127.0.0.1:{port}")
        );
    }
}
