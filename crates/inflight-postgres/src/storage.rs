//! [`PgStorage`]: one instance's log in PostgreSQL, behind the same [`Storage`] seam as a
//! directory, so the same writer, reader, fold and compaction serve both.
//!
//! A file is a row of `inflight_files`; what is written to it is kept in memory until the
//! file is synced, and the sync is **one statement, so one transaction**: it inserts the
//! pending bytes (a group-commit batch: one CRC-framed record) into `inflight_chunks` only if
//! the instance's fencing epoch is still the one this storage opened with, under a share lock
//! on the instance's row. A takeover raises the epoch under that row's exclusive lock, so a
//! sync either commits before the takeover (and the takeover reads it) or inserts nothing and
//! fails with [`StoreError::Fenced`]. Every other change (create, rename, remove, truncate) runs in a
//! transaction that checks the epoch first. Read-only storage changes nothing.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use super::client::{Db, DbError, Tx};

use inflight::error::{DatabaseError, DatabaseFailure, FencedError, StoreError, StoreResult};
use inflight::storage::{DirLock, EntryKind, FileBytes, LockError, Storage, StorageFile};

/// The sync's one statement: the fence and the insert together.
const APPEND_SQL: &str = "
WITH fence AS (
    SELECT 1 FROM inflight_instances
    WHERE instance = $1 AND epoch = $2 AND pg_backend_pid() = $6 FOR SHARE
)
INSERT INTO inflight_chunks (file_id, off, data)
SELECT $3, u.off, u.data
FROM fence, unnest($4::bigint[], $5::bytea[]) WITH ORDINALITY AS u(off, data, n)
ORDER BY u.n";

/// The largest chunk one statement carries: a bytea value holds at most 1 GB, and a big
/// write (a snapshot, an open's copy of a large segment) goes in pieces of this size, in one
/// transaction.
const CHUNK_BYTES_MAX: usize = 64 << 20;

/// The key of an instance's session-level advisory lock: held by its read-write owner for the
/// life of its connection (the kernel's `flock` of a directory, in database terms).
pub(super) const LOCK_SQL: &str =
    "SELECT pg_try_advisory_lock(hashtextextended($1, 7236634526)), pg_backend_pid()";
pub(super) const UNLOCK_SQL: &str = "SELECT pg_advisory_unlock(hashtextextended($1, 7236634526))";

/// One instance's log in a PostgreSQL database, for its writer: made by [`Fleet::open`]
/// ([`Fleet::open_storage`](crate::Fleet::open_storage)); see the module's documentation for
/// how it writes. The offline tools read through [`PgSource`](crate::PgSource) instead.
///
/// [`Fleet::open`]: crate::Fleet::open
#[derive(Clone, Debug)]
pub struct PgStorage {
    inner: Arc<Inner>,
}

struct Inner {
    client: Mutex<Db>,
    instance: String,
    root: PathBuf,
    /// The fencing epoch while the log holds the instance's lock; `None` before and after,
    /// when every change is refused. A second lock while
    /// it is set is refused, as a second `flock` of a directory is (PostgreSQL's advisory
    /// locks are re-entrant within a session).
    epoch: Mutex<Option<Held>>,
    /// The sync's statement, prepared once.
    append: Statement,
    /// The vacuums the writer asks for after a compaction removed segments.
    vacuums: super::vacuum::Vacuums,
}

/// What a storage holding the instance's lock wrote under: the fencing epoch it raised, and
/// the server session (its backend's pid) that holds the session lock. Every change checks
/// both, in its own statement: a change from another session (a pooler in transaction mode
/// handing our statements to another server connection) is refused, as a fenced one is.
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

impl PgStorage {
    /// Wraps a connected client (the schema already checked) to `database` as the storage of
    /// `instance`'s log, whose path is [`super::instance_path`]. It changes nothing until
    /// [`Storage::lock`] raises the epoch.
    pub(super) fn new(
        mut client: Db,
        instance: &str,
        database: &str,
    ) -> Result<PgStorage, DbError> {
        let append = client.prepare(APPEND_SQL)?;
        Ok(PgStorage {
            inner: Arc::new(Inner {
                client: Mutex::new(client),
                instance: instance.to_string(),
                root: super::instance_path(instance),
                epoch: Mutex::new(None),
                append,
                vacuums: super::vacuum::Vacuums::new(database),
            }),
        })
    }

