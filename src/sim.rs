//! A simulated, crash-injecting storage: [`SimStorage`] implements [`Storage`] and
//! [`StorageFile`] in memory, deterministically from a seed, so that tests can put the log (or
//! any code written against the storage seam) through power losses, I/O errors and media faults
//! that a real disk only produces rarely. Compiled only with the cargo feature `sim`.
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
//!   possibly itself cut short.
//! - **F3 garbage and zeros**: the parts of a torn write that did not persist read back as the
//!   old bytes, zeros, or random bytes, and the file's length may cover the whole write even if
//!   its last bytes did not persist. Even a lost write may leave the file longer, filled with
//!   zeros or random bytes (its length was persisted, its data not). By default there is no
//!   atomicity at all, so a torn write can also destroy the old bytes it was overwriting, even
//!   when it rewrote them unchanged; [`SimStorage::set_powersafe_overwrite`] asks for disks
//!   that only damage what a torn write appended (SQLite's "powersafe overwrite").
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
//! A crash cannot stop code that still runs: a [`Log`](crate::Log) opened before the crash
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
//! use inflight::sim::SimStorage;
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
//! # Ok::<(), std::io::Error>(())
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
//!      the end of the file and read as zeros anyway), and with powersafe overwrite
//!      ([`SimStorage::set_powersafe_overwrite`]) a write inside the file (`e <= least`) only
//!      has "old". And with each length: the file covers the whole write, or, only if
//!      `e > least` and the pattern ends before `e`, the file ends at the last persisted byte
//!      (never shrinking). With that short length a prefix pattern of a write at
//!      `s >= greatest` leaves no unpersisted byte inside the file, so it counts once, not
//!      once per fill.
//!
//!   A 3-sector write past the end of the file thus has 1 + 2 + 1 + 19 = 23 alternatives:
//!   7 patterns times 2 fills at full length, plus the 4 patterns ending early at short length
//!   (3 prefixes once, the middle sector alone with 2 fills).
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
//! must be deterministic too; for the log, give [`Options::environment`](crate::Options) a fixed
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
//! use inflight::sim::SimStorage;
//! use inflight::{Log, Options, Run};
//!
//! /// The workload: start runs a and b, complete b, start c.
//! const STEPS: [(&str, bool); 4] = [("a", true), ("b", true), ("b", false), ("c", true)];
//!
//! /// Runs the workload; returns how many steps were acknowledged. The next one, if any, failed
//! /// or was in flight when the simulated crash stopped it.
//! fn workload(sim: &SimStorage) -> usize {
//!     let opened = Log::open_with_storage(Arc::new(sim.clone()), "/srv/log", Options::default());
//!     let Ok((log, _)) = opened else {
//!         return 0; // the crash came during open (during recovery)
//!     };
//!     for (done, &(key, start)) in STEPS.iter().enumerate() {
//!         let result = if start {
//!             log.mark_running(Run::new(key, "session", 1, 1_000)).map(drop)
//!         } else {
//!             log.mark_completed_at(key, 1, 2_000).map(drop)
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
//!         let (_log, report) =
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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::mem;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use fastrand::Rng;

use crate::storage::{DirLock, LOCK_FILE, LockError, Storage, StorageFile};

/// A disk sector: the unit of the torn writes (F2) and of the sector media faults (F11).
pub const SECTOR_BYTES: u64 = 512;
/// A page, or a 4 KiB-sector disk: the other unit of torn writes (F2).
pub const PAGE_BYTES: u64 = 4096;
/// The pid [`Storage::lock`] writes into the `LOCK` file and reports in [`LockError::Held`].
pub const FAKE_PID: u32 = 4242;
/// The largest length a simulated file may reach; a write or `set_len` past it fails with
/// `io::ErrorKind::FileTooLarge`.
pub const FILE_BYTES_MAX: u64 = 1 << 31;

/// Linux's "I/O error".
const EIO: i32 = 5;
/// Linux's "bad file descriptor".
const EBADF: i32 = 9;
/// Linux's "no space left on device".
const ENOSPC: i32 = 28;

/// Mixed into the seed for the fault generator, so that arming a probabilistic fault does not
/// change which crash states the seed gives.
const FAULT_SEED_SALT: u64 = 0x9e37_79b9_7f4a_7c15;
/// Mixed into the seed for the garbage of the crash-state enumeration.
const GARBAGE_SEED_SALT: u64 = 0x2545_f491_4f6c_dd1d;

/// The root directory's inode.
const ROOT: Ino = 0;

type Ino = u64;

/// What a crash does with the pending operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CrashMode {
    /// A state chosen by the seeded generator among those F1 to F5 allow.
    #[default]
    Random,
    /// Every pending operation is lost: only what was synced remains.
    KeepNothing,
    /// Every pending operation persists, as if everything had been synced (except data a failed
    /// sync already dropped, F7).
    KeepEverything,
}

/// An error to inject into one storage call. Each applies to the calls [`Fault::applies_to`]
/// lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// F7: `sync_data` or `sync_all` fails with EIO; the file's pending operations stay in the
    /// cache but will never become durable, and the next sync succeeds without writing them.
    SyncEio,
    /// F8: `write_at` fails with EIO and writes nothing.
    WriteEio,
    /// F8: `write_at` writes a random prefix of the buffer (possibly empty; it lands in the
    /// cache as a pending write) and then fails with ENOSPC.
    WriteNoSpace,
    /// F8: `write_at` writes a random non-empty prefix of the buffer and returns `Ok` with its
    /// length (a buffer of one byte is written whole).
    WriteShort,
    /// F9: `sync_dir` fails with EIO; the directory's pending operations stay pending (a crash
    /// may keep or lose each).
    SyncDirEio,
    /// F9: `rename` fails with EIO and changes nothing.
    RenameEio,
    /// F9: `create` or `create_dir_all` fails with EIO and creates nothing.
    CreateEio,
    /// F9: `remove` fails with EIO and removes nothing.
    RemoveEio,
    /// `open` fails with EIO.
    OpenEio,
    /// `set_len` fails with EIO and changes nothing.
    SetLenEio,
    /// `list` fails with EIO.
    ListEio,
    /// F10: `read_at` fails with EIO.
    ReadEio,
    /// F10: `read_at` returns a random non-empty part of what it could have read (a read of one
    /// byte is whole).
    ReadShort,
}

impl Fault {
    /// The storage calls this fault can be injected into.
    pub fn applies_to(self) -> &'static [OpKind] {
        match self {
            Fault::SyncEio => &[OpKind::SyncData, OpKind::SyncAll],
            Fault::WriteEio | Fault::WriteNoSpace | Fault::WriteShort => &[OpKind::WriteAt],
            Fault::SyncDirEio => &[OpKind::SyncDir],
            Fault::RenameEio => &[OpKind::Rename],
            Fault::CreateEio => &[OpKind::Create, OpKind::CreateDirAll],
            Fault::RemoveEio => &[OpKind::Remove],
            Fault::OpenEio => &[OpKind::Open],
            Fault::SetLenEio => &[OpKind::SetLen],
            Fault::ListEio => &[OpKind::List],
            Fault::ReadEio | Fault::ReadShort => &[OpKind::ReadAt],
        }
    }
}

/// When an armed [`FaultRule`] fires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trigger {
    /// On the n-th matching call from now (1 is the next one), then the rule is disarmed.
    Nth(u64),
    /// On each matching call with this probability (0.0 to 1.0), drawn from the seeded
    /// generator; stays armed until [`SimStorage::clear_faults`].
    Probability(f64),
}

/// A fault armed by a test: which fault, on which paths, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    /// The fault to inject.
    pub fault: Fault,
    /// Only calls whose path contains this substring match (for file calls, the path the file
    /// was opened or created with). `None` matches every path.
    pub path_contains: Option<String>,
    /// When the rule fires.
    pub trigger: Trigger,
}

impl FaultRule {
    /// Fires on the next matching call, once.
    pub fn once(fault: Fault) -> FaultRule {
        FaultRule::nth(fault, 1)
    }

    /// Fires on the n-th matching call from now (1 is the next), once.
    pub fn nth(fault: Fault, n: u64) -> FaultRule {
        FaultRule {
            fault,
            path_contains: None,
            trigger: Trigger::Nth(n.max(1)),
        }
    }

    /// Fires on each matching call with probability `p`, drawn from the seeded generator.
    pub fn with_probability(fault: Fault, p: f64) -> FaultRule {
        FaultRule {
            fault,
            path_contains: None,
            trigger: Trigger::Probability(p),
        }
    }

    /// This rule, restricted to paths containing `substring`.
    pub fn on_path(mut self, substring: impl Into<String>) -> FaultRule {
        self.path_contains = Some(substring.into());
        self
    }
}

/// A media fault in synced data (F11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaFault {
    /// One bit of the byte at the offset flips.
    BitFlip,
    /// The [`SECTOR_BYTES`] sector holding the offset reads as zeros.
    ZeroSector,
    /// The [`SECTOR_BYTES`] sector holding the offset reads as random bytes.
    GarbageSector,
}

/// The kinds of entries in the trace: one per storage call, plus crashes and media faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// [`Storage::create_dir_all`].
    CreateDirAll,
    /// [`Storage::is_dir`].
    IsDir,
    /// [`Storage::list`].
    List,
    /// [`Storage::create`].
    Create,
    /// [`Storage::open`].
    Open,
    /// [`Storage::rename`].
    Rename,
    /// [`Storage::remove`].
    Remove,
    /// [`Storage::sync_dir`].
    SyncDir,
    /// [`Storage::lock`].
    Lock,
    /// [`StorageFile::read_at`].
    ReadAt,
    /// [`StorageFile::write_at`].
    WriteAt,
    /// [`StorageFile::len`].
    Len,
    /// [`StorageFile::set_len`].
    SetLen,
    /// [`StorageFile::sync_data`].
    SyncData,
    /// [`StorageFile::sync_all`].
    SyncAll,
    /// Not a storage call: a simulated power loss ([`SimStorage::crash`]).
    Crash,
    /// Not a storage call: an injected media fault ([`SimStorage::corrupt_durable`]).
    MediaFault,
}

impl OpKind {
    /// Whether this entry is a storage call (counted by [`SimStorage::op_count`]).
    pub fn is_call(self) -> bool {
        !matches!(self, OpKind::Crash | OpKind::MediaFault)
    }

