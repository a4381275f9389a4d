//! [`FileStore`]: a log in a directory, through the file seam [`Storage`].
//!
//! Every change is made durable in the order that leaves a crash nothing but the old state or
//! the new one:
//!
//! - a part (a segment, a snapshot) is written whole to `NAME.tmp`, synced, renamed over its
//!   name and the directory synced, so no part is ever seen under its name half written; a
//!   `NAME.tmp` a crash left is removed when the log is next acquired;
//! - a segment's space is reserved when it is made (filled ahead to the segment size limit or
//!   [`SEGMENT_RESERVED_BYTES_MAX`], whichever is smaller), so a full disk fails a rollover,
//!   never an append; the next segment is made ahead of need in a background thread;
//! - a removal is followed by a directory sync before anything else is created.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{Appender, LogSource, LogStore, Part};
use crate::error::{Error, IoContext, Result};
use crate::frame::{RESERVED_BYTE, SEGMENT_HEADER_BYTES};
use crate::layout::{
    TEMP_SUFFIX, parse_segment_name, parse_snapshot_name, prepared_path, segment_name,
    snapshot_name, temp_path,
};
use crate::limits::SEGMENT_RESERVED_BYTES_MAX;
use crate::open_dir::create_dir_durably;
use crate::storage::{
    DirLock, EntryKind, FileBytes, LockError, Storage, StorageFile, read_exact_at, read_to_vec,
    write_all_at,
};

/// A log in the directory `dir`, through `storage`.
pub(crate) struct FileStore {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    /// The bytes a segment's space is reserved to.
    reserved: usize,
    /// The preparation of a segment under way, if one was started.
    preparing: Mutex<Option<JoinHandle<Result<Prepared>>>>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

/// A segment file made ahead of need, at its [`prepared_path`]: its reserved space filled and
/// synced, its first 64 bytes zeros where the header goes when it is created.
struct Prepared {
    segment_no: u64,
    path: PathBuf,
    file: Box<dyn StorageFile>,
}

/// An open file of the log, with its path for errors: a segment's open end (an [`Appender`]),
/// or a part open for reading (a [`Part`]).
struct OpenFile {
    file: Box<dyn StorageFile>,
    path: PathBuf,
}

impl std::fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Appender for OpenFile {
    fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        write_all_at(&*self.file, bytes, offset).at("write", &self.path)?;
        self.file.sync_data().at("sync", &self.path)
    }
}

impl FileStore {
    /// The store of the log in `dir`, whose segments hold at most `segment_bytes_max` bytes.
    pub(crate) fn new(storage: Arc<dyn Storage>, dir: &Path, segment_bytes_max: u64) -> FileStore {
        let reserved = usize::try_from(segment_bytes_max.min(SEGMENT_RESERVED_BYTES_MAX))
            .unwrap_or(usize::MAX);
        FileStore {
            storage,
            dir: dir.to_path_buf(),
            reserved,
            preparing: Mutex::new(None),
        }
    }

    /// The reading side of this store's directory.
    fn source(&self) -> FileSource<'_> {
        FileSource::new(&*self.storage, &self.dir)
    }

    /// `bytes` with the segment's space reserved after them, written with the rest into
    /// `NAME.tmp` and synced before the rename: a segment never has space reserved in place,
    /// and a crash cannot leave a reservation half done under the segment's name.
    fn reserve(&self, bytes: &[u8]) -> Vec<u8> {
        let mut reserved = bytes.to_vec();
        if reserved.len() < self.reserved {
            reserved.resize(self.reserved, RESERVED_BYTE);
        }
        reserved
    }

    /// The segment a finished preparation made, if it is segment `segment_no` (waiting for
    /// it: it started half a segment ago).
    fn take_prepared(&self, segment_no: u64) -> Option<Prepared> {
        let handle = self
            .preparing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        match handle.join() {
            Ok(Ok(prepared)) => Some(prepared).filter(|p| p.segment_no == segment_no),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "preparing the next segment failed; creating it now");
                None
            }
            Err(_) => {
                tracing::warn!("preparing the next segment panicked; creating it now");
                None
            }
        }
    }

    /// Syncs the log directory.
    fn sync_dir(&self) -> Result<()> {
        self.storage
            .sync_dir(&self.dir)
            .at("sync directory", &self.dir)
    }
}

/// A store reads as its directory does.
impl LogSource for FileStore {
    fn place(&self) -> &Path {
        &self.dir
    }

    fn exists(&self) -> Result<bool> {
        self.source().exists()
    }

    fn list(&self) -> Result<Vec<String>> {
        self.source().list()
    }

    fn kind(&self, name: &str) -> Result<EntryKind> {
        self.source().kind(name)
    }

    fn open_part(&self, name: &str) -> Result<Option<Box<dyn Part>>> {
        self.source().open_part(name)
    }
}

