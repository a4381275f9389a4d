//! The log handle: open (lock, replay, resume the writer, record the recovery), durable
//! appends, compaction's cut (and the compaction itself, on request or in the background),
//! clean close.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::commit::{Queue, Slot};
use crate::compaction::{Compacted, Cut, write_snapshot};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::event::{Event, EventRef, Run, UnixMs, encode_event};
use crate::fallback::{Flagged, LogView, Session, flag};
use crate::fold::{Applied, Counters, InFlightRun, Mark, RunningSet};
use crate::frame::FRAME_HEADER_BYTES;
use crate::layout::{TEMP_SUFFIX, is_log_file};
use crate::open_dir::create_dir_durably;
use crate::options::Options;
use crate::recovery::{Policy, RecoveryReport, replay};
use crate::storage::{DirLock, FsStorage, LockError, Storage};
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

/// How many times a read-only replay lists the directory again when a file it listed is gone
/// (a compaction removed it meanwhile).
const READ_ONLY_RETRIES: usize = 3;

/// What a read-only replay found: the report and the folded state.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// What replay found.
    pub report: RecoveryReport,
    /// The state the log folds to.
    pub set: RunningSet,
}

/// An open log. `Send + Sync`: share it between threads with an `Arc`.
///
/// Every call that records an event returns only after the event is durable: written and
/// synced with fdatasync (and, for a new segment, its directory entry synced too). Concurrent
/// callers share writes and syncs (group commit): each accepts its event into the log's order
/// under a short lock; the first caller to find no write under way becomes the leader and
/// writes every event accepted so far that fits in one frame (up to
/// [`limits::BATCH_EVENTS_MAX`] events and [`limits::RECORD_BYTES_MAX`] bytes) with one write
/// and one fdatasync; each caller returns once the sync that covers its own event is done. A
/// lone caller waits for nothing but its own sync. Events enter the log in the order they were
/// accepted.
///
/// A call that returns an error may or may not have reached the disk; after a failed write or
/// sync the handle is poisoned and every later call fails until the log is reopened (every
/// caller waiting on the failed batch gets the error too).
///
/// [`limits::BATCH_EVENTS_MAX`]: crate::limits::BATCH_EVENTS_MAX
/// [`limits::RECORD_BYTES_MAX`]: crate::limits::RECORD_BYTES_MAX
///
/// The log compacts itself in a background thread when its segments grow past
/// [`Options::compact_after_bytes`]; dropping the handle waits for a compaction in progress.
pub struct Log {
    shared: Arc<Shared>,
    /// The background compaction, if one was started.
    background: Mutex<Option<JoinHandle<()>>>,
}

/// What the handle and its background compaction share.
struct Shared {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    environment: Arc<dyn Environment>,
    policy: Policy,
    retention_ms: Option<u64>,
    compact_after_bytes: Option<u64>,
    /// [`Options::record_stale_starts`].
    record_stale_starts: bool,
    state: Mutex<State>,
    /// Signalled when a batch is durable or failed, for callers waiting for room in the queue.
    /// (Callers waiting for their event sleep on their own, woken by the leader: see
    /// `commit`.)
    committed: Condvar,
    /// Signalled for the async front's flusher thread when events wait for a leader.
    flusher_wanted: Condvar,
    /// The open end of the log, used by one leader at a time (and by a compaction's cut).
    writer: Mutex<Writer>,
    /// Held for the whole of a compaction: one at a time.
    compaction: Mutex<()>,
    /// Set while a background compaction is wanted or running, so appends start only one.
    background_busy: AtomicBool,
    /// Compactions finished by this handle.
    compactions: AtomicU64,
    _lock: DirLock,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    /// The fold of every durable event, in log order.
    set: RunningSet,
    /// Accepted events not yet durable, and what is.
    queue: Queue,
    /// Set by the first failed write or sync, or by close; then no event is accepted.
    failure: Option<Failure>,
    /// Bytes appended since the last cut, for the compaction policy.
    bytes_since_cut: u64,
    /// Size of the newest snapshot (0 if none), for the compaction policy.
    snapshot_bytes: u64,
    /// Callers waiting for room in the queue (on `committed`).
    room_waiters: usize,
    /// The async front's flusher thread, if one runs: it leads the batches of events only tasks
    /// wait for.
    flusher: FlusherState,
}

impl State {
    /// The key's high-water mark as the fold will see it once every accepted event is folded:
    /// the durable mark, or the highest generation among accepted events not yet durable.
    fn high_water(&self, key: &str) -> Option<u64> {
        let durable = self.set.mark(key).map(|m| m.generation);
        durable.max(self.queue.pending_generation(key))
    }
}

/// What leading a batch gives back: the state's lock, and the error with the batch's first and
/// last sequence numbers if it failed.
type Led<'a> = (MutexGuard<'a, State>, Option<(Error, (u64, u64))>);

