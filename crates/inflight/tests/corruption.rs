//! An invalid record with valid records after it is corruption: skipped and reported as a gap
//! by default, a typed error under the strict policy, and never silently truncated.

mod common;

use common::{frame_offsets, open, run, running, segment, small_segments};
use inflight::Opened;
use inflight::{Error, Log, Options, Policy};

/// Five runs a..e in one segment; returns the directory and the segment's bytes.
fn five_runs() -> (tempfile::TempDir, Vec<u8>) {
    common::log_with_runs(&["a", "b", "c", "d", "e"], "")
}

#[test]
fn corruption_in_the_middle_is_skipped_and_reported_as_a_gap() {
    let (dir, mut bytes) = five_runs();
    let offsets = frame_offsets(&bytes);
    bytes[offsets[2] + 20] ^= 0x01; // inside record 3 (run "c")
    std::fs::write(segment(dir.path(), 1), &bytes).unwrap();

    let (log, report) = open(dir.path());
    assert_eq!(report.torn_tail_bytes(), 0);
    assert_eq!(report.corruption.len(), 1);
    let gap = &report.corruption[0];
    assert_eq!(gap.segment, format!("{:020}.log", 1));
    assert_eq!(
        (gap.start_offset, gap.end_offset),
        (offsets[2] as u64, offsets[3] as u64)
    );
    assert_eq!((gap.after_seq, gap.before_seq), (2, Some(4)));
    // Runs are started at 1000 + generation, so every record here is at 1001 ms.
    assert_eq!((gap.after_ms, gap.before_ms), (Some(1_001), Some(1_001)));
    assert_eq!(
        running(&report),
        vec![
            ("a".into(), 1),
            ("b".into(), 1),
            ("d".into(), 1),
            ("e".into(), 1)
        ]
    );
    // The log stays writable, and the damaged bytes stay where they are.
    log.mark_running(run("f", 1)).unwrap();
    drop(log);
    let after = std::fs::read(segment(dir.path(), 1)).unwrap();
    assert_eq!(&after[..bytes.len()], &bytes[..]);
    let (_log, report) = open(dir.path());
    assert_eq!(
        report.corruption.len(),
        1,
        "still reported, never silently dropped"
    );
    assert_eq!(report.running.len(), 5);
}

