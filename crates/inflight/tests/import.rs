//! Importing runs into a new log: all or nothing. Every run is checked before anything is
//! written, an existing log is never touched, and a failure at any write leaves neither the
//! target directory nor the temporary one behind.

mod common;

use inflight::storage::StoreResult;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use inflight::storage::{DirLock, LockError};
use inflight::{
    Error, FsStorage, Generation, ImportReport, Log, Options, Reason, Run, Storage, StorageFile,
    UnixMs,
};

fn runs() -> Vec<Run> {
    vec![
        Run::new(
            "agent:main:telegram:dm:4242",
            "20261126_104512_9f1c2ab0",
            Generation(1),
            UnixMs(1_764_150_000_123),
        ),
        Run::new(
            "agent:main:http:c-5",
            "20261126_2",
            Generation(1),
            UnixMs(1_764_150_001_000),
        ),
        Run::new(
            "agent:main:discord:thread:77",
            "s3",
            Generation(1),
            UnixMs(0),
        ),
    ]
}

/// The parent holds nothing but what an import left: no `*.import-tmp`, and `dir` only if
/// `expect_dir`.
fn assert_only(parent: &Path, expected: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, expected);
}

#[test]
fn imported_runs_are_running_after_open_with_their_session_generation_and_start() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let report = inflight::import::import_runs(&dir, runs(), Options::default()).unwrap();
    assert_eq!(
        report,
        ImportReport {
            dir: dir.clone(),
            imported: 3
        }
    );
    assert_only(parent.path(), &["log"]);

    let opened = Log::open(&dir, Options::default()).unwrap();
    let mut expected = runs();
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    let recovered: Vec<Run> = opened
        .report
        .running
        .iter()
        .map(|r| r.run.clone())
        .collect();
    assert_eq!(recovered, expected);
    assert!(
        opened
            .report
            .running
            .iter()
            .all(|r| r.reason == Reason::Crash)
    );
    // The imported generations are the keys' high-water marks: the next run is generation 2.
    let next = opened
        .log
        .begin_run("agent:main:http:c-5", "s", None)
        .unwrap();
    assert_eq!(next.generation, 2);
}

#[test]
fn an_empty_directory_is_a_valid_target_and_an_empty_import_a_valid_log() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    assert_eq!(
        inflight::import::import_runs(&dir, [], Options::default())
            .unwrap()
            .imported,
        0
    );
    let recovered = inflight::inspect::read_only(&dir, inflight::Policy::Strict).unwrap();
    assert!(recovered.report.running.is_empty());
    assert_only(parent.path(), &["log"]);
}

#[test]
fn invalid_or_duplicate_runs_are_refused_before_anything_is_written() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let too_long = "k".repeat(inflight::limits::KEY_BYTES_MAX + 1);
    let cases: Vec<(Vec<Run>, &str)> = vec![
        (
            // The bad run last, so that a check made while writing would come too late.
            [
                runs(),
                vec![Run::new(too_long, "s", Generation(1), UnixMs(1))],
            ]
            .concat(),
            "over the limit",
        ),
        (
            [
                runs(),
                vec![Run::new(
                    "agent:main:http:c-5",
                    "other",
                    Generation(1),
                    UnixMs(1),
                )],
            ]
            .concat(),
            "given twice",
        ),
        (
            vec![Run::new("", "s", Generation(1), UnixMs(1))],
            "must not be empty",
        ),
    ];
    for (runs, reason) in cases {
        let e = inflight::import::import_runs(&dir, runs, Options::default()).unwrap_err();
        assert!(
            matches!(e, Error::InvalidInput { .. }) && e.to_string().contains(reason),
            "{e}"
        );
        assert_only(parent.path(), &[]);
    }
}

