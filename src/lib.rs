//! `inflight`: exact crash recovery of a gateway's in-flight runs.
//!
//! A gateway records each agent run's start and completion with [`Log::mark_running`] and
//! [`Log::mark_completed`]; each returns once its event is a synced, CRC-framed record in an
//! append-only log. After a crash, [`Log::open`] replays the log and reports exactly which runs
//! were in flight ([`RecoveryReport::running`]), cutting a torn tail, skipping (or refusing)
//! corruption, and ignoring stale-generation records.
//!
//! ```
//! use inflight::{Log, Options, Reason, Run};
//!
//! let dir = tempfile::tempdir()?;
//! let (log, _) = Log::open(dir.path(), Options::default())?;
//! log.mark_running(Run::new("agent:main:discord:thread:77", "20261126_1", 1, 1_000).with_meta("{\"resume_from\":\"m-91\"}"))?;
//! log.mark_running(Run::new("agent:main:http:c-5", "20261126_2", 1, 1_001))?;
//! log.mark_completed("agent:main:http:c-5", 1)?;
//! drop(log); // the process dies here
//!
//! let (_log, report) = Log::open(dir.path(), Options::default())?;
//! assert_eq!(report.running.len(), 1);
//! assert_eq!(report.running[0].run.key, "agent:main:discord:thread:77");
//! assert_eq!(report.running[0].reason, Reason::Crash);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The modules, one job each:
//!
//! - [`event`]: the vocabulary: a [`Run`] and the [`Event`]s a log records.
//! - [`fold`]: the pure core: events folded into the [`RunningSet`] (the generation rules).
//! - [`frame`]: the pure file format: segment headers and CRC frames, to and from bytes.
//! - [`recovery`]: replay, and the classification of damage as torn tail or corruption.
//! - [`log`]: the handle: open (lock, replay, repair), durable appends, clean close.
//! - `open_dir` (internal): the log directory created at open, and its entry made durable.
//! - `writer` (internal): the open end of the log: segments created, frames appended and
//!   synced, rollover, the durable copy made at open.
//! - `layout` (internal): what a log directory holds: segment file names, temporary copies.
//! - [`storage`]: the seam every file operation goes through, and the real file system.
//! - `sim` (feature `sim`): a simulated storage that loses, tears and corrupts writes the way a
//!   power loss or a failing disk can, for crash-testing the log and code built on it.
//! - [`limits`]: every size the log accepts.
//! - `crashtest` (feature `sim`): the persistence model's oracle and a harness that checks the
//!   log after every step of a crash test.
//! - [`error`]: the typed [`Error`], with where it happened and what to do.

#![warn(missing_docs)]

#[cfg(feature = "sim")]
pub mod crashtest;
pub mod error;
pub mod event;
pub mod fold;
pub mod frame;
mod layout;
pub mod limits;
pub mod log;
mod open_dir;
pub mod recovery;
// The simulated, crash-injecting storage for tests (feature `sim`); documented in the module.
#[cfg(feature = "sim")]
pub mod sim;
pub mod storage;
mod writer;

pub use error::{Error, Result};
pub use event::{Event, Run};
pub use fold::{Applied, Counters, Entry, Mark, Reason, RunningSet};
pub use log::{Environment, Log, Options, Recovered, SystemEnvironment};
pub use recovery::{Corruption, InterruptedRun, Policy, RecoveryReport, TornTail};
pub use storage::{FsStorage, Storage, StorageFile};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
