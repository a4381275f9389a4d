//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use inflight::{Log, Options, RecoveryReport, Run};

/// A run of `key` with `generation`, started at `generation` ms.
pub fn run(key: &str, generation: u64) -> Run {
    Run::new(
        key,
        format!("{key}-s{generation}"),
        generation,
        1_000 + generation,
    )
}

/// Options with the smallest segments, so that tests cross rollovers with few records.
pub fn small_segments() -> Options {
    Options {
        segment_bytes_max: inflight::limits::SEGMENT_BYTES_MIN,
        ..Options::default()
    }
}

/// Opens the log with default options, panicking on error.
pub fn open(dir: &Path) -> (Log, RecoveryReport) {
    Log::open(dir, Options::default()).expect("open log")
}

/// A fresh log directory holding one started run (generation 1) per key, with `meta` on each,
/// and the bytes of its only segment.
pub fn log_with_runs(keys: &[&str], meta: &str) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for key in keys {
        log.mark_running(run(key, 1).with_meta(meta)).unwrap();
    }
    drop(log);
    let bytes = std::fs::read(segment(dir.path(), 1)).unwrap();
    (dir, bytes)
}

/// The path of segment `n` in `dir`.
pub fn segment(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.log"))
}

/// Keys and generations of the report's running runs, in key order.
pub fn running(report: &RecoveryReport) -> Vec<(String, u64)> {
    report
        .running
        .iter()
        .map(|r| (r.run.key.clone(), r.run.generation))
        .collect()
}

/// Keys and generations of the log's live running set, in key order.
pub fn live(log: &Log) -> Vec<(String, u64)> {
    log.running()
        .into_iter()
        .map(|e| (e.run.key, e.run.generation))
        .collect()
}

/// Byte offsets at which each frame of a single-segment log starts, and the file's length.
pub fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut pos = inflight::frame::SEGMENT_HEADER_BYTES;
    while pos + inflight::frame::FRAME_HEADER_BYTES <= bytes.len() {
        offsets.push(pos);
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += inflight::frame::FRAME_HEADER_BYTES + len;
    }
    offsets
}

/// Records a crash-test tier's figures: printed, and written to
/// `target/tmp/crashtest-TIER.txt` so that CI can show them after a passing run.
pub fn report_tier(tier: &str, line: &str) {
    eprintln!("{line}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crashtest-{tier}.txt"));
    std::fs::write(&path, format!("{line}\n")).expect("write the tier's summary");
}
