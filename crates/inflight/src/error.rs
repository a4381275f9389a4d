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
    ///
    /// When a read-write open fails because the disk is full (`ENOSPC`, kind
    /// [`io::ErrorKind::StorageFull`]), the message says so, and that [`inspect::read_only`](crate::inspect::read_only)
    /// (`inflight replay DIR`) still reports what was in flight, since it writes nothing.
    ///
    /// [`inspect::read_only`]: crate::inspect::read_only
    #[error("{op} {}: {source}; {}", path.display(), io_advice(source, *at_open))]
    Io {
        /// The operation that failed, for example `"sync"` or `"write"`.
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
        /// Whether the call was part of a read-write open ([`Log::open`]) rather than of an
        /// append or a read-only replay.
        ///
        /// [`Log::open`]: crate::Log::open
        at_open: bool,
    },

    /// Another process (or another handle in this one) holds the directory's lock (for a
    /// fleet's log in a database, the instance's lock: another connection has it open).
    #[error("{}", locked_message(dir, *holder_pid))]
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
        /// The file holding the damage: a segment, or a snapshot.
        segment: PathBuf,
        /// Byte offset of the first damaged byte in that file.
        offset: u64,
        /// What is wrong there.
        detail: String,
    },

    /// A segment or snapshot was written by a newer (or unknown) version of the format.
    #[error(
        "{}: on-disk format version {found} is not supported (this build reads versions up to {supported}); use a newer inflight",
        path.display()
    )]
    UnsupportedVersion {
        /// The segment or snapshot file.
        path: PathBuf,
        /// The version found in its header (a snapshot's `inflight_snapshot`).
        found: u32,
        /// The version this build writes and reads.
        supported: u32,
    },

    /// An earlier write or sync failed, so nothing this handle says about durability can be
    /// trusted any more. Every call fails with this until the log is reopened, which replays
    /// exactly what reached the disk.
    #[error("log handle is poisoned by an earlier failure ({cause}); reopen the log to recover")]
    Poisoned {
        /// The kind of the I/O error that poisoned the handle: [`io::ErrorKind::StorageFull`]
        /// for a full disk (free space, then reopen), another kind for a failing disk or file
        /// system (check the device before trusting it again).
        kind: io::ErrorKind,
        /// The failure that poisoned the handle, as text.
        cause: String,
        /// Whether it was the database's (a fleet's log: a connection lost or stalled, a
        /// statement refused) rather than a disk's. The command line exits 11 for it.
        database: bool,
    },

    /// The handle was closed with [`Log::close`](crate::Log::close).
    #[error("log handle is closed; reopen the log to write again")]
    Closed,

    /// A JSON checkpoint file (the design this crate replaces) cannot be imported: it is not
    /// valid JSON, not UTF-8, or not the checkpoint's shape (an object of runs by key, each with
    /// a `session_id` string and a numeric `started_at`), or a key is given twice. Nothing was
    /// imported and the file is untouched: repair it, or move it aside to start with an empty
    /// log (its runs are then not recovered, and the time-window fallback covers them).
    #[error(
        "{}: cannot import the JSON checkpoint: {detail}{}; nothing was imported and the file is untouched: repair it, or move it aside to start with an empty log",
        path.display(),
        line.zip(*column).map_or(String::new(), |(l, c)| format!(" (line {l}, column {c})"))
    )]
    CheckpointFile {
        /// The checkpoint file.
        path: PathBuf,
        /// Where the JSON breaks (1-based), when it is not valid JSON.
        line: Option<usize>,
        /// The column there (1-based).
        column: Option<usize>,
        /// What is wrong.
        detail: String,
    },

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

    /// A start under a generation the gateway chose is below the key's high-water mark: the
    /// log has recorded a higher generation for the key (often before a restart, when the
    /// gateway's own counter began again at 1). The run would be stale, so it was refused and
    /// nothing was written: the caller learns at once that it is not tracked. Let the log
    /// allocate the generation ([`Log::begin_run`](crate::Log::begin_run)), or start above
    /// `high_water`.
    #[error(
        "stale generation: key {key:?} is at generation {high_water} in the log, and a start under generation {generation} would be ignored, so it was refused and nothing was written; let the log allocate generations (begin_run), or start above {high_water}"
    )]
    StaleGeneration {
        /// The key, shortened for display.
        key: String,
        /// The generation the caller gave.
        generation: u64,
        /// The key's high-water mark (counting starts accepted and not yet durable).
        high_water: u64,
    },

    /// The key's generations are used up: its high-water mark is `u64::MAX`, so no generation
    /// above it is left to allocate (a generation never wraps). Nothing was written. Complete
    /// the key's run, and begin new runs under another key.
    #[error(
        "no generation left: key {key:?} is at generation {}, the largest there is, and a generation never wraps; nothing was written",
        u64::MAX
    )]
    GenerationsExhausted {
        /// The key, shortened for display.
        key: String,
    },

    /// The log directory's path names something that is not a directory.
    #[error("{} exists and is not a directory; give the path of a log directory", path.display())]
    NotADirectory {
        /// The path that was given.
        path: PathBuf,
    },

    /// An import ([`import::import_runs`](crate::import::import_runs)) was pointed at a directory
    /// that is not empty; it was left untouched.
    #[error(
        "{} {}; import into a new or empty directory",
        dir.display(),
        if *log { "already holds an inflight log, which an import never mixes with imported runs" } else { "is not empty" }
    )]
    AlreadyExists {
        /// The directory that was given.
        dir: PathBuf,
        /// Whether it holds a log (segment or snapshot files), rather than only other files.
        log: bool,
    },

    /// The instance's log was taken over by another instance (a fleet's takeover, see
    /// `inflight_postgres::Fleet::take_over`): from the moment the takeover committed, nothing
    /// this handle writes is accepted, and nothing it tried to write is visible to the new
    /// owner. A zombie (a process whose machine only looked dead) gets this on every call; an
    /// open of a taken-over instance gets it too.
    #[error(
        "instance {instance:?} was taken over by {by:?} (fencing epoch {epoch}): this process no longer owns that log and nothing it writes is accepted; stop it, and start again under a new instance id"
    )]
    Fenced {
        /// The instance whose log was taken over.
        instance: String,
        /// The instance that took it over, as it named itself.
        by: String,
        /// The fencing epoch the takeover set.
        epoch: u64,
    },

    /// A takeover found the instance already taken over by another instance: its runs are
    /// that one's (which may have resumed them), so they are not handed out twice.
    #[error(
        "instance {instance:?} was already taken over by {by:?} (fencing epoch {epoch}): its runs are {by:?}'s; if {by:?} died too, take it over instead (its log holds what it resumed), and read {instance:?}'s frozen log with `inflight replay --database URL --instance {instance}`"
    )]
    AlreadyTakenOver {
        /// The instance asked for.
        instance: String,
        /// The instance that took it over first.
        by: String,
        /// Its fencing epoch.
        epoch: u64,
    },

    /// The database holds no inflight schema, or a version of it this build does not know.
    #[error(
        "database {database} has no usable inflight schema ({detail}); create it once with `inflight fleet init --database URL` (inflight_postgres::Fleet::create_schema)"
    )]
    NoSchema {
        /// The database, as its URL without the password.
        database: String,
        /// What was found instead.
        detail: String,
    },

    /// The database holds no log for this instance: a takeover, a read-only replay or an
    /// offline tool was given an instance id that never opened a log there.
    #[error(
        "database {database} has no log of instance {instance:?}; check the id (`inflight fleet list --database URL` lists the instances)"
    )]
    NoInstance {
        /// The database, as its URL without the password.
        database: String,
        /// The instance id that was given.
        instance: String,
    },

    /// A takeover named a taker (`by`) the database holds no instance of: the taker is the
    /// surviving instance, which opens its own log before it takes another one over, so an
    /// unknown id is most often a typo, and the runs would be handed to nobody.
    #[error(
        "database {database} has no instance {by:?} to take over for: the taker is a surviving instance, which opens its own log (inflight_postgres::Fleet::open, `inflight load --database URL --instance {by}`) before it takes another over; check --by (`inflight fleet list --database URL`), or create it with the takeover (--create-taker, inflight_postgres::Taker::CreateIfMissing)"
    )]
    UnknownTaker {
        /// The database, as its URL without the password.
        database: String,
        /// The taker that was given.
        by: String,
    },

    /// The database could not be reached, or refused a statement outside a storage call (a
    /// storage call's failures are [`Error::DatabaseCall`]).
    #[error(
        "database {database}: {cause}; check that the server runs and that the URL (host, port, user, database name) is right"
    )]
    Database {
        /// The database, as its URL without the password.
        database: String,
        /// What the client or the server said.
        cause: String,
    },

    /// A database statement of a storage call failed (a fleet's log): the connection was lost
    /// or stalled, or the server refused. An append that fails so poisons the handle; a reopen
    /// (or a takeover) reads exactly what committed.
    #[error(
        "{op} {}: {source}; check the database server and the connection; a log handle that failed so is poisoned, and a reopen (or a takeover) reads exactly what committed",
        path.display()
    )]
    DatabaseCall {
        /// The storage call that failed, for example `"sync"` or `"list"`.
        op: &'static str,
        /// The log file or log it was applied to (`pg:INSTANCE/NAME`).
        path: PathBuf,
        /// What failed.
        #[source]
        source: DatabaseError,
    },

    /// A read-only open (or an offline compaction) was pointed at a directory that does not
    /// exist or holds neither a segment nor a snapshot file: there is no log there (which must
    /// never read as "nothing in flight").
    #[error(
        "no inflight log at {}: no such directory, or neither segment (NNNNNNNNNNNNNNNNNNNN.log) nor snapshot files in it; check the path",
        dir.display()
    )]
    NotFound {
        /// The path that was given.
        dir: PathBuf,
    },

    /// A read-only reading of a live log ([`inspect::read_only`](crate::inspect::read_only), the
    /// offline tools) was overtaken by the writer `attempts` times in a row: each time a
    /// compaction or a segment rollover changed the files under it, so it started over, up to
    /// [`READ_ATTEMPTS_MAX`](crate::limits::READ_ATTEMPTS_MAX) readings. Nothing is wrong with
    /// the log, and nothing was reported from a reading that did not hold still: read again,
    /// or read a copy of the directory.
    #[error(
        "the log at {} kept changing under the reading: a compaction or a segment rollover overtook {attempts} readings in a row, so none was reported; nothing is wrong with the log: read it again (or, for a directory, read a copy of it)",
        dir.display()
    )]
    KeptChanging {
        /// The log directory (for a fleet's log, `pg:INSTANCE`).
        dir: PathBuf,
        /// How many readings were made.
        attempts: u32,
    },
}

