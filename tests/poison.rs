//! A failed write or sync poisons the handle: every later call fails until the log is reopened,
//! and the failure is never reported as success.

mod common;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::run;
use inflight::Opened;
use inflight::storage::{DirLock, LockError};
use inflight::{Error, FsStorage, Log, Options, Storage, StorageFile};

/// The real file system, except that syncs (or writes) fail while `fail_sync` (or `fail_write`)
/// is set.
#[derive(Debug, Default)]
struct Flaky {
    fs: FsStorage,
    fail_sync: Arc<AtomicBool>,
    fail_write: Arc<AtomicBool>,
}

#[derive(Debug)]
struct FlakyFile {
    inner: Box<dyn StorageFile>,
    fail_sync: Arc<AtomicBool>,
    fail_write: Arc<AtomicBool>,
}

impl Flaky {
    fn wrap(&self, inner: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        Box::new(FlakyFile {
            inner,
            fail_sync: self.fail_sync.clone(),
            fail_write: self.fail_write.clone(),
        })
    }
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

impl Storage for Flaky {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.fs.create_dir_all(dir)
    }
    fn is_dir(&self, dir: &Path) -> io::Result<bool> {
        self.fs.is_dir(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.fs.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.fs.create(path).map(|f| self.wrap(f))
    }
    fn open(&self, path: &Path, write: bool) -> io::Result<Box<dyn StorageFile>> {
        self.fs.open(path, write).map(|f| self.wrap(f))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.fs.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.fs.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.fs.sync_dir(dir)
    }
    fn lock(&self, dir: &Path) -> Result<DirLock, LockError> {
        self.fs.lock(dir)
    }
}

impl StorageFile for FlakyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        if self.fail_write.load(Ordering::SeqCst) {
            // ENOSPC partway: half the bytes land, then the error.
            let half = buf.len() / 2;
            self.inner.write_at(&buf[..half], offset)?;
            return Err(io::Error::from_raw_os_error(28));
        }
        self.inner.write_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(eio());
        }
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }
}

fn poisoned_after(flip: impl Fn(&Flaky)) {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Flaky::default());
    let Opened { log, .. } =
        Log::open_with_storage(flaky.clone(), dir.path(), Options::default()).unwrap();
    log.mark_running(run("a", 1)).unwrap();
    flip(&flaky);
    let failure = log.mark_running(run("b", 1)).unwrap_err();
    assert!(matches!(failure, Error::Io { .. }), "{failure:?}");
    // Healthy storage again: the handle must still refuse, since it cannot know what reached the
    // disk.
    flaky.fail_sync.store(false, Ordering::SeqCst);
    flaky.fail_write.store(false, Ordering::SeqCst);
    for result in [log.mark_running(run("c", 1)), log.mark_completed("a", 1)] {
        // The poisoned handle keeps the kind of the failure: a full disk and a failing one
        // call for different action.
        assert!(
            matches!(&result, Err(Error::Poisoned { kind, .. }) if *kind == failure.io_kind()),
            "{result:?}"
        );
    }
    assert!(matches!(log.close(), Err(Error::Poisoned { .. })));
    assert_eq!(
        common::live(&log),
        vec![("a".into(), 1)],
        "failed events never change the live set"
    );
    drop(log);

    // Reopening recovers a valid log that accepts appends; "b" may or may not be there.
    let (log, report) = common::open(dir.path());
    let keys: Vec<_> = report.running.iter().map(|r| r.run.key.as_str()).collect();
    assert!(keys == ["a"] || keys == ["a", "b"], "{keys:?}");
    assert!(report.corruption.is_empty());
    log.mark_running(run("c", 1)).unwrap();
    drop(log);
    let (_log, report) = common::open(dir.path());
    assert!(report.running.iter().any(|r| r.run.key == "c"));
}

#[test]
fn a_failed_sync_poisons_the_handle_until_reopen() {
    poisoned_after(|f| f.fail_sync.store(true, Ordering::SeqCst));
}

#[test]
fn enospc_partway_through_an_append_poisons_and_the_log_reopens_valid() {
    poisoned_after(|f| f.fail_write.store(true, Ordering::SeqCst));
}

#[test]
fn a_poisoned_handle_says_the_disk_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Flaky::default());
    let log = Log::open_with_storage(flaky.clone(), dir.path(), Options::default())
        .unwrap()
        .log;
    flaky.fail_write.store(true, Ordering::SeqCst);
    let failure = log.mark_running(run("a", 1)).unwrap_err();
    assert_eq!(failure.io_kind(), io::ErrorKind::StorageFull);
    let poisoned = log.mark_running(run("b", 1)).unwrap_err();
    assert!(
        matches!(
            poisoned,
            Error::Poisoned {
                kind: io::ErrorKind::StorageFull,
                ..
            }
        ),
        "{poisoned:?}"
    );
}