#[test]
fn a_directory_holding_a_log_or_other_files_is_refused_and_untouched() {
    let (dir, bytes) = common::log_with_runs(&["a", "b"], "");
    let e = inflight::import::import_runs(dir.path(), runs(), Options::default()).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { log: true, .. }), "{e}");
    assert!(
        e.to_string().contains("already holds an inflight log"),
        "{e}"
    );
    assert_eq!(
        common::data(&std::fs::read(common::segment(dir.path(), 1)).unwrap()),
        bytes
    );
    let report = inflight::inspect::read_only(dir.path(), inflight::Policy::Strict)
        .unwrap()
        .report;
    assert_eq!(common::running(&report), [("a".into(), 1), ("b".into(), 1)]);

    let parent = tempfile::tempdir().unwrap();
    let other = parent.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep").unwrap();
    let e = inflight::import::import_runs(&other, runs(), Options::default()).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { log: false, .. }), "{e}");
    assert_eq!(
        std::fs::read_to_string(other.join("notes.txt")).unwrap(),
        "keep"
    );
    assert_only(parent.path(), &["other"]);

    let file = parent.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let e = inflight::import::import_runs(&file, runs(), Options::default()).unwrap_err();
    assert!(matches!(e, Error::NotADirectory { .. }), "{e}");
}

#[test]
fn the_directory_of_an_interrupted_import_is_replaced() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let tmp = parent.path().join("log.import-tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(tmp.join("00000000000000000001.log"), b"half a log").unwrap();
    inflight::import::import_runs(&dir, runs(), Options::default()).unwrap();
    assert_only(parent.path(), &["log"]);
    let report = inflight::inspect::read_only(&dir, inflight::Policy::Strict)
        .unwrap()
        .report;
    assert_eq!(report.running.len(), 3);
}

/// The real file system, with the `n`th write, sync or rename (counting from 1) failing with
/// `EIO`; `n = 0` fails nothing and counts them.
#[derive(Debug)]
struct FailingAt {
    ops: AtomicU64,
    fail_at: u64,
}

impl FailingAt {
    fn new(fail_at: u64) -> Arc<FailingAt> {
        Arc::new(FailingAt {
            ops: AtomicU64::new(0),
            fail_at,
        })
    }

