//! The data directory: an exclusive lock, the membership file, and the records store.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use hermes_core::{DurableMembership, NodeId};
use serde::{Deserialize, Serialize};

use crate::NodeError;

const LOCK_FILE: &str = "LOCK";
const MEMBERSHIP_FILE: &str = "membership.bin";
const MAGIC: &[u8; 8] = b"HRMSMB01";

/// What the membership file holds.
#[derive(Serialize, Deserialize)]
struct MembershipFile {
    node_id: NodeId,
    state: DurableMembership,
}

/// An open, locked data directory. The lock is released when this is dropped.
#[derive(Debug)]
pub(crate) struct DataDir {
    path: PathBuf,
    node_id: NodeId,
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed and locks it against a second process.
    pub(crate) fn open(path: &Path, node_id: NodeId) -> Result<Self, NodeError> {
        std::fs::create_dir_all(path).map_err(|err| {
            NodeError::Io(format!(
                "data directory {}: cannot create: {err}",
                path.display()
            ))
        })?;
        let lock_path = path.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|err| NodeError::Io(format!("{}: cannot open: {err}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(NodeError::Io(format!(
                    "data directory {} is in use by another hermes process (is node {} already running?)",
                    path.display(),
                    node_id.0
                )))
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(NodeError::Io(format!("{}: cannot lock: {err}", lock_path.display())))
            }
        }
        Ok(DataDir {
            path: path.to_path_buf(),
            node_id,
            _lock: lock,
        })
    }

    /// The saved membership state, if this node ran here before.
    pub(crate) fn load_membership(&self) -> Result<Option<DurableMembership>, NodeError> {
        let path = self.path.join(MEMBERSHIP_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(NodeError::Store(format!(
                    "{}: cannot read: {err}",
                    path.display()
                )))
            }
        };
        let corrupt = |detail: &str| {
            NodeError::Store(format!(
                "{}: corrupt or not a hermes membership file: {detail}",
                path.display()
            ))
        };
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| corrupt("bad header"))?;
        let file: MembershipFile =
            postcard::from_bytes(body).map_err(|err| corrupt(&err.to_string()))?;
        if file.node_id != self.node_id {
            return Err(NodeError::Config(format!(
                "data directory {} belongs to node {}, not node {}",
                self.path.display(),
                file.node_id.0,
                self.node_id.0
            )));
        }
        Ok(Some(file.state))
    }

    /// Writes the membership state durably: a temporary file, fsync, rename, fsync of the
    /// directory.
    pub(crate) fn save_membership(&self, state: &DurableMembership) -> Result<(), NodeError> {
        let file = MembershipFile {
            node_id: self.node_id,
            state: state.clone(),
        };
        let mut bytes = MAGIC.to_vec();
        let body = postcard::to_allocvec(&file).map_err(|err| {
            NodeError::Store(format!("cannot encode the membership state: {err}"))
        })?;
        bytes.extend_from_slice(&body);
        let target = self.path.join(MEMBERSHIP_FILE);
        let temp = self.path.join(format!("{MEMBERSHIP_FILE}.tmp"));
        let fail = |what: &str, err: std::io::Error| {
            NodeError::Store(format!("{}: {what}: {err}", target.display()))
        };
        let mut out = File::create(&temp).map_err(|e| fail("cannot create", e))?;
        out.write_all(&bytes).map_err(|e| fail("cannot write", e))?;
        out.sync_all().map_err(|e| fail("cannot sync", e))?;
        drop(out);
        std::fs::rename(&temp, &target).map_err(|e| fail("cannot rename", e))?;
        File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| fail("cannot sync the directory", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hermes_core::{Config, Epoch, Instant, Membership, View};

    fn state() -> DurableMembership {
        let view = View::new(Epoch(1), [NodeId(1), NodeId(2), NodeId(3)]);
        Membership::new(&Config::for_node(NodeId(1)), view, 0, Instant::ZERO).durable()
    }

    #[test]
    fn membership_round_trips_and_the_directory_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path(), NodeId(1)).unwrap();
        assert_eq!(data.load_membership().unwrap(), None);
        data.save_membership(&state()).unwrap();
        assert_eq!(data.load_membership().unwrap(), Some(state()));
        let err = DataDir::open(dir.path(), NodeId(1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("in use"), "{err}");
        drop(data);
        let other = DataDir::open(dir.path(), NodeId(2)).unwrap();
        let err = other.load_membership().unwrap_err().to_string();
        assert!(err.contains("belongs to node 1"), "{err}");
    }

    #[test]
    fn a_foreign_membership_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MEMBERSHIP_FILE), b"not hermes").unwrap();
        let data = DataDir::open(dir.path(), NodeId(1)).unwrap();
        let err = data.load_membership().unwrap_err().to_string();
        assert!(
            err.contains("membership.bin") && err.contains("corrupt"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1);
    }
}
