//! `inflight dump`: every event with its place, time and fields, in log order, with segments,
//! snapshots, damage and the end of the log where they lie; `--follow` keeps reading as a
//! gateway appends. Read-only.

use std::cell::Cell;
use std::io::{self, BufWriter, Seek, Write};
use std::ops::ControlFlow;
use std::time::Duration;

use inflight::Applied;
use inflight::event::EventRef;
use inflight::inspect::{
    DamageKind, DamageSeen, EndSeen, EventSeen, Item, Reader, SegmentSeen, SnapshotRole,
    SnapshotSeen,
};
use serde::Serialize;

use super::progress::Progress;
use super::{CliResult, DumpArgs, Failure, RFC3339_END_MS, Rfc3339};

/// A reading's dump is held back until the reading is known to have held still, so that a
/// reading a compaction overtook (and started over) is never printed: in memory up to
/// `HELD_IN_MEMORY_BYTES`, then in a temporary file, up to `HELD_BYTES_MAX`. A longer dump is
/// printed from there on as it is read.
const HELD_IN_MEMORY_BYTES: usize = 16 << 20;
const HELD_BYTES_MAX: u64 = 256 << 20;

pub(super) fn run(args: DumpArgs) -> CliResult {
    let source = args.source.reading()?;
    let dir = args.source.path();
    let progress = Progress::bytes(&dir, args.json);
    let mut reader = Reader::new(&*source);
    reader.on_progress(|read| progress.update(read));
    let printing = Cell::new(false);
    let read = reader.read_settled(
        || {
            let hold = Hold::new(io::stdout(), HELD_BYTES_MAX, &printing);
            let mut printer = Printer::new(&args, hold);
            // A reading that printed was overtaken: its lines cannot be taken back, and a
            // second reading would print the log twice.
            printer.overtaken = printing.get();
            printer
        },
        |printer, item| printer.item(item),
    );
    progress.finish();
    let mut printer = read?;
    if printer.overtaken {
        return Err(Failure::new(
            super::KEPT_CHANGING,
            format!(
                "{}: the log changed under the dump after its first {} MiB were printed, so \
                 what was printed is not one reading of it; run it again (a dump of up to {} \
                 MiB is held back until its reading holds still)",
                dir.display(),
                HELD_BYTES_MAX >> 20,
                HELD_BYTES_MAX >> 20
            ),
        ));
    }
    printer.flush()?;
    let released = printer.out.get_mut().release();
    if let Err(e) = released {
        return Err(Failure::new(1, format!("write the dump: {e}")));
    }
    printer.flush()?;
    if !args.follow || printer.done {
        return Ok(());
    }
    eprintln!("inflight: following {} (Ctrl-C to stop)", dir.display());
    let interval = Duration::from_millis(args.poll_ms.max(1));
    loop {
        reader.poll(|item| printer.item(item))?;
        printer.flush()?;
        if printer.done {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

/// Prints items as text lines or JSON lines, applying the filters.
struct Printer<'a, W: Write> {
    out: BufWriter<W>,
    args: &'a DumpArgs,
    /// Whether a filter is on: then a segment's line waits for the first line shown in it.
    filtered: bool,
    segment_line: Option<(String, String)>,
    error: Option<io::Error>,
    /// `--to` was passed: nothing more to print.
    done: bool,
    /// The start of an event's line, built without the formatting machinery: `dump` prints
    /// millions of them.
    line: Vec<u8>,
    /// The RFC 3339 text of the last second printed.
    second: SecondText,
    /// A reading that started over after an earlier one printed: it prints nothing.
    overtaken: bool,
}

/// Where a reading's lines go: held back (in memory, then in a temporary file) until
/// [`Hold::release`] prints them, or until they pass `max` bytes; from then on, straight to
/// `out`, and `printing` is set.
struct Hold<'c, W: Write> {
    held: Option<tempfile::SpooledTempFile>,
    bytes: u64,
    max: u64,
    out: W,
    printing: &'c Cell<bool>,
}

impl<'c, W: Write> Hold<'c, W> {
    fn new(out: W, max: u64, printing: &'c Cell<bool>) -> Hold<'c, W> {
        Hold {
            held: Some(tempfile::spooled_tempfile(HELD_IN_MEMORY_BYTES)),
            bytes: 0,
            max,
            out,
            printing,
        }
    }

    /// Prints what is held; what comes after goes straight to `out`.
    fn release(&mut self) -> io::Result<()> {
        if let Some(mut held) = self.held.take() {
            self.printing.set(true);
            held.rewind()?;
            io::copy(&mut held, &mut self.out)?;
        }
        Ok(())
    }
}

impl<W: Write> Write for Hold<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(held) = &mut self.held {
            if self.bytes + buf.len() as u64 <= self.max {
                held.write_all(buf)?;
                self.bytes += buf.len() as u64;
                return Ok(buf.len());
            }
            self.release()?;
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.held {
            Some(_) => Ok(()),
            None => self.out.flush(),
        }
    }
}

impl<'a, W: Write> Printer<'a, W> {
    fn new(args: &'a DumpArgs, out: W) -> Printer<'a, W> {
        Printer {
            out: BufWriter::with_capacity(1 << 16, out),
            filtered: args.from.is_some()
                || args.to.is_some()
                || args.key.is_some()
                || args.since.is_some(),
            args,
            segment_line: None,
            error: None,
            done: false,
            line: Vec::with_capacity(256),
            second: SecondText::default(),
            overtaken: false,
        }
    }

    fn item(&mut self, item: &Item<'_>) -> ControlFlow<()> {
        if self.overtaken {
            return ControlFlow::Break(());
        }
        if let Err(e) = self.print(item) {
            self.error = Some(e);
            return ControlFlow::Break(());
        }
        if self.done {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn flush(&mut self) -> CliResult {
        let flushed = self.out.flush();
        match self.error.take().map_or(flushed, Err) {
            Ok(()) => Ok(()),
            Err(e) => Err(Failure::new(1, format!("write the dump: {e}"))),
        }
    }

    fn print(&mut self, item: &Item<'_>) -> io::Result<()> {
        let args = self.args;
        let (from, to) = (args.from.unwrap_or(0), args.to.unwrap_or(u64::MAX));
        match item {
            Item::Event(e) => {
                if e.seq > to {
                    self.done = true;
                    return Ok(());
                }
                let shown = e.seq >= from
                    && args.key.as_deref().is_none_or(|k| e.event.key() == Some(k))
                    && args.since.is_none_or(|t| e.event.at_ms() >= t);
                if shown {
                    self.segment_line_of(e.segment)?;
                    self.event(e)?;
                }
            }
            Item::Segment(s) => {
                let base = s.header.as_ref().map_or(0, |h| h.base_seq);
                if base <= to {
                    let line = self.segment(s);
                    if self.filtered {
                        self.segment_line = Some((s.file.to_string(), line));
                    } else {
                        writeln!(self.out, "{line}")?;
                    }
                }
            }
            Item::Snapshot(s) => {
                if s.last_seq + 1 >= from && s.last_seq <= to {
                    let line = self.snapshot(s);
                    writeln!(self.out, "{line}")?;
                }
            }
            Item::Damage(d) => {
                let r = d.region;
                if r.after_seq < to && r.before_seq.is_none_or(|b| b >= from) {
                    self.segment_line_of(&r.segment)?;
                    let line = self.damage(d);
                    writeln!(self.out, "{line}")?;
                }
            }
            Item::End(end) => {
                let line = self.end(end);
                writeln!(self.out, "{line}")?;
            }
        }
        Ok(())
    }

    /// Prints the line of `segment` held back by a filter, before the first line shown in it.
    fn segment_line_of(&mut self, segment: &str) -> io::Result<()> {
        if self
            .segment_line
            .as_ref()
            .is_some_and(|(file, _)| file == segment)
            && let Some((_, line)) = self.segment_line.take()
        {
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    fn segment(&self, s: &SegmentSeen<'_>) -> String {
        if self.args.json {
            let header = match &s.header {
                Ok(h) => serde_json::json!({
                    "version": h.version,
                    "base_seq": h.base_seq,
                    "log_created_ms": h.log_created_ms,
                    "log_created": Rfc3339(h.log_created_ms),
                    "segment_created_ms": h.segment_created_ms,
                    "segment_created": Rfc3339(h.segment_created_ms),
                }),
                Err(_) => serde_json::Value::Null,
            };
            return serde_json::json!({
                "item": "segment",
                "file": s.file,
                "number": s.number,
                "bytes": s.bytes,
                "header": header,
                "damaged_header": s.header.as_ref().err(),
            })
            .to_string();
        }
        match &s.header {
            Ok(h) => format!(
                "-- segment {}: {} bytes, records from {}, format version {}, created {} ({})",
                s.file,
                s.bytes,
                h.base_seq,
                h.version,
                Rfc3339(h.segment_created_ms),
                h.segment_created_ms
            ),
            Err(detail) => format!(
                "-- segment {}: {} bytes, DAMAGED HEADER: {detail}",
                s.file, s.bytes
            ),
        }
    }

    fn snapshot(&self, s: &SnapshotSeen<'_>) -> String {
        let role = match s.role {
            SnapshotRole::Start => "start",
            SnapshotRole::Older => "older",
            SnapshotRole::Written => "written",
        };
        if self.args.json {
            return serde_json::json!({
                "item": "snapshot",
                "file": s.file,
                "role": role,
                "last_seq": s.last_seq,
                "next_segment_no": s.next_segment_no,
                "last_record_ms": s.last_record_ms,
                "last_record": s.last_record_ms.map(Rfc3339),
                "created_ms": s.created_ms,
                "created": Rfc3339(s.created_ms),
                "bytes": s.bytes,
                "running": s.running,
                "marks": s.marks,
                "gaps": s.gaps,
                "compacted": s.compacted.map(|(first, last)| serde_json::json!({"first_seq": first, "last_seq": last})),
                "matches_records": s.matches_records,
                "behind": s.behind,
            })
            .to_string();
        }
        let last = s.last_record_ms.map_or_else(
            || "no record".to_string(),
            |ms| format!("last record at {} ({ms})", Rfc3339(ms)),
        );
        let mut line = format!(
            "-- snapshot {}: the state after record {} ({last}): {} running, {} marks, {} gap(s); written {} ({}); {}",
            s.file,
            s.last_seq,
            s.running,
            s.marks,
            s.gaps.len(),
            Rfc3339(s.created_ms),
            s.created_ms,
            match s.role {
                SnapshotRole::Start => "replay starts here",
                SnapshotRole::Older => "an older snapshot, kept as a fallback",
                SnapshotRole::Written => "written by a compaction during this read",
            }
        );
        if let Some((first, last)) = s.compacted {
            line += &format!(
                "; records {first}..={last} are only in this snapshot (a compaction removed their segments)"
            );
        }
        if s.matches_records == Some(false) {
            line += "; ITS STATE DIFFERS FROM THE FOLD OF THE RECORDS BEFORE IT";
        }
        if s.behind {
            line += "; the records read already go past it";
        }
        line
    }

    fn damage(&self, d: &DamageSeen<'_>) -> String {
        let r = d.region;
        if self.args.json {
            let kind = match d.kind {
                DamageKind::Corruption => "corruption",
                DamageKind::UnreadSnapshot => "unread_snapshot",
            };
            return serde_json::json!({
                "item": "damage",
                "kind": kind,
                "file": r.segment,
                "start_offset": r.start_offset,
                "end_offset": r.end_offset,
                "after_seq": r.after_seq,
                "after_ms": r.after_ms,
                "after": r.after_ms.map(Rfc3339),
                "before_seq": r.before_seq,
                "before_ms": r.before_ms,
                "before": r.before_ms.map(Rfc3339),
                "detail": r.detail,
            })
            .to_string();
        }
        match d.kind {
            DamageKind::UnreadSnapshot => format!(
                "!! DAMAGED SNAPSHOT {} ({} bytes), older than the one replay starts from: {}",
                r.segment, r.end_offset, r.detail
            ),
            DamageKind::Corruption => format!(
                "!! CORRUPTION in {}: {}",
                r.place(),
                r.what(&|ms| format!("{}, {ms} ms", Rfc3339(ms)))
            ),
        }
    }

    fn end(&self, end: &EndSeen<'_>) -> String {
        if self.args.json {
            return serde_json::json!({
                "item": "end",
                "last_seq": end.last_seq,
                "last_ms": end.last_ms,
                "last": end.last_ms.map(Rfc3339),
                "torn_tail": end.torn_tail,
                "running": end.running,
            })
            .to_string();
        }
        let last = match end.last_ms {
            Some(ms) => format!("record {} at {} ({ms})", end.last_seq, Rfc3339(ms)),
            None if end.last_seq == 0 => "no record".to_string(),
            None => format!("record {}", end.last_seq),
        };
        let mut line = format!(
            "-- end: the last record is {last}; {} run(s) in flight",
            end.running
        );
        if let Some(t) = end.torn_tail {
            line += &format!(
                "; then {} byte(s) at {}:{}: an incomplete record, still being written if a \
                 gateway is running, otherwise a torn tail (the next open cuts it)",
                t.bytes, t.segment, t.offset
            );
        }
        line
    }

    fn event(&mut self, e: &EventSeen<'_>) -> io::Result<()> {
        if self.args.json {
            serde_json::to_writer(&mut self.out, &EventLine::of(e))?;
            return writeln!(self.out);
        }
        let at = e.event.at_ms();
        // What every line has, and a start's or a completion's fields: as `write!` would
        // format them (`{:>10}  {}  {:>13}  {}:{}`, and so on), at a fraction of its cost.
        let line = &mut self.line;
        line.clear();
        push_right(line, e.seq, 10);
        line.extend_from_slice(b"  ");
        self.second.push(line, at);
        line.extend_from_slice(b"  ");
        push_right(line, at, 13);
        line.extend_from_slice(b"  ");
        line.extend_from_slice(e.segment.as_bytes());
        line.push(b':');
        push_right(line, e.offset, 0);
        if e.batch > 1 {
            line.push(b'#');
            push_right(line, e.index as u64, 0);
            line.push(b'/');
            push_right(line, e.batch as u64, 0);
        }
        match e.event {
            EventRef::Started(run) => {
                line.extend_from_slice(b"  started    ");
                line.extend_from_slice(run.key.as_bytes());
                line.extend_from_slice(b"  generation ");
                push_right(line, run.generation, 0);
                line.extend_from_slice(b"  session ");
                line.extend_from_slice(run.session_id.as_bytes());
                if let Some(meta) = run.meta {
                    line.extend_from_slice(b"  meta ");
                    line.extend_from_slice(meta.as_bytes());
                }
            }
            EventRef::Completed {
                key, generation, ..
            } => {
                line.extend_from_slice(b"  completed  ");
                line.extend_from_slice(key.as_bytes());
                line.extend_from_slice(b"  generation ");
                push_right(line, generation, 0);
            }
            _ => {}
        }
        let out = &mut self.out;
        out.write_all(line)?;
        match e.event {
            EventRef::Started(_) | EventRef::Completed { .. } => {}
            EventRef::Finished {
                key,
                generation,
                nonce,
                ..
            } => write!(
                out,
                "  finished   {key}  generation {generation}  token {}",
                inflight::Token { generation, nonce }
            )?,
            EventRef::Promoted { key, reason, .. } => {
                write!(out, "  pending    {key}  reason {reason}")?
            }
            EventRef::Suspended { key, .. } => write!(out, "  suspended  {key}")?,
            EventRef::Cleared { key, .. } => write!(out, "  cleared    {key}")?,
            EventRef::Progress {
                key,
                generation,
                meta,
                ..
            } => {
                write!(out, "  progress   {key}  generation {generation}")?;
                if let Some(meta) = meta {
                    write!(out, "  meta {meta}")?;
                }
            }
            EventRef::Adopted(a) => write!(
                out,
                "  adopted    {}  generation {}  session {}  crashes {}  stops {}",
                a.run.key, a.run.generation, a.run.session_id, a.recoveries, a.stops
            )?,
            EventRef::Shutdown { .. } => write!(out, "  shutdown   a clean exit")?,
            EventRef::Recovered { .. } => write!(out, "  recovered  an open found runs in flight")?,
            EventRef::Retention {
                forget_before_ms, ..
            } => write!(
                out,
                "  retention  idle marks older than {} ({forget_before_ms}) are forgotten",
                Rfc3339(forget_before_ms)
            )?,
        }
        match e.applied {
            Applied::Started {
                superseded: Some(g),
            } => write!(out, "  (replaces generation {g}, still in flight)")?,
            Applied::StaleStart { high_water } => write!(
                out,
                "  STALE: below the key's high-water mark {high_water}, ignored"
            )?,
            Applied::Completed => {
                if let Some(started) = e.ended_run_started_at_ms {
                    write!(out, "  (ran {})", Ran(at.saturating_sub(started)))?;
                }
            }
            Applied::StaleCompletion { running_generation } => write!(
                out,
                "  STALE: generation {running_generation} is running, ignored"
            )?,
            Applied::UnknownCompletion => write!(out, "  (no run in flight: a no-op)")?,
            Applied::Shutdown { interrupted } => {
                write!(out, "; {interrupted} run(s) interrupted by it")?
            }
            Applied::Recovered { crashed, stopped } => write!(
                out,
                "; {crashed} run(s) count one more crash, {stopped} one more graceful stop"
            )?,
            Applied::Retention { forgotten } => write!(out, "; {forgotten} forgotten")?,
            Applied::Started { superseded: None }
            | Applied::Promoted
            | Applied::Suspended
            | Applied::Progressed
            | Applied::Adopted { superseded: None } => {}
            Applied::Cleared { removed } => {
                if removed {
                    write!(out, "  (the waiting run is dropped)")?
                }
            }
            Applied::Adopted {
                superseded: Some(g),
            } => write!(out, "  (replaces generation {g})")?,
            Applied::Unmatched {
                running_generation: Some(g),
            } => write!(
                out,
                "  UNMATCHED: the key's run is generation {g} in another state or another run, ignored"
            )?,
            Applied::Unmatched {
                running_generation: None,
            } => write!(out, "  UNMATCHED: the key has no run in flight, ignored")?,
        }
        writeln!(out)
    }
}

/// Appends `n` in decimal, right-aligned in `width` columns (as `{:>width$}`).
fn push_right(line: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let text = digits.format(n);
    line.extend(std::iter::repeat_n(b' ', width.saturating_sub(text.len())));
    line.extend_from_slice(text.as_bytes());
}

/// A time's RFC 3339 text (as [`Rfc3339`] prints it), reusing the text of the last second
/// printed: events come in time order, most in the same second as the one before.
#[derive(Default)]
struct SecondText {
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS`, the text before the milliseconds.
    text: String,
}

impl SecondText {
    fn push(&mut self, line: &mut Vec<u8>, ms: u64) {
        if ms >= RFC3339_END_MS {
            line.extend_from_slice(Rfc3339(ms).to_string().as_bytes());
            return;
        }
        let second = ms / 1000;
        if self.second != Some(second) {
            let full = Rfc3339(second * 1000).to_string();
            // `.000Z` follows the seconds.
            self.text = full[..full.len() - 5].to_string();
            self.second = Some(second);
        }
        line.extend_from_slice(self.text.as_bytes());
        let milli = ms % 1000;
        line.extend_from_slice(&[
            b'.',
            b'0' + (milli / 100) as u8,
            b'0' + (milli / 10 % 10) as u8,
            b'0' + (milli % 10) as u8,
            b'Z',
        ]);
    }
}

/// A duration in milliseconds, briefly: `850ms`, `12.3s`, `4m05s`, `2h03m`.
struct Ran(u64);

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        match ms {
            0..1_000 => write!(f, "{ms}ms"),
            1_000..60_000 => {
                let tenths = (ms + 50) / 100;
                write!(f, "{}.{}s", tenths / 10, tenths % 10)
            }
            60_000..3_600_000 => write!(f, "{}m{:02}s", ms / 60_000, ms / 1000 % 60),
            _ => write!(f, "{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
        }
    }
}

/// An event as one JSON line.
#[derive(Serialize)]
struct EventLine<'a> {
    item: &'static str,
    seq: u64,
    segment: &'a str,
    offset: u64,
    index: usize,
    batch: usize,
    at_ms: u64,
    at: Rfc3339,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forget_before_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recoveries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stops: Option<u32>,
    /// What the fold did: started, stale_start, completed, stale_completion,
    /// unknown_completion, shutdown, recovered, retention.
    fold: &'static str,
    stale: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    superseded: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    high_water: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    running_generation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ran_ms: Option<u64>,
}

impl<'a> EventLine<'a> {
    fn of(e: &'a EventSeen<'a>) -> EventLine<'a> {
        let at_ms = e.event.at_ms();
        let mut line = EventLine {
            item: "event",
            seq: e.seq,
            segment: e.segment,
            offset: e.offset,
            index: e.index,
            batch: e.batch,
            at_ms,
            at: Rfc3339(at_ms),
            event: "",
            key: e.event.key(),
            session_id: None,
            generation: None,
            meta: None,
            forget_before_ms: None,
            token: None,
            reason: None,
            recoveries: None,
            stops: None,
            fold: "",
            stale: e.is_stale(),
            superseded: None,
            high_water: None,
            running_generation: None,
            ran_ms: e.ended_run_started_at_ms.map(|s| at_ms.saturating_sub(s)),
        };
        line.event = match e.event {
            EventRef::Started(run) => {
                line.session_id = Some(run.session_id);
                line.generation = Some(run.generation);
                line.meta = Some(run.meta);
                "started"
            }
            EventRef::Completed { generation, .. } => {
                line.generation = Some(generation);
                "completed"
            }
            EventRef::Shutdown { .. } => "shutdown",
            EventRef::Recovered { .. } => "recovered",
            EventRef::Retention {
                forget_before_ms, ..
            } => {
                line.forget_before_ms = Some(forget_before_ms);
                "retention"
            }
            EventRef::Finished {
                generation, nonce, ..
            } => {
                line.generation = Some(generation);
                line.token = Some(inflight::Token { generation, nonce }.to_string());
                "finished"
            }
            EventRef::Promoted { reason, .. } => {
                line.reason = Some(reason);
                "pending"
            }
            EventRef::Suspended { .. } => "suspended",
            EventRef::Cleared { .. } => "cleared",
            EventRef::Progress {
                generation, meta, ..
            } => {
                line.generation = Some(generation);
                line.meta = Some(meta);
                "progress"
            }
            EventRef::Adopted(a) => {
                line.session_id = Some(a.run.session_id);
                line.generation = Some(a.run.generation);
                line.meta = Some(a.run.meta);
                line.recoveries = Some(a.recoveries);
                line.stops = Some(a.stops);
                line.reason = a.pending.map(|p| p.reason);
                "adopted"
            }
        };
        line.fold = match e.applied {
            Applied::Started { superseded } => {
                line.superseded = superseded;
                "started"
            }
            Applied::StaleStart { high_water } => {
                line.high_water = Some(high_water);
                "stale_start"
            }
            Applied::Completed => "completed",
            Applied::StaleCompletion { running_generation } => {
                line.running_generation = Some(running_generation);
                "stale_completion"
            }
            Applied::UnknownCompletion => "unknown_completion",
            Applied::Shutdown { .. } => "shutdown",
            Applied::Recovered { .. } => "recovered",
            Applied::Retention { .. } => "retention",
            Applied::Promoted => "promoted",
            Applied::Suspended => "suspended",
            Applied::Cleared { .. } => "cleared",
            Applied::Progressed => "progressed",
            Applied::Adopted { superseded } => {
                line.superseded = superseded;
                "adopted"
            }
            Applied::Unmatched { running_generation } => {
                line.running_generation = running_generation;
                "unmatched"
            }
        };
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_is_held_until_released_or_too_long_to_hold() {
        let printing = Cell::new(false);
        let mut hold = Hold::new(Vec::new(), 10, &printing);
        hold.write_all(b"0123456").unwrap();
        hold.flush().unwrap();
        assert!(hold.out.is_empty() && !printing.get(), "held");
        hold.release().unwrap();
        hold.write_all(b"89").unwrap();
        assert_eq!((&hold.out[..], printing.get()), (&b"012345689"[..], true));
        let printing = Cell::new(false);
        let mut hold = Hold::new(Vec::new(), 10, &printing);
        hold.write_all(b"0123456").unwrap();
        hold.write_all(b"789abc").unwrap(); // past the limit: printed from here on
        assert_eq!(
            (&hold.out[..], printing.get()),
            (&b"0123456789abc"[..], true)
        );
    }

    #[test]
    fn the_fast_line_pieces_print_as_fmt_does() {
        let mut second = SecondText::default();
        for ms in [
            0,
            999,
            1_000,
            1_764_150_000_000,
            1_764_150_000_001,
            1_764_150_000_999,
            1_764_150_001_000,
            1_764_150_000_500,
            RFC3339_END_MS - 1,
            RFC3339_END_MS,
            u64::MAX,
        ] {
            let mut line = Vec::new();
            second.push(&mut line, ms);
            assert_eq!(
                String::from_utf8(line).unwrap(),
                Rfc3339(ms).to_string(),
                "{ms}"
            );
        }
        for (n, width) in [(0, 10), (7, 0), (1_234_567_890_123, 13), (u64::MAX, 10)] {
            let mut line = Vec::new();
            push_right(&mut line, n, width);
            assert_eq!(String::from_utf8(line).unwrap(), format!("{n:>width$}"));
        }
    }
}
