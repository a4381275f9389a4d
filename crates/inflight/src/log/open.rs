//! Opening a log: the lock, the reading, what the open does to the end of the log, the
//! recovery record, and the report, built once.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};

use super::{FlusherState, Log, Shared, State, queue::Queue};
use crate::error::{Error, Result};
use crate::event::{Event, encode_event};
use crate::options::Options;
use crate::recovery::{RecoveryReport, Runs, replay};
use crate::storage::{DirLock, FsStorage, Storage};
use crate::store::LogStore;
use crate::store::file::FileStore;
use crate::writer::{Context, Writer};

/// An opened log and what its recovery found. `#[must_use]`: the report says which runs were in
/// flight when the log was last written, and a gateway must resume or suspend exactly those,
/// so dropping it is a choice the code has to show.
///
/// ```
/// use inflight::{Log, Opened, Options};
///
/// let dir = tempfile::tempdir()?;
/// let Opened { log, report } = Log::open(dir.path(), Options::default())?;
/// for interrupted in &report.running {
///     println!("resume {} (reason: {})", interrupted.run.key, interrupted.reason);
/// }
/// # drop(log);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "the recovery report lists the runs that were in flight: resume or suspend them"]
pub struct Opened {
    /// The open log, ready for appends.
    pub log: Log,
    /// What replay found: the interrupted runs, a torn tail cut, corruption skipped.
    pub report: RecoveryReport,
}

