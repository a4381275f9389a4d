//! Reading a live log exactly: optimistic concurrency over the storage seam.
//!
//! A read-only reader takes no lock, so a gateway appends, rolls segments over and compacts
//! while it reads: a file it listed may be removed before it opens it (a compaction), a
//! listing taken while a compaction works may hold some of the files it removes and not the
//! snapshot it wrote (a directory listing is not atomic), and the last segment may hold a
//! record half copied into it. Each of these can look like damage ("records missing", a torn
//! tail) or end the reading with an error of kind `NotFound`, though nothing is wrong.
//!
//! So a reading is checked after it ends, against the directory as it is then. It starts over
//! from a new listing (with a short pause, up to [`READ_ATTEMPTS_MAX`] readings) when the
//! change explains what it saw:
//!
//! - a file it listed was gone when it came to read it;
//! - it saw damage, and since its listing a file was removed or a snapshot appeared (a
//!   compaction, which can explain damage anywhere: records missing between the segments it
//!   read, a snapshot that disagrees with a fold missing them);
//! - it saw damage in the last segment it read, and since then a newer segment appeared (a
//!   rollover) or that segment's bytes changed (a record was being written), looked at again
//!   after a moment.
//!
//! Damage seen in a directory whose files held still (or in a segment sealed before the
//! changes) is reported exactly as it is. A reading that never holds still ends with
//! [`Error::KeptChanging`], never with a finding. The check uses only the [`Storage`] seam
//! (list, open, read), so it holds for every storage: a directory, the simulator, a database.
//!
//! The directory's lock cannot stand in for the check: a reader can only learn whether a
//! `flock` is held by taking it, which would make a gateway starting at that instant fail.
//!
//! [`Storage`]: crate::storage::Storage

use std::collections::BTreeSet;
use std::io;
use std::ops::ControlFlow;
use std::time::Duration;

use super::core::{Next, Visit};
use super::files::LogReader;
use super::item::Item;
use crate::error::{Error, Result};
use crate::layout::{is_log_file, parse_snapshot_name};
use crate::limits::READ_ATTEMPTS_MAX;

/// When damage lies in the last segment read and nothing else changed: the pauses after which
/// it is read again, to tell a record being written (whole a moment later: a write into the page
/// cache takes microseconds, unless its thread is preempted in the middle) from a torn tail.
/// Short, since a quiet log with a torn tail (the common trace of a crash) pays them too.
const LAST_SEGMENT_PAUSES: [Duration; 2] = [Duration::ZERO, Duration::from_millis(2)];

/// The pause before the `reading`th reading (from the second on): 1 ms, doubling, at most 64 ms.
fn pause_before(reading: u32) -> Duration {
    Duration::from_millis(1 << reading.saturating_sub(2).min(6))
}

/// What a settled reading gives: the value its visitor built, and how many readings before it
/// were overtaken by a change of the log.
pub(crate) struct Settled<T> {
    pub value: T,
    pub restarts: u32,
}

/// Reads the log until a reading holds still (see the module's documentation). Each reading
/// gets a fresh value from `fresh`, which `visit` builds from its items and `before` may stop
/// before a state ([`Visit::before`]); the last reading's value is returned, and `reader` is
/// left after it (to finish it, or to read on).
pub(crate) fn settle<'s, T>(
    reader: &mut LogReader<'s>,
    mut fresh: impl FnMut() -> T,
    mut visit: impl FnMut(&mut T, &Item<'_>) -> ControlFlow<()>,
    mut before: impl FnMut(&mut T, &Next<'_>) -> ControlFlow<()>,
) -> Result<Settled<T>> {
    reader.starts_over = true;
    let mut readings = 0;
    loop {
        readings += 1;
        if readings > 1 {
            std::thread::sleep(pause_before(readings));
            reader.start_over();
        }
        let names = reader.list_log()?;
        let mut value = fresh();
        let mut seen = Seen::default();
        let mut settling = Settling {
            value: &mut value,
            seen: &mut seen,
            visit: &mut visit,
            before: &mut before,
        };
        let read = reader.read(&names, &mut settling);
        let held_still = match read {
            Ok(()) => {
                if let Some(torn) = reader.torn_tail() {
                    // Held without an item: the reading stopped before its end.
                    seen.files.insert(torn.segment.clone());
                }
                held_still(reader, &names, &seen)?
            }
            Err(e) if removed(&e) => false,
            Err(e) => return Err(e),
        };
        if held_still {
            return Ok(Settled {
                value,
                restarts: readings - 1,
            });
        }
        tracing::debug!(
            dir = %reader.dir().display(),
            reading = readings,
            "the log changed under the reading: starting over"
        );
        if readings >= READ_ATTEMPTS_MAX {
            return Err(Error::KeptChanging {
                dir: reader.dir().to_path_buf(),
                attempts: readings,
            });
        }
    }
}

/// A file the reading listed was gone when it came to read it.
fn removed(e: &Error) -> bool {
    matches!(e, Error::Io { .. }) && e.io_kind() == io::ErrorKind::NotFound
}

/// One reading's visitor: the caller's, and what the reading saw noted.
struct Settling<'a, T, V, B> {
    value: &'a mut T,
    seen: &'a mut Seen,
    visit: &'a mut V,
    before: &'a mut B,
}

