//! Crash-testing the log: the persistence model's oracle, a harness that drives a log on the
//! simulated disk and checks it after every step, and the decoder's invariants. Compiled with
//! the `sim` feature; the project's own property tests, exhaustive enumeration and fuzz targets
//! are built on it, and so can a user's tests.
//!
//! ```
//! use inflight::crashtest::{Harness, Op};
//!
//! let mut h = Harness::new(7)?;
//! h.run(&[
//!     Op::Start { key: 1, generation: 1 },
//!     Op::Crash,
//!     Op::Complete { key: 1, generation: 1 },
//!     Op::CrashDuringRecovery { after: 5 },
//! ])?;
//! assert_eq!(h.stats().crashes, 3);
//! # Ok::<(), Box<inflight::crashtest::Failure>>(())
//! ```

mod alloc;
mod decoder;
mod harness;
mod oracle;

pub use alloc::{CountingAllocator, peak_allocation};
pub use decoder::{
    DECODER_ALLOCATION_FACTOR, DECODER_ALLOCATION_SLACK_BYTES, ScanSummary,
    check_decoder_allocation, check_replay_bytes, check_segment_bytes,
};
pub use harness::{
    FUZZ_OPS_MAX, Failure, FaultKind, FuzzInput, Harness, Op, RECOVERY_CRASH_POINT_MAX,
    START_META_BYTES, Stats, StepEnvironment,
};
pub use oracle::{History, Outcome, Violation, fold};