    fn name(self) -> &'static str {
        match self {
            OpKind::CreateDirAll => "create_dir_all",
            OpKind::IsDir => "is_dir",
            OpKind::List => "list",
            OpKind::Create => "create",
            OpKind::Open => "open",
            OpKind::Rename => "rename",
            OpKind::Remove => "remove",
            OpKind::SyncDir => "sync_dir",
            OpKind::Lock => "lock",
            OpKind::ReadAt => "read_at",
            OpKind::WriteAt => "write_at",
            OpKind::Len => "len",
            OpKind::SetLen => "set_len",
            OpKind::SyncData => "sync_data",
            OpKind::SyncAll => "sync_all",
            OpKind::Crash => "crash",
            OpKind::MediaFault => "media_fault",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One recorded storage call (or crash, or media fault).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// For a storage call, its number (0 for the first call); for a crash or media fault, the
    /// number of calls made before it.
    pub index: u64,
    /// The operation.
    pub op: OpKind,
    /// The path it was given (for file calls, the path the file was opened or created with;
    /// empty for a crash).
    pub path: PathBuf,
    /// The offset of a read, write or media fault; the new length of a `set_len`.
    pub offset: Option<u64>,
    /// The length of the buffer of a read or write.
    pub len: Option<u64>,
    /// The fault injected into this call, if any.
    pub fault: Option<Fault>,
    /// More about the entry: a rename's target, a crash's summary, a media fault's kind.
    pub detail: String,
    /// The outcome: on success a number that depends on the call (bytes read or written, the
    /// length, the number of names listed, 1 or 0 for `is_dir`, the inode of a created or
    /// opened file, 0 otherwise); on failure the error's text.
    pub result: Result<u64, String>,
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.op.is_call() {
            write!(f, "----- after call {}: {}", self.index, self.op)?;
            if !self.path.as_os_str().is_empty() {
                write!(f, " {}", self.path.display())?;
            }
            if let Some(offset) = self.offset {
                write!(f, " off={offset}")?;
            }
            return write!(f, " {} -----", self.detail);
        }
        write!(
            f,
            "#{:<5} {:<14} {}",
            self.index,
            self.op,
            self.path.display()
        )?;
        if let Some(offset) = self.offset {
            write!(f, " off={offset}")?;
        }
        if let Some(len) = self.len {
            write!(f, " len={len}")?;
        }
        if !self.detail.is_empty() {
            write!(f, " {}", self.detail)?;
        }
        match &self.result {
            Ok(v) => write!(f, " -> Ok({v})")?,
            Err(e) => write!(f, " -> Err({e})")?,
        }
        if let Some(fault) = self.fault {
            write!(f, " [injected {fault:?}]")?;
        }
        Ok(())
    }
}

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
                powersafe_overwrite: false,
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
    /// generators' states, the armed faults, the crash point and the call count, the powersafe
    /// setting. From then on nothing done to one changes the other, and both make the same
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

    /// F2 and F3: when `on`, the parts of a torn write that did not persist keep the bytes they
    /// were overwriting (only bytes past the old end of the file can read back as zeros or
    /// garbage), as on a disk whose sector writes are atomic or whose firmware keeps the old
    /// copy until the new one is complete. Off by default: the persistence model assumes no
    /// atomicity, so a crash can damage bytes that a torn write was overwriting.
    pub fn set_powersafe_overwrite(&self, on: bool) {
        self.inner().powersafe_overwrite = on;
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

    /// Every storage call, crash and media fault so far, in order.
    pub fn trace(&self) -> Vec<TraceEntry> {
        self.inner().trace.clone()
    }

    /// The whole trace, one entry a line.
    pub fn trace_text(&self) -> String {
        self.trace_text_last(usize::MAX)
    }

    /// The last `n` entries of the trace, one a line.
    pub fn trace_text_last(&self, n: usize) -> String {
        let inner = self.inner();
        let skip = inner.trace.len().saturating_sub(n);
        let mut text = String::new();
        if skip > 0 {
            text.push_str(&format!("({skip} earlier entries not shown)\n"));
        }
        for entry in &inner.trace[skip..] {
            text.push_str(&entry.to_string());
            text.push('\n');
        }
        text
    }

    /// The durable length of the file at `path` (resolved through the current names), or
    /// `None` if there is no such file.
    pub fn durable_len(&self, path: impl AsRef<Path>) -> Option<u64> {
        self.with_file(path.as_ref(), |f| f.durable.len() as u64)
    }

    /// The cache view of the file at `path`: what a read returns now.
    pub fn file_bytes(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        self.with_file(path.as_ref(), |f| f.cache.clone())
    }

    /// The durable bytes of the file at `path` (resolved through the current names).
    pub fn durable_bytes(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        self.with_file(path.as_ref(), |f| f.durable.clone())
    }

    /// The durable names in directory `dir` (resolved through durable names), sorted: what
    /// [`Storage::list`] would return after a crash that lost every pending operation.
    pub fn durable_list(&self, dir: impl AsRef<Path>) -> Option<Vec<String>> {
        let inner = self.inner();
        let ino = inner.lookup(dir.as_ref(), View::Durable).ok()?;
        let dir = inner.dir(ino).ok()?;
        Some(dir.durable.keys().cloned().collect())
    }

    fn with_file<T>(&self, path: &Path, f: impl FnOnce(&FileNode) -> T) -> Option<T> {
        let inner = self.inner();
        let ino = inner.lookup_file(path, View::Cache).ok()?;
        inner.file(ino).ok().map(f)
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every change to the state is made whole under the lock, so it is consistent even if a
        // thread panicked while holding it.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open_file(&self, inner: &Inner, ino: Ino, path: &Path, writable: bool) -> SimFile {
        SimFile {
            shared: Arc::clone(&self.shared),
            ino,
            epoch: inner.epoch,
            writable,
            path: path.to_path_buf(),
        }
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut inner = self.inner();
        inner.call(
            Rec::new(OpKind::CreateDirAll, dir),
            |inner| {
                if inner.fault(OpKind::CreateDirAll, dir).is_some() {
                    return Err(eio());
                }
                let names = components(dir)?;
                let mut cur = ROOT;
                for (i, name) in names.iter().enumerate() {
                    let existing = inner.dir(cur)?.cache.get(name).copied();
                    cur = match existing {
                        Some(ino) if inner.dir(ino).is_ok() => ino,
                        Some(_) if i + 1 == names.len() => {
                            return Err(io::Error::new(
                                io::ErrorKind::AlreadyExists,
                                "a file exists with that name",
                            ));
                        }
                        Some(_) => return Err(not_a_directory()),
                        None => {
                            let ino = inner.new_node(Node::Dir(DirNode::default()));
                            // F5: the new directory's name is a pending entry of its parent.
                            inner.dir_op(vec![EntrySet::link(cur, name, ino)])?;
                            ino
                        }
                    };
                }
                Ok(())
            },
            zero,
        )
    }

    fn is_dir(&self, dir: &Path) -> io::Result<bool> {
        let mut inner = self.inner();
        inner.call(
            Rec::new(OpKind::IsDir, dir),
            |inner| match inner.lookup(dir, View::Cache) {
                Ok(ino) => Ok(inner.dir(ino).is_ok()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    Ok(false)
                }
                Err(e) => Err(e),
            },
            |r| r.as_ref().map(|&b| u64::from(b)).map_err(|e| e.to_string()),
        )
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut inner = self.inner();
        inner.call(
            Rec::new(OpKind::List, dir),
            |inner| {
                if inner.fault(OpKind::List, dir).is_some() {
                    return Err(eio());
                }
                let ino = inner.lookup(dir, View::Cache)?;
                let mut names: Vec<String> = inner.dir(ino)?.cache.keys().cloned().collect();
                // A real directory lists in no particular order.
                inner.fault_rng.shuffle(&mut names);
                Ok(names)
            },
            |r| {
                r.as_ref()
                    .map(|v| v.len() as u64)
                    .map_err(|e| e.to_string())
            },
        )
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut inner = self.inner();
        let ino = inner.call(
            Rec::new(OpKind::Create, path),
            |inner| {
                if inner.fault(OpKind::Create, path).is_some() {
                    return Err(eio());
                }
                let (parent, name) = inner.lookup_parent(path)?;
                if inner.dir(parent)?.cache.contains_key(&name) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "the name exists",
                    ));
                }
                let ino = inner.new_node(Node::File(FileNode::default()));
                // F5: the name is pending until the directory is synced.
                inner.dir_op(vec![EntrySet::link(parent, &name, ino)])?;
                Ok(ino)
            },
            copied,
        )?;
        Ok(Box::new(self.open_file(&inner, ino, path, true)))
    }

    fn open(&self, path: &Path, write: bool) -> io::Result<Box<dyn StorageFile>> {
        let mut inner = self.inner();
        let ino = inner.call(
            Rec::new(OpKind::Open, path),
            |inner| {
                if inner.fault(OpKind::Open, path).is_some() {
                    return Err(eio());
                }
                inner.lookup_file(path, View::Cache)
            },
            copied,
        )?;
        Ok(Box::new(self.open_file(&inner, ino, path, write)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut inner = self.inner();
        let mut rec = Rec::new(OpKind::Rename, from);
        rec.detail = format!("to {}", to.display());
        inner.call(
            rec,
            |inner| {
                if inner.fault(OpKind::Rename, from).is_some() {
                    return Err(eio());
                }
                let (from_dir, from_name) = inner.lookup_parent(from)?;
                let ino = *inner
                    .dir(from_dir)?
                    .cache
                    .get(&from_name)
                    .ok_or_else(not_found)?;
                if inner.dir(ino).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the simulator renames files only",
                    ));
                }
                let (to_dir, to_name) = inner.lookup_parent(to)?;
                if (from_dir, &from_name) == (to_dir, &to_name) {
                    return Ok(());
                }
                if let Some(&target) = inner.dir(to_dir)?.cache.get(&to_name)
                    && inner.dir(target).is_ok()
                {
                    return Err(is_a_directory());
                }
                // F5: one operation, durable once either directory is synced.
                inner.dir_op(vec![
                    EntrySet::link(to_dir, &to_name, ino),
                    EntrySet::unlink(from_dir, &from_name),
                ])
            },
            zero,
        )
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.inner();
        inner.call(
            Rec::new(OpKind::Remove, path),
            |inner| {
                if inner.fault(OpKind::Remove, path).is_some() {
                    return Err(eio());
                }
                let (parent, name) = inner.lookup_parent(path)?;
                let ino = *inner.dir(parent)?.cache.get(&name).ok_or_else(not_found)?;
                if inner.dir(ino).is_ok() {
                    return Err(is_a_directory());
                }
                // F5: the removal is pending until the directory is synced.
                inner.dir_op(vec![EntrySet::unlink(parent, &name)])
            },
            zero,
        )
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut inner = self.inner();
        inner.call(
            Rec::new(OpKind::SyncDir, dir),
            |inner| {
                let ino = inner.lookup(dir, View::Cache)?;
                inner.dir(ino)?;
                if inner.fault(OpKind::SyncDir, dir).is_some() {
                    // F9: nothing becomes durable; the operations stay pending.
                    return Err(eio());
                }
                inner.sync_dir(ino);
                Ok(())
            },
            zero,
        )
    }

    fn lock(&self, dir: &Path) -> Result<DirLock, LockError> {
        let mut inner = self.inner();
        let locked = inner.call(
            Rec::new(OpKind::Lock, dir),
            |inner| {
                let ino = inner.lookup(dir, View::Cache)?;
                inner.dir(ino)?;
                if inner.locks.contains(&ino) {
                    return Ok(Err(FAKE_PID));
                }
                // Like the real lock: a LOCK file holding the holder's pid, never synced.
                let lock_file = match inner.dir(ino)?.cache.get(LOCK_FILE).copied() {
                    Some(file) => {
                        inner.file(file)?;
                        file
                    }
                    None => {
                        let file = inner.new_node(Node::File(FileNode::default()));
                        inner.dir_op(vec![EntrySet::link(ino, LOCK_FILE, file)])?;
                        file
                    }
                };
                inner.set_len(lock_file, 0)?;
                inner.write(lock_file, 0, FAKE_PID.to_string().as_bytes())?;
                inner.locks.insert(ino);
                Ok(Ok(ino))
            },
            |r| match r {
                Ok(Ok(_)) => Ok(0),
                Ok(Err(pid)) => Err(format!("lock held by process {pid}")),
                Err(e) => Err(e.to_string()),
            },
        );
        match locked {
            Ok(Ok(ino)) => Ok(DirLock::new(SimLockGuard {
                shared: Arc::clone(&self.shared),
                dir: ino,
                epoch: inner.epoch,
            })),
            Ok(Err(pid)) => Err(LockError::Held(Some(pid))),
            Err(e) => Err(LockError::Io(e)),
        }
    }
}

