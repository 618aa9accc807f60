//! The source connection settings: [`PgConfig`] parsed from a `postgres://` URL or a
//! libpq-style `key=value` string, and the TLS policy [`SslMode`].
//!
//! Parsing is pure (no I/O, no environment); the root certificate file is read at connect time.
//! The password is a [`SecretString`]: `Debug` and `Display` print `********` instead.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::error::{Error, Result};

/// PostgreSQL's default port.
pub const DEFAULT_PORT: u16 = 5432;

/// What replaces the password wherever a configuration is printed.
const REDACTED: &str = "********";

/// Whether and how to use TLS, with libpq's semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, plaintext otherwise. The certificate is not checked
    /// unless a root certificate is configured.
    #[default]
    Prefer,
    /// TLS or fail. The certificate is not checked unless a root certificate is configured,
    /// in which case this behaves like [`SslMode::VerifyCa`] (as libpq does).
    Require,
    /// TLS, and the server certificate must chain to a trusted root; the host name is not
    /// checked.
    VerifyCa,
    /// TLS, a trusted chain, and a certificate valid for the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(Error::config(
                    "sslmode \"allow\" is not supported: use \"prefer\" or \"disable\"",
                ));
            }
            other => {
                return Err(Error::config(format!(
                    "unknown sslmode \"{other}\": expected disable, prefer, require, verify-ca \
                     or verify-full"
                )));
            }
        })
    }
}

/// How to reach and log in to the source database.
#[derive(Clone)]
pub struct PgConfig {
    /// Host name or IP address (TCP only; Unix sockets are not supported).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<SecretString>,
    pub dbname: String,
    pub sslmode: SslMode,
    /// PEM file of the roots that verify the server (`sslrootcert`); `system` means the
    /// platform's store. Without it, verifying modes use the platform's store.
    pub sslrootcert: Option<PathBuf>,
    pub application_name: Option<String>,
    /// Limit on opening a connection, TCP, TLS and start-up together (`connect_timeout`,
    /// seconds; [`DEFAULT_CONNECT_TIMEOUT`](crate::DEFAULT_CONNECT_TIMEOUT) when
    /// unset).
    pub connect_timeout: Option<Duration>,
}

impl PgConfig {
    /// A configuration with libpq's defaults for everything but these.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        dbname: impl Into<String>,
    ) -> Self {
        PgConfig {
            host: host.into(),
            port,
            user: user.into(),
            password: None,
            dbname: dbname.into(),
            sslmode: SslMode::default(),
            sslrootcert: None,
            application_name: None,
            connect_timeout: None,
        }
    }

    /// Parses a `postgres://` / `postgresql://` URL or a `key=value` connection string.
    pub fn parse(s: &str) -> Result<Self> {
        let trimmed = s.trim();
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            Self::from_url(trimmed)
        } else {
            Self::from_dsn(trimmed)
        }
    }

    /// Parses `postgres://user:password@host:port/dbname?param=value&...`.
    pub fn from_url(s: &str) -> Result<Self> {
        // The url crate's messages never contain the input, so they are safe to show.
        let url = url::Url::parse(s).map_err(|e| Error::config(format!("not a valid url: {e}")))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(Error::config(format!(
                "url scheme \"{}\" is not postgres or postgresql",
                url.scheme()
            )));
        }
        let mut b = Builder::default();
        match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => {
                b.host = Some(percent_decode(d, "host")?)
            }
            Some(url::Host::Ipv4(ip)) => b.host = Some(ip.to_string()),
            Some(url::Host::Ipv6(ip)) => b.host = Some(ip.to_string()),
            _ => {}
        }
        b.port = url.port();
        if !url.username().is_empty() {
            b.user = Some(percent_decode(url.username(), "user name")?);
        }
        if let Some(pw) = url.password() {
            b.password = Some(SecretString::from(percent_decode(pw, "password")?));
        }
        let path = url.path().trim_start_matches('/');
        if !path.is_empty() {
            b.dbname = Some(percent_decode(path, "database name")?);
        }
        for (key, value) in url.query_pairs() {
            b.set(&key, value.into_owned())?;
        }
        b.finish()
    }

    /// Parses `host=... port=... user=... password='...' dbname=...`; values may be
    /// single-quoted, with `\'` and `\\` escapes inside quotes.
    pub fn from_dsn(s: &str) -> Result<Self> {
        let mut b = Builder::default();
        let mut chars = s.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.peek().is_none() {
                break;
            }
            let mut key = String::new();
            while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
                key.push(c);
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next() != Some('=') {
                return Err(Error::config(format!(
                    "connection string: expected '=' after \"{key}\""
                )));
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut value = String::new();
            if chars.next_if_eq(&'\'').is_some() {
                loop {
                    match chars.next() {
                        None => {
                            return Err(Error::config(format!(
                                "connection string: unterminated quoted value of \"{key}\""
                            )));
                        }
                        Some('\'') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => value.push(c),
                            None => {
                                return Err(Error::config(format!(
                                    "connection string: unterminated quoted value of \"{key}\""
                                )));
                            }
                        },
                        Some(c) => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    if c == '\\' {
                        if let Some(c) = chars.next() {
                            value.push(c);
                        }
                    } else {
                        value.push(c);
                    }
                }
            }
            b.set(&key, value)?;
        }
        b.finish()
    }

    /// The password, for the authentication exchange only.
    pub(crate) fn password_bytes(&self) -> Option<&[u8]> {
        self.password.as_ref().map(|p| p.expose_secret().as_bytes())
    }
}

