//! The log-level store seam: what the writer, compaction and a read-write open ask of the place
//! a log lives in, in the log's own terms (segments by number or name, a snapshot by the last
//! sequence number it covers), with no path, rename or directory sync in sight. The order of
//! the steps that make each change durable and crash-safe is the store's to keep.
//!
//! The reader asks the place for its listing and the bytes of its parts through the
//! [`LogSource`] side of the seam, which is public: every offline reading
//! ([`inspect::Reader::new`](crate::inspect::Reader::new),
//! [`inspect::read_only_from`](crate::inspect::read_only_from),
//! [`inspect::state_at`](crate::inspect::state_at)) takes one, so a store kept elsewhere (a
//! database: `inflight_postgres::PgSource`) is read by the same reader and the same fold.
//! [`FileSource`] is the one for a directory.
//!
//! The file store (what [`Log::open`](crate::Log::open) uses) keeps a log in a directory, through the file seam
//! [`Storage`](crate::storage::Storage) (the real file system, or a simulated one that crashes):
//! a segment is created under a temporary name and renamed into place, its space reserved
//! ahead, the next one prepared in the background, a snapshot installed by rename, every change
//! followed by a directory sync.

pub(crate) mod file;

pub use file::FileSource;

use std::fmt::Debug;
use std::path::Path;

use crate::error::Result;
use crate::storage::{DirLock, EntryKind, FileBytes};

/// What a store holds a log in, as the writer, compaction and the open use it; a store is
/// read (by the open's replay and by compaction's) through its [`LogSource`] side.
/// [`Log::open_in`](crate::Log::open_in) opens the log a store holds; `Log::open` opens one
/// in a directory through the file store, and `inflight_postgres::PgStore` keeps one in a
/// database.
///
/// Each change is atomic and durable when it returns: a crash leaves the log as it was before
/// the call or as the call left it, never between (the file store writes under a temporary
/// name and renames; a database commits one transaction). The store also keeps the exclusive
/// lock: from [`LogStore::acquire`] until the lock is dropped, no other writer changes the log
/// (a database store refuses, from then on, every change of a writer it fenced).
pub trait LogStore: LogSource {
    /// Makes the log's place exist durably, takes its exclusive lock (held until the returned
    /// guard is dropped) and clears what a crash left half made; returns the lock and the
    /// names of the log's parts.
    fn acquire(&self) -> Result<(DirLock, Vec<String>)>;

    /// Makes segment `segment_no` hold `bytes` (its header, and any records carried over),
    /// atomically and durably, replacing a segment of that name; returns its appender, which
    /// goes on after `bytes`.
    fn create_segment(&self, segment_no: u64, bytes: &[u8]) -> Result<Box<dyn Appender>>;

    /// Makes the segment `name` hold exactly `bytes`, atomically and durably, and nothing is
    /// appended to it again: a segment kept as it is for inspection, or one of an older format
    /// that no record is added to.
    fn seal_segment(&self, name: &str, bytes: &[u8]) -> Result<()>;

    /// Removes the segment `name`, durably, before anything else is created.
    fn remove_segment(&self, name: &str) -> Result<()>;

    /// Starts making segment `segment_no` ahead of need, so that creating it later costs
    /// little; the default does nothing. Whatever the preparation does is finished (or
    /// abandoned) before [`LogStore::create_segment`] of that number returns.
    fn prepare_segment(&self, segment_no: u64) {
        let _ = segment_no;
    }

    /// Waits for a preparation under way: called when the writer closes, so that no work of a
    /// closed log touches its place.
    fn finish_preparing(&self) {}

    /// Installs `bytes` as the snapshot covering every record up to `last_seq`, atomically
    /// and durably; `names` is the listing the compaction read. Returns the snapshot's path
    /// as reports name it.
    fn install_snapshot(
        &self,
        names: &[String],
        last_seq: u64,
        bytes: &[u8],
    ) -> Result<std::path::PathBuf>;

    /// Removes, durably, every segment in `names` numbered below `segment_below` and every
    /// snapshot but those named in `keep`. Returns how many segments and snapshots went.
    fn remove_covered(
        &self,
        names: &[String],
        segment_below: u64,
        keep: &[&str],
    ) -> Result<(usize, usize)>;
}

/// The open end of one segment.
pub trait Appender: Send + Debug {
    /// Writes `bytes` at `offset` and makes them durable before returning: one append, one
    /// commit.
    fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<()>;
}

/// What the one reader asks of the place a log lives in: its listing, what each entry is, and
/// the bytes of a part, whole or from an offset. Every error names the part and the step.
///
/// The entries are named as in a directory (`docs/FORMAT.md`): segments
/// `NNNNNNNNNNNNNNNNNNNN.log` and snapshots `snapshot-NNNNNNNNNNNNNNNNNNNN.json`; other names
/// are left alone. A part may grow while it is read (a writer appends to the last segment),
/// and may be removed (a compaction): an open part stays readable, as an open file does.
///
/// ```
/// use inflight::inspect::read_only_from;
/// use inflight::store::FileSource;
/// use inflight::{FsStorage, Log, Options, Policy, Run, Generation, UnixMs};
///
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), Options::default())?.log;
/// log.mark_running(Run::new("k", "s", Generation(1), UnixMs(1)))?;
/// let storage = FsStorage::default();
/// let read = read_only_from(&FileSource::new(&storage, dir.path()), Policy::Strict)?;
/// assert_eq!(read.set.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait LogSource: Send + Sync + Debug {
    /// Where the log is, as errors and messages name it.
    fn place(&self) -> &Path;

    /// Whether the place exists (a directory, for a file store).
    fn exists(&self) -> Result<bool>;

    /// The names of the entries in the place.
    fn list(&self) -> Result<Vec<String>>;

    /// What the entry `name` is, without opening it: only regular files are read, so that a
    /// FIFO or a device named like a log file can never block a reader.
    fn kind(&self, name: &str) -> Result<EntryKind>;

    /// Opens the part `name` for reading; `None` if it is gone (removed since the listing).
    /// An open part stays readable after a removal.
    fn open_part(&self, name: &str) -> Result<Option<Box<dyn Part>>>;
}

/// One part of a log, open for reading.
#[allow(clippy::len_without_is_empty)] // a part's length is a store call, not a collection's size
pub trait Part: Send + Sync + Debug {
    /// Its length in bytes now.
    fn len(&self) -> Result<u64>;

    /// All of it: mapped where the store can, unless `copy` (bytes a writer may still change
    /// must not be mapped).
    fn read_whole(&self, copy: bool) -> Result<FileBytes>;

    /// Fills `buf` from `offset`; an early end is an error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;
}

/// A borrowed source reads as the source itself.
impl<T: LogSource + ?Sized> LogSource for &T {
    fn place(&self) -> &Path {
        (**self).place()
    }

    fn exists(&self) -> Result<bool> {
        (**self).exists()
    }

    fn list(&self) -> Result<Vec<String>> {
        (**self).list()
    }

    fn kind(&self, name: &str) -> Result<EntryKind> {
        (**self).kind(name)
    }

    fn open_part(&self, name: &str) -> Result<Option<Box<dyn Part>>> {
        (**self).open_part(name)
    }
}