/// An open simulated file: the inode it was opened on, valid until the next crash.
struct SimFile {
    shared: Arc<Mutex<Inner>>,
    ino: Ino,
    /// The crash count when it was opened: after a crash the handle is dead.
    epoch: u64,
    writable: bool,
    /// The path it was opened with, for the trace and fault matching.
    path: PathBuf,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .field("writable", &self.writable)
            .finish()
    }
}

impl SimFile {
    /// Runs one call on this file: recorded, stopped at the crash point, refused on a dead
    /// handle.
    fn call<T>(
        &self,
        rec: Rec,
        f: impl FnOnce(&mut Inner) -> io::Result<T>,
        describe: impl FnOnce(&io::Result<T>) -> Result<u64, String>,
    ) -> io::Result<T> {
        let mut inner = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        inner.call(
            rec,
            |inner| {
                if inner.epoch != self.epoch {
                    return Err(io::Error::other(
                        "simulated crash: the file was opened before the crash",
                    ));
                }
                f(inner)
            },
            describe,
        )
    }

    fn rec(&self, op: OpKind) -> Rec {
        Rec::new(op, &self.path)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(EBADF))
        }
    }

    fn sync(&self, op: OpKind) -> io::Result<()> {
        self.call(
            self.rec(op),
            |inner| {
                if inner.fault(op, &self.path).is_some() {
                    // F7: Linux marks the pages clean after a writeback error: the data stays
                    // readable but is no longer on its way to the disk, and the next sync has
                    // nothing to write.
                    inner.file_mut(self.ino)?.pending.clear();
                    return Err(eio());
                }
                let file = inner.file_mut(self.ino)?;
                for op in mem::take(&mut file.pending) {
                    op.apply(&mut file.durable);
                }
                Ok(())
            },
            zero,
        )
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut rec = self.rec(OpKind::ReadAt);
        rec.offset = Some(offset);
        rec.len = Some(buf.len() as u64);
        self.call(
            rec,
            |inner| {
                let fault = inner.fault(OpKind::ReadAt, &self.path);
                if fault == Some(Fault::ReadEio) {
                    return Err(eio()); // F10
                }
                let file = inner.file(self.ino)?;
                let len = file.cache.len() as u64;
                if offset >= len {
                    return Ok(0);
                }
                let mut n = buf.len().min((len - offset) as usize);
                if fault == Some(Fault::ReadShort) && n > 1 {
                    n = inner.fault_rng.usize(1..n); // F10
                }
                let file = inner.file(self.ino)?;
                let start = offset as usize;
                buf[..n].copy_from_slice(&file.cache[start..start + n]);
                Ok(n)
            },
            len_of,
        )
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let mut rec = self.rec(OpKind::WriteAt);
        rec.offset = Some(offset);
        rec.len = Some(buf.len() as u64);
        self.call(
            rec,
            |inner| {
                self.check_writable()?;
                check_file_len(offset.checked_add(buf.len() as u64))?;
                let n = match inner.fault(OpKind::WriteAt, &self.path) {
                    // F8: nothing written.
                    Some(Fault::WriteEio) => return Err(eio()),
                    // F8: the disk filled up partway; the prefix is in the cache and pending.
                    Some(Fault::WriteNoSpace) => {
                        let n = if buf.is_empty() {
                            0
                        } else {
                            inner.fault_rng.usize(0..buf.len())
                        };
                        inner.write(self.ino, offset, &buf[..n])?;
                        return Err(io::Error::from_raw_os_error(ENOSPC));
                    }
                    // F8: a short write.
                    Some(Fault::WriteShort) if buf.len() > 1 => inner.fault_rng.usize(1..buf.len()),
                    _ => buf.len(),
                };
                inner.write(self.ino, offset, &buf[..n])?;
                Ok(n)
            },
            len_of,
        )
    }

    fn len(&self) -> io::Result<u64> {
        self.call(
            self.rec(OpKind::Len),
            |inner| Ok(inner.file(self.ino)?.cache.len() as u64),
            copied,
        )
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut rec = self.rec(OpKind::SetLen);
        rec.offset = Some(len);
        self.call(
            rec,
            |inner| {
                if !self.writable {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "file not open for writing",
                    ));
                }
                check_file_len(Some(len))?;
                if inner.fault(OpKind::SetLen, &self.path).is_some() {
                    return Err(eio());
                }
                inner.set_len(self.ino, len)
            },
            zero,
        )
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(OpKind::SyncData)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(OpKind::SyncAll)
    }
}

/// Keeps a simulated directory lock held; dropping it releases the lock, unless a crash already
/// did.
struct SimLockGuard {
    shared: Arc<Mutex<Inner>>,
    dir: Ino,
    epoch: u64,
}

impl Drop for SimLockGuard {
    fn drop(&mut self) {
        let mut inner = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if inner.epoch == self.epoch {
            inner.locks.remove(&self.dir);
        }
    }
}

/// A pending write or length change of one file.
#[derive(Clone, Debug)]
enum FileOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

impl FileOp {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            FileOp::Write { offset, data } => write_into(bytes, *offset, data),
            FileOp::SetLen(len) => bytes.resize(*len as usize, 0),
        }
    }
}

fn write_into(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[start..end].copy_from_slice(data);
}

#[derive(Clone, Default)]
struct FileNode {
    durable: Vec<u8>,
    /// What reads see: `durable` with `pending` applied, plus whatever a failed sync dropped
    /// from the durable path (F7).
    cache: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Clone, Default)]
struct DirNode {
    durable: BTreeMap<String, Ino>,
    cache: BTreeMap<String, Ino>,
}

#[derive(Clone)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

/// One change to one directory entry: `name` in `dir` now names `target`, or nothing.
#[derive(Clone, Debug)]
struct EntrySet {
    dir: Ino,
    name: String,
    target: Option<Ino>,
}

impl EntrySet {
    fn link(dir: Ino, name: &str, target: Ino) -> EntrySet {
        EntrySet {
            dir,
            name: name.to_string(),
            target: Some(target),
        }
    }

    fn unlink(dir: Ino, name: &str) -> EntrySet {
        EntrySet {
            dir,
            name: name.to_string(),
            target: None,
        }
    }
}

/// A pending directory operation: entry changes that persist (or not) together.
#[derive(Clone, Debug)]
struct DirOp {
    sets: Vec<EntrySet>,
}

/// Which names to resolve a path through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Cache,
    Durable,
}

#[derive(Clone)]
struct ArmedRule {
    rule: FaultRule,
    /// Matching calls seen so far (for [`Trigger::Nth`]).
    seen: u64,
}

/// How a random crash treats one file's (or the directories') pending operations.
enum Strategy {
    DropAll,
    KeepAll,
    /// Keep the first n operations, tear the next (if it is a write), drop the rest.
    Prefix(usize),
    /// Decide each operation independently.
    Independent,
}

impl Strategy {
    fn pick(rng: &mut Rng, ops: usize) -> Strategy {
        match rng.u8(0..6) {
            0 => Strategy::DropAll,
            1 => Strategy::KeepAll,
            2 => Strategy::Prefix(rng.usize(0..=ops)),
            _ => Strategy::Independent,
        }
    }

    /// The strategy for `ops` pending operations in a crash of this mode.
    fn for_mode(rng: &mut Rng, mode: CrashMode, ops: usize) -> Strategy {
        match mode {
            CrashMode::Random => Strategy::pick(rng, ops),
            CrashMode::KeepNothing => Strategy::DropAll,
            CrashMode::KeepEverything => Strategy::KeepAll,
        }
    }

    /// The fate of the `i`-th file operation.
    fn file_fate(&self, rng: &mut Rng, i: usize) -> Fate {
        match *self {
            Strategy::DropAll => Fate::Drop,
            Strategy::KeepAll => Fate::Keep,
            Strategy::Prefix(n) if i < n => Fate::Keep,
            Strategy::Prefix(n) if i == n => Fate::Tear,
            Strategy::Prefix(_) => Fate::Drop,
            // F1: any subset, not only a prefix; F2: any of them torn.
            Strategy::Independent => match rng.u8(0..4) {
                0 | 1 => Fate::Keep,
                2 => Fate::Drop,
                _ => Fate::Tear,
            },
        }
    }

    /// Whether the `i`-th directory operation persists.
    fn dir_keep(&self, rng: &mut Rng, i: usize) -> bool {
        match *self {
            Strategy::DropAll => false,
            Strategy::KeepAll => true,
            Strategy::Prefix(n) => i < n,
            Strategy::Independent => rng.bool(),
        }
    }
}

/// What a random crash does to one pending operation, before the details are drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Drop,
    Tear,
}

/// What a crash leaves in the bytes of a write that did not persist (F3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    /// What was there before: the old bytes, or zeros past the old end of the file.
    Old,
    Zeros,
    /// Random bytes, from a generator with this seed.
    Garbage(u64),
}

impl Fill {
    fn apply(self, bytes: &mut [u8]) {
        match self {
            Fill::Old => {}
            Fill::Zeros => bytes.fill(0),
            Fill::Garbage(seed) => Rng::with_seed(seed).fill(bytes),
        }
    }
}

