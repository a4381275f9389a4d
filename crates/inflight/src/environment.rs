//! The outside world the shell needs: a clock and a source of salts. The pure core never reads
//! either; the log handle and the writer get them from here, so a test can make a run
//! deterministic by passing its own to [`Options::environment`](crate::Options::environment).

use std::time::{SystemTime, UNIX_EPOCH};

/// A clock and a source of salts. Implement it to make a simulated run deterministic:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use inflight::{Environment, Log, Options};
///
/// /// A clock that ticks one millisecond per reading, and fixed salts.
/// struct Ticking(AtomicU64);
/// impl Environment for Ticking {
///     fn now_ms(&self) -> u64 {
///         self.0.fetch_add(1, Ordering::Relaxed)
///     }
///     fn salt(&self) -> u64 {
///         42
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let options = Options::default().environment(Ticking(AtomicU64::new(1_000)));
/// let opened = Log::open(dir.path(), options)?;
/// assert_eq!(opened.report.coverage_since_ms, Some(1_000));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Environment: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// A fresh random salt for a new segment.
    fn salt(&self) -> u64;
    /// A fresh random nonce for a run the log begins ([`Run::nonce`](crate::Run::nonce)):
    /// what makes its token name it and no other run. A salt, unless implemented apart; an
    /// environment with fixed salts gives every run the same nonce, which only a test wants.
    fn nonce(&self) -> u64 {
        self.salt()
    }
}

/// The system clock and a random salt: what [`Options::default`](crate::Options) uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
    fn salt(&self) -> u64 {
        fastrand::u64(..)
    }
}

/// The system clock in milliseconds since the Unix epoch, rounded up (0 if the clock is before
/// 1970). Rounded up, so that a time the log stamps (a run's start, a completion) is never
/// earlier than a reading of the same clock taken before the call (Python's `time.time()`, for
/// one, has microseconds).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().div_ceil(1_000_000) as u64)
}