    /// The log's path: `pg:INSTANCE`; its files are `pg:INSTANCE/NAME`.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStorage")
            .field("root", &self.root)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn client(&self) -> MutexGuard<'_, Db> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file name of `path`, which must be in this instance's log.
    fn name<'p>(&self, path: &'p Path) -> StoreResult<&'p str> {
        match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
            (Some(parent), Some(name)) if parent == self.root => Ok(name),
            _ => Err(StoreError::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is not a file of the database log {}",
                    path.display(),
                    self.root.display()
                ),
            )),
        }
    }

    fn check_root(&self, dir: &Path) -> StoreResult<()> {
        if dir == self.root {
            Ok(())
        } else {
            Err(StoreError::new(
                io::ErrorKind::InvalidInput,
                format!("this storage holds {} only", self.root.display()),
            ))
        }
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
    /// row, that the epoch is still this storage's.
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

    fn file_id(&self, client: &mut Db, name: &str) -> StoreResult<i64> {
        let row = client
            .query_opt(
                "SELECT id FROM inflight_files WHERE instance = $1 AND name = $2",
                &[&self.instance, &name],
            )
            .map_err(db_error)?;
        row.map(|r| r.get(0)).ok_or_else(|| {
            StoreError::new(
                io::ErrorKind::NotFound,
                format!("no file {name} in {}", self.root.display()),
            )
        })
    }
}

/// A database error inside a storage call, as the seam's [`StoreError::Database`]. A lost
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

impl Storage for PgStorage {
    fn create_dir_all(&self, dir: &Path) -> StoreResult<()> {
        self.inner.check_root(dir)
    }

    fn is_dir(&self, dir: &Path) -> StoreResult<bool> {
        Ok(dir == self.inner.root)
    }

