//! A simulated, crash-injecting storage: [`SimStorage`] implements [`Storage`] and
//! [`StorageFile`] in memory, deterministically from a seed, so that tests can put the log (or
//! any code written against the storage seam) through power losses, I/O errors and media faults
//! that a real disk only produces rarely.
//!
//! The behaviours are numbered as in the project's persistence model (F1 to F12).
//!
//! # State
//!
//! Every file is an inode with
//!
//! - its **durable** bytes: what a power loss cannot take away;
//! - its **pending** operations since its last successful sync, in order: writes (an offset and
//!   the bytes) and length changes;
//! - its **cache** view: what reads return, the page cache. Normally the durable bytes with the
//!   pending operations applied; after a failed sync (F7) it also holds data that will never
//!   reach the disk.
//!
//! Every directory is an inode with durable entries (name to inode) and a cache view of them.
//! Directory operations since the last directory sync (create, rename, remove, and the creation
//! of a subdirectory, which is an entry in its parent like any other) are pending operations.
//! They are kept in one ordered list tagged with the directories they touch, so that a rename
//! between two directories is one operation, made durable by a sync of either directory.
//!
//! A file handle refers to the inode, not the name, as in POSIX: it keeps working after its file
//! is renamed or removed.
//!
//! - [`StorageFile::sync_data`] and [`StorageFile::sync_all`] make the file's pending operations
//!   durable (the simulator treats metadata the same way for both).
//! - [`Storage::sync_dir`] makes the directory's pending entry operations durable, together with
//!   every earlier pending operation on the same names (so a synced `rename(a, b)` never lands
//!   without the earlier create of `a` it depends on).
//!
//! # Crashes (F1 to F6)
//!
//! [`SimStorage::crash`] simulates a power loss: it picks, with the seeded generator, one of
//! the states the persistence model allows and makes it the new durable and cache state.
//!
//! - **F1 lost writes**: any subset of each file's pending writes persists, not only a prefix.
//!   Each file draws a strategy: drop everything, keep everything, keep a prefix of the
//!   operations (an ordered file system), or decide each operation independently.
//! - **F2 torn writes**: a persisted write may be torn: only a prefix of it (cut anywhere, also
//!   inside a sector), or only some of its [`SECTOR_BYTES`] or [`PAGE_BYTES`] sectors, each
//!   possibly itself cut short. There is no atomicity inside a write's range. Outside it, by
//!   default, a crash changes nothing: the simulator assumes SQLite's "powersafe overwrite"
//!   (a crash never changes a byte outside the range a write covered), which the log relies
//!   on. [`SimStorage::set_sector_spill`] breaks it on purpose: an interrupted write may then
//!   also damage the synced bytes that share its first or last sector.
//! - **F3 garbage and zeros**: the parts of a torn write that did not persist read back as the
//!   old bytes, zeros, or random bytes, and the file's length may cover the whole write even if
//!   its last bytes did not persist. Even a lost write may leave the file longer, filled with
//!   zeros or random bytes (its length was persisted, its data not). By default a torn write
//!   can also destroy the old bytes it was overwriting, even when it rewrote them unchanged;
//!   [`SimStorage::set_overwrite_keeps_old_bytes`] asks for disks that only damage what a torn
//!   write appended. With the sector spill on, the bytes it damages around a write read back
//!   as zeros or random bytes too.
//! - **F4 length changes**: each unsynced [`StorageFile::set_len`] persists or is lost.
//! - **F5 names**: each unsynced create, rename or removal persists or is lost, independently:
//!   a new file can vanish, a removed file come back, a renamed file keep its old name (and a
//!   renamed file may hold contents that were never synced, since names and data are
//!   independent). One rule binds them, the one [`Storage::sync_dir`] follows: an operation
//!   persists only together with every earlier pending operation on a name it touches, so a
//!   rename never lands without the create of its source, nor a create without the earlier
//!   rename or removal that freed its name.
//! - **F6 crash points**: [`SimStorage::crash_after_ops`] lets the next `n` storage calls
//!   succeed and fails every later one with `io::ErrorKind::Other` ("simulated crash") until
//!   [`SimStorage::crash`] is called: the code under test stops exactly after call `n`, whether
//!   it is appending, recovering or compacting. [`SimStorage::op_count`] counts the calls of a
//!   workload, so a test can crash it at every point in turn, and again during the recovery
//!   that follows.
//!
//! [`SimStorage::crash_keep_nothing`] and [`SimStorage::crash_keep_everything`] ask for the two
//! extremes (every pending operation dropped, or all applied as if synced); [`CrashMode`] names
//! all three.
//!
//! After a crash every file handle opened before it is dead (every call on it returns an
//! error), every lock is released, nothing is pending, and the cache is the durable state.
//! Files no durable name reaches are gone.
//!
//! A crash cannot stop code that still runs: a [`Log`](inflight::Log) opened before the crash
//! fails on its dead file handles, but its clone of the `SimStorage` still works (clones share
//! one state). Drop the old log and reopen with a fresh clone, as in the example below.
//!
//! # Every crash state (tier 3)
//!
//! [`SimStorage::crash`] draws one state at random. For small workloads a test can instead try
//! them all, ALICE-style: [`SimStorage::crash_state_count`] says how many states a finite
//! enumeration of what F1 to F5 allow has, [`SimStorage::crash_into`] crashes into state number
//! `index` of it, and [`SimStorage::fork`] gives each attempt its own copy of the machine.
//! [`SimStorage::pending_summary`] lists the pending items for a failing test's message.
//!
//! ```
//! use std::path::Path;
//! use inflight::Storage;
//! use inflight_sim::sim::SimStorage;
//! use inflight::storage::write_all_at;
//!
//! let sim = SimStorage::new(7);
//! sim.create_dir_all(Path::new("/d"))?;
//! sim.sync_dir(Path::new("/"))?;
//! let file = sim.create(Path::new("/d/f"))?;
//! write_all_at(&*file, b"synced", 0)?;
//! file.sync_data()?;
//! sim.sync_dir(Path::new("/d"))?;
//! write_all_at(&*file, b" and not", 6)?; // pending: one write, 7 alternatives
//!
//! assert_eq!(sim.crash_state_count(), 7);
//! for state in 0..sim.crash_state_count() {
//!     let copy = sim.fork();
//!     copy.crash_into(state);
//!     let bytes = copy.file_bytes("/d/f").unwrap();
//!     assert!(bytes.starts_with(b"synced"), "state {state} of\n{}", sim.pending_summary());
//! }
//! # Ok::<(), inflight::storage::StoreError>(())
//! ```
//!
//! The pending items, in the enumeration's order: each file's pending writes and length
//! changes (files in inode order, which is creation order; each file's operations oldest
//! first), then the pending directory operations, oldest first. Each item has a list of
//! alternatives; the state count is the product of the list lengths (saturating at
//! `u64::MAX`), and `index` is read in mixed radix with the first item as the least significant
//! digit: item `i` takes alternative `(index / (c0 * c1 * ... * c(i-1))) % ci`. Alternative 0
//! of every item is "lost", so state 0 is the state [`SimStorage::crash_keep_nothing`] gives.
//!
//! - A **write** of the bytes `s..e`, cut at the [`SECTOR_BYTES`] boundaries into `n` sectors
//!   (the first and last may be partial). Let `least` and `greatest` be the shortest and longest
//!   the file can be just before it (from its synced length and the earlier pending operations
//!   on it). The alternatives, in this order:
//!   1. lost;
//!   2. lost, but the file grew to `e` (F3: its length persisted, its data not), the new bytes
//!      reading as zeros, then as garbage: these two only if `e > least`;
//!   3. persisted whole;
//!   4. torn (F2), for each kept pattern: if `n <= 4`, every non-empty proper subset of its
//!      sectors (`2^n - 2` patterns, among them the `n - 1` prefixes cut at a sector boundary);
//!      if `n > 4`, the `n - 1` prefixes cut at a sector boundary; then, if the first sector
//!      holds at least 2 bytes of the write, the prefix cut in the middle of that first sector.
//!      Each pattern comes with every fill of the parts that did not persist (F3): the old
//!      bytes, zeros, garbage; "old" is left out when `s >= greatest` (the old bytes are past
//!      the end of the file and read as zeros anyway), and when overwrites keep the old bytes
//!      ([`SimStorage::set_overwrite_keeps_old_bytes`]) a write inside the file (`e <= least`)
//!      only has "old". And with each length: the file covers the whole write, or, only if
//!      `e > least` and the pattern ends before `e`, the file ends at the last persisted byte
//!      (never shrinking). With that short length a prefix pattern of a write at
//!      `s >= greatest` leaves no unpersisted byte inside the file, so it counts once, not
//!      once per fill.
//!   5. only with the sector spill on ([`SimStorage::set_sector_spill`] with `Some(S)`): each
//!      alternative above but "persisted whole", in that order, again with damage around the
//!      write, for each of these runs of bytes in turn: the bytes before `s` in its first
//!      `S`-byte sector, then only the last of them (only if `s` is not a multiple of `S` and
//!      the file may hold bytes there: `s / S * S < greatest`); the bytes after `e` in its last
//!      sector, then only the last of them, that sector's last byte (only if `e` is not a
//!      multiple of `S` and `e < greatest`). Each reads as zeros, then as garbage. (A run of
//!      one byte comes once, not twice; bytes past the end of the file are not there to
//!      damage.)
//!
//!   A 3-sector write past the end of the file thus has 1 + 2 + 1 + 19 = 23 alternatives:
//!   7 patterns times 2 fills at full length, plus the 4 patterns ending early at short length
//!   (3 prefixes once, the middle sector alone with 2 fills). If it is an append that starts
//!   inside a sector (at an `s` that is not a multiple of `S`), the sector spill adds each of
//!   the 22 that are not "persisted whole" again 4 times (the bytes before it, or only the
//!   last of them, zeroed or garbage): 23 + 88 = 111.
//! - A **length change** ([`StorageFile::set_len`]): lost, persisted.
//! - A **directory operation** (create, rename, removal, a new directory's entry): lost,
//!   persisted. A "persisted" operation that the F5 rule above forbids (an earlier operation
//!   on one of its names was lost) is lost too, so some indices give the same state.
//!
//! Garbage is deterministic: it derives from the seed, the number of crashes so far and the
//! item's place, so the same state of the same simulator gives the same bytes. The random
//! [`SimStorage::crash`] applies its choices with the same code, choosing among the same kinds
//! of outcomes (and more of them: cuts anywhere, [`PAGE_BYTES`] sectors, sectors cut short).
//!
//! # Injected errors (F7 to F10)
//!
//! Tests arm faults explicitly, one-shot ([`SimStorage::fail_next`]), on the n-th matching call,
//! or with a probability drawn from the seeded generator ([`SimStorage::inject`] with a
//! [`FaultRule`]), each optionally only for paths containing a substring. Each [`Fault`] says
//! which calls it applies to.
//!
//! - **F7** a sync fails with EIO, with Linux's semantics: the file's pending operations stay
//!   visible in the cache but are dropped from the durable path, and the next sync returns `Ok`
//!   without writing them. A crash then loses them, whatever the later syncs said.
//! - **F8** a write fails with EIO (nothing written), with ENOSPC after a prefix of the buffer
//!   was written (that prefix is in the cache and pending), or is short (returns `Ok` with fewer
//!   bytes).
//! - **F9** a directory sync, rename, create or removal fails with EIO and changes nothing.
//! - **F10** a read fails with EIO or returns fewer bytes than it could.
//!
//! Errors use the raw OS error numbers a real file system returns (`EIO`, `ENOSPC`, as on
//! Linux), so the code under test handles exactly what it would see in production.
//!
//! # Media faults (F11, opt-in)
//!
//! [`SimStorage::corrupt_durable`] flips a bit, zeroes a [`SECTOR_BYTES`] sector or fills it with
//! garbage inside a file's durable bytes; [`SimStorage::random_media_fault`] picks the file, the
//! place and the kind with the seeded generator. The damage shows in the cache too, except
//! where the cache holds newer, unsynced bytes.
//!
//! **F12** (a lost or misdirected synced write) is out of scope: with a single copy of the data
//! no storage layer can detect it, so the simulator does not produce it.
//!
//! # Replay and the trace
//!
//! Everything random comes from generators seeded by [`SimStorage::new`]'s seed: the same seed
//! and the same sequence of calls give the same crash states, faults and trace. There is no
//! clock and no global randomness. (For bit-for-bit equal file contents the code under test
//! must be deterministic too; for the log, give [`Options::environment`](inflight::Options) a fixed
//! clock and salts.)
//!
//! Every storage call is recorded ([`SimStorage::trace`], [`TraceEntry`]) with its operation,
//! path, offset, length, injected fault and result, and so are crashes and media faults;
//! [`SimStorage::trace_text`] and [`SimStorage::trace_text_last`] render it for a failing
//! test's message.
//!
//! # Other details
//!
//! - Paths are plain paths, resolved from one root: `/`, `.` and the empty path are the root,
//!   `a/b` and `/a/b` are the same file, `..` goes up a level. Names must be UTF-8.
//! - [`Storage::create`] fails with `AlreadyExists` if the name exists, [`Storage::open`] and
//!   [`Storage::remove`] with `NotFound` if it does not, and [`Storage::rename`] replaces its
//!   target. Only files can be renamed or removed.
//! - [`Storage::list`] returns the cache view's names in a seeded random order, since a real
//!   directory promises no order either.
//! - [`Storage::lock`] is an in-memory exclusive lock per directory. Like the real one it
//!   creates a `LOCK` file holding the (fake) pid [`FAKE_PID`]; a second taker gets
//!   [`LockError::Held`] with that pid. Dropping the [`DirLock`] or a crash releases it.
//! - A file can grow to at most [`FILE_BYTES_MAX`] bytes (everything lives in memory).
//!
//! # Example: crash-testing your own code
//!
//! Stop a workload after every possible number of storage calls, crash, reopen, and check that
//! the log holds exactly the acknowledged events, plus perhaps the one in flight:
//!
//! ```
//! use std::sync::Arc;
//! use inflight_sim::sim::SimStorage;
//! use inflight::{Generation, Log, Opened, Options, Run, UnixMs};
//!
//! /// The workload: start runs a and b, complete b, start c.
//! const STEPS: [(&str, bool); 4] = [("a", true), ("b", true), ("b", false), ("c", true)];
//!
//! /// Runs the workload; returns how many steps were acknowledged. The next one, if any, failed
//! /// or was in flight when the simulated crash stopped it.
//! fn workload(sim: &SimStorage) -> usize {
//!     let opened = Log::open_with_storage(Arc::new(sim.clone()), "/srv/log", Options::default());
//!     let Ok(Opened { log, .. }) = opened else {
//!         return 0; // the crash came during open (during recovery)
//!     };
//!     for (done, &(key, start)) in STEPS.iter().enumerate() {
//!         let result = if start {
//!             log.mark_running(Run::new(key, "session", Generation(1), UnixMs(1_000))).map(drop)
//!         } else {
//!             log.mark_completed_at(key, 1, UnixMs(2_000)).map(drop)
//!         };
//!         if result.is_err() {
//!             return done;
//!         }
//!     }
//!     STEPS.len()
//! }
//!
//! /// The runs in flight after the first `n` steps, sorted.
//! fn running_after(n: usize) -> Vec<&'static str> {
//!     let mut running: Vec<&str> = STEPS[..n].iter().filter(|s| s.1).map(|s| s.0).collect();
//!     running.retain(|key| !STEPS[..n].contains(&(*key, false)));
//!     running.sort();
//!     running
//! }
//!
//! // How many storage calls the whole workload makes.
//! let full = SimStorage::new(0);
//! workload(&full);
//! let calls = full.op_count();
//!
//! for crash_point in 0..=calls {
//!     for seed in 0..4 {
//!         let sim = SimStorage::new(seed);
//!         sim.crash_after_ops(crash_point);
//!         let acked = workload(&sim);
//!         sim.crash(); // power loss: unsynced data and names may be lost, torn or kept
//!
//!         let Opened { log: _log, report } =
//!             Log::open_with_storage(Arc::new(sim.clone()), "/srv/log", Options::default())?;
//!         let mut running: Vec<&str> = report.running.iter().map(|r| r.run.key.as_str()).collect();
//!         running.sort();
//!         // Every acknowledged step survived; the step in flight may have, too.
//!         let allowed = [running_after(acked), running_after((acked + 1).min(STEPS.len()))];
//!         assert!(
//!             allowed.contains(&running),
//!             "seed {seed}, crash point {crash_point}: running {running:?}, expected one of \
//!              {allowed:?}\n{}",
//!             sim.trace_text_last(30)
//!         );
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Where the crash model lives, by file: `inodes` (the files, directories and what is pending),
// `vfs` (the storage calls on them), `crash` (what a power loss does, F1 to F6),
// `crash_states` (the enumeration of every crash state), `faults` (injected errors, F7 to F10),
// `media` (media faults, F11), `trace` (the record of every call), `inspect` (what a test reads
// of the state without a storage call).
mod crash;
mod crash_states;
mod faults;
mod inodes;
mod inspect;
mod media;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
mod trace;
mod vfs;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use fastrand::Rng;

