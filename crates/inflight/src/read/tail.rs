//! Damaged regions not yet settled, and the rules that tell what a crash can leave at the end
//! of a log from corruption. Pure.
//!
//! A crash can leave exactly two kinds of damage, both at the very end of the log:
//!
//! - a **torn tail**: the one frame whose append the crash interrupted (every append is synced
//!   before the next one starts, so there is never more than one);
//! - an **unfinished segment header**, from a log written by an older build that created
//!   segments in place (this build writes a new segment's header to `NAME.tmp`, syncs it and
//!   renames it, so a segment never exists under its own name without a synced header).
//!
//! Anything else is corruption: reported with its place, never cut.

use crate::damage::Corruption;
use crate::frame::{FRAME_BYTES_MAX, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, decode_frame};
use crate::limits::RECORD_BYTES_MAX;

/// The most bytes a crash can leave unsynced at the end of the last segment: one frame, since
/// every append is synced before the next one starts. Longer damage there is corruption.
pub const UNSYNCED_TAIL_BYTES_MAX: u64 = FRAME_BYTES_MAX as u64;

/// A damaged region not yet known to be a torn tail or corruption.
#[derive(Clone, Debug)]
pub(crate) struct Damage {
    pub segment: String,
    pub start: u64,
    pub end: u64,
    pub after_seq: u64,
    pub after_ms: Option<u64>,
    pub detail: String,
    /// False where the damage cannot be the trace of a crash: a frame whose checksum holds, a
    /// damaged header, missing records.
    pub torn_possible: bool,
}

impl Damage {
    /// The region as reported corruption; `before` is the sequence number and timestamp of the
    /// first valid record after it, if there is one.
    pub fn into_corruption(self, before: Option<(u64, u64)>) -> Corruption {
        Corruption {
            segment: self.segment,
            start_offset: self.start,
            end_offset: self.end,
            after_seq: self.after_seq,
            before_seq: before.map(|b| b.0),
            after_ms: self.after_ms,
            before_ms: before.map(|b| b.1),
            detail: self.detail,
        }
    }
}

/// Whether the damaged regions at the end of the last segment (`regions`, in order, the first
/// starting at the first byte of `bytes` and the last ending at its end) are a torn tail: what
/// a crash during one append can leave. All of these must hold:
///
/// - together they are at most one frame long ([`UNSYNCED_TAIL_BYTES_MAX`]);
/// - each could be the trace of a crash (none is a checksum-valid frame that is not an event,
///   none is in a segment whose header is damaged, none is a gap of missing records);
/// - they do not go on past the frame their first frame header describes, when that header is
///   witnessed intact (see [`extends_past_an_intact_frame`]);
/// - no frame whose checksum holds starts anywhere in them, whatever its sequence number (a crash
///   cannot write a complete, checksum-valid frame that was never appended: such a frame is a
///   copy, a replay of an old frame, or damage of another kind).
pub(crate) fn is_torn_tail(regions: &[Damage], bytes: &[u8], salt: u64) -> bool {
    let Some(first) = regions.first() else {
        return false;
    };
    let total: u64 = regions.iter().map(|d| d.end - d.start).sum();
    total <= UNSYNCED_TAIL_BYTES_MAX
        && regions.iter().all(|d| d.torn_possible)
        && !extends_past_an_intact_frame(bytes, first.start, first.after_seq + 1)
        && !holds_checksum_valid_frame(bytes, salt)
}

/// The sector size within which the persistence model lets a torn write keep only a prefix.
const TEAR_SECTOR_BYTES: u64 = 512;

/// Whether damaged bytes starting at file offset `offset` reach past the one frame a torn append
/// could have left. A crash leaves the file no longer than the append it interrupted, but a torn
/// append may have torn its own length field too (a cut inside it, the rest zeros or garbage),
/// so the length is trusted only when the header is witnessed intact: its sequence field holds
/// the sequence number the append would have carried (`expected_seq`), and the whole 16-byte
/// frame header lies within one 512-byte sector. A torn sector keeps a prefix of what was
/// written to it, so an intact sequence field at bytes 8..16 means bytes 0..8 are intact too.
fn extends_past_an_intact_frame(damaged: &[u8], offset: u64, expected_seq: u64) -> bool {
    let Some(header) = damaged.get(..FRAME_HEADER_BYTES) else {
        return false;
    };
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let in_one_sector = offset % TEAR_SECTOR_BYTES + FRAME_HEADER_BYTES as u64 <= TEAR_SECTOR_BYTES;
    seq == expected_seq
        && in_one_sector
        && (1..=RECORD_BYTES_MAX).contains(&len)
        && damaged.len() > FRAME_HEADER_BYTES + len
}

/// Whether a frame whose checksum holds (with any sequence number) starts at any byte of
/// `bytes`. The frame decoder rejects an out-of-range length before it reads a payload, so
/// garbage and zeros cost a few comparisons per byte.
fn holds_checksum_valid_frame(bytes: &[u8], salt: u64) -> bool {
    (0..bytes.len()).any(|pos| decode_frame(&bytes[pos..], salt).is_some())
}

