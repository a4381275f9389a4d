//! The open syncs the parent of the log directory, and of every directory it creates, but a
//! parent this process may not read (so cannot open to sync) does not fail the open: it is a
//! warning with the parent and the reason. An I/O error from the sync still fails it.
//!
//! The logic is checked through the `Storage` trait, with a storage whose `sync_dir` of one
//! directory fails as told; the real case (a parent of mode 0711 owned by another user) with a
//! real directory, as an unprivileged user (as root, the test runs itself again as `nobody`,
//! since root may read any directory).

use inflight::storage::StoreResult;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use inflight::storage::{DirLock, LockError};
use inflight::{Error, Generation, Log, Opened, Run, Storage, StorageFile, UnixMs};
use inflight_sim::crashtest::Harness;
use inflight_sim::sim::SimStorage;

/// A simulated disk whose `sync_dir` of `deny` fails with `errno`, and which records every
/// directory sync asked of it.
#[derive(Debug)]
struct FailingDirSync {
    sim: SimStorage,
    deny: PathBuf,
    errno: i32,
    synced: Mutex<Vec<PathBuf>>,
}

impl FailingDirSync {
    fn new(sim: &SimStorage, deny: impl Into<PathBuf>, errno: i32) -> Arc<FailingDirSync> {
        Arc::new(FailingDirSync {
            sim: sim.clone(),
            deny: deny.into(),
            errno,
            synced: Mutex::new(Vec::new()),
        })
    }

    fn synced(&self) -> Vec<PathBuf> {
        self.synced.lock().unwrap().clone()
    }
}

impl Storage for FailingDirSync {
    fn create_dir_all(&self, dir: &Path) -> StoreResult<()> {
        self.sim.create_dir_all(dir)
    }
    fn is_dir(&self, dir: &Path) -> StoreResult<bool> {
        self.sim.is_dir(dir)
    }
    fn list(&self, dir: &Path) -> StoreResult<Vec<String>> {
        self.sim.list(dir)
    }
    fn create(&self, path: &Path) -> StoreResult<Box<dyn StorageFile>> {
        self.sim.create(path)
    }
    fn open(&self, path: &Path, write: bool) -> StoreResult<Box<dyn StorageFile>> {
        self.sim.open(path, write)
    }
    fn rename(&self, from: &Path, to: &Path) -> StoreResult<()> {
        self.sim.rename(from, to)
    }
    fn remove(&self, path: &Path) -> StoreResult<()> {
        self.sim.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> StoreResult<()> {
        self.synced.lock().unwrap().push(dir.to_path_buf());
        if dir == self.deny {
            return Err(io::Error::from_raw_os_error(self.errno).into());
        }
        self.sim.sync_dir(dir)
    }
    fn lock(&self, dir: &Path) -> Result<DirLock, LockError> {
        self.sim.lock(dir)
    }
}

/// Runs `f` with the warnings it logs captured, and returns its result and their text.
fn with_warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured(Arc::new(Mutex::new(Vec::new())));
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    (result, text)
}

const SEED: u64 = 11;

/// A simulated disk holding a log at `Harness::dir()` with run `a` in flight, all of it synced.
fn log_with_a_run() -> SimStorage {
    let sim = SimStorage::new(SEED);
    let Opened { log, .. } = Log::open_with_storage(
        Arc::new(sim.clone()),
        Harness::dir(),
        Harness::options(SEED),
    )
    .unwrap();
    log.mark_running(Run::new("a", "s", Generation(1), UnixMs(1)))
        .unwrap();
    drop(log);
    sim
}

fn keys(report: &inflight::RecoveryReport) -> Vec<&str> {
    report.running.iter().map(|r| r.run.key.as_str()).collect()
}

/// The errors of a parent that may not be read, with (a part of) the system's text for them:
/// EACCES and EPERM on Unix; ERROR_ACCESS_DENIED on Windows ("Access is denied.", Wine's
/// "Access denied.").
#[cfg(unix)]
const DENIED: &[(i32, &str)] = &[
    (libc::EACCES, "Permission denied"),
    (libc::EPERM, "Operation not permitted"),
];
#[cfg(windows)]
const DENIED: &[(i32, &str)] = &[(5, "ccess")];

/// An I/O error: EIO on Unix, ERROR_IO_DEVICE on Windows.
const EIO: i32 = if cfg!(windows) { 1117 } else { 5 };

#[test]
fn an_existing_log_directory_whose_parent_may_not_be_read_opens_with_a_warning() {
    for &(errno, reason) in DENIED {
        let sim = log_with_a_run();
        let parent = Harness::dir().parent().unwrap();
        let storage = FailingDirSync::new(&sim, parent, errno);
        let (opened, warnings) = with_warnings(|| {
            Log::open_with_storage(storage.clone(), Harness::dir(), Harness::options(SEED))
        });
        let Opened { log: _log, report } = opened.unwrap_or_else(|e| panic!("errno {errno}: {e}"));
        assert_eq!(keys(&report), ["a"]);
        // The open still tried to sync the parent of the directory it found...
        assert_eq!(storage.synced().first().map(PathBuf::as_path), Some(parent));
        // ...and said why it could not, and where.
        assert!(
            warnings.contains("WARN")
                && warnings.contains(&format!("parent={}", parent.display()))
                && warnings.contains(reason),
            "errno {errno}: {warnings:?}"
        );
    }
}

