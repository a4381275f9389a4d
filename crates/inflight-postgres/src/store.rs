//! [`PgStore`]: one instance's log in PostgreSQL, for its writer: the library's log-level
//! store seam ([`LogStore`]) answered with rows, so the same writer, reader, fold and
//! compaction serve a directory and a database, with no file, path or rename in between.
//!
//! A part of the log (a segment, a snapshot) is a row of `inflight_files`, and its bytes are
//! rows of `inflight_chunks` (offset, data). An append is **one statement, so one
//! transaction**: it inserts the batch (a group commit: one CRC-framed record) as one chunk only
//! if the instance's fencing epoch is still the one this store opened with, under a share lock
//! on the instance's row. A takeover raises the epoch under that row's exclusive lock, so an
//! append either commits before the takeover (and the takeover reads it) or inserts nothing and
//! fails with [`Error::Fenced`](inflight::Error::Fenced). Every other change (a segment made or
//! replaced, sealed or removed, a snapshot installed, what it covers removed) is one
//! transaction that checks the epoch first: atomic, so a crash never leaves a part half made,
//! and no temporary names are needed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use super::client::{Db, DbError, Tx};
use super::source::{PgPart, db_error, fetch};

use inflight::error::{
    DatabaseError, DatabaseFailure, Error, FencedError, Result, StoreError, StoreResult,
};
use inflight::layout::{
    TEMP_SUFFIX, parse_segment_name, parse_snapshot_name, segment_name, snapshot_name,
};
use inflight::storage::{DirLock, EntryKind};
use inflight::store::{Appender, LogSource, LogStore, Part};

/// An append's one statement: the fence and the insert together.
const APPEND_SQL: &str = "
WITH fence AS (
    SELECT 1 FROM inflight_instances
    WHERE instance = $1 AND epoch = $2 AND pg_backend_pid() = $6 FOR SHARE
)
INSERT INTO inflight_chunks (file_id, off, data)
SELECT $3, u.off, u.data
FROM fence, unnest($4::bigint[], $5::bytea[]) WITH ORDINALITY AS u(off, data, n)
ORDER BY u.n";

/// The largest chunk one statement carries: a bytea value holds at most 1 GB, and a big part
/// (a snapshot, an open's copy of a large segment) goes in pieces of this size, in one
/// transaction.
const CHUNK_BYTES_MAX: usize = 64 << 20;

/// The key of an instance's session-level advisory lock: held by its read-write owner for the
/// life of its connection (the kernel's `flock` of a directory, in database terms).
pub(super) const LOCK_SQL: &str =
    "SELECT pg_try_advisory_lock(hashtextextended($1, 7236634526)), pg_backend_pid()";
pub(super) const UNLOCK_SQL: &str = "SELECT pg_advisory_unlock(hashtextextended($1, 7236634526))";

/// One instance's log in a PostgreSQL database, for its writer: what [`Fleet::open`] opens
/// the log in ([`Fleet::open_store`] gives it, for
/// [`Log::open_in`](inflight::Log::open_in)). The offline tools read through
/// [`PgSource`](crate::PgSource) instead. See the module's documentation for how it writes.
///
/// [`Fleet::open`]: crate::Fleet::open
/// [`Fleet::open_store`]: crate::Fleet::open_store
#[derive(Clone, Debug)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Mutex<Db>,
    instance: String,
    place: PathBuf,
    /// The fencing epoch while the log holds the instance's lock; `None` before and after,
    /// when every change is refused. A second acquire while it is set is refused, as a second
    /// `flock` of a directory is (PostgreSQL's advisory locks are re-entrant within a session).
    epoch: Mutex<Option<Held>>,
    /// The append's statement, prepared once.
    append: Statement,
    /// The vacuums the writer asks for after a compaction removed segments.
    vacuums: super::vacuum::Vacuums,
}

/// What a store holding the instance's lock writes under: the fencing epoch it raised, and the
/// server session (its backend's pid) that holds the session lock. Every change checks both,
/// in its own statement: a change from another session (a pooler in transaction mode handing
/// our statements to another server connection) is refused, as a fenced one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    epoch: i64,
    pid: i32,
}

/// What a pooler in transaction mode does to a log, as the error says it.
fn pooled_error(instance: &str) -> StoreError {
    StoreError::Database(DatabaseError {
        failure: DatabaseFailure::Pooled,
        detail: format!(
            "the statements of instance {instance:?} ran in different server sessions: the connection goes through a pooler in transaction mode (PgBouncer's pool_mode = transaction, or a proxy that pools per transaction), where the instance's session lock cannot hold; nothing was written from the other session. Connect straight to the server, or through a pool in session mode"
        ),
    })
}