/// F2 and F3: how a write was torn.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tear {
    /// The parts that reached the disk, as ranges of the write's bytes (0 is its first byte),
    /// in order and disjoint.
    kept: Vec<Range<usize>>,
    /// What the parts that did not persist read as.
    fill: Fill,
    /// Whether the file's length covers the whole write; if not, it ends at the last persisted
    /// byte (it never shrinks).
    whole_length: bool,
}

impl Tear {
    /// Applies the torn write of `data` at `offset` to `bytes`. With `powersafe_overwrite`, the
    /// fill only touches bytes past the old end of the file.
    fn apply(&self, bytes: &mut Vec<u8>, offset: u64, data: &[u8], powersafe_overwrite: bool) {
        let old_len = bytes.len();
        let start = offset as usize;
        let end = start + data.len();
        let kept_end = self
            .kept
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| start + r.end)
            .max()
            .unwrap_or(0);
        let covered = if self.whole_length { end } else { kept_end };
        let new_len = covered.max(old_len);
        bytes.resize(new_len, 0);
        let from = if powersafe_overwrite {
            start.max(old_len)
        } else {
            start
        };
        let unwritten_end = end.min(new_len);
        self.fill
            .apply(&mut bytes[from.min(unwritten_end)..unwritten_end]);
        // An empty part (a sector cut to nothing) may lie past the new end of the file.
        for r in self.kept.iter().filter(|r| !r.is_empty()) {
            bytes[start + r.start..start + r.end].copy_from_slice(&data[r.clone()]);
        }
    }
}

/// What a crash does with one pending operation: the unit both the random crash and the
/// enumeration choose, and [`Inner::apply_crash`] applies.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// The operation is lost.
    Lost,
    /// The operation persisted whole.
    Kept,
    /// A write only (F3): its data is lost but the file's length grew to cover it, the new
    /// bytes reading as the fill.
    Grown(Fill),
    /// A write only (F2): part of it persisted.
    Torn(Tear),
}

/// One pending operation, in the enumeration's order.
#[derive(Clone, Copy, Debug)]
enum ItemRef {
    /// Operation `op` of the pending list of file `ino`.
    File { ino: Ino, op: usize },
    /// Pending directory operation `op`.
    Dir { op: usize },
}

/// A pending operation and its alternatives in the enumeration.
struct PendingItem {
    what: ItemRef,
    alternatives: Vec<Outcome>,
}

/// The number of crash states: the product of the items' numbers of alternatives.
fn state_count(items: &[PendingItem]) -> u64 {
    items.iter().fold(1, |count: u64, item| {
        count.saturating_mul(item.alternatives.len() as u64)
    })
}

/// The outcomes of crash state `index`: a mixed-radix number, the first item's choice the least
/// significant digit.
fn choose(items: Vec<PendingItem>, mut index: u64) -> Vec<Outcome> {
    items
        .into_iter()
        .map(|item| {
            let mut alternatives = item.alternatives;
            let n = alternatives.len() as u64;
            let choice = index % n;
            index /= n;
            alternatives.swap_remove(choice as usize)
        })
        .collect()
}

/// The enumeration's alternatives for a pending write of `len` bytes at `start`, when the file
/// is at least `least` and at most `greatest` bytes long just before it. See "Every crash
/// state" in the module documentation.
fn write_alternatives(
    start: u64,
    len: usize,
    least: u64,
    greatest: u64,
    powersafe_overwrite: bool,
    garbage: u64,
) -> Vec<Outcome> {
    let end = start + len as u64;
    let may_extend = end > least;
    let mut alternatives = vec![Outcome::Lost];
    if may_extend {
        alternatives.push(Outcome::Grown(Fill::Zeros));
        alternatives.push(Outcome::Grown(Fill::Garbage(garbage)));
    }
    alternatives.push(Outcome::Kept);
    let fills = if powersafe_overwrite && end <= least {
        vec![Fill::Old]
    } else if start >= greatest {
        // The old bytes are past the end of the file: they read as zeros.
        vec![Fill::Zeros, Fill::Garbage(garbage)]
    } else {
        vec![Fill::Old, Fill::Zeros, Fill::Garbage(garbage)]
    };
    for kept in torn_patterns(start, len) {
        let kept_end = kept.last().map_or(0, |r| r.end);
        let is_prefix = kept.len() == 1 && kept[0].start == 0;
        alternatives.extend(fills.iter().map(|&fill| {
            Outcome::Torn(Tear {
                kept: kept.clone(),
                fill,
                whole_length: true,
            })
        }));
        if may_extend && kept_end < len {
            // Past the end of the file, a prefix leaves nothing unpersisted inside it.
            let short_fills = if is_prefix && start >= greatest {
                &fills[..1]
            } else {
                &fills[..]
            };
            alternatives.extend(short_fills.iter().map(|&fill| {
                Outcome::Torn(Tear {
                    kept: kept.clone(),
                    fill,
                    whole_length: false,
                })
            }));
        }
    }
    alternatives
}

/// Non-empty subsets of a write's sectors up to this many sectors; past it, only prefixes.
const SUBSET_SECTORS_MAX: usize = 4;

/// F2: the parts of a write of `len` bytes at `start` that the enumeration lets a torn write
/// keep, as ranges of the write's bytes: for at most [`SUBSET_SECTORS_MAX`] sectors every
/// non-empty proper subset of its [`SECTOR_BYTES`] sectors, else every prefix cut at a sector
/// boundary; then the prefix cut in the middle of the first sector, if it holds 2 bytes or more.
fn torn_patterns(start: u64, len: usize) -> Vec<Vec<Range<usize>>> {
    let sectors = sector_ranges(start, len, SECTOR_BYTES);
    let Some(first) = sectors.first() else {
        return Vec::new();
    };
    let n = sectors.len();
    let mut patterns = Vec::new();
    if n <= SUBSET_SECTORS_MAX {
        for mask in 1..(1u32 << n) - 1 {
            let mut kept: Vec<Range<usize>> = Vec::new();
            for (i, sector) in sectors.iter().enumerate() {
                if mask & (1 << i) == 0 {
                    continue;
                }
                match kept.last_mut() {
                    Some(last) if last.end == sector.start => last.end = sector.end,
                    _ => kept.push(sector.clone()),
                }
            }
            patterns.push(kept);
        }
    } else {
        patterns.extend(sectors[1..].iter().map(|sector| prefix(sector.start)));
    }
    if first.len() >= 2 {
        patterns.push(prefix(first.len() / 2));
    }
    patterns
}

/// The first `len` bytes of a write, as a tear's kept parts.
fn prefix(len: usize) -> Vec<Range<usize>> {
    std::iter::once(0..len).collect()
}

/// A write of `len` bytes at `start` cut at the multiples of `sector`, as ranges of the write's
/// bytes.
fn sector_ranges(start: u64, len: usize, sector: u64) -> Vec<Range<usize>> {
    let end = start + len as u64;
    let mut ranges = Vec::new();
    let mut at = start;
    while at < end {
        let stop = ((at / sector + 1) * sector).min(end);
        ranges.push((at - start) as usize..(stop - start) as usize);
        at = stop;
    }
    ranges
}

/// F2 and F3: a random tear of a write of `len` bytes at `start`: a prefix cut anywhere, or
/// some of its [`SECTOR_BYTES`] or [`PAGE_BYTES`] sectors, each possibly cut short; a random
/// fill and length.
fn random_tear(rng: &mut Rng, start: u64, len: usize) -> Tear {
    let kept = if len == 0 {
        Vec::new()
    } else if rng.bool() {
        // A prefix, cut anywhere (usually inside a sector).
        prefix(rng.usize(0..len))
    } else {
        let sector = if rng.bool() { SECTOR_BYTES } else { PAGE_BYTES };
        let mut kept = Vec::new();
        for r in sector_ranges(start, len, sector) {
            match rng.u8(0..8) {
                0..=3 => kept.push(r),
                4 => kept.push(r.start..r.start + rng.usize(0..r.len())),
                _ => {}
            }
        }
        kept
    };
    let whole_length = rng.bool();
    let fill = random_fill(rng);
    Tear {
        kept,
        fill,
        whole_length,
    }
}

fn random_fill(rng: &mut Rng) -> Fill {
    match rng.u8(0..3) {
        0 => Fill::Old,
        1 => Fill::Zeros,
        _ => Fill::Garbage(rng.u64(..)),
    }
}

/// Applies a crash's outcome for one pending file operation to the bytes that stay durable.
fn apply_file_outcome(
    bytes: &mut Vec<u8>,
    op: &FileOp,
    outcome: &Outcome,
    powersafe_overwrite: bool,
    stats: &mut CrashStats,
) {
    match (op, outcome) {
        (FileOp::Write { .. }, Outcome::Lost) => stats.writes_lost += 1,
        (FileOp::Write { .. }, Outcome::Kept) => {
            stats.writes_kept += 1;
            op.apply(bytes);
        }
        (FileOp::Write { offset, data }, Outcome::Grown(fill)) => {
            stats.writes_grown += 1;
            let old_len = bytes.len();
            let end = *offset as usize + data.len();
            if end > old_len {
                bytes.resize(end, 0);
                fill.apply(&mut bytes[old_len..]);
            }
        }
        (FileOp::Write { offset, data }, Outcome::Torn(tear)) => {
            stats.writes_torn += 1;
            tear.apply(bytes, *offset, data, powersafe_overwrite);
        }
        (FileOp::SetLen(_), Outcome::Kept) => {
            stats.set_len_kept += 1;
            op.apply(bytes);
        }
        (FileOp::SetLen(_), Outcome::Lost) => stats.set_len_lost += 1,
        (FileOp::SetLen(_), Outcome::Grown(_) | Outcome::Torn(_)) => {
            unreachable!("a length change persists or is lost")
        }
    }
}

#[derive(Default)]
struct CrashStats {
    writes_kept: usize,
    writes_torn: usize,
    writes_lost: usize,
    writes_grown: usize,
    set_len_kept: usize,
    set_len_lost: usize,
    dir_ops_kept: usize,
    dir_ops_lost: usize,
}

impl fmt::Display for CrashStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "writes kept {} torn {} lost {} grown {}; set_len kept {} lost {}; \
             dir ops kept {} lost {}",
            self.writes_kept,
            self.writes_torn,
            self.writes_lost,
            self.writes_grown,
            self.set_len_kept,
            self.set_len_lost,
            self.dir_ops_kept,
            self.dir_ops_lost
        )
    }
}

/// What the trace records about a call before it runs.
struct Rec {
    op: OpKind,
    path: PathBuf,
    offset: Option<u64>,
    len: Option<u64>,
    detail: String,
}

