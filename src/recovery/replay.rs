//! Replay: a reading from the newest valid snapshot on, for an open (read-write or read-only)
//! and for a compaction. The reading rules are the reader's (`read`); this shell adds the
//! policy (the strict one fails on corruption) and turns the reader's plan for the end of the
//! log into what the writer carries out.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::report::Policy;
use crate::error::{Error, Result};
use crate::event::EventRef;
use crate::fold::RunningSet;
use crate::frame::SegmentHeader;
use crate::read::Item;
use crate::read::core::{Found, Plan};
use crate::read::files::{LogReader, Start};
use crate::read::settle::settle;
use crate::storage::{FileBytes, Storage};

/// What a read-write open does to the end of the log: the reader's [`Plan`], with the files'
/// paths and the last segment's bytes as the reading read them.
#[derive(Debug)]
pub(crate) enum Tail {
    /// The directory holds no segment after the snapshot (if any): start segment `segment_no`.
    Fresh { segment_no: u64 },
    /// Append to the last segment after its last valid record; anything past `end` is a torn
    /// tail to cut (and sync) first.
    Append {
        path: PathBuf,
        header: SegmentHeader,
        end: u64,
        /// The segment as the reading read it, so the writer need not read it again.
        bytes: FileBytes,
    },
    /// The last segment ends in corruption, which must be kept: make the whole segment durable
    /// as it is and continue in a new segment `next_segment_no`.
    Seal {
        path: PathBuf,
        bytes: FileBytes,
        next_segment_no: u64,
    },
    /// The last segment cannot be appended to: start segment `segment_no`, after removing
    /// `remove` (a segment whose creation a crash interrupted).
    NewSegment {
        segment_no: u64,
        remove: Option<PathBuf>,
    },
}

/// The outcome of replay: what the reading found, the folded state, and where to go on writing.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub found: Found,
    pub set: RunningSet,
    pub tail: Tail,
}

/// Replays the log in `dir` (as `names` lists it), handing every valid record after the
/// snapshot it starts from to `visit` in log order. Reads only; see [`Tail`] for what the
/// caller must repair. With `segments_below`, only the segments numbered below it are read (a
/// compaction folding the segments it covers while appends go on in later ones).
pub(crate) fn replay(
    storage: &dyn Storage,
    dir: &Path,
    names: &[String],
    policy: Policy,
    segments_below: Option<u64>,
    visit: &mut impl FnMut(u64, EventRef<'_>),
) -> Result<Replayed> {
    let _span = tracing::debug_span!("replay", dir = %dir.display(), segments_below).entered();
    let mut reader = LogReader::new(storage, dir, Start::Newest);
    if let Some(below) = segments_below {
        reader = reader.only_below(below);
    }
    reader.read(names, &mut |item| {
        if let Item::Event(e) = item {
            visit(e.seq, e.event);
        }
        ControlFlow::Continue(())
    })?;
    let (reading, last_bytes) = reader.into_last_bytes();
    let (found, set, plan) = reading.finish();
    enforce(policy, dir, &found)?;
    Ok(Replayed {
        tail: tail(plan, dir, last_bytes),
        found,
        set,
    })
}

/// A read-only replay of a log that may be live: the reading starts over while a compaction
/// or a rollover changes the files under it (see `read::settle`), and only then is the policy
/// applied, so that the strict one fails on damage that held still, never on a change. Returns
/// what the reading found, the folded state, and how many readings started over.
pub(crate) fn replay_settled(
    storage: &dyn Storage,
    dir: &Path,
    policy: Policy,
) -> Result<(Found, RunningSet, u32)> {
    let _span = tracing::debug_span!("replay", dir = %dir.display(), read_only = true).entered();
    let mut reader = LogReader::new(storage, dir, Start::Newest);
    let settled = settle(&mut reader, || (), |(), _| ControlFlow::Continue(()))?;
    let (found, set, _) = reader.into_last_bytes().0.finish();
    enforce(policy, dir, &found)?;
    Ok((found, set, settled.restarts))
}

fn tail(plan: Plan, dir: &Path, last_bytes: Option<FileBytes>) -> Tail {
    let bytes = || last_bytes.expect("a segment with frames was read whole");
    match plan {
        Plan::Fresh { segment_no } => Tail::Fresh { segment_no },
        Plan::Append {
            name, header, end, ..
        } => Tail::Append {
            path: dir.join(name),
            header,
            end,
            bytes: bytes(),
        },
        Plan::Seal {
            name,
            next_segment_no,
        } => Tail::Seal {
            path: dir.join(name),
            bytes: bytes(),
            next_segment_no,
        },
        Plan::NewSegment { segment_no, remove } => Tail::NewSegment {
            segment_no,
            remove: remove.map(|name| dir.join(name)),
        },
    }
}

/// Under the strict policy, the first corruption is an error: the first damaged region this
/// replay found, or else the first gap the snapshot kept (damage found before the snapshot was
/// written, whose bytes a compaction removed).
fn enforce(policy: Policy, dir: &Path, found: &Found) -> Result<()> {
    if policy != Policy::Strict {
        return Ok(());
    }
    let first = found
        .corruption
        .first()
        .or(found.gaps_before_snapshot.first());
    match first {
        None => Ok(()),
        Some(c) => Err(Error::Corrupt {
            segment: dir.join(&c.segment),
            offset: c.start_offset,
            detail: c.to_string(),
        }),
    }
}
