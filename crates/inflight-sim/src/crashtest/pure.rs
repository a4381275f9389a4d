//! Tier 1 at the speed of the decoders: what the pure decoders promise for arbitrary bytes,
//! checked without the simulator or a replay, so a fuzzer reaches millions of inputs in
//! minutes.
//!
//! [`check_pure_decoders`] is called by the `decode_pure` fuzz target and, on its committed
//! corpus, by `cargo test`. The bytes are read four ways at once:
//!
//! - as a segment header ([`SegmentHeader::decode`]): a header that decodes re-encodes to the
//!   same 64 bytes;
//! - as one frame payload ([`decode_payload_with`]: one event, or a batch of them): what decodes
//!   re-encodes to the same bytes and respects [`inflight::limits`];
//! - as a segment: after a valid header its salt and base sequence, otherwise the first 8 bytes
//!   as the salt and the rest as frames from sequence 1 (so the fuzzer reaches the frame decoder
//!   without forging a header checksum), scanned by [`Scanner`]: every frame lies within the
//!   input, its checksum holds ([`frame_checksum`] recomputed from the stored bytes) and
//!   [`decode_frame`] agrees; frames and damaged regions tile the body exactly in order; a frame
//!   in place carries the next sequence number and one after damage a later one; no frame the
//!   scanner could have taken lies inside a damaged region; every frame's payload is checked
//!   as an event as above;
//! - as prefixes of that segment, at a few cut points chosen from the input: the scan of a
//!   prefix yields exactly the whole input's items that end within it, in order; an item the cut
//!   crosses becomes damage from its start. (Past a crossing frame the prefix may find a frame
//!   embedded, with this segment's salt and checksum, in the crossing frame's payload: the
//!   whole input rightly never sees it, and only someone who can already write the log can
//!   build one; see [`check_segment_bytes`](super::check_segment_bytes).)
//!
//! The check keeps no copy of what it scans, so the only allocations are the decoders' own:
//! with [`CountingAllocator`](super::CountingAllocator) as the global allocator the peak is
//! held to [`DECODER_ALLOCATION_FACTOR`](super::DECODER_ALLOCATION_FACTOR) times the input plus
//! [`DECODER_ALLOCATION_SLACK_BYTES`](super::DECODER_ALLOCATION_SLACK_BYTES); without it that
//! bound is not measured.

use inflight::event::{BATCH_TAG, Event, decode_payload_with, encode_event, payload_bytes};
use inflight::frame::{
    FRAME_HEADER_BYTES, Frame, SEGMENT_HEADER_BYTES, Scanned, Scanner, SegmentHeader, decode_frame,
    frame_checksum,
};
use inflight::limits::{
    KEY_BYTES_MAX, META_BYTES_MAX, REASON_BYTES_MAX, RECORD_BYTES_MAX, SESSION_ID_BYTES_MAX,
};

use super::{DECODER_ALLOCATION_FACTOR, DECODER_ALLOCATION_SLACK_BYTES};

/// Prefix cut points tried per input (fewer when the input has fewer distinct ones).
const PREFIX_CUTS: usize = 4;

/// What [`check_pure_decoders`] found in an input that kept every promise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PureSummary {
    /// The input starts with a valid segment header.
    pub header: bool,
    /// The whole input is one valid event payload.
    pub event: bool,
    /// Frames the scanner yielded over the segment body.
    pub frames: usize,
    /// Of those, frames whose payload is a valid event.
    pub events: usize,
    /// Damaged regions the scanner reported.
    pub damaged: usize,
    /// Prefixes scanned and compared with the whole.
    pub prefixes: usize,
    /// Peak bytes allocated while checking; `None` when the counting allocator is not installed.
    pub peak_allocation: Option<isize>,
}