#[test]
fn an_io_error_syncing_the_parent_still_fails_the_open() {
    let sim = log_with_a_run();
    let parent = Harness::dir().parent().unwrap();
    let storage = FailingDirSync::new(&sim, parent, EIO);
    match Log::open_with_storage(storage, Harness::dir(), Harness::options(SEED)) {
        Err(Error::Io {
            op: "sync directory",
            path,
            source,
            ..
        }) => {
            assert_eq!(path, parent);
            assert_eq!(source.raw_os_error(), Some(EIO));
        }
        other => panic!("expected the sync's EIO, got {:?}", other.map(|o| o.report)),
    }
}

#[test]
fn directories_the_open_creates_have_their_parents_synced_and_a_refusal_is_a_warning() {
    let sim = SimStorage::new(SEED);
    sim.create_dir_all(Path::new("/srv")).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    let dir = Path::new("/srv/gw/inflight");
    // The parent that was already there may not be read; the open created the other two.
    let storage = FailingDirSync::new(&sim, "/srv", DENIED[0].0);
    let (opened, warnings) =
        with_warnings(|| Log::open_with_storage(storage.clone(), dir, Harness::options(SEED)));
    let Opened { log, .. } = opened.unwrap_or_else(|e| panic!("{e}"));
    log.mark_running(Run::new("a", "s", Generation(1), UnixMs(1)))
        .unwrap();
    drop(log);
    let synced = storage.synced();
    assert_eq!(
        synced[..2],
        [PathBuf::from("/srv"), PathBuf::from("/srv/gw")],
        "the parents of the created directories, outermost first: {synced:?}"
    );
    assert!(
        warnings.contains("parent=/srv ") && warnings.contains(DENIED[0].1),
        "{warnings:?}"
    );
    // What the refusal costs: the entry of /srv/gw in /srv is not durable (the file system
    // writes it out in its own time).
    assert_eq!(sim.durable_list("/srv"), Some(vec![]));

    // An I/O error syncing the parent of a created directory fails the open.
    let sim = SimStorage::new(SEED);
    let storage = FailingDirSync::new(&sim, "/srv/gw", EIO);
    assert!(matches!(
        Log::open_with_storage(storage, dir, Harness::options(SEED)),
        Err(Error::Io {
            op: "sync directory",
            ..
        })
    ));
}

/// Unix only: file modes, and a child run as another user.
#[cfg(unix)]
mod unreadable_parents {
    use super::*;
    use inflight::Options;
    use std::fs::{self, File};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Set in the child that runs [`a_real_parent_that_may_not_be_read_does_not_fail_the_open`]
    /// as `nobody`: the directory its parent set up.
    const CHILD_BASE: &str = "INFLIGHT_TEST_UNREADABLE_PARENT_BASE";
    /// The user and group the test runs as when started as root.
    const NOBODY: u32 = 65534;

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Run as an unprivileged user, in `base`: `existing` holds a log directory `log` with run `a`
    /// in flight, and `open_dir` is where a new log directory goes; neither may be read by this
    /// process, both may be traversed and `open_dir` written.
    fn check_unreadable_parents(base: &Path) {
        let (existing, creating) = (base.join("existing"), base.join("creating"));
        for parent in [&existing, &creating] {
            let err = File::open(parent).expect_err("the parent must not be readable");
            assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{parent:?}");
        }
        let (opened, warnings) =
            with_warnings(|| Log::open(existing.join("log"), Options::default()));
        let Opened { log, report } = opened.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(&report), ["a"]);
        log.mark_completed("a", 1).unwrap();
        drop(log);
        assert!(
            warnings.contains(&format!("parent={}", existing.display()))
                && warnings.contains("Permission denied"),
            "{warnings:?}"
        );

        let (opened, warnings) =
            with_warnings(|| Log::open(creating.join("log"), Options::default()));
        let Opened { log, report } = opened.unwrap_or_else(|e| panic!("{e}"));
        assert!(report.running.is_empty());
        log.mark_running(Run::new("b", "s", Generation(1), UnixMs(1)))
            .unwrap();
        assert!(
            warnings.contains(&format!("parent={}", creating.display()))
                && warnings.contains("Permission denied"),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_real_parent_that_may_not_be_read_does_not_fail_the_open() {
        if let Some(base) = std::env::var_os(CHILD_BASE) {
            check_unreadable_parents(Path::new(&base));
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let (existing, creating) = (base.path().join("existing"), base.path().join("creating"));
        fs::create_dir(&existing).unwrap();
        fs::create_dir(&creating).unwrap();
        let Opened { log, .. } = Log::open(existing.join("log"), Options::default()).unwrap();
        log.mark_running(Run::new("a", "s", Generation(1), UnixMs(1)))
            .unwrap();
        drop(log);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            set_mode(&existing, 0o311);
            set_mode(&creating, 0o311);
            check_unreadable_parents(base.path());
            set_mode(&existing, 0o700);
            set_mode(&creating, 0o700);
            return;
        }
        // As root: the case of the report, a parent of mode 0711 owned by root, with a log
        // directory owned by the user who opens it; and a parent that user may write but not read.
        let log_dir = existing.join("log");
        for path in std::iter::once(log_dir.clone())
            .chain(fs::read_dir(&log_dir).unwrap().map(|e| e.unwrap().path()))
        {
            std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        set_mode(base.path(), 0o711);
        set_mode(&existing, 0o711);
        set_mode(&creating, 0o733);
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "unreadable_parents::a_real_parent_that_may_not_be_read_does_not_fail_the_open",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_BASE, base.path())
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("run the test again as nobody");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && text.contains("1 passed"),
            "as nobody: {text}"
        );
    }
}
