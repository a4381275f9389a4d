//! Replay: a reading from the newest valid snapshot on, for an open (read-write or read-only)
//! and for a compaction. The reading rules are the reader's (`read`); this shell adds the
//! policy (the strict one fails on corruption); the end of the log the reader decided
//! ([`End`]) goes to the writer as it is.

use std::ops::ControlFlow;
use std::path::Path;

use super::report::Policy;
use crate::error::{Error, Result};
use crate::event::EventRef;
use crate::fold::RunningSet;
use crate::read::Item;
use crate::read::core::{End, Found};
use crate::read::files::{LogReader, Start};
use crate::read::settle::settle;
use crate::store::LogSource;

/// The outcome of replay: what the reading found, the folded state, and where to go on writing.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub found: Found,
    pub set: RunningSet,
    pub end: End,
}

/// Replays the log in `dir` (as `names` lists it), handing every valid record after the
/// snapshot it starts from to `visit` in log order. Reads only; see [`End`] for what the
/// caller must repair. With `segments_below`, only the segments numbered below it are read (a
/// compaction folding the segments it covers while appends go on in later ones).
pub(crate) fn replay(
    source: &dyn LogSource,
    names: &[String],
    policy: Policy,
    segments_below: Option<u64>,
    visit: &mut impl FnMut(u64, EventRef<'_>),
) -> Result<Replayed> {
    let dir = source.place();
    let _span = tracing::debug_span!("replay", dir = %dir.display(), segments_below).entered();
    let mut reader = LogReader::over(Box::new(source), Start::Newest);
    if let Some(below) = segments_below {
        reader = reader.only_below(below);
    }
    reader.read(names, &mut |item: &Item<'_>| {
        if let Item::Event(e) = item {
            visit(e.seq, e.event);
        }
        ControlFlow::Continue(())
    })?;
    let (found, set, end) = reader.finish();
    enforce(policy, dir, &found)?;
    Ok(Replayed { found, set, end })
}

/// A read-only replay of a log that may be live: the reading starts over while a compaction
/// or a rollover changes the files under it (see `read::settle`), and only then is the policy
/// applied, so that the strict one fails on damage that held still, never on a change. Returns
/// what the reading found, the folded state, and how many readings started over.
pub(crate) fn replay_settled(
    source: &dyn LogSource,
    policy: Policy,
) -> Result<(Found, RunningSet, u32)> {
    let dir = source.place();
    let _span = tracing::debug_span!("replay", dir = %dir.display(), read_only = true).entered();
    let mut reader = LogReader::over(Box::new(source), Start::Newest);
    let go_on = |(): &mut (), _: &Item<'_>| ControlFlow::Continue(());
    let settled = settle(&mut reader, || (), go_on, |(), _| ControlFlow::Continue(()))?;
    let (found, set) = reader.found();
    enforce(policy, dir, &found)?;
    Ok((found, set, settled.restarts))
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
