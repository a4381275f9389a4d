//! The storage calls of the virtual file system: the [`Storage`] and [`StorageFile`]
//! implementations, with their injected faults and their trace entries, the open file handles
//! and the directory locks. The inodes they work on are in [`inodes`](super::inodes); what a
//! crash does with the pending part is in [`crash`](super::crash).

use std::fmt;
use std::io;
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::faults::{EBADF, ENOSPC, Fault, eio};
use super::inodes::{EntrySet, components, is_a_directory, not_a_directory};
use super::trace::{OpKind, Rec, copied, len_of, zero};
use super::{FAKE_PID, FILE_BYTES_MAX, Inner, SimStorage};
use inflight::storage::{DirLock, LOCK_FILE, LockError, Storage, StorageFile, StoreResult};

// The rest of the simulator names the inodes through this module.
pub(super) use super::inodes::{
    DirNode, DirOp, FileNode, FileOp, Ino, Node, ROOT, View, not_found,
};

impl SimStorage {
    /// A handle on file `ino`, valid until the next crash.
    fn open_file(&self, inner: &Inner, ino: Ino, path: &Path, writable: bool) -> SimFile {
        SimFile {
            shared: Arc::clone(&self.shared),
            ino,
            epoch: inner.epoch,
            writable,
            path: path.to_path_buf(),
        }
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> StoreResult<()> {
        let mut inner = self.inner();
        inner.call(
            Rec::new(OpKind::CreateDirAll, dir),
            |inner| {
                if inner.fault(OpKind::CreateDirAll, dir).is_some() {
                    return Err(eio());
                }
                let names = components(dir)?;
                let mut cur = ROOT;
                for (i, name) in names.iter().enumerate() {
                    let existing = inner.dir(cur)?.cache.get(name).copied();
                    cur = match existing {
                        Some(ino) if inner.dir(ino).is_ok() => ino,
                        Some(_) if i + 1 == names.len() => {
                            return Err(io::Error::new(
                                io::ErrorKind::AlreadyExists,
                                "a file exists with that name",
                            ));
                        }
                        Some(_) => return Err(not_a_directory()),
                        None => {
                            let ino = inner.new_node(Node::Dir(DirNode::default()));
                            // F5: the new directory's name is a pending entry of its parent.
                            inner.dir_op(vec![EntrySet::link(cur, name, ino)])?;
                            ino
                        }
                    };
                }
                Ok(())
            },
            zero,
        )
    }

    fn is_dir(&self, dir: &Path) -> StoreResult<bool> {
        let mut inner = self.inner();
        inner.call(
            Rec::new(OpKind::IsDir, dir),
            |inner| match inner.lookup(dir, View::Cache) {
                Ok(ino) => Ok(inner.dir(ino).is_ok()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    Ok(false)
                }
                Err(e) => Err(e),
            },
            |r| r.as_ref().map(|&b| u64::from(b)).map_err(|e| e.to_string()),
        )
    }

    fn list(&self, dir: &Path) -> StoreResult<Vec<String>> {
        let mut inner = self.inner();
        inner.call(
            Rec::new(OpKind::List, dir),
            |inner| {
                if inner.fault(OpKind::List, dir).is_some() {
                    return Err(eio());
                }
                let ino = inner.lookup(dir, View::Cache)?;
                let mut names: Vec<String> = inner.dir(ino)?.cache.keys().cloned().collect();
                // A real directory lists in no particular order.
                inner.fault_rng.shuffle(&mut names);
                Ok(names)
            },
            |r| {
                r.as_ref()
                    .map(|v| v.len() as u64)
                    .map_err(|e| e.to_string())
            },
        )
    }

    fn create(&self, path: &Path) -> StoreResult<Box<dyn StorageFile>> {
        let mut inner = self.inner();
        let ino = inner.call(
            Rec::new(OpKind::Create, path),
            |inner| {
                if inner.fault(OpKind::Create, path).is_some() {
                    return Err(eio());
                }
                let (parent, name) = inner.lookup_parent(path)?;
                if inner.dir(parent)?.cache.contains_key(&name) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "the name exists",
                    ));
                }
                let ino = inner.new_node(Node::File(FileNode::default()));
                // F5: the name is pending until the directory is synced.
                inner.dir_op(vec![EntrySet::link(parent, &name, ino)])?;
                Ok(ino)
            },
            copied,
        )?;
        Ok(Box::new(self.open_file(&inner, ino, path, true)))
    }

    fn open(&self, path: &Path, write: bool) -> StoreResult<Box<dyn StorageFile>> {
        let mut inner = self.inner();
        let ino = inner.call(
            Rec::new(OpKind::Open, path),
            |inner| {
                if inner.fault(OpKind::Open, path).is_some() {
                    return Err(eio());
                }
                inner.lookup_file(path, View::Cache)
            },
            copied,
        )?;
        Ok(Box::new(self.open_file(&inner, ino, path, write)))
    }

    fn rename(&self, from: &Path, to: &Path) -> StoreResult<()> {
        let mut inner = self.inner();
        let mut rec = Rec::new(OpKind::Rename, from);
        rec.detail = format!("to {}", to.display());
        inner.call(
            rec,
            |inner| {
                if inner.fault(OpKind::Rename, from).is_some() {
                    return Err(eio());
                }
                let (from_dir, from_name) = inner.lookup_parent(from)?;
                let ino = *inner
                    .dir(from_dir)?
                    .cache
                    .get(&from_name)
                    .ok_or_else(not_found)?;
                if inner.dir(ino).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the simulator renames files only",
                    ));
                }
                let (to_dir, to_name) = inner.lookup_parent(to)?;
                if (from_dir, &from_name) == (to_dir, &to_name) {
                    return Ok(());
                }
                if let Some(&target) = inner.dir(to_dir)?.cache.get(&to_name)
                    && inner.dir(target).is_ok()
                {
                    return Err(is_a_directory());
                }
                // F5: one operation, durable once either directory is synced.
                inner.dir_op(vec![
                    EntrySet::link(to_dir, &to_name, ino),
                    EntrySet::unlink(from_dir, &from_name),
                ])
            },
            zero,
        )
    }

    fn remove(&self, path: &Path) -> StoreResult<()> {
        let mut inner = self.inner();
        inner.call(
            Rec::new(OpKind::Remove, path),
            |inner| {
                if inner.fault(OpKind::Remove, path).is_some() {
                    return Err(eio());
                }
                let (parent, name) = inner.lookup_parent(path)?;
                let ino = *inner.dir(parent)?.cache.get(&name).ok_or_else(not_found)?;
                if inner.dir(ino).is_ok() {
                    return Err(is_a_directory());
                }
                // F5: the removal is pending until the directory is synced.
                inner.dir_op(vec![EntrySet::unlink(parent, &name)])
            },
            zero,
        )
    }

    fn sync_dir(&self, dir: &Path) -> StoreResult<()> {
        let mut inner = self.inner();
        inner.call(
            Rec::new(OpKind::SyncDir, dir),
            |inner| {
                let ino = inner.lookup(dir, View::Cache)?;
                inner.dir(ino)?;
                if inner.fault(OpKind::SyncDir, dir).is_some() {
                    // F9: nothing becomes durable; the operations stay pending.
                    return Err(eio());
                }
                inner.sync_dir(ino);
                Ok(())
            },
            zero,
        )
    }

    fn lock(&self, dir: &Path) -> Result<DirLock, LockError> {
        let mut inner = self.inner();
        let locked = inner.call(
            Rec::new(OpKind::Lock, dir),
            |inner| {
                let ino = inner.lookup(dir, View::Cache)?;
                inner.dir(ino)?;
                if inner.locks.contains(&ino) {
                    return Ok(Err(FAKE_PID));
                }
                // Like the real lock: a LOCK file holding the holder's pid, never synced.
                let lock_file = match inner.dir(ino)?.cache.get(LOCK_FILE).copied() {
                    Some(file) => {
                        inner.file(file)?;
                        file
                    }
                    None => {
                        let file = inner.new_node(Node::File(FileNode::default()));
                        inner.dir_op(vec![EntrySet::link(ino, LOCK_FILE, file)])?;
                        file
                    }
                };
                inner.set_len(lock_file, 0)?;
                inner.write(lock_file, 0, FAKE_PID.to_string().as_bytes())?;
                inner.locks.insert(ino);
                Ok(Ok(ino))
            },
            |r| match r {
                Ok(Ok(_)) => Ok(0),
                Ok(Err(pid)) => Err(format!("lock held by process {pid}")),
                Err(e) => Err(e.to_string()),
            },
        );
        match locked {
            Ok(Ok(ino)) => Ok(DirLock::new(SimLockGuard {
                shared: Arc::clone(&self.shared),
                dir: ino,
                epoch: inner.epoch,
            })),
            Ok(Err(pid)) => Err(LockError::Held(Some(pid))),
            Err(e) => Err(LockError::Io(e)),
        }
    }
}

