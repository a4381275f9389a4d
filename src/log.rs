//! The log handle: open (lock, replay, resume the writer), durable appends, clean close.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::event::{Event, Run, UnixMs, encode_event};
use crate::fold::{Applied, Counters, InFlightRun, Mark, RunningSet};
use crate::layout::TEMP_SUFFIX;
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
/// synced with fdatasync (and, for a new segment, its directory entry synced too). A call that
/// returns an error may or may not have reached the disk; after a failed write or sync the
/// handle is poisoned and every later call fails until the log is reopened.
pub struct Log {
    dir: PathBuf,
    environment: Arc<dyn Environment>,
    state: Mutex<State>,
    _lock: DirLock,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    writer: Writer,
    set: RunningSet,
    /// Set by the first failed write or sync, or by close; then every call fails.
    failure: Option<Failure>,
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
        let replayed = replay(&*storage, &dir, names, options.policy, &mut |_, _| {})?;
        let mut report = replayed.report;
        let context = Context {
            storage,
            dir: dir.clone(),
            environment: options.environment.clone(),
            segment_bytes_max: options.segment_bytes_max,
        };
        let writer = Writer::resume(context, replayed.tail, replayed.next_seq, &mut report)?;
        log_report(&dir, &report);
        let log = Log {
            dir,
            environment: options.environment,
            state: Mutex::new(State {
                writer,
                set: replayed.set,
                failure: None,
            }),
            _lock: lock,
        };
        Ok(Opened { log, report })
    }

    /// Replays the log in `dir` without taking the lock or changing a byte: for tools that
    /// inspect a log, even one a live process is writing (an append in progress then shows as a
    /// torn tail). A torn tail is reported (with `cut: false`) but left in place. Segments are
    /// memory-mapped (see [`FsStorage::mmap`]). A directory without segment files is
    /// [`Error::NotFound`]: it is not a log, and must not read as "nothing in flight".
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
        Log::for_each_event(storage, dir, policy, |_, _| {})
    }

    /// A read-only replay that also hands every valid record, with its sequence number, to
    /// `visit` in log order: for offline tools that need the events themselves, not only the
    /// state they fold to. Like [`Log::read_only`], it takes no lock and changes nothing.
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
        mut visit: impl FnMut(u64, &Event),
    ) -> Result<Recovered> {
        let dir = dir.as_ref();
        if !storage.is_dir(dir).map_err(|e| Error::io("stat", dir, e))? {
            return Err(Error::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let names = storage.list(dir).map_err(|e| Error::io("list", dir, e))?;
        let replayed = replay(storage, dir, names, policy, &mut visit)?;
        if replayed.report.segments == 0 {
            return Err(Error::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        Ok(Recovered {
            report: replayed.report,
            set: replayed.set,
        })
    }

    /// Records that `run` started, under the generation the gateway chose (for gateways that own
    /// their generations, for example bumping one on `/stop`). Returns once the event is
    /// durable, with what it did to the running set (a start below the key's high-water mark is
    /// recorded but ignored). To let the log choose the generation, use [`Log::begin_run`].
    pub fn mark_running(&self, run: Run) -> Result<Applied> {
        self.record(Event::Started(run))
    }

    /// Begins a run on `key` under a generation the log allocates: one above the key's
    /// high-water mark (1 for a key the log has not seen), stamped with the log's clock.
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
        let mut event = Event::Started(Run {
            key: key.into(),
            session_id: session_id.into(),
            generation: 0,
            started_at_ms: 0,
            meta,
        });
        // The limits do not depend on the generation: check them before taking the lock.
        event.validate()?;
        let Event::Started(run) = &mut event else {
            unreachable!("built as a start above");
        };
        let mut state = self.state()?;
        run.generation = match state.set.mark(&run.key) {
            None => 1,
            Some(mark) => mark
                .generation
                .checked_add(1)
                .ok_or_else(|| Error::InvalidInput {
                    field: "generation",
                    reason: "has reached its largest value for this key; no generation is left"
                        .into(),
                    key: Some(crate::event::shorten(&run.key)),
                })?,
        };
        run.started_at_ms = self.environment.now_ms();
        let run = run.clone();
        self.append_locked(&mut state, &event)?;
        Ok(run)
    }

    /// Records that the run of `key` with `generation` completed, timestamped with the log's
    /// clock. Returns once the event is durable.
    pub fn mark_completed(&self, key: &str, generation: u64) -> Result<Applied> {
        let at = UnixMs(self.environment.now_ms());
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
        let at_ms = self.environment.now_ms();
        self.record(Event::Shutdown { at_ms }).map(drop)
    }

    /// The runs in flight now, ordered by key.
    pub fn running(&self) -> Vec<InFlightRun> {
        self.with_set(|set| set.entries().cloned().collect())
    }

    /// The high-water mark of `key`: the highest generation recorded for it.
    pub fn high_water(&self, key: &str) -> Option<Mark> {
        self.with_set(|set| set.mark(key))
    }

    /// What the fold has counted since the log was created.
    pub fn counters(&self) -> Counters {
        self.with_set(|set| set.counters())
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn with_set<T>(&self, f: impl FnOnce(&RunningSet) -> T) -> T {
        // The set is only changed after a durable append, by code that cannot panic halfway, so
        // it is consistent even if another thread panicked while holding the lock.
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&state.set)
    }

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Error::Poisoned {
            kind: io::ErrorKind::Other,
            cause: "a thread panicked while appending".into(),
        })
    }

    /// Records any event: a start, a completion, or a shutdown (which closes the handle, as
    /// [`Log::close`] does). Returns once the event is durable, with what it did to the running
    /// set. For replaying events from elsewhere, or tools that carry [`Event`] values around.
    pub fn record(&self, event: Event) -> Result<Applied> {
        event.validate()?;
        let mut state = self.state()?;
        self.append_locked(&mut state, &event)
    }

    /// Appends `event` (already validated) while the caller holds the state's lock, and folds it.
    fn append_locked(&self, state: &mut State, event: &Event) -> Result<Applied> {
        if let Some(failure) = &state.failure {
            return Err(failure.to_error());
        }
        let payload = encode_event(event);
        if let Err(e) = state.writer.append(&payload) {
            // A failed write or sync leaves the file in an unknown state and, after a failed
            // fsync, the kernel may report the next one as a success without writing the data
            // (Linux drops dirty pages on error). Nothing written after this point could be
            // trusted, so the handle refuses everything until the log is reopened and replayed.
            tracing::error!(dir = %self.dir.display(), error = %e, "append failed; log handle poisoned");
            state.failure = Some(Failure::Poisoned {
                kind: e.io_kind(),
                cause: e.to_string(),
            });
            return Err(e);
        }
        if matches!(event, Event::Shutdown { .. }) {
            // In the same critical section as the append, so no other thread's event can land
            // after the shutdown record.
            state.failure = Some(Failure::Closed);
        }
        Ok(state.set.apply(event))
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
