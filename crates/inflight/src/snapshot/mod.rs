//! The pure snapshot format: the state a compaction writes, to and from JSON bytes. No I/O.
//! docs/FORMAT.md ("Snapshots") describes the same format; change both together.
//!
//! A snapshot file is one JSON object on one line:
//!
//! ```text
//! {"inflight_snapshot":1,"body_crc32":3735928559,"body":{...}}
//! ```
//!
//! `body_crc32` is the CRC-32 of the exact bytes of `body` as they stand in the file, so a
//! damaged snapshot is detected rather than believed. The body's `keys` hold the state, a row
//! per key (docs/FORMAT.md, "Snapshots"); `jq -c '.body.keys[] | select(length == 14)'` lists
//! the runs in flight.

mod keys;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use self::keys::{KeyRow, KeyTable, rows_of};
use crate::damage::Corruption;
use crate::event::{validate_key, validate_reason, validate_run};
use crate::fold::{Counters, InFlightRun, Mark, RunningSet};
use crate::layout::SEGMENT_NO_MAX;
use crate::limits::{GAPS_KEPT_MAX, SNAPSHOT_BYTES_MAX, SNAPSHOT_NESTING_MAX};

/// The snapshot format version this build writes: 3, the state as a table of key rows. It reads
/// this one, version 2 (the same state, as objects: a run's and a mark's), and version 1 (before
/// resume-pending states, suspensions, graceful-stop counts and nonces: a run of a version-1
/// snapshot is running, with none of them).
pub const SNAPSHOT_VERSION: u32 = 3;

/// The snapshot a replay started from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotUsed {
    /// The snapshot file's name.
    pub file: String,
    /// The last sequence number it covers.
    pub last_seq: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// A key's high-water mark, as a snapshot lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMark {
    /// The key.
    pub key: String,
    /// The highest generation seen for it.
    pub generation: u64,
    /// The timestamp of its latest event (retention forgets the mark when this is old).
    pub last_event_ms: u64,
}

/// The log's state at a cut: everything replay needs to go on from the records after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The last sequence number the snapshot covers; replay goes on at the next one.
    pub last_seq: u64,
    /// Segments numbered below this are covered and may be removed; replay skips them.
    pub next_segment_no: u64,
    /// Timestamp of the last record covered (`null` if none): where a gap right after the
    /// snapshot would begin.
    pub last_record_ms: Option<u64>,
    /// Since when the log has been recording.
    pub coverage_since_ms: u64,
    /// When the snapshot was written.
    pub created_ms: u64,
    /// Whether the last event covered (the log's own records aside) was a clean shutdown.
    pub ended_with_shutdown: bool,
    /// The fold's counters since the log was created.
    pub counters: Counters,
    /// The running runs, in ascending key order.
    pub running: Vec<InFlightRun>,
    /// The high-water marks kept, in ascending key order.
    pub marks: Vec<KeyMark>,
    /// Damage found in what the snapshot covers (the newest [`GAPS_KEPT_MAX`]), so that the
    /// time-window fallback still sees the gaps after their segments are gone.
    pub gaps: Vec<Corruption>,
    /// The highest generation among the marks retention forgot (0 if none), so that the log
    /// never allocates a generation twice.
    #[serde(default)]
    pub forgotten_generation: u64,
}