/// An open simulated file: the inode it was opened on, valid until the next crash.
pub(super) struct SimFile {
    shared: Arc<Mutex<Inner>>,
    ino: Ino,
    /// The crash count when it was opened: after a crash the handle is dead.
    epoch: u64,
    writable: bool,
    /// The path it was opened with, for the trace and fault matching.
    path: PathBuf,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .field("writable", &self.writable)
            .finish()
    }
}

impl SimFile {
    /// Runs one call on this file: recorded, stopped at the crash point, refused on a dead
    /// handle.
    fn call<T>(
        &self,
        rec: Rec,
        f: impl FnOnce(&mut Inner) -> io::Result<T>,
        describe: impl FnOnce(&io::Result<T>) -> Result<u64, String>,
    ) -> StoreResult<T> {
        let mut inner = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        inner.call(
            rec,
            |inner| {
                if inner.epoch != self.epoch {
                    return Err(io::Error::other(
                        "simulated crash: the file was opened before the crash",
                    ));
                }
                f(inner)
            },
            describe,
        )
    }

    fn rec(&self, op: OpKind) -> Rec {
        Rec::new(op, &self.path)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(EBADF))
        }
    }

    fn sync(&self, op: OpKind) -> StoreResult<()> {
        self.call(
            self.rec(op),
            |inner| {
                if inner.fault(op, &self.path).is_some() {
                    // F7: Linux marks the pages clean after a writeback error: the data stays
                    // readable but is no longer on its way to the disk, and the next sync has
                    // nothing to write.
                    inner.file_mut(self.ino)?.pending.clear();
                    return Err(eio());
                }
                let file = inner.file_mut(self.ino)?;
                for op in mem::take(&mut file.pending) {
                    op.apply(&mut file.durable);
                }
                Ok(())
            },
            zero,
        )
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> StoreResult<usize> {
        let mut rec = self.rec(OpKind::ReadAt);
        rec.offset = Some(offset);
        rec.len = Some(buf.len() as u64);
        self.call(
            rec,
            |inner| {
                let fault = inner.fault(OpKind::ReadAt, &self.path);
                if fault == Some(Fault::ReadEio) {
                    return Err(eio()); // F10
                }
                let file = inner.file(self.ino)?;
                let len = file.cache.len() as u64;
                if offset >= len {
                    return Ok(0);
                }
                let mut n = buf.len().min((len - offset) as usize);
                if fault == Some(Fault::ReadShort) && n > 1 {
                    n = inner.fault_rng.usize(1..n); // F10
                }
                let file = inner.file(self.ino)?;
                let start = offset as usize;
                buf[..n].copy_from_slice(&file.cache[start..start + n]);
                Ok(n)
            },
            len_of,
        )
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> StoreResult<usize> {
        let mut rec = self.rec(OpKind::WriteAt);
        rec.offset = Some(offset);
        rec.len = Some(buf.len() as u64);
        self.call(
            rec,
            |inner| {
                self.check_writable()?;
                check_file_len(offset.checked_add(buf.len() as u64))?;
                let n = match inner.fault(OpKind::WriteAt, &self.path) {
                    // F8: nothing written.
                    Some(Fault::WriteEio) => return Err(eio()),
                    // F8: the disk filled up partway; the prefix is in the cache and pending.
                    Some(Fault::WriteNoSpace) => {
                        let n = if buf.is_empty() {
                            0
                        } else {
                            inner.fault_rng.usize(0..buf.len())
                        };
                        inner.write(self.ino, offset, &buf[..n])?;
                        return Err(io::Error::from_raw_os_error(ENOSPC));
                    }
                    // F8: a short write.
                    Some(Fault::WriteShort) if buf.len() > 1 => inner.fault_rng.usize(1..buf.len()),
                    _ => buf.len(),
                };
                inner.write(self.ino, offset, &buf[..n])?;
                Ok(n)
            },
            len_of,
        )
    }

    fn len(&self) -> StoreResult<u64> {
        self.call(
            self.rec(OpKind::Len),
            |inner| Ok(inner.file(self.ino)?.cache.len() as u64),
            copied,
        )
    }

    fn set_len(&self, len: u64) -> StoreResult<()> {
        let mut rec = self.rec(OpKind::SetLen);
        rec.offset = Some(len);
        self.call(
            rec,
            |inner| {
                if !self.writable {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "file not open for writing",
                    ));
                }
                check_file_len(Some(len))?;
                if inner.fault(OpKind::SetLen, &self.path).is_some() {
                    return Err(eio());
                }
                inner.set_len(self.ino, len)
            },
            zero,
        )
    }

    fn sync_data(&self) -> StoreResult<()> {
        self.sync(OpKind::SyncData)
    }

    fn sync_all(&self) -> StoreResult<()> {
        self.sync(OpKind::SyncAll)
    }
}