pub use crash::CrashMode;
pub use faults::{Fault, FaultRule, Trigger};
pub use media::MediaFault;
pub use trace::{OpKind, TraceEntry};

use crash_states::{choose, state_count};
use faults::ArmedRule;
use trace::Rec;
use vfs::{DirNode, DirOp, Ino, Node, ROOT, View};

use inflight::storage::StoreResult;
#[cfg(doc)]
use inflight::storage::{DirLock, LockError, Storage, StorageFile};

/// A disk sector: the unit of the torn writes (F2) and of the sector media faults (F11).
pub const SECTOR_BYTES: u64 = 512;
/// A page, or a 4 KiB-sector disk: the other unit of torn writes (F2).
pub const PAGE_BYTES: u64 = 4096;
/// The pid [`Storage::lock`] writes into the `LOCK` file and reports in [`LockError::Held`].
pub const FAKE_PID: u32 = 4242;
/// The largest length a simulated file may reach; a write or `set_len` past it fails with
/// `io::ErrorKind::FileTooLarge`.
pub const FILE_BYTES_MAX: u64 = 1 << 31;

/// Mixed into the seed for the fault generator, so that arming a probabilistic fault does not
/// change which crash states the seed gives.
const FAULT_SEED_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// The simulated storage. Cheap to clone: clones share one state (one simulated machine);
/// [`SimStorage::fork`] makes an independent copy. See the [module documentation](self).
#[derive(Clone)]
pub struct SimStorage {
    shared: Arc<Mutex<Inner>>,
}