impl PgStore {
    /// Wraps a connected client (the schema already checked) to `database` as the store of
    /// `instance`'s log, named [`super::instance_path`] in reports and errors. It changes
    /// nothing until [`LogStore::acquire`] raises the epoch.
    pub(super) fn new(
        mut client: Db,
        instance: &str,
        database: &str,
    ) -> std::result::Result<PgStore, DbError> {
        let append = client.prepare(APPEND_SQL)?;
        Ok(PgStore {
            inner: Arc::new(Inner {
                client: Mutex::new(client),
                instance: instance.to_string(),
                place: super::instance_path(instance),
                epoch: Mutex::new(None),
                append,
                vacuums: super::vacuum::Vacuums::new(database),
            }),
        })
    }

    /// The instance whose log this is.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// The error of the change `op` on the part `name`.
    fn failed(&self, op: &'static str, name: &str) -> impl FnOnce(StoreError) -> Error {
        let path = self.inner.place.join(name);
        move |e| Error::io(op, path, e)
    }

    /// Replaces the part `name` (if any) with one holding `bytes`, in one fenced transaction;
    /// returns the new part's id.
    fn replace(&self, op: &'static str, name: &str, bytes: &[u8]) -> Result<i64> {
        self.inner
            .fenced_change(|tx| {
                tx.execute(
                    "DELETE FROM inflight_files WHERE instance = $1 AND name = $2",
                    &[&self.inner.instance, &name],
                )
                .map_err(db_error)?;
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO inflight_files (instance, name) VALUES ($1, $2) RETURNING id",
                        &[&self.inner.instance, &name],
                    )
                    .map_err(db_error)?
                    .get(0);
                insert_pieces(tx, id, 0, bytes)?;
                Ok(id)
            })
            .map_err(self.failed(op, name))
    }

    /// Takes the instance's advisory lock, then raises its epoch; returns them with the
    /// session that holds the lock.
    fn take_lock(&self) -> std::result::Result<Held, Error> {
        let inner = &self.inner;
        let locked = |e: StoreError| Error::io("lock", &inner.place, e);
        let mut client = inner.client();
        let row = client
            .query_one(LOCK_SQL, &[&inner.instance])
            .map_err(|e| locked(db_error(e)))?;
        let (got, pid): (bool, i32) = (row.get(0), row.get(1));
        if !got {
            return Err(Error::Locked {
                dir: inner.place.clone(),
                holder_pid: None,
            });
        }
        let raised = client
            .query_opt(
                "UPDATE inflight_instances SET epoch = epoch + 1, opened_at = now()
                 WHERE instance = $1 AND taken_by IS NULL RETURNING epoch, pg_backend_pid()",
                &[&inner.instance],
            )
            .map_err(|e| locked(db_error(e)))?;
        let Some(row) = raised else {
            let fenced = inner.fenced(&mut client, Held { epoch: -1, pid });
            let _ = client.query_one(UNLOCK_SQL, &[&inner.instance]);
            return Err(locked(fenced));
        };
        if row.get::<_, i32>(1) != pid {
            // Two statements, two server sessions: the lock is held by a session we may never
            // see again. The raised epoch fences nothing live (no log was open under it).
            return Err(locked(pooled_error(&inner.instance)));
        }
        Ok(Held {
            epoch: row.get(0),
            pid,
        })
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("place", &self.place)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn client(&self) -> MutexGuard<'_, Db> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn epoch_slot(&self) -> MutexGuard<'_, Option<Held>> {
        self.epoch.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn epoch(&self) -> StoreResult<Held> {
        self.epoch_slot().ok_or_else(|| {
            StoreError::new(
                io::ErrorKind::PermissionDenied,
                "the database log is not locked (the log is closed, or not open yet): it refuses every change",
            )
        })
    }

    /// Why a change found the epoch moved (the instance's row says who took it over), or ran
    /// in a session other than the lock's (a pooler).
    fn fenced(&self, client: &mut Db, held: Held) -> StoreError {
        let row = client.query_opt(
            "SELECT epoch, coalesce(taken_by, ''), pg_backend_pid() FROM inflight_instances
             WHERE instance = $1",
            &[&self.instance],
        );
        match row {
            Ok(Some(row))
                if row.get::<_, i64>(0) == held.epoch && row.get::<_, i32>(2) != held.pid =>
            {
                pooled_error(&self.instance)
            }
            Ok(Some(row)) => {
                let epoch: i64 = row.get(0);
                let by: String = row.get(1);
                StoreError::Fenced(FencedError {
                    instance: self.instance.clone(),
                    by: if by.is_empty() {
                        "a newer open of the same instance".to_string()
                    } else {
                        by
                    },
                    epoch: epoch as u64,
                })
            }
            Ok(None) => StoreError::Database(DatabaseError {
                failure: DatabaseFailure::Changed,
                detail: format!(
                    "the row of instance {:?} is gone from inflight_instances (the fleet's \
                     tables were changed by hand): nothing more is written",
                    self.instance
                ),
            }),
            Err(e) => db_error(e),
        }
    }

    /// Runs `change` in a transaction that first checks, under a share lock on the instance's
    /// row, that the epoch is still this store's.
    fn fenced_change<T>(
        &self,
        change: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let held = self.epoch()?;
        let mut client = self.client();
        let mut tx = client.transaction().map_err(db_error)?;
        let current = tx
            .query_opt(
                "SELECT 1 FROM inflight_instances
                 WHERE instance = $1 AND epoch = $2 AND pg_backend_pid() = $3 FOR SHARE",
                &[&self.instance, &held.epoch, &held.pid],
            )
            .map_err(db_error)?;
        if current.is_none() {
            let fenced = self.fenced(&mut tx, held);
            return Err(fenced);
        }
        let done = change(&mut tx)?;
        tx.commit().map_err(db_error)?;
        Ok(done)
    }

    /// Removes the parts named `names` in `tx`; returns how many there were.
    fn remove(&self, tx: &mut Tx<'_>, names: &[&str]) -> StoreResult<u64> {
        tx.execute(
            "DELETE FROM inflight_files WHERE instance = $1 AND name = ANY($2)",
            &[&self.instance, &names],
        )
        .map_err(db_error)
    }
}

/// Inserts `bytes` as the chunks of part `id` from offset `off`, in pieces of at most
/// [`CHUNK_BYTES_MAX`].
fn insert_pieces(tx: &mut Tx<'_>, id: i64, off: u64, bytes: &[u8]) -> StoreResult<()> {
    for (i, piece) in bytes.chunks(CHUNK_BYTES_MAX).enumerate() {
        let at = (off as usize + i * CHUNK_BYTES_MAX) as i64;
        tx.execute(
            "INSERT INTO inflight_chunks (file_id, off, data) VALUES ($1, $2, $3)",
            &[&id, &at, &piece],
        )
        .map_err(db_error)?;
    }
    Ok(())
}

/// Releases the advisory lock when the log lets go of it.
struct Unlock(Arc<Inner>);

impl Drop for Unlock {
    fn drop(&mut self) {
        // Best effort: if the connection is gone, so is the lock.
        let _ = self.0.client().query_one(UNLOCK_SQL, &[&self.0.instance]);
        *self.0.epoch_slot() = None;
    }
}

/// The writer's own reads (the open's replay, compaction's): each part read whole when it
/// is opened, in one statement, kept by the open part.
impl LogSource for PgStore {
    fn place(&self) -> &Path {
        &self.inner.place
    }

    fn exists(&self) -> Result<bool> {
        Ok(true)
    }

    fn list(&self) -> Result<Vec<String>> {
        super::source::list(&mut self.inner.client(), &self.inner.instance)
            .map_err(|e| Error::io("list", &self.inner.place, db_error(e)))
    }

    fn kind(&self, _name: &str) -> Result<EntryKind> {
        Ok(EntryKind::File)
    }

    fn open_part(&self, name: &str) -> Result<Option<Box<dyn Part>>> {
        let fetched = fetch(
            &mut self.inner.client(),
            &self.inner.instance,
            name,
            None,
            |_| Vec::new(),
        )
        .map_err(|e| Error::io("read", self.inner.place.join(name), db_error(e)))?;
        Ok(fetched.map(|f| {
            Box::new(PgPart::new(self.inner.place.join(name), Arc::new(f.bytes))) as Box<dyn Part>
        }))
    }
}

impl LogStore for PgStore {
    /// Takes the instance's advisory lock (held for the connection's life: a crashed owner's
    /// lock goes with its connection) and raises its fencing epoch, so that an older handle of
    /// the same instance can no longer write; a taken-over instance is refused with
    /// [`Error::Fenced`](inflight::Error::Fenced). Then removes the parts named `NAME.tmp`
    /// (what the earlier version of this store, which wrote through the file seam, left when
    /// it stopped between writing a part under that name and renaming it; the part it stood
    /// for is intact).
    fn acquire(&self) -> Result<(DirLock, Vec<String>)> {
        {
            // Held across the lock's statements, so that two takers of one store are ordered.
            let mut epoch = self.inner.epoch_slot();
            if epoch.is_some() {
                return Err(Error::Locked {
                    dir: self.inner.place.clone(),
                    holder_pid: Some(std::process::id()),
                });
            }
            *epoch = Some(self.take_lock()?);
        }
        let lock = DirLock::new(Unlock(self.inner.clone()));
        let (temps, names): (Vec<String>, Vec<String>) = self
            .list()?
            .into_iter()
            .partition(|n| n.ends_with(TEMP_SUFFIX));
        if !temps.is_empty() {
            let temps: Vec<&str> = temps.iter().map(String::as_str).collect();
            self.inner
                .fenced_change(|tx| self.inner.remove(tx, &temps))
                .map_err(self.failed("remove", temps[0]))?;
        }
        Ok((lock, names))
    }

    fn create_segment(&self, segment_no: u64, bytes: &[u8]) -> Result<Box<dyn Appender>> {
        let name = segment_name(segment_no);
        let id = self.replace("create", &name, bytes)?;
        Ok(Box::new(PgAppender {
            inner: self.inner.clone(),
            id,
            path: self.inner.place.join(name),
        }))
    }

    fn seal_segment(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.replace("write", name, bytes).map(drop)
    }

    fn remove_segment(&self, name: &str) -> Result<()> {
        self.inner
            .fenced_change(|tx| self.inner.remove(tx, &[name]))
            .map_err(self.failed("remove", name))?;
        self.inner.vacuums.request();
        Ok(())
    }

    fn install_snapshot(&self, _names: &[String], last_seq: u64, bytes: &[u8]) -> Result<PathBuf> {
        let name = snapshot_name(last_seq);
        self.replace("create", &name, bytes)?;
        Ok(self.inner.place.join(name))
    }

    /// Removes every covered part in one fenced transaction, then asks for a vacuum.
    fn remove_covered(
        &self,
        names: &[String],
        segment_below: u64,
        keep: &[&str],
    ) -> Result<(usize, usize)> {
        let segments: Vec<&str> = names
            .iter()
            .filter(|n| parse_segment_name(n).is_some_and(|no| no < segment_below))
            .map(String::as_str)
            .collect();
        let snapshots: Vec<&str> = names
            .iter()
            .filter(|n| parse_snapshot_name(n).is_some() && !keep.contains(&n.as_str()))
            .map(String::as_str)
            .collect();
        if segments.is_empty() && snapshots.is_empty() {
            return Ok((0, 0));
        }
        let all: Vec<&str> = segments.iter().chain(&snapshots).copied().collect();
        self.inner
            .fenced_change(|tx| self.inner.remove(tx, &all))
            .map_err(|e| Error::io("remove", &self.inner.place, e))?;
        if !segments.is_empty() {
            // A compaction's clean-up: the segments' rows are dead until a vacuum.
            self.inner.vacuums.request();
        }
        Ok((segments.len(), snapshots.len()))
    }
}

/// The open end of one segment: each append one fenced statement.
#[derive(Debug)]
struct PgAppender {
    inner: Arc<Inner>,
    id: i64,
    path: PathBuf,
}

impl PgAppender {
    fn append_rows(&self, offset: u64, bytes: &[u8]) -> StoreResult<()> {
        let held = self.inner.epoch()?;
        if bytes.len() > CHUNK_BYTES_MAX {
            // Too big for one value: in pieces, in one fenced transaction.
            return self
                .inner
                .fenced_change(|tx| insert_pieces(tx, self.id, offset, bytes));
        }
        let offsets = [offset as i64];
        let data = [bytes];
        let mut client = self.inner.client();
        let params: [&(dyn ToSql + Sync); 6] = [
            &self.inner.instance,
            &held.epoch,
            &self.id,
            &offsets.as_slice(),
            &data.as_slice(),
            &held.pid,
        ];
        let inserted = client
            .execute(&self.inner.append, &params)
            .map_err(db_error)?;
        if inserted == 0 {
            // The fence held nothing back: the epoch moved. Nothing was written.
            return Err(self.inner.fenced(&mut client, held));
        }
        debug_assert_eq!(inserted, 1);
        Ok(())
    }
}

impl Appender for PgAppender {
    fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        self.append_rows(offset, bytes)
            .map_err(|e| Error::io("append", &self.path, e))
    }
}