/// Keeps a simulated directory lock held; dropping it releases the lock, unless a crash already
/// did.
struct SimLockGuard {
    shared: Arc<Mutex<Inner>>,
    dir: Ino,
    epoch: u64,
}

impl Drop for SimLockGuard {
    fn drop(&mut self) {
        let mut inner = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if inner.epoch == self.epoch {
            inner.locks.remove(&self.dir);
        }
    }
}

fn check_file_len(end: Option<u64>) -> io::Result<()> {
    match end {
        Some(end) if end <= FILE_BYTES_MAX => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("the simulator keeps files up to {FILE_BYTES_MAX} bytes"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::test_util::*;

    #[test]
    fn unsynced_create_vanishes_without_dir_sync() {
        let sim = SimStorage::new(3);
        setup(&sim, b"x");
        let path = Path::new(DIR).join("new");
        let file = sim.create(&path).unwrap();
        write_all_at(&*file, b"data", 0).unwrap();
        file.sync_data().unwrap(); // the data is durable, the name is not
        assert_eq!(sim.durable_list(DIR).unwrap(), ["f"]);
        sim.crash_keep_nothing();
        let err = sim.open(&path, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);

        let file = sim.create(&path).unwrap();
        write_all_at(&*file, b"data", 0).unwrap();
        file.sync_data().unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        sim.crash_keep_nothing();
        assert_eq!(sim.file_bytes(&path).unwrap(), b"data");
    }

    #[test]
    fn unsynced_remove_and_rename_may_be_undone() {
        let sim = SimStorage::new(4);
        let file = setup(&sim, b"old");
        let renamed = Path::new(DIR).join("renamed");
        sim.rename(&file_path(), &renamed).unwrap();
        // The handle follows the inode.
        write_all_at(&*file, b"new", 0).unwrap();
        assert_eq!(sim.file_bytes(&renamed).unwrap(), b"new");
        assert!(sim.file_bytes(file_path()).is_none());
        sim.crash_keep_nothing();
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"old");
        assert!(sim.file_bytes(&renamed).is_none());

        sim.remove(&file_path()).unwrap();
        assert_eq!(
            sim.open(&file_path(), false).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        sim.crash_keep_nothing();
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"old");

        sim.remove(&file_path()).unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        sim.crash_keep_nothing();
        assert!(sim.file_bytes(file_path()).is_none());
        assert_eq!(sim.list(Path::new(DIR)).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn synced_rename_between_directories_keeps_its_source_create() {
        let sim = SimStorage::new(5);
        sim.create_dir_all(Path::new("/a")).unwrap();
        sim.create_dir_all(Path::new("/b")).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        sim.create(Path::new("/a/x")).unwrap();
        sim.rename(Path::new("/a/x"), Path::new("/b/y")).unwrap();
        sim.sync_dir(Path::new("/b")).unwrap();
        sim.crash();
        assert_eq!(sim.durable_list("/a").unwrap(), Vec::<String>::new());
        assert_eq!(sim.durable_list("/b").unwrap(), ["y"]);
    }

    #[test]
    fn handles_die_and_locks_are_released_at_a_crash() {
        let sim = SimStorage::new(9);
        let file = setup(&sim, b"x");
        let lock = sim.lock(Path::new(DIR)).unwrap();
        assert!(matches!(
            sim.lock(Path::new("/data/")),
            Err(LockError::Held(Some(FAKE_PID)))
        ));
        drop(lock);
        let lock = sim.lock(Path::new(DIR)).unwrap();
        sim.crash();
        assert!(file.len().is_err());
        assert!(file.write_at(b"y", 0).is_err());
        let _lock = sim.lock(Path::new(DIR)).unwrap();
        drop(lock); // the guard from before the crash releases nothing
        assert!(matches!(
            sim.lock(Path::new(DIR)),
            Err(LockError::Held(Some(FAKE_PID)))
        ));
    }
}
