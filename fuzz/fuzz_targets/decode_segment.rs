//! Tier 1: arbitrary bytes as a segment file. The decoder never panics, never yields a record
//! whose checksum fails, and parsing a prefix yields a prefix of the records; replaying the
//! bytes as a log never panics and a read-write open agrees with a read-only one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = inflight::crashtest::check_segment_bytes(data) {
        panic!("decoder: {e}");
    }
    if let Err(e) = inflight::crashtest::check_replay_bytes(data) {
        panic!("replay: {e}");
    }
});
