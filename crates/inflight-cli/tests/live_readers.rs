//! Readers on a live log are exact: `verify`, `stats`, `dump` and `replay`, through the very
//! library calls the command line makes, in a loop beside a gateway that appends, rolls its
//! small segments over and compacts every few dozen kilobytes. No reading may fail and none may
//! find damage: a file removed or replaced under a reading is followed to what replaced it (the
//! reading starts over), never reported. The figures (rounds, compactions, rollovers, readings
//! started over) are printed, and the ones that show the readers really raced the writer are
//! asserted. `INFLIGHT_LIVE_ROUNDS` raises the rounds of each tool (1000 by default).
//!
//! Then the binary itself beside a writer; the other side of the promise (damage that holds
//! still is reported exactly, while the writer goes on; a torn tail that stays is a torn tail;
//! a log that never holds still is a typed error); and a fleet's log in the database.

mod common;

use inflight::storage::StoreResult;
use inflight::store::{FileSource, LogSource};
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inflight::inspect::stats::Stats;
use inflight::inspect::verify::{Verdict, Verification};
use inflight::inspect::{Item, Reader, walk};
use inflight::limits::{READ_ATTEMPTS_MAX, SEGMENT_BYTES_MIN};
use inflight::storage::{DirLock, LockError};
use inflight::{FsStorage, Log, Options, Policy, Storage, StorageFile};

/// Rounds of each tool, unless `INFLIGHT_LIVE_ROUNDS` asks for more.
const ROUNDS_DEFAULT: u64 = 1000;

/// The writer's compaction threshold: a few dozen kilobytes of segments (or twice the last
/// snapshot, which grows with the keys' marks), so that compactions come every few rounds.
const COMPACT_AFTER_BYTES: u64 = 32 * 1024;

fn rounds() -> u64 {
    std::env::var("INFLIGHT_LIVE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .map_or(ROUNDS_DEFAULT, |r: u64| r.max(ROUNDS_DEFAULT))
}

/// A gateway at work: threads beginning and completing runs on a few hundred keys as fast as
/// the disk syncs them (group commit), in 12 KiB segments, compacting in the background.
struct Gateway {
    dir: tempfile::TempDir,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<u64>>,
}

impl Gateway {
    fn start(threads: usize) -> Gateway {
        Gateway::start_with(threads, Some(COMPACT_AFTER_BYTES))
    }

    /// With `compact_after_bytes` (`None`: the writer never compacts, only rolls over).
    fn start_with(threads: usize, compact_after_bytes: Option<u64>) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default()
            .segment_bytes_max(SEGMENT_BYTES_MIN)
            .compact_after_bytes(compact_after_bytes);
        let log = Arc::new(Log::open(dir.path(), options).unwrap().log);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = spawn_writers(&log, &stop, threads);
        let gateway = Gateway {
            dir,
            log,
            stop,
            threads,
        };
        // Under way before the readers start: a snapshot and several segments behind it, or
        // several segments.
        let began = Instant::now();
        while (compact_after_bytes.is_some() && gateway.log.compactions() < 2)
            || gateway.newest_segment() < 4
        {
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "the writer is stuck"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        gateway
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The newest segment's number: how many rollovers happened between two looks.
    fn newest_segment(&self) -> u64 {
        std::fs::read_dir(self.path())
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse().ok()
            })
            .max()
            .unwrap_or(0)
    }

    /// Stops the writers; returns the runs they began.
    fn stop(self) -> (u64, tempfile::TempDir, Arc<Log>) {
        self.stop.store(true, Ordering::Relaxed);
        let runs = self.threads.into_iter().map(|t| t.join().unwrap()).sum();
        self.log.wait_for_compaction();
        (runs, self.dir, self.log)
    }
}

/// Threads beginning and completing runs on `log` until `stop`, each on its 40 keys; each
/// returns how many runs it began.
fn spawn_writers(log: &Arc<Log>, stop: &Arc<AtomicBool>, threads: usize) -> Vec<JoinHandle<u64>> {
    (0..threads)
        .map(|t| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut runs = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("agent:main:telegram:dm:{t}-{}", runs % 40);
                    let meta = format!("{{\"message_id\":{runs}}}");
                    let run = log.begin_run(&key, "20261126_104512", Some(meta)).unwrap();
                    // Every third run is left in flight until the key's next one.
                    if !runs.is_multiple_of(3) {
                        log.mark_completed(&run.key, run.generation).unwrap();
                    }
                    runs += 1;
                }
                runs
            })
        })
        .collect()
}

