//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use inflight::storage::{DirLock, LockError, StoreError, StoreResult};
use inflight::{FsStorage, Log, Options, RecoveryReport, Run, Storage, StorageFile};
use inflight::{Generation, UnixMs};

/// A run of `key` with `generation`, started at `generation` ms.
pub fn run(key: &str, generation: u64) -> Run {
    Run::new(
        key,
        format!("{key}-s{generation}"),
        Generation(generation),
        UnixMs(generation.saturating_add(1_000)),
    )
}

/// Options with the smallest segments, so that tests cross rollovers with few records.
pub fn small_segments() -> Options {
    Options::default().segment_bytes_max(inflight::limits::SEGMENT_BYTES_MIN)
}

/// Opens the log with default options, panicking on error.
pub fn open(dir: &Path) -> (Log, RecoveryReport) {
    let opened = Log::open(dir, Options::default()).expect("open log");
    (opened.log, opened.report)
}

/// A fresh log directory holding one started run (generation 1) per key, with `meta` on each,
/// and the bytes of its only segment.
pub fn log_with_runs(keys: &[&str], meta: &str) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for key in keys {
        log.mark_running(run(key, 1).with_meta(meta)).unwrap();
    }
    drop(log);
    let bytes = data(&std::fs::read(segment(dir.path(), 1)).unwrap()).to_vec();
    (dir, bytes)
}

/// A segment's bytes up to its reserved space (the run of
/// [`RESERVED_BYTE`](inflight::frame::RESERVED_BYTE) the writer fills ahead of its records).
/// Tests that damage the end of a segment's data write it back without the reserved space: a
/// valid segment too.
pub fn data(bytes: &[u8]) -> &[u8] {
    let end = inflight::frame::reserved_start(bytes).max(inflight::frame::SEGMENT_HEADER_BYTES);
    &bytes[..end.min(bytes.len())]
}

/// The path of segment `n` in `dir`.
pub fn segment(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.log"))
}

/// Keys and generations of the report's running runs, in key order.
pub fn running(report: &RecoveryReport) -> Vec<(String, u64)> {
    report
        .running
        .iter()
        .map(|r| (r.run.key.clone(), r.run.generation))
        .collect()
}

/// Keys and generations of the log's live running set, in key order.
pub fn live(log: &Log) -> Vec<(String, u64)> {
    log.running()
        .into_iter()
        .map(|e| (e.run.key, e.run.generation))
        .collect()
}

/// Byte offsets at which each frame of a single-segment log starts (up to its reserved space).
pub fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let bytes = data(bytes);
    let mut offsets = Vec::new();
    let mut pos = inflight::frame::SEGMENT_HEADER_BYTES;
    while pos + inflight::frame::FRAME_HEADER_BYTES <= bytes.len() {
        offsets.push(pos);
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += inflight::frame::FRAME_HEADER_BYTES + len;
    }
    offsets
}

/// Records a crash-test tier's figures: printed, and written to
/// `target/tmp/crashtest-TIER.txt` so that CI can show them after a passing run.
pub fn report_tier(tier: &str, line: &str) {
    eprintln!("{line}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crashtest-{tier}.txt"));
    std::fs::write(&path, format!("{line}\n")).expect("write the tier's summary");
}

/// What one simulated power loss did, read from its trace entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashFigures {
    /// Pending writes that persisted whole.
    pub writes_kept: u64,
    /// Pending writes that persisted in part (F2).
    pub writes_torn: u64,
    /// Pending writes that vanished (F1).
    pub writes_lost: u64,
    /// Pending writes whose length persisted without their data (F3).
    pub writes_grown: u64,
    /// Pending directory operations that persisted (F5).
    pub dir_ops_kept: u64,
    /// Pending directory operations that vanished (F5).
    pub dir_ops_lost: u64,
}

