//! Tier 1 of the persistence model: what the pure decoder promises for arbitrary bytes.
//!
//! [`check_segment_bytes`] is called by the `decode_segment` fuzz target and, on the committed
//! corpus, by `cargo test`. It returns a description of the first broken promise, if any; a panic
//! inside it is itself a failure.

use inflight::event::{decode_event, decode_payload_with, encode_event};
use inflight::frame::{
    FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, Scanned, Scanner, SegmentHeader, frame_checksum,
};
use inflight::store::FileSource;

/// Decoding an input may allocate at most this many times its length...
pub const DECODER_ALLOCATION_FACTOR: isize = 2;
/// ...plus this many bytes.
pub const DECODER_ALLOCATION_SLACK_BYTES: isize = 16 * 1024;

/// Cut points tried for the prefix property when the input is too long to try them all.
const PREFIX_SAMPLES: usize = 32;
/// Inputs up to this long have the prefix property checked at every cut point.
const PREFIX_EXHAUSTIVE_BYTES: usize = 256;

/// What one scan of some bytes found: the records (sequence and payload) and the damaged
/// regions, in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Valid records, in order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// How many records came before the first damaged region.
    pub records_before_damage: usize,
    /// Damaged regions as (start, end).
    pub damaged: Vec<(u64, u64)>,
}

/// Interprets `data` as a segment file: a valid header gives the salt and first sequence number;
/// otherwise the first 8 bytes are the salt and the rest the frames (so that a fuzzer reaches
/// the frame decoder without first forging a header checksum).
fn split(data: &[u8]) -> (u64, u64, &[u8], u64) {
    match SegmentHeader::decode(data) {
        Ok(h) => (
            h.salt,
            h.base_seq,
            &data[SEGMENT_HEADER_BYTES..],
            SEGMENT_HEADER_BYTES as u64,
        ),
        Err(_) if data.len() >= 8 => (
            u64::from_le_bytes(data[..8].try_into().expect("8 bytes")),
            1,
            &data[8..],
            8,
        ),
        Err(_) => (0, 1, data, 0),
    }
}

/// Scans `body` and checks the scanner's own invariants: items tile the input in order, every
/// record's checksum holds, sequence numbers only grow, and a record in place carries exactly
/// the next sequence number.
fn scan(body: &[u8], base: u64, salt: u64, first_seq: u64) -> Result<ScanSummary, String> {
    let mut summary = ScanSummary::default();
    let mut pos = base;
    let mut next_seq = first_seq;
    for item in Scanner::new(body, base, salt, first_seq) {
        match item {
            Scanned::Frame(f) => {
                if f.offset != pos {
                    return Err(format!(
                        "record at {} but the previous item ended at {pos}",
                        f.offset
                    ));
                }
                let stored = &body[(f.offset - base) as usize..][4..8];
                let stored = u32::from_le_bytes(stored.try_into().expect("4 bytes"));
                if frame_checksum(salt, f.seq, f.payload) != stored {
                    return Err(format!(
                        "record {} at {} yielded with a bad checksum",
                        f.seq, f.offset
                    ));
                }
                let in_place = summary.damaged.last().is_none_or(|d| d.1 != f.offset);
                if (in_place && f.seq != next_seq) || f.seq < next_seq {
                    return Err(format!(
                        "record at {} has sequence {}, expected {next_seq}",
                        f.offset, f.seq
                    ));
                }
                let mut round_trips = true;
                decode_payload_with(f.payload, |e, _| {
                    let e = e.to_event();
                    round_trips &= decode_event(&encode_event(&e)).as_ref() == Some(&e);
                });
                if !round_trips {
                    return Err(format!(
                        "record {} does not round-trip through the event codec",
                        f.seq
                    ));
                }
                next_seq = f.seq + 1;
                pos = f.end();
                summary.records.push((f.seq, f.payload.to_vec()));
                if summary.damaged.is_empty() {
                    summary.records_before_damage += 1;
                }
            }
            Scanned::Damaged { start, end } => {
                if start != pos || end <= start {
                    return Err(format!(
                        "damaged region {start}..{end} does not continue from {pos}"
                    ));
                }
                pos = end;
                summary.damaged.push((start, end));
            }
        }
    }
    if pos != base + body.len() as u64 {
        return Err(format!(
            "scan stopped at {pos} of {}",
            base + body.len() as u64
        ));
    }
    Ok(summary)
}

/// Checks every decoder promise on `data` (see the module docs). `Ok` holds the scan of the
/// whole input.
pub fn check_segment_bytes(data: &[u8]) -> Result<ScanSummary, String> {
    if let Ok(h) = SegmentHeader::decode(data)
        && h.encode()[..] != data[..SEGMENT_HEADER_BYTES]
    {
        return Err("a segment header does not re-encode to its own bytes".into());
    }
    let (salt, first_seq, body, base) = split(data);
    let whole = scan(body, base, salt, first_seq)?;

    // Parsing a prefix of the file yields a prefix of the records of the whole file, up to the
    // prefix's first damaged region. (Past damage the scanner searches for the next record; a
    // record deliberately embedded, with this segment's salt, in the payload of a record that
    // a crash then tore can be found there. The salt is random per segment, so only someone
    // who can already read the log can build one.)
    let cuts: Vec<usize> = if body.len() <= PREFIX_EXHAUSTIVE_BYTES {
        (0..body.len()).collect()
    } else {
        let mut cuts: Vec<usize> = (0..PREFIX_SAMPLES)
            .map(|i| i * body.len() / PREFIX_SAMPLES)
            .collect();
        let mut end = 0usize;
        for (_, payload) in whole.records.iter().take(PREFIX_SAMPLES) {
            end += FRAME_HEADER_BYTES + payload.len();
            cuts.extend([end.saturating_sub(1), end]);
        }
        cuts
    };
    for cut in cuts.into_iter().filter(|&c| c <= body.len()) {
        let prefix = scan(&body[..cut], base, salt, first_seq)?;
        let trusted = &prefix.records[..prefix.records_before_damage];
        if whole.records.get(..trusted.len()) != Some(trusted) {
            return Err(format!(
                "the prefix of {cut} bytes yields records that are not a prefix of the whole input's"
            ));
        }
    }
    Ok(whole)
}

