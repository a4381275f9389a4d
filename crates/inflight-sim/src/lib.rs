//! `inflight-sim`: the simulator and the crash-test harness of [`inflight`], for tests.
//!
//! - [`sim`]: a simulated storage ([`sim::SimStorage`]) that implements the log's storage seam
//!   in memory, deterministically from a seed, and loses, tears and corrupts writes as a power
//!   loss or a failing disk can;
//! - [`crashtest`]: the persistence model's oracle, a harness that drives a log on the
//!   simulated disk and checks it after every step, and the decoder's invariants.
//!
//! The project's crash-test tiers, fuzz targets and corpus tests are built on them, and so can a
//! gateway's own tests (docs/TESTING.md). The feature `fuzzing` derives `arbitrary` for the
//! crash-test operations.

#![warn(missing_docs)]

pub mod crashtest;
pub mod sim;