impl LogStore for FileStore {
    /// Creates the directory durably, takes its lock, and removes the replacements a crash
    /// interrupted before their rename (the originals are intact).
    fn acquire(&self) -> Result<(DirLock, Vec<String>)> {
        let (storage, dir) = (&*self.storage, &self.dir);
        create_dir_durably(storage, dir)?;
        let lock = storage.lock(dir).map_err(|e| match e {
            LockError::Held(holder_pid) => Error::Locked {
                dir: dir.clone(),
                holder_pid,
            },
            LockError::Io(e) => Error::io("lock", dir, e),
        })?;
        let (temps, names): (Vec<String>, Vec<String>) = self
            .list()?
            .into_iter()
            .partition(|n| n.ends_with(TEMP_SUFFIX));
        for name in &temps {
            let path = dir.join(name);
            storage.remove(&path).at("remove", &path)?;
        }
        if !temps.is_empty() {
            self.sync_dir()?;
        }
        Ok((lock, names))
    }

    /// Writes the segment whole to `NAME.tmp` with its space reserved, syncs it, renames it
    /// into place and syncs the directory. A segment prepared ahead has its space reserved
    /// already: only `bytes` are written and synced there before the rename.
    fn create_segment(&self, segment_no: u64, bytes: &[u8]) -> Result<Box<dyn Appender>> {
        let path = self.dir.join(segment_name(segment_no));
        let file = match self.take_prepared(segment_no) {
            Some(Prepared {
                path: tmp, file, ..
            }) => {
                write_all_at(&*file, bytes, 0).at("write", &tmp)?;
                file.sync_data().at("sync", &tmp)?;
                self.storage.rename(&tmp, &path).at("rename", &tmp)?;
                self.sync_dir()?;
                file
            }
            None => replace_durably(&*self.storage, &self.dir, &path, &self.reserve(bytes))?,
        };
        Ok(Box::new(OpenFile { file, path }))
    }

    fn seal_segment(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        drop(replace_durably(&*self.storage, &self.dir, &path, bytes)?);
        Ok(())
    }

    fn remove_segment(&self, name: &str) -> Result<()> {
        let path = self.dir.join(name);
        self.storage.remove(&path).at("remove", &path)?;
        self.sync_dir()
    }

    /// Makes the segment's file at its prepared name in a background thread. If the thread
    /// cannot be started, the segment is made when it is created.
    fn prepare_segment(&self, segment_no: u64) {
        let (storage, dir, reserved) = (self.storage.clone(), self.dir.clone(), self.reserved);
        let spawned = std::thread::Builder::new()
            .name("inflight-segment".into())
            .spawn(move || prepare(&*storage, &dir, segment_no, reserved));
        match spawned {
            Ok(handle) => {
                let old = self
                    .preparing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .replace(handle);
                if let Some(old) = old {
                    let _ = old.join();
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not start preparing the next segment"),
        }
    }

    fn finish_preparing(&self) {
        let handle = self
            .preparing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Writes the snapshot to `NAME.tmp`, syncs it, renames it into place and syncs the
    /// directory; a `NAME.tmp` an earlier, failed attempt of this process left is removed
    /// first (an acquire removes the ones a crash left).
    fn install_snapshot(&self, names: &[String], last_seq: u64, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.dir.join(snapshot_name(last_seq));
        let tmp = temp_path(&path);
        if names.iter().any(|n| self.dir.join(n) == tmp) {
            self.storage.remove(&tmp).at("remove", &tmp)?;
        }
        drop(replace_durably(&*self.storage, &self.dir, &path, bytes)?);
        Ok(path)
    }

    /// Removes each covered file, then syncs the directory once.
    fn remove_covered(
        &self,
        names: &[String],
        segment_below: u64,
        keep: &[&str],
    ) -> Result<(usize, usize)> {
        let (mut segments, mut snapshots) = (0, 0);
        for old in names {
            let covered_segment = parse_segment_name(old).is_some_and(|n| n < segment_below);
            let old_snapshot = parse_snapshot_name(old).is_some() && !keep.contains(&old.as_str());
            if !covered_segment && !old_snapshot {
                continue;
            }
            let old_path = self.dir.join(old);
            // Only regular files are the log's to remove. Anything else under a log's name (a
            // directory, a FIFO, a symbolic link) holds no record, is reported by the readers
            // as damage, and is left as it was, as the readers and the open leave it; removing
            // it would fail (a directory) and stop every later compaction.
            match self.storage.entry_kind(&old_path).at("stat", &old_path)? {
                EntryKind::File => {}
                EntryKind::Missing => continue,
                EntryKind::Other(what) => {
                    tracing::warn!(
                        path = %old_path.display(),
                        what = %what,
                        "compaction left an entry named like a log file that is not a regular file"
                    );
                    continue;
                }
            }
            self.storage.remove(&old_path).at("remove", &old_path)?;
            if covered_segment {
                segments += 1;
            } else {
                snapshots += 1;
            }
        }
        self.sync_dir()?;
        Ok((segments, snapshots))
    }
}

/// The reading side of a log in a directory, through a [`Storage`] (the real file system,
/// [`FsStorage`](crate::FsStorage), or a simulated one).
#[derive(Debug)]
pub struct FileSource<'s> {
    storage: &'s dyn Storage,
    dir: PathBuf,
}

/// The real file system, mapping what it reads whole: what [`FileSource::at`] reads through.
static MAPPED: crate::FsStorage = crate::FsStorage { mmap: true };

impl FileSource<'static> {
    /// The log in `dir` on the real file system, its segments and snapshots mapped
    /// ([`FsStorage::mmap`](crate::FsStorage::mmap)), not copied: what the offline tools read.
    pub fn at(dir: impl AsRef<Path>) -> FileSource<'static> {
        FileSource::new(&MAPPED, dir)
    }
}

