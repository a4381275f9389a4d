//! [`PgSource`]: the reading side of one instance's log in the database, natively: the
//! library's [`LogSource`] seam answered with rows (a listing is a query of `inflight_files`, a
//! part's bytes are its chunks), so the one reader and the one fold read it as they read a
//! directory, and no offline tool goes through the file seam.
//!
//! A part is read whole when it is opened, in one statement (so one snapshot of the database:
//! a part a compaction removes meanwhile is not found, never read half), and the handle keeps
//! its bytes, as a file system's open handle keeps an inode: it reads the same bytes after a
//! compaction removed the part. A source opening again one of the last segments it read
//! fetches only the chunks committed since ([`Downloads`]), so following a growing segment
//! costs what was appended, not the segment ([`PgSource::bytes_fetched`] counts it).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::client::{Db, DbError};
use inflight::error::{DatabaseError, DatabaseFailure, Error, Result, StoreError};
use inflight::storage::{EntryKind, FileBytes};
use inflight::store::{LogSource, Part};

/// How many segments' downloads a source keeps (see [`Downloads`]): the one a follower reads
/// and the one it checks, with room to spare.
const DOWNLOADS_KEPT: usize = 4;

/// An open's one statement: the part's id, and its chunks, all of them or (when the reader
/// holds a download of this same part, `$3`) only those committed since (`seq` above `$4`).
/// One statement, so one snapshot: a part removed meanwhile is not found, never read half.
const OPEN_READ_SQL: &str = "
SELECT f.id, c.seq, c.off, c.data FROM inflight_files f
LEFT JOIN inflight_chunks c ON c.file_id = f.id AND (f.id <> $3 OR c.seq > $4)
WHERE f.instance = $1 AND f.name = $2
ORDER BY c.seq";

/// What one open of a part fetched: its id, the highest chunk sequence number it holds, its
/// bytes, and how many bytes of chunk data came from the server.
pub(super) struct Fetched {
    pub(super) id: i64,
    pub(super) last_seq: i64,
    pub(super) bytes: Vec<u8>,
    pub(super) fetched: u64,
}

/// The names of the parts of `instance`'s log.
pub(super) fn list(client: &mut Db, instance: &str) -> std::result::Result<Vec<String>, DbError> {
    let rows = client.query(
        "SELECT name FROM inflight_files WHERE instance = $1",
        &[&instance],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Fetches the part `name` of `instance`'s log in one statement: every chunk, or with `since`
/// (an id and a sequence number) only the chunks above that number if the part still has that
/// id. `None` if there is no such part.
pub(super) fn fetch(
    client: &mut Db,
    instance: &str,
    name: &str,
    since: Option<(i64, i64)>,
    base: impl FnOnce(i64) -> Vec<u8>,
) -> std::result::Result<Option<Fetched>, DbError> {
    let (held_id, held_seq) = since.unwrap_or((-1, 0));
    let rows = client.query(OPEN_READ_SQL, &[&instance, &name, &held_id, &held_seq])?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let id = first.get(0);
    // Each chunk is laid from the row that holds it, and the row freed: the part's bytes are
    // copied once, with no copy of each chunk in between.
    let end = rows
        .iter()
        .filter_map(chunk_of)
        .map(|(_, off, data)| off as usize + data.len())
        .max()
        .unwrap_or(0);
    let mut bytes = base(id);
    bytes.reserve(end.saturating_sub(bytes.len()));
    let (mut last_seq, mut fetched) = (0, 0);
    for row in rows {
        let Some((seq, off, data)) = chunk_of(&row) else {
            continue;
        };
        last_seq = last_seq.max(seq);
        fetched += data.len() as u64;
        lay(&mut bytes, off, data);
    }
    Ok(Some(Fetched {
        id,
        last_seq,
        bytes,
        fetched,
    }))
}

/// One instance's log in the database, for reading (made by
/// [`Fleet::source`](crate::Fleet::source)): what the offline tools read, as
/// [`FileSource`](inflight::store::FileSource) is for a directory. It takes no lock and
/// changes no row, so it reads a live instance's log.
///
/// ```no_run
/// use inflight::Policy;
/// use inflight::inspect::read_only_from;
/// use inflight_postgres::Fleet;
///
/// let source = Fleet::new("postgres://gateway@127.0.0.1/gateway").source("gw-1")?;
/// let read = read_only_from(&source, Policy::Strict)?;
/// println!("{} run(s) in flight", read.set.len());
/// # Ok::<(), inflight::Error>(())
/// ```
#[derive(Debug)]
pub struct PgSource {
    client: Mutex<Db>,
    instance: String,
    place: PathBuf,
    downloads: Mutex<Downloads>,
    /// The bytes of chunk data fetched from the server, in all.
    fetched: AtomicU64,
}

/// The last segments a source downloaded, by name, newest last (snapshots are written once
/// and never grow, so they are not kept): each with its id and the highest chunk sequence
/// number it holds. A part's chunks are only ever added, by one writer at a time (the
/// instance's lock), each sync's in one transaction, so committed sequence numbers of one part
/// only grow, and the chunks above the highest one held are exactly what was committed since.
/// A part replaced under its name (a reopen's copy) has a new id and is downloaded whole.
#[derive(Default)]
struct Downloads(Vec<Download>);

struct Download {
    name: String,
    id: i64,
    last_seq: i64,
    bytes: Arc<Vec<u8>>,
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|d| (&d.name, d.bytes.len())))
            .finish()
    }
}

