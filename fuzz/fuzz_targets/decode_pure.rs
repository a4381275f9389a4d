//! Tier 1 at the decoders' own speed: arbitrary bytes as a segment header, an event payload and
//! a segment's frames (and prefixes of them), with no simulator and no replay. See
//! `inflight_sim::crashtest::check_pure_decoders` for the promises checked.
#![no_main]

use inflight_sim::crashtest::{CountingAllocator, check_pure_decoders};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = check_pure_decoders(data) {
        panic!("pure decoders: {e}");
    }
});
