//! The one place where the offline tools decide what damage at the end of the last segment is:
//! the end of the data (a record still being written on a live log, or a torn tail a crash
//! left) or corruption. It applies the rule recovery applies (`recovery::is_torn_tail`, the
//! README's "The end"), so that the tools and an open never disagree.

use crate::recovery::{Damage, is_torn_tail};

/// What damaged regions at the end of the last segment are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TailVerdict {
    /// What one interrupted append can leave: on a live log, a record still being written;
    /// after a crash, a torn tail.
    Unfinished,
    /// Anything else: corruption reaching the end of the log.
    Corrupt,
}

/// Classifies `regions` (in order, all in the last segment, the first starting at the first
/// byte of `bytes` and the last ending at its end; `salt` is the segment's).
pub(super) fn classify_tail(regions: &[Damage], bytes: &[u8], salt: u64) -> TailVerdict {
    if is_torn_tail(regions, bytes, salt) {
        TailVerdict::Unfinished
    } else {
        TailVerdict::Corrupt
    }
}