/// Parses the detail of a crash entry of the simulator's trace ("WHAT: writes kept A torn B
/// lost C grown D; set_len kept E lost F; dir ops kept G lost H"). Panics if the entry is not a
/// crash or its text is not in that form, so that a change of the simulator's wording fails the
/// tests that rely on it instead of making them vacuous.
pub fn crash_figures(entry: &inflight_sim::sim::TraceEntry) -> CrashFigures {
    assert_eq!(entry.op, inflight_sim::sim::OpKind::Crash, "{entry}");
    let text = entry
        .detail
        .rsplit_once(": ")
        .map_or(entry.detail.as_str(), |(_, figures)| figures);
    let mut figures = CrashFigures::default();
    let mut seen = 0;
    for section in text.split(';') {
        let words: Vec<&str> = section.split_whitespace().collect();
        let (group, pairs) = match words.as_slice() {
            ["writes", rest @ ..] => ("writes", rest),
            ["set_len", rest @ ..] => ("set_len", rest),
            ["dir", "ops", rest @ ..] => ("dir ops", rest),
            _ => panic!("unexpected crash detail {:?}", entry.detail),
        };
        for pair in pairs.chunks(2) {
            let [name, value] = pair else {
                panic!("unexpected crash detail {:?}", entry.detail)
            };
            let value: u64 = value
                .parse()
                .unwrap_or_else(|_| panic!("unexpected crash detail {:?}", entry.detail));
            let slot = match (group, *name) {
                ("writes", "kept") => &mut figures.writes_kept,
                ("writes", "torn") => &mut figures.writes_torn,
                ("writes", "lost") => &mut figures.writes_lost,
                ("writes", "grown") => &mut figures.writes_grown,
                ("dir ops", "kept") => &mut figures.dir_ops_kept,
                ("dir ops", "lost") => &mut figures.dir_ops_lost,
                ("set_len", "kept" | "lost") => {
                    seen += 1;
                    continue;
                }
                _ => panic!("unexpected crash detail {:?}", entry.detail),
            };
            *slot = value;
            seen += 1;
        }
    }
    assert_eq!(seen, 8, "unexpected crash detail {:?}", entry.detail);
    figures
}

/// The figures of every power loss in `sim`'s trace, oldest first.
pub fn crashes(sim: &inflight_sim::sim::SimStorage) -> Vec<CrashFigures> {
    sim.trace()
        .iter()
        .filter(|e| e.op == inflight_sim::sim::OpKind::Crash)
        .map(crash_figures)
        .collect()
}

/// The calls of `sim`'s trace into which `fault` was injected.
pub fn injected(
    sim: &inflight_sim::sim::SimStorage,
    fault: inflight_sim::sim::Fault,
) -> Vec<inflight_sim::sim::TraceEntry> {
    sim.trace()
        .into_iter()
        .filter(|e| e.fault == Some(fault))
        .collect()
}

/// Every sequence of up to `events_max` symbols from `0..symbols`, the shorter ones also
/// followed by `shutdown` (a clean shutdown comes only last): the workloads of an exhaustive
/// crash-state enumeration.
pub fn workloads(symbols: usize, events_max: usize, shutdown: usize) -> Vec<Vec<usize>> {
    let mut all: Vec<Vec<usize>> = vec![vec![]];
    let mut frontier = all.clone();
    for _ in 0..events_max {
        frontier = frontier
            .iter()
            .flat_map(|w| {
                (0..symbols).map(move |s| {
                    let mut w = w.clone();
                    w.push(s);
                    w
                })
            })
            .collect();
        all.extend(frontier.iter().cloned());
    }
    let closed: Vec<Vec<usize>> = all
        .iter()
        .filter(|w| w.len() < events_max)
        .map(|w| {
            let mut w = w.clone();
            w.push(shutdown);
            w
        })
        .collect();
    all.extend(closed);
    all
}

/// What a failing call fails with, made fresh each time (a `StoreError` may hold an
/// `io::Error`, which is not `Clone`).
pub type MakeError = fn() -> StoreError;