/// What replay does with a segment's bytes: scan the frames and decode each payload. Returns how
/// many frames held valid events.
fn decode_all(data: &[u8]) -> usize {
    let (salt, first_seq, body, base) = split(data);
    Scanner::new(body, base, salt, first_seq)
        .filter_map(|s| match s {
            Scanned::Frame(f) => decode_payload_with(f.payload, |_, _| {}).then_some(()),
            Scanned::Damaged { .. } => None,
        })
        .count()
}

/// Checks that decoding `data` allocates at most [`DECODER_ALLOCATION_FACTOR`] times its length
/// plus [`DECODER_ALLOCATION_SLACK_BYTES`], however it is damaged. Needs
/// [`CountingAllocator`](super::CountingAllocator) as the global allocator, and says so if it is
/// not. Returns the peak.
pub fn check_decoder_allocation(data: &[u8]) -> Result<isize, String> {
    let peak = super::peak_allocation(|| {
        std::hint::black_box(decode_all(data));
    })
    .ok_or("the CountingAllocator is not the global allocator: cannot measure")?;
    let bound = DECODER_ALLOCATION_FACTOR * data.len() as isize + DECODER_ALLOCATION_SLACK_BYTES;
    if peak > bound {
        return Err(format!(
            "decoding {} bytes allocated {peak} bytes at peak, over the bound of {bound}",
            data.len()
        ));
    }
    Ok(peak)
}

/// Replays `data` as the only segment of a log on the simulated disk, read-only and then
/// read-write, and checks that both agree and that a read-write open leaves no torn tail.
/// Arbitrary bytes must never make recovery panic, invent a disagreement, or fail with anything
/// but an unsupported-version error.
pub fn check_replay_bytes(data: &[u8]) -> Result<(), String> {
    use std::path::Path;
    use std::sync::Arc;

    use crate::sim::SimStorage;
    use inflight::error::Error;
    use inflight::layout::segment_name;
    use inflight::log::{Log, Opened};
    use inflight::options::Options;
    use inflight::recovery::Policy;
    use inflight::storage::{Storage, write_all_at};

    let sim = SimStorage::new(0);
    let dir = Path::new("/log");
    let setup = || -> inflight::storage::StoreResult<()> {
        sim.create_dir_all(dir)?;
        let file = sim.create(&dir.join(segment_name(1)))?;
        write_all_at(&*file, data, 0)?;
        file.sync_data()?;
        sim.sync_dir(dir)
    };
    setup().map_err(|e| format!("setting up the simulated disk: {e}"))?;

    // One reading each (what `inflight::inspect::read_only` settles on): nothing else writes the simulated
    // disk, and a settled reading would pause to look at a torn tail again.
    let before = match inflight::inspect::for_each_event(
        &FileSource::new(&sim, dir),
        Policy::SkipDamaged,
        |_, _| {},
    ) {
        Ok(r) => r.report,
        Err(Error::UnsupportedVersion { .. }) => return Ok(()),
        Err(e) => return Err(format!("read-only replay failed: {e}")),
    };
    // The smallest segments: the open reserves the space after the last record up to the
    // segment size, and a megabyte for every input would slow the fuzzer tenfold.
    let options = Options::default()
        .environment(super::StepEnvironment::new(0, 1))
        .segment_bytes_max(inflight::limits::SEGMENT_BYTES_MIN)
        .prepare_segments(false);
    let Opened {
        log,
        report: opened,
    } = Log::open_with_storage(Arc::new(sim.clone()), dir, options)
        .map_err(|e| format!("read-write open failed: {e}"))?;
    drop(log);
    // The runs and why they stopped; the recovery counts differ by the one the open recorded.
    let runs =
        |report: &inflight::recovery::RecoveryReport| -> Vec<(inflight::Run, inflight::Reason)> {
            report
                .running
                .iter()
                .map(|r| (r.run.clone(), r.reason))
                .collect()
        };
    if runs(&opened) != runs(&before) || opened.corruption != before.corruption {
        return Err("read-only and read-write replay disagree".into());
    }
    let after = inflight::inspect::for_each_event(
        &FileSource::new(&sim, dir),
        Policy::SkipDamaged,
        |_, _| {},
    )
    .map_err(|e| format!("replay after open failed: {e}"))?
    .report;
    if after.torn_tail.is_some() {
        return Err("a torn tail survived a read-write open".into());
    }
    if runs(&after) != runs(&before)
        || after.running != opened.running
        || after.corruption.len() < before.corruption.len()
    {
        return Err("a read-write open changed what the log says".into());
    }
    Ok(())
}