impl Rec {
    fn new(op: OpKind, path: &Path) -> Rec {
        Rec {
            op,
            path: path.to_path_buf(),
            offset: None,
            len: None,
            detail: String::new(),
        }
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
    powersafe_overwrite: bool,
}

impl Inner {
    /// Runs one storage call: numbers it, fails it if the crash point was reached, and records
    /// it in the trace.
    fn call<T>(
        &mut self,
        rec: Rec,
        f: impl FnOnce(&mut Inner) -> io::Result<T>,
        describe: impl FnOnce(&io::Result<T>) -> Result<u64, String>,
    ) -> io::Result<T> {
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
        result
    }

    /// The fault to inject into this call, if an armed rule fires.
    fn fault(&mut self, op: OpKind, path: &Path) -> Option<Fault> {
        let path = path.to_string_lossy();
        let mut fired = None;
        for (i, armed) in self.faults.iter_mut().enumerate() {
            let rule = &armed.rule;
            if !rule.fault.applies_to().contains(&op)
                || rule
                    .path_contains
                    .as_ref()
                    .is_some_and(|s| !path.contains(s.as_str()))
            {
                continue;
            }
            match rule.trigger {
                Trigger::Nth(n) => {
                    armed.seen += 1;
                    if armed.seen >= n {
                        fired = Some((i, true));
                        break;
                    }
                }
                Trigger::Probability(p) => {
                    if self.fault_rng.f64() < p {
                        fired = Some((i, false));
                        break;
                    }
                }
            }
        }
        let (i, disarm) = fired?;
        let fault = self.faults[i].rule.fault;
        if disarm {
            self.faults.remove(i);
        }
        self.fired = Some(fault);
        Some(fault)
    }

    fn new_node(&mut self, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    fn file(&self, ino: Ino) -> io::Result<&FileNode> {
        match self.nodes.get(&ino) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(is_a_directory()),
            None => Err(not_found()),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> io::Result<&mut FileNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(is_a_directory()),
            None => Err(not_found()),
        }
    }

    fn dir(&self, ino: Ino) -> io::Result<&DirNode> {
        match self.nodes.get(&ino) {
            Some(Node::Dir(d)) => Ok(d),
            Some(Node::File(_)) => Err(not_a_directory()),
            None => Err(not_found()),
        }
    }

    fn files(&self) -> impl Iterator<Item = (Ino, &FileNode)> {
        self.nodes.iter().filter_map(|(&ino, node)| match node {
            Node::File(f) => Some((ino, f)),
            Node::Dir(_) => None,
        })
    }

    /// The inode `path` names in `view`.
    fn lookup(&self, path: &Path, view: View) -> io::Result<Ino> {
        self.lookup_names(&components(path)?, view)
    }

    fn lookup_names(&self, names: &[String], view: View) -> io::Result<Ino> {
        let mut cur = ROOT;
        for name in names {
            let dir = self.dir(cur)?;
            let entries = match view {
                View::Cache => &dir.cache,
                View::Durable => &dir.durable,
            };
            cur = *entries.get(name).ok_or_else(not_found)?;
        }
        Ok(cur)
    }

    fn lookup_file(&self, path: &Path, view: View) -> io::Result<Ino> {
        let ino = self.lookup(path, view)?;
        self.file(ino)?;
        Ok(ino)
    }

    /// The (cache view) directory holding `path`, and its last name.
    fn lookup_parent(&self, path: &Path) -> io::Result<(Ino, String)> {
        let mut names = components(path)?;
        let name = names
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
        let parent = self.lookup_names(&names, View::Cache)?;
        self.dir(parent)?;
        Ok((parent, name))
    }

    /// Every file reachable in `view`, with a path to it, in a deterministic order.
    fn walk(&self, view: View) -> Vec<(PathBuf, Ino)> {
        let mut files = Vec::new();
        let mut stack = vec![(PathBuf::from("/"), ROOT)];
        while let Some((path, ino)) = stack.pop() {
            match self.nodes.get(&ino) {
                Some(Node::Dir(dir)) => {
                    let entries = match view {
                        View::Cache => &dir.cache,
                        View::Durable => &dir.durable,
                    };
                    for (name, &child) in entries.iter().rev() {
                        stack.push((path.join(name), child));
                    }
                }
                Some(Node::File(_)) => files.push((path, ino)),
                None => {}
            }
        }
        files
    }

    /// Records a directory operation: visible at once, pending until a directory sync (F5).
    fn dir_op(&mut self, sets: Vec<EntrySet>) -> io::Result<()> {
        for set in &sets {
            let Some(Node::Dir(dir)) = self.nodes.get_mut(&set.dir) else {
                return Err(not_a_directory());
            };
            match set.target {
                Some(target) => dir.cache.insert(set.name.clone(), target),
                None => dir.cache.remove(&set.name),
            };
        }
        self.dir_ops.push(DirOp { sets });
        Ok(())
    }

    fn apply_durable(&mut self, op: &DirOp) {
        for set in &op.sets {
            if let Some(Node::Dir(dir)) = self.nodes.get_mut(&set.dir) {
                match set.target {
                    Some(target) => dir.durable.insert(set.name.clone(), target),
                    None => dir.durable.remove(&set.name),
                };
            }
        }
    }

    /// Makes durable every pending operation on directory `dir`, and every earlier one on the
    /// same entries (a synced rename needs the create of its source).
    fn sync_dir(&mut self, dir: Ino) {
        let mut entries: BTreeSet<(Ino, String)> = BTreeSet::new();
        let mut needed = vec![false; self.dir_ops.len()];
        for (i, op) in self.dir_ops.iter().enumerate().rev() {
            let touches = op
                .sets
                .iter()
                .any(|s| s.dir == dir || entries.contains(&(s.dir, s.name.clone())));
            if touches {
                needed[i] = true;
                entries.extend(op.sets.iter().map(|s| (s.dir, s.name.clone())));
            }
        }
        for (op, needed) in mem::take(&mut self.dir_ops).into_iter().zip(needed) {
            if needed {
                self.apply_durable(&op);
            } else {
                self.dir_ops.push(op);
            }
        }
    }

    /// Writes into the cache and records the pending write.
    fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> io::Result<()> {
        let file = self.file_mut(ino)?;
        if data.is_empty() {
            return Ok(());
        }
        write_into(&mut file.cache, offset, data);
        file.pending.push(FileOp::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }

    /// Changes the cache's length and records the pending change.
    fn set_len(&mut self, ino: Ino, len: u64) -> io::Result<()> {
        let file = self.file_mut(ino)?;
        file.cache.resize(len as usize, 0);
        file.pending.push(FileOp::SetLen(len));
        Ok(())
    }

    /// A random crash (or one of the extremes, by `mode`).
    fn crash(&mut self, mode: CrashMode) {
        let outcomes = self.random_outcomes(mode);
        self.apply_crash(outcomes, &format!("{mode:?}"));
    }

    /// Draws one outcome per pending operation, in the order of [`Inner::pending_items`]: per
    /// file, and for the directory operations, a [`Strategy`], then each operation's fate and
    /// its details.
    fn random_outcomes(&mut self, mode: CrashMode) -> Vec<Outcome> {
        let rng = &mut self.crash_rng;
        let mut outcomes = Vec::new();
        for node in self.nodes.values() {
            let Node::File(file) = node else { continue };
            if file.pending.is_empty() {
                continue;
            }
            let strategy = Strategy::for_mode(rng, mode, file.pending.len());
            for (i, op) in file.pending.iter().enumerate() {
                let fate = strategy.file_fate(rng, i);
                let outcome = match (op, fate) {
                    (_, Fate::Keep) => Outcome::Kept,
                    // F3: a lost write's length may have persisted without its data.
                    (FileOp::Write { .. }, Fate::Drop)
                        if mode == CrashMode::Random && rng.u8(0..8) == 0 =>
                    {
                        Outcome::Grown(if rng.bool() {
                            Fill::Garbage(rng.u64(..))
                        } else {
                            Fill::Zeros
                        })
                    }
                    (_, Fate::Drop) => Outcome::Lost,
                    (FileOp::Write { offset, data }, Fate::Tear) => {
                        Outcome::Torn(random_tear(rng, *offset, data.len()))
                    }
                    (FileOp::SetLen(_), Fate::Tear) if rng.bool() => Outcome::Kept,
                    (FileOp::SetLen(_), Fate::Tear) => Outcome::Lost,
                };
                outcomes.push(outcome);
            }
        }
        // F5: each pending directory operation persists or not.
        let strategy = Strategy::for_mode(rng, mode, self.dir_ops.len());
        for i in 0..self.dir_ops.len() {
            outcomes.push(if strategy.dir_keep(rng, i) {
                Outcome::Kept
            } else {
                Outcome::Lost
            });
        }
        outcomes
    }

    /// The pending operations a crash decides about, in the enumeration's order (each file's
    /// operations, files by inode and operations oldest first; then the directory operations,
    /// oldest first), each with its alternatives. See "Every crash state" in the module
    /// documentation.
    fn pending_items(&self) -> Vec<PendingItem> {
        let mut items = Vec::new();
        for (ino, file) in self.files() {
            // The shortest and longest the file can be before each operation, whatever the
            // earlier ones became.
            let mut least = file.durable.len() as u64;
            let mut greatest = least;
            for (op_index, op) in file.pending.iter().enumerate() {
                let alternatives = match op {
                    FileOp::Write { offset, data } => {
                        let alternatives = write_alternatives(
                            *offset,
                            data.len(),
                            least,
                            greatest,
                            self.powersafe_overwrite,
                            self.garbage_seed(items.len()),
                        );
                        greatest = greatest.max(offset + data.len() as u64);
                        alternatives
                    }
                    FileOp::SetLen(len) => {
                        least = least.min(*len);
                        greatest = greatest.max(*len);
                        vec![Outcome::Lost, Outcome::Kept]
                    }
                };
                items.push(PendingItem {
                    what: ItemRef::File { ino, op: op_index },
                    alternatives,
                });
            }
        }
        items.extend((0..self.dir_ops.len()).map(|op| PendingItem {
            what: ItemRef::Dir { op },
            alternatives: vec![Outcome::Lost, Outcome::Kept],
        }));
        items
    }

    /// The seed of the garbage the enumeration writes for pending item number `item`: from the
    /// seed, the number of crashes so far and the item's place only, so that it does not depend
    /// on what the other items became.
    fn garbage_seed(&self, item: usize) -> u64 {
        let mix = self.seed
            ^ GARBAGE_SEED_SALT
            ^ self.epoch.wrapping_mul(0xbf58_476d_1ce4_e5b9)
            ^ (item as u64).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng::with_seed(mix).u64(..)
    }

    /// Makes one crash state the new durable and cache state, then does the rest of a crash:
    /// `outcomes` has one outcome per pending operation, in the order of
    /// [`Inner::pending_items`]. `what` names the state in the trace.
    fn apply_crash(&mut self, outcomes: Vec<Outcome>, what: &str) {
        let mut stats = CrashStats::default();
        let powersafe = self.powersafe_overwrite;
        let mut outcomes = outcomes.into_iter();
        let mut next = || outcomes.next().expect("one outcome per pending operation");
        // F1 to F4.
        for node in self.nodes.values_mut() {
            if let Node::File(file) = node {
                for op in mem::take(&mut file.pending) {
                    apply_file_outcome(&mut file.durable, &op, &next(), powersafe, &mut stats);
                }
                file.cache = file.durable.clone();
            }
        }

        // F5, with the rule sync_dir follows: an operation persists only together with every
        // earlier pending operation on a name it touches.
        let mut lost_names: BTreeSet<(Ino, String)> = BTreeSet::new();
        for op in mem::take(&mut self.dir_ops) {
            let names: Vec<(Ino, String)> =
                op.sets.iter().map(|s| (s.dir, s.name.clone())).collect();
            let keep = next() == Outcome::Kept && !names.iter().any(|n| lost_names.contains(n));
            if keep {
                stats.dir_ops_kept += 1;
                self.apply_durable(&op);
            } else {
                stats.dir_ops_lost += 1;
                lost_names.extend(names);
            }
        }
        debug_assert!(
            outcomes.next().is_none(),
            "one outcome per pending operation"
        );
        for node in self.nodes.values_mut() {
            if let Node::Dir(dir) = node {
                dir.cache = dir.durable.clone();
            }
        }

        // Files and directories no durable name reaches are gone.
        let mut reachable = BTreeSet::from([ROOT]);
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if let Some(Node::Dir(dir)) = self.nodes.get(&ino) {
                for &child in dir.durable.values() {
                    if reachable.insert(child) {
                        stack.push(child);
                    }
                }
            }
        }
        self.nodes.retain(|ino, _| reachable.contains(ino));

        self.epoch += 1;
        self.locks.clear();
        self.stop_at = None;
        self.trace.push(TraceEntry {
            index: self.op_count,
            op: OpKind::Crash,
            path: PathBuf::new(),
            offset: None,
            len: None,
            fault: None,
            detail: format!("{what}: {stats}"),
            result: Ok(0),
        });
    }

