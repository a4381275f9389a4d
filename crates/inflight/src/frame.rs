//! The pure file format: segment headers and CRC frames, encoded into and decoded from byte
//! slices. No I/O. docs/FORMAT.md describes the same layout in prose;
//! change both together.
//!
//! ```text
//! segment header (64 bytes, little-endian)
//!   0  magic              8  "INFLIGHT"
//!   8  version            4  FORMAT_VERSION (3; versions 1 and 2 are read too)
//!  12  header length      4  64
//!  16  segment number     8  equals the number in the file name
//!  24  base sequence      8  sequence number of the segment's first frame
//!  32  salt               8  random per segment, mixed into every frame checksum
//!  40  log created (ms)   8  when the log (its first segment) was created
//!  48  segment created    8  when this segment was created
//!  56  reserved           4  zero
//!  60  header checksum    4  CRC-32 of bytes 0..60
//!
//! frame (16-byte header + payload)
//!   0  length             4  payload bytes, 1..=RECORD_BYTES_MAX
//!   4  checksum           4  CRC-32 of salt(8) ‖ length(4) ‖ sequence(8) ‖ payload
//!   8  sequence           8  consecutive across the whole log, starting at 1
//!  16  payload            length bytes: one postcard-encoded Event, or a batch of them
//! ```

use crate::limits::RECORD_BYTES_MAX;

/// First eight bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"INFLIGHT";
/// The format version this build writes. Version 2 added the log's own records
/// ([`Event::Recovered`](crate::Event::Recovered) and [`Event::Retention`](crate::Event::Retention)),
/// which a version-1 reader would take for damage; version 3 the events 6 to 12 (starts with a
/// nonce, exact completions, resume-pending, suspension, clearing, progress, adoption), which a
/// version-2 reader would take for damage.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format version this build reads. A segment of an older version than
/// [`FORMAT_VERSION`] is read as it is and never appended to: a read-write open continues in a
/// new segment of the current version.
pub const FORMAT_VERSION_OLDEST: u32 = 1;
/// Size of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Size of a frame header (length, checksum, sequence).
pub const FRAME_HEADER_BYTES: usize = 16;
/// Largest frame on disk.
pub const FRAME_BYTES_MAX: usize = FRAME_HEADER_BYTES + RECORD_BYTES_MAX;

/// The fields of a segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The format version, [`FORMAT_VERSION_OLDEST`]..=[`FORMAT_VERSION`].
    pub version: u32,
    /// The segment's number; its file is named after it.
    pub segment_no: u64,
    /// Sequence number of the segment's first frame.
    pub base_seq: u64,
    /// Mixed into every frame checksum, so a frame left over from another segment (or another
    /// log) never validates here.
    pub salt: u64,
    /// When the log began recording: its coverage start.
    pub log_created_ms: u64,
    /// When this segment was created.
    pub segment_created_ms: u64,
}

/// Why a segment header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`SEGMENT_HEADER_BYTES`] bytes.
    Short,
    /// The first eight bytes are not [`SEGMENT_MAGIC`].
    BadMagic,
    /// The header checksum does not match.
    BadChecksum,
    /// A valid header of a version this build does not read.
    UnsupportedVersion(u32),
    /// A header whose header-length field is not 64.
    BadLength(u32),
    /// A header whose reserved field (bytes 56..60) is not zero.
    BadReserved(u32),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Short => write!(f, "segment header is incomplete"),
            HeaderError::BadMagic => write!(f, "segment header has no INFLIGHT magic"),
            HeaderError::BadChecksum => write!(f, "segment header checksum does not match"),
            HeaderError::UnsupportedVersion(v) => write!(f, "format version {v} is not supported"),
            HeaderError::BadLength(n) => {
                write!(
                    f,
                    "segment header says it is {n} bytes long, not {SEGMENT_HEADER_BYTES}"
                )
            }
            HeaderError::BadReserved(r) => {
                write!(f, "segment header's reserved field is {r:#x}, not zero")
            }
        }
    }
}