/// Checks every promise of the pure decoders on `data` (see the module docs). Returns the first
/// broken one; a panic inside is itself a failure.
pub fn check_pure_decoders(data: &[u8]) -> Result<PureSummary, String> {
    // The whole scan's items, kept for the prefixes to compare with: reserved before measuring,
    // for at most one damaged region between two frames of at least 17 bytes.
    let mut items = Vec::with_capacity(data.len() / (FRAME_HEADER_BYTES + 1) * 2 + 2);
    let mut result = Err(String::new());
    let peak = super::peak_allocation(|| result = check(data, &mut items));
    let mut summary = result?;
    if let Some(peak) = peak {
        let bound =
            DECODER_ALLOCATION_FACTOR * data.len() as isize + DECODER_ALLOCATION_SLACK_BYTES;
        if peak > bound {
            return Err(format!(
                "decoding {} bytes allocated {peak} bytes at peak, over the bound of {bound}",
                data.len()
            ));
        }
    }
    summary.peak_allocation = peak;
    Ok(summary)
}

fn check<'a>(data: &'a [u8], items: &mut Vec<Scanned<'a>>) -> Result<PureSummary, String> {
    let mut summary = PureSummary::default();

    let header = SegmentHeader::decode(data).ok();
    if let Some(h) = header {
        summary.header = true;
        if h.encode()[..] != data[..SEGMENT_HEADER_BYTES] {
            return Err(format!(
                "a segment header decodes to {h:?} but does not re-encode to its own bytes"
            ));
        }
    }

    summary.event = check_payload(data).map_err(|e| format!("the whole input as an event: {e}"))?;

    let (salt, first_seq, body, base) = match header {
        Some(h) => (
            h.salt,
            h.base_seq,
            &data[SEGMENT_HEADER_BYTES..],
            SEGMENT_HEADER_BYTES as u64,
        ),
        None if data.len() >= 8 => (
            u64::from_le_bytes(data[..8].try_into().expect("8 bytes")),
            1,
            &data[8..],
            8,
        ),
        None => (0, 1, data, 0),
    };
    let segment = Segment {
        body,
        base,
        salt,
        first_seq,
    };

    // The whole body.
    let mut walk = Walk::new(segment, body.len());
    let mut last_frame: Option<Frame<'_>> = None;
    let mut first_damage: Option<(u64, u64)> = None;
    for item in segment.scan(body.len()) {
        walk.step(item, true)?;
        items.push(item);
        match item {
            Scanned::Frame(f) => {
                summary.frames += 1;
                if check_payload(f.payload)
                    .map_err(|e| format!("record {} at {}: {e}", f.seq, f.offset))?
                {
                    summary.events += 1;
                }
                last_frame = Some(f);
            }
            Scanned::Damaged { start, end } => {
                summary.damaged += 1;
                first_damage.get_or_insert((start, end));
            }
        }
    }
    walk.finish()?;
    // A frame in place at the start is the first item.
    if let Some((seq, payload)) = decode_frame(body, salt)
        && seq == first_seq
        && !matches!(items.first(), Some(Scanned::Frame(f)) if f.seq == seq && f.payload == payload)
    {
        return Err(format!(
            "the frame with the expected sequence {seq} at the start was not yielded first"
        ));
    }

    // Prefixes, cut one byte short of the last frame's end, inside its frame header, in the
    // middle of the first damaged region, and at a point that depends on every byte of the input.
    let mut cuts = [usize::MAX; PREFIX_CUTS];
    let rel = |abs: u64| (abs - base) as usize;
    if let Some(f) = last_frame {
        cuts[0] = rel(f.end()) - 1;
        cuts[1] = rel(f.offset) + FRAME_HEADER_BYTES / 2;
    }
    if let Some((start, end)) = first_damage {
        cuts[2] = rel(start) + (rel(end) - rel(start)) / 2;
    }
    cuts[3] = crc32fast::hash(data) as usize % (body.len() + 1);
    cuts.sort_unstable();
    for (i, &cut) in cuts.iter().enumerate() {
        if cut >= body.len() || (i > 0 && cuts[i - 1] == cut) {
            continue;
        }
        segment
            .check_prefix(cut, items)
            .map_err(|e| format!("the prefix of {cut} bytes of the body: {e}"))?;
        summary.prefixes += 1;
    }
    Ok(summary)
}

