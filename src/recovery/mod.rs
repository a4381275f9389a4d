//! Recovery: replay every segment, fold its events, and classify whatever is damaged as a torn
//! tail (cut before the next append) or corruption (reported as a gap, or an error under the
//! strict policy). Replay itself changes nothing on disk; it returns a plan (`Tail`) that the
//! writer carries out.
//!
//! - `report`: what recovery tells its caller: the interrupted runs, the torn tail, the gaps.
//! - `replay`: the walk over the segments, in named steps.
//! - `damage`: damaged regions, and the rules that tell what a crash can leave (a torn tail, an
//!   unfinished segment header) from corruption.

mod damage;
mod replay;
mod report;

pub use damage::UNSYNCED_TAIL_BYTES_MAX;
// For the offline tools (`inspect`), which walk a log with the same rules.
pub(crate) use damage::{Damage, is_torn_tail, is_unfinished_header};
pub(crate) use replay::{
    DamagedHeader, check_header, read_segment_file, read_snapshot, uncovered_segment,
};
pub(crate) use replay::{Tail, replay};
pub use report::{Corruption, Policy, RecoveryReport, SnapshotUsed, TornTail};