    /// The text of [`SimStorage::pending_summary`].
    fn summary(&self, items: &[PendingItem]) -> String {
        let paths = self.paths();
        let path = |ino: Ino| match paths.get(&ino) {
            Some(path) => path.display().to_string(),
            None => format!("(inode {ino})"),
        };
        let entry = |dir: Ino, name: &str| {
            let dir = path(dir);
            format!("{}/{name}", dir.trim_end_matches('/'))
        };
        let mut text = format!(
            "{} pending items, {} crash states\n",
            items.len(),
            state_count(items)
        );
        for (i, item) in items.iter().enumerate() {
            let what = match item.what {
                ItemRef::File { ino, op } => match self.file(ino).map(|f| &f.pending[op]) {
                    Ok(FileOp::Write { offset, data }) => {
                        format!("{}: write off={offset} len={}", path(ino), data.len())
                    }
                    Ok(FileOp::SetLen(len)) => format!("{}: set_len {len}", path(ino)),
                    Err(_) => format!("(inode {ino}): operation {op}"),
                },
                ItemRef::Dir { op } => match self.dir_ops[op].sets.as_slice() {
                    [to, from] if to.target.is_some() && from.target.is_none() => format!(
                        "rename {} -> {}",
                        entry(from.dir, &from.name),
                        entry(to.dir, &to.name)
                    ),
                    sets => {
                        let parts: Vec<String> = sets
                            .iter()
                            .map(|set| match set.target {
                                Some(target) if self.dir(target).is_ok() => {
                                    format!("mkdir {}", entry(set.dir, &set.name))
                                }
                                Some(_) => format!("create {}", entry(set.dir, &set.name)),
                                None => format!("remove {}", entry(set.dir, &set.name)),
                            })
                            .collect();
                        parts.join(", ")
                    }
                },
            };
            text.push_str(&format!(
                "  {i}: {what}: {} alternatives\n",
                item.alternatives.len()
            ));
        }
        text
    }

    /// A path for every inode a name reaches: through the cache's names, else the durable ones.
    fn paths(&self) -> BTreeMap<Ino, PathBuf> {
        let mut paths = BTreeMap::new();
        for view in [View::Cache, View::Durable] {
            let mut stack = vec![(PathBuf::from("/"), ROOT)];
            while let Some((path, ino)) = stack.pop() {
                if let Some(Node::Dir(dir)) = self.nodes.get(&ino) {
                    let entries = match view {
                        View::Cache => &dir.cache,
                        View::Durable => &dir.durable,
                    };
                    for (name, &child) in entries {
                        stack.push((path.join(name), child));
                    }
                }
                paths.entry(ino).or_insert(path);
            }
        }
        paths
    }

    /// F11: damages the durable bytes of `ino` at `offset`, and the cache where it holds the
    /// same (clean) bytes.
    fn corrupt(&mut self, ino: Ino, path: &Path, offset: u64, kind: MediaFault) -> io::Result<()> {
        let file = match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => f,
            _ => return Err(not_found()),
        };
        let len = file.durable.len() as u64;
        if offset >= len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("offset {offset} is past the {len} durable bytes"),
            ));
        }
        let range = match kind {
            MediaFault::BitFlip => offset..offset + 1,
            MediaFault::ZeroSector | MediaFault::GarbageSector => {
                let start = offset / SECTOR_BYTES * SECTOR_BYTES;
                start..(start + SECTOR_BYTES).min(len)
            }
        };
        let range = range.start as usize..range.end as usize;
        let before = file.durable[range.clone()].to_vec();
        let damaged = &mut file.durable[range.clone()];
        match kind {
            MediaFault::BitFlip => damaged[0] ^= 1 << self.crash_rng.u8(0..8),
            MediaFault::ZeroSector => damaged.fill(0),
            MediaFault::GarbageSector => self.crash_rng.fill(damaged),
        }
        for (i, old) in range.clone().zip(before) {
            if file.cache.get(i) == Some(&old) {
                file.cache[i] = file.durable[i];
            }
        }
        self.trace.push(TraceEntry {
            index: self.op_count,
            op: OpKind::MediaFault,
            path: path.to_path_buf(),
            offset: Some(offset),
            len: Some(range.len() as u64),
            fault: None,
            detail: format!("{kind:?}"),
            result: Ok(0),
        });
        Ok(())
    }
}

/// The names of `path`, resolved lexically from the root.
fn components(path: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                names.pop();
            }
            Component::Normal(name) => {
                let name = name.to_str().ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the simulator needs UTF-8 names",
                    )
                })?;
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

fn check_file_len(end: Option<u64>) -> io::Result<()> {
    match end {
        Some(end) if end <= FILE_BYTES_MAX => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("the simulator keeps files up to {FILE_BYTES_MAX} bytes"),
        )),
    }
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(EIO)
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

fn not_a_directory() -> io::Error {
    io::Error::from(io::ErrorKind::NotADirectory)
}

fn is_a_directory() -> io::Error {
    io::Error::from(io::ErrorKind::IsADirectory)
}

fn zero<T>(r: &io::Result<T>) -> Result<u64, String> {
    r.as_ref().map(|_| 0).map_err(|e| e.to_string())
}

fn copied(r: &io::Result<u64>) -> Result<u64, String> {
    r.as_ref().copied().map_err(|e| e.to_string())
}