impl FromStr for PgConfig {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        PgConfig::parse(s)
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// A URL with the password replaced by `********`.
impl fmt::Display for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "postgres://{}", percent_encode(&self.user))?;
        if self.password.is_some() {
            write!(f, ":{REDACTED}")?;
        }
        write!(
            f,
            "@{host}:{}/{}?sslmode={}",
            self.port,
            percent_encode(&self.dbname),
            self.sslmode
        )?;
        if let Some(root) = &self.sslrootcert {
            write!(
                f,
                "&sslrootcert={}",
                percent_encode(&root.display().to_string())
            )?;
        }
        if let Some(app) = &self.application_name {
            write!(f, "&application_name={}", percent_encode(app))?;
        }
        if let Some(t) = self.connect_timeout {
            write!(f, "&connect_timeout={}", t.as_secs())?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Builder {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<SecretString>,
    dbname: Option<String>,
    sslmode: Option<SslMode>,
    sslrootcert: Option<PathBuf>,
    application_name: Option<String>,
    connect_timeout: Option<Duration>,
}

impl Builder {
    fn set(&mut self, key: &str, value: String) -> Result<()> {
        match key {
            "host" => self.host = Some(value),
            "port" => {
                self.port = Some(value.parse().map_err(|_| {
                    Error::config(format!("port \"{value}\" is not a number from 1 to 65535"))
                })?);
            }
            "user" => self.user = Some(value),
            "password" => self.password = Some(SecretString::from(value)),
            "dbname" => self.dbname = Some(value),
            "sslmode" => self.sslmode = Some(value.parse()?),
            "sslrootcert" => self.sslrootcert = Some(PathBuf::from(value)),
            "application_name" => self.application_name = Some(value),
            "connect_timeout" => {
                let secs: u64 = value.parse().map_err(|_| {
                    Error::config(format!(
                        "connect_timeout \"{value}\" is not a number of seconds"
                    ))
                })?;
                self.connect_timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            other => {
                return Err(Error::config(format!(
                    "unknown connection parameter \"{other}\""
                )));
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<PgConfig> {
        let user = self
            .user
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::config("no user name: add one, as in postgres://USER@host/db"))?;
        if self.port == Some(0) {
            return Err(Error::config("port 0 is not a valid port"));
        }
        Ok(PgConfig {
            host: self
                .host
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_owned()),
            port: self.port.unwrap_or(DEFAULT_PORT),
            dbname: self
                .dbname
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| user.clone()),
            user,
            password: self.password,
            sslmode: self.sslmode.unwrap_or_default(),
            sslrootcert: self.sslrootcert,
            application_name: self.application_name,
            connect_timeout: self.connect_timeout,
        })
    }
}

/// Decodes `%XX` escapes; `what` names the URL part in the error (never its value, which may
/// be the password).
fn percent_decode(s: &str, what: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::config(format!("invalid percent-encoding in the {what}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::config(format!("the {what} is not valid UTF-8")))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
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

    fn password(c: &PgConfig) -> Option<&str> {
        c.password.as_ref().map(|p| p.expose_secret())
    }

    #[test]
    fn parses_a_full_url() {
        let c = PgConfig::parse(
            "postgres://sl%40uice:p%40ss%3Aw%2Frd@db.example.com:6543/sh%20op\
             ?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=sluice&connect_timeout=7",
        )
        .expect("parses");
        assert_eq!(c.host, "db.example.com");
        assert_eq!(c.port, 6543);
        assert_eq!(c.user, "sl@uice");
        assert_eq!(password(&c), Some("p@ss:w/rd"));
        assert_eq!(c.dbname, "sh op");
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(c.sslrootcert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(c.application_name.as_deref(), Some("sluice"));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(7)));
    }

    #[test]
    fn url_defaults_follow_libpq() {
        let c = PgConfig::parse("user=alice").expect("parses");
        assert_eq!(c.host, "localhost");
        let c = PgConfig::parse("postgresql://alice@db").expect("parses");
        assert_eq!(c.host, "db");
        assert_eq!(c.port, DEFAULT_PORT);
        assert_eq!(c.dbname, "alice");
        assert_eq!(c.sslmode, SslMode::Prefer);
        assert!(c.password.is_none());
        let c = PgConfig::parse("postgres://u@[::1]:5433/d").expect("ipv6");
        assert_eq!(c.host, "::1");
        assert_eq!(c.port, 5433);
    }

    #[test]
    fn parses_a_dsn() {
        let c = PgConfig::parse(
            r"host=127.0.0.1 port = 5433 user=bob password='it\'s a \\secret' dbname=shop sslmode=require",
        )
        .expect("parses");
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 5433);
        assert_eq!(c.user, "bob");
        assert_eq!(password(&c), Some(r"it's a \secret"));
        assert_eq!(c.dbname, "shop");
        assert_eq!(c.sslmode, SslMode::Require);
    }

    #[test]
    fn parses_every_sslmode() {
        for mode in [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(mode.as_str().parse::<SslMode>().expect("round trip"), mode);
        }
        assert!("allow".parse::<SslMode>().is_err());
        assert!("verify_full".parse::<SslMode>().is_err());
    }

    #[test]
    fn rejects_bad_input_without_echoing_the_password() {
        for bad in [
            "mysql://u@h/d",
            "postgres://h/d",
            "postgres://u@h:99999/d",
            "postgres://u@h/d?sslmode=sometimes",
            "postgres://u@h/d?colour=blue",
            "host=h user=u password='unterminated",
            "host=h user",
            "postgres://u:s3cr%ZZet@h/d",
        ] {
            let err = PgConfig::parse(bad).expect_err(bad);
            assert!(!err.to_string().contains("s3cr"), "{err}");
            assert_eq!(err.class(), sluice_core::ErrorClass::Fatal, "{bad}");
        }
    }

    #[test]
    fn debug_and_display_redact_the_password() {
        let c = PgConfig::parse("postgres://u:hunter2@h/d?sslmode=require").expect("parses");
        let debug = format!("{c:?}");
        let display = c.to_string();
        for shown in [&debug, &display] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
        assert_eq!(display, "postgres://u:********@h:5432/d?sslmode=require");
        let d = PgConfig::parse("host=h user=u password=hunter2").expect("dsn");
        assert!(!format!("{d:?} {d}").contains("hunter2"));
    }
}
