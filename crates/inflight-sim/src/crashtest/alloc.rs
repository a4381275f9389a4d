//! A counting allocator, so that tests and fuzz targets can hold the decoder to its promise of
//! never allocating more than a small multiple of its input.
//!
//! Install it as the global allocator of a test binary or fuzz target:
//!
//! ```
//! use inflight_sim::crashtest::{CountingAllocator, peak_allocation};
//!
//! #[global_allocator]
//! static ALLOCATOR: CountingAllocator = CountingAllocator;
//!
//! fn main() {
//!     let peak = peak_allocation(|| drop(std::hint::black_box(vec![0u8; 1000])));
//!     assert!(peak.unwrap() >= 1000);
//! }
//! ```
//!
//! Counts are per thread, so tests running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The system allocator, counting each thread's live bytes and their peak.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingAllocator;

static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counting only touches
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        let _ = LIVE.try_with(|live| {
            let now = live.get() + layout.size() as isize;
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|live| live.set(live.get() - layout.size() as isize));
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// The most bytes this thread held at once while `f` ran, beyond what it held before; `None`
/// when [`CountingAllocator`] is not the global allocator.
pub fn peak_allocation(f: impl FnOnce()) -> Option<isize> {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    f();
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| PEAK.with(Cell::get) - base)
}