    fn step(&self, what: &str) -> io::Result<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at {
            return Err(io::Error::other(format!("injected failure of {what}")));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct FailingFile {
    file: Box<dyn StorageFile>,
    faults: Arc<FailingAt>,
}

impl StorageFile for FailingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> StoreResult<usize> {
        self.file.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> StoreResult<usize> {
        self.faults.step("write")?;
        self.file.write_at(buf, offset)
    }
    fn len(&self) -> StoreResult<u64> {
        self.file.len()
    }
    fn set_len(&self, len: u64) -> StoreResult<()> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> StoreResult<()> {
        self.faults.step("sync")?;
        self.file.sync_data()
    }
    fn sync_all(&self) -> StoreResult<()> {
        self.faults.step("sync")?;
        self.file.sync_all()
    }
}

#[derive(Debug)]
struct Failing(Arc<FailingAt>);

impl Storage for Failing {
    fn create_dir_all(&self, dir: &Path) -> StoreResult<()> {
        FsStorage::default().create_dir_all(dir)
    }
    fn is_dir(&self, dir: &Path) -> StoreResult<bool> {
        FsStorage::default().is_dir(dir)
    }
    fn list(&self, dir: &Path) -> StoreResult<Vec<String>> {
        FsStorage::default().list(dir)
    }
    fn create(&self, path: &Path) -> StoreResult<Box<dyn StorageFile>> {
        let file = FsStorage::default().create(path)?;
        Ok(Box::new(FailingFile {
            file,
            faults: self.0.clone(),
        }))
    }
    fn open(&self, path: &Path, write: bool) -> StoreResult<Box<dyn StorageFile>> {
        let file = FsStorage::default().open(path, write)?;
        Ok(Box::new(FailingFile {
            file,
            faults: self.0.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> StoreResult<()> {
        self.0.step("rename")?;
        FsStorage::default().rename(from, to)
    }
    fn remove(&self, path: &Path) -> StoreResult<()> {
        FsStorage::default().remove(path)
    }
    fn remove_dir(&self, dir: &Path) -> StoreResult<()> {
        FsStorage::default().remove_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> StoreResult<()> {
        self.0.step("directory sync")?;
        FsStorage::default().sync_dir(dir)
    }
    fn lock(&self, dir: &Path) -> Result<DirLock, LockError> {
        FsStorage::default().lock(dir)
    }
}

fn import_failing_at(
    parent: &Path,
    fail_at: u64,
) -> (PathBuf, inflight::Result<ImportReport>, u64) {
    let dir = parent.join("log");
    let faults = FailingAt::new(fail_at);
    let result = inflight::import::import_runs_with_storage(
        Arc::new(Failing(faults.clone())),
        &dir,
        runs(),
        Options::default(),
    );
    (dir, result, faults.ops.load(Ordering::SeqCst))
}

/// Every write, sync and rename of an import fails in turn: each failure before the rename
/// leaves nothing (no log, no temporary directory), and the import succeeds only complete.
#[test]
fn a_failure_at_any_step_before_the_rename_leaves_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let (_, result, steps) = import_failing_at(parent.path(), 0);
    result.unwrap();
    // At least one write and one sync per run, and the rename.
    assert!(steps > 2 * runs().len() as u64, "{steps} steps");

    // The last step is the sync of the parent after the rename: the log is in place then.
    for fail_at in 1..steps {
        let parent = tempfile::tempdir().unwrap();
        let (dir, result, _) = import_failing_at(parent.path(), fail_at);
        let e = result.unwrap_err();
        assert!(
            e.to_string().contains("injected failure"),
            "step {fail_at}: {e}"
        );
        assert_only(parent.path(), &[]);
        // And a retry on the real file system then succeeds.
        inflight::import::import_runs(&dir, runs(), Options::default()).unwrap();
        assert_eq!(
            inflight::inspect::read_only(&dir, inflight::Policy::Strict)
                .unwrap()
                .report
                .running
                .len(),
            3
        );
    }

    let parent = tempfile::tempdir().unwrap();
    let (dir, result, _) = import_failing_at(parent.path(), steps);
    let e = result.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Io {
                op: "sync directory",
                ..
            }
        ),
        "{e}"
    );
    // The rename happened: the log is complete in place, only the parent's sync failed.
    assert_only(parent.path(), &["log"]);
    let report = inflight::inspect::read_only(&dir, inflight::Policy::Strict)
        .unwrap()
        .report;
    assert_eq!(report.running.len(), 3);
}

#[test]
fn an_import_started_while_another_holds_the_lock_is_locked_and_changes_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let tmp = parent.path().join("log.import-tmp");
    std::fs::create_dir(&tmp).unwrap();
    let held = FsStorage::default().lock(&tmp).unwrap();
    let e = inflight::import::import_runs(&dir, runs(), Options::default()).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert!(!dir.exists());
    drop(held);
    // Once the other import is gone (it died: its directory holds no live lock), this one
    // takes the directory over.
    inflight::import::import_runs(&dir, runs(), Options::default()).unwrap();
    assert_only(parent.path(), &["log"]);
}

/// Finding: two gateways starting at once on an old JSON file both failed (a rename of the
/// temporary directory the other had removed), or one failed on the import's lock with a
/// storage error. Now exactly one imports; the other is refused with `Locked` (an import is
/// under way) or `AlreadyExists` (it finished), and the log holds the runs once.
#[test]
fn of_two_imports_started_at_once_exactly_one_imports() {
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for _ in 0..40 {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("log");
        let barrier = std::sync::Barrier::new(2);
        let results: Vec<inflight::Result<ImportReport>> = std::thread::scope(|s| {
            let importers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        inflight::import::import_runs(&dir, runs(), Options::default())
                    })
                })
                .collect();
            importers.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "{results:?}");
        for r in &results {
            let name = match r {
                Ok(_) => "imported",
                Err(Error::Locked { .. }) => "locked",
                Err(Error::AlreadyExists { log: true, .. }) => "already-exists",
                Err(e) => panic!("the second import failed otherwise: {e}"),
            };
            *outcomes.entry(name).or_default() += 1;
        }
        assert_only(parent.path(), &["log"]);
        let report = inflight::inspect::read_only(&dir, inflight::Policy::Strict)
            .unwrap()
            .report;
        assert_eq!(report.running.len(), 3);
        assert_eq!(report.counters.started, 3, "the runs once");
    }
    assert_eq!(outcomes["imported"], 40, "{outcomes:?}");
}