fn len_of(r: &io::Result<usize>) -> Result<u64, String> {
    r.as_ref().map(|&n| n as u64).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{read_to_vec, write_all_at};

    const DIR: &str = "/data";

    fn file_path() -> PathBuf {
        Path::new(DIR).join("f")
    }

    /// A directory made durable, holding a durable file with `synced` synced into it.
    fn setup(sim: &SimStorage, synced: &[u8]) -> Box<dyn StorageFile> {
        sim.create_dir_all(Path::new(DIR)).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let file = sim.create(&file_path()).unwrap();
        write_all_at(&*file, synced, 0).unwrap();
        file.sync_data().unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        file
    }

    #[test]
    fn synced_data_survives_every_crash() {
        let synced: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        for seed in 0..200 {
            for mode in [
                CrashMode::Random,
                CrashMode::KeepNothing,
                CrashMode::KeepEverything,
            ] {
                let sim = SimStorage::new(seed);
                let file = setup(&sim, &synced);
                // Unsynced work after the sync: appends, an overwrite past the synced end, and
                // an unsynced create.
                write_all_at(&*file, &[0xAA; 700], synced.len() as u64).unwrap();
                write_all_at(&*file, &[0xBB; 10], synced.len() as u64 + 1000).unwrap();
                sim.create(&Path::new(DIR).join("g")).unwrap();
                sim.crash_with(mode);
                let bytes = sim.file_bytes(file_path()).expect("synced file exists");
                assert!(bytes.len() >= synced.len(), "seed {seed} {mode:?}");
                assert_eq!(&bytes[..synced.len()], &synced[..], "seed {seed} {mode:?}");
                let reopened = sim.open(&file_path(), false).unwrap();
                assert_eq!(read_to_vec(&*reopened).unwrap(), bytes);
            }
        }
    }

    #[test]
    fn unsynced_write_vanishes_under_keep_nothing_and_stays_under_keep_everything() {
        let sim = SimStorage::new(1);
        let file = setup(&sim, b"synced");
        write_all_at(&*file, b"+unsynced", 6).unwrap();
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"synced+unsynced");
        assert_eq!(sim.durable_bytes(file_path()).unwrap(), b"synced");
        sim.crash_keep_nothing();
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"synced");

        let file = sim.open(&file_path(), true).unwrap();
        write_all_at(&*file, b"+kept", 6).unwrap();
        file.set_len(20).unwrap();
        sim.crash_keep_everything();
        assert_eq!(
            sim.file_bytes(file_path()).unwrap(),
            b"synced+kept\0\0\0\0\0\0\0\0\0"
        );
    }

    #[test]
    fn torn_overwrites_damage_old_bytes_unless_powersafe() {
        let old = [7u8; 2048];
        let mut damaged = false;
        for seed in 0..300 {
            for powersafe in [false, true] {
                let sim = SimStorage::new(seed);
                sim.set_powersafe_overwrite(powersafe);
                let file = setup(&sim, &old);
                write_all_at(&*file, &old, 0).unwrap(); // rewritten unchanged
                sim.crash();
                let bytes = sim.file_bytes(file_path()).unwrap();
                if powersafe {
                    assert_eq!(bytes, old, "seed {seed}");
                } else {
                    damaged |= bytes != old;
                }
            }
        }
        assert!(
            damaged,
            "without powersafe overwrite a torn rewrite can damage old bytes"
        );
    }

    #[test]
    fn unsynced_set_len_may_be_lost() {
        let sim = SimStorage::new(2);
        let file = setup(&sim, b"0123456789");
        file.set_len(4).unwrap();
        assert_eq!(file.len().unwrap(), 4);
        sim.crash_keep_nothing();
        assert_eq!(sim.durable_len(file_path()), Some(10));
    }

    #[test]
    fn random_crashes_keep_subsets_and_tear_writes() {
        // Two writes to different sectors: F1 allows the second to persist without the first.
        let mut second_only = false;
        let mut torn = false;
        let mut grown_without_data = false;
        for seed in 0..500 {
            let sim = SimStorage::new(seed);
            let file = setup(&sim, &[]);
            write_all_at(&*file, &[1; 1024], 0).unwrap();
            write_all_at(&*file, &[2; 1024], 1024).unwrap();
            sim.crash();
            let bytes = sim.file_bytes(file_path()).unwrap();
            assert!(bytes.len() <= 2048, "seed {seed}: nothing past the writes");
            let first = &bytes[..bytes.len().min(1024)];
            let second = bytes.get(1024..).unwrap_or(&[]);
            second_only |= bytes.len() == 2048 && first != [1; 1024] && second == [2; 1024];
            torn |= second.contains(&2) && second != [2; 1024];
            grown_without_data |= !bytes.is_empty() && !bytes.contains(&1) && !bytes.contains(&2);
        }
        assert!(second_only, "F1: some seed kept the second write alone");
        assert!(torn, "F2: some seed tore a write");
        assert!(
            grown_without_data,
            "F3: some seed grew the file without data"
        );
    }

    #[test]
    fn unsynced_create_vanishes_without_dir_sync() {
        let sim = SimStorage::new(3);
        setup(&sim, b"x");
        let path = Path::new(DIR).join("new");
        let file = sim.create(&path).unwrap();
        write_all_at(&*file, b"data", 0).unwrap();
        file.sync_data().unwrap(); // the data is durable, the name is not
        assert_eq!(sim.durable_list(DIR).unwrap(), ["f"]);
        sim.crash_keep_nothing();
        let err = sim.open(&path, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);

        let file = sim.create(&path).unwrap();
        write_all_at(&*file, b"data", 0).unwrap();
        file.sync_data().unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        sim.crash_keep_nothing();
        assert_eq!(sim.file_bytes(&path).unwrap(), b"data");
    }

    #[test]
    fn unsynced_remove_and_rename_may_be_undone() {
        let sim = SimStorage::new(4);
        let file = setup(&sim, b"old");
        let renamed = Path::new(DIR).join("renamed");
        sim.rename(&file_path(), &renamed).unwrap();
        // The handle follows the inode.
        write_all_at(&*file, b"new", 0).unwrap();
        assert_eq!(sim.file_bytes(&renamed).unwrap(), b"new");
        assert!(sim.file_bytes(file_path()).is_none());
        sim.crash_keep_nothing();
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"old");
        assert!(sim.file_bytes(&renamed).is_none());

        sim.remove(&file_path()).unwrap();
        assert_eq!(
            sim.open(&file_path(), false).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        sim.crash_keep_nothing();
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"old");

        sim.remove(&file_path()).unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        sim.crash_keep_nothing();
        assert!(sim.file_bytes(file_path()).is_none());
        assert_eq!(sim.list(Path::new(DIR)).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn synced_rename_between_directories_keeps_its_source_create() {
        let sim = SimStorage::new(5);
        sim.create_dir_all(Path::new("/a")).unwrap();
        sim.create_dir_all(Path::new("/b")).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        sim.create(Path::new("/a/x")).unwrap();
        sim.rename(Path::new("/a/x"), Path::new("/b/y")).unwrap();
        sim.sync_dir(Path::new("/b")).unwrap();
        sim.crash();
        assert_eq!(sim.durable_list("/a").unwrap(), Vec::<String>::new());
        assert_eq!(sim.durable_list("/b").unwrap(), ["y"]);
    }

    #[test]
    fn failed_sync_drops_data_from_the_durable_path() {
        // F7.
        let sim = SimStorage::new(6);
        let file = setup(&sim, b"synced");
        write_all_at(&*file, b"+lost", 6).unwrap();
        sim.fail_next(Fault::SyncEio);
        let err = file.sync_data().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(EIO));
        // Still readable from the cache...
        let mut buf = [0; 11];
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 11);
        assert_eq!(&buf, b"synced+lost");
        // ...and the next sync says it is fine, without writing it.
        file.sync_data().unwrap();
        assert_eq!(sim.durable_bytes(file_path()).unwrap(), b"synced");
        sim.crash_keep_everything();
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"synced");
        let trace = sim.trace();
        assert!(trace.iter().any(|e| e.fault == Some(Fault::SyncEio)));
    }

    #[test]
    fn write_faults() {
        // F8.
        let sim = SimStorage::new(7);
        let file = setup(&sim, b"");
        sim.fail_next(Fault::WriteEio);
        assert_eq!(
            file.write_at(b"abc", 0).unwrap_err().raw_os_error(),
            Some(EIO)
        );
        assert_eq!(file.len().unwrap(), 0);

        sim.fail_next(Fault::WriteShort);
        let n = file.write_at(&[9; 100], 0).unwrap();
        assert!((1..100).contains(&n));
        assert_eq!(file.len().unwrap(), n as u64);

        sim.inject(FaultRule::once(Fault::WriteNoSpace).on_path("no-such-file"));
        sim.fail_next(Fault::WriteNoSpace);
        let err = file.write_at(&[7; 100], 1000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        let len = file.len().unwrap();
        assert!(len == n as u64 || (1000..1100).contains(&len));
        // The rule for another path is still armed.
        assert!(file.write_at(b"ok", 0).is_ok());
    }

    #[test]
    fn read_and_directory_faults() {
        // F9 and F10.
        let sim = SimStorage::new(8);
        let file = setup(&sim, &[5; 100]);
        sim.fail_next(Fault::ReadEio);
        assert!(file.read_at(&mut [0; 10], 0).is_err());
        sim.fail_next(Fault::ReadShort);
        let n = file.read_at(&mut [0; 100], 0).unwrap();
        assert!((1..100).contains(&n));
        // read_to_vec retries short reads.
        sim.inject(FaultRule::with_probability(Fault::ReadShort, 0.5));
        assert_eq!(read_to_vec(&*file).unwrap(), [5; 100]);
        sim.clear_faults();

        let g = Path::new(DIR).join("g");
        sim.fail_next(Fault::CreateEio);
        assert!(sim.create(&g).is_err());
        assert!(sim.file_bytes(&g).is_none());
        sim.create(&g).unwrap();
        sim.inject(FaultRule::nth(Fault::SyncDirEio, 2));
        sim.sync_dir(Path::new("/")).unwrap();
        assert!(sim.sync_dir(Path::new(DIR)).is_err());
        assert_eq!(sim.durable_list(DIR).unwrap(), ["f"]);
        sim.fail_next(Fault::RenameEio);
        assert!(sim.rename(&g, &file_path()).is_err());
        assert_eq!(sim.file_bytes(file_path()).unwrap(), [5; 100]);
    }

    #[test]
    fn handles_die_and_locks_are_released_at_a_crash() {
        let sim = SimStorage::new(9);
        let file = setup(&sim, b"x");
        let lock = sim.lock(Path::new(DIR)).unwrap();
        assert!(matches!(
            sim.lock(Path::new("/data/")),
            Err(LockError::Held(Some(FAKE_PID)))
        ));
        drop(lock);
        let lock = sim.lock(Path::new(DIR)).unwrap();
        sim.crash();
        assert!(file.len().is_err());
        assert!(file.write_at(b"y", 0).is_err());
        let _lock = sim.lock(Path::new(DIR)).unwrap();
        drop(lock); // the guard from before the crash releases nothing
        assert!(matches!(
            sim.lock(Path::new(DIR)),
            Err(LockError::Held(Some(FAKE_PID)))
        ));
    }

    #[test]
    fn crash_after_ops_stops_every_call_until_the_crash() {
        let sim = SimStorage::new(10);
        let file = setup(&sim, b"abc");
        let before = sim.op_count();
        sim.crash_after_ops(2);
        assert!(!sim.is_stopped());
        file.len().unwrap();
        write_all_at(&*file, b"d", 3).unwrap();
        for _ in 0..3 {
            let err = file.sync_data().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Other);
            assert_eq!(err.to_string(), "simulated crash");
            assert!(sim.is_dir(Path::new(DIR)).is_err());
        }
        assert!(sim.is_stopped());
        assert_eq!(sim.op_count(), before + 8);
        sim.crash_keep_nothing();
        assert!(sim.is_dir(Path::new(DIR)).unwrap());
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"abc");
    }

    #[test]
    fn media_faults_damage_durable_bytes() {
        let sim = SimStorage::new(11);
        setup(&sim, &[0x55; 1500]);
        sim.corrupt_durable(file_path(), 3, MediaFault::BitFlip)
            .unwrap();
        let bytes = sim.durable_bytes(file_path()).unwrap();
        let flipped: u32 = bytes.iter().map(|b| (b ^ 0x55).count_ones()).sum();
        assert_eq!(flipped, 1);
        assert_ne!(bytes[3], 0x55);
        assert_eq!(sim.file_bytes(file_path()).unwrap(), bytes);

        sim.corrupt_durable(file_path(), 1100, MediaFault::ZeroSector)
            .unwrap();
        let bytes = sim.durable_bytes(file_path()).unwrap();
        assert!(bytes[1024..1500].iter().all(|&b| b == 0));
        assert!(bytes[512..1024].iter().all(|&b| b == 0x55));
        assert!(
            sim.corrupt_durable(file_path(), 1500, MediaFault::BitFlip)
                .is_err()
        );
        let (path, offset, _) = sim.random_media_fault().unwrap();
        assert!(offset < 1500 || path.ends_with(LOCK_FILE));
    }

    /// A workload with unsynced operations of every kind, then a random crash.
    fn run(seed: u64) -> (Vec<TraceEntry>, Vec<(PathBuf, Vec<u8>)>) {
        let sim = SimStorage::new(seed);
        let file = setup(&sim, b"header");
        sim.inject(FaultRule::with_probability(Fault::WriteShort, 0.3));
        for i in 0..20u8 {
            write_all_at(&*file, &[i; 300], 6 + u64::from(i) * 300).unwrap();
        }
        file.set_len(1000).unwrap();
        let other = sim.create(&Path::new(DIR).join("other")).unwrap();
        write_all_at(&*other, &[1; 5000], 0).unwrap();
        sim.rename(&Path::new(DIR).join("other"), &Path::new(DIR).join("moved"))
            .unwrap();
        sim.list(Path::new(DIR)).unwrap();
        sim.crash();
        sim.random_media_fault();
        let inner = sim.inner();
        let files = inner
            .walk(View::Durable)
            .into_iter()
            .map(|(path, ino)| (path, inner.file(ino).unwrap().durable.clone()))
            .collect();
        (inner.trace.clone(), files)
    }

    #[test]
    fn same_seed_same_crash_state_and_trace() {
        for seed in 0..20 {
            assert_eq!(run(seed), run(seed), "seed {seed}");
        }
        let states: BTreeSet<_> = (0..20).map(|seed| run(seed).1).collect();
        assert!(states.len() > 10, "different seeds give different crashes");
    }

    /// Every file a durable name reaches, with its durable bytes.
    fn durable_state(sim: &SimStorage) -> Vec<(PathBuf, Vec<u8>)> {
        let inner = sim.inner();
        inner
            .walk(View::Durable)
            .into_iter()
            .map(|(path, ino)| (path, inner.file(ino).unwrap().durable.clone()))
            .collect()
    }

    /// Every crash state of `sim`'s enumeration, each on its own fork.
    fn all_states(sim: &SimStorage) -> Vec<Vec<(PathBuf, Vec<u8>)>> {
        (0..sim.crash_state_count())
            .map(|index| {
                let fork = sim.fork();
                fork.crash_into(index);
                durable_state(&fork)
            })
            .collect()
    }

    #[test]
    fn a_tear_whose_last_part_is_empty_applies_past_the_new_end() {
        let tear = Tear {
            kept: vec![0..10, 600..600],
            fill: Fill::Zeros,
            whole_length: false,
        };
        let mut bytes = Vec::new();
        tear.apply(&mut bytes, 0, &[7u8; 700], false);
        assert_eq!(bytes, vec![7u8; 10]);
    }

    #[test]
    fn forks_are_independent() {
        let sim = SimStorage::new(13);
        let file = setup(&sim, b"synced");
        write_all_at(&*file, b"+pending", 6).unwrap();
        let _lock = sim.lock(Path::new(DIR)).unwrap();
        sim.inject(FaultRule::nth(Fault::ReadEio, 2));
        let fork = sim.fork();

        // The same state, the same random choices.
        assert_eq!(fork.file_bytes(file_path()).unwrap(), b"synced+pending");
        assert_eq!(fork.trace(), sim.trace());
        assert_eq!(fork.crash_state_count(), sim.crash_state_count());
        assert_eq!(fork.pending_summary(), sim.pending_summary());
        // Locks are released in the fork, held in the original.
        let fork_lock = fork.lock(Path::new(DIR)).unwrap();
        assert!(matches!(
            sim.lock(Path::new(DIR)),
            Err(LockError::Held(Some(FAKE_PID)))
        ));
        drop(fork_lock);

        // Changes to one never reach the other.
        write_all_at(&*file, b"!", 14).unwrap();
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"synced+pending!");
        assert_eq!(fork.file_bytes(file_path()).unwrap(), b"synced+pending");
        let forked_file = fork.open(&file_path(), true).unwrap();
        forked_file.sync_data().unwrap();
        assert_eq!(fork.durable_bytes(file_path()).unwrap(), b"synced+pending");
        assert_eq!(sim.durable_bytes(file_path()).unwrap(), b"synced");
        fork.create(&Path::new(DIR).join("only-in-fork")).unwrap();
        assert!(
            sim.file_bytes(Path::new(DIR).join("only-in-fork"))
                .is_none()
        );
        // The armed fault is armed in both, separately: each fires on its own second read.
        for storage in [&sim, &fork] {
            let f = storage.open(&file_path(), false).unwrap();
            f.read_at(&mut [0; 1], 0).unwrap();
            assert!(f.read_at(&mut [0; 1], 0).is_err());
        }
        // A crash of the fork leaves the original's handles alive, and the reverse.
        fork.crash();
        assert_eq!(file.len().unwrap(), 15);
        assert!(forked_file.len().is_err());
        sim.crash_keep_nothing();
        assert_eq!(fork.file_bytes(file_path()).unwrap(), b"synced+pending");
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"synced");
        assert_ne!(fork.trace(), sim.trace());

        // Both draw the same random crash from the same state.
        let sim = SimStorage::new(14);
        let file = setup(&sim, &[3; 700]);
        write_all_at(&*file, &[4; 3000], 500).unwrap();
        sim.create(&Path::new(DIR).join("g")).unwrap();
        let fork = sim.fork();
        sim.crash();
        fork.crash();
        assert_eq!(durable_state(&fork), durable_state(&sim));
    }

    #[test]
    fn nothing_pending_has_one_crash_state_keeping_everything() {
        let sim = SimStorage::new(15);
        let file = setup(&sim, b"all synced");
        assert_eq!(sim.crash_state_count(), 1);
        assert!(
            sim.pending_summary()
                .starts_with("0 pending items, 1 crash states")
        );
        let before = durable_state(&sim);
        sim.crash_into(0);
        assert!(sim.trace_text_last(1).contains("state 0 of 1"));
        assert_eq!(durable_state(&sim), before);
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"all synced");
        assert!(file.len().is_err(), "handles die at the crash");
    }

    #[test]
    #[should_panic(expected = "no crash state 1: the enumeration has 1")]
    fn crash_into_past_the_count_panics() {
        let sim = SimStorage::new(16);
        setup(&sim, b"x");
        sim.crash_into(1);
    }

    #[test]
    fn a_three_sector_write_has_23_crash_states() {
        let synced: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
        let sim = SimStorage::new(17);
        let file = setup(&sim, &synced);
        let written = [0xAB; 1536];
        write_all_at(&*file, &written, 1024).unwrap(); // sectors 2, 3 and 4
        // Lost 1, grown 2 (zeros, garbage), whole 1, torn 19: 7 patterns ({0}, {1}, {0,1},
        // {2}, {0,2}, {1,2}, half of sector 0) times 2 fills at full length, and the 4
        // patterns ending before the write's end at short length: the prefixes {0}, {0,1} and
        // the half sector once each, {1} with 2 fills.
        assert_eq!(sim.crash_state_count(), 23, "{}", sim.pending_summary());
        assert!(
            sim.pending_summary()
                .contains("/data/f: write off=1024 len=1536: 23 alternatives"),
            "{}",
            sim.pending_summary()
        );

        let states = all_states(&sim);
        let mut lost = false;
        let mut whole = false;
        let mut torn = false;
        for (index, state) in states.iter().enumerate() {
            let [(path, bytes)] = state.as_slice() else {
                panic!("state {index}: {state:?}");
            };
            assert_eq!(*path, file_path());
            assert!(bytes.len() >= 1024 && bytes.len() <= 2560, "state {index}");
            assert_eq!(
                &bytes[..1024],
                &synced[..],
                "state {index}: synced bytes survive"
            );
            let tail = &bytes[1024..];
            lost |= tail.is_empty();
            whole |= tail == written;
            torn |= tail.contains(&0xAB) && tail != written;
        }
        assert!(
            lost && whole && torn,
            "lost {lost} whole {whole} torn {torn}"
        );
        let distinct: BTreeSet<_> = states.iter().collect();
        assert_eq!(distinct.len(), 23, "every alternative is a different state");
        assert_eq!(
            states[0],
            [(file_path(), synced.clone())],
            "state 0 loses everything"
        );
    }

    #[test]
    fn an_unsynced_create_has_two_crash_states() {
        let sim = SimStorage::new(18);
        setup(&sim, b"x");
        sim.create(&Path::new(DIR).join("g")).unwrap();
        assert_eq!(sim.crash_state_count(), 2);
        assert!(
            sim.pending_summary()
                .contains("create /data/g: 2 alternatives")
        );
        let names = |index| {
            let fork = sim.fork();
            fork.crash_into(index);
            fork.list(Path::new(DIR)).map(|mut names| {
                names.sort();
                names
            })
        };
        assert_eq!(names(0).unwrap(), ["f"]);
        assert_eq!(names(1).unwrap(), ["f", "g"]);
    }

    #[test]
    fn enumerated_renames_keep_their_source_create() {
        let sim = SimStorage::new(19);
        setup(&sim, b"x");
        let (a, b) = (Path::new(DIR).join("a"), Path::new(DIR).join("b"));
        let file = sim.create(&a).unwrap();
        write_all_at(&*file, b"new", 0).unwrap();
        file.sync_data().unwrap();
        sim.rename(&a, &b).unwrap();
        assert_eq!(sim.crash_state_count(), 4);
        assert!(sim.pending_summary().contains("rename /data/a -> /data/b"));
        let names: BTreeSet<Vec<String>> = (0..4)
            .map(|index| {
                let fork = sim.fork();
                fork.crash_into(index);
                let mut names = fork.durable_list(DIR).unwrap();
                names.sort();
                names
            })
            .collect();
        let expected: BTreeSet<Vec<String>> = [vec!["f"], vec!["a", "f"], vec!["b", "f"]]
            .into_iter()
            .map(|v| v.into_iter().map(String::from).collect())
            .collect();
        assert_eq!(names, expected, "never b without the create of a");
    }

    #[test]
    fn enumeration_is_deterministic() {
        let workload = |seed| {
            let sim = SimStorage::new(seed);
            let file = setup(&sim, &[9; 600]);
            write_all_at(&*file, &[1; 1200], 300).unwrap();
            file.set_len(1000).unwrap();
            write_all_at(&*file, &[2; 100], 1400).unwrap();
            sim.create(&Path::new(DIR).join("g")).unwrap();
            sim
        };
        let sim = workload(20);
        let count = sim.crash_state_count();
        assert!(count > 100, "{}", sim.pending_summary());
        let again = workload(20);
        assert_eq!(again.crash_state_count(), count);
        let mut garbage = false;
        for index in (0..count).step_by(7) {
            let one = sim.fork();
            let two = sim.fork();
            let three = again.fork();
            one.crash_into(index);
            two.crash_into(index);
            three.crash_into(index);
            let state = durable_state(&one);
            assert_eq!(durable_state(&two), state, "index {index}");
            assert_eq!(durable_state(&three), state, "index {index}");
            garbage |= state
                .iter()
                .any(|(_, bytes)| bytes.iter().any(|b| ![0, 1, 2, 9].contains(b)));
        }
        assert!(garbage, "some states hold garbage");
    }

    #[test]
    fn trace_text_renders_calls_and_crashes() {
        let sim = SimStorage::new(12);
        setup(&sim, b"abc");
        sim.crash();
        let text = sim.trace_text();
        assert!(text.contains("write_at"), "{text}");
        assert!(text.contains("/data/f off=0 len=3 -> Ok(3)"), "{text}");
        assert!(text.contains("crash"), "{text}");
        let last = sim.trace_text_last(2);
        assert_eq!(last.lines().count(), 3, "{last}");
        assert!(last.starts_with("("), "{last}");
    }
}
