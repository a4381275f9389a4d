//! Tier 2 by coverage: arbitrary sequences of operations, crashes and injected faults against a
//! log on the simulated disk, checked against the persistence model's oracle after every step.
#![no_main]

use inflight_sim::crashtest::FuzzInput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: FuzzInput| {
    if let Err(failure) = input.run() {
        panic!("{failure}");
    }
});