impl Downloads {
    /// The download of `name`, taken out (it is put back, grown, by [`Downloads::keep`]).
    fn take(&mut self, name: &str) -> Option<Download> {
        let i = self.0.iter().position(|d| d.name == name)?;
        Some(self.0.remove(i))
    }

    /// Keeps `download` as the newest, forgetting the oldest beyond [`DOWNLOADS_KEPT`].
    fn keep(&mut self, download: Download) {
        if self.0.len() >= DOWNLOADS_KEPT {
            self.0.remove(0);
        }
        self.0.push(download);
    }
}

impl PgSource {
    /// Wraps a connected client (the schema checked, the instance known) as the reading side
    /// of `instance`'s log, named [`super::instance_path`] in reports and errors.
    pub(super) fn new(client: Db, instance: &str) -> PgSource {
        PgSource {
            client: Mutex::new(client),
            instance: instance.to_string(),
            place: super::instance_path(instance),
            downloads: Mutex::new(Downloads::default()),
            fetched: AtomicU64::new(0),
        }
    }

    /// The bytes of chunk data this source fetched from the server so far: a whole part at its
    /// first open, then only what was committed to it since. What `dump --follow --database`
    /// costs the server per poll is the growth of this figure.
    pub fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// The instance whose log this is.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn client(&self) -> MutexGuard<'_, Db> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn downloads(&self) -> MutexGuard<'_, Downloads> {
        self.downloads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The error of the call `op` on the part `name` (or the log, for `None`).
    fn failed(&self, op: &'static str, name: Option<&str>) -> impl FnOnce(DbError) -> Error {
        let path = match name {
            Some(name) => self.place.join(name),
            None => self.place.clone(),
        };
        move |e| Error::io(op, path, db_error(e))
    }
}

impl LogSource for PgSource {
    fn place(&self) -> &Path {
        &self.place
    }

    /// The instance is known (checked when the source was made): its log exists, if empty.
    fn exists(&self) -> Result<bool> {
        Ok(true)
    }

    fn list(&self) -> Result<Vec<String>> {
        list(&mut self.client(), &self.instance).map_err(self.failed("list", None))
    }

    /// Every part is a row of bytes: what a directory calls a regular file.
    fn kind(&self, _name: &str) -> Result<EntryKind> {
        Ok(EntryKind::File)
    }

    fn open_part(&self, name: &str) -> Result<Option<Box<dyn Part>>> {
        let kept_here = inflight::layout::parse_segment_name(name).is_some();
        let mut downloads = self.downloads();
        let held = downloads.take(name);
        let since = held.as_ref().map(|d| (d.id, d.last_seq));
        // The download held, if it is of this same part, is what the new chunks go over.
        let base = |id| match held {
            Some(held) if held.id == id => Arc::unwrap_or_clone(held.bytes),
            _ => Vec::new(),
        };
        let fetched = fetch(&mut self.client(), &self.instance, name, since, base)
            .map_err(self.failed("read", Some(name)))?;
        let Some(Fetched {
            id,
            last_seq,
            bytes,
            fetched,
        }) = fetched
        else {
            return Ok(None);
        };
        self.fetched.fetch_add(fetched, Ordering::Relaxed);
        let last_seq = match since {
            Some((held_id, held_seq)) if held_id == id => held_seq.max(last_seq),
            _ => last_seq,
        };
        let bytes = Arc::new(bytes);
        if kept_here {
            downloads.keep(Download {
                name: name.to_string(),
                id,
                last_seq,
                bytes: bytes.clone(),
            });
        }
        Ok(Some(Box::new(PgPart::new(self.place.join(name), bytes))))
    }
}