/// The real file system, except that syncs (or writes) fail while `fail_sync` (or `fail_write`)
/// is set, with EIO (or ENOSPC); while `sync_failure` holds a maker, syncs fail with what it
/// makes, and with `lock_failure` the lock is refused so. It records the name of the thread
/// that made each sync.
#[derive(Debug, Default)]
pub struct Flaky {
    fs: FsStorage,
    pub fail_sync: Arc<AtomicBool>,
    pub fail_write: Arc<AtomicBool>,
    pub sync_failure: Arc<Mutex<Option<MakeError>>>,
    pub lock_failure: Option<MakeError>,
    pub syncs: Arc<Mutex<Vec<String>>>,
}

#[derive(Debug)]
struct FlakyFile {
    inner: Box<dyn StorageFile>,
    fail_sync: Arc<AtomicBool>,
    fail_write: Arc<AtomicBool>,
    sync_failure: Arc<Mutex<Option<MakeError>>>,
    syncs: Arc<Mutex<Vec<String>>>,
}

impl Flaky {
    fn wrap(&self, inner: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        Box::new(FlakyFile {
            inner,
            fail_sync: self.fail_sync.clone(),
            fail_write: self.fail_write.clone(),
            sync_failure: self.sync_failure.clone(),
            syncs: self.syncs.clone(),
        })
    }
}

fn eio() -> io::Error {
    // EIO on Unix, ERROR_IO_DEVICE on Windows.
    io::Error::from_raw_os_error(if cfg!(windows) { 1117 } else { 5 })
}

impl Storage for Flaky {
    fn create_dir_all(&self, dir: &Path) -> StoreResult<()> {
        self.fs.create_dir_all(dir)
    }
    fn is_dir(&self, dir: &Path) -> StoreResult<bool> {
        self.fs.is_dir(dir)
    }
    fn list(&self, dir: &Path) -> StoreResult<Vec<String>> {
        self.fs.list(dir)
    }
    fn create(&self, path: &Path) -> StoreResult<Box<dyn StorageFile>> {
        self.fs.create(path).map(|f| self.wrap(f))
    }
    fn open(&self, path: &Path, write: bool) -> StoreResult<Box<dyn StorageFile>> {
        self.fs.open(path, write).map(|f| self.wrap(f))
    }
    fn rename(&self, from: &Path, to: &Path) -> StoreResult<()> {
        self.fs.rename(from, to)
    }
    fn remove(&self, path: &Path) -> StoreResult<()> {
        self.fs.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> StoreResult<()> {
        self.fs.sync_dir(dir)
    }
    fn lock(&self, dir: &Path) -> Result<DirLock, LockError> {
        match self.lock_failure {
            Some(make) => Err(LockError::Io(make())),
            None => self.fs.lock(dir),
        }
    }
}

impl StorageFile for FlakyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> StoreResult<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> StoreResult<usize> {
        if self.fail_write.load(Ordering::SeqCst) {
            // ENOSPC partway: half the bytes land, then the error.
            let half = buf.len() / 2;
            self.inner.write_at(&buf[..half], offset)?;
            // ENOSPC on Unix, ERROR_DISK_FULL on Windows: StorageFull on both.
            return Err(io::Error::from_raw_os_error(if cfg!(windows) { 112 } else { 28 }).into());
        }
        self.inner.write_at(buf, offset)
    }
    fn len(&self) -> StoreResult<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> StoreResult<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> StoreResult<()> {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        self.syncs.lock().unwrap().push(thread);
        if let Some(make) = *self.sync_failure.lock().unwrap() {
            return Err(make());
        }
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(eio().into());
        }
        self.inner.sync_data()
    }
    fn sync_all(&self) -> StoreResult<()> {
        self.sync_data()
    }
}

/// Whether a child ended by `Child::kill`: SIGKILL on Unix; `TerminateProcess` on Windows,
/// which leaves exit code 1.
#[allow(dead_code)]
pub fn killed(status: &std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(9)
    }
    #[cfg(not(unix))]
    {
        status.code() == Some(1)
    }
}