#[test]
fn corruption_in_the_middle_fails_the_strict_policy() {
    let (dir, mut bytes) = five_runs();
    let offsets = frame_offsets(&bytes);
    bytes[offsets[1] + 2] ^= 0xff; // record 2's length
    std::fs::write(segment(dir.path(), 1), &bytes).unwrap();
    for result in [
        Log::open(dir.path(), Options::default().strict()).map(|_| ()),
        inflight::inspect::read_only(dir.path(), Policy::Strict).map(|_| ()),
    ] {
        match result {
            Err(Error::Corrupt {
                segment: s, offset, ..
            }) => {
                assert_eq!(s, segment(dir.path(), 1));
                assert_eq!(offset, offsets[1] as u64);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    assert_eq!(
        std::fs::read(segment(dir.path(), 1)).unwrap(),
        bytes,
        "a strict open that fails changes nothing"
    );
}

/// Forty runs of 1 KiB meta in small segments: at least three segment files.
fn many_segments() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let Opened { log, .. } = Log::open(dir.path(), small_segments()).unwrap();
    for g in 1..=40 {
        log.mark_running(run(&format!("k{g}"), 1).with_meta("m".repeat(1000)))
            .unwrap();
    }
    drop(log);
    assert!(
        segment(dir.path(), 3).exists(),
        "the test needs several segments"
    );
    dir
}

#[test]
fn damage_in_an_earlier_segment_is_corruption_even_at_its_end() {
    let dir = many_segments();
    // Cut the end of segment 1's data: it looks like a torn tail, but segment 2 follows it.
    let first = segment(dir.path(), 1);
    let bytes = std::fs::read(&first).unwrap();
    let data = common::data(&bytes);
    std::fs::write(&first, &data[..data.len() - 100]).unwrap();
    let Opened { log: _log, report } = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(report.torn_tail_bytes(), 0);
    assert_eq!(report.corruption.len(), 1);
    assert!(report.corruption[0].before_seq.is_some());
    assert_eq!(report.running.len(), 39);
}

#[test]
fn a_missing_middle_segment_is_reported_as_a_gap() {
    let dir = many_segments();
    std::fs::remove_file(segment(dir.path(), 2)).unwrap();
    let Opened { log: _log, report } = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(report.corruption.len(), 1);
    let gap = &report.corruption[0];
    assert!(gap.detail.contains("missing"), "{}", gap.detail);
    assert!(gap.before_seq.unwrap() > gap.after_seq + 1);
}

#[test]
fn damage_at_the_end_longer_than_one_frame_is_corruption_not_a_torn_tail() {
    let (dir, mut bytes) = common::log_with_runs(&["a", "b", "c", "d", "e"], &"m".repeat(4000));
    // Zero the last three records: a crash leaves at most one unsynced frame, so this is not
    // the trace of a crash.
    let path = segment(dir.path(), 1);
    let offsets = frame_offsets(&bytes);
    let len = bytes.len();
    bytes[offsets[2]..len].fill(0);
    std::fs::write(&path, &bytes).unwrap();

    assert!(matches!(
        inflight::inspect::read_only(dir.path(), Policy::Strict),
        Err(Error::Corrupt { .. })
    ));
    let (log, report) = open(dir.path());
    assert_eq!(report.torn_tail_bytes(), 0);
    assert_eq!(report.corruption.len(), 1);
    let gap = &report.corruption[0];
    assert_eq!(
        (gap.start_offset, gap.end_offset),
        (offsets[2] as u64, len as u64)
    );
    assert_eq!(gap.before_seq, None);
    // The damaged bytes are kept; new records go to a new segment.
    log.mark_running(run("f", 1)).unwrap();
    drop(log);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let (_log, report) = open(dir.path());
    assert_eq!(report.corruption.len(), 1);
    assert_eq!(
        running(&report),
        vec![("a".into(), 1), ("b".into(), 1), ("f".into(), 1)]
    );
}

#[test]
fn a_checksummed_frame_that_is_not_an_event_is_corruption_even_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 1)).unwrap();
    drop(log);
    // A frame a newer build might write: valid checksum and sequence, unknown event variant.
    let path = segment(dir.path(), 1);
    let mut bytes = common::data(&std::fs::read(&path).unwrap()).to_vec();
    let header = inflight::frame::SegmentHeader::decode(&bytes).unwrap();
    inflight::frame::encode_frame(header.salt, 2, &[13, 1, 2, 3], &mut bytes);
    std::fs::write(&path, &bytes).unwrap();

    let (log, report) = open(dir.path());
    assert_eq!(
        report.torn_tail_bytes(),
        0,
        "a valid checksum cannot be a torn write"
    );
    assert_eq!(report.corruption.len(), 1);
    assert!(report.corruption[0].detail.contains("not a valid event"));
    log.mark_running(run("b", 1)).unwrap();
    drop(log);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the frame is never cut"
    );
}

#[test]
fn records_cut_out_of_a_segment_are_a_gap_and_the_records_after_them_survive() {
    let (dir, bytes) = five_runs();
    let offsets = frame_offsets(&bytes);
    // Record 3 removed whole: no byte is damaged, but a sequence number is missing.
    let mut cut = bytes[..offsets[2]].to_vec();
    cut.extend_from_slice(&bytes[offsets[3]..]);
    std::fs::write(segment(dir.path(), 1), &cut).unwrap();

    let replayed = inflight::inspect::read_only(dir.path(), Policy::SkipDamaged).unwrap();
    let report = replayed.report;
    assert_eq!(report.corruption.len(), 1, "{:?}", report.corruption);
    let gap = &report.corruption[0];
    assert_eq!(
        (gap.start_offset, gap.end_offset),
        (offsets[2] as u64, offsets[2] as u64)
    );
    assert_eq!((gap.after_seq, gap.before_seq), (2, Some(4)));
    assert!(
        gap.detail.contains("records 3..3 are missing"),
        "{}",
        gap.detail
    );
    assert_eq!(
        running(&report),
        vec![
            ("a".into(), 1),
            ("b".into(), 1),
            ("d".into(), 1),
            ("e".into(), 1)
        ]
    );
    assert!(inflight::inspect::read_only(dir.path(), Policy::Strict).is_err());
}
