//! Progress on stderr for the commands that can run for seconds, drawn by `indicatif`: a bar of
//! bytes read for the reads that report them (dump, stats, verify), a bar of events or seconds
//! for the load, a bar of steps for the benchmark, and a spinner with the time spent for the
//! rest (replay, compact, import-json).
//!
//! Only on a terminal, and never under `--json`: standard error stays clean for a script. A bar
//! is erased when its command ends; what a command prints is unchanged.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a spinner turns while the command works.
const TICK: Duration = Duration::from_millis(100);

/// Whether progress is drawn: stderr is a terminal, and the output is not JSON.
pub(super) fn wanted(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// A bar, or nothing.
pub(super) struct Progress(ProgressBar);

impl Progress {
    /// A bar of the bytes read of the segments in `dir` (their total size is read from the
    /// directory now).
    pub(super) fn bytes(dir: &Path, json: bool) -> Progress {
        if !wanted(json) {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(segments_bytes(dir)), draw_target());
        bar.set_style(
            ProgressStyle::with_template(
                "{percent:>3}% [{bar:30}] {bytes}/{total_bytes} read, {bytes_per_sec}, ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Progress(bar)
    }

    /// A bar of `steps` named steps.
    pub(super) fn steps(steps: u64, json: bool) -> Progress {
        if !wanted(json) {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(steps), draw_target());
        bar.set_style(
            ProgressStyle::with_template("[{bar:24}] {pos}/{len} {msg} ({elapsed})")
                .expect("a valid template")
                .progress_chars("#>."),
        );
        Progress(bar)
    }

    /// A bar of `len` things of a `unit` (events, seconds) done; `quiet` hides it.
    pub(super) fn counted(len: u64, unit: &str, quiet: bool) -> Progress {
        if !wanted(quiet) {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), draw_target());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{percent:>3}}% [{{bar:30}}] {{human_pos}}/{{human_len}} {unit}, ETA {{eta}}"
            ))
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Progress(bar)
    }

    /// A spinner saying what is being done, and for how long so far.
    pub(super) fn spinner(what: impl Into<String>, json: bool) -> Progress {
        if !wanted(json) {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, draw_target());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
        );
        bar.set_message(what.into());
        bar.enable_steady_tick(TICK);
        Progress(bar)
    }

    fn hidden() -> Progress {
        Progress(ProgressBar::hidden())
    }

    /// `read` bytes read so far.
    pub(super) fn update(&self, read: u64) {
        if let Some(total) = self.0.length() {
            // A segment may grow while it is read: the bar's end moves with it.
            if read > total {
                self.0.set_length(read);
            }
        }
        self.0.set_position(read);
    }

    /// The next step begins.
    pub(super) fn step(&self, what: impl Into<String>) {
        if self.0.message().is_empty() {
            self.0.set_message(what.into());
        } else {
            self.0.inc(1);
            self.0.set_message(what.into());
        }
    }

    /// Erases the bar.
    pub(super) fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Drop for Progress {
    /// A command that fails leaves no bar behind its error line either.
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn draw_target() -> ProgressDrawTarget {
    // At most ten redraws a second: drawing never slows the read it reports.
    ProgressDrawTarget::stderr_with_hz(10)
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