/// What to do about a failed storage call.
fn io_advice(source: &io::Error, at_open: bool) -> &'static str {
    if at_open && source.kind() == io::ErrorKind::StorageFull {
        "the disk is full, and a read-write open writes: it needs room for a copy of the last \
         segment (up to segment_bytes_max, 1 MiB by default); free space, then open the log \
         again. Meanwhile `inflight::inspect::read_only` (on the command line `inflight replay DIR`) reports \
         what was in flight without writing anything"
    } else {
        "check the disk, its free space and the file's permissions, then reopen the log"
    }
}

/// The message of [`Error::Locked`]: a directory's, or a fleet instance's log in a database
/// (named `pg:INSTANCE`, see `inflight_postgres::instance_path`).
fn locked_message(dir: &std::path::Path, holder_pid: Option<u32>) -> String {
    let holder = match holder_pid {
        Some(pid) => format!("process {pid}"),
        None => "another process".to_string(),
    };
    match dir.to_str().and_then(|d| d.strip_prefix("pg:")) {
        Some(instance) => format!(
            "the log of instance {instance:?} in the database is open in another connection (held by {holder}); stop that instance, or read its log with `inflight replay --database URL --instance {instance}`, which needs no lock"
        ),
        None => format!(
            "log directory {} is locked by {holder}; stop that process, or read it with `inflight replay`, which needs no lock",
            dir.display()
        ),
    }
}