impl SegmentHeader {
    /// The header's 64 bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.segment_no.to_le_bytes());
        b[24..32].copy_from_slice(&self.base_seq.to_le_bytes());
        b[32..40].copy_from_slice(&self.salt.to_le_bytes());
        b[40..48].copy_from_slice(&self.log_created_ms.to_le_bytes());
        b[48..56].copy_from_slice(&self.segment_created_ms.to_le_bytes());
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads a header from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let b = bytes
            .get(..SEGMENT_HEADER_BYTES)
            .ok_or(HeaderError::Short)?;
        if b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if crc32fast::hash(&b[0..60]) != le_u32(&b[60..64]) {
            return Err(HeaderError::BadChecksum);
        }
        let version = le_u32(&b[8..12]);
        if !(FORMAT_VERSION_OLDEST..=FORMAT_VERSION).contains(&version) {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let header_len = le_u32(&b[12..16]);
        if header_len != SEGMENT_HEADER_BYTES as u32 {
            return Err(HeaderError::BadLength(header_len));
        }
        let reserved = le_u32(&b[56..60]);
        if reserved != 0 {
            return Err(HeaderError::BadReserved(reserved));
        }
        Ok(SegmentHeader {
            version,
            segment_no: le_u64(&b[16..24]),
            base_seq: le_u64(&b[24..32]),
            salt: le_u64(&b[32..40]),
            log_created_ms: le_u64(&b[40..48]),
            segment_created_ms: le_u64(&b[48..56]),
        })
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// The checksum of a frame: it covers the salt, the length and the sequence number as well as
/// the payload, so a zero-filled region or a frame from another segment never validates.
pub fn frame_checksum(salt: u64, seq: u64, payload: &[u8]) -> u32 {
    /// Payloads up to this size are checksummed with the fields in one contiguous update: each
    /// update of a few bytes costs about as much as a whole small frame's.
    const JOINED_MAX: usize = 236;
    let mut fields = [0u8; 20 + JOINED_MAX];
    fields[..8].copy_from_slice(&salt.to_le_bytes());
    fields[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    fields[12..20].copy_from_slice(&seq.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    if payload.len() <= JOINED_MAX {
        fields[20..20 + payload.len()].copy_from_slice(payload);
        h.update(&fields[..20 + payload.len()]);
    } else {
        h.update(&fields[..20]);
        h.update(payload);
    }
    h.finalize()
}

/// Appends one frame holding `payload` to `out`.
///
/// # Panics
/// If `payload` is empty or longer than [`RECORD_BYTES_MAX`]: callers validate events first,
/// so this is an invariant, not an input check.
pub fn encode_frame(salt: u64, seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        !payload.is_empty() && payload.len() <= RECORD_BYTES_MAX,
        "frame payload of {} bytes is outside 1..={RECORD_BYTES_MAX}",
        payload.len()
    );
    out.reserve(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&frame_checksum(salt, seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A frame whose checksum held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Offset of the frame's first byte in the segment.
    pub offset: u64,
    /// The frame's sequence number.
    pub seq: u64,
    /// The payload (an encoded event).
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Offset just past the frame.
    pub fn end(&self) -> u64 {
        self.offset + (FRAME_HEADER_BYTES + self.payload.len()) as u64
    }
}

/// Decodes the frame at the start of `bytes`, if one is there whose length is in bounds, whose
/// sequence number is not `u64::MAX` (it would have no successor) and whose
/// checksum holds. The length is checked against both [`RECORD_BYTES_MAX`] and the bytes that
/// remain before anything is read, so a corrupt length never reads (or allocates) past the input.
pub fn decode_frame(bytes: &[u8], salt: u64) -> Option<(u64, &[u8])> {
    let header = bytes.get(..FRAME_HEADER_BYTES)?;
    let len = le_u32(&header[0..4]) as usize;
    if len == 0 || len > RECORD_BYTES_MAX {
        return None;
    }
    let payload = bytes.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len)?;
    let seq = le_u64(&header[8..16]);
    // The largest sequence number has no successor, so no valid frame carries it.
    (seq < u64::MAX && frame_checksum(salt, seq, payload) == le_u32(&header[4..8]))
        .then_some((seq, payload))
}

/// The byte that fills a segment's reserved space: the space after its records that the
/// writer filled ahead of them, so that a synced append writes into blocks the file already has
/// and its fdatasync commits no new file size. It is `0xFF` because no frame ends with it (an
/// event's encoding ends with a varint's last byte, below `0x80`, an option's `0`, or a byte of
/// UTF-8), and because a disk that loses data returns zeros or garbage, not a run of it: zeros
/// where records were read as damage, never as reserved space.
pub const RESERVED_BYTE: u8 = 0xFF;

/// Where the reserved space at the end of a segment's bytes begins: the start of the run of
/// [`RESERVED_BYTE`] that ends them (their length if they do not end with it). Every valid frame
/// ends at or before it. Pure.
pub fn reserved_start(bytes: &[u8]) -> usize {
    // Whole blocks first: comparing a block is vectorised, a byte loop is not.
    const BLOCK: usize = 4096;
    let mut end = bytes.len();
    while end >= BLOCK && bytes[end - BLOCK..end].iter().all(|&b| b == RESERVED_BYTE) {
        end -= BLOCK;
    }
    bytes[..end]
        .iter()
        .rposition(|&b| b != RESERVED_BYTE)
        .map_or(0, |p| p + 1)
}

/// One step of reading a segment's frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scanned<'a> {
    /// A valid frame with the expected (or, after damage, a later) sequence number.
    Frame(Frame<'a>),
    /// Bytes `start..end` hold no valid frame. `end` is either the offset of the next valid frame
    /// or the end of the input.
    Damaged {
        /// First byte of the damaged region.
        start: u64,
        /// One past its last byte.
        end: u64,
    },
}

/// Reads the frames of one segment body in order. Pure: it walks a byte slice.
///
/// Frames must carry consecutive sequence numbers starting at `next_seq`. Where the bytes at
/// the current position do not hold a valid frame, the scanner searches forward byte by byte
/// for the next frame that validates with a sequence number at or above the expected one and
/// reports the stretch between as [`Scanned::Damaged`]. Where they hold a valid frame whose
/// sequence number is above the expected one (records are missing, but no byte is damaged), it
/// reports an empty damaged region at the frame's offset and then yields the frame. The
/// regions and frames it yields tile the input exactly, in order. Whether that stretch is a torn tail (nothing valid
/// after it) or corruption is for the caller to decide, since the answer may depend on later
/// segments.
#[derive(Clone, Debug)]
pub struct Scanner<'a> {
    bytes: &'a [u8],
    base_offset: u64,
    salt: u64,
    pos: usize,
    next_seq: u64,
}

impl<'a> Scanner<'a> {
    /// Scans `bytes`, which start at `base_offset` in their file, expecting `next_seq` first.
    pub fn new(bytes: &'a [u8], base_offset: u64, salt: u64, next_seq: u64) -> Scanner<'a> {
        Scanner {
            bytes,
            base_offset,
            salt,
            pos: 0,
            next_seq,
        }
    }

    /// The sequence number the next frame must carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn frame_at(&self, pos: usize, min_seq: u64) -> Option<Frame<'a>> {
        let (seq, payload) = decode_frame(&self.bytes[pos..], self.salt)?;
        // The last sequence number has no successor for the frame after it: no writer reaches
        // it, so a frame carrying it is damage.
        (seq >= min_seq).then_some(Frame {
            offset: self.base_offset + pos as u64,
            seq,
            payload,
        })
    }

    fn take(&mut self, frame: Frame<'a>) -> Scanned<'a> {
        self.pos = (frame.end() - self.base_offset) as usize;
        self.next_seq = frame.seq + 1;
        Scanned::Frame(frame)
    }
}

impl<'a> Iterator for Scanner<'a> {
    type Item = Scanned<'a>;

    fn next(&mut self) -> Option<Scanned<'a>> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        if let Some(frame) = self.frame_at(self.pos, self.next_seq) {
            if frame.seq == self.next_seq {
                return Some(self.take(frame));
            }
            // A valid frame, but records before it are missing: an empty damaged region marks
            // the gap, and the frame is taken on the next call.
            self.next_seq = frame.seq;
            return Some(Scanned::Damaged {
                start: frame.offset,
                end: frame.offset,
            });
        }
        let start = self.pos;
        for pos in start + 1..self.bytes.len() {
            if let Some(frame) = self.frame_at(pos, self.next_seq) {
                // The records between were lost with the damage: continue from this one.
                self.pos = pos;
                self.next_seq = frame.seq;
                return Some(Scanned::Damaged {
                    start: self.base_offset + start as u64,
                    end: frame.offset,
                });
            }
        }
        self.pos = self.bytes.len();
        Some(Scanned::Damaged {
            start: self.base_offset + start as u64,
            end: self.base_offset + self.bytes.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(salt: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            encode_frame(salt, i as u64 + 1, p, &mut out);
        }
        out
    }

    #[test]
    fn reserved_space_is_the_run_of_0xff_that_ends_the_bytes() {
        let mut b = frames(3, &[b"ab", b"c\xff"]);
        let data = b.len();
        assert_eq!(
            reserved_start(&b),
            data - 1,
            "a trailing 0xFF is reserved space"
        );
        b.pop();
        b.push(0);
        assert_eq!(reserved_start(&b), data, "a zero is not");
        b.resize(data + 10_000, RESERVED_BYTE);
        assert_eq!(reserved_start(&b), data);
        b[data + 9_000] = 0;
        assert_eq!(
            reserved_start(&b),
            data + 9_001,
            "reserved space has no hole"
        );
        assert_eq!(reserved_start(&[RESERVED_BYTE; 5000]), 0);
        assert_eq!(reserved_start(&[]), 0);
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SegmentHeader {
            version: FORMAT_VERSION,
            segment_no: 7,
            base_seq: 100,
            salt: 0xdead_beef,
            log_created_ms: 1,
            segment_created_ms: 2,
        };
        let mut b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        assert_eq!(SegmentHeader::decode(&b[..63]), Err(HeaderError::Short));
        b[20] ^= 1;
        assert_eq!(SegmentHeader::decode(&b), Err(HeaderError::BadChecksum));
        assert_eq!(
            SegmentHeader::decode(&[0u8; 64]),
            Err(HeaderError::BadMagic)
        );
    }

    #[test]
    fn a_header_decodes_only_from_the_bytes_it_encodes_to() {
        // A reserved field that is not zero, under a checksum that holds: every other field
        // decodes, but the header would not re-encode to its own bytes.
        let mut b = SegmentHeader {
            version: FORMAT_VERSION,
            segment_no: 1,
            base_seq: 1,
            salt: 2,
            log_created_ms: 3,
            segment_created_ms: 3,
        }
        .encode();
        b[57] = 0xea;
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            SegmentHeader::decode(&b),
            Err(HeaderError::BadReserved(0xea00))
        );
    }

    #[test]
    fn zero_filled_bytes_never_validate() {
        assert_eq!(decode_frame(&[0u8; 64], 0), None);
        let scanned: Vec<_> = Scanner::new(&[0u8; 100], 64, 0, 1).collect();
        assert_eq!(
            scanned,
            vec![Scanned::Damaged {
                start: 64,
                end: 164
            }]
        );
    }

    #[test]
    fn frames_from_another_salt_do_not_validate() {
        let bytes = frames(1, &[b"abc"]);
        assert!(decode_frame(&bytes, 1).is_some());
        assert_eq!(decode_frame(&bytes, 2), None);
    }

    #[test]
    fn scanner_reports_damage_then_resumes_at_the_next_valid_frame() {
        let mut bytes = frames(9, &[b"one", b"two", b"three"]);
        bytes[FRAME_HEADER_BYTES + 3 + 5] ^= 0xff; // inside frame 2's checksum
        let scanned: Vec<_> = Scanner::new(&bytes, 0, 9, 1).collect();
        assert_eq!(scanned.len(), 3);
        assert!(matches!(scanned[0], Scanned::Frame(f) if f.seq == 1));
        assert_eq!(scanned[1], Scanned::Damaged { start: 19, end: 38 });
        assert!(matches!(scanned[2], Scanned::Frame(f) if f.seq == 3 && f.payload == b"three"));
    }

    #[test]
    fn a_frame_with_an_unexpected_sequence_is_not_accepted_in_place() {
        let mut bytes = Vec::new();
        encode_frame(3, 1, b"a", &mut bytes);
        encode_frame(3, 1, b"b", &mut bytes); // a repeated sequence number
        let scanned: Vec<_> = Scanner::new(&bytes, 0, 3, 1).collect();
        assert_eq!(scanned.len(), 2);
        assert!(matches!(scanned[1], Scanned::Damaged { .. }));
    }

    #[test]
    fn a_valid_frame_after_missing_records_is_kept_after_an_empty_gap() {
        let mut bytes = Vec::new();
        encode_frame(3, 1, b"a", &mut bytes);
        let second = bytes.len() as u64;
        encode_frame(3, 5, b"e", &mut bytes); // records 2..4 are missing
        encode_frame(3, 6, b"f", &mut bytes);
        let scanned: Vec<_> = Scanner::new(&bytes, 0, 3, 1).collect();
        assert_eq!(scanned.len(), 4);
        assert_eq!(
            scanned[1],
            Scanned::Damaged {
                start: second,
                end: second
            }
        );
        assert!(matches!(scanned[2], Scanned::Frame(f) if f.seq == 5 && f.payload == b"e"));
        assert!(matches!(scanned[3], Scanned::Frame(f) if f.seq == 6));
    }

    #[test]
    fn a_frame_with_the_last_sequence_number_is_damage() {
        let mut bytes = vec![0xff];
        encode_frame(5, u64::MAX, b"x", &mut bytes);
        let scanned: Vec<_> = Scanner::new(&bytes, 0, 5, 1).collect();
        assert_eq!(scanned, vec![Scanned::Damaged { start: 0, end: 18 }]);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn encoding_an_oversized_payload_is_an_invariant_violation() {
        encode_frame(0, 1, &vec![1u8; RECORD_BYTES_MAX + 1], &mut Vec::new());
    }
}
