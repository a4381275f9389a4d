//! A progress line on stderr for long reads of a log, only when stderr is a terminal: bytes
//! read of the segments' total, and the rate. Redrawn in place with a carriage return, at most
//! ten times a second, and erased at the end.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// A read shorter than this shows no progress line at all.
const QUIET_FOR: Duration = Duration::from_millis(300);
const REDRAW_EVERY: Duration = Duration::from_millis(100);

pub(super) struct ByteProgress {
    on: bool,
    drawn: bool,
    total: u64,
    started: Instant,
    last: Instant,
}

impl ByteProgress {
    /// A progress line for reading the segments in `dir` (their total size is read from the
    /// directory now), shown only when stderr is a terminal.
    pub(super) fn new(dir: &Path) -> ByteProgress {
        let on = std::io::stderr().is_terminal();
        let total = if on { segments_bytes(dir) } else { 0 };
        let now = Instant::now();
        ByteProgress {
            on,
            drawn: false,
            total,
            started: now,
            last: now,
        }
    }

    /// `read` bytes of segments read so far.
    pub(super) fn update(&mut self, read: u64) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        let elapsed = now - self.started;
        if elapsed < QUIET_FOR || now - self.last < REDRAW_EVERY {
            return;
        }
        self.last = now;
        self.drawn = true;
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let rate = mib(read) / elapsed.as_secs_f64();
        let percent = if self.total > 0 {
            format!(
                "{:>3.0}% ",
                100.0 * read.min(self.total) as f64 / self.total as f64
            )
        } else {
            String::new()
        };
        eprint!(
            "\r{percent}{:.0} of {:.0} MiB read, {rate:.0} MiB/s   ",
            mib(read),
            mib(self.total.max(read))
        );
        let _ = std::io::stderr().flush();
    }

    /// Erases the line, if one was drawn.
    pub(super) fn finish(&mut self) {
        if self.drawn {
            eprint!("\r{:<60}\r", "");
            let _ = std::io::stderr().flush();
            self.drawn = false;
        }
    }
}

/// The total size of the segment files in `dir` (0 if it cannot be listed).
fn segments_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
