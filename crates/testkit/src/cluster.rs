//! A throwaway PostgreSQL server: start, configure, stop, clean up.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::certificate::CertificateAuthority;
use crate::database::TestDatabase;
use crate::error::{Error, Result};
use crate::template::{give_to_server, run, server_command, template_data_dir, unique_suffix};

/// How long a server may take to accept connections after it was spawned. Generous, because
/// CI machines are small and run several test processes at once.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an immediate shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a fast shutdown may take before the server is killed: it waits for walsenders to
/// have their clients confirm the end of WAL, and for a shutdown checkpoint.
pub const FAST_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Start attempts: a port found free can be taken by another process before the server binds it.
const PORT_ATTEMPTS: usize = 5;

/// The settings every cluster gets. `wal_sender_timeout` is short so that a test whose client
/// stopped answering fails fast instead of holding a walsender (and its slot) for a minute.
const BASE_SETTINGS: &[&str] = &[
    "listen_addresses = '127.0.0.1'",
    "wal_level = logical",
    "max_replication_slots = 20",
    "max_wal_senders = 20",
    "max_connections = 100",
    "fsync = off",
    "synchronous_commit = off",
    "full_page_writes = off",
    "wal_sender_timeout = '10s'",
    "timezone = 'UTC'",
    "log_timezone = 'UTC'",
    "shared_buffers = '32MB'",
];

/// Stops the server by the PID in `postmaster.pid` and removes the cluster directory once the
/// test process has gone (its end of the pipe on stdin closes). `$1` is the cluster directory.
const WATCHDOG_SCRIPT: &str = r#"
while read -r _line; do :; done
pidfile="$1/data/postmaster.pid"
if [ -f "$pidfile" ]; then
  pid=$(head -n 1 "$pidfile")
  if [ -n "$pid" ]; then
    kill -QUIT "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$1"
"#;

/// How a test user authenticates over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `scram-sha-256` in `pg_hba.conf`; the password is stored as a SCRAM verifier.
    ScramSha256,
    /// `md5` in `pg_hba.conf`; the password is stored as an MD5 hash.
    Md5,
    /// `password` in `pg_hba.conf`: the password travels in clear text.
    Password,
}

impl AuthMethod {
    fn hba(self) -> &'static str {
        match self {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Password => "password",
        }
    }

    fn password_encryption(self) -> &'static str {
        match self {
            AuthMethod::Md5 => "md5",
            AuthMethod::ScramSha256 | AuthMethod::Password => "scram-sha-256",
        }
    }
}

#[derive(Debug, Clone)]
struct TestUser {
    name: String,
    password: String,
    method: AuthMethod,
}

/// How [`PgCluster::restart`] stops the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// `pg_ctl -m fast` (SIGINT): sessions are ended, walsenders send what is left and wait
    /// for their clients to confirm it, then a shutdown checkpoint.
    Fast,
    /// `pg_ctl -m immediate` (SIGQUIT): every process quits at once; crash recovery on start.
    Immediate,
}

/// Options for a [`PgCluster`]; [`PgCluster::builder`] makes one.
#[derive(Debug, Clone, Default)]
pub struct PgClusterBuilder {
    conf_lines: Vec<String>,
    hba_lines: Vec<String>,
    users: Vec<TestUser>,
    tls_names: Option<Vec<String>>,
}

impl PgClusterBuilder {
    /// Appends a line to `postgresql.conf` (after the kit's own settings, so it wins).
    pub fn conf(mut self, line: impl Into<String>) -> Self {
        self.conf_lines.push(line.into());
        self
    }

    /// Adds a `pg_hba.conf` line before the kit's own (the first matching line wins).
    pub fn hba(mut self, line: impl Into<String>) -> Self {
        self.hba_lines.push(line.into());
        self
    }

    /// Creates a `LOGIN REPLICATION` role `name` that must authenticate with `password` by
    /// `method` over TCP (for ordinary and replication connections). `postgres` stays trusted.
    pub fn user(
        mut self,
        name: impl Into<String>,
        password: impl Into<String>,
        method: AuthMethod,
    ) -> Self {
        self.users.push(TestUser {
            name: name.into(),
            password: password.into(),
            method,
        });
        self
    }

    /// Turns on TLS (`ssl = on`) with a server certificate valid for `localhost` and
    /// `127.0.0.1`, signed by a CA generated for this cluster ([`PgCluster::ca_cert_path`]).
    pub fn tls(self) -> Self {
        self.tls_for_names(&["localhost", "127.0.0.1"])
    }

