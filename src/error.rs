//! The crate's one error type: what went wrong, where, and what to do about it.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong when opening, writing or replaying a log.
///
/// Each variant says where the problem is (directory, file, byte offset, key) and its message
/// says what the caller can do. (The `inflight` command line maps the variants to its exit
/// codes; that policy is the tool's, not the library's.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A storage call failed.
    #[error(
        "{op} {}: {source}; check the disk, its free space and the file's permissions, then reopen the log",
        path.display()
    )]
    Io {
        /// The operation that failed, for example `"sync"` or `"write"`.
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Another process (or another handle in this one) holds the directory's lock.
    #[error(
        "log directory {} is locked by {}; stop that process, or read it with `inflight replay`, which needs no lock",
        dir.display(),
        match holder_pid { Some(pid) => format!("process {pid}"), None => "another process".to_string() }
    )]
    Locked {
        /// The log directory.
        dir: PathBuf,
        /// The pid the holder wrote into the lock file, if it could be read.
        holder_pid: Option<u32>,
    },

    /// The log holds a damaged region and the strict policy was asked for.
    #[error(
        "corrupt log: {} at byte {offset}: {detail}; open with the default policy to skip the damaged region and report it as a gap",
        segment.display()
    )]
    Corrupt {
        /// The segment file holding the damage.
        segment: PathBuf,
        /// Byte offset of the first damaged byte in that file.
        offset: u64,
        /// What is wrong there.
        detail: String,
    },

    /// A segment was written by a newer (or unknown) version of the format.
    #[error(
        "{}: on-disk format version {found} is not supported (this build reads version {supported}); use a newer inflight",
        path.display()
    )]
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// The version found in its header.
        found: u32,
        /// The version this build writes and reads.
        supported: u32,
    },

    /// An earlier write or sync failed, so nothing this handle says about durability can be
    /// trusted any more. Every call fails with this until the log is reopened, which replays
    /// exactly what reached the disk.
    #[error("log handle is poisoned by an earlier failure ({cause}); reopen the log to recover")]
    Poisoned {
        /// The failure that poisoned the handle.
        cause: String,
    },

    /// The handle was closed with [`Log::close`](crate::Log::close).
    #[error("log handle is closed; reopen the log to write again")]
    Closed,

    /// The caller's input breaks a limit; nothing was written.
    #[error("invalid input: {field} {reason}{}", key_hint(key))]
    InvalidInput {
        /// Which field is wrong (`key`, `session_id`, `meta`, `segment_bytes_max`, ...).
        field: &'static str,
        /// Why it is rejected.
        reason: String,
        /// The key concerned, shortened for display, if the field is not the key itself.
        key: Option<String>,
    },

    /// The log directory's path names something that is not a directory.
    #[error("{} exists and is not a directory; give the path of a log directory", path.display())]
    NotADirectory {
        /// The path that was given.
        path: PathBuf,
    },

    /// A read-only open was pointed at a directory that does not exist or holds no segment
    /// file: there is no log there (which must never read as "nothing in flight").
    #[error(
        "no inflight log at {}: no such directory, or no NNNNNNNNNNNNNNNNNNNN.log segment files in it; check the path",
        dir.display()
    )]
    NotFound {
        /// The path that was given.
        dir: PathBuf,
    },
}

fn key_hint(key: &Option<String>) -> String {
    match key {
        Some(k) => format!(" (key {k:?})"),
        None => String::new(),
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