/// What one tool did over its rounds.
#[derive(Debug, Default)]
struct Tally {
    rounds: u64,
    restarts: u64,
    /// Rounds whose reading started over at least once.
    rounds_restarted: u64,
    failures: Vec<String>,
    /// The last record each round read: never going back.
    last_seq: u64,
}

impl Tally {
    fn round(&mut self, restarts: u32, last_seq: u64, failure: Option<String>) {
        self.rounds += 1;
        self.restarts += u64::from(restarts);
        self.rounds_restarted += u64::from(restarts > 0);
        if last_seq < self.last_seq {
            self.failures.push(format!(
                "round {}: read up to record {last_seq} after a round read up to {}",
                self.rounds, self.last_seq
            ));
        }
        self.last_seq = last_seq;
        if let Some(failure) = failure {
            self.failures
                .push(format!("round {}: {failure}", self.rounds));
        }
    }
}

/// `inflight verify`: the verification of a settled reading, clean.
fn verify_round(source: &dyn LogSource, tally: &mut Tally) {
    let mut reader = Reader::new(source);
    let read = reader.read_settled(Verification::new, |v, item: &Item<'_>| {
        v.add(item);
        ControlFlow::Continue(())
    });
    match read {
        Err(e) => tally.round(0, tally.last_seq, Some(format!("verify failed: {e}"))),
        Ok(v) => {
            let walked = reader.finish();
            let failure = (v.verdict() != Verdict::Clean)
                .then(|| format!("verify found {:?}: {:?}", v.verdict(), v.findings));
            tally.round(walked.restarts, v.last_seq, failure);
        }
    }
}

/// `inflight stats`: the figures of a settled reading, with no damage and no torn tail.
fn stats_round(source: &dyn LogSource, tally: &mut Tally) {
    let mut reader = Reader::new(source);
    let read = reader.read_settled(Stats::new, |stats, item: &Item<'_>| {
        stats.add(item);
        ControlFlow::Continue(())
    });
    match read {
        Err(e) => tally.round(0, tally.last_seq, Some(format!("stats failed: {e}"))),
        Ok(stats) => {
            let walked = reader.finish();
            let failure = (stats.damaged_regions > 0 || stats.torn_tail_bytes > 0).then(|| {
                format!(
                    "stats counted {} damaged region(s) and a torn tail of {} bytes: {:?}",
                    stats.damaged_regions, stats.torn_tail_bytes, walked.corruption
                )
            });
            tally.round(walked.restarts, walked.last_seq, failure);
        }
    }
}

/// `inflight dump`: every item of a settled reading, held until the reading held still (the
/// command line holds the lines it prints), with no damage among them and a clean end.
fn dump_round(source: &dyn LogSource, tally: &mut Tally) {
    let mut reader = Reader::new(source);
    let read = reader.read_settled(Vec::new, |lines: &mut Vec<String>, item: &Item<'_>| {
        let bad = match item {
            Item::Damage(d) => Some(format!("damage: {:?}", d.region)),
            Item::End(end) => end.torn_tail.map(|t| format!("a torn tail: {t:?}")),
            _ => None,
        };
        lines.push(bad.unwrap_or_else(|| format!("{item:?}")));
        ControlFlow::Continue(())
    });
    match read {
        Err(e) => tally.round(0, tally.last_seq, Some(format!("dump failed: {e}"))),
        Ok(lines) => {
            let walked = reader.finish();
            let bad: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("damage") || l.starts_with("a torn tail"))
                .collect();
            let failure = (!bad.is_empty()).then(|| format!("dump printed {bad:?}"));
            tally.round(walked.restarts, walked.last_seq, failure);
        }
    }
}

/// `inflight replay`: the read-only replay, strict (damage is an error), with nothing torn.
fn replay_round(source: &dyn LogSource, tally: &mut Tally) {
    match inflight::inspect::read_only_from(source, Policy::Strict) {
        Err(e) => tally.round(0, tally.last_seq, Some(format!("replay failed: {e}"))),
        Ok(recovered) => {
            let report = &recovered.report;
            let failure = (report.torn_tail.is_some()
                || !report.corruption.is_empty()
                || !report.gaps_before_snapshot.is_empty())
            .then(|| format!("replay reported damage: {report:?}"));
            tally.round(recovered.restarts, report.last_seq, failure);
        }
    }
}