/// Checks `payload` as a frame's payload (one event, or a batch of them): if it decodes, it
/// re-encodes to the same bytes and every event respects the limits. Returns whether it
/// decoded.
fn check_payload(payload: &[u8]) -> Result<bool, String> {
    // Each event's encoding, as it re-encodes, one after the other (no more bytes than the
    // payload), and the first limit broken.
    let mut again = Vec::new();
    let mut events = 0usize;
    let mut broken = None;
    let valid = decode_payload_with(payload, |event, _| {
        let event = event.to_event();
        events += 1;
        let (key, session_id, meta, reason) = match &event {
            Event::Started(run) => (
                Some(&run.key),
                Some(&run.session_id),
                run.meta.as_ref(),
                None,
            ),
            Event::Adopted(a) => (
                Some(&a.run.key),
                Some(&a.run.session_id),
                a.run.meta.as_ref(),
                a.pending.as_ref().map(|p| &p.reason),
            ),
            Event::Progress { key, meta, .. } => (Some(key), None, meta.as_ref(), None),
            Event::Promoted { key, reason, .. } => (Some(key), None, None, Some(reason)),
            Event::Completed { key, .. }
            | Event::Finished { key, .. }
            | Event::Suspended { key, .. }
            | Event::Cleared { key, .. } => (Some(key), None, None, None),
            Event::Shutdown { .. } | Event::Recovered { .. } | Event::Retention { .. } => {
                (None, None, None, None)
            }
        };
        if key.is_some_and(|k| k.is_empty() || k.len() > KEY_BYTES_MAX)
            || session_id.is_some_and(|s| s.len() > SESSION_ID_BYTES_MAX)
            || meta.is_some_and(|m| m.len() > META_BYTES_MAX)
            || reason.is_some_and(|r| r.is_empty() || r.len() > REASON_BYTES_MAX)
        {
            broken.get_or_insert_with(|| format!("decoded event {event:?} breaks a limit"));
        }
        again.extend_from_slice(&encode_event(&event));
    });
    if !valid {
        return Ok(false);
    }
    if let Some(broken) = broken {
        return Err(broken);
    }
    if payload.len() > RECORD_BYTES_MAX {
        return Err(format!(
            "a payload of {} bytes decoded, over {RECORD_BYTES_MAX}",
            payload.len()
        ));
    }
    // The batch's header, then the events' encodings: the payload's bytes exactly.
    let header = payload_bytes(events, again.len()) - again.len();
    if payload[header..] != again[..] || (events > 1 && payload[0] != BATCH_TAG) {
        return Err(format!(
            "{events} decoded event(s) do not re-encode to the payload's bytes"
        ));
    }
    Ok(true)
}

/// A segment body and how to read it.
#[derive(Clone, Copy)]
struct Segment<'a> {
    body: &'a [u8],
    base: u64,
    salt: u64,
    first_seq: u64,
}

