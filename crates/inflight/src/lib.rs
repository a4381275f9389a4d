//! `inflight`: exact crash recovery of a gateway's in-flight runs.
//!
//! A gateway records each agent run's start and completion with [`Log::mark_running`] and
//! [`Log::mark_completed`]; each returns once its event is a synced, CRC-framed record in an
//! append-only log. After a crash, [`Log::open`] replays the log and reports exactly which runs
//! were in flight ([`RecoveryReport::running`]), cutting a torn tail, skipping (or refusing)
//! corruption, and ignoring stale-generation records. The log compacts itself into a JSON
//! snapshot in the background ([`Log::compact`]), so an open replays only what came after it,
//! and counts the consecutive recoveries that found each run interrupted, so a run that keeps
//! crashing the process is reported as a crash loop ([`RecoveryReport::crash_loops`]).
//!
//! ```
//! use inflight::{Generation, Log, Opened, Options, Reason, Run, UnixMs};
//!
//! let dir = tempfile::tempdir()?;
//! let Opened { log, report } = Log::open(dir.path(), Options::default())?;
//! assert!(report.running.is_empty()); // a new log: nothing was in flight
//! log.mark_running(
//!     Run::new("agent:main:discord:thread:77", "20261126_1", Generation(1), UnixMs(1_000))
//!         .with_meta(r#"{"resume_from":"m-91"}"#),
//! )?;
//! let run = log.begin_run("agent:main:http:c-5", "20261126_2", None)?; // generation 1, allocated
//! log.mark_completed(&run.key, run.generation)?;
//! drop(log); // the process dies here
//!
//! let Opened { log: _log, report } = Log::open(dir.path(), Options::default())?;
//! assert_eq!(report.running.len(), 1);
//! assert_eq!(report.running[0].run.key, "agent:main:discord:thread:77");
//! assert_eq!(report.running[0].reason, Reason::Crash);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The modules, one job each:
//!
//! The pure core (data in, data out; no file, clock or thread):
//! - [`event`]: the vocabulary: a [`Run`] and the [`Event`]s a log records, to and from bytes.
//! - [`fold`]: events folded into the [`RunningSet`] (the generation rules).
//! - [`frame`]: the file format: segment headers and CRC frames, to and from bytes.
//! - [`snapshot`]: the snapshot format: the state at a cut, to and from checksummed JSON.
//! - [`damage`]: what damage is ([`Corruption`], [`TornTail`]) and how it reads.
//! - `read` (internal): **the one reader of the format**: fed file names and bytes, it checks,
//!   scans, folds and settles damage, and plans the end of the log; its shell lists and opens
//!   the files. Replay, the offline tools and time travel are visitors over it.
//! - [`fallback`]: the time-window guess, only for what the log cannot speak for.
//! - [`percentile`]: the one definition of the percentiles every figure prints.
//! - [`turns`]: a gateway's start-up decisions (promote, suspend as a loop, clear) over the
//!   runs recovery found, planned purely and carried out in shared syncs.
//! - [`metrics`]: the log's figures, to the `metrics` facade (feature `metrics`) and as
//!   [`Log::figures`].
//!
//! The shell:
//! - [`log`]: the handle ([`Log`]): opening, durable appends with group commit (its queue and
//!   the async front's flusher), compaction's orchestration, clean close.
//! - [`recovery`]: replay for an open, and the [`RecoveryReport`] built from what it found.
//! - [`inspect`]: offline tools over a log, read-only and safe on a live one: every item with
//!   its place, time travel, verification, statistics, following a log as it grows.
//! - [`compaction`]: the snapshot written atomically and what it covers removed.
//! - [`import`]: a new log made from runs recorded elsewhere (the JSON checkpoint), all or
//!   nothing.
//! - `writer` (internal): everything that writes a segment: the end of the log at open,
//!   segments created, frames appended and synced, rollover.
//! - [`layout`]: a log directory's names (public: the segment's); `open_dir` (internal): its
//!   creation at open.
//! - `store` (internal): the log-level seam the writer, compaction and the open go through
//!   (segments and snapshots, not paths), and the file store that keeps a log in a directory.
//! - [`storage`]: the file seam the file store goes through, and the real file system.
//! - [`asynclog`]: futures that resolve when events are durable, on any executor.
//! - [`options`], [`limits`], [`environment`] (the clock and salts), [`error`] (the typed
//!   [`Error`], with where it happened and what to do).
//!
//! A fleet's logs in PostgreSQL, behind the same storage seam, and the fenced takeover of a
//! dead instance's runs are the crate `inflight-postgres`.
//!
//! For tests, the crate `inflight-sim`: a simulated storage that loses, tears and corrupts
//! writes as a power loss or a failing disk can, and the persistence model's oracle and a
//! harness that checks the log after every step of a crash test.
//!
//! The depth is in `docs/`: the format (`FORMAT.md`), the guarantees, the CLI, testing and the
//! benchmarks.

#![warn(missing_docs)]
// docs.rs (nightly, `--cfg docsrs`): each item gated by a feature says which.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod asynclog;
pub mod compaction;
pub mod damage;
pub mod environment;
pub mod error;
pub mod event;
pub mod fallback;
pub mod fold;
pub mod frame;
pub mod import;
pub mod inspect;
mod key_order;
pub mod layout;
pub mod limits;
pub mod log;
pub mod metrics;
mod open_dir;
pub mod options;
pub mod percentile;
mod read;
pub mod recovery;
pub mod snapshot;
pub mod storage;
pub mod store;
pub mod turns;
mod writer;

pub use compaction::Compacted;
pub use environment::{Environment, SystemEnvironment};
pub use error::{Error, Result};
pub use event::{Adoption, Event, Generation, Pending, Run, Token, UnixMs};
pub use fold::{Applied, Counters, InFlightRun, Mark, Reason, RunState, RunningSet, Thresholds};
pub use import::ImportReport;
pub use inspect::ReadOnly;
pub use log::{Compaction, Log, Opened, Ticket};
pub use options::Options;
pub use recovery::{Corruption, Policy, RecoveryReport, SnapshotUsed, TornTail};
pub use storage::{FsStorage, Storage, StorageFile};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The examples of `docs/LIBRARY.md`, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/LIBRARY.md")]
pub struct LibraryDoctests;

/// The examples of `docs/CLI.md`, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/CLI.md")]
pub struct CliDoctests;