type Round = fn(&dyn LogSource, &mut Tally);

const TOOLS: [(&str, Round); 4] = [
    ("verify", verify_round),
    ("stats", stats_round),
    ("dump", dump_round),
    ("replay", replay_round),
];

#[test]
fn verify_stats_dump_and_replay_are_exact_beside_a_compacting_writer() {
    let rounds = rounds();
    let gateway = Gateway::start(6);
    let dir: PathBuf = gateway.path().to_path_buf();
    let (compactions_before, segment_before) =
        (gateway.log.compactions(), gateway.newest_segment());
    let began = Instant::now();
    let readers: Vec<JoinHandle<(&str, Tally)>> = TOOLS
        .iter()
        .map(|&(name, round)| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut tally = Tally::default();
                let source = FileSource::at(&dir);
                for _ in 0..rounds {
                    round(&source, &mut tally);
                }
                (name, tally)
            })
        })
        .collect();
    let tallies: Vec<(&str, Tally)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let seconds = began.elapsed().as_secs_f64();
    let compactions = gateway.log.compactions() - compactions_before;
    let rollovers = gateway.newest_segment() - segment_before;
    let (runs, dir, log) = gateway.stop();

    let restarts: u64 = tallies.iter().map(|(_, t)| t.restarts).sum();
    eprintln!(
        "live readers: {rounds} rounds of each tool in {seconds:.1} s beside a writer that began \
         {runs} runs: {compactions} compactions and {rollovers} segment rollovers during the \
         rounds, {restarts} readings started over"
    );
    for (name, t) in &tallies {
        eprintln!(
            "  {name:<6} {} rounds, {} of them started over ({} restarts in all), {} failures, \
             last record read {}",
            t.rounds,
            t.rounds_restarted,
            t.restarts,
            t.failures.len(),
            t.last_seq
        );
    }
    for (name, t) in &tallies {
        assert!(
            t.failures.is_empty(),
            "{name}: {} of {} rounds failed; the first: {}",
            t.failures.len(),
            t.rounds,
            t.failures.first().map_or("", String::as_str)
        );
        assert_eq!(t.rounds, rounds);
    }
    assert!(compactions > 0, "no compaction ran during the rounds");
    assert!(rollovers > 0, "no segment rolled over during the rounds");
    assert!(
        restarts > 0,
        "no reading had to start over: the readers never raced a compaction"
    );

    // Quiet now: every tool reads what the gateway held, at once.
    let quiet = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
    assert_eq!(quiet.restarts, 0);
    let live: Vec<_> = log.running();
    let replayed: Vec<_> = quiet.set.entries().cloned().collect();
    assert_eq!(replayed, live, "the replayed state is the gateway's");
}