/// Why snapshot bytes were rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// The checksum holds, but the version is one this build does not read.
    UnsupportedVersion(u32),
    /// The bytes are not a valid snapshot: what is wrong.
    Damaged(String),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::UnsupportedVersion(v) => {
                write!(f, "snapshot format version {v} is not supported")
            }
            SnapshotError::Damaged(detail) => write!(f, "damaged snapshot: {detail}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    inflight_snapshot: u32,
    body_crc32: u32,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// The checks that hold for every part of a snapshot file alike, members this build does not
/// know included (serde skips those without looking inside): no array or object nested deeper
/// than [`SNAPSHOT_NESTING_MAX`], and no string escape that is half of a surrogate pair. The
/// rest of the JSON grammar is serde_json's to check. Pure; one pass, no allocation.
fn check_text(bytes: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' | b'{' => {
                depth += 1;
                if depth > SNAPSHOT_NESTING_MAX {
                    return Err(format!(
                        "arrays and objects nest deeper than {SNAPSHOT_NESTING_MAX} at byte {i}"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'"' => i = check_string(bytes, i + 1)?,
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Checks the escapes of the string whose contents start at `start`; returns the offset of its
/// closing quote (or the end of `bytes`, for serde_json to report).
fn check_string(bytes: &[u8], start: usize) -> Result<usize, String> {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Ok(i),
            b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                let unit = hex4(bytes, i + 2);
                match unit {
                    Some(0xD800..=0xDBFF) => {
                        let low = (bytes.get(i + 6..i + 8) == Some(&b"\\u"[..]))
                            .then(|| hex4(bytes, i + 8))
                            .flatten();
                        if !matches!(low, Some(0xDC00..=0xDFFF)) {
                            return Err(format!("a lone surrogate escape at byte {i}"));
                        }
                        i += 12;
                    }
                    Some(0xDC00..=0xDFFF) => {
                        return Err(format!("a lone surrogate escape at byte {i}"));
                    }
                    _ => i += 6,
                }
            }
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Ok(bytes.len())
}

/// The four hex digits at `at`, if they are.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u32::from_str_radix(digits, 16)
        .ok()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A version-1 snapshot's body: the members version 2 added are unknown here (a run's and the
/// counters' unlisted members are ignored, whatever their values), and take their defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotV1 {
    last_seq: u64,
    next_segment_no: u64,
    #[serde(default)]
    last_record_ms: Option<u64>,
    coverage_since_ms: u64,
    created_ms: u64,
    ended_with_shutdown: bool,
    counters: CountersV1,
    running: Vec<RunV1>,
    marks: Vec<KeyMark>,
    gaps: Vec<Corruption>,
    #[serde(default)]
    forgotten_generation: u64,
}

/// A version-1 snapshot's counters.
#[derive(Deserialize)]
struct CountersV1 {
    started: u64,
    stale_starts: u64,
    completed: u64,
    stale_completions: u64,
    unknown_completions: u64,
    shutdowns: u64,
    superseded: u64,
    #[serde(default)]
    recoveries: u64,
    #[serde(default)]
    retentions: u64,
    #[serde(default)]
    forgotten: u64,
}

/// A version-1 snapshot's run: running, with no nonce, no stops and no decision.
#[derive(Deserialize)]
struct RunV1 {
    key: String,
    session_id: String,
    generation: u64,
    started_at_ms: u64,
    #[serde(default)]
    meta: Option<String>,
    reason: crate::event::Reason,
    #[serde(default)]
    recoveries: u32,
}

/// A version-3 snapshot's body: version 2's state, its runs and marks in one table of rows.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotV3 {
    last_seq: u64,
    next_segment_no: u64,
    #[serde(default)]
    last_record_ms: Option<u64>,
    coverage_since_ms: u64,
    created_ms: u64,
    ended_with_shutdown: bool,
    counters: Counters,
    keys: KeyTable,
    gaps: Vec<Corruption>,
    #[serde(default)]
    forgotten_generation: u64,
}

impl From<SnapshotV3> for Snapshot {
    fn from(v3: SnapshotV3) -> Snapshot {
        Snapshot {
            last_seq: v3.last_seq,
            next_segment_no: v3.next_segment_no,
            last_record_ms: v3.last_record_ms,
            coverage_since_ms: v3.coverage_since_ms,
            created_ms: v3.created_ms,
            ended_with_shutdown: v3.ended_with_shutdown,
            counters: v3.counters,
            running: v3.keys.running,
            marks: v3.keys.marks,
            gaps: v3.gaps,
            forgotten_generation: v3.forgotten_generation,
        }
    }
}

impl From<SnapshotV1> for Snapshot {
    fn from(v1: SnapshotV1) -> Snapshot {
        let c = v1.counters;
        let running = v1.running.into_iter().map(|r| {
            let run = crate::event::Run {
                key: r.key,
                session_id: r.session_id,
                generation: r.generation,
                started_at_ms: r.started_at_ms,
                meta: r.meta,
                nonce: 0,
            };
            InFlightRun {
                reason: r.reason,
                recoveries: r.recoveries,
                ..InFlightRun::new(run)
            }
        });
        Snapshot {
            last_seq: v1.last_seq,
            next_segment_no: v1.next_segment_no,
            last_record_ms: v1.last_record_ms,
            coverage_since_ms: v1.coverage_since_ms,
            created_ms: v1.created_ms,
            ended_with_shutdown: v1.ended_with_shutdown,
            counters: Counters {
                started: c.started,
                stale_starts: c.stale_starts,
                completed: c.completed,
                stale_completions: c.stale_completions,
                unknown_completions: c.unknown_completions,
                shutdowns: c.shutdowns,
                superseded: c.superseded,
                recoveries: c.recoveries,
                retentions: c.retentions,
                forgotten: c.forgotten,
                ..Counters::default()
            },
            running: running.collect(),
            marks: v1.marks,
            gaps: v1.gaps,
            forgotten_generation: v1.forgotten_generation,
        }
    }
}

impl Snapshot {
    /// The state a snapshot holds of `set`, covering the log up to `last_seq`. Gaps beyond the
    /// newest [`GAPS_KEPT_MAX`] are dropped.
    pub fn of(
        set: &RunningSet,
        last_seq: u64,
        next_segment_no: u64,
        last_record_ms: Option<u64>,
        coverage_since_ms: u64,
        created_ms: u64,
        gaps: Vec<Corruption>,
    ) -> Snapshot {
        // One sort of the keys for both lists, as compaction's encoder does.
        let keys = set.sorted_keys();
        Snapshot {
            last_seq,
            next_segment_no,
            last_record_ms,
            coverage_since_ms,
            created_ms,
            ended_with_shutdown: set.ended_with_shutdown(),
            counters: set.counters(),
            running: keys
                .iter()
                .filter_map(|&(_, _, run)| run.cloned())
                .collect(),
            marks: keys
                .iter()
                .map(|&(key, mark, _)| KeyMark {
                    key: key.to_string(),
                    generation: mark.generation,
                    last_event_ms: mark.last_event_ms,
                })
                .collect(),
            gaps: newest_gaps(gaps),
            forgotten_generation: set.forgotten_generation(),
        }
    }

    /// The running set the snapshot describes.
    pub fn into_set(self) -> RunningSet {
        RunningSet::from_parts(
            self.running,
            self.marks
                .into_iter()
                .map(|m| {
                    let mark = Mark {
                        generation: m.generation,
                        last_event_ms: m.last_event_ms,
                    };
                    (m.key, mark)
                })
                .collect(),
            self.counters,
            self.ended_with_shutdown,
            self.forgotten_generation,
        )
        .expect("a decoded snapshot was checked to form a running set")
    }

    /// The snapshot file's bytes, in this build's version ([`SNAPSHOT_VERSION`]): one line of
    /// JSON. Pure.
    pub fn encode(&self) -> Vec<u8> {
        let state = StateOf {
            last_seq: self.last_seq,
            next_segment_no: self.next_segment_no,
            last_record_ms: self.last_record_ms,
            coverage_since_ms: self.coverage_since_ms,
            created_ms: self.created_ms,
            ended_with_shutdown: self.ended_with_shutdown,
            counters: self.counters,
            keys: rows_of(&self.marks, &self.running),
            gaps: &self.gaps,
            forgotten_generation: self.forgotten_generation,
        };
        Encoded::of(&state).into_vec()
    }

    /// Reads a snapshot file's bytes, checking the checksum, the version, the limits and the
    /// invariants of the state. Pure; never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let damaged = |detail: String| SnapshotError::Damaged(detail);
        if bytes.len() as u64 > SNAPSHOT_BYTES_MAX {
            return Err(damaged(format!(
                "{} bytes, over the limit of {SNAPSHOT_BYTES_MAX}",
                bytes.len()
            )));
        }
        check_text(bytes).map_err(damaged)?;
        let envelope: Envelope<'_> =
            serde_json::from_slice(bytes).map_err(|e| damaged(format!("not a snapshot: {e}")))?;
        let body = envelope.body.get();
        let crc = crc32fast::hash(body.as_bytes());
        if crc != envelope.body_crc32 {
            return Err(damaged(format!(
                "the body's checksum is {crc}, the snapshot says {}",
                envelope.body_crc32
            )));
        }
        if !(1..=SNAPSHOT_VERSION).contains(&envelope.inflight_snapshot) {
            return Err(SnapshotError::UnsupportedVersion(
                envelope.inflight_snapshot,
            ));
        }
        let read = |e: serde_json::Error| damaged(format!("the body does not read: {e}"));
        let snapshot: Snapshot = match envelope.inflight_snapshot {
            1 => serde_json::from_str::<SnapshotV1>(body)
                .map_err(read)?
                .into(),
            2 => serde_json::from_str(body).map_err(read)?,
            _ => serde_json::from_str::<SnapshotV3>(body)
                .map_err(read)?
                .into(),
        };
        snapshot.check().map_err(damaged)?;
        Ok(snapshot)
    }

    /// The invariants a writer guarantees, checked on the way in as on the way out.
    fn check(&self) -> Result<(), String> {
        if self.last_seq >= u64::MAX - 1 {
            // The next record would carry u64::MAX, which no frame may.
            return Err(format!(
                "last_seq {} leaves no sequence number for a record",
                self.last_seq
            ));
        }
        if !(1..=SEGMENT_NO_MAX).contains(&self.next_segment_no) {
            return Err(format!(
                "next_segment_no {} is not a segment number",
                self.next_segment_no
            ));
        }
        if self.gaps.len() > GAPS_KEPT_MAX {
            return Err(format!(
                "{} gaps, over the limit of {GAPS_KEPT_MAX}",
                self.gaps.len()
            ));
        }
        for pair in self.running.windows(2) {
            if pair[0].run.key >= pair[1].run.key {
                return Err("running runs are not in strictly ascending key order".into());
            }
        }
        for pair in self.marks.windows(2) {
            if pair[0].key >= pair[1].key {
                return Err("marks are not in strictly ascending key order".into());
            }
        }
        for entry in &self.running {
            validate_run((&entry.run).into())
                .map_err(|e| format!("a running run breaks a limit: {e}"))?;
            if let Some(pending) = &entry.pending {
                validate_reason(&pending.reason, &entry.run.key)
                    .map_err(|e| format!("a running run breaks a limit: {e}"))?;
            }
        }
        for mark in &self.marks {
            validate_key(&mark.key).map_err(|e| format!("a mark breaks a limit: {e}"))?;
        }
        // Both lists are in strictly ascending key order: one walk finds each run's mark.
        let mut marks = self.marks.iter().peekable();
        for entry in &self.running {
            let key = &entry.run.key;
            while marks.next_if(|m| m.key < *key).is_some() {}
            if marks
                .peek()
                .is_none_or(|m| m.key != *key || m.generation < entry.run.generation)
            {
                return Err(format!(
                    "running key {key:?} has no high-water mark at or above its generation"
                ));
            }
        }
        Ok(())
    }
}

/// A snapshot's bytes, made in one buffer: the body is serialized after room left for the
/// envelope's opening (which holds the body's checksum), and the opening is written into the
/// end of that room, so the body is never copied.
#[derive(Debug)]
pub(crate) struct Encoded {
    buf: Vec<u8>,
    start: usize,
}

/// Room for the envelope's opening: `{"inflight_snapshot":V,"body_crc32":C,"body":` is at most
/// 54 bytes (a one-digit version, a ten-digit checksum).
const OPENING_ROOM: usize = 64;

impl Encoded {
    /// The envelope around `body`, serialized as JSON.
    fn of(body: &impl Serialize) -> Encoded {
        let mut buf = vec![b' '; OPENING_ROOM];
        // Plain structs of strings, integers and options: serializing them cannot fail.
        serde_json::to_writer(&mut buf, body).expect("a snapshot serializes to JSON");
        let crc = crc32fast::hash(&buf[OPENING_ROOM..]);
        let opening =
            format!("{{\"inflight_snapshot\":{SNAPSHOT_VERSION},\"body_crc32\":{crc},\"body\":");
        assert!(
            opening.len() <= OPENING_ROOM,
            "the envelope's opening fits its room"
        );
        let start = OPENING_ROOM - opening.len();
        buf[start..OPENING_ROOM].copy_from_slice(opening.as_bytes());
        buf.extend_from_slice(b"}\n");
        Encoded { buf, start }
    }

    /// The bytes in a vector of their own.
    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        self.buf.drain(..self.start);
        self.buf
    }
}

impl std::ops::Deref for Encoded {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// A version-3 body, borrowed from the state it writes: the fields of [`Snapshot`] in its order,
/// the runs and marks as one table of key rows.
#[derive(Serialize)]
struct StateOf<'a> {
    last_seq: u64,
    next_segment_no: u64,
    last_record_ms: Option<u64>,
    coverage_since_ms: u64,
    created_ms: u64,
    ended_with_shutdown: bool,
    counters: Counters,
    keys: Vec<KeyRow<'a>>,
    gaps: &'a [Corruption],
    forgotten_generation: u64,
}

/// What [`encode_state`] made: the bytes, and how many runs and marks they hold.
#[derive(Debug)]
pub(crate) struct EncodedState {
    pub bytes: Encoded,
    pub running: usize,
    pub marks: usize,
}

/// The bytes of [`Snapshot::of`]`(set, ...)`[`.encode()`](Snapshot::encode), made without
/// copying a run or a key out of `set` and with one sort of its keys: what compaction writes.
pub(crate) fn encode_state(
    set: &RunningSet,
    cut: SnapshotCut,
    gaps: Vec<Corruption>,
) -> EncodedState {
    let gaps = newest_gaps(gaps);
    let keys = set.sorted_keys();
    let state = StateOf {
        last_seq: cut.last_seq,
        next_segment_no: cut.next_segment_no,
        last_record_ms: cut.last_record_ms,
        coverage_since_ms: cut.coverage_since_ms,
        created_ms: cut.created_ms,
        ended_with_shutdown: set.ended_with_shutdown(),
        counters: set.counters(),
        keys: keys
            .iter()
            .map(|&(key, mark, run)| KeyRow {
                key,
                mark: Some(*mark),
                run,
            })
            .collect(),
        gaps: &gaps,
        forgotten_generation: set.forgotten_generation(),
    };
    EncodedState {
        bytes: Encoded::of(&state),
        running: state.keys.iter().filter(|row| row.run.is_some()).count(),
        marks: state.keys.len(),
    }
}

/// The gaps a snapshot keeps of `gaps` (oldest first): the newest [`GAPS_KEPT_MAX`].
fn newest_gaps(mut gaps: Vec<Corruption>) -> Vec<Corruption> {
    if gaps.len() > GAPS_KEPT_MAX {
        gaps.drain(..gaps.len() - GAPS_KEPT_MAX);
    }
    gaps
}

/// Where a snapshot cuts the log, and when: the arguments of [`Snapshot::of`] besides the
/// state and its gaps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SnapshotCut {
    pub last_seq: u64,
    pub next_segment_no: u64,
    pub last_record_ms: Option<u64>,
    pub coverage_since_ms: u64,
    pub created_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Generation, Run, UnixMs};

    fn sample() -> Snapshot {
        let mut set = RunningSet::new();
        set.apply(&Event::Started(
            Run::new("a", "s1", Generation(3), UnixMs(10)).with_meta("{\"m\":1}"),
        ));
        set.apply(&Event::Started(Run::new(
            "b",
            "s2",
            Generation(1),
            UnixMs(11),
        )));
        set.apply(&Event::Completed {
            key: "b".into(),
            generation: 1,
            at_ms: 12,
        });
        set.apply(&Event::Recovered { at_ms: 13 });
        Snapshot::of(&set, 4, 2, Some(13), 5, 20, Vec::new())
    }

    #[test]
    fn a_snapshot_round_trips_and_holds_its_state() {
        let snapshot = sample();
        let bytes = snapshot.encode();
        assert!(bytes.ends_with(b"}\n"));
        let decoded = Snapshot::decode(&bytes).unwrap();
        assert_eq!(decoded, snapshot);
        let set = decoded.into_set();
        assert_eq!(set.get("a").unwrap().recoveries, 1);
        assert_eq!(set.mark("b").unwrap().generation, 1);
        // A person and jq read it as plain JSON: a row per key, a run's after its mark.
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["inflight_snapshot"], SNAPSHOT_VERSION);
        assert_eq!(
            value["body"]["keys"],
            serde_json::json!([
                [
                    "a",
                    3,
                    10,
                    "s1",
                    3,
                    10,
                    "{\"m\":1}",
                    0,
                    "crash",
                    1,
                    0,
                    false,
                    null,
                    null
                ],
                ["b", 1, 12],
            ])
        );
    }

    /// `snapshot`'s body as versions 1 and 2 wrote it (objects: a run's, a mark's), enveloped
    /// as `version`.
    fn as_objects(snapshot: &Snapshot, version: u32) -> Vec<u8> {
        let body = serde_json::to_string(snapshot).unwrap();
        let crc = crc32fast::hash(body.as_bytes());
        format!("{{\"inflight_snapshot\":{version},\"body_crc32\":{crc},\"body\":{body}}}\n")
            .into_bytes()
    }

    #[test]
    fn a_version_2_snapshot_reads_as_the_same_state() {
        let snapshot = sample();
        let v2 = as_objects(&snapshot, 2);
        assert_eq!(Snapshot::decode(&v2).unwrap(), snapshot);
        // Version 3 writes the same state in fewer bytes.
        assert!(snapshot.encode().len() < v2.len());
    }

    #[test]
    fn a_row_of_another_length_or_type_is_damage() {
        let good = String::from_utf8(sample().encode()).unwrap();
        let body_of = |bytes: &str| -> String {
            let start = bytes.find("\"body\":").unwrap() + 7;
            bytes[start..bytes.len() - 2].to_string()
        };
        let enveloped = |body: &str| {
            let crc = crc32fast::hash(body.as_bytes());
            format!("{{\"inflight_snapshot\":3,\"body_crc32\":{crc},\"body\":{body}}}")
        };
        // The test's own envelope reproduces the file, so the edits below are all it changes.
        assert_eq!(format!("{}\n", enveloped(&body_of(&good))), good);
        let body = body_of(&good);
        for (from, to, why) in [
            (r#"["b",1,12]"#, r#"["b",1]"#, "invalid length 2"),
            (r#"["b",1,12]"#, r#"["b",1,12,"s"]"#, "invalid length 4"),
            (r#"null,null]"#, r#"null,null,0]"#, "trailing characters"),
            (r#"null,null]"#, r#"null]"#, "invalid length 13"),
            (r#"["b",1,12]"#, r#"{"key":"b"}"#, "invalid type"),
            (r#""crash""#, r#""later""#, "unknown variant"),
            (r#"["b",1,12]"#, r#"["a",1,12]"#, "ascending"),
        ] {
            assert!(body.contains(from), "{from}");
            let bytes = enveloped(&body.replacen(from, to, 1));
            match Snapshot::decode(bytes.as_bytes()) {
                Err(SnapshotError::Damaged(d)) => assert!(d.contains(why), "{to}: {d}"),
                other => panic!("{to}: {other:?}"),
            }
        }
    }

    /// Compaction's borrowed encoder writes the very bytes of `Snapshot::of(..).encode()`, for
    /// states with runs in every state, marks without runs, a retention's forgotten marks, and
    /// more gaps than a snapshot keeps.
    #[test]
    fn the_borrowed_encoding_is_the_snapshots_encoding() {
        let gap = |i: u64| Corruption {
            segment: format!("{i:020}.log"),
            start_offset: i,
            end_offset: i + 10,
            after_seq: i,
            before_seq: Some(i + 1),
            after_ms: Some(i),
            before_ms: None,
            detail: format!("gap \"{i}\"\n"),
        };
        let mut set = RunningSet::new();
        let mut shapes = 0;
        for step in 0..200u64 {
            let key = format!("k{:03}é", (step * 7) % 23);
            let event = match step % 6 {
                0 | 1 => Event::Started(
                    Run::new(&key, format!("s{step}"), Generation(step + 1), UnixMs(step))
                        .with_meta(format!("{{\"step\":{step}}}")),
                ),
                2 => Event::Completed {
                    key,
                    generation: step - 1,
                    at_ms: step,
                },
                3 => Event::Shutdown { at_ms: step },
                4 => Event::Recovered { at_ms: step },
                _ => Event::Retention {
                    forget_before_ms: step / 2,
                    at_ms: step,
                },
            };
            set.apply(&event);
            if step % 20 != 19 {
                continue;
            }
            let gaps: Vec<Corruption> = (0..step / 2).map(gap).collect();
            let cut = SnapshotCut {
                last_seq: step,
                next_segment_no: step / 10 + 1,
                last_record_ms: Some(step),
                coverage_since_ms: 1,
                created_ms: 1_000 + step,
            };
            let borrowed = encode_state(&set, cut, gaps.clone());
            let owned = Snapshot::of(&set, step, step / 10 + 1, Some(step), 1, 1_000 + step, gaps);
            assert_eq!(&borrowed.bytes[..], &owned.encode()[..], "at step {step}");
            assert_eq!(borrowed.running, owned.running.len());
            assert_eq!(borrowed.marks, owned.marks.len());
            assert_eq!(borrowed.bytes.into_vec(), owned.encode());
            // The newest gaps are the ones kept, oldest first.
            let kept: Vec<u64> = owned.gaps.iter().map(|g| g.start_offset).collect();
            let newest: Vec<u64> =
                (step / 2 - (step / 2).min(GAPS_KEPT_MAX as u64)..step / 2).collect();
            assert_eq!(kept, newest, "at step {step}");
            shapes +=
                usize::from(!owned.running.is_empty() && owned.marks.len() > owned.running.len());
        }
        assert!(shapes >= 5, "states with runs and idle marks: {shapes}");
    }

    #[test]
    fn any_changed_byte_of_the_body_is_detected() {
        let bytes = sample().encode();
        let start = bytes.windows(7).position(|w| w == b"\"body\":").unwrap() + 7;
        for i in start..bytes.len() - 2 {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            assert!(
                matches!(Snapshot::decode(&damaged), Err(SnapshotError::Damaged(_))),
                "a flip at byte {i} went unnoticed"
            );
        }
        for len in 0..bytes.len() - 1 {
            assert!(
                Snapshot::decode(&bytes[..len]).is_err(),
                "a prefix of {len}"
            );
        }
    }

    #[test]
    fn an_unknown_version_with_a_good_checksum_is_unsupported() {
        let bytes = String::from_utf8(sample().encode()).unwrap();
        let newer = bytes.replacen("\"inflight_snapshot\":3", "\"inflight_snapshot\":4", 1);
        assert_eq!(
            Snapshot::decode(newer.as_bytes()),
            Err(SnapshotError::UnsupportedVersion(4))
        );
    }

    #[test]
    fn a_state_the_fold_cannot_reach_is_damage() {
        // A run whose mark is below its generation, and one with no mark (its row's mark is
        // written as nulls).
        let mut s = sample();
        s.marks[0].generation = 2;
        assert!(matches!(
            Snapshot::decode(&s.encode()),
            Err(SnapshotError::Damaged(d)) if d.contains("no high-water mark")
        ));
        let mut s = sample();
        s.marks.clear();
        assert!(matches!(
            Snapshot::decode(&s.encode()),
            Err(SnapshotError::Damaged(d)) if d.contains("invalid type: null")
        ));
        let mut s = sample();
        s.marks.reverse();
        assert!(Snapshot::decode(&s.encode()).is_err());
        let mut s = sample();
        s.next_segment_no = 0;
        assert!(Snapshot::decode(&s.encode()).is_err());
    }

    /// `sample()` with a gap, its body edited by `edit` and enveloped again with a good checksum.
    fn edited(edit: impl Fn(&str) -> String) -> Vec<u8> {
        let mut s = sample();
        s.gaps.push(Corruption {
            segment: "00000000000000000001.log".into(),
            start_offset: 64,
            end_offset: 80,
            after_seq: 1,
            before_seq: Some(2),
            after_ms: Some(10),
            before_ms: Some(11),
            detail: "no valid record here".into(),
        });
        let body = edit(&String::from_utf8(serde_json::to_vec(&s).unwrap()).unwrap());
        let crc = crc32fast::hash(body.as_bytes());
        format!("{{\"inflight_snapshot\":1,\"body_crc32\":{crc},\"body\":{body}}}\n").into_bytes()
    }

    /// An unknown member `value` added to the first run, the counters or the first gap.
    fn with_unknown(place: &str, value: &str) -> Vec<u8> {
        edited(|body| {
            let anchor = match place {
                "run" => "\"session_id\":",
                "counters" => "\"started\":",
                "gap" => "\"start_offset\":",
                _ => unreachable!(),
            };
            assert!(body.contains(anchor));
            body.replacen(anchor, &format!("\"later\":{value},{anchor}"), 1)
        })
    }

    #[test]
    fn unknown_members_are_checked_alike_wherever_they_stand() {
        let deep_ok = format!("{}1{}", "[".repeat(20), "]".repeat(20));
        let too_deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        let million = format!("{}1{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        for place in ["run", "counters", "gap"] {
            for fine in [
                r#""x""#,
                r#""\ud83d\ude00""#,
                "1e400",
                "-0",
                "null",
                &deep_ok,
            ] {
                let decoded = Snapshot::decode(&with_unknown(place, fine));
                assert!(decoded.is_ok(), "{fine} in {place}: {decoded:?}");
            }
            for (bad, why) in [
                (r#""\ud800""#, "lone surrogate"),
                (r#""\udc00x""#, "lone surrogate"),
                (r#""\ud800\u0041""#, "lone surrogate"),
                (too_deep.as_str(), "nest deeper than 32"),
                (million.as_str(), "nest deeper than 32"),
            ] {
                match Snapshot::decode(&with_unknown(place, bad)) {
                    Err(SnapshotError::Damaged(d)) => assert!(d.contains(why), "{place}: {d}"),
                    other => panic!("{} in {place}: {other:?}", &bad[..bad.len().min(20)]),
                }
            }
        }
    }

    #[test]
    fn a_lone_surrogate_or_a_signed_integer_in_a_known_member_is_damage() {
        let lone = edited(|b| b.replacen("\"s1\"", r#""\ud800""#, 1));
        assert!(
            matches!(Snapshot::decode(&lone), Err(SnapshotError::Damaged(d)) if d.contains("lone surrogate"))
        );
        // An integer is digits without a sign: `-0` is not one, though it equals 0.
        let signed = edited(|b| b.replacen("\"recoveries\":1", "\"recoveries\":-0", 1));
        assert!(matches!(
            Snapshot::decode(&signed),
            Err(SnapshotError::Damaged(_))
        ));
        let twice = edited(|b| b.replacen("\"session_id\":", "\"key\":\"a\",\"session_id\":", 1));
        assert!(
            matches!(Snapshot::decode(&twice), Err(SnapshotError::Damaged(d)) if d.contains("duplicate"))
        );
        // The edits themselves leave a valid snapshot when they change nothing.
        assert!(Snapshot::decode(&edited(|b| b.to_string())).is_ok());
    }
}
