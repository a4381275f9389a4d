//! How to open a log: a builder, so that new settings never break a caller.

use std::fmt;
use std::sync::Arc;

use crate::environment::{Environment, SystemEnvironment};
use crate::error::{Error, Result};
use crate::limits::{SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MAX_DEFAULT, SEGMENT_BYTES_MIN};
use crate::recovery::Policy;

/// How to open a log. Start from [`Options::default`] and change what you need:
///
/// ```
/// use inflight::Options;
///
/// let options = Options::default().strict().segment_bytes_max(64 << 20);
/// assert!(format!("{options:?}").contains("Strict"));
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) policy: Policy,
    pub(crate) segment_bytes_max: u64,
    pub(crate) environment: Arc<dyn Environment>,
}

impl Default for Options {
    /// Skip and report corruption, 16 MiB segments, the system clock and random salts.
    fn default() -> Options {
        Options {
            policy: Policy::default(),
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            environment: Arc::new(SystemEnvironment),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("policy", &self.policy)
            .field("segment_bytes_max", &self.segment_bytes_max)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Corruption makes opening fail with [`Error::Corrupt`] instead of being skipped and
    /// reported ([`Policy::Strict`]).
    pub fn strict(self) -> Options {
        self.policy(Policy::Strict)
    }

    /// What to do with corruption.
    pub fn policy(mut self, policy: Policy) -> Options {
        self.policy = policy;
        self
    }

    /// The size at which the writer starts a new segment, between
    /// [`SEGMENT_BYTES_MIN`] and [`SEGMENT_BYTES_LIMIT`] (checked when the log is opened).
    pub fn segment_bytes_max(mut self, bytes: u64) -> Options {
        self.segment_bytes_max = bytes;
        self
    }

    /// The clock and salt source (the system's by default); see [`Environment`].
    pub fn environment(mut self, environment: impl Environment + 'static) -> Options {
        self.environment = Arc::new(environment);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_LIMIT).contains(&self.segment_bytes_max) {
            return Err(Error::InvalidInput {
                field: "segment_bytes_max",
                reason: format!(
                    "is {}, outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_LIMIT}",
                    self.segment_bytes_max
                ),
                key: None,
            });
        }
        Ok(())
    }
}