    fn list(&self, dir: &Path) -> StoreResult<Vec<String>> {
        self.inner.check_root(dir)?;
        let rows = self
            .inner
            .client()
            .query(
                "SELECT name FROM inflight_files WHERE instance = $1",
                &[&self.inner.instance],
            )
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn create(&self, path: &Path) -> StoreResult<Box<dyn StorageFile>> {
        let name = self.inner.name(path)?;
        let id = self.inner.fenced_change(|tx| {
            let row = tx
                .query_opt(
                    "INSERT INTO inflight_files (instance, name) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING RETURNING id",
                    &[&self.inner.instance, &name],
                )
                .map_err(db_error)?;
            row.map(|r| r.get(0)).ok_or_else(|| {
                StoreError::new(io::ErrorKind::AlreadyExists, format!("{name} exists"))
            })
        })?;
        Ok(Box::new(PgFile::new(self.inner.clone(), id)))
    }

    /// An open for reading reads the file's bytes at once, in one statement, and the handle
    /// keeps them: as a file system's open handle keeps an inode, it reads the same bytes
    /// after a compaction removed the file or a reopen replaced it. (The offline tools read
    /// through [`PgSource`](crate::PgSource), which fetches only what is new on a second open.)
    fn open(&self, path: &Path, write: bool) -> StoreResult<Box<dyn StorageFile>> {
        let name = self.inner.name(path)?;
        if write {
            let id = self.inner.file_id(&mut self.inner.client(), name)?;
            return Ok(Box::new(PgFile::new(self.inner.clone(), id)));
        }
        let fetched =
            super::source::fetch(&mut self.inner.client(), &self.inner.instance, name, None)
                .map_err(db_error)?
                .ok_or_else(|| {
                    StoreError::new(
                        io::ErrorKind::NotFound,
                        format!("no file {name} in {}", self.inner.root.display()),
                    )
                })?;
        let mut file = PgFile::new(self.inner.clone(), fetched.id);
        file.kept = Some(Arc::new(lay_out(fetched.chunks)));
        Ok(Box::new(file))
    }

    fn rename(&self, from: &Path, to: &Path) -> StoreResult<()> {
        let (from, to) = (self.inner.name(from)?, self.inner.name(to)?);
        self.inner.fenced_change(|tx| {
            let instance = &self.inner.instance;
            tx.execute(
                "DELETE FROM inflight_files WHERE instance = $1 AND name = $2",
                &[instance, &to],
            )
            .map_err(db_error)?;
            let moved = tx
                .execute(
                    "UPDATE inflight_files SET name = $3 WHERE instance = $1 AND name = $2",
                    &[instance, &from, &to],
                )
                .map_err(db_error)?;
            if moved == 0 {
                return Err(StoreError::new(
                    io::ErrorKind::NotFound,
                    format!("no file {from}"),
                ));
            }
            Ok(())
        })
    }

    fn remove(&self, path: &Path) -> StoreResult<()> {
        let name = self.inner.name(path)?;
        self.inner.fenced_change(|tx| {
            let removed = tx
                .execute(
                    "DELETE FROM inflight_files WHERE instance = $1 AND name = $2",
                    &[&self.inner.instance, &name],
                )
                .map_err(db_error)?;
            if removed == 0 {
                return Err(StoreError::new(
                    io::ErrorKind::NotFound,
                    format!("no file {name}"),
                ));
            }
            Ok(())
        })?;
        if inflight::layout::parse_segment_name(name).is_some() {
            // A compaction's clean-up: the segment's rows are dead until a vacuum.
            self.inner.vacuums.request();
        }
        Ok(())
    }

    fn entry_kind(&self, path: &Path) -> StoreResult<EntryKind> {
        let name = self.inner.name(path)?;
        match self.inner.file_id(&mut self.inner.client(), name) {
            Ok(_) => Ok(EntryKind::File),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(EntryKind::Missing),
            Err(e) => Err(e),
        }
    }

    fn reserves_space(&self) -> bool {
        false
    }

    fn sync_dir(&self, _dir: &Path) -> StoreResult<()> {
        // Every create, rename and removal committed in its own transaction.
        Ok(())
    }

    /// Takes the instance's advisory lock (held for the connection's life: a crashed owner's
    /// lock goes with its connection) and raises its fencing epoch, so that an older handle
    /// of the same instance can no longer write. A taken-over instance is refused with
    /// [`StoreError::Fenced`].
    fn lock(&self, dir: &Path) -> Result<DirLock, LockError> {
        self.inner.check_root(dir).map_err(LockError::Io)?;
        let inner = &self.inner;
        // Held across the lock's statements, so that two takers of one storage are ordered.
        let mut epoch = inner.epoch_slot();
        if epoch.is_some() {
            return Err(LockError::Held(Some(std::process::id())));
        }
        *epoch = Some(self.take_lock()?);
        Ok(DirLock::new(Unlock(inner.clone())))
    }
}

impl PgStorage {
    /// [`Storage::lock`]'s work: the advisory lock, then the raised epoch, returned with the
    /// session that holds the lock.
    fn take_lock(&self) -> Result<Held, LockError> {
        let inner = &self.inner;
        let mut client = inner.client();
        let row = client
            .query_one(LOCK_SQL, &[&inner.instance])
            .map_err(|e| LockError::Io(db_error(e)))?;
        let (got, pid): (bool, i32) = (row.get(0), row.get(1));
        if !got {
            return Err(LockError::Held(None));
        }
        let raised = client
            .query_opt(
                "UPDATE inflight_instances SET epoch = epoch + 1, opened_at = now()
                 WHERE instance = $1 AND taken_by IS NULL RETURNING epoch, pg_backend_pid()",
                &[&inner.instance],
            )
            .map_err(|e| LockError::Io(db_error(e)))?;
        let Some(row) = raised else {
            let fenced = inner.fenced(&mut client, Held { epoch: -1, pid });
            let _ = client.query_one(UNLOCK_SQL, &[&inner.instance]);
            return Err(LockError::Io(fenced));
        };
        if row.get::<_, i32>(1) != pid {
            // Two statements, two server sessions: the lock is held by a session we may never
            // see again. The raised epoch fences nothing live (no log was open under it).
            return Err(LockError::Io(pooled_error(&inner.instance)));
        }
        Ok(Held {
            epoch: row.get(0),
            pid,
        })
    }
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

/// One file of the log: writes wait in memory for the sync that commits them.
#[derive(Debug)]
struct PgFile {
    inner: Arc<Inner>,
    id: i64,
    pending: Mutex<Vec<(u64, Vec<u8>)>>,
    /// An open for reading's bytes, read at the open.
    kept: Option<Arc<Vec<u8>>>,
}

impl PgFile {
    fn new(inner: Arc<Inner>, id: i64) -> PgFile {
        PgFile {
            inner,
            id,
            pending: Mutex::new(Vec::new()),
            kept: None,
        }
    }