impl Log {
    /// Opens (creating if missing) the log in `dir` on the real file system, and replays it.
    ///
    /// A new directory gets mode 0700. The entry of the log directory in its parent is synced,
    /// even when the directory was already there (its creator may have died before syncing it);
    /// a parent this process may not read for that (`EACCES` or `EPERM`, say mode 0711 and
    /// another owner) is logged as a warning with the reason, and the open goes on.
    ///
    /// When runs were in flight, the open records itself as a recovery (a record the log writes
    /// itself), so that each run counts the consecutive recoveries that found it interrupted
    /// ([`InFlightRun::recoveries`](crate::InFlightRun::recoveries), crash-loop detection); the report includes it.
    ///
    /// A read-write open writes: it makes a synced copy of the last segment (see
    /// [`Options::segment_bytes_max`]), so it needs that much free space. On a full disk it fails
    /// with an [`Error::Io`] whose source is of kind [`std::io::ErrorKind::StorageFull`] and
    /// whose message says so; [`inspect::read_only`](crate::inspect::read_only) writes nothing and still reports what was in
    /// flight.
    ///
    /// ```
    /// use inflight::{Generation, Log, Opened, Options, Run, UnixMs};
    /// let dir = tempfile::tempdir()?;
    /// let Opened { log, report } = Log::open(dir.path(), Options::default())?;
    /// assert!(report.running.is_empty());
    /// log.mark_running(Run::new("agent:main:telegram:dm:4242", "20261126_104512_9f1c2ab0", Generation(1), UnixMs(1_764_150_000_000)))?;
    /// drop(log); // a crash: no clean shutdown recorded
    ///
    /// let Opened { log, report } = Log::open(dir.path(), Options::default())?;
    /// assert_eq!(report.running.len(), 1); // the run to resume
    /// log.mark_completed("agent:main:telegram:dm:4242", 1)?;
    /// log.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Opened> {
        Log::open_with_storage(Arc::new(FsStorage::default()), dir, options)
    }

    /// Opens the log in `dir` through `storage`: takes the directory's lock, replays, cuts a torn
    /// tail (and syncs the cut) and prepares the segment the next append goes to.
    pub fn open_with_storage(
        storage: Arc<dyn Storage>,
        dir: impl AsRef<Path>,
        options: Options,
    ) -> Result<Opened> {
        let store = FileStore::new(storage, dir.as_ref(), options.segment_bytes_max);
        Log::open_in(Arc::new(store), options)
    }

    /// Opens the log `store` holds: takes its lock, replays, cuts a torn tail and prepares the
    /// segment the next append goes to, as [`Log::open`] does in a directory. For a log kept
    /// in a store of its own (`inflight_postgres::Fleet::open` is this call over a database).
    pub fn open_in(store: Arc<dyn LogStore>, options: Options) -> Result<Opened> {
        let span = tracing::info_span!(
            "open",
            dir = %store.place().display(),
            records = tracing::field::Empty,
            running = tracing::field::Empty,
            clean_shutdown = tracing::field::Empty,
        )
        .entered();
        let opened = Log::open_read_write(store, options).map_err(Error::at_open)?;
        span.record("records", opened.report.records);
        span.record("running", opened.report.running.len());
        span.record("clean_shutdown", opened.report.clean_shutdown);
        Ok(opened)
    }

    /// The steps of a read-write open: the place and its lock, the reading, the end of the
    /// log, the recovery record, the report, the handle.
    fn open_read_write(store: Arc<dyn LogStore>, options: Options) -> Result<Opened> {
        options.validate()?;
        let dir = store.place().to_path_buf();
        let (lock, names) = store.acquire()?;
        let replayed = replay(&*store, &names, options.policy, None, &mut |_, _| {})?;
        let context = Context {
            store: store.clone(),
            environment: options.environment.clone(),
            segment_bytes_max: options.segment_bytes_max,
            prepare_segments: options.prepare_segments,
        };
        let found = replayed.found;
        let coverage = found.coverage_since_ms;
        let (mut writer, resumed) =
            Writer::resume(context, replayed.end, found.next_seq, coverage)?;
        let mut set = replayed.set;
        let mut runs = Runs::of(&set);
        if options.record_recovery && !set.is_empty() {
            // Runs were in flight: this open is a recovery, and each run a crash interrupted
            // counts one more (crash-loop detection). Durable before the report says so.
            let event = Event::Recovered {
                at_ms: options.environment.now_ms(),
            };
            writer.append(&encode_event(&event))?;
            set.apply(&event);
            runs = runs.recovered(&set);
        }
        // The segments after the snapshot count toward the next compaction, so a gateway that
        // restarts often still compacts.
        let bytes_since_cut = found.segment_bytes;
        let report = RecoveryReport::of(
            found,
            runs,
            set.counters(),
            resumed.cut,
            Some(resumed.coverage_since_ms),
            options.thresholds(),
        );
        log_report(&dir, &report);
        let state = State {
            set,
            queue: Queue::new(1),
            failure: None,
            bytes_since_cut,
            snapshot_bytes: report.snapshot.as_ref().map_or(0, |s| s.bytes),
            room_waiters: 0,
            flusher: FlusherState::default(),
            figures: crate::metrics::Figures::at_open(&report),
        };
        let log = Log::with_state(store, dir, options, writer, state, lock);
        Ok(Opened { log, report })
    }

    /// The handle over an opened log's state.
    fn with_state(
        store: Arc<dyn LogStore>,
        dir: std::path::PathBuf,
        options: Options,
        writer: Writer,
        state: State,
        lock: DirLock,
    ) -> Log {
        let thresholds = options.thresholds();
        let shared = Shared {
            dir,
            store,
            environment: options.environment,
            policy: options.policy,
            retention_ms: options.retention_ms,
            compact_after_bytes: options.compact_after_bytes,
            record_stale_starts: options.record_stale_starts,
            thresholds,
            state: Mutex::new(state),
            flusher_wanted: Condvar::new(),
            committed: Condvar::new(),
            writer: Mutex::new(writer),
            compaction: Mutex::new(()),
            background_busy: AtomicBool::new(false),
            _lock: lock,
        };
        Log {
            shared: Arc::new(shared),
            background: Mutex::new(None),
        }
    }
}

fn log_report(dir: &Path, report: &RecoveryReport) {
    tracing::info!(
        dir = %dir.display(),
        segments = report.segments,
        records = report.records,
        running = report.running.len(),
        clean_shutdown = report.clean_shutdown,
        "opened log"
    );
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(segment = %torn.segment, offset = torn.offset, bytes = torn.bytes, "torn tail");
    }
    for c in &report.corruption {
        tracing::error!(
            segment = %c.segment,
            start = c.start_offset,
            end = c.end_offset,
            after_seq = c.after_seq,
            before_seq = ?c.before_seq,
            detail = %c.detail,
            "corruption skipped: gap in the log"
        );
    }
}
