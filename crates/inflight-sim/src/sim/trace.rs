//! The trace: every storage call, crash and media fault, recorded for replay and for a failing
//! test's message.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[cfg(doc)]
use super::SimStorage;
use super::faults::Fault;
#[cfg(doc)]
use inflight::storage::{Storage, StorageFile};

/// The kinds of entries in the trace: one per storage call, plus crashes and media faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// [`Storage::create_dir_all`].
    CreateDirAll,
    /// [`Storage::is_dir`].
    IsDir,
    /// [`Storage::list`].
    List,
    /// [`Storage::create`].
    Create,
    /// [`Storage::open`].
    Open,
    /// [`Storage::rename`].
    Rename,
    /// [`Storage::remove`].
    Remove,
    /// [`Storage::sync_dir`].
    SyncDir,
    /// [`Storage::lock`].
    Lock,
    /// [`StorageFile::read_at`].
    ReadAt,
    /// [`StorageFile::write_at`].
    WriteAt,
    /// [`StorageFile::len`].
    Len,
    /// [`StorageFile::set_len`].
    SetLen,
    /// [`StorageFile::sync_data`].
    SyncData,
    /// [`StorageFile::sync_all`].
    SyncAll,
    /// Not a storage call: a simulated power loss ([`SimStorage::crash`]).
    Crash,
    /// Not a storage call: an injected media fault ([`SimStorage::corrupt_durable`]).
    MediaFault,
}

impl OpKind {
    /// Whether this entry is a storage call (counted by [`SimStorage::op_count`]).
    pub fn is_call(self) -> bool {
        !matches!(self, OpKind::Crash | OpKind::MediaFault)
    }

    fn name(self) -> &'static str {
        match self {
            OpKind::CreateDirAll => "create_dir_all",
            OpKind::IsDir => "is_dir",
            OpKind::List => "list",
            OpKind::Create => "create",
            OpKind::Open => "open",
            OpKind::Rename => "rename",
            OpKind::Remove => "remove",
            OpKind::SyncDir => "sync_dir",
            OpKind::Lock => "lock",
            OpKind::ReadAt => "read_at",
            OpKind::WriteAt => "write_at",
            OpKind::Len => "len",
            OpKind::SetLen => "set_len",
            OpKind::SyncData => "sync_data",
            OpKind::SyncAll => "sync_all",
            OpKind::Crash => "crash",
            OpKind::MediaFault => "media_fault",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One recorded storage call (or crash, or media fault).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// For a storage call, its number (0 for the first call); for a crash or media fault, the
    /// number of calls made before it.
    pub index: u64,
    /// The operation.
    pub op: OpKind,
    /// The path it was given (for file calls, the path the file was opened or created with;
    /// empty for a crash).
    pub path: PathBuf,
    /// The offset of a read, write or media fault; the new length of a `set_len`.
    pub offset: Option<u64>,
    /// The length of the buffer of a read or write.
    pub len: Option<u64>,
    /// The fault injected into this call, if any.
    pub fault: Option<Fault>,
    /// More about the entry: a rename's target, a crash's summary, a media fault's kind.
    pub detail: String,
    /// The outcome: on success a number that depends on the call (bytes read or written, the
    /// length, the number of names listed, 1 or 0 for `is_dir`, the inode of a created or
    /// opened file, 0 otherwise); on failure the error's text.
    pub result: Result<u64, String>,
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.op.is_call() {
            write!(f, "----- after call {}: {}", self.index, self.op)?;
            if !self.path.as_os_str().is_empty() {
                write!(f, " {}", super::shown(&self.path))?;
            }
            if let Some(offset) = self.offset {
                write!(f, " off={offset}")?;
            }
            return write!(f, " {} -----", self.detail);
        }
        write!(
            f,
            "#{:<5} {:<14} {}",
            self.index,
            self.op,
            super::shown(&self.path)
        )?;
        if let Some(offset) = self.offset {
            write!(f, " off={offset}")?;
        }
        if let Some(len) = self.len {
            write!(f, " len={len}")?;
        }
        if !self.detail.is_empty() {
            write!(f, " {}", self.detail)?;
        }
        match &self.result {
            Ok(v) => write!(f, " -> Ok({v})")?,
            Err(e) => write!(f, " -> Err({e})")?,
        }
        if let Some(fault) = self.fault {
            write!(f, " [injected {fault:?}]")?;
        }
        Ok(())
    }
}

/// What the trace records about a call before it runs.
pub(super) struct Rec {
    pub(super) op: OpKind,
    pub(super) path: PathBuf,
    pub(super) offset: Option<u64>,
    pub(super) len: Option<u64>,
    pub(super) detail: String,
}

impl Rec {
    pub(super) fn new(op: OpKind, path: &Path) -> Rec {
        Rec {
            op,
            path: path.to_path_buf(),
            offset: None,
            len: None,
            detail: String::new(),
        }
    }
}

pub(super) fn zero<T>(r: &io::Result<T>) -> Result<u64, String> {
    r.as_ref().map(|_| 0).map_err(|e| e.to_string())
}

pub(super) fn copied(r: &io::Result<u64>) -> Result<u64, String> {
    r.as_ref().copied().map_err(|e| e.to_string())
}

pub(super) fn len_of(r: &io::Result<usize>) -> Result<u64, String> {
    r.as_ref().map(|&n| n as u64).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use crate::sim::test_util::*;

    #[test]
    fn trace_text_renders_calls_and_crashes() {
        let sim = SimStorage::new(12);
        setup(&sim, b"abc");
        sim.crash();
        let text = sim.trace_text();
        assert!(text.contains("write_at"), "{text}");
        assert!(text.contains("/data/f off=0 len=3 -> Ok(3)"), "{text}");
        assert!(text.contains("crash"), "{text}");
        let last = sim.trace_text_last(2);
        assert_eq!(last.lines().count(), 3, "{last}");
        assert!(last.starts_with("("), "{last}");
    }
}
