//! Reserved space and prepared segments, on the real file system: a segment is created with
//! the space after its header filled with 0xFF, appends overwrite it, and the next segment is
//! prepared in a background thread once the current one is half full, so that the rollover only
//! writes its header and renames it.

mod common;

#[cfg(unix)]
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::{run, segment, small_segments};
use inflight::frame::{RESERVED_BYTE, reserved_start};
use inflight::{Log, Opened, Policy};

fn prepared(dir: &std::path::Path, n: u64) -> std::path::PathBuf {
    dir.join(format!("{n:020}.log.prepared.tmp"))
}

#[test]
fn segments_are_reserved_and_the_next_one_is_prepared_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let Opened { log, .. } = Log::open(dir.path(), small_segments()).unwrap();
    let first = segment(dir.path(), 1);
    let size = inflight::limits::SEGMENT_BYTES_MIN as usize;
    let bytes = std::fs::read(&first).unwrap();
    assert_eq!(bytes.len(), size, "created with its whole size reserved");
    assert!(bytes[64..].iter().all(|&b| b == RESERVED_BYTE));

    // Past half the segment, its successor is prepared in the background.
    let mut g = 0;
    while reserved_start(&std::fs::read(&first).unwrap()) <= size / 2 {
        g += 1;
        log.mark_running(run(&format!("k{g}"), 1).with_meta("m".repeat(500)))
            .unwrap();
    }
    let next = prepared(dir.path(), 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&next).map_or(true, |m| m.len() < size as u64) {
        assert!(Instant::now() < deadline, "segment 2 was never prepared");
        std::thread::sleep(Duration::from_millis(5));
    }
    #[cfg(unix)]
    let inode = std::fs::metadata(&next).unwrap().ino();
    assert_eq!(
        std::fs::read(dir.path().join(format!("{:020}.log", 1)))
            .unwrap()
            .len(),
        size,
        "appends overwrite the reserved space: the file does not grow"
    );

    // The rollover takes the prepared file: same inode, now with its header.
    while !segment(dir.path(), 2).exists() {
        g += 1;
        log.mark_running(run(&format!("k{g}"), 1).with_meta("m".repeat(500)))
            .unwrap();
    }
    #[cfg(unix)]
    assert_eq!(
        std::fs::metadata(segment(dir.path(), 2)).unwrap().ino(),
        inode
    );
    assert!(!next.exists());
    drop(log);

    let found = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
    assert_eq!(found.report.running.len(), g);
    assert!(found.report.torn_tail.is_none() && found.report.corruption.is_empty());
}

#[test]
fn a_preparation_a_crash_left_behind_is_removed_and_never_read() {
    let (dir, _) = common::log_with_runs(&["a", "b"], "");
    // A crash after the header went into a prepared file, before its rename.
    let left = prepared(dir.path(), 2);
    std::fs::write(&left, b"INFLIGHT and anything at all").unwrap();
    let found = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
    assert_eq!(found.report.running.len(), 2);
    assert!(left.exists(), "a read-only replay changes nothing");
    let Opened { log, report } = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(report.running.len(), 2);
    assert!(report.corruption.is_empty());
    assert!(!left.exists(), "a read-write open removes it");
    drop(log);
}

#[test]
fn without_preparation_each_segment_is_created_at_its_rollover() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_segments().prepare_segments(false);
    let Opened { log, .. } = Log::open(dir.path(), options).unwrap();
    let mut g = 0;
    while !segment(dir.path(), 3).exists() {
        g += 1;
        log.mark_running(run(&format!("k{g}"), 1).with_meta("m".repeat(500)))
            .unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.ends_with(".tmp")),
            "nothing prepared: {names:?}"
        );
    }
    drop(log);
    let found = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
    assert_eq!(found.report.running.len(), g);
}