/// One part of the log as it was when it was opened.
#[derive(Debug)]
pub(super) struct PgPart {
    path: PathBuf,
    bytes: Arc<Vec<u8>>,
}

impl PgPart {
    /// The part at `path` (as errors name it) holding `bytes`.
    pub(super) fn new(path: PathBuf, bytes: Arc<Vec<u8>>) -> PgPart {
        PgPart { path, bytes }
    }
}

impl Part for PgPart {
    fn len(&self) -> Result<u64> {
        Ok(self.bytes.len() as u64)
    }

    fn read_whole(&self, _copy: bool) -> Result<FileBytes> {
        // Nothing changes the bytes a part holds: they are shared, not copied.
        Ok(FileBytes::Shared(self.bytes.clone()))
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(start..end))
        {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(Error::io(
                "read",
                &self.path,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} bytes at offset {offset} reach past the end ({} bytes)",
                        buf.len(),
                        self.bytes.len()
                    ),
                ),
            )),
        }
    }
}

/// A database error inside a store's call, as [`StoreError::Database`]. A lost
/// connection says that the last statement's outcome is the server's to tell.
pub(super) fn db_error(e: DbError) -> StoreError {
    let (failure, detail) = if e.is_timeout() {
        (
            DatabaseFailure::TimedOut,
            format!(
                "the database did not answer in time ({e}): whether the last statement \
                 committed is decided by the server, and a reopen or a takeover reads what did"
            ),
        )
    } else if e.is_lost() {
        (
            DatabaseFailure::ConnectionLost,
            format!(
                "the connection to the database failed ({e}): whether the last statement \
                 committed is decided by the server, and a reopen or a takeover reads what did"
            ),
        )
    } else if e.as_db_error().is_some() {
        (
            DatabaseFailure::Refused,
            format!("the database refused the statement: {e}"),
        )
    } else {
        (
            DatabaseFailure::Client,
            format!("the database client failed: {e}"),
        )
    };
    StoreError::Database(DatabaseError { failure, detail })
}

/// A row's chunk: its sequence number, its offset and its data (`None` for the row of a part
/// with no chunk to send).
fn chunk_of(row: &tokio_postgres::Row) -> Option<(i64, u64, &[u8])> {
    Some((
        row.get::<_, Option<i64>>(1)?,
        row.get::<_, Option<i64>>(2)? as u64,
        row.get::<_, Option<&[u8]>>(3)?,
    ))
}

/// Writes `data` at `off` in `bytes`, as a write to a file does: over what is there, growing it
/// (zero-filled up to `off`) where it reaches past the end.
fn lay(bytes: &mut Vec<u8>, off: u64, data: &[u8]) {
    let off = usize::try_from(off).expect("a chunk's offset fits in memory");
    if off == bytes.len() {
        // A part written from its start to its end: appended, with nothing to zero.
        bytes.extend_from_slice(data);
        return;
    }
    let end = off + data.len();
    if end > bytes.len() {
        bytes.resize(end, 0);
    }
    bytes[off..end].copy_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::lay;

    #[test]
    fn chunks_lay_as_writes_to_a_file_do() {
        let mut bytes = Vec::new();
        lay(&mut bytes, 0, b"abcd");
        lay(&mut bytes, 4, b"ef");
        assert_eq!(bytes, b"abcdef");
        // Over what is there, and past its end.
        lay(&mut bytes, 2, b"XY");
        lay(&mut bytes, 5, b"123");
        assert_eq!(bytes, b"abXYe123");
        // Beyond the end: zeros up to it.
        lay(&mut bytes, 10, b"z");
        assert_eq!(bytes, b"abXYe123\0\0z");
    }
}