/// What the flusher thread is doing.
#[derive(Debug, Default)]
struct FlusherState {
    /// It waits on `flusher_wanted` for events that need a leader.
    idle: bool,
    /// It is to stop (its async front is gone).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    stop: bool,
}

#[derive(Debug, Clone)]
enum Failure {
    Poisoned { kind: io::ErrorKind, cause: String },
    Closed,
}

impl Failure {
    fn to_error(&self) -> Error {
        match self {
            Failure::Poisoned { kind, cause } => Error::Poisoned {
                kind: *kind,
                cause: cause.clone(),
            },
            Failure::Closed => Error::Closed,
        }
    }
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
    /// ([`InFlightRun::recoveries`], crash-loop detection); the report includes it.
    ///
    /// A read-write open writes: it makes a synced copy of the last segment (see
    /// [`Options::segment_bytes_max`]), so it needs that much free space. On a full disk it fails
    /// with an [`Error::Io`] whose source is of kind [`std::io::ErrorKind::StorageFull`] and
    /// whose message says so; [`Log::read_only`] writes nothing and still reports what was in
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
        Log::open_read_write(storage, dir.as_ref(), options).map_err(Error::at_open)
    }

    fn open_read_write(storage: Arc<dyn Storage>, dir: &Path, options: Options) -> Result<Opened> {
        options.validate()?;
        let dir = dir.to_path_buf();
        create_dir_durably(&*storage, &dir)?;
        let lock = storage.lock(&dir).map_err(|e| match e {
            LockError::Held(holder_pid) => Error::Locked {
                dir: dir.clone(),
                holder_pid,
            },
            LockError::Io(e) => Error::io("lock", &dir, e),
        })?;
        let names = remove_temp_files(&*storage, &dir)?;
        let replayed = replay(&*storage, &dir, names, options.policy, None, &mut |_, _| {})?;
        let replayed_bytes = replayed.segment_bytes;
        let mut report = replayed.report;
        let context = Context {
            storage: storage.clone(),
            dir: dir.clone(),
            environment: options.environment.clone(),
            segment_bytes_max: options.segment_bytes_max,
            prepare_segments: options.prepare_segments,
        };
        let mut writer = Writer::resume(context, replayed.tail, replayed.next_seq, &mut report)?;
        let mut set = replayed.set;
        if options.record_recovery && !set.is_empty() {
            // Runs were in flight: this open is a recovery, and each run a crash interrupted
            // counts one more (crash-loop detection). Durable before the report says so.
            let event = Event::Recovered {
                at_ms: options.environment.now_ms(),
            };
            writer.append(&encode_event(&event))?;
            set.apply(&event);
            report.running = set.entries().cloned().collect();
            report.counters = set.counters();
        }
        report.crash_loop_threshold = options.crash_loop_threshold;
        log_report(&dir, &report);
        let snapshot_bytes = report.snapshot.as_ref().map_or(0, |s| s.bytes);
        let shared = Shared {
            dir,
            storage,
            environment: options.environment,
            policy: options.policy,
            retention_ms: options.retention_ms,
            compact_after_bytes: options.compact_after_bytes,
            record_stale_starts: options.record_stale_starts,
            state: Mutex::new(State {
                set,
                queue: Queue::new(1),
                failure: None,
                // The segments after the snapshot count toward the next compaction, so a
                // gateway that restarts often still compacts.
                bytes_since_cut: replayed_bytes,
                snapshot_bytes,
                room_waiters: 0,
                flusher: FlusherState::default(),
            }),
            flusher_wanted: Condvar::new(),
            committed: Condvar::new(),
            writer: Mutex::new(writer),
            compaction: Mutex::new(()),
            background_busy: AtomicBool::new(false),
            compactions: AtomicU64::new(0),
            _lock: lock,
        };
        let log = Log {
            shared: Arc::new(shared),
            background: Mutex::new(None),
        };
        Ok(Opened { log, report })
    }

    /// Compacts the log in `dir` offline: takes the lock (so it fails with [`Error::Locked`]
    /// while a gateway holds the log), recovers it as an open does (without counting a
    /// recovery: this is not a restart), compacts, and releases it. The command line's
    /// `inflight compact DIR`.
    pub fn compact_dir(dir: impl AsRef<Path>, options: Options) -> Result<Compacted> {
        let dir = dir.as_ref();
        let storage = FsStorage::default();
        // A mistyped path must not become a new, empty log.
        let is_log = storage.is_dir(dir).map_err(|e| Error::io("stat", dir, e))?
            && storage
                .list(dir)
                .map_err(|e| Error::io("list", dir, e))?
                .iter()
                .any(|n| is_log_file(n));
        if !is_log {
            return Err(Error::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let mut options = options.compact_after_bytes(None);
        options.record_recovery = false;
        let Opened { log, report: _ } = Log::open(dir, options)?;
        log.compact()
    }

    /// Replays the log in `dir` without taking the lock or changing a byte: for tools that
    /// inspect a log, even one a live process is writing (an append in progress then shows as a
    /// torn tail). A torn tail is reported (with `cut: false`) but left in place. Segments are
    /// memory-mapped (see [`FsStorage::mmap`]). A directory with neither segment nor snapshot
    /// files is [`Error::NotFound`]: it is not a log, and must not read as "nothing in flight".
    ///
    /// It writes nothing, so it answers on a full disk too, where a read-write open
    /// ([`Log::open`]) fails for want of room for its copy of the last segment. The command
    /// line's `inflight replay DIR` is this call.
    pub fn read_only(dir: impl AsRef<Path>, policy: Policy) -> Result<Recovered> {
        Log::read_only_with_storage(&FsStorage { mmap: true }, dir, policy)
    }

    /// [`Log::read_only`] through `storage`.
    pub fn read_only_with_storage(
        storage: &dyn Storage,
        dir: impl AsRef<Path>,
        policy: Policy,
    ) -> Result<Recovered> {
        // A compaction of a live log may remove a file between the listing and its reading;
        // the listing after it is consistent again (a snapshot covers what was removed).
        let mut attempts = 0;
        loop {
            match Log::for_each_event(storage, dir.as_ref(), policy, |_, _| {}) {
                Err(e @ Error::Io { .. })
                    if e.io_kind() == io::ErrorKind::NotFound && attempts < READ_ONLY_RETRIES =>
                {
                    attempts += 1;
                }
                done => return done,
            }
        }
    }

    /// A read-only replay that also hands every valid record after the snapshot it starts from,
    /// with its sequence number, to `visit` in log order: for offline tools that need the events
    /// themselves, not only the state they fold to. Like [`Log::read_only`], it takes no lock
    /// and changes nothing. On a live log, a compaction may remove a file between the listing
    /// and its reading: that is an [`Error::Io`] of kind `NotFound` (after some records were
    /// visited), and a second call sees a consistent listing again.
    ///
    /// ```
    /// # use inflight::{Generation, Log, Options, Policy, Run, FsStorage, UnixMs};
    /// # let dir = tempfile::tempdir()?;
    /// # let log = Log::open(dir.path(), Options::default())?.log;
    /// # log.mark_running(Run::new("k", "s", Generation(1), UnixMs(1)))?;
    /// let mut keys = Vec::new();
    /// Log::for_each_event(&FsStorage::default(), dir.path(), Policy::Strict, |_seq, event| {
    ///     keys.extend(event.key().map(str::to_string));
    /// })?;
    /// assert_eq!(keys, ["k"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_each_event(
        storage: &dyn Storage,
        dir: impl AsRef<Path>,
        policy: Policy,
        mut visit: impl FnMut(u64, EventRef<'_>),
    ) -> Result<Recovered> {
        let dir = dir.as_ref();
        if !storage.is_dir(dir).map_err(|e| Error::io("stat", dir, e))? {
            return Err(Error::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let names = storage.list(dir).map_err(|e| Error::io("list", dir, e))?;
        // A directory with neither a segment nor a snapshot file is not a log; one whose every
        // file is damaged is a log that lost its state, reported as such.
        if !names.iter().any(|n| is_log_file(n)) {
            return Err(Error::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let replayed = replay(storage, dir, names, policy, None, &mut visit)?;
        Ok(Recovered {
            report: replayed.report,
            set: replayed.set,
        })
    }

    /// Records that `run` started, under the generation the gateway chose (for gateways that own
    /// their generations, for example bumping one on `/stop`). Returns once the event is
    /// durable, with what it did to the running set: [`Applied::Started`], the run now the
    /// key's running entry (replacing an older one if `superseded`).
    ///
    /// A generation below the key's high-water mark is refused with
    /// [`Error::StaleGeneration`] before anything is written, because the run would not be
    /// tracked: typically a gateway whose own counter began again at 1 after a restart. To let
    /// the log choose the generation, monotonic across restarts, use [`Log::begin_run`].
    ///
    /// ```
    /// use inflight::{Error, Generation, Log, Options, Run, UnixMs};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// let key = "agent:main:telegram:dm:4242";
    /// log.mark_running(Run::new(key, "s1", Generation(7), UnixMs(1_000)))?;
    /// // The gateway restarts and its counter begins again at 1: refused, nothing written.
    /// let refused = log.mark_running(Run::new(key, "s2", Generation(1), UnixMs(2_000)));
    /// assert!(matches!(refused, Err(Error::StaleGeneration { high_water: 7, .. })));
    /// assert_eq!(log.running()[0].run.generation, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mark_running(&self, run: Run) -> Result<Applied> {
        self.record(Event::Started(run))
    }

    /// Begins a run on `key` under a generation the log allocates: one above the key's
    /// high-water mark (for a key the log holds no mark for, one above every mark retention
    /// forgot: 1 in a log that forgot none), stamped with the log's clock.
    /// Returns the run, generation included, once its start is durable. Allocation and append
    /// happen under the log's own lock, so two threads beginning runs on one key never get the
    /// same generation (reading [`Log::high_water`] and then calling [`Log::mark_running`]
    /// races).
    ///
    /// ```
    /// use inflight::{Log, Options};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// let first = log.begin_run("agent:main:http:c-5", "20261126_1", None)?;
    /// let second = log.begin_run("agent:main:http:c-5", "20261126_1", Some(r#"{"resume_from":"m-2"}"#.into()))?;
    /// assert_eq!((first.generation, second.generation), (1, 2));
    /// log.mark_completed(&second.key, second.generation)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn begin_run(
        &self,
        key: impl Into<String>,
        session_id: impl Into<String>,
        meta: Option<String>,
    ) -> Result<Run> {
        let (run, ticket) = self.submit_begin_run(key.into(), session_id.into(), meta)?;
        self.wait(&ticket)?;
        Ok(run)
    }

    /// The first half of [`Log::begin_run`]: the run accepted with a generation allocated and
    /// the log's time as its start.
    pub(crate) fn submit_begin_run(
        &self,
        key: String,
        session_id: String,
        meta: Option<String>,
    ) -> Result<(Run, Ticket)> {
        let mut run = Run {
            key,
            session_id,
            generation: 0,
            started_at_ms: 0,
            meta,
        };
        // The limits do not depend on the generation: check them before taking the lock.
        Event::Started(run.clone()).validate()?;
        let environment = &self.shared.environment;
        let accepted = self.shared.accept_with(|state| {
            // Above the key's mark or, for a key with none, above every generation retention
            // forgot: never one the key had before. Never wrapping past the largest.
            let above = state
                .high_water(&run.key)
                .unwrap_or_else(|| state.set.forgotten_generation());
            run.generation = above
                .checked_add(1)
                .ok_or_else(|| Error::GenerationsExhausted {
                    key: crate::event::shorten(&run.key),
                })?;
            run.started_at_ms = environment.now_ms();
            Ok(Event::Started(run.clone()))
        })?;
        let (seq, result) = accepted;
        Ok((run, Ticket { seq, result }))
    }

    /// The time on the log's clock, in milliseconds since the Unix epoch.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn now_ms(&self) -> u64 {
        self.shared.environment.now_ms()
    }

    /// Starts the async front's flusher thread: it leads the batches of events only tasks wait
    /// for (a task must not block its runtime's thread on a write and a sync). It stops when
    /// the returned handle is dropped.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn start_flusher(&self) -> std::io::Result<Flusher> {
        let shared = self.shared.clone();
        let thread = std::thread::Builder::new()
            .name("inflight-flusher".into())
            .spawn(move || shared.run_flusher())?;
        Ok(Flusher {
            shared: self.shared.clone(),
            thread: Some(thread),
        })
    }

    /// The async side of [`Log::wait`] (see `Shared::poll_durable`).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn poll_durable(
        &self,
        ticket: &Ticket,
        waker: &std::task::Waker,
        registered: &mut Option<u64>,
    ) -> std::task::Poll<Result<Applied>> {
        let polled = self
            .shared
            .poll_durable(ticket.seq, &ticket.result, waker, registered);
        polled.map(|done| {
            done.map(|(applied, compact)| {
                self.after_commit(compact);
                applied
            })
        })
    }

    /// Forgets a task's registration for `ticket`.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn forget_task(&self, ticket: &Ticket, registered: u64) {
        self.shared.forget_task(ticket.seq, registered);
    }

    /// Records that the run of `key` with `generation` completed, timestamped with the log's
    /// clock. Returns once the event is durable.
    pub fn mark_completed(&self, key: &str, generation: u64) -> Result<Applied> {
        let at = UnixMs(self.shared.environment.now_ms());
        self.mark_completed_at(key, generation, at)
    }

    /// [`Log::mark_completed`] with an explicit timestamp.
    pub fn mark_completed_at(&self, key: &str, generation: u64, at: UnixMs) -> Result<Applied> {
        self.record(Event::Completed {
            key: key.to_string(),
            generation,
            at_ms: at.0,
        })
    }

    /// Records a clean shutdown (runs still in flight are reported after the next open with
    /// reason `shutdown`) and closes the handle: later calls return [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        let at_ms = self.shared.environment.now_ms();
        self.record(Event::Shutdown { at_ms }).map(drop)
    }

    /// The runs in flight now, ordered by key.
    pub fn running(&self) -> Vec<InFlightRun> {
        self.with_set(|set| set.entries().cloned().collect())
    }

    /// The run in flight on `key` now, if there is one.
    pub fn in_flight(&self, key: &str) -> Option<InFlightRun> {
        self.with_set(|set| set.get(key).cloned())
    }

    /// The high-water mark of `key`: the highest generation recorded for it.
    pub fn high_water(&self, key: &str) -> Option<Mark> {
        self.with_set(|set| set.mark(key))
    }

    /// What the fold has counted since the log was created.
    pub fn counters(&self) -> Counters {
        self.with_set(|set| set.counters())
    }

    /// The time-window fallback ([`fallback::flag`]) for this open log: `report` is the one
    /// its open returned (the runs it found interrupted, its gaps, its coverage), and each key's
    /// latest event is the log's now, so a key the gateway has recorded since the open is
    /// covered. The sessions, window and time are as for [`fallback::flag`]. Holds the state's
    /// lock while it runs: call it at start-up, not on a hot path.
    ///
    /// ```
    /// use inflight::fallback::{Flag, Session};
    /// use inflight::{Log, Opened, Options};
    ///
    /// let dir = tempfile::tempdir()?;
    /// # { let log = Log::open(dir.path(), Options::default())?.log;
    /// #   log.begin_run("agent:main:telegram:dm:4242", "s1", None)?; }
    /// let Opened { log, report } = Log::open(dir.path(), Options::default())?;
    /// let now_ms = inflight::environment::now_ms();
    /// let flagged = log.fallback(&report, &[Session::new("agent:main:http:c-5", now_ms)], 120_000, now_ms);
    /// // The interrupted run, precisely; c-5 was active while the log was recording.
    /// assert_eq!(flagged.len(), 1);
    /// assert_eq!(flagged[0].reason, Flag::Log);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`fallback::flag`]: crate::fallback::flag
    pub fn fallback(
        &self,
        report: &RecoveryReport,
        sessions: &[Session],
        window_ms: u64,
        now_ms: u64,
    ) -> Vec<Flagged> {
        self.with_set(|set| {
            flag(
                LogView::Present { report, set },
                sessions,
                window_ms,
                now_ms,
            )
        })
    }

    /// How many compactions this handle has finished (in the background or on request).
    pub fn compactions(&self) -> u64 {
        self.shared.compactions.load(Ordering::Relaxed)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    fn with_set<T>(&self, f: impl FnOnce(&RunningSet) -> T) -> T {
        // The set is only changed after a durable append, by code that cannot panic halfway, so
        // it is consistent even if another thread panicked while holding the lock.
        let state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&state.set)
    }

    /// Records any event: a start, a completion, or a shutdown (which closes the handle, as
    /// [`Log::close`] does). Returns once the event is durable, with what it did to the running
    /// set. For replaying events from elsewhere, or tools that carry [`Event`] values around.
    /// The log's own records ([`Event::is_internal`]) are refused, and so is a stale start
    /// ([`Error::StaleGeneration`], as [`Log::mark_running`] does) unless the log was opened
    /// with [`Options::record_stale_starts`].
    pub fn record(&self, event: Event) -> Result<Applied> {
        let ticket = self.submit(event)?;
        self.wait(&ticket)
    }

    /// The first half of [`Log::record`]: accepts `event` into the log's order and folds it,
    /// without waiting for it to be durable. Returns at once (unless the queue of accepted
    /// events is full, [`limits::QUEUE_EVENTS_MAX`] or [`limits::QUEUE_BYTES_MAX`]: then it
    /// waits for events to be written). [`Log::wait`] returns once the event is durable.
    /// Submitting several events and then waiting for the last writes them as one frame with
    /// one sync, even from one thread; an async front builds on the two halves.
    ///
    /// ```
    /// use inflight::{Event, Log, Options};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// let tickets: Vec<_> = (1..=3)
    ///     .map(|g| log.submit(Event::Completed { key: "k".into(), generation: g, at_ms: g }))
    ///     .collect::<Result<_, _>>()?;
    /// log.wait(&tickets[2])?; // one frame, one sync: all three are durable
    /// assert!(tickets.iter().all(|t| log.is_durable(t)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`limits::QUEUE_EVENTS_MAX`]: crate::limits::QUEUE_EVENTS_MAX
    /// [`limits::QUEUE_BYTES_MAX`]: crate::limits::QUEUE_BYTES_MAX
    pub fn submit(&self, event: Event) -> Result<Ticket> {
        if event.is_internal() {
            return Err(Error::InvalidInput {
                field: "event",
                reason: "is a record the log writes itself (a recovery or a retention)".into(),
                key: None,
            });
        }
        event.validate()?;
        let refuse_stale = !self.shared.record_stale_starts;
        let (seq, result) = self.shared.accept_with(|state| {
            if let (Event::Started(run), true) = (&event, refuse_stale) {
                // Under the state's lock, against the durable marks and the starts accepted
                // before it: the fold will see exactly this mark when it folds the start.
                if let Some(high_water) = state.high_water(&run.key)
                    && run.generation < high_water
                {
                    return Err(Error::StaleGeneration {
                        key: crate::event::shorten(&run.key),
                        generation: run.generation,
                        high_water,
                    });
                }
            }
            Ok(event)
        })?;
        Ok(Ticket { seq, result })
    }

    /// Waits until the event of `ticket` is durable (writing it, and whatever was accepted
    /// with it, if no other caller is), and returns what it did to the running set. An error
    /// means the write or sync failed (or an earlier one did): the event may or may not be in
    /// the log, and the handle is poisoned.
    pub fn wait(&self, ticket: &Ticket) -> Result<Applied> {
        let (applied, compact) = self.shared.commit(&(ticket.seq, ticket.result.clone()))?;
        self.after_commit(compact);
        Ok(applied)
    }

    /// Whether the event of `ticket` is durable already.
    pub fn is_durable(&self, ticket: &Ticket) -> bool {
        let state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.queue.is_durable(ticket.seq)
    }

    /// Compacts the log now: cuts it (a retention record, then a new segment: the only moment
    /// appends wait), writes the state up to the cut as a snapshot, durably, and removes the
    /// segments it covers. Appends from other threads go on while the snapshot is written.
    /// Waits for a compaction already in progress, then runs its own.
    ///
    /// ```
    /// use inflight::{Log, Options};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// let run = log.begin_run("agent:main:http:c-5", "20261126_1", None)?;
    /// let compacted = log.compact()?;
    /// assert_eq!(compacted.running, 1);
    /// drop(log);
    /// let report = Log::open(dir.path(), Options::default())?.report;
    /// assert_eq!(report.running[0].run, run); // from the snapshot
    /// assert!(report.snapshot.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compact(&self) -> Result<Compacted> {
        self.begin_compaction()?.finish()
    }

    /// The first half of [`Log::compact`]: the cut. The returned compaction writes the
    /// snapshot when [`Compaction::finish`] is called; appends may go on in between (tests use
    /// this to interleave them deterministically). Other compactions wait until it is finished
    /// or dropped, so a thread holding one must not start another (it would wait for itself).
    pub fn begin_compaction(&self) -> Result<Compaction<'_>> {
        self.shared.begin_compaction()
    }

    /// After a commit: starts a background compaction if the policy asked for one when the
    /// event became durable.
    fn after_commit(&self, wanted: bool) {
        if !wanted || self.shared.background_busy.swap(true, Ordering::AcqRel) {
            return;
        }
        // Spawned while holding the lock on the handle of the last one, which has cleared
        // `background_busy` (it is done), so joining it never waits for a compaction.
        let mut background = self.background.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(previous) = background.take() {
            let _ = previous.join();
        }
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("inflight-compaction".into())
            .spawn(move || {
                /// Clears `background_busy` however the compaction ends, a panic included.
                struct Done<'a>(&'a AtomicBool);
                impl Drop for Done<'_> {
                    fn drop(&mut self) {
                        self.0.store(false, Ordering::Release);
                    }
                }
                let _done = Done(&shared.background_busy);
                match shared.compact() {
                    Ok(c) => tracing::info!(
                        snapshot = %c.snapshot.display(),
                        bytes = c.bytes,
                        running = c.running,
                        segments_removed = c.segments_removed,
                        "compacted in the background"
                    ),
                    // The log itself is unharmed (a failed cut poisons the handle, which then
                    // reports it); the next append past the threshold tries again.
                    Err(e) => tracing::error!(error = %e, "background compaction failed"),
                }
            });
        match spawned {
            Ok(handle) => *background = Some(handle),
            Err(e) => {
                tracing::error!(error = %e, "could not start a background compaction");
                self.shared.background_busy.store(false, Ordering::Release);
            }
        }
    }
}