impl<'a> Segment<'a> {
    fn scan(&self, len: usize) -> Scanner<'a> {
        Scanner::new(&self.body[..len], self.base, self.salt, self.first_seq)
    }

    /// The scan of the first `cut` bytes agrees with the scan of the whole body.
    fn check_prefix(&self, cut: usize, whole: &[Scanned<'a>]) -> Result<(), String> {
        let cut_at = self.base + cut as u64;
        let mut whole = whole.iter().copied().peekable();
        let mut part = self.scan(cut);
        let mut walk = Walk::new(*self, cut);
        let mut step = |walk: &mut Walk<'a>| -> Result<Option<Scanned<'a>>, String> {
            let item = part.next();
            if let Some(item) = item {
                walk.step(item, false)?;
            }
            Ok(item)
        };
        let crosses = |item: &Scanned<'_>| {
            let (start, end) = span(item);
            start < cut_at && cut_at < end
        };
        loop {
            let Some(w) = whole.next() else {
                // The whole body ended, so the cut is its end: nothing more in the prefix.
                if let Some(p) = step(&mut walk)? {
                    return Err(format!(
                        "yields {p:?} past the end of the whole body's items"
                    ));
                }
                break;
            };
            let (start, end) = span(&w);
            if start >= cut_at {
                if let Some(p) = step(&mut walk)? {
                    return Err(format!(
                        "yields {p:?} past the whole body's items before the cut"
                    ));
                }
                break;
            }
            // Damage that ends where a frame the cut crosses begins runs on into that frame.
            let damage_before_cut_frame = matches!(w, Scanned::Damaged { .. })
                && matches!(whole.peek(), Some(next @ Scanned::Frame(_)) if crosses(next));
            let p = step(&mut walk)?;
            if !crosses(&w) && !damage_before_cut_frame {
                if p != Some(w) {
                    return Err(format!("yields {p:?} where the whole body yields {w:?}"));
                }
                continue;
            }
            // The cut crosses `w` (or the frame after it): the prefix has damage from its start.
            match (w, p) {
                (Scanned::Damaged { .. }, Some(Scanned::Damaged { start: s, end: e }))
                    if s == start && e == cut_at && !damage_before_cut_frame =>
                {
                    if let Some(p) = step(&mut walk)? {
                        return Err(format!("yields {p:?} after damage that runs to its end"));
                    }
                }
                (_, Some(Scanned::Damaged { start: s, end: e }))
                    if s == start
                        && (matches!(w, Scanned::Frame(_))
                            || damage_before_cut_frame && e > end) =>
                {
                    // Whatever follows lies inside the frame the cut crosses (see the module
                    // docs); the walk checks it like any scan.
                    while step(&mut walk)?.is_some() {}
                }
                _ => {
                    return Err(format!(
                        "yields {p:?} where the cut at {cut_at} crosses the whole body's {w:?}"
                    ));
                }
            }
            break;
        }
        walk.finish()
    }
}

fn span(item: &Scanned<'_>) -> (u64, u64) {
    match *item {
        Scanned::Frame(f) => (f.offset, f.end()),
        Scanned::Damaged { start, end } => (start, end),
    }
}

/// The scanner's own invariants, checked item by item over the first `len` bytes of a body.
struct Walk<'a> {
    segment: Segment<'a>,
    len: usize,
    /// Offset (in the file) where the next item must start.
    pos: u64,
    next_seq: u64,
    after_damage: bool,
}

impl<'a> Walk<'a> {
    fn new(segment: Segment<'a>, len: usize) -> Self {
        Walk {
            segment,
            len,
            pos: segment.base,
            next_seq: segment.first_seq,
            after_damage: false,
        }
    }

    fn end(&self) -> u64 {
        self.segment.base + self.len as u64
    }

