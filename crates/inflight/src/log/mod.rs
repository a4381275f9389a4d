//! The log handle: a log open for appends, and everything it does.
//!
//! - `open`: opening a log (the lock, the reading, what the open does to the end of the log,
//!   the recovery record, the report). Read-only replays are [`crate::inspect`]'s, offline
//!   compaction [`crate::compaction`]'s.
//! - `handle`: the calls a gateway makes on an open log: starts, completions, shutdown, the
//!   live state, the fallback.
//! - `commit`: group commit: events accepted into the log's order under a short lock, and the
//!   leader that writes and syncs a batch as one frame and wakes the callers it made durable.
//! - `queue`: group commit's bookkeeping, pure: accepted events, batches, what is durable.
//! - `flusher`: the async front's flusher thread, which leads the batches only tasks wait for,
//!   and the futures' side of a commit.
//! - `cut`: the compaction's cut, and compactions in the background (the snapshot
//!   itself is written by [`crate::compaction`]).
//!
//! A mutex here guards state that is changed only by code that cannot panic halfway (a push,
//! a fold, a counter), so a lock poisoned by a panicking thread is taken as it is (`lock`):
//! the state is consistent, and the other threads go on.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::environment::Environment;
use crate::error::{Error, FencedError};
use crate::fold::RunningSet;
use crate::recovery::Policy;
use crate::storage::DirLock;
use crate::store::LogStore;
use crate::writer::Writer;
use queue::{Queue, Slot};

mod commit;
mod cut;
mod flusher;
mod handle;
mod open;
mod queue;

pub use cut::Compaction;
pub(crate) use flusher::Flusher;
pub use open::Opened;

/// Takes `mutex` whatever a thread that panicked holding it left (see the module's docs).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits on `condvar`, by the same policy as [`lock`].
fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(|e| e.into_inner())
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
/// [`Options::compact_after_bytes`](crate::Options::compact_after_bytes); dropping the handle waits for a compaction in progress.
pub struct Log {
    shared: Arc<Shared>,
    /// The background compaction, if one was started.
    background: Mutex<Option<JoinHandle<()>>>,
}

/// What the handle and its background compaction share.
struct Shared {
    dir: PathBuf,
    /// Where the writer, compaction and the lock go, and what compaction reads the log
    /// through.
    store: Arc<dyn LogStore>,
    environment: Arc<dyn Environment>,
    policy: Policy,
    retention_ms: Option<u64>,
    compact_after_bytes: Option<u64>,
    /// [`Options::record_stale_starts`].
    record_stale_starts: bool,
    /// [`Options::crash_loop_threshold`] and [`Options::stop_loop_threshold`].
    thresholds: crate::fold::Thresholds,
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
    /// What [`Log::figures`] returns.
    figures: crate::metrics::Figures,
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
    stop: bool,
}

#[derive(Debug, Clone)]
enum Failure {
    Poisoned {
        kind: io::ErrorKind,
        cause: String,
        database: bool,
    },
    /// The log was taken over (a fleet's fencing): every call says so.
    Fenced(FencedError),
    Closed,
}

impl Failure {
    fn to_error(&self) -> Error {
        match self {
            Failure::Poisoned {
                kind,
                cause,
                database,
            } => Error::Poisoned {
                kind: *kind,
                cause: cause.clone(),
                database: *database,
            },
            Failure::Fenced(fenced) => fenced.clone().into(),
            Failure::Closed => Error::Closed,
        }
    }

    /// Whether commits stop: the handle failed (a closed handle still commits what it
    /// accepted before its shutdown record).
    fn stops_commits(&self) -> bool {
        !matches!(self, Failure::Closed)
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
