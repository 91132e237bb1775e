//! The last good routing table on disk (`--state-dir/routing.snapshot`): written atomically
//! (temporary file, fsync, rename, fsync of the directory) with a trailing SHA-256 checksum, so a
//! crash mid-write leaves the previous file and a damaged file is detected, not loaded.

use super::table::RoutingTable;
use prost::Message;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use switchboard_proto::v1 as pb;

const FILE_NAME: &str = "routing.snapshot";
/// Header of the file: magic line, then the encoded `RoutingSnapshot`, then its SHA-256.
const MAGIC: &[u8] = b"SWITCHBOARD-ROUTING-2\n";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt snapshot ({reason})")]
    Corrupt { path: PathBuf, reason: String },
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Writes `table` atomically.
pub fn save(dir: &Path, table: &RoutingTable) -> Result<(), SnapshotError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SnapshotError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // Stream the RoutingSnapshot message field by field, hashing as we go, so the
    // table is never held twice in memory; the checksum follows the body.
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut buf = Vec::with_capacity(4096);
    let mut write = |buf: &mut Vec<u8>, out: &mut std::io::BufWriter<std::fs::File>| {
        hasher.update(&buf[..]);
        let result = out.write_all(buf);
        buf.clear();
        result
    };
    out.write_all(MAGIC).map_err(io(&tmp))?;
    prost::encoding::int64::encode(1, &table.version(), &mut buf);
    write(&mut buf, &mut out).map_err(io(&tmp))?;
    for entry in table.to_entries() {
        prost::encoding::message::encode(2, &entry, &mut buf);
        write(&mut buf, &mut out).map_err(io(&tmp))?;
    }
    let checksum = hasher.finalize();
    out.write_all(&checksum).map_err(io(&tmp))?;
    let file = out.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    let target = path(dir);
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    // Make the rename itself durable.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Reads the snapshot, if there is one; a damaged file is an error, never a table.
pub fn load(dir: &Path) -> Result<Option<pb::RoutingSnapshot>, SnapshotError> {
    let path = path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SnapshotError::Io { path, source }),
    };
    let corrupt = |reason: &str| SnapshotError::Corrupt {
        path: path.clone(),
        reason: reason.to_owned(),
    };
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("bad header"))?;
    if rest.len() < 32 {
        return Err(corrupt("truncated"));
    }
    let (body, checksum) = rest.split_at(rest.len() - 32);
    if Sha256::digest(body)[..] != *checksum {
        return Err(corrupt("checksum mismatch"));
    }
    let snapshot = pb::RoutingSnapshot::decode(body).map_err(|e| corrupt(&e.to_string()))?;
    Ok(Some(snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(version: i64) -> RoutingTable {
        RoutingTable::build(
            version,
            [pb::RoutingEntry {
                key: "w:01a214e0-0000-7000-8000-00000000000b".into(),
                entry: Some(pb::routing_entry::Entry::Workflow(pb::WorkflowRoute {
                    id: "01a214e0-0000-7000-8000-00000000000b".into(),
                    project_id: "01a214e0-0000-7000-8000-00000000000a".into(),
                    status: "active".into(),
                    ..Default::default()
                })),
            }],
        )
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_detected() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        assert!(load(dir.path())?.is_none());
        save(dir.path(), &table(7))?;
        let loaded = load(dir.path())?.ok_or("missing")?;
        assert_eq!(loaded.version, 7);
        assert_eq!(loaded.entries, table(7).to_entries().collect::<Vec<_>>());

        let mut bytes = std::fs::read(path(dir.path()))?;
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(path(dir.path()), &bytes)?;
        assert!(matches!(
            load(dir.path()),
            Err(SnapshotError::Corrupt { .. })
        ));
        std::fs::write(path(dir.path()), b"garbage")?;
        assert!(matches!(
            load(dir.path()),
            Err(SnapshotError::Corrupt { .. })
        ));
        Ok(())
    }

    #[test]
    fn a_leftover_temporary_file_does_not_replace_the_snapshot()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        save(dir.path(), &table(3))?;
        // A process killed mid-write leaves only the temporary file behind.
        std::fs::write(dir.path().join(format!("{FILE_NAME}.tmp")), b"half a sna")?;
        assert_eq!(load(dir.path())?.map(|s| s.version), Some(3));
        Ok(())
    }
}