impl<'s> FileSource<'s> {
    /// The log in `dir`, read through `storage`.
    pub fn new(storage: &'s dyn Storage, dir: impl AsRef<Path>) -> FileSource<'s> {
        let dir = dir.as_ref();
        FileSource {
            storage,
            dir: dir.to_path_buf(),
        }
    }
}

impl LogSource for FileSource<'_> {
    fn place(&self) -> &Path {
        &self.dir
    }

    fn exists(&self) -> Result<bool> {
        self.storage.is_dir(&self.dir).at("stat", &self.dir)
    }

    fn list(&self) -> Result<Vec<String>> {
        self.storage.list(&self.dir).at("list", &self.dir)
    }

    fn kind(&self, name: &str) -> Result<EntryKind> {
        let path = self.dir.join(name);
        self.storage.entry_kind(&path).at("stat", &path)
    }

    fn open_part(&self, name: &str) -> Result<Option<Box<dyn Part>>> {
        let path = self.dir.join(name);
        match self.storage.open(&path, false) {
            Ok(file) => Ok(Some(Box::new(OpenFile { file, path }))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("open", &path, e)),
        }
    }
}

impl Part for OpenFile {
    fn len(&self) -> Result<u64> {
        self.file.len().at("stat", &self.path)
    }

    fn read_whole(&self, copy: bool) -> Result<FileBytes> {
        if copy {
            read_to_vec(&*self.file).map(FileBytes::Owned)
        } else {
            self.file.read_all()
        }
        .at("read", &self.path)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        read_exact_at(&*self.file, buf, offset).at("read", &self.path)
    }
}

/// Makes segment `segment_no` ahead of need (in a background thread): its file at the
/// prepared name, `reserved` bytes long, zeros where the header goes, synced.
fn prepare(
    storage: &dyn Storage,
    dir: &Path,
    segment_no: u64,
    reserved: usize,
) -> Result<Prepared> {
    let path = prepared_path(&dir.join(segment_name(segment_no)));
    // Left by a preparation that was not used (a failed rollover): made again.
    match storage.remove(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io("remove", &path, e));
        }
        _ => {}
    }
    let file = storage.create(&path).at("create", &path)?;
    let mut bytes = vec![0; SEGMENT_HEADER_BYTES];
    if bytes.len() < reserved {
        bytes.resize(reserved, RESERVED_BYTE);
    }
    write_all_at(&*file, &bytes, 0).at("write", &path)?;
    file.sync_data().at("sync", &path)?;
    Ok(Prepared {
        segment_no,
        path,
        file,
    })
}

/// Replaces the file at `path` with `bytes`, durably: writes them to `NAME.tmp`, syncs it,
/// renames it over `path` and syncs the directory. Returns the new file, open for writing.
///
/// A read-write open does this with the segment it will append to, because replay reads the
/// page cache: after a failed fsync the cache can hold data that will never reach the disk
/// (Linux marks the pages clean, and the next fsync succeeds without writing them), and a
/// segment whose directory sync failed is visible but not durable. A reopen that trusted what
/// it read could report a record as recovered (say a completion the gateway then acts on) that
/// vanishes at the next power loss. Copying, rather than rewriting in place, never puts synced
/// bytes at risk of a torn overwrite.
fn replace_durably(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> Result<Box<dyn StorageFile>> {
    let tmp = temp_path(path);
    let file = storage.create(&tmp).at("create", &tmp)?;
    write_all_at(&*file, bytes, 0).at("write", &tmp)?;
    file.sync_data().at("sync", &tmp)?;
    storage.rename(&tmp, path).at("rename", &tmp)?;
    storage.sync_dir(dir).at("sync directory", dir)?;
    Ok(file)
}