impl<T, V, B> Visit for Settling<'_, T, V, B>
where
    V: FnMut(&mut T, &Item<'_>) -> ControlFlow<()>,
    B: FnMut(&mut T, &Next<'_>) -> ControlFlow<()>,
{
    fn item(&mut self, item: &Item<'_>) -> ControlFlow<()> {
        self.seen.note(item);
        (self.visit)(self.value, item)
    }

    fn before(&mut self, next: &Next<'_>) -> ControlFlow<()> {
        let flow = (self.before)(self.value, next);
        if flow.is_break()
            && let Next::Event { damage, .. } = next
        {
            // Damage the reading stops before is never handed out as an item (time travel's
            // point may lie in it): it was seen all the same.
            self.seen
                .files
                .extend(damage.iter().map(|d| d.segment.clone()));
        }
        flow
    }
}

/// The files in which a reading saw damage.
#[derive(Default)]
struct Seen {
    files: BTreeSet<String>,
}

impl Seen {
    fn note(&mut self, item: &Item<'_>) {
        match item {
            Item::Damage(d) => {
                self.files.insert(d.region.segment.clone());
            }
            Item::Snapshot(s) if s.matches_records == Some(false) => {
                self.files.insert(s.file.to_string());
            }
            Item::End(end) => {
                if let Some(t) = end.torn_tail {
                    self.files.insert(t.segment.clone());
                }
            }
            _ => {}
        }
    }
}

/// Whether what the reading saw stands: no damage, or damage that no change of the directory
/// since `listed` explains.
fn held_still(reader: &LogReader<'_>, listed: &[String], seen: &Seen) -> Result<bool> {
    if seen.files.is_empty() {
        return Ok(true);
    }
    let now = reader.list()?;
    let log_files = |names: &[String]| -> BTreeSet<String> {
        names.iter().filter(|n| is_log_file(n)).cloned().collect()
    };
    let (before, after) = (log_files(listed), log_files(&now));
    if before.difference(&after).next().is_some() {
        return Ok(false); // a file removed: a compaction
    }
    let added: Vec<&String> = after.difference(&before).collect();
    if added.iter().any(|n| parse_snapshot_name(n).is_some()) {
        return Ok(false); // a snapshot written: a compaction
    }
    let Some(last) = reader.last_segment() else {
        return Ok(true);
    };
    if !seen.files.contains(last) {
        return Ok(true); // damage in segments sealed before the reading: real
    }
    if !added.is_empty() {
        return Ok(false); // a rollover: the last segment was being written
    }
    Ok(!reader.last_segment_changed(&LAST_SEGMENT_PAUSES)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pauses_grow_and_stay_short() {
        let pauses: Vec<u64> = (2..=READ_ATTEMPTS_MAX)
            .map(|r| pause_before(r).as_millis() as u64)
            .collect();
        assert_eq!(&pauses[..8], [1, 2, 4, 8, 16, 32, 64, 64]);
        assert!(pauses.iter().sum::<u64>() < 1_000, "{pauses:?}");
    }
}
