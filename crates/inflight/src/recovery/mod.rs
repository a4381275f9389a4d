//! Recovery: what an open (or a read-only replay) reports, and replay itself: a reading from
//! the newest valid snapshot on (see `read`), with the policy for corruption, and the plan for
//! the end of the log that the writer carries out (the reader's `read::End`). Replay changes nothing on disk.
//!
//! - `report`: what recovery tells its caller: the interrupted runs, the torn tail, the gaps,
//!   built in one place.
//! - `replay`: the reading and the strict policy.

mod replay;
mod report;

pub use crate::damage::{Corruption, TornTail};
pub use crate::read::UNSYNCED_TAIL_BYTES_MAX;
pub(crate) use replay::{Replayed, replay, replay_settled};
pub(crate) use report::Runs;
pub use report::{Policy, RecoveryReport, SnapshotUsed};