/// Whether the bytes of a last segment of at most [`SEGMENT_HEADER_BYTES`] whose header does
/// not decode are what a crash while its header was being written in place can leave: every
/// byte that a header of segment `segment_no` has at a known value (the magic, the version, the
/// header length, the segment number, the reserved field) holds that value or zero. The other
/// fields (base sequence, salt, times, checksum) may hold anything. So a prefix of the header, a
/// zero-filled file, or a prefix followed by zeros qualifies, and junk does not.
pub(crate) fn is_unfinished_header(bytes: &[u8], segment_no: u64) -> bool {
    if bytes.len() > SEGMENT_HEADER_BYTES {
        return false;
    }
    let expected = crate::frame::SegmentHeader {
        version: 1,
        segment_no,
        base_seq: 0,
        salt: 0,
        log_created_ms: 0,
        segment_created_ms: 0,
    }
    .encode();
    let known = |i: usize| matches!(i, 0..24 | 56..60);
    bytes
        .iter()
        .enumerate()
        .all(|(i, &b)| !known(i) || b == 0 || b == expected[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{SegmentHeader, encode_frame};

    fn header(segment_no: u64) -> [u8; SEGMENT_HEADER_BYTES] {
        SegmentHeader {
            version: 1,
            segment_no,
            base_seq: 9,
            salt: 0x1234_5678_9abc_def0,
            log_created_ms: 1_700_000_000_000,
            segment_created_ms: 1_700_000_000_001,
        }
        .encode()
    }

    #[test]
    fn a_prefix_of_the_header_or_zeros_is_an_unfinished_header() {
        let h = header(3);
        for len in 0..=SEGMENT_HEADER_BYTES {
            assert!(is_unfinished_header(&h[..len], 3), "prefix of {len} bytes");
            assert!(is_unfinished_header(&vec![0; len], 3), "{len} zeros");
        }
        let mut torn = h;
        torn[20..].fill(0); // cut inside the segment number, the rest zero-filled
        assert!(is_unfinished_header(&torn, 3));
    }

    #[test]
    fn junk_or_another_segments_header_is_not_an_unfinished_header() {
        assert!(!is_unfinished_header(b"not a log segment", 1));
        assert!(!is_unfinished_header(&[0xff; 17], 1));
        assert!(!is_unfinished_header(&header(4)[..30], 3));
        let mut wrong_version = header(3);
        wrong_version[8] = 2;
        assert!(!is_unfinished_header(&wrong_version[..12], 3));
        let mut reserved = header(3);
        reserved[57] = 1;
        assert!(!is_unfinished_header(&reserved, 3));
    }

    fn region(start: u64, end: u64) -> Damage {
        Damage {
            segment: "s".into(),
            start,
            end,
            after_seq: 0,
            after_ms: None,
            detail: String::new(),
            torn_possible: true,
        }
    }

    #[test]
    fn a_torn_append_is_a_torn_tail() {
        let mut frame = Vec::new();
        encode_frame(7, 5, b"payload", &mut frame);
        let torn = &frame[..frame.len() - 1];
        assert!(is_torn_tail(&[region(0, torn.len() as u64)], torn, 7));
    }

    #[test]
    fn a_complete_checksum_valid_frame_is_never_a_torn_tail() {
        // A frame with an old sequence number, copied onto the end: the scanner did not accept
        // it, but a crash cannot have written it.
        let mut frame = Vec::new();
        encode_frame(7, 2, b"payload", &mut frame);
        assert!(!is_torn_tail(&[region(0, frame.len() as u64)], &frame, 7));
        let mut shifted = vec![0xaa; 3];
        shifted.extend_from_slice(&frame);
        assert!(!is_torn_tail(
            &[region(0, shifted.len() as u64)],
            &shifted,
            7
        ));
    }

    #[test]
    fn damage_longer_than_the_intact_frame_it_starts_is_not_a_torn_tail() {
        // Region starts at offset 64 after record 4: the damaged frame's header carries
        // sequence 5, as the next append would.
        let mut frame = Vec::new();
        encode_frame(7, 5, b"payload", &mut frame);
        frame[20] ^= 1; // inside the payload: the header is intact
        frame.extend_from_slice(&[0xaa; 4]);
        let at = |start| Damage {
            start,
            end: start + frame.len() as u64,
            after_seq: 4,
            ..region(0, 0)
        };
        assert!(!is_torn_tail(&[at(64)], &frame, 7));
        // A header that straddles a sector boundary is not witnessed intact.
        assert!(is_torn_tail(&[at(500)], &frame, 7));
    }

    #[test]
    fn a_torn_length_field_is_still_a_torn_tail() {
        // The repro of a crash state: the append's first byte kept, the rest of its sector
        // zero-filled, the file grown to the end of what the write reached. The length now
        // reads as 0xb8 and the bytes go on past that, but the header is not intact.
        let mut torn = vec![0u8; 2947];
        torn[0] = 0xb8;
        let region = Damage {
            start: 124,
            end: 124 + torn.len() as u64,
            after_seq: 3,
            ..region(0, 0)
        };
        assert!(is_torn_tail(&[region], &torn, 7));
    }
}
