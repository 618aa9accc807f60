//! A fakesnow server (the Snowflake stand-in) for one test: a free port on 127.0.0.1, killed by
//! its PID on drop.
//!
//! fakesnow 0.12.1 must be installed in a Python venv, by default
//! `~/.cache/sluice/venv-fakesnow` (override with `SLUICE_FAKESNOW_VENV`); `.ci/run`
//! installs it. A missing venv fails the test, naming the command that installs it.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// fakesnow starts in 2-6 s on an idle machine; allow for a loaded CI runner.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// A running fakesnow server.
pub struct FakeSnow {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl FakeSnow {
    /// Starts a server on a free port and waits until it listens.
    pub fn start() -> FakeSnow {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port)
    }

    fn start_on(port: u16) -> FakeSnow {
        let venv = venv();
        let python = venv.join("bin/python");
        assert!(
            python.exists(),
            "fakesnow is not installed: {} is missing. Run `make test` (it runs \
             tests/scripts/install-fakesnow.sh), or point SLUICE_FAKESNOW_VENV at a venv that \
             has fakesnow[server]==0.12.1",
            python.display(),
        );
        let log = tempfile::NamedTempFile::new().expect("log file");
        // One open file for both streams, so they append instead of overwriting each other.
        let stdout = log.reopen().expect("log file");
        let stderr = stdout.try_clone().expect("log file");
        let child = Command::new(&python)
            .args([
                "-m",
                "fakesnow",
                "-s",
                "-p",
                &port.to_string(),
                "--host",
                "127.0.0.1",
            ])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start fakesnow");
        let mut server = FakeSnow { child, port, log };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().expect("fakesnow status") {
                panic!("fakesnow exited with {status}:\n{}", self.log());
            }
            assert!(
                start.elapsed() < STARTUP_TIMEOUT,
                "fakesnow did not listen within {STARTUP_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server and starts a new one on the same port: every session is gone.
    pub fn restart(self) -> FakeSnow {
        let port = self.port;
        drop(self);
        Self::start_on(port)
    }

    /// The Python interpreter of fakesnow's venv (it has the Snowflake connector too).
    pub fn python(&self) -> PathBuf {
        venv().join("bin/python")
    }

    /// The server's URL, for `[target] endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

/// fakesnow's venv: `SLUICE_FAKESNOW_VENV`, else `~/.cache/sluice/venv-fakesnow`.
fn venv() -> PathBuf {
    std::env::var_os("SLUICE_FAKESNOW_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/sluice/venv-fakesnow")
        })
}

impl Drop for FakeSnow {
    fn drop(&mut self) {
        // Only the process this helper started, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