impl Drop for Log {
    /// Waits for a background compaction in progress (it holds the directory's lock).
    fn drop(&mut self) {
        let handle = self
            .background
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// A compaction whose cut is made: [`Compaction::finish`] writes the snapshot and removes what
/// it covers. Dropping it abandons the compaction (the cut stays; nothing is lost).
#[must_use = "the snapshot is only written by finish()"]
pub struct Compaction<'a> {
    shared: &'a Shared,
    _one_at_a_time: MutexGuard<'a, ()>,
    cut: Cut,
    retention: Option<Event>,
    forgotten: usize,
}

impl std::fmt::Debug for Compaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compaction")
            .field("cut", &self.cut)
            .finish_non_exhaustive()
    }
}

impl Compaction<'_> {
    /// The retention record the cut wrote (none when marks are kept forever).
    pub fn retention_record(&self) -> Option<&Event> {
        self.retention.as_ref()
    }

    /// The last sequence number the snapshot will cover.
    pub fn last_seq(&self) -> u64 {
        self.cut.last_seq
    }

    /// Folds everything up to the cut, writes the snapshot (temporary file, sync, rename,
    /// directory sync), then removes the segments it covers and the snapshots before the one
    /// it was built from. An error here does not poison the handle, and the log reads the same
    /// whatever step failed: before the rename nothing changed; after it, the new snapshot
    /// holds what any covered segment still there holds.
    pub fn finish(self) -> Result<Compacted> {
        let shared = self.shared;
        let now_ms = shared.environment.now_ms();
        let mut compacted = write_snapshot(
            &*shared.storage,
            &shared.dir,
            shared.policy,
            self.cut,
            now_ms,
        )?;
        compacted.forgotten = self.forgotten;
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.snapshot_bytes = compacted.bytes;
        drop(state);
        shared.compactions.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(snapshot = %compacted.snapshot.display(), last_seq = compacted.last_seq, "compacted");
        Ok(compacted)
    }
}

