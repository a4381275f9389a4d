//! A torn tail (an incomplete or invalid last record with nothing valid after it) is cut off,
//! synced away before the next append, and reported with the bytes dropped.

mod common;

use common::{frame_offsets, open, run, running, segment};
use inflight::Policy;

/// Writes three runs and returns (directory, segment bytes, offset of the last frame).
fn three_runs() -> (tempfile::TempDir, Vec<u8>, usize) {
    let (dir, bytes) = common::log_with_runs(&["a", "b", "c"], "");
    let last = *frame_offsets(&bytes).last().unwrap();
    (dir, bytes, last)
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record_is_cut_and_reported() {
    let (dir, bytes, last) = three_runs();
    let path = segment(dir.path(), 1);
    for kept in 1..bytes.len() - last {
        // Trailing bytes that read as the reserved space's filler (a checksum byte can be
        // 0xFF, with a random salt) are the reserved space by the format's rule: the torn
        // tail is the bytes before them.
        let torn_bytes = bytes[last..last + kept]
            .iter()
            .rposition(|&b| b != inflight::frame::RESERVED_BYTE)
            .map_or(0, |p| p + 1);
        if torn_bytes == 0 {
            continue;
        }
        let kept = torn_bytes;
        std::fs::write(&path, &bytes[..last + kept]).unwrap();

        let seen = inflight::inspect::read_only(dir.path(), Policy::Strict)
            .unwrap()
            .report;
        assert_eq!(seen.torn_tail_bytes(), kept as u64, "kept {kept}");
        assert!(!seen.torn_tail.as_ref().unwrap().cut);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (last + kept) as u64,
            "read-only must not cut"
        );

        let (log, report) = open(dir.path());
        assert_eq!(report.torn_tail_bytes(), kept as u64);
        let torn = report.torn_tail.clone().unwrap();
        assert_eq!((torn.offset, torn.cut), (last as u64, true));
        assert!(
            report.corruption.is_empty(),
            "a torn tail is not corruption"
        );
        assert_eq!(running(&report), vec![("a".into(), 1), ("b".into(), 1)]);
        // The torn bytes are gone: the segment is its valid frames, then the open's recovery
        // record (runs were in flight), with nothing torn after it.
        let after = std::fs::read(&path).unwrap();
        assert_eq!(after[..last], bytes[..last]);
        assert_eq!(
            frame_offsets(&after).len(),
            3,
            "two runs and the recovery record"
        );
        let seen = inflight::inspect::read_only(dir.path(), Policy::Strict)
            .unwrap()
            .report;
        assert!(seen.torn_tail.is_none());
        assert_eq!(seen.counters.recoveries, 1);
        drop(log);
    }
}

#[test]
fn torn_tail_is_cut_and_synced_before_next_append() {
    let (dir, bytes, last) = three_runs();
    let path = segment(dir.path(), 1);
    // The first 10 bytes of the last record, then zeros to its end, as a crash can leave them
    // (the length grew, the rest of the data never arrived).
    let mut torn = bytes[..last + 10].to_vec();
    torn.resize(bytes.len(), 0);
    std::fs::write(&path, &torn).unwrap();

    let (log, report) = open(dir.path());
    assert_eq!(report.torn_tail_bytes(), (bytes.len() - last) as u64);
    log.mark_running(run("d", 1)).unwrap();
    drop(log);
    let (_log, report) = open(dir.path());
    assert_eq!(report.torn_tail_bytes(), 0);
    assert!(report.corruption.is_empty());
    assert_eq!(
        running(&report),
        vec![("a".into(), 1), ("b".into(), 1), ("d".into(), 1)]
    );
}

#[test]
fn a_segment_whose_creation_was_torn_is_replaced() {
    let (dir, _, _) = three_runs();
    // A crash while segment 2 was created: a short header that was never synced.
    let next = segment(dir.path(), 2);
    std::fs::write(&next, b"INFLIG").unwrap();
    let (log, report) = open(dir.path());
    assert_eq!(report.torn_tail_bytes(), 6);
    assert!(report.corruption.is_empty());
    assert_eq!(report.running.len(), 3);
    log.mark_running(run("d", 1)).unwrap();
    drop(log);
    let (_log, report) = open(dir.path());
    assert_eq!(report.running.len(), 4);
    assert_eq!(report.torn_tail_bytes(), 0);
}

#[test]
fn zeros_past_the_last_record_longer_than_any_append_are_corruption() {
    let (dir, bytes, _) = three_runs();
    let path = segment(dir.path(), 1);
    std::fs::write(&path, [&bytes[..], &[0; 64 * 1024]].concat()).unwrap();
    let (_log, report) = open(dir.path());
    assert_eq!(report.torn_tail_bytes(), 0);
    assert_eq!(
        report.corruption.len(),
        1,
        "a crash cannot leave 64 KiB of zeros"
    );
    assert_eq!(report.running.len(), 3);
}

