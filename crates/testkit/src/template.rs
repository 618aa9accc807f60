//! The cached `initdb` template and running PostgreSQL programs as the right OS user.
//!
//! `initdb` takes seconds, so it runs once per machine and set of options into
//! `$TMPDIR/sluice-testkit-template-15-<hash>/data`. The template is built in a private
//! temporary directory and renamed into place, so parallel test processes never see half of
//! one: the first rename wins and the losers discard theirs.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::unistd::{Uid, User};

use crate::error::{Error, Result};

/// Where the PostgreSQL 15 programs are, unless `SLUICE_PG_BIN` says otherwise.
const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The OS user that runs `initdb` and `postgres` when the tests run as root (both refuse root).
const SERVER_OS_USER: &str = "postgres";

/// The `initdb` arguments that every template shares; part of the template's cache key.
const INITDB_ARGS: &[&str] = &[
    "--username=postgres",
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
];

/// The directory holding `initdb`, `postgres` and `psql`.
pub(crate) fn pg_bin() -> PathBuf {
    std::env::var_os("SLUICE_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN))
}

/// The uid and gid to own server files, when the tests run as root.
pub(crate) fn server_owner() -> Result<Option<(nix::unistd::Uid, nix::unistd::Gid)>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = User::from_name(SERVER_OS_USER)
        .map_err(|e| Error::Io {
            action: format!("look up OS user \"{SERVER_OS_USER}\""),
            source: e.into(),
        })?
        .ok_or_else(|| Error::Io {
            action: format!("look up OS user \"{SERVER_OS_USER}\""),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such user: create it (the postgresql packages do) to run the tests as root",
            ),
        })?;
    Ok(Some((user.uid, user.gid)))
}

/// Gives `path` to the server's OS user when running as root.
pub(crate) fn give_to_server(path: &Path) -> Result<()> {
    if let Some((uid, gid)) = server_owner()? {
        std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw()))
            .map_err(Error::io(format!("chown \"{}\"", path.display())))?;
    }
    Ok(())
}

/// A command for the PostgreSQL program `program`, run as the server's OS user when root.
pub(crate) fn server_command(program: &str) -> Result<Command> {
    let path = pg_bin().join(program);
    Ok(if server_owner()?.is_some() {
        let mut cmd = Command::new("runuser");
        cmd.args([
            OsStr::new("-u"),
            OsStr::new(SERVER_OS_USER),
            OsStr::new("--"),
        ])
        .arg(path);
        cmd
    } else {
        Command::new(path)
    })
}

/// Runs `cmd` to completion; a non-zero exit becomes [`Error::Program`] with its output.
pub(crate) fn run(program: &str, cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(Error::io(format!("run {program}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(Error::Program {
            program: program.to_owned(),
            status: out.status.to_string(),
            output: text,
        });
    }
    Ok(text)
}

/// A name no other process or thread uses at the same time.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// FNV-1a: stable across Rust releases, unlike `DefaultHasher`, so the cache key is too.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The data directory of the cached template, running `initdb` first if there is none yet.
pub(crate) fn template_data_dir() -> Result<PathBuf> {
    let key = format!("{}|{}", pg_bin().display(), INITDB_ARGS.join(" "));
    let final_dir = std::env::temp_dir().join(format!(
        "sluice-testkit-template-15-{:016x}",
        fnv1a(key.as_bytes())
    ));
    let data = final_dir.join("data");
    if data.join("PG_VERSION").is_file() {
        return Ok(data);
    }

    let staging = std::env::temp_dir().join(format!(
        "sluice-testkit-template-staging-{}",
        unique_suffix()
    ));
    fs::create_dir(&staging).map_err(Error::io(format!(
        "create directory \"{}\"",
        staging.display()
    )))?;
    let result = build_template(&staging).and_then(|()| {
        match fs::rename(&staging, &final_dir) {
            Ok(()) => Ok(()),
            // Another process won the race; its template is as good as ours.
            Err(_) if data.join("PG_VERSION").is_file() => Ok(()),
            Err(e) => Err(Error::Io {
                action: format!(
                    "rename \"{}\" to \"{}\"",
                    staging.display(),
                    final_dir.display()
                ),
                source: e,
            }),
        }
    });
    if staging.exists() {
        let _ = fs::remove_dir_all(&staging);
    }
    result.map(|()| data)
}

fn build_template(staging: &Path) -> Result<()> {
    give_to_server(staging)?;
    let data = staging.join("data");
    let mut cmd = server_command("initdb")?;
    cmd.args(INITDB_ARGS).arg("-D").arg(&data);
    run("initdb", &mut cmd)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn unique_suffixes_differ() {
        assert_ne!(unique_suffix(), unique_suffix());
    }
}