impl Shared {
    fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Error::Poisoned {
            kind: io::ErrorKind::Other,
            cause: "a thread panicked while appending".into(),
        })
    }

    /// The cut, one compaction at a time: [`Log::begin_compaction`].
    fn begin_compaction(&self) -> Result<Compaction<'_>> {
        let one_at_a_time = self.compaction.lock().unwrap_or_else(|e| e.into_inner());
        let (cut, retention, forgotten) = self.cut()?;
        Ok(Compaction {
            shared: self,
            _one_at_a_time: one_at_a_time,
            cut,
            retention,
            forgotten,
        })
    }

    /// A whole compaction, for the background thread.
    fn compact(&self) -> Result<Compacted> {
        self.begin_compaction()?.finish()
    }

    /// Whether the segments written since the last cut have grown past the policy's threshold.
    fn wants_compaction(&self, state: &State) -> bool {
        state.failure.is_none()
            && self.compact_after_bytes.is_some_and(|floor| {
                state.bytes_since_cut >= floor.max(state.snapshot_bytes.saturating_mul(2))
            })
    }

    /// The cut: a retention record (if marks are retained for a limited time), durable like
    /// any event, then a new segment, made with the writer to itself, so every frame before it
    /// is written and synced. Returns where the log was cut and how many marks the retention
    /// forgot.
    fn cut(&self) -> Result<(Cut, Option<Event>, usize)> {
        let mut forgotten = 0;
        let mut retention = None;
        if let Some(retention_ms) = self.retention_ms {
            let now = self.environment.now_ms();
            let event = Event::Retention {
                forget_before_ms: now.saturating_sub(retention_ms),
                at_ms: now,
            };
            let accepted = self.accept_with(|_| Ok(event.clone()))?;
            if let (Applied::Retention { forgotten: n }, _) = self.commit(&accepted)? {
                forgotten = n;
            }
            retention = Some(event);
        }
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state()?;
        if let Some(failure) = &state.failure {
            return Err(failure.to_error());
        }
        drop(state);
        let rolled = writer.roll_over();
        let cut = Cut {
            segment_no: writer.segment_no(),
            last_seq: writer.next_seq() - 1,
        };
        state = self.state()?;
        if let Err(e) = rolled {
            self.poison(&mut state, &e);
            self.committed.notify_all();
            return Err(e);
        }
        state.bytes_since_cut = 0;
        Ok((cut, retention, forgotten))
    }

    /// After a failed write or sync: the handle refuses everything until the log is reopened,
    /// and the events still waiting to be written are dropped.
    fn poison(&self, state: &mut State, e: &Error) {
        // A failed write or sync leaves the file in an unknown state and, after a failed
        // fsync, the kernel may report the next one as a success without writing the data
        // (Linux drops dirty pages on error). Nothing written after this point could be
        // trusted, so the handle refuses everything until the log is reopened and replayed.
        tracing::error!(dir = %self.dir.display(), error = %e, "append failed; log handle poisoned");
        state.failure = Some(Failure::Poisoned {
            kind: e.io_kind(),
            cause: e.to_string(),
        });
        state.queue.drop_waiting();
        state.queue.wake_all();
    }

    /// Accepts the event `make` builds from the state (under the state's lock, so a generation
    /// it allocates is never given twice): assigns its sequence number and queues it. Waits
    /// while the queue is full. Returns the sequence number and where its result will be.
    fn accept_with(&self, make: impl FnOnce(&State) -> Result<Event>) -> Result<(u64, Slot)> {
        let mut state = self.state()?;
        loop {
            if let Some(failure) = &state.failure {
                return Err(failure.to_error());
            }
            if !state.queue.is_full() {
                break;
            }
            state.room_waiters += 1;
            state = self
                .committed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
            state.room_waiters -= 1;
        }
        let event = make(&state)?;
        let payload = encode_event(&event);
        state.bytes_since_cut += (FRAME_HEADER_BYTES + payload.len()) as u64;
        if matches!(event, Event::Shutdown { .. }) {
            // In the same critical section as the accept, so no other thread's event can land
            // after the shutdown record.
            state.failure = Some(Failure::Closed);
        }
        Ok(state.queue.push(event, payload))
    }

    /// Returns once the event with `seq` is durable, with what it did to the running set:
    /// leads a batch when no other caller is writing one, or waits for the leader. The leader
    /// folds its batch into the running set once it is synced, in log order. An error from the
    /// batch holding `seq` is returned as it is to its leader and as [`Error::Poisoned`] to the
    /// others. Also says whether the compaction policy asks for a compaction (decided under
    /// the lock this already holds).
    fn commit(&self, (seq, result): &(u64, Slot)) -> Result<(Applied, bool)> {
        let seq = *seq;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if state.queue.is_durable(seq) {
                let applied = *result.get().expect("a durable event has been folded");
                return Ok((applied, self.wants_compaction(&state)));
            }
            if let Some(Failure::Poisoned { kind, cause }) = &state.failure {
                return Err(Error::Poisoned {
                    kind: *kind,
                    cause: cause.clone(),
                });
            }
            if !state.queue.needs_leader() {
                // Asleep until the leader wakes this caller: its event is durable, or it is to
                // lead the next batch.
                state.queue.add_waiter(seq, std::thread::current());
                drop(state);
                std::thread::park();
                state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let (next, failed) = self.lead(state);
            state = next;
            if let Some((e, (first, last))) = failed
                && (first..=last).contains(&seq)
            {
                return Err(e);
            }
        }
    }

    /// Leads one batch: takes it, writes and syncs it as one frame, folds it, and wakes the
    /// callers it made durable and the one that leads next (or the flusher, if only tasks
    /// wait). Returns the lock again, and the error with the batch's first and last sequence
    /// numbers if the write or sync failed (the handle is then poisoned).
    fn lead<'a>(&'a self, mut state: MutexGuard<'a, State>) -> Led<'a> {
        let batch = state.queue.take_batch();
        drop(state);
        let written = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&batch.payload());
        state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let applied = written.is_ok().then(|| {
            let set = &mut state.set;
            batch.events().map(|(_, e)| set.apply(e)).collect()
        });
        state.queue.finish(&batch, applied);
        let failed = written.err();
        if let Some(e) = &failed {
            self.poison(&mut state, e);
        }
        let wakeups = state.queue.take_wakeups();
        let flusher = wakeups.leader.is_none() && state.queue.needs_leader() && state.flusher.idle;
        let room_waiters = state.room_waiters > 0;
        drop(state);
        if flusher {
            self.flusher_wanted.notify_one();
        }
        wakeups.wake();
        if room_waiters {
            self.committed.notify_all();
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state, failed.map(|e| (e, batch.seqs())))
    }

    /// The async side of `commit`: whether the event with `seq` is durable (with what it did,
    /// and whether the compaction policy asks for a compaction), or else registers `waker` to
    /// be woken when it is (in place of the task's earlier registration, kept in `registered`)
    /// and makes sure the flusher leads if nobody is.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn poll_durable(
        &self,
        seq: u64,
        result: &Slot,
        waker: &std::task::Waker,
        registered: &mut Option<u64>,
    ) -> std::task::Poll<Result<(Applied, bool)>> {
        use std::task::Poll;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.queue.is_durable(seq) {
            *registered = None;
            let applied = *result.get().expect("a durable event has been folded");
            return Poll::Ready(Ok((applied, self.wants_compaction(&state))));
        }
        if let Some(Failure::Poisoned { kind, cause }) = &state.failure {
            *registered = None;
            return Poll::Ready(Err(Error::Poisoned {
                kind: *kind,
                cause: cause.clone(),
            }));
        }
        *registered = Some(state.queue.add_task(seq, waker, *registered));
        let flusher = state.queue.needs_leader() && state.flusher.idle;
        drop(state);
        if flusher {
            self.flusher_wanted.notify_one();
        }
        Poll::Pending
    }

    /// Forgets a task's registration (its future was dropped before the event was durable).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn forget_task(&self, seq: u64, registered: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.queue.remove_task(seq, registered);
    }

    /// The async front's flusher: leads every batch that needs a leader, until told to stop.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn run_flusher(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !state.flusher.stop {
            if state.queue.needs_leader() {
                state = self.lead(state).0;
                continue;
            }
            state.flusher.idle = true;
            state = self
                .flusher_wanted
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
            state.flusher.idle = false;
        }
    }
}

/// The async front's flusher thread (see [`Log::start_flusher`]); dropping it stops the thread
/// and waits for it.
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) struct Flusher {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher").finish_non_exhaustive()
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.flusher.stop = true;
        drop(state);
        self.shared.flusher_wanted.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An event accepted into the log's order by [`Log::submit`]; [`Log::wait`] returns once it is
/// durable.
#[derive(Clone, Debug)]
#[must_use = "an event is durable only once Log::wait returns Ok"]
pub struct Ticket {
    pub(crate) seq: u64,
    pub(crate) result: Slot,
}

impl Ticket {
    /// The event's sequence number in the log.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// Removes replacements that a crash interrupted before their rename (the originals are intact),
/// and returns the names that remain in the directory.
fn remove_temp_files(storage: &dyn Storage, dir: &Path) -> Result<Vec<String>> {
    let (temps, names): (Vec<String>, Vec<String>) = storage
        .list(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .into_iter()
        .partition(|n| n.ends_with(TEMP_SUFFIX));
    for name in &temps {
        let path = dir.join(name);
        storage
            .remove(&path)
            .map_err(|e| Error::io("remove", &path, e))?;
    }
    if !temps.is_empty() {
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("sync directory", dir, e))?;
    }
    Ok(names)
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
