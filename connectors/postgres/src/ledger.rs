//! The snapshot's chunk ledger: which chunks of an initial snapshot are durable in the change
//! log, so that a restart after a crash copies only the others.
//!
//! The change log is capture's checkpoint (the loader's lives in the target, in the same
//! transaction as the data it loaded); the ledger is a small file in capture's state directory
//! (by default next to the log's segments) that says what the log holds of an unfinished snapshot. A chunk is marked done only after
//! `append` has returned for its last record, so the ledger never claims more than the log
//! holds; it may claim less (a crash between that append and the ledger's write), and the
//! chunk is then copied again, which the position guard makes harmless (see `snapshot`).
//!
//! **Disk format** (version 1): one header line `sluice-snapshot-ledger 1 <crc32c>\n`, where
//! `<crc32c>` is eight lower-case hex digits of the CRC32C of the rest of the file, then a JSON
//! document ([`Ledger`]). It is replaced atomically: written to `<name>.tmp`, fsynced, renamed
//! over the old file, and the directory fsynced. A file that is missing, torn, fails its
//! checksum or has another version is no ledger: the snapshot starts over.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_core::{Lsn, TableId};

use crate::chunk::{Bounds, KeyColumn};

/// Name of the ledger file in capture's state directory (by default the change log's).
pub const FILE_NAME: &str = "snapshot-ledger";

const MAGIC: &str = "sluice-snapshot-ledger";
const VERSION: u32 = 1;

/// The state of an unfinished snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// The slot's consistent point: the snapshot's `SnapshotBegin` and `SnapshotEnd` carry it.
    pub consistent_point: Lsn,
    /// The positions snapshot rows were written at: `consistent_point - 1` first, then one
    /// more for every resumed run (its temporary snapshot's consistent point - 1). A ledger
    /// whose log ends in a snapshot chunk at another position does not describe that log.
    pub rows_at: Vec<Lsn>,
    pub tables: Vec<LedgerTable>,
}

/// One table of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTable {
    pub table: TableId,
    /// The table's columns and key as the snapshot began ([`shape`]): a table whose shape
    /// changed since cannot continue under a later snapshot.
    pub shape: String,
    /// The key the chunks are ranges of; `None` for block ranges or a single chunk, which are
    /// never copied under a second snapshot.
    pub key: Option<Vec<KeyColumn>>,
    pub chunks: Vec<Bounds>,
    /// Per chunk: durable in the change log.
    pub done: Vec<bool>,
}

impl LedgerTable {
    pub fn finished(&self) -> bool {
        self.done.iter().all(|d| *d)
    }
}

impl Ledger {
    /// Chunks marked done, and all chunks.
    pub fn progress(&self) -> (usize, usize) {
        self.tables.iter().fold((0, 0), |(d, n), t| {
            (
                d + t.done.iter().filter(|d| **d).count(),
                n + t.chunks.len(),
            )
        })
    }

    /// The file's bytes. Pure.
    pub fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec(self).expect("a ledger always serializes");
        let mut out = format!("{MAGIC} {VERSION} {:08x}\n", crc32c::crc32c(&body)).into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// Reads a ledger from its bytes; `Err` says why it is not one. Pure.
    pub fn decode(bytes: &[u8]) -> Result<Ledger, String> {
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("no header line")?;
        let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| "header is not UTF-8")?;
        let body = &bytes[nl + 1..];
        let mut parts = header.split(' ');
        if parts.next() != Some(MAGIC) {
            return Err("not a snapshot ledger".to_owned());
        }
        let version = parts.next().ok_or("no version")?;
        if version != VERSION.to_string() {
            return Err(format!("version {version}, expected {VERSION}"));
        }
        let crc = parts
            .next()
            .and_then(|c| u32::from_str_radix(c, 16).ok())
            .ok_or("no checksum")?;
        if crc32c::crc32c(body) != crc {
            return Err("checksum mismatch (torn or damaged)".to_owned());
        }
        let ledger: Ledger =
            serde_json::from_slice(body).map_err(|e| format!("unreadable body: {e}"))?;
        if ledger.tables.iter().any(|t| t.done.len() != t.chunks.len()) {
            return Err("chunk and done lists differ in length".to_owned());
        }
        Ok(ledger)
    }

    /// Reads the ledger at `path`: `Ok(None)` when there is none, `Err` with the reason when
    /// the file is not a usable ledger.
    pub fn load(path: &Path) -> Result<Option<Ledger>, String> {
        match std::fs::read(path) {
            Ok(bytes) => Ledger::decode(&bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Replaces the file at `path` atomically and durably (blocking: call from
    /// `spawn_blocking`).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = tmp_path(path);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&self.encode())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    }

    /// Removes the file at `path` (the snapshot is finished), if it exists.
    pub fn remove(path: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => sync_dir(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// A table's columns (name, type, modifier, key flag) and identity as one string. Pure.
pub fn shape(relation: &sluice_core::RelationSchema) -> String {
    let mut s = format!("{:?}", relation.replica_identity);
    for c in &relation.columns {
        s.push_str(&format!(
            ";{}:{}:{}:{}",
            c.name, c.type_oid, c.type_modifier, c.key
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        Ledger {
            consistent_point: Lsn(0x1_0000_0100),
            rows_at: vec![Lsn(0x1_0000_00FF)],
            tables: vec![
                LedgerTable {
                    table: TableId::new("public", "orders"),
                    shape: "Default;id:20:-1:true".into(),
                    key: Some(vec![KeyColumn {
                        name: "id".into(),
                        type_name: "bigint".into(),
                    }]),
                    chunks: vec![
                        Bounds::Key {
                            lower: None,
                            upper: Some(vec!["100".into()]),
                        },
                        Bounds::Key {
                            lower: Some(vec!["100".into()]),
                            upper: None,
                        },
                    ],
                    done: vec![true, false],
                },
                LedgerTable {
                    table: TableId::new("public", "events"),
                    shape: "Default;at:1184:-1:false".into(),
                    key: None,
                    chunks: vec![Bounds::Blocks {
                        lower: None,
                        upper: None,
                    }],
                    done: vec![false],
                },
            ],
        }
    }

    #[test]
    fn round_trips_through_bytes_and_files() {
        let l = ledger();
        assert_eq!(Ledger::decode(&l.encode()), Ok(l.clone()));
        assert_eq!(l.progress(), (1, 3));
        let dir = std::env::temp_dir().join(format!("sluice-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(FILE_NAME);
        assert_eq!(Ledger::load(&path), Ok(None));
        l.save(&path).expect("save");
        assert_eq!(Ledger::load(&path), Ok(Some(l.clone())));
        assert!(!tmp_path(&path).exists(), "the temporary file was renamed");
        Ledger::remove(&path).expect("remove");
        assert_eq!(Ledger::load(&path), Ok(None));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn torn_damaged_or_foreign_files_are_refused() {
        let bytes = ledger().encode();
        // Torn at every length.
        for n in 0..bytes.len() {
            assert!(Ledger::decode(&bytes[..n]).is_err(), "torn at {n}");
        }
        // One flipped bit in the body.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert!(
            Ledger::decode(&flipped)
                .expect_err("flipped bit")
                .contains("checksum")
        );
        // Another version.
        let other = String::from_utf8(bytes.clone())
            .expect("utf-8")
            .replacen(" 1 ", " 2 ", 1);
        assert!(
            Ledger::decode(other.as_bytes())
                .expect_err("other version")
                .contains("version")
        );
        // Inconsistent lists, with a valid checksum.
        let mut l = ledger();
        l.tables[0].done.pop();
        assert!(Ledger::decode(&l.encode()).is_err());
    }
}
