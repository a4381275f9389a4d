//! Crash-testing the log: the persistence model's oracle, a harness that drives a log on the
//! simulated disk and checks it after every step, and the decoder's invariants. The project's
//! own property tests, exhaustive enumeration and fuzz targets are built on it, and so can a
//! user's tests.
//!
//! The persistence model is what a crash may do to the disk (F1 to F12, listed in the `sim`
//! module) and what recovery must then guarantee. Each event a test submits is **acked** (its
//! call returned `Ok`), **failed** (it returned an error) or **in flight** (a crash came during
//! the call; treated as failed). After a crash and recovery:
//!
//! - **O1** every acked event is in the recovered log, in order, exactly;
//! - **O2** the recovered events are the acked ones plus, possibly, some failed ones, in
//!   submission order: no duplicate, no reordering, nothing never submitted, nothing an earlier
//!   recovery found absent coming back;
//! - **O3** after a media fault (F11), recovery satisfies O1 and O2 or reports the damage with
//!   its place, and never returns an event with wrong bytes;
//! - **O4** recovery is idempotent and survives crashes during recovery;
//! - **O5** a crash at any step of compaction leaves the old state or the new;
//! - **O6** after a failed sync (F7) every later call fails until the log is reopened;
//! - **O7** the recovered running set is what the reference [`Model`] (a second, plain
//!   implementation of the generation rules that shares no code with the log's fold) gives for
//!   the recovered events, and for acked events equals what the live process held.
//!
//! Every error the log returns must be explained by a fault the test injected into that call
//! (or by an earlier one that poisoned the handle): a log whose calls failed on their own would
//! otherwise pass O1 and O2 with nothing acknowledged.
//!
//! The tests come in four tiers: decoder fuzzing ([`check_segment_bytes`] with a replay of the
//! bytes, and [`check_pure_decoders`] on the decoders alone), a property-based
//! state machine ([`Harness`]), exhaustive enumeration of crash states
//! ([`SimStorage::crash_into`](crate::sim::SimStorage::crash_into)), and real processes killed
//! with SIGKILL.
//!
//! ```
//! use inflight_sim::crashtest::{Harness, Op};
//!
//! let mut h = Harness::new(7)?;
//! h.run(&[
//!     Op::Start { key: 1, generation: 1 },
//!     Op::Crash,
//!     Op::Complete { key: 1, generation: 1 },
//!     Op::CrashDuringRecovery { after: 5 },
//! ])?;
//! assert_eq!(h.coverage().crashes, 3);
//! # Ok::<(), Box<inflight_sim::crashtest::Failure>>(())
//! ```

mod alloc;
mod decoder;
mod harness;
mod ops;
mod oracle;
mod pure;
mod recovery_check;

pub use alloc::{CountingAllocator, peak_allocation};
pub use decoder::{
    DECODER_ALLOCATION_FACTOR, DECODER_ALLOCATION_SLACK_BYTES, ScanSummary,
    check_decoder_allocation, check_replay_bytes, check_segment_bytes,
};
pub use harness::{Coverage, Failure, Harness, START_META_BYTES, StepEnvironment};
pub use ops::{FUZZ_OPS_MAX, FaultKind, FuzzInput, Op, RECOVERY_CRASH_POINT_MAX};
pub use oracle::{History, Model, Outcome, Violation};
pub use pure::{
    PureSummary, SNAPSHOT_ALLOCATION_FACTOR, check_pure_decoders, check_snapshot_decoder,
};