fn key_hint(key: &Option<String>) -> String {
    match key {
        Some(k) => format!(" (key {k:?})"),
        None => String::new(),
    }
}

impl Error {
    /// The kind of the underlying I/O error: the source's for [`Error::Io`], the recorded one
    /// for [`Error::Poisoned`], [`io::ErrorKind::Other`] for everything else.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::Io { source, .. } => source.kind(),
            Error::DatabaseCall { source, .. } => source.kind(),
            Error::Poisoned { kind, .. } => *kind,
            _ => io::ErrorKind::Other,
        }
    }

    /// Whether the failure was the database's: it could not be reached, it refused, or the
    /// connection was lost or stalled mid-run (for a fleet's log). The command line's exit
    /// code 11.
    pub fn is_database(&self) -> bool {
        match self {
            Error::Poisoned { database, .. } => *database,
            Error::DatabaseCall { .. }
            | Error::Database { .. }
            | Error::NoSchema { .. }
            | Error::NoInstance { .. }
            | Error::UnknownTaker { .. } => true,
            _ => false,
        }
    }

    /// The error of the storage call `op` on `path`: each kind of [`StoreError`] as its own
    /// variant. For a store's own implementation of the [`LogSource`](crate::store::LogSource)
    /// seam, so that its errors name the part and the step as the file store's do.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<StoreError>) -> Error {
        match source.into() {
            StoreError::Io(source) => Error::Io {
                op,
                path: path.into(),
                source,
                at_open: false,
            },
            StoreError::Fenced(fenced) => fenced.into(),
            StoreError::Database(source) => Error::DatabaseCall {
                op,
                path: path.into(),
                source,
            },
        }
    }

    /// This error, marked as one a read-write open returned (see [`Error::Io`]).
    pub(crate) fn at_open(self) -> Error {
        match self {
            Error::Io {
                op, path, source, ..
            } => Error::Io {
                op,
                path,
                source,
                at_open: true,
            },
            other => other,
        }
    }
}

