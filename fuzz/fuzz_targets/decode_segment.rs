//! Tier 1: arbitrary bytes as a segment file. The decoder never panics, never yields a record
//! whose checksum fails, never allocates more than a small multiple of its input, and parsing a
//! prefix yields a prefix of the records; replaying the bytes as a log never panics and a
//! read-write open agrees with a read-only one.
#![no_main]

use inflight_sim::crashtest::{
    CountingAllocator, check_decoder_allocation, check_replay_bytes, check_segment_bytes,
};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = check_segment_bytes(data) {
        panic!("decoder: {e}");
    }
    if let Err(e) = check_decoder_allocation(data) {
        panic!("decoder: {e}");
    }
    if let Err(e) = check_replay_bytes(data) {
        panic!("replay: {e}");
    }
});
