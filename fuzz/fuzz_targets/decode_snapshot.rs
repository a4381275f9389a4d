//! Tier 1 for snapshots: arbitrary bytes as a snapshot file never panic, never allocate more
//! than a bounded multiple of their size, and whatever decodes re-encodes to the same state.
//! See `inflight_sim::crashtest::check_snapshot_decoder`.
#![no_main]

use inflight_sim::crashtest::{CountingAllocator, check_snapshot_decoder};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = check_snapshot_decoder(data) {
        panic!("snapshot decoder: {e}");
    }
});