/// A storage call refused because the log was taken over (fencing): a [`StoreError::Fenced`],
/// turned into [`Error::Fenced`] where the log names the failed call.
#[derive(Clone, Debug, thiserror::Error)]
#[error("instance {instance:?} was taken over by {by:?} (fencing epoch {epoch})")]
pub struct FencedError {
    /// The instance whose log was taken over.
    pub instance: String,
    /// The instance that took it over.
    pub by: String,
    /// The fencing epoch the takeover set.
    pub epoch: u64,
}

impl From<FencedError> for Error {
    fn from(f: FencedError) -> Error {
        Error::Fenced {
            instance: f.instance,
            by: f.by,
            epoch: f.epoch,
        }
    }
}

/// Why a storage call failed: the one error every [`Storage`](crate::Storage) and
/// [`StorageFile`](crate::StorageFile) call returns. A backend says which of three things went
/// wrong in the type, never inside an [`io::Error`]: the log turns each into its own
/// [`Error`] variant where it names the failed call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The operating system's error (a directory of files, or a simulated disk).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The log was taken over (a fleet's fencing): the call changed nothing. It becomes
    /// [`Error::Fenced`].
    #[error(transparent)]
    Fenced(#[from] FencedError),
    /// A database statement failed (a fleet's log). It becomes [`Error::DatabaseCall`].
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

impl StoreError {
    /// An [`io::Error`] of `kind` saying `message`: what a storage refuses with.
    pub fn new(kind: io::ErrorKind, message: impl Into<String>) -> StoreError {
        StoreError::Io(io::Error::new(kind, message.into()))
    }

    /// The operating system's error number, for an [`StoreError::Io`] that carries one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            StoreError::Io(e) => e.raw_os_error(),
            _ => None,
        }
    }

    /// The kind of failure, as an [`io::ErrorKind`]: the operating system's for
    /// [`StoreError::Io`]; for the others, the kind their failure is closest to
    /// ([`DatabaseError::kind`]; `PermissionDenied` for a fenced call).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            StoreError::Io(e) => e.kind(),
            StoreError::Fenced(_) => io::ErrorKind::PermissionDenied,
            StoreError::Database(e) => e.kind(),
        }
    }
}

/// Results of [`Storage`](crate::Storage) and [`StorageFile`](crate::StorageFile) calls.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// A database statement that failed inside a storage call (a fleet's log): what failed, and
/// in words, so that the message advises on the database rather than on a disk.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{detail}")]
pub struct DatabaseError {
    /// What kind of failure it was.
    pub failure: DatabaseFailure,
    /// What the client or the server said, and what it means for the log.
    pub detail: String,
}

impl DatabaseError {
    /// The [`io::ErrorKind`] closest to the failure: `TimedOut`, `ConnectionAborted`,
    /// `Unsupported` (a pooler), or `Other`.
    pub fn kind(&self) -> io::ErrorKind {
        match self.failure {
            DatabaseFailure::TimedOut => io::ErrorKind::TimedOut,
            DatabaseFailure::ConnectionLost => io::ErrorKind::ConnectionAborted,
            DatabaseFailure::Pooled => io::ErrorKind::Unsupported,
            DatabaseFailure::Refused | DatabaseFailure::Client | DatabaseFailure::Changed => {
                io::ErrorKind::Other
            }
        }
    }
}

/// The kinds of [`DatabaseError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatabaseFailure {
    /// The server did not answer in time: whether the last statement committed is the
    /// server's to tell.
    TimedOut,
    /// The connection failed: whether the last statement committed is the server's to tell.
    ConnectionLost,
    /// The server refused the statement.
    Refused,
    /// The client failed (encoding, a protocol error).
    Client,
    /// The statements ran in different server sessions (a pooler in transaction mode), where
    /// the instance's session lock cannot hold.
    Pooled,
    /// The fleet's tables were changed by hand (the instance's row is gone).
    Changed,
}

/// Names the operation and the file of a failed storage call: `storage.list(dir).at("list",
/// dir)?` is an [`Error::Io`] that says what failed where.
pub(crate) trait IoContext<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T, E: Into<StoreError>> IoContext<T> for std::result::Result<T, E> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