    /// Like [`tls`](Self::tls), with a certificate valid only for `names` (DNS names or IPs).
    pub fn tls_for_names(mut self, names: &[&str]) -> Self {
        self.tls_names = Some(names.iter().map(|n| (*n).to_owned()).collect());
        self
    }

    /// Starts the cluster. Blocks for the copy of the template and the server's start-up.
    pub fn start(self) -> Result<PgCluster> {
        PgCluster::start_with(self)
    }
}

/// A running throwaway PostgreSQL 15 server on 127.0.0.1. Dropping it stops the server and
/// removes its directory.
#[derive(Debug)]
pub struct PgCluster {
    root: PathBuf,
    port: u16,
    postmaster_pid: Option<i32>,
    server: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
    ca_cert: Option<PathBuf>,
}

impl PgCluster {
    /// Options for a cluster.
    pub fn builder() -> PgClusterBuilder {
        PgClusterBuilder::default()
    }

    /// Starts a cluster with the default options.
    pub fn start() -> Result<PgCluster> {
        Self::builder().start()
    }

    /// The cluster of this test process, started on first use with the default options and
    /// stopped by the watchdog when the process exits. Each test should work in its own
    /// [`fresh_database`](Self::fresh_database).
    ///
    /// # Panics
    ///
    /// When the cluster cannot start: there is nothing a test could do instead.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            PgCluster::start().expect("the shared throwaway PostgreSQL cluster starts")
        })
    }

    /// The host the server listens on.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data directory, sockets, log, CA certificate).
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The private directory of the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("socket")
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// The postmaster's PID.
    pub fn pid(&self) -> Option<i32> {
        self.postmaster_pid
    }

    /// The PEM file of the CA that signed the server certificate, when TLS is on.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// `postgres://postgres@127.0.0.1:PORT/DBNAME`.
    pub fn url(&self, dbname: &str) -> String {
        crate::database::url(self.host(), self.port, "postgres", None, dbname)
    }

    /// A URL for `user` with `password` (both percent-encoded) to `dbname`.
    pub fn url_for(&self, user: &str, password: &str, dbname: &str) -> String {
        crate::database::url(self.host(), self.port, user, Some(password), dbname)
    }

    /// Creates a new, uniquely named database and returns a handle to it.
    pub async fn fresh_database(&self) -> Result<TestDatabase> {
        let name = format!("sluice_test_{}", unique_suffix().replace('-', "_"));
        let admin = TestDatabase::new(self.host(), self.port, "postgres");
        admin
            .execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await?;
        Ok(TestDatabase::new(self.host(), self.port, &name))
    }

    /// Runs `sql` with `psql` as `postgres` over the Unix socket and returns its output
    /// (unaligned, tuples only). Blocking; for set-up outside an async runtime.
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String> {
        let mut cmd = Command::new(crate::template::pg_bin().join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "postgres",
            "-h",
        ])
        .arg(self.socket_dir())
        .arg("-p")
        .arg(self.port.to_string())
        .arg("-d")
        .arg(dbname)
        .arg("-c")
        .arg(sql);
        run("psql", &mut cmd)
    }

    /// Stops the server and removes the directory now (what `Drop` does).
    pub fn stop(self) {}

    fn start_with(options: PgClusterBuilder) -> Result<PgCluster> {
        let template = template_data_dir()?;
        sweep_stale_clusters();
        let root = std::env::temp_dir().join(format!("sluice-testkit-cluster-{}", unique_suffix()));
        fs::create_dir(&root).map_err(Error::io(format!(
            "create directory \"{}\"",
            root.display()
        )))?;
        let mut cluster = PgCluster {
            root,
            port: 0,
            postmaster_pid: None,
            server: None,
            watchdog: None,
            ca_cert: None,
        };
        // From here on, Drop (or the watchdog) cleans up whatever fails.
        cluster.spawn_watchdog()?;
        give_to_server(&cluster.root)?;
        let data = cluster.data_dir();
        run("cp", Command::new("cp").arg("-a").arg(&template).arg(&data))?;
        fs::create_dir(cluster.socket_dir()).map_err(Error::io("create the socket directory"))?;
        give_to_server(&cluster.socket_dir())?;

        let mut conf: Vec<String> = BASE_SETTINGS.iter().map(|s| (*s).to_owned()).collect();
        conf.push(format!(
            "unix_socket_directories = {}",
            quote_literal(&cluster.socket_dir().display().to_string())
        ));
        conf.push("password_encryption = 'scram-sha-256'".to_owned());
        if let Some(names) = &options.tls_names {
            cluster.write_tls_files(names)?;
            conf.push("ssl = on".to_owned());
            conf.push("ssl_cert_file = 'server.crt'".to_owned());
            conf.push("ssl_key_file = 'server.key'".to_owned());
        }
        conf.extend(options.conf_lines.iter().cloned());
        append(&data.join("postgresql.conf"), &conf.join("\n"))?;
        fs::write(data.join("pg_hba.conf"), hba_file(&options))
            .map_err(Error::io("write pg_hba.conf"))?;

        cluster.spawn_server()?;
        if !options.users.is_empty() {
            let sql: String = options
                .users
                .iter()
                .map(|u| {
                    format!(
                        "SET password_encryption = {}; CREATE ROLE {} LOGIN REPLICATION PASSWORD {};\n",
                        quote_literal(u.method.password_encryption()),
                        quote_ident(&u.name),
                        quote_literal(&u.password)
                    )
                })
                .collect();
            cluster.psql("postgres", &sql)?;
        }
        Ok(cluster)
    }

    fn spawn_watchdog(&mut self) -> Result<()> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("sluice-testkit-watchdog")
            .arg(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C to the test's group must not kill the cleaner.
            .process_group(0)
            .spawn()
            .map_err(Error::io("spawn the cluster watchdog"))?;
        let stdin = child.stdin.take().expect("stdin was configured as a pipe");
        self.watchdog = Some((child, stdin));
        Ok(())
    }

    fn write_tls_files(&mut self, names: &[String]) -> Result<()> {
        let ca = CertificateAuthority::generate("sluice test CA")?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let server = ca.issue_server_cert(&names)?;
        let data = self.data_dir();
        let crt = data.join("server.crt");
        let key = data.join("server.key");
        fs::write(&crt, &server.cert_pem).map_err(Error::io("write server.crt"))?;
        fs::write(&key, &server.key_pem).map_err(Error::io("write server.key"))?;
        // The server refuses a key readable by group or others.
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .map_err(Error::io("chmod server.key"))?;
        give_to_server(&crt)?;
        give_to_server(&key)?;
        let ca_path = self.root.join("ca.crt");
        fs::write(&ca_path, ca.cert_pem()).map_err(Error::io("write ca.crt"))?;
        self.ca_cert = Some(ca_path);
        Ok(())
    }

    /// Stops the server at once (immediate shutdown, as a crash would), keeping its data;
    /// [`PgCluster::resume`] starts it again on the same port.
    pub fn halt(&mut self) {
        self.stop_server();
    }

    /// Stops the server with `mode` and starts it again on the same port, keeping its data.
    /// Fails when a fast shutdown does not finish within [`FAST_STOP_TIMEOUT`] (the server is
    /// then killed and started again anyway), or when the server does not start.
    pub fn restart(&mut self, mode: ShutdownMode) -> Result<()> {
        let clean = match mode {
            ShutdownMode::Immediate => {
                self.stop_server();
                true
            }
            ShutdownMode::Fast => self.stop_server_with(Signal::SIGINT, FAST_STOP_TIMEOUT),
        };
        self.resume()?;
        if clean {
            Ok(())
        } else {
            Err(Error::Io {
                action: format!(
                    "fast shutdown within {} s (the server was killed)",
                    FAST_STOP_TIMEOUT.as_secs()
                ),
                source: std::io::Error::from(std::io::ErrorKind::TimedOut),
            })
        }
    }

    /// Starts a server stopped by [`PgCluster::halt`] again, on the same port (so URLs handed
    /// out before stay valid). Crash recovery runs first, as after a real crash.
    pub fn resume(&mut self) -> Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        self.spawn_server_on(Some(self.port))
    }

    fn spawn_server(&mut self) -> Result<()> {
        self.spawn_server_on(None)
    }

    fn spawn_server_on(&mut self, fixed_port: Option<u16>) -> Result<()> {
        let data = self.data_dir();
        let pid_file = data.join("postmaster.pid");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = match fixed_port {
                Some(p) => p,
                None => free_port()?,
            };
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .map_err(Error::io("open the server log"))?;
            let log2 = log.try_clone().map_err(Error::io("clone the log handle"))?;
            let mut cmd = server_command("postgres")?;
            cmd.arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .process_group(0);
            let mut child = cmd.spawn().map_err(Error::io("spawn postgres"))?;
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if let Some(pid) = ready_pid(&pid_file) {
                    self.port = port;
                    self.postmaster_pid = Some(pid);
                    self.server = Some(child);
                    return Ok(());
                }
                let exited = child
                    .try_wait()
                    .map_err(Error::io("wait for postgres"))?
                    .is_some();
                if exited || Instant::now() > deadline {
                    if !exited {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    last_log = fs::read_to_string(self.log_path()).unwrap_or_default();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let port_clash = last_log.contains("could not bind")
                || last_log.contains("could not create any TCP/IP sockets");
            if !port_clash {
                break;
            }
            // Start the next attempt with a clean log.
            let _ = File::create(self.log_path());
        }
        let tail: String = {
            let lines: Vec<&str> = last_log.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        Err(Error::Start {
            data_dir: data,
            log_tail: tail,
        })
    }

    fn stop_server(&mut self) {
        // SIGQUIT is PostgreSQL's immediate shutdown (what `pg_ctl -m immediate stop` sends).
        self.stop_server_with(Signal::SIGQUIT, STOP_TIMEOUT);
    }

    /// Sends `signal` to the postmaster and waits up to `timeout` for it to exit, then kills
    /// it. Returns whether it exited by itself.
    fn stop_server_with(&mut self, signal: Signal, timeout: Duration) -> bool {
        let Some(mut child) = self.server.take() else {
            return true;
        };
        let pid = self
            .postmaster_pid
            .map(Pid::from_raw)
            .unwrap_or_else(|| Pid::from_raw(child.id() as i32));
        let _ = kill(pid, signal);
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) if Instant::now() > deadline => {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop_server();
        let _ = fs::remove_dir_all(&self.root);
        if let Some((mut child, stdin)) = self.watchdog.take() {
            // End of file: the watchdog finds nothing left to do and exits.
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Removes cluster directories whose test process is gone but whose watchdog did not clean up
/// (it was killed too, or the machine lost power), stopping their server first. A server is
/// signalled only when `/proc/PID/cmdline` names that very data directory. Best effort.
fn sweep_stale_clusters() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("sluice-testkit-cluster-"))
        else {
            continue;
        };
        let Some(owner) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if kill(Pid::from_raw(owner), None).is_ok() {
            continue; // The owning test process still runs (or its PID was reused): keep.
        }
        let root = entry.path();
        let data = root.join("data");
        if let Some(pid) = fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&*data.to_string_lossy());
            if ours && kill(Pid::from_raw(pid), Signal::SIGQUIT).is_ok() {
                let deadline = Instant::now() + STOP_TIMEOUT;
                while kill(Pid::from_raw(pid), None).is_ok() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = fs::remove_dir_all(&root);
    }
}

/// The postmaster's PID once `postmaster.pid` says the server accepts connections.
fn ready_pid(pid_file: &Path) -> Option<i32> {
    let text = fs::read_to_string(pid_file).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    // Line 8 is the status ("ready" once connections are accepted), since PostgreSQL 10.
    if lines.get(7).map(|s| s.trim()) != Some("ready") {
        return None;
    }
    lines.first()?.trim().parse().ok()
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(Error::io("bind 127.0.0.1:0 to find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(Error::io("read the bound address"))?
        .port();
    Ok(port)
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(Error::io(format!("open \"{}\"", path.display())))?;
    writeln!(f, "\n# sluice-testkit\n{text}")
        .map_err(Error::io(format!("write \"{}\"", path.display())))
}

fn hba_file(options: &PgClusterBuilder) -> String {
    let mut lines = vec!["# sluice-testkit: first match wins".to_owned()];
    lines.extend(options.hba_lines.iter().cloned());
    for u in &options.users {
        for db in ["all", "replication"] {
            lines.push(format!(
                "host {db} {} 127.0.0.1/32 {}",
                quote_ident(&u.name),
                u.method.hba()
            ));
        }
    }
    lines.extend(
        [
            "local all all trust",
            "local replication all trust",
            "host all all 127.0.0.1/32 trust",
            "host replication all 127.0.0.1/32 trust",
        ]
        .map(str::to_owned),
    );
    lines.join("\n") + "\n"
}

/// `"name"` with embedded double quotes doubled (SQL identifiers, `pg_hba.conf` user names).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'value'` with embedded single quotes doubled.
pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