#[test]
fn trailing_zeros_after_the_last_record_are_a_torn_tail() {
    let (dir, bytes, _) = three_runs();
    let path = segment(dir.path(), 1);
    std::fs::write(&path, [&bytes[..], &[0; 4096]].concat()).unwrap();
    let (_log, report) = open(dir.path());
    assert_eq!(report.torn_tail_bytes(), 4096);
    assert_eq!(report.running.len(), 3);
}

#[test]
fn a_zero_filled_unfinished_segment_header_is_replaced() {
    let (dir, _, _) = three_runs();
    // A header cut inside the segment number, the rest zero-filled: a crash of an older build
    // that wrote headers in place can leave it.
    let mut header = std::fs::read(segment(dir.path(), 1)).unwrap()[..64].to_vec();
    header[8] = 1; // those builds wrote format version 1
    header[16] = 2; // segment 2's number
    header[20..].fill(0);
    std::fs::write(segment(dir.path(), 2), &header).unwrap();
    let (_log, report) = open(dir.path());
    assert_eq!(report.torn_tail_bytes(), 64);
    assert!(report.corruption.is_empty());
    assert_eq!(report.running.len(), 3);
}

#[test]
fn junk_in_place_of_the_only_segment_is_corruption_not_an_empty_log() {
    // The fault of the JSON checkpoint this log replaces: a damaged file read as "nothing in
    // flight". No crash can leave bytes that are neither a header's prefix nor zeros.
    let dir = tempfile::tempdir().unwrap();
    let path = segment(dir.path(), 1);
    std::fs::write(&path, b"this is not a log").unwrap();
    let replayed = inflight::inspect::read_only(dir.path(), inflight::Policy::SkipDamaged).unwrap();
    assert!(replayed.report.torn_tail.is_none());
    assert_eq!(replayed.report.corruption.len(), 1);
    assert_eq!(
        (
            replayed.report.corruption[0].start_offset,
            replayed.report.corruption[0].end_offset
        ),
        (0, 17)
    );
    assert!(!replayed.report.clean_shutdown);
    assert!(matches!(
        inflight::inspect::read_only(dir.path(), inflight::Policy::Strict),
        Err(inflight::Error::Corrupt { offset: 0, .. })
    ));
    // A read-write open keeps the bytes for inspection and writes to a new segment.
    let (_log, report) = open(dir.path());
    assert_eq!(report.corruption.len(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), b"this is not a log");
}

#[test]
fn a_checksum_valid_frame_copied_onto_the_end_is_corruption_and_never_cut() {
    let (dir, bytes, _) = three_runs();
    let offsets = common::frame_offsets(&bytes);
    // Record 2, whole, appended again after record 3: its checksum holds but its sequence
    // number was already used. A crash cannot write a complete frame that was never appended.
    let copy = bytes[offsets[1]..offsets[2]].to_vec();
    let mut damaged = bytes.clone();
    damaged.extend_from_slice(&copy);
    let path = segment(dir.path(), 1);
    std::fs::write(&path, &damaged).unwrap();
    let (_log, report) = open(dir.path());
    assert!(report.torn_tail.is_none(), "{:?}", report.torn_tail);
    assert_eq!(report.corruption.len(), 1);
    assert_eq!(
        (
            report.corruption[0].start_offset,
            report.corruption[0].end_offset
        ),
        (bytes.len() as u64, damaged.len() as u64)
    );
    assert!(
        std::fs::read(&path).unwrap().starts_with(&damaged),
        "the damaged bytes stay where they are"
    );
    assert_eq!(report.running.len(), 3);
}

#[test]
fn a_shutdown_followed_by_a_torn_tail_is_not_a_clean_exit() {
    let (dir, _, _) = three_runs();
    let (log, _) = open(dir.path());
    log.close().unwrap();
    drop(log);
    let (log, report) = open(dir.path());
    assert!(report.clean_shutdown);
    drop(log);
    // A later process began an append after the shutdown and crashed in it.
    let path = segment(dir.path(), 1);
    let mut bytes = common::data(&std::fs::read(&path).unwrap()).to_vec();
    bytes.extend_from_slice(&[0x20, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&path, &bytes).unwrap();
    let (_log, report) = open(dir.path());
    assert_eq!(report.torn_tail_bytes(), 7);
    assert!(!report.clean_shutdown, "a process wrote after the shutdown");
    // The runs a crash interrupted, which never ran again, keep their reason: the shutdown
    // did not find them running.
    assert!(
        report
            .running
            .iter()
            .all(|r| r.reason == inflight::Reason::Crash && !r.running)
    );
}