    fn pending(&self) -> MutexGuard<'_, Vec<(u64, Vec<u8>)>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The committed bytes with the pending writes laid over them (a read-only open's: the
    /// bytes it read).
    fn contents(&self) -> StoreResult<Vec<u8>> {
        if let Some(kept) = &self.kept {
            return Ok(kept.to_vec());
        }
        let rows = self
            .inner
            .client()
            .query(
                "SELECT off, data FROM inflight_chunks WHERE file_id = $1 ORDER BY seq",
                &[&self.id],
            )
            .map_err(db_error)?;
        let mut chunks: Vec<(u64, Vec<u8>)> = rows
            .into_iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
            .collect();
        chunks.extend(self.pending().iter().cloned());
        Ok(lay_out(chunks))
    }
}

/// A file's bytes from its chunks in write order: each laid at its offset (a later one over an
/// earlier one wins), zeros where none is; as long as the furthest chunk reaches.
fn lay_out(chunks: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Vec<u8> {
    lay_over(Vec::new(), chunks.into_iter().collect())
}

/// `bytes` with `chunks` written over them in order, grown (zero-filled) to the end of the
/// furthest, as a file is by writes at those offsets.
pub(super) fn lay_over(mut bytes: Vec<u8>, chunks: Vec<(u64, Vec<u8>)>) -> Vec<u8> {
    let len = chunks
        .iter()
        .map(|(off, data)| off + data.len() as u64)
        .max()
        .unwrap_or(0);
    if len as usize > bytes.len() {
        bytes.resize(len as usize, 0);
    }
    for (off, data) in &chunks {
        bytes[*off as usize..*off as usize + data.len()].copy_from_slice(data);
    }
    bytes
}

impl StorageFile for PgFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> StoreResult<usize> {
        let mut copy = |bytes: &[u8]| {
            let start = (offset as usize).min(bytes.len());
            let n = buf.len().min(bytes.len() - start);
            buf[..n].copy_from_slice(&bytes[start..start + n]);
            n
        };
        match &self.kept {
            Some(kept) => Ok(copy(kept)),
            None => Ok(copy(&self.contents()?)),
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> StoreResult<usize> {
        self.inner.epoch()?;
        if self.kept.is_some() {
            return Err(StoreError::new(
                io::ErrorKind::PermissionDenied,
                "the file was opened read-only",
            ));
        }
        self.pending().push((offset, buf.to_vec()));
        Ok(buf.len())
    }

    fn len(&self) -> StoreResult<u64> {
        if let Some(kept) = &self.kept {
            return Ok(kept.len() as u64);
        }
        let row = self
            .inner
            .client()
            .query_one(
                "SELECT coalesce(max(off + length(data)), 0)::bigint FROM inflight_chunks
                 WHERE file_id = $1",
                &[&self.id],
            )
            .map_err(db_error)?;
        let committed = row.get::<_, i64>(0) as u64;
        let pending = self
            .pending()
            .iter()
            .map(|(off, data)| off + data.len() as u64)
            .max()
            .unwrap_or(0);
        Ok(committed.max(pending))
    }

    /// One query for the whole file (the default would ask for its length first).
    fn read_all(&self) -> StoreResult<FileBytes> {
        self.contents().map(FileBytes::Owned)
    }

    /// The log never truncates or extends a file in place (it replaces a file with a
    /// copy), so a database file refuses it rather than carry the statements for it.
    fn set_len(&self, _len: u64) -> StoreResult<()> {
        Err(StoreError::new(
            io::ErrorKind::Unsupported,
            "a database log's files are never truncated or extended in place",
        ))
    }

    fn sync_data(&self) -> StoreResult<()> {
        let mut pending = self.pending();
        if pending.is_empty() {
            return Ok(());
        }
        let held = self.inner.epoch()?;
        if pending.iter().map(|(_, d)| d.len()).sum::<usize>() > CHUNK_BYTES_MAX {
            // Too big for one value: in pieces, in one fenced transaction.
            let pieces: Vec<(i64, &[u8])> = pending
                .iter()
                .flat_map(|(off, data)| {
                    data.chunks(CHUNK_BYTES_MAX)
                        .enumerate()
                        .map(move |(i, piece)| {
                            ((*off as usize + i * CHUNK_BYTES_MAX) as i64, piece)
                        })
                })
                .collect();
            let written = self.inner.fenced_change(|tx| {
                for (off, piece) in &pieces {
                    tx.execute(
                        "INSERT INTO inflight_chunks (file_id, off, data) VALUES ($1, $2, $3)",
                        &[&self.id, off, piece],
                    )
                    .map_err(db_error)?;
                }
                Ok(())
            });
            pending.clear();
            return written;
        }
        let offsets: Vec<i64> = pending.iter().map(|(off, _)| *off as i64).collect();
        let data: Vec<&[u8]> = pending.iter().map(|(_, d)| d.as_slice()).collect();
        let mut client = self.inner.client();
        let params: [&(dyn ToSql + Sync); 6] = [
            &self.inner.instance,
            &held.epoch,
            &self.id,
            &offsets,
            &data,
            &held.pid,
        ];
        let inserted = client
            .execute(&self.inner.append, &params)
            .map_err(db_error)?;
        if inserted == 0 {
            // The fence held nothing back: the epoch moved. Nothing was written.
            let fenced = self.inner.fenced(&mut client, held);
            pending.clear();
            return Err(fenced);
        }
        debug_assert_eq!(inserted as usize, pending.len());
        pending.clear();
        Ok(())
    }

    fn sync_all(&self) -> StoreResult<()> {
        self.sync_data()
    }
}
