//! Time travel: the running set as it was at a sequence number or a time, or a clear refusal
//! where the log no longer holds the records that would say. Never a guess.

use super::{Item, Reader, Walked};
use crate::damage::Corruption;
use crate::error::Result;
use crate::fold::InFlightRun;
use crate::read::point::StopAt;
pub use crate::read::{Point, Unknowable};
use crate::store::LogSource;

/// The running set at a point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateAt {
    /// The point asked for.
    pub point: Point,
    /// The last record folded (0 if none) and its timestamp: the state is the one right after
    /// it.
    pub last_seq: u64,
    /// The timestamp of that record.
    pub last_ms: Option<u64>,
    /// The runs in flight then, ordered by key.
    pub running: Vec<InFlightRun>,
    /// Damaged regions before the point that replay skipped: the state is the one replay would
    /// have reported then, and these are its gaps.
    pub gaps: Vec<Corruption>,
    /// Whether the point lies past the log's last record (the state is the one at its end).
    pub past_the_end: bool,
}

/// The running set at `point`, or why the log cannot know it (the outer error is a log that
/// could not be read at all). Read-only: takes no lock and changes no byte, so it works on a
/// live log.
///
/// ```
/// use inflight::inspect::{Point, state_at};
/// use inflight::store::FileSource;
/// use inflight::{FsStorage, Log, Options};
///
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), Options::default())?.log;
/// let run = log.begin_run("agent:main:http:c-5", "s1", None)?; // record 1
/// log.mark_completed(&run.key, run.generation)?; // record 2
/// let at_1 = state_at(&FileSource::new(&FsStorage::default(), dir.path()), Point::Seq(1))?.unwrap();
/// assert_eq!(at_1.running.len(), 1);
/// let at_2 = state_at(&FileSource::new(&FsStorage::default(), dir.path()), Point::Seq(2))?.unwrap();
/// assert!(at_2.running.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn state_at(
    source: &dyn LogSource,
    point: Point,
) -> Result<std::result::Result<StateAt, Unknowable>> {
    let mut reader = Reader::new(source);
    // Each reading's gaps, and where it stopped.
    let (gaps, stop) = reader.read_settled_before(
        || (Vec::new(), StopAt::new(point)),
        |(gaps, _), item| {
            if let Item::Damage(d) = item {
                gaps.push(d.region.clone());
            }
            std::ops::ControlFlow::Continue(())
        },
        |(_, stop), next| stop.before(next),
    )?;
    let walked: Walked = reader.finish();
    if let Some(why) = stop.unknowable {
        return Ok(Err(why));
    }
    if let (Point::TimeMs(t), Some(since_ms)) = (point, walked.coverage_since_ms)
        && t < since_ms
    {
        return Ok(Err(Unknowable::BeforeCoverage { since_ms }));
    }
    let past_the_end = !walked.stopped;
    if past_the_end
        && let Some(c) = walked.corruption.iter().find(|c| c.before_seq.is_none())
        && point.passed_by(walked.last_seq, walked.last_ms)
    {
        // Damage reaches the end of the log: records after the last valid one may be in it.
        return Ok(Err(Unknowable::Damaged(c.clone())));
    }
    Ok(Ok(StateAt {
        point,
        last_seq: walked.last_seq,
        last_ms: walked.last_ms,
        running: walked.set.entries().cloned().collect(),
        gaps,
        past_the_end,
    }))
}