/// Runs `inflight ARGS` to its end. A start the platform refuses is tried again, twice, after a
/// pause (Wine's process creation has failed here under load with "Internal error", before the
/// tool ran): what the callers check is how the tool exits, not whether a process can start.
fn run_tool(args: &[&str]) -> std::process::Output {
    let mut attempt = 0;
    loop {
        match Command::new(env!("CARGO_BIN_EXE_inflight"))
            .args(args)
            .output()
        {
            Ok(out) => return out,
            Err(e) if attempt < 2 => {
                eprintln!("inflight {args:?} could not be started ({e}); trying again");
                attempt += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("inflight {args:?} could not be started: {e}"),
        }
    }
}

/// The command line itself, beside the same writer: every tool exits 0, every time.
#[test]
fn the_command_line_tools_exit_0_beside_a_compacting_writer() {
    const ROUNDS: usize = 50;
    let gateway = Gateway::start(4);
    let dir = gateway.path().to_str().unwrap().to_string();
    let commands: [&[&str]; 4] = [
        &["verify", &dir],
        &["stats", &dir, "--json"],
        &["dump", &dir, "--json"],
        &["replay", &dir, "--json", "--strict"],
    ];
    let (compactions_before, segment_before) =
        (gateway.log.compactions(), gateway.newest_segment());
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        for args in commands {
            let out = run_tool(args);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let damage = args[0] == "dump"
                && stdout.lines().any(|l| {
                    l.contains(r#""item":"damage""#)
                        || (l.contains(r#""item":"end""#) && !l.contains(r#""torn_tail":null"#))
                });
            if out.status.code() != Some(0) || damage {
                failures.push(format!(
                    "round {round}: inflight {} exited {:?}: {}{}",
                    args[0],
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr),
                    if damage { "(dump printed damage)" } else { "" }
                ));
            }
        }
    }
    let compactions = gateway.log.compactions() - compactions_before;
    let rollovers = gateway.newest_segment() - segment_before;
    let (runs, _dir, _log) = gateway.stop();
    eprintln!(
        "command line beside a writer: {ROUNDS} rounds of verify, stats, dump and replay, \
         {compactions} compactions and {rollovers} rollovers meanwhile, {runs} runs begun, \
         {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        compactions > 0 && rollovers > 0,
        "the writer did not compact"
    );
}

/// The findings of one settled `verify` reading, and how many readings started over.
fn verify_settled(storage: &dyn Storage, dir: &Path) -> inflight::Result<(Verification, u32)> {
    let mut reader = Reader::new(FileSource::new(storage, dir));
    let verification = reader.read_settled(Verification::new, |v, item: &Item<'_>| {
        v.add(item);
        ControlFlow::Continue(())
    })?;
    Ok((verification, reader.finish().restarts))
}

/// Real damage is reported exactly, live or quiet: a damaged record in a sealed segment, while
/// the writer goes on appending and rolling over (no compaction removes the segment), is the
/// same finding at every reading, at its file and offset, as in the quiet log afterwards and
/// as a single reading reports it.
#[test]
fn damage_in_a_segment_that_holds_still_is_reported_while_the_writer_goes_on() {
    let gateway = Gateway::start_with(2, None);
    let dir = gateway.path().to_path_buf();
    let damaged = dir.join(format!("{:020}.log", 2));
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[4096] ^= 0x40; // inside a record in the middle of a sealed segment
    std::fs::write(&damaged, &bytes).unwrap();
    let storage = FsStorage { mmap: true };
    let mut seen = Vec::new();
    for _ in 0..50 {
        let (verification, _) = verify_settled(&storage, &dir).unwrap();
        assert_eq!(verification.verdict(), Verdict::Corrupt);
        seen.push(verification.findings);
    }
    let (_, dir, _log) = gateway.stop();
    let (quiet, restarts) = verify_settled(&storage, dir.path()).unwrap();
    assert_eq!(restarts, 0, "nothing changed under the reading");
    assert_eq!(quiet.findings.len(), 1, "{:?}", quiet.findings);
    let finding = &quiet.findings[0];
    assert_eq!(finding.file, format!("{:020}.log", 2));
    assert!(
        finding.start_offset <= 4096 && 4096 < finding.end_offset,
        "{finding:?}"
    );
    let mut once = Verification::new();
    walk(&FileSource::new(&storage, dir.path()), |item| {
        once.add(item);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        once.findings, quiet.findings,
        "as a single reading finds it"
    );
    for findings in &seen {
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(
            (
                &findings[0].file,
                findings[0].start_offset,
                findings[0].end_offset
            ),
            (&finding.file, finding.start_offset, finding.end_offset)
        );
    }
}

/// A file of bytes in memory, read-only.
#[derive(Debug)]
struct Bytes(Vec<u8>);

impl StorageFile for Bytes {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> StoreResult<usize> {
        let from = (offset as usize).min(self.0.len());
        let n = buf.len().min(self.0.len() - from);
        buf[..n].copy_from_slice(&self.0[from..from + n]);
        Ok(n)
    }
    fn write_at(&self, _: &[u8], _: u64) -> StoreResult<usize> {
        Err(io::Error::from(io::ErrorKind::PermissionDenied).into())
    }
    fn len(&self) -> StoreResult<u64> {
        Ok(self.0.len() as u64)
    }
    fn set_len(&self, _: u64) -> StoreResult<()> {
        Err(io::Error::from(io::ErrorKind::PermissionDenied).into())
    }
    fn sync_data(&self) -> StoreResult<()> {
        Ok(())
    }
    fn sync_all(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// The file system, except that the first `torn` openings of `segment` see its last record
/// half written (its first 20 bytes, then the reserved space), as a reader copying the
/// segment while the writer's write is under way can; and, with `gone`, that every segment is
/// removed right after the listing, at every reading.
#[derive(Debug)]
struct Overtaken {
    inner: FsStorage,
    segment: PathBuf,
    last_record: usize,
    torn: u32,
    opened: AtomicU32,
    gone: bool,
}

impl Overtaken {
    fn new(dir: &Path, torn: u32, gone: bool) -> Overtaken {
        let mut last = None;
        walk(&FileSource::new(&FsStorage::default(), dir), |item| {
            if let Item::Event(e) = item {
                last = Some((dir.join(e.segment), e.offset));
            }
            ControlFlow::Continue(())
        })
        .unwrap();
        let (segment, offset) = last.unwrap();
        Overtaken {
            inner: FsStorage::default(),
            segment,
            last_record: offset as usize,
            torn,
            opened: AtomicU32::new(0),
            gone,
        }
    }
}

impl Storage for Overtaken {
    fn create_dir_all(&self, dir: &Path) -> StoreResult<()> {
        self.inner.create_dir_all(dir)
    }
    fn is_dir(&self, dir: &Path) -> StoreResult<bool> {
        self.inner.is_dir(dir)
    }
    fn list(&self, dir: &Path) -> StoreResult<Vec<String>> {
        self.inner.list(dir)
    }
    fn create(&self, path: &Path) -> StoreResult<Box<dyn StorageFile>> {
        self.inner.create(path)
    }
    fn open(&self, path: &Path, write: bool) -> StoreResult<Box<dyn StorageFile>> {
        if self.gone && path.extension().is_some_and(|e| e == "log") {
            return Err(io::Error::from(io::ErrorKind::NotFound).into());
        }
        if path == self.segment && self.opened.fetch_add(1, Ordering::SeqCst) < self.torn {
            let mut bytes = std::fs::read(path)?;
            bytes[self.last_record + 20..].fill(0xFF);
            return Ok(Box::new(Bytes(bytes)));
        }
        self.inner.open(path, write)
    }
    fn rename(&self, from: &Path, to: &Path) -> StoreResult<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> StoreResult<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> StoreResult<()> {
        self.inner.sync_dir(dir)
    }
    fn lock(&self, dir: &Path) -> Result<DirLock, LockError> {
        self.inner.lock(dir)
    }
}

fn a_quiet_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap().log;
    for i in 0..20 {
        let run = log.begin_run(format!("k{}", i % 3), "s", None).unwrap();
        log.mark_completed(&run.key, run.generation).unwrap();
    }
    dir
}

#[test]
fn a_record_being_written_is_waited_for_and_a_torn_tail_that_holds_still_is_reported() {
    let dir = a_quiet_log();
    // Read once, the half-written record is an incomplete last record...
    let once = Overtaken::new(dir.path(), 1, false);
    let mut verification = Verification::new();
    walk(&FileSource::new(&once, dir.path()), |item| {
        verification.add(item);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(verification.verdict(), Verdict::TornTail);
    // ...which a settled reading sees whole when it looks again: it starts over, once.
    let (verification, restarts) =
        verify_settled(&Overtaken::new(dir.path(), 1, false), dir.path()).unwrap();
    assert_eq!(
        verification.verdict(),
        Verdict::Clean,
        "{:?}",
        verification.findings
    );
    assert_eq!(restarts, 1);
    let recovered = inflight::inspect::read_only_from(
        &FileSource::new(&Overtaken::new(dir.path(), 1, false), dir.path()),
        Policy::Strict,
    )
    .unwrap();
    assert_eq!(
        (recovered.report.torn_tail.as_ref(), recovered.restarts),
        (None, 1)
    );
    // A torn tail that stays (a crash's) is reported, after looking again.
    let (verification, restarts) =
        verify_settled(&Overtaken::new(dir.path(), u32::MAX, false), dir.path()).unwrap();
    assert_eq!(verification.verdict(), Verdict::TornTail);
    assert_eq!(restarts, 0);
}

#[test]
fn a_log_that_never_holds_still_is_a_typed_error_not_damage() {
    let dir = a_quiet_log();
    let storage = Overtaken::new(dir.path(), 0, true);
    let began = Instant::now();
    let e = verify_settled(&storage, dir.path()).unwrap_err();
    assert!(
        matches!(e, inflight::Error::KeptChanging { attempts, .. } if attempts == READ_ATTEMPTS_MAX),
        "{e:?}"
    );
    assert!(e.to_string().contains("kept changing"), "{e}");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the pauses are short"
    );
    let e = inflight::inspect::read_only_from(
        &FileSource::new(&storage, dir.path()),
        Policy::SkipDamaged,
    )
    .unwrap_err();
    assert!(matches!(e, inflight::Error::KeptChanging { .. }), "{e:?}");
}

/// The same through the storage seam of a fleet's database (with `INFLIGHT_PG_URL`, as the
/// fleet tests): a gateway compacting its instance's log there every few dozen kilobytes, and
/// each tool, on a source of its own (`Fleet::source`), reading it in a loop, where a file a
/// compaction removed is missing as in a directory. Then the binary's commands against it.
#[cfg(feature = "postgres")]
#[test]
fn a_fleets_log_in_the_database_is_read_exactly_beside_a_compacting_writer() {
    const CLI_ROUNDS: usize = 25;
    let Some(url) = common::pg::url() else { return };
    let rounds = rounds();
    let instance = common::pg::instance("live-readers");
    let options = Options::default()
        .segment_bytes_max(SEGMENT_BYTES_MIN)
        .compact_after_bytes(Some(COMPACT_AFTER_BYTES));
    let log = Arc::new(
        inflight_postgres::Fleet::new(&url)
            .open(&instance, options)
            .unwrap()
            .log,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&log, &stop, 3);
    let began = Instant::now();
    while log.compactions() < 2 {
        assert!(began.elapsed() < Duration::from_secs(60), "no compaction");
        std::thread::sleep(Duration::from_millis(5));
    }
    let compactions_before = log.compactions();
    let began = Instant::now();
    let readers: Vec<JoinHandle<(&str, Tally)>> = TOOLS
        .iter()
        .map(|&(name, round)| {
            let (url, instance) = (url.clone(), instance.clone());
            std::thread::spawn(move || {
                let source = inflight_postgres::Fleet::new(&url)
                    .source(&instance)
                    .unwrap();
                let mut tally = Tally::default();
                for _ in 0..rounds {
                    round(&source, &mut tally);
                }
                (name, tally)
            })
        })
        .collect();
    let tallies: Vec<(&str, Tally)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let seconds = began.elapsed().as_secs_f64();
    let compactions_during = log.compactions() - compactions_before;

    // The command line, as a monitoring job runs it: a connection and a reading each time.
    let bin = env!("CARGO_BIN_EXE_inflight");
    let mut cli_failures = Vec::new();
    for round in 0..CLI_ROUNDS {
        for tool in ["verify", "stats", "dump", "replay"] {
            let out = Command::new(bin)
                .args([tool, "--database", &url, "--instance", &instance])
                .output()
                .unwrap();
            if out.status.code() != Some(0) {
                cli_failures.push(format!(
                    "round {round}: {tool} exited {:?}: {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    let compactions = log.compactions() - compactions_before;
    stop.store(true, Ordering::Relaxed);
    let runs: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let restarts: u64 = tallies.iter().map(|(_, t)| t.restarts).sum();
    eprintln!(
        "database: {rounds} rounds of each tool in {seconds:.1} s beside a writer that began \
         {runs} runs: {compactions_during} compactions during the rounds, {restarts} readings \
         started over; then {CLI_ROUNDS} rounds of each command ({compactions} compactions in \
         all), {} failures",
        cli_failures.len()
    );
    for (name, t) in &tallies {
        eprintln!(
            "  {name:<6} {} rounds, {} of them started over ({} restarts in all), {} failures",
            t.rounds,
            t.rounds_restarted,
            t.restarts,
            t.failures.len()
        );
    }
    for (name, t) in &tallies {
        assert!(
            t.failures.is_empty(),
            "{name}: {} of {rounds} rounds failed; the first: {}",
            t.failures.len(),
            t.failures[0]
        );
        assert_eq!(t.rounds, rounds);
    }
    assert!(cli_failures.is_empty(), "{cli_failures:#?}");
    assert!(
        compactions_during > 0,
        "no compaction ran during the rounds"
    );
    assert!(compactions > compactions_during, "none during the commands");
    assert!(
        restarts > 0,
        "no reading had to start over: the readers never raced a compaction"
    );
}