impl fmt::Debug for SimStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner();
        let files = inner.files().count();
        let pending_writes: usize = inner.files().map(|(_, file)| file.pending.len()).sum();
        f.debug_struct("SimStorage")
            .field("seed", &inner.seed)
            .field("op_count", &inner.op_count)
            .field("crashes", &inner.epoch)
            .field("files", &files)
            .field("pending_file_ops", &pending_writes)
            .field("pending_dir_ops", &inner.dir_ops.len())
            .finish_non_exhaustive()
    }
}

impl SimStorage {
    /// An empty storage (only the root directory exists) whose every random choice derives
    /// from `seed`.
    pub fn new(seed: u64) -> SimStorage {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, Node::Dir(DirNode::default()));
        SimStorage {
            shared: Arc::new(Mutex::new(Inner {
                seed,
                crash_rng: Rng::with_seed(seed),
                fault_rng: Rng::with_seed(seed ^ FAULT_SEED_SALT),
                nodes,
                next_ino: ROOT + 1,
                dir_ops: Vec::new(),
                epoch: 0,
                locks: BTreeSet::new(),
                faults: Vec::new(),
                stop_at: None,
                op_count: 0,
                trace: Vec::new(),
                fired: None,
                overwrite_keeps_old: false,
                sector_spill: None,
            })),
        }
    }

    /// The seed this storage was created with.
    pub fn seed(&self) -> u64 {
        self.inner().seed
    }

    /// Simulates a power loss, keeping a random state among those F1 to F5 allow. See
    /// [`CrashMode::Random`].
    pub fn crash(&self) {
        self.crash_with(CrashMode::Random);
    }

    /// Simulates a power loss that loses every unsynced operation.
    pub fn crash_keep_nothing(&self) {
        self.crash_with(CrashMode::KeepNothing);
    }

    /// Simulates a power loss after which every unsynced operation persisted.
    pub fn crash_keep_everything(&self) {
        self.crash_with(CrashMode::KeepEverything);
    }

    /// Simulates a power loss in the given mode: afterwards every old file handle is dead,
    /// every lock is released, nothing is pending, and a stop armed by
    /// [`SimStorage::crash_after_ops`] is lifted.
    pub fn crash_with(&self, mode: CrashMode) {
        self.inner().crash(mode);
    }

    /// A deep, independent copy of the whole simulated machine: files (durable bytes, cache,
    /// pending operations), directories and their pending operations, the trace, the random
    /// generators' states, the armed faults, the crash point and the call count, the disk
    /// settings ([`SimStorage::set_overwrite_keeps_old_bytes`], [`SimStorage::set_sector_spill`]). From then on nothing done to one changes the other, and both make the same
    /// random choices for the same calls.
    ///
    /// File handles and locks are not copied: handles opened on `self` keep working on `self`
    /// only, and the fork starts with every lock released, because the [`DirLock`] guards
    /// belong to `self` (dropping one releases `self`'s lock), so a lock copied into the fork
    /// could never be released but by a crash. The fork is the machine as a new process finds
    /// it: nothing open, nothing locked, the `LOCK` files still there.
    pub fn fork(&self) -> SimStorage {
        let mut copy = self.inner().clone();
        copy.locks.clear();
        SimStorage {
            shared: Arc::new(Mutex::new(copy)),
        }
    }

    /// How many crash states the enumeration of [`SimStorage::crash_into`] has from the current
    /// pending operations: the product of each pending item's number of alternatives,
    /// saturating at `u64::MAX`. 1 when nothing is pending. See "Every crash state" in the
    /// [module documentation](self) for the alternatives.
    pub fn crash_state_count(&self) -> u64 {
        state_count(&self.inner().pending_items())
    }

    /// Simulates a power loss that leaves crash state number `index` of the enumeration (see
    /// "Every crash state" in the [module documentation](self)), with the same other effects as
    /// [`SimStorage::crash`]: old handles dead, locks released, nothing pending, the cache is
    /// the durable state, the crash point lifted, a crash entry in the trace. The same index
    /// from the same state gives the same result, garbage included.
    ///
    /// # Panics
    ///
    /// If `index` is not below [`SimStorage::crash_state_count`]; nothing is changed then.
    pub fn crash_into(&self, index: u64) {
        let mut inner = self.inner();
        let items = inner.pending_items();
        let count = state_count(&items);
        if index >= count {
            let summary = inner.summary(&items);
            drop(inner);
            panic!("no crash state {index}: the enumeration has {count}\n{summary}");
        }
        let outcomes = choose(items, index);
        inner.apply_crash(outcomes, &format!("state {index} of {count}"));
    }

    /// The pending items of the enumeration, one a line with its number of alternatives, after
    /// a line with their count and the number of crash states: for a failing test's message.
    pub fn pending_summary(&self) -> String {
        let inner = self.inner();
        inner.summary(&inner.pending_items())
    }

    /// F2 and F3, inside a write's range: when `on`, the parts of a torn write that did not
    /// persist keep the bytes they were overwriting (only bytes past the old end of the file
    /// can read back as zeros or garbage), as on a disk whose firmware keeps the old copy of a
    /// sector until the new one is complete. Off by default: the persistence model assumes no
    /// atomicity, so a crash can damage the old bytes a torn write was overwriting, even when
    /// it rewrote them unchanged. Bytes outside the write's range are another matter: see
    /// [`SimStorage::set_sector_spill`].
    pub fn set_overwrite_keeps_old_bytes(&self, on: bool) {
        self.inner().overwrite_keeps_old = on;
    }

    /// The former name of [`SimStorage::set_overwrite_keeps_old_bytes`]. SQLite's "powersafe
    /// overwrite" is a different promise (that a crash never changes a byte outside the range
    /// a write covered), the one [`SimStorage::set_sector_spill`] breaks.
    #[deprecated(
        note = "renamed set_overwrite_keeps_old_bytes; SQLite's powersafe overwrite is what \
                set_sector_spill(Some(_)) breaks"
    )]
    pub fn set_powersafe_overwrite(&self, on: bool) {
        self.set_overwrite_keeps_old_bytes(on);
    }

    /// F2 outside a write's range, an opt-in violation of SQLite's "powersafe overwrite" (the
    /// promise that a crash never changes a byte outside the range a write covered). With
    /// `Some(sector)`, a pending write that a crash loses or tears may also damage the bytes
    /// that share a `sector`-byte sector with it: before its start in its first sector, after
    /// its end in its last sector. They read back as zeros or garbage even though they were
    /// synced long before, as on a disk whose sector writes are not atomic, interrupted while
    /// it rewrote a partly written sector whole. A write that persisted whole damages nothing.
    ///
    /// A random crash ([`SimStorage::crash`]) damages, for half of the writes it interrupts,
    /// the bytes around one end of the write from a random cut in that sector onwards. The
    /// enumeration ([`SimStorage::crash_state_count`], [`SimStorage::crash_into`]) gets extra
    /// alternatives, listed in "Every crash state" in the [module documentation](self), after
    /// all the others: with `None` (the default) every count and every state is what it was.
    ///
    /// # Panics
    ///
    /// If `sector` is `Some(0)`.
    pub fn set_sector_spill(&self, sector: Option<u64>) {
        assert!(sector != Some(0), "a sector holds at least one byte");
        self.inner().sector_spill = sector;
    }

    /// F6: lets the next `n` storage calls run, then fails every later call with
    /// `io::ErrorKind::Other` ("simulated crash") until the next crash. `0` stops the very
    /// next call.
    pub fn crash_after_ops(&self, n: u64) {
        let mut inner = self.inner();
        inner.stop_at = Some(inner.op_count.saturating_add(n));
    }

    /// Whether the crash point armed by [`SimStorage::crash_after_ops`] was reached: a call
    /// has been refused since, and every later one will be until the next crash.
    pub fn is_stopped(&self) -> bool {
        let inner = self.inner();
        inner.stop_at.is_some_and(|stop| inner.op_count > stop)
    }

    /// How many storage calls were made since the storage was created (failed ones included,
    /// crashes not).
    pub fn op_count(&self) -> u64 {
        self.inner().op_count
    }

    /// Arms `fault` for the next call it applies to, on any path.
    pub fn fail_next(&self, fault: Fault) {
        self.inject(FaultRule::once(fault));
    }

    /// Arms a fault rule. Rules are checked in the order they were armed; the first that fires
    /// decides the call's fault.
    pub fn inject(&self, rule: FaultRule) {
        self.inner().faults.push(ArmedRule { rule, seen: 0 });
    }

    /// Disarms every fault rule.
    pub fn clear_faults(&self) {
        self.inner().faults.clear();
    }

    /// F11: damages the durable bytes of the file at `path` (resolved through the current
    /// names) at `offset`. Fails with `NotFound` if there is no such file and `InvalidInput` if
    /// `offset` is not inside its durable bytes.
    pub fn corrupt_durable(
        &self,
        path: impl AsRef<Path>,
        offset: u64,
        kind: MediaFault,
    ) -> io::Result<()> {
        let path = path.as_ref();
        let mut inner = self.inner();
        let ino = inner.lookup_file(path, View::Cache)?;
        inner.corrupt(ino, path, offset, kind)
    }

    /// F11: damages a random place of a random file's durable bytes with a random kind of
    /// media fault. Returns what it did, or `None` if no file has durable bytes.
    pub fn random_media_fault(&self) -> Option<(PathBuf, u64, MediaFault)> {
        let mut inner = self.inner();
        let candidates: Vec<(PathBuf, Ino)> = inner
            .walk(View::Cache)
            .into_iter()
            .filter(|&(_, ino)| inner.file(ino).is_ok_and(|f| !f.durable.is_empty()))
            .collect();
        let (path, ino) = inner.crash_rng.choice(candidates)?;
        let len = inner.file(ino).ok()?.durable.len() as u64;
        let offset = inner.crash_rng.u64(0..len);
        let kind = match inner.crash_rng.u8(0..3) {
            0 => MediaFault::BitFlip,
            1 => MediaFault::ZeroSector,
            _ => MediaFault::GarbageSector,
        };
        inner.corrupt(ino, &path, offset, kind).ok()?;
        Some((path, offset, kind))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every change to the state is made whole under the lock, so it is consistent even if a
        // thread panicked while holding it.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone)]
struct Inner {
    seed: u64,
    /// Drives crash states and media faults.
    crash_rng: Rng,
    /// Drives probabilistic faults, short reads and writes, and listing order.
    fault_rng: Rng,
    nodes: BTreeMap<Ino, Node>,
    next_ino: Ino,
    /// Pending directory operations, oldest first.
    dir_ops: Vec<DirOp>,
    /// Number of crashes so far; handles and locks from an earlier epoch are dead.
    epoch: u64,
    /// Locked directories.
    locks: BTreeSet<Ino>,
    faults: Vec<ArmedRule>,
    /// The call number from which every call fails (F6).
    stop_at: Option<u64>,
    op_count: u64,
    trace: Vec<TraceEntry>,
    /// The fault injected into the call in progress, for its trace entry.
    fired: Option<Fault>,
    /// Whether a torn write leaves the old bytes it overwrote intact.
    overwrite_keeps_old: bool,
    /// The sector size whose neighbours an interrupted write may damage, if any.
    sector_spill: Option<u64>,
}

impl Inner {
    /// Runs one storage call: numbers it, fails it if the crash point was reached, and records
    /// it in the trace.
    fn call<T>(
        &mut self,
        rec: Rec,
        f: impl FnOnce(&mut Inner) -> io::Result<T>,
        describe: impl FnOnce(&io::Result<T>) -> Result<u64, String>,
    ) -> StoreResult<T> {
        let index = self.op_count;
        self.op_count += 1;
        self.fired = None;
        let result = if self.stop_at.is_some_and(|stop| index >= stop) {
            Err(io::Error::other("simulated crash"))
        } else {
            f(self)
        };
        self.trace.push(TraceEntry {
            index,
            op: rec.op,
            path: rec.path,
            offset: rec.offset,
            len: rec.len,
            fault: self.fired.take(),
            detail: rec.detail,
            result: describe(&result),
        });
        Ok(result?)
    }
}

/// A simulated path as traces and summaries show it: with `/` between its parts on every
/// platform (the simulated file system is the same everywhere, and so are its traces).
pub(crate) fn shown(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    if cfg!(windows) {
        text.replace('\\', "/")
    } else {
        text
    }
}