    /// Checks one item. With `inside`, also checks that no frame the scanner could have taken
    /// lies inside a damaged region (as costly as the scan itself).
    fn step(&mut self, item: Scanned<'a>, inside: bool) -> Result<(), String> {
        let Segment {
            body, base, salt, ..
        } = self.segment;
        let (start, end) = span(&item);
        let empty_ok = matches!(item, Scanned::Damaged { .. });
        if start != self.pos || end < start || (end == start && !empty_ok) || end > self.end() {
            return Err(format!(
                "{item:?} does not continue from {} within ..{}",
                self.pos,
                self.end()
            ));
        }
        let at = (start - base) as usize;
        let bytes = &body[at..self.len];
        match item {
            Scanned::Frame(f) => {
                let payload_at = bytes[FRAME_HEADER_BYTES..].as_ptr();
                if f.payload.as_ptr() != payload_at
                    || f.payload.len() != (end - start) as usize - FRAME_HEADER_BYTES
                {
                    return Err(format!("{item:?} has a payload that is not its own bytes"));
                }
                let stored = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
                if frame_checksum(salt, f.seq, f.payload) != stored {
                    return Err(format!("record {} at {start} fails its checksum", f.seq));
                }
                if decode_frame(bytes, salt) != Some((f.seq, f.payload)) {
                    return Err(format!(
                        "decode_frame disagrees on record {} at {start}",
                        f.seq
                    ));
                }
                let expected_ok = if self.after_damage {
                    f.seq >= self.next_seq
                } else {
                    f.seq == self.next_seq
                };
                if !expected_ok {
                    return Err(format!(
                        "record at {start} has sequence {}, expected {}{}",
                        f.seq,
                        if self.after_damage { "at least " } else { "" },
                        self.next_seq
                    ));
                }
                self.next_seq = f.seq.checked_add(1).ok_or_else(|| {
                    format!("record at {start} has the last sequence number, with no successor")
                })?;
                self.after_damage = false;
            }
            Scanned::Damaged { .. } => {
                if self.after_damage {
                    return Err(format!("{item:?} follows another damaged region"));
                }
                if start == end {
                    // An empty region marks missing records: a valid frame with a higher
                    // sequence number than expected starts right there, and comes next.
                    match decode_frame(bytes, salt) {
                        Some((seq, _)) if seq > self.next_seq => {}
                        _ => {
                            return Err(format!(
                                "{item:?} is empty but no frame above sequence {} starts there",
                                self.next_seq
                            ));
                        }
                    }
                }
                if inside {
                    for p in 1..(end - start) as usize {
                        if let Some((seq, _)) = decode_frame(&bytes[p..], salt)
                            && seq >= self.next_seq
                            && seq < u64::MAX
                        {
                            return Err(format!(
                                "{item:?} hides record {seq} at {}",
                                start + p as u64
                            ));
                        }
                    }
                }
                self.after_damage = true;
            }
        }
        self.pos = end;
        Ok(())
    }

    fn finish(&self) -> Result<(), String> {
        if self.pos != self.end() {
            return Err(format!(
                "the scan stopped at {} of {}",
                self.pos,
                self.end()
            ));
        }
        Ok(())
    }
}

/// Most bytes the snapshot decoder may allocate per byte of input. JSON is dense compared with
/// the structures it becomes (a `{}` per run, a two-byte string per key), and a run's fields go
/// through serde's buffered representation, so the factor is larger than the segment decoders'.
pub const SNAPSHOT_ALLOCATION_FACTOR: isize = 64;

/// Checks the snapshot decoder's promises on arbitrary bytes: it never panics; whatever it
/// accepts re-encodes to a snapshot that decodes to the same value, rebuilds a running set
/// holding exactly its runs and marks, and respects the limits (decode checks them); it
/// allocates at most [`SNAPSHOT_ALLOCATION_FACTOR`] times the input plus
/// [`DECODER_ALLOCATION_SLACK_BYTES`](super::DECODER_ALLOCATION_SLACK_BYTES) (measured when the
/// [`CountingAllocator`](super::CountingAllocator) is installed). Returns whether the bytes
/// were a valid snapshot.
pub fn check_snapshot_decoder(data: &[u8]) -> Result<bool, String> {
    use inflight::snapshot::Snapshot;
    let mut decoded = None;
    let peak = super::peak_allocation(|| decoded = Some(Snapshot::decode(data)));
    if let Some(peak) = peak {
        let bound =
            SNAPSHOT_ALLOCATION_FACTOR * data.len() as isize + DECODER_ALLOCATION_SLACK_BYTES;
        if peak > bound {
            return Err(format!(
                "decoding a snapshot of {} bytes allocated {peak} bytes at peak, over the bound of {bound}",
                data.len()
            ));
        }
    }
    let Some(Ok(snapshot)) = decoded else {
        return Ok(false);
    };
    let again = Snapshot::decode(&snapshot.encode())
        .map_err(|e| format!("a decoded snapshot re-encodes to one that does not decode: {e}"))?;
    if again != snapshot {
        return Err("a decoded snapshot re-encodes to a different one".into());
    }
    let (runs, marks) = (snapshot.running.len(), snapshot.marks.len());
    let set = snapshot.into_set();
    if set.len() != runs || set.marks_len() != marks {
        return Err(format!(
            "a snapshot of {runs} runs and {marks} marks rebuilt a set of {} and {}",
            set.len(),
            set.marks_len()
        ));
    }
    Ok(true)
}
