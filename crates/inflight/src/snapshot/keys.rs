//! Version 3's key table: every key the state knows, one JSON array per key, in ascending key
//! order. docs/FORMAT.md ("Snapshots", `keys`) describes the same rows; change both together.
//!
//! A key with no run in flight is `[key, generation, last_event_ms]` (its high-water mark); a
//! key with one is that and the run's eleven fields after it:
//!
//! ```text
//! [key, generation, last_event_ms,
//!  session_id, run_generation, started_at_ms, meta, nonce,
//!  reason, recoveries, stops, running, pending, suspended_at_ms]
//! ```
//!
//! Versions 1 and 2 wrote each run as an object naming its twelve members, and each key a
//! second time in a mark object of its own: about 380 bytes a run where a row takes about 180,
//! and twice the strings to parse. The rows are read straight into the runs and marks, with no
//! value in between.

use std::fmt;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::KeyMark;
use crate::event::Run;
use crate::fold::{InFlightRun, Mark};

/// The members of a key's row without a run.
const MARK_ROW_LEN: usize = 3;
/// The members of a key's row with a run.
const RUN_ROW_LEN: usize = 14;

/// One key's row, borrowed from a state, to write. A run whose key has no mark (a state the
/// fold cannot reach, which only a hand-made [`Snapshot`](super::Snapshot) holds) is written
/// with `null` for the mark, which no reader takes.
pub(super) struct KeyRow<'a> {
    pub key: &'a str,
    pub mark: Option<Mark>,
    pub run: Option<&'a InFlightRun>,
}

impl Serialize for KeyRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = if self.run.is_some() {
            RUN_ROW_LEN
        } else {
            MARK_ROW_LEN
        };
        let mut row = serializer.serialize_seq(Some(len))?;
        row.serialize_element(self.key)?;
        row.serialize_element(&self.mark.map(|m| m.generation))?;
        row.serialize_element(&self.mark.map(|m| m.last_event_ms))?;
        if let Some(entry) = self.run {
            let run = &entry.run;
            row.serialize_element(&run.session_id)?;
            row.serialize_element(&run.generation)?;
            row.serialize_element(&run.started_at_ms)?;
            row.serialize_element(&run.meta)?;
            row.serialize_element(&run.nonce)?;
            row.serialize_element(&entry.reason)?;
            row.serialize_element(&entry.recoveries)?;
            row.serialize_element(&entry.stops)?;
            row.serialize_element(&entry.running)?;
            row.serialize_element(&entry.pending)?;
            row.serialize_element(&entry.suspended_at_ms)?;
        }
        row.end()
    }
}

/// The rows of `marks` and `runs` (each in ascending key order), merged by key: a mark with
/// the run of its key, if there is one. Every mark and every run lands in exactly one row,
/// whatever the order, so a state out of order is written as such and read as damage.
pub(super) fn rows_of<'a>(marks: &'a [KeyMark], runs: &'a [InFlightRun]) -> Vec<KeyRow<'a>> {
    let mark_row = |m: &'a KeyMark, run| KeyRow {
        key: &m.key,
        mark: Some(Mark {
            generation: m.generation,
            last_event_ms: m.last_event_ms,
        }),
        run,
    };
    let run_row = |r: &'a InFlightRun| KeyRow {
        key: &r.run.key,
        mark: None,
        run: Some(r),
    };
    let mut rows = Vec::with_capacity(marks.len().max(runs.len()));
    let (mut marks, mut runs) = (marks.iter().peekable(), runs.iter().peekable());
    loop {
        match (marks.peek(), runs.peek()) {
            (Some(m), Some(r)) if m.key == r.run.key => {
                rows.push(mark_row(m, Some(*r)));
                marks.next();
                runs.next();
            }
            (Some(m), Some(r)) if m.key > r.run.key => {
                rows.push(run_row(r));
                runs.next();
            }
            (Some(m), _) => {
                rows.push(mark_row(m, None));
                marks.next();
            }
            (None, Some(r)) => {
                rows.push(run_row(r));
                runs.next();
            }
            (None, None) => return rows,
        }
    }
}

/// The key table as read: the runs and the marks, as [`Snapshot`](super::Snapshot) holds them
/// (each in the rows' order; [`Snapshot::check`](super::Snapshot) checks that order after).
#[derive(Default)]
pub(super) struct KeyTable {
    pub running: Vec<InFlightRun>,
    pub marks: Vec<KeyMark>,
}

impl<'de> Deserialize<'de> for KeyTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<KeyTable, D::Error> {
        deserializer.deserialize_seq(TableVisitor)
    }
}

struct TableVisitor;

impl<'de> Visitor<'de> for TableVisitor {
    type Value = KeyTable;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of key rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut rows: A) -> Result<KeyTable, A::Error> {
        let mut table = KeyTable::default();
        while rows.next_element_seed(RowInto(&mut table))?.is_some() {}
        Ok(table)
    }
}

/// Reads one row into the table.
struct RowInto<'t>(&'t mut KeyTable);

impl<'de> DeserializeSeed<'de> for RowInto<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a key's row: an array of {MARK_ROW_LEN} or {RUN_ROW_LEN} members"
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut row: A) -> Result<(), A::Error> {
        // How many members were read: a row that ends early is short by its length.
        let mut at = 0usize;
        macro_rules! member {
            () => {{
                at += 1;
                row.next_element()?
                    .ok_or_else(|| de::Error::invalid_length(at - 1, &self))?
            }};
        }
        let key: String = member!();
        let generation: u64 = member!();
        let last_event_ms: u64 = member!();
        let mark = |key| KeyMark {
            key,
            generation,
            last_event_ms,
        };
        let Some(session_id) = row.next_element::<String>()? else {
            self.0.marks.push(mark(key));
            return Ok(());
        };
        at += 1;
        let run = Run {
            key: key.clone(),
            session_id,
            generation: member!(),
            started_at_ms: member!(),
            meta: member!(),
            nonce: member!(),
        };
        let entry = InFlightRun {
            run,
            reason: member!(),
            recoveries: member!(),
            stops: member!(),
            running: member!(),
            pending: member!(),
            suspended_at_ms: member!(),
        };
        // A member after the fourteenth is refused by the JSON reader: a visitor that stops
        // before the array's end fails it ("trailing characters").
        self.0.running.push(entry);
        self.0.marks.push(mark(key));
        Ok(())
    }
}
