//! A log written with the format's encoders and no syncs, so that a benchmark's gigabyte takes
//! seconds: shared by the benchmarks that read large logs.

use std::io::{BufWriter, Write};
use std::path::Path;

use inflight::Event;
use inflight::event::encode_event;
use inflight::frame::{FORMAT_VERSION, SEGMENT_HEADER_BYTES, SegmentHeader, encode_frame};

/// Writes a new log into `dir`, in segments of at most `segment_bytes`, created at `t0`:
/// record `seq` (from 1) holds `event(seq, bytes written so far)`, until it returns `None`.
/// Returns the records and the bytes written.
pub fn write_log(
    dir: &Path,
    segment_bytes: u64,
    t0: u64,
    mut event: impl FnMut(u64, u64) -> Option<Event>,
) -> (u64, u64) {
    std::fs::create_dir_all(dir).unwrap();
    let (mut seq, mut written, mut segment_no) = (1u64, 0u64, 1u64);
    let mut frame = Vec::new();
    let mut next = event(seq, written);
    while next.is_some() {
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            segment_no,
            base_seq: seq,
            salt: fastrand::u64(..),
            log_created_ms: t0,
            segment_created_ms: t0,
        };
        let path = dir.join(inflight::layout::segment_name(segment_no));
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
        out.write_all(&header.encode()).unwrap();
        let mut len = SEGMENT_HEADER_BYTES as u64;
        while let Some(e) = &next {
            frame.clear();
            encode_frame(header.salt, seq, &encode_event(e), &mut frame);
            if len + frame.len() as u64 > segment_bytes {
                break;
            }
            out.write_all(&frame).unwrap();
            len += frame.len() as u64;
            seq += 1;
            next = event(seq, written + len);
        }
        out.flush().unwrap();
        written += len;
        segment_no += 1;
    }
    (seq - 1, written)
}
