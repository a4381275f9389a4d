//! The vocabulary: a run, the events a gateway records, and the records the log writes itself;
//! to and from bytes.
//!
//! The events are what the fold ([`crate::fold`]) understands; their encoding on disk (a
//! private `Wire` enum, one variant index per record kind) is docs/FORMAT.md's table. A legacy
//! start (variant 0, no nonce) and a start with a nonce (variant 6) are one [`Event::Started`]
//! here; every other event has one variant.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits::{KEY_BYTES_MAX, META_BYTES_MAX, REASON_BYTES_MAX, SESSION_ID_BYTES_MAX};

/// One agent run: what a gateway needs back after a crash to resume or suspend it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Run {
    /// The session's stable routing key, e.g. `agent:main:telegram:dm:4242`. Non-empty, at
    /// most [`KEY_BYTES_MAX`] bytes.
    pub key: String,
    /// The transcript id of the conversation the run belongs to. At most
    /// [`SESSION_ID_BYTES_MAX`] bytes.
    pub session_id: String,
    /// Bumped for every run begun on `key`; monotonic per key.
    pub generation: u64,
    /// When the run started, in milliseconds since the Unix epoch (the gateway's clock).
    pub started_at_ms: u64,
    /// A small opaque payload the gateway wants back after a crash (often JSON). At most
    /// [`META_BYTES_MAX`] bytes. [`Log::progress`](crate::Log::progress) replaces it while the
    /// run goes on.
    pub meta: Option<String>,
    /// A random number the log gives the run when it begins it ([`Log::begin_run`]), so that
    /// the run's [`Token`] names it and no other run, of any key, log or process. 0 for a run
    /// whose start the gateway recorded itself ([`Log::mark_running`]) or that an older build
    /// wrote.
    ///
    /// [`Log::begin_run`]: crate::Log::begin_run
    /// [`Log::mark_running`]: crate::Log::mark_running
    #[serde(default)]
    pub nonce: u64,
}

impl Run {
    /// A run with no `meta` and no nonce. The generation and the start time are wrapped in their
    /// own types, so the two numbers cannot be swapped by mistake:
    ///
    /// ```
    /// use inflight::{Generation, Run, UnixMs};
    ///
    /// let run = Run::new("agent:main:telegram:dm:4242", "20261126_104512_9f1c2ab0", Generation(3), UnixMs(1_764_150_000_000));
    /// assert_eq!((run.generation, run.started_at_ms), (3, 1_764_150_000_000));
    /// ```
    pub fn new(
        key: impl Into<String>,
        session_id: impl Into<String>,
        generation: Generation,
        started_at: UnixMs,
    ) -> Run {
        Run {
            key: key.into(),
            session_id: session_id.into(),
            generation: generation.0,
            started_at_ms: started_at.0,
            meta: None,
            nonce: 0,
        }
    }

    /// The same run carrying `meta`.
    pub fn with_meta(mut self, meta: impl Into<String>) -> Run {
        self.meta = Some(meta.into());
        self
    }

    /// The run's token: its generation and nonce, which name this run of this key in this log
    /// and nothing else ([`Log::complete_token`](crate::Log::complete_token)).
    pub fn token(&self) -> Token {
        Token {
            generation: self.generation,
            nonce: self.nonce,
        }
    }
}

/// What names one run exactly: its generation and the nonce the log gave it. As text (what a
/// gateway keeps as its opaque turn token) it is 32 lowercase hex digits, the nonce's 16 then
/// the generation's 16, like a UUID's hex:
///
/// ```
/// use inflight::event::Token;
///
/// let token = Token { generation: 7, nonce: 0x9f1c_2ab0_5e11_d00d };
/// let text = token.to_string();
/// assert_eq!(text, "9f1c2ab05e11d00d0000000000000007");
/// assert_eq!(text.parse::<Token>(), Ok(token));
/// assert!("inflight-7-0862575d".parse::<Token>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token {
    /// The run's generation.
    pub generation: u64,
    /// The run's nonce ([`Run::nonce`]).
    pub nonce: u64,
}

/// The text was not a token: 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAToken;

impl std::fmt::Display for NotAToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a run's token is 32 lowercase hex digits")
    }
}

impl std::error::Error for NotAToken {}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}{:016x}", self.nonce, self.generation)
    }
}

impl std::str::FromStr for Token {
    type Err = NotAToken;

    fn from_str(text: &str) -> std::result::Result<Token, NotAToken> {
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                .then(|| u64::from_str_radix(s, 16).ok())
                .flatten()
        };
        if text.len() != 32 || !text.is_ascii() {
            return Err(NotAToken);
        }
        match (hex(&text[..16]), hex(&text[16..])) {
            (Some(nonce), Some(generation)) => Ok(Token { generation, nonce }),
            _ => Err(NotAToken),
        }
    }
}

/// A run's generation: bumped for every run begun on a key, monotonic per key. A type of its
/// own where a generation and a time would otherwise sit side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Generation(pub u64);

/// A time in milliseconds since the Unix epoch. A type of its own where a time and a generation
/// would otherwise sit side by side. Give milliseconds on the clock the log uses (the system's,
/// by default): retention compares these times with the log's clock, so seconds, or times from
/// another epoch, would make every idle mark look years old and forgotten at the next
/// compaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMs(pub u64);

/// Why a run is reported as interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The process died with the run in flight.
    Crash,
    /// The run was still in flight at a clean shutdown (the drain timed out).
    Shutdown,
}

impl Reason {
    /// `"crash"` or `"shutdown"`, as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Crash => "crash",
            Reason::Shutdown => "shutdown",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run promoted to resume-pending: why, and when.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pending {
    /// The gateway's reason, e.g. `restart_interrupted` (a crash), `shutdown_timeout` (a drain
    /// that timed out). Non-empty, at most [`REASON_BYTES_MAX`] bytes.
    pub reason: String,
    /// When it was promoted, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// A run taken over from another log (a fleet's dead instance), as it is recorded in this one
/// ([`Log::adopt`](crate::Log::adopt)): its run under a generation and nonce of this log, and
/// the state it had there, loop counts included, so that a loop goes on being counted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Adoption {
    /// The run, its generation and nonce this log's.
    pub run: Run,
    /// Why it was interrupted there.
    pub reason: Reason,
    /// Its crash count there ([`InFlightRun::recoveries`](crate::InFlightRun::recoveries)).
    pub recoveries: u32,
    /// Its graceful-stop count there ([`InFlightRun::stops`](crate::InFlightRun::stops)).
    pub stops: u32,
    /// Its resume-pending state there, if it had one.
    pub pending: Option<Pending>,
    /// When it was suspended there, if it was.
    pub suspended_at_ms: Option<u64>,
    /// When it was adopted, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// What the log records.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A run began (or was re-begun under a higher generation: a resume).
    Started(Run),
    /// The run of `key` with `generation` finished, or any older one.
    Completed {
        /// The run's key.
        key: String,
        /// The generation that finished.
        generation: u64,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The process exited cleanly; runs still running were interrupted by the shutdown.
    Shutdown {
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// Written by the log itself: a read-write open found runs in flight. Every run that was
    /// running counts one more interruption, of the kind that interrupted it (see
    /// [`InFlightRun::recoveries`](crate::InFlightRun::recoveries)). Format version 2.
    Recovered {
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// Written by the log itself at a compaction: the high-water marks of keys with no running
    /// run and no event since `forget_before_ms` are forgotten. Format version 2.
    Retention {
        /// Marks whose latest event is older than this are dropped.
        forget_before_ms: u64,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The run of `key` named by its [`Token`] finished: an exact completion, which ends that
    /// run and no other. Format version 3.
    Finished {
        /// The run's key.
        key: String,
        /// Its generation.
        generation: u64,
        /// Its nonce.
        nonce: u64,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The run of `key` was promoted to resume-pending. Format version 3.
    Promoted {
        /// The key.
        key: String,
        /// Why (see [`Pending::reason`]).
        reason: String,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The run of `key` was suspended: not to be resumed. Format version 3.
    Suspended {
        /// The key.
        key: String,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The resume-pending state of `key` was cleared: a run that was waiting is dropped, a
    /// resumed run goes on without it. Format version 3.
    Cleared {
        /// The key.
        key: String,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The running run named by its token made progress: its `meta` is now this. Format
    /// version 3.
    Progress {
        /// The run's key.
        key: String,
        /// Its generation.
        generation: u64,
        /// Its nonce.
        nonce: u64,
        /// Its new `meta`.
        meta: Option<String>,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// A run taken over from another log. Format version 3.
    Adopted(Adoption),
}

impl Event {
    /// The event's timestamp: a start's `started_at_ms`, otherwise `at_ms`.
    pub fn at_ms(&self) -> u64 {
        EventRef::from(self).at_ms()
    }

    /// True for the records the log writes itself ([`Event::Recovered`], [`Event::Retention`]);
    /// [`Log::record`](crate::Log::record) refuses them.
    pub fn is_internal(&self) -> bool {
        matches!(self, Event::Recovered { .. } | Event::Retention { .. })
    }

    /// The key the event concerns, if any.
    pub fn key(&self) -> Option<&str> {
        EventRef::from(self).key()
    }

    /// Checks every limit of [`crate::limits`]. Called before an event is written and after one
    /// is read back, so both sides of the disk hold the same invariants.
    pub fn validate(&self) -> Result<()> {
        EventRef::from(self).validate()
    }
}

/// A [`Run`] as decoded from a record, borrowing its strings from the record's bytes: replay
/// reads millions of records, and only the runs that go into the running set are copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunRef<'a> {
    /// See [`Run::key`].
    pub key: &'a str,
    /// See [`Run::session_id`].
    pub session_id: &'a str,
    /// See [`Run::generation`].
    pub generation: u64,
    /// See [`Run::started_at_ms`].
    pub started_at_ms: u64,
    /// See [`Run::meta`].
    pub meta: Option<&'a str>,
    /// See [`Run::nonce`].
    pub nonce: u64,
}

impl RunRef<'_> {
    /// The run, owned.
    pub fn to_run(&self) -> Run {
        Run {
            key: self.key.to_string(),
            session_id: self.session_id.to_string(),
            generation: self.generation,
            started_at_ms: self.started_at_ms,
            meta: self.meta.map(str::to_string),
            nonce: self.nonce,
        }
    }
}

impl<'a> From<&'a Run> for RunRef<'a> {
    fn from(run: &'a Run) -> RunRef<'a> {
        RunRef {
            key: &run.key,
            session_id: &run.session_id,
            generation: run.generation,
            started_at_ms: run.started_at_ms,
            meta: run.meta.as_deref(),
            nonce: run.nonce,
        }
    }
}

/// A [`Pending`], borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRef<'a> {
    /// See [`Pending::reason`].
    pub reason: &'a str,
    /// See [`Pending::at_ms`].
    pub at_ms: u64,
}

impl PendingRef<'_> {
    /// The pending state, owned.
    pub fn to_pending(&self) -> Pending {
        Pending {
            reason: self.reason.to_string(),
            at_ms: self.at_ms,
        }
    }
}

/// An [`Adoption`], borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdoptionRef<'a> {
    /// See [`Adoption::run`].
    pub run: RunRef<'a>,
    /// See [`Adoption::reason`].
    pub reason: Reason,
    /// See [`Adoption::recoveries`].
    pub recoveries: u32,
    /// See [`Adoption::stops`].
    pub stops: u32,
    /// See [`Adoption::pending`].
    pub pending: Option<PendingRef<'a>>,
    /// See [`Adoption::suspended_at_ms`].
    pub suspended_at_ms: Option<u64>,
    /// See [`Adoption::at_ms`].
    pub at_ms: u64,
}

/// An [`Event`] as decoded from a record, borrowing its strings from the record's bytes (see
/// [`decode_payload_with`]). Variant for variant the same as [`Event`];
/// [`EventRef::to_event`] gives the owned event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each variant and field is documented on `Event`
pub enum EventRef<'a> {
    Started(RunRef<'a>),
    Completed {
        key: &'a str,
        generation: u64,
        at_ms: u64,
    },
    Shutdown {
        at_ms: u64,
    },
    Recovered {
        at_ms: u64,
    },
    Retention {
        forget_before_ms: u64,
        at_ms: u64,
    },
    Finished {
        key: &'a str,
        generation: u64,
        nonce: u64,
        at_ms: u64,
    },
    Promoted {
        key: &'a str,
        reason: &'a str,
        at_ms: u64,
    },
    Suspended {
        key: &'a str,
        at_ms: u64,
    },
    Cleared {
        key: &'a str,
        at_ms: u64,
    },
    Progress {
        key: &'a str,
        generation: u64,
        nonce: u64,
        meta: Option<&'a str>,
        at_ms: u64,
    },
    Adopted(AdoptionRef<'a>),
}

impl<'a> EventRef<'a> {
    /// The event, owned.
    pub fn to_event(&self) -> Event {
        let s = str::to_string;
        match *self {
            EventRef::Started(run) => Event::Started(run.to_run()),
            EventRef::Completed {
                key,
                generation,
                at_ms,
            } => Event::Completed {
                key: s(key),
                generation,
                at_ms,
            },
            EventRef::Shutdown { at_ms } => Event::Shutdown { at_ms },
            EventRef::Recovered { at_ms } => Event::Recovered { at_ms },
            EventRef::Retention {
                forget_before_ms,
                at_ms,
            } => Event::Retention {
                forget_before_ms,
                at_ms,
            },
            EventRef::Finished {
                key,
                generation,
                nonce,
                at_ms,
            } => Event::Finished {
                key: s(key),
                generation,
                nonce,
                at_ms,
            },
            EventRef::Promoted { key, reason, at_ms } => Event::Promoted {
                key: s(key),
                reason: s(reason),
                at_ms,
            },
            EventRef::Suspended { key, at_ms } => Event::Suspended { key: s(key), at_ms },
            EventRef::Cleared { key, at_ms } => Event::Cleared { key: s(key), at_ms },
            EventRef::Progress {
                key,
                generation,
                nonce,
                meta,
                at_ms,
            } => Event::Progress {
                key: s(key),
                generation,
                nonce,
                meta: meta.map(s),
                at_ms,
            },
            EventRef::Adopted(a) => Event::Adopted(Adoption {
                run: a.run.to_run(),
                reason: a.reason,
                recoveries: a.recoveries,
                stops: a.stops,
                pending: a.pending.map(|p| p.to_pending()),
                suspended_at_ms: a.suspended_at_ms,
                at_ms: a.at_ms,
            }),
        }
    }

    /// The event's timestamp: a start's `started_at_ms`, otherwise `at_ms`.
    pub fn at_ms(&self) -> u64 {
        match *self {
            EventRef::Started(run) => run.started_at_ms,
            EventRef::Adopted(a) => a.at_ms,
            EventRef::Completed { at_ms, .. }
            | EventRef::Shutdown { at_ms }
            | EventRef::Recovered { at_ms }
            | EventRef::Retention { at_ms, .. }
            | EventRef::Finished { at_ms, .. }
            | EventRef::Promoted { at_ms, .. }
            | EventRef::Suspended { at_ms, .. }
            | EventRef::Cleared { at_ms, .. }
            | EventRef::Progress { at_ms, .. } => at_ms,
        }
    }

    /// The key the event concerns, if any.
    pub fn key(&self) -> Option<&'a str> {
        match *self {
            EventRef::Started(run) => Some(run.key),
            EventRef::Adopted(a) => Some(a.run.key),
            EventRef::Completed { key, .. }
            | EventRef::Finished { key, .. }
            | EventRef::Promoted { key, .. }
            | EventRef::Suspended { key, .. }
            | EventRef::Cleared { key, .. }
            | EventRef::Progress { key, .. } => Some(key),
            EventRef::Shutdown { .. } | EventRef::Recovered { .. } | EventRef::Retention { .. } => {
                None
            }
        }
    }

    /// Checks every limit of [`crate::limits`] (see [`Event::validate`]).
    pub fn validate(&self) -> Result<()> {
        match *self {
            EventRef::Started(run) => validate_run(run),
            EventRef::Adopted(a) => {
                validate_run(a.run)?;
                a.pending
                    .map_or(Ok(()), |p| validate_reason(p.reason, a.run.key))
            }
            EventRef::Promoted { key, reason, .. } => {
                validate_key(key)?;
                validate_reason(reason, key)
            }
            EventRef::Progress { key, meta, .. } => {
                validate_key(key)?;
                meta.map_or(Ok(()), |m| check_len("meta", m, META_BYTES_MAX, key))
            }
            EventRef::Completed { key, .. }
            | EventRef::Finished { key, .. }
            | EventRef::Suspended { key, .. }
            | EventRef::Cleared { key, .. } => validate_key(key),
            EventRef::Shutdown { .. } | EventRef::Recovered { .. } | EventRef::Retention { .. } => {
                Ok(())
            }
        }
    }
}

impl<'a> From<&'a Event> for EventRef<'a> {
    fn from(event: &'a Event) -> EventRef<'a> {
        match event {
            Event::Started(run) => EventRef::Started(run.into()),
            Event::Completed {
                key,
                generation,
                at_ms,
            } => EventRef::Completed {
                key,
                generation: *generation,
                at_ms: *at_ms,
            },
            Event::Shutdown { at_ms } => EventRef::Shutdown { at_ms: *at_ms },
            Event::Recovered { at_ms } => EventRef::Recovered { at_ms: *at_ms },
            Event::Retention {
                forget_before_ms,
                at_ms,
            } => EventRef::Retention {
                forget_before_ms: *forget_before_ms,
                at_ms: *at_ms,
            },
            Event::Finished {
                key,
                generation,
                nonce,
                at_ms,
            } => EventRef::Finished {
                key,
                generation: *generation,
                nonce: *nonce,
                at_ms: *at_ms,
            },
            Event::Promoted { key, reason, at_ms } => EventRef::Promoted {
                key,
                reason,
                at_ms: *at_ms,
            },
            Event::Suspended { key, at_ms } => EventRef::Suspended { key, at_ms: *at_ms },
            Event::Cleared { key, at_ms } => EventRef::Cleared { key, at_ms: *at_ms },
            Event::Progress {
                key,
                generation,
                nonce,
                meta,
                at_ms,
            } => EventRef::Progress {
                key,
                generation: *generation,
                nonce: *nonce,
                meta: meta.as_deref(),
                at_ms: *at_ms,
            },
            Event::Adopted(a) => EventRef::Adopted(AdoptionRef {
                run: (&a.run).into(),
                reason: a.reason,
                recoveries: a.recoveries,
                stops: a.stops,
                pending: a.pending.as_ref().map(|p| PendingRef {
                    reason: &p.reason,
                    at_ms: p.at_ms,
                }),
                suspended_at_ms: a.suspended_at_ms,
                at_ms: a.at_ms,
            }),
        }
    }
}

impl<'a> From<&EventRef<'a>> for EventRef<'a> {
    fn from(event: &EventRef<'a>) -> EventRef<'a> {
        *event
    }
}

/// The records as they are encoded (postcard), one variant per record kind, in the order of
/// their variant indices (docs/FORMAT.md, "Events"). Private: [`EventRef`] is what the rest of
/// the crate reads.
#[derive(Serialize, Deserialize)]
enum Wire<'a> {
    /// 0: a start from a build before nonces, or one the gateway recorded itself (nonce 0).
    StartedV1 {
        key: &'a str,
        session_id: &'a str,
        generation: u64,
        started_at_ms: u64,
        #[serde(borrow)]
        meta: Option<&'a str>,
    },
    /// 1
    Completed {
        key: &'a str,
        generation: u64,
        at_ms: u64,
    },
    /// 2
    Shutdown { at_ms: u64 },
    /// 3
    Recovered { at_ms: u64 },
    /// 4
    Retention { forget_before_ms: u64, at_ms: u64 },
    /// 5: the first byte of a batch payload, never an event.
    Batch,
    /// 6: a start with its nonce (never 0).
    Started {
        key: &'a str,
        session_id: &'a str,
        generation: u64,
        nonce: u64,
        started_at_ms: u64,
        #[serde(borrow)]
        meta: Option<&'a str>,
    },
    /// 7
    Finished {
        key: &'a str,
        generation: u64,
        nonce: u64,
        at_ms: u64,
    },
    /// 8
    Promoted {
        key: &'a str,
        reason: &'a str,
        at_ms: u64,
    },
    /// 9
    Suspended { key: &'a str, at_ms: u64 },
    /// 10
    Cleared { key: &'a str, at_ms: u64 },
    /// 11
    Progress {
        key: &'a str,
        generation: u64,
        nonce: u64,
        #[serde(borrow)]
        meta: Option<&'a str>,
        at_ms: u64,
    },
    /// 12
    Adopted {
        key: &'a str,
        session_id: &'a str,
        generation: u64,
        nonce: u64,
        started_at_ms: u64,
        #[serde(borrow)]
        meta: Option<&'a str>,
        reason: Reason,
        recoveries: u32,
        stops: u32,
        #[serde(borrow)]
        pending: Option<(&'a str, u64)>,
        suspended_at_ms: Option<u64>,
        at_ms: u64,
    },
}

impl<'a> Wire<'a> {
    fn of(event: EventRef<'a>) -> Wire<'a> {
        match event {
            EventRef::Started(r) if r.nonce == 0 => Wire::StartedV1 {
                key: r.key,
                session_id: r.session_id,
                generation: r.generation,
                started_at_ms: r.started_at_ms,
                meta: r.meta,
            },
            EventRef::Started(r) => Wire::Started {
                key: r.key,
                session_id: r.session_id,
                generation: r.generation,
                nonce: r.nonce,
                started_at_ms: r.started_at_ms,
                meta: r.meta,
            },
            EventRef::Completed {
                key,
                generation,
                at_ms,
            } => Wire::Completed {
                key,
                generation,
                at_ms,
            },
            EventRef::Shutdown { at_ms } => Wire::Shutdown { at_ms },
            EventRef::Recovered { at_ms } => Wire::Recovered { at_ms },
            EventRef::Retention {
                forget_before_ms,
                at_ms,
            } => Wire::Retention {
                forget_before_ms,
                at_ms,
            },
            EventRef::Finished {
                key,
                generation,
                nonce,
                at_ms,
            } => Wire::Finished {
                key,
                generation,
                nonce,
                at_ms,
            },
            EventRef::Promoted { key, reason, at_ms } => Wire::Promoted { key, reason, at_ms },
            EventRef::Suspended { key, at_ms } => Wire::Suspended { key, at_ms },
            EventRef::Cleared { key, at_ms } => Wire::Cleared { key, at_ms },
            EventRef::Progress {
                key,
                generation,
                nonce,
                meta,
                at_ms,
            } => Wire::Progress {
                key,
                generation,
                nonce,
                meta,
                at_ms,
            },
            EventRef::Adopted(a) => Wire::Adopted {
                key: a.run.key,
                session_id: a.run.session_id,
                generation: a.run.generation,
                nonce: a.run.nonce,
                started_at_ms: a.run.started_at_ms,
                meta: a.run.meta,
                reason: a.reason,
                recoveries: a.recoveries,
                stops: a.stops,
                pending: a.pending.map(|p| (p.reason, p.at_ms)),
                suspended_at_ms: a.suspended_at_ms,
                at_ms: a.at_ms,
            },
        }
    }

    /// The event this record is; `None` for what is no event (variant 5, a start of variant 6
    /// with nonce 0, whose one encoding is variant 0).
    #[inline]
    fn event(self) -> Option<EventRef<'a>> {
        Some(match self {
            Wire::StartedV1 {
                key,
                session_id,
                generation,
                started_at_ms,
                meta,
            } => EventRef::Started(RunRef {
                key,
                session_id,
                generation,
                started_at_ms,
                meta,
                nonce: 0,
            }),
            Wire::Started { nonce: 0, .. } | Wire::Batch => return None,
            Wire::Started {
                key,
                session_id,
                generation,
                nonce,
                started_at_ms,
                meta,
            } => EventRef::Started(RunRef {
                key,
                session_id,
                generation,
                started_at_ms,
                meta,
                nonce,
            }),
            Wire::Completed {
                key,
                generation,
                at_ms,
            } => EventRef::Completed {
                key,
                generation,
                at_ms,
            },
            Wire::Shutdown { at_ms } => EventRef::Shutdown { at_ms },
            Wire::Recovered { at_ms } => EventRef::Recovered { at_ms },
            Wire::Retention {
                forget_before_ms,
                at_ms,
            } => EventRef::Retention {
                forget_before_ms,
                at_ms,
            },
            Wire::Finished {
                key,
                generation,
                nonce,
                at_ms,
            } => EventRef::Finished {
                key,
                generation,
                nonce,
                at_ms,
            },
            Wire::Promoted { key, reason, at_ms } => EventRef::Promoted { key, reason, at_ms },
            Wire::Suspended { key, at_ms } => EventRef::Suspended { key, at_ms },
            Wire::Cleared { key, at_ms } => EventRef::Cleared { key, at_ms },
            Wire::Progress {
                key,
                generation,
                nonce,
                meta,
                at_ms,
            } => EventRef::Progress {
                key,
                generation,
                nonce,
                meta,
                at_ms,
            },
            Wire::Adopted {
                key,
                session_id,
                generation,
                nonce,
                started_at_ms,
                meta,
                reason,
                recoveries,
                stops,
                pending,
                suspended_at_ms,
                at_ms,
            } => EventRef::Adopted(AdoptionRef {
                run: RunRef {
                    key,
                    session_id,
                    generation,
                    started_at_ms,
                    meta,
                    nonce,
                },
                reason,
                recoveries,
                stops,
                pending: pending.map(|(reason, at_ms)| PendingRef { reason, at_ms }),
                suspended_at_ms,
                at_ms,
            }),
        })
    }

    /// The length of the record's one encoding, computed without encoding it.
    fn encoded_len(&self) -> usize {
        fn s(s: &str) -> usize {
            varint_len(s.len() as u64) + s.len()
        }
        fn v(n: u64) -> usize {
            varint_len(n)
        }
        fn opt<T>(o: Option<T>, f: impl FnOnce(T) -> usize) -> usize {
            1 + o.map_or(0, f)
        }
        let (index, fields) = match *self {
            Wire::StartedV1 {
                key,
                session_id,
                generation,
                started_at_ms,
                meta,
            } => (
                0,
                s(key) + s(session_id) + v(generation) + v(started_at_ms) + opt(meta, s),
            ),
            Wire::Completed {
                key,
                generation,
                at_ms,
            } => (1, s(key) + v(generation) + v(at_ms)),
            Wire::Shutdown { at_ms } => (2, v(at_ms)),
            Wire::Recovered { at_ms } => (3, v(at_ms)),
            Wire::Retention {
                forget_before_ms,
                at_ms,
            } => (4, v(forget_before_ms) + v(at_ms)),
            Wire::Batch => (5, 0),
            Wire::Started {
                key,
                session_id,
                generation,
                nonce,
                started_at_ms,
                meta,
            } => (
                6,
                s(key) + s(session_id) + v(generation) + v(nonce) + v(started_at_ms) + opt(meta, s),
            ),
            Wire::Finished {
                key,
                generation,
                nonce,
                at_ms,
            } => (7, s(key) + v(generation) + v(nonce) + v(at_ms)),
            Wire::Promoted { key, reason, at_ms } => (8, s(key) + s(reason) + v(at_ms)),
            Wire::Suspended { key, at_ms } => (9, s(key) + v(at_ms)),
            Wire::Cleared { key, at_ms } => (10, s(key) + v(at_ms)),
            Wire::Progress {
                key,
                generation,
                nonce,
                meta,
                at_ms,
            } => (
                11,
                s(key) + v(generation) + v(nonce) + opt(meta, s) + v(at_ms),
            ),
            Wire::Adopted {
                key,
                session_id,
                generation,
                nonce,
                started_at_ms,
                meta,
                reason,
                recoveries,
                stops,
                pending,
                suspended_at_ms,
                at_ms,
            } => (
                12,
                s(key)
                    + s(session_id)
                    + v(generation)
                    + v(nonce)
                    + v(started_at_ms)
                    + opt(meta, s)
                    + v(reason as u64)
                    + v(recoveries.into())
                    + v(stops.into())
                    + opt(pending, |(r, at)| s(r) + v(at))
                    + opt(suspended_at_ms, v)
                    + v(at_ms),
            ),
        };
        varint_len(index) + fields
    }
}

/// The bytes of `n` as a postcard varint: 7 bits a byte.
fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros()).div_ceil(7) as usize
}

/// Checks a run's limits: its key, session id and meta.
pub(crate) fn validate_run(run: RunRef<'_>) -> Result<()> {
    validate_key(run.key)?;
    check_len("session_id", run.session_id, SESSION_ID_BYTES_MAX, run.key)?;
    if let Some(meta) = run.meta {
        check_len("meta", meta, META_BYTES_MAX, run.key)?;
    }
    Ok(())
}

/// Checks a resume-pending reason: non-empty, at most [`REASON_BYTES_MAX`] bytes.
pub(crate) fn validate_reason(reason: &str, key: &str) -> Result<()> {
    if reason.is_empty() {
        return Err(Error::InvalidInput {
            field: "reason",
            reason: "must not be empty".into(),
            key: Some(shorten(key)),
        });
    }
    check_len("reason", reason, REASON_BYTES_MAX, key)
}

/// Checks a key's limits: non-empty, at most [`KEY_BYTES_MAX`] bytes; else
/// [`Error::InvalidInput`] for field `key`. Every call that takes a key checks it so, before
/// anything is written.
///
/// ```
/// use inflight::event::validate_key;
/// assert!(validate_key("agent:main:telegram:dm:4242").is_ok());
/// assert!(validate_key("").is_err());
/// assert!(validate_key(&"k".repeat(1025)).is_err());
/// ```
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidInput {
            field: "key",
            reason: "must not be empty".into(),
            key: None,
        });
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(Error::InvalidInput {
            field: "key",
            reason: format!("is {} bytes, over the limit of {KEY_BYTES_MAX}", key.len()),
            key: Some(shorten(key)),
        });
    }
    Ok(())
}

/// Checks a time or a duration in seconds a caller gives (a float, as Python's `time.time()`
/// has it): finite and at least 0; else [`Error::InvalidInput`] for `field`, naming `key`.
///
/// ```
/// use inflight::event::validate_seconds;
/// assert_eq!(validate_seconds("window", 120.0, None)?, 120.0);
/// assert!(validate_seconds("window", -1.0, None).is_err());
/// assert!(validate_seconds("window", f64::INFINITY, None).is_err());
/// # Ok::<(), inflight::Error>(())
/// ```
pub fn validate_seconds(field: &'static str, seconds: f64, key: Option<&str>) -> Result<f64> {
    if seconds.is_finite() && seconds >= 0.0 {
        return Ok(seconds);
    }
    Err(Error::InvalidInput {
        field,
        reason: format!("is {seconds}; it must be a finite number of seconds, at least 0"),
        key: key.map(shorten),
    })
}

fn check_len(field: &'static str, value: &str, max: usize, key: &str) -> Result<()> {
    if value.len() > max {
        return Err(Error::InvalidInput {
            field,
            reason: format!("is {} bytes, over the limit of {max}", value.len()),
            key: Some(shorten(key)),
        });
    }
    Ok(())
}

/// A key cut to a length that fits in one line of an error message.
pub(crate) fn shorten(key: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 64;
    if key.chars().count() <= SHOWN_CHARS_MAX {
        key.to_string()
    } else {
        let head: String = key.chars().take(SHOWN_CHARS_MAX).collect();
        format!("{head}…")
    }
}

/// Encodes an event as a frame payload (postcard). Pure.
pub fn encode_event(event: &Event) -> Vec<u8> {
    // Serializing strings and integers into a Vec cannot fail.
    postcard::to_allocvec(&Wire::of(event.into())).expect("postcard encodes an event into a Vec")
}

/// Decodes a frame payload holding one event. `None` when the bytes are not exactly one valid
/// event within the limits, in the one encoding [`encode_event`] gives it; the caller treats
/// that as corruption. Pure.
pub fn decode_event(payload: &[u8]) -> Option<Event> {
    decode_event_ref(payload).map(|e| e.to_event())
}

/// [`decode_event`], borrowing the event's strings from `payload` instead of copying them.
#[inline]
pub fn decode_event_ref(payload: &[u8]) -> Option<EventRef<'_>> {
    match take_event(payload)? {
        (event, []) => Some(event),
        _ => None,
    }
}

/// One event from the front of `bytes`, in its one encoding and within the limits, and the bytes
/// after it.
fn take_event(bytes: &[u8]) -> Option<(EventRef<'_>, &[u8])> {
    let (wire, rest): (Wire, &[u8]) = postcard::take_from_bytes(bytes).ok()?;
    // postcard also reads a varint padded with 0x80 bytes, which no writer produces. Every other
    // part of an encoding has one form (a string's bytes, an option's 0 or 1, a varint's last
    // byte without bits above the type's width), so the bytes read are the one encoding exactly
    // when they are as long as it is.
    if wire.encoded_len() != bytes.len() - rest.len() {
        return None;
    }
    let event = wire.event()?;
    event.validate().is_ok().then_some((event, rest))
}

/// The first byte of a frame payload that holds a batch of events rather than one: the variant
/// index after the last event's.
pub const BATCH_TAG: u8 = 5;

/// The payload of a frame holding `events`: the one event's encoding for a single event;
/// otherwise a batch: [`BATCH_TAG`], the number of events as a varint, then each event's
/// encoding ([`encode_event`]), back to back. `encoded` holds each event's encoding. Pure.
///
/// # Panics
/// If `encoded` is empty.
pub fn encode_payload<'a>(encoded: &[&'a [u8]]) -> std::borrow::Cow<'a, [u8]> {
    match encoded {
        [] => panic!("a frame holds at least one event"),
        [one] => std::borrow::Cow::Borrowed(one),
        many => {
            let len: usize = many.iter().map(|e| e.len()).sum();
            let mut out = Vec::with_capacity(len + 11);
            out.push(BATCH_TAG);
            let mut n = many.len() as u64;
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
            for e in many {
                out.extend_from_slice(e);
            }
            std::borrow::Cow::Owned(out)
        }
    }
}

/// The size of the batch payload of events whose encodings total `encoded_bytes`: what
/// [`encode_payload`] adds for `events` events (none for one).
pub fn payload_bytes(events: usize, encoded_bytes: usize) -> usize {
    if events <= 1 {
        return encoded_bytes;
    }
    let varint = (usize::BITS - events.leading_zeros()).div_ceil(7) as usize;
    1 + varint + encoded_bytes
}

/// Decodes a frame payload, one event or a batch of 2 to [`BATCH_EVENTS_MAX`] events (each
/// exactly as [`decode_event`] reads it, with nothing left over), and hands each event, with
/// its encoding, to `visit` in order. Returns whether the payload was valid: when it is not,
/// `visit` is never called (the caller treats it as corruption). A batch is checked whole
/// before its first event is handed out, and its events are decoded one at a time, so the
/// memory used stays within a small multiple of the payload's size. Pure.
///
/// [`BATCH_EVENTS_MAX`]: crate::limits::BATCH_EVENTS_MAX
#[inline]
pub fn decode_payload_with<'a>(
    payload: &'a [u8],
    mut visit: impl FnMut(EventRef<'a>, &'a [u8]),
) -> bool {
    decode_payload_indexed(payload, |event, bytes, _| visit(event, bytes))
}

/// Where an event stands in its payload: its index, and how many events the payload holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InPayload {
    /// The event's index, from 0.
    pub index: usize,
    /// The payload's events: 1, or a batch's count.
    pub count: usize,
}

/// [`decode_payload_with`], telling `visit` also where each event stands in the payload (known
/// before the first is handed out, since a batch is checked whole first). Pure.
#[inline]
pub fn decode_payload_indexed<'a>(
    payload: &'a [u8],
    mut visit: impl FnMut(EventRef<'a>, &'a [u8], InPayload),
) -> bool {
    let Some(events) = batch_events(payload) else {
        return match decode_event_ref(payload) {
            Some(event) => {
                visit(event, payload, InPayload { index: 0, count: 1 });
                true
            }
            None => false,
        };
    };
    // Once to check every event, once to hand them out.
    if events.clone().any(|e| e.is_none()) {
        return false;
    }
    let count = events.left as usize;
    for (index, (event, bytes)) in events.flatten().enumerate() {
        visit(event, bytes, InPayload { index, count });
    }
    true
}

/// The events of a batch payload, each `None` where the bytes are not a valid event (and
/// nothing after it), or `None` when the payload is not a batch with a valid count (one event,
/// or not valid at all). The iterator also checks that nothing is left over.
fn batch_events(payload: &[u8]) -> Option<BatchEvents<'_>> {
    let (&BATCH_TAG, rest) = payload.split_first()? else {
        return None;
    };
    let Ok((count, rest)) = postcard::take_from_bytes::<u64>(rest) else {
        return Some(BatchEvents::invalid());
    };
    // The count in its shortest form, as the writer gives it, and within the bounds.
    if payload_bytes(count as usize, 0) != payload.len() - rest.len()
        || !(2..=crate::limits::BATCH_EVENTS_MAX as u64).contains(&count)
    {
        return Some(BatchEvents::invalid());
    }
    Some(BatchEvents {
        rest,
        left: count,
        failed: false,
    })
}

/// The events of a batch, decoded one at a time.
#[derive(Clone)]
struct BatchEvents<'a> {
    rest: &'a [u8],
    left: u64,
    failed: bool,
}

impl BatchEvents<'_> {
    fn invalid() -> BatchEvents<'static> {
        BatchEvents {
            rest: &[],
            left: 0,
            failed: true,
        }
    }
}

impl<'a> Iterator for BatchEvents<'a> {
    type Item = Option<(EventRef<'a>, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            // Reported once, then done.
            self.failed = false;
            self.left = 0;
            return Some(None);
        }
        if self.left == 0 {
            return (!self.rest.is_empty()).then(|| {
                self.rest = &[];
                None
            });
        }
        self.left -= 1;
        let decoded = take_event(self.rest).map(|(event, after)| {
            let used = &self.rest[..self.rest.len() - after.len()];
            self.rest = after;
            (event, used)
        });
        if decoded.is_none() {
            self.left = 0;
            self.rest = &[];
        }
        Some(decoded)
    }
}

/// [`decode_payload_with`], collecting the events: for tests and tools with small payloads (it
/// allocates a whole event for each one).
pub fn decode_payload(payload: &[u8]) -> Option<Vec<Event>> {
    let mut events = Vec::new();
    decode_payload_with(payload, |e, _| events.push(e.to_event())).then_some(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::RECORD_BYTES_MAX;

    #[test]
    fn worst_case_event_fits_a_record() {
        let run = Run::new(
            "k".repeat(KEY_BYTES_MAX),
            "s".repeat(SESSION_ID_BYTES_MAX),
            Generation(u64::MAX),
            UnixMs(u64::MAX),
        )
        .with_meta("m".repeat(META_BYTES_MAX));
        let bytes = encode_event(&Event::Started(run));
        assert!(bytes.len() <= RECORD_BYTES_MAX, "{} bytes", bytes.len());
    }

    #[test]
    fn events_round_trip_and_trailing_bytes_are_rejected() {
        let events = [
            Event::Started(Run::new("a", "s1", Generation(3), UnixMs(10)).with_meta("{\"m\":1}")),
            Event::Completed {
                key: "a".into(),
                generation: 3,
                at_ms: 11,
            },
            Event::Shutdown { at_ms: 12 },
        ];
        for event in events {
            let mut bytes = encode_event(&event);
            assert_eq!(decode_event(&bytes), Some(event));
            bytes.push(0);
            assert_eq!(decode_event(&bytes), None);
        }
    }

    #[test]
    fn only_the_shortest_encoding_of_an_event_decodes() {
        let event = Event::Shutdown { at_ms: 100 };
        assert_eq!(encode_event(&event), [2, 100]);
        assert_eq!(decode_event(&[2, 100]), Some(event));
        // The same integers padded with continuation bytes: postcard reads them, the log not.
        assert_eq!(decode_event(&[2, 0xe4, 0x00]), None);
        assert_eq!(decode_event(&[0x82, 0x00, 100]), None);
    }

    use proptest::prelude::Strategy as _;

    /// Every kind of event, its integers as given (`a`, `b`) and its strings from `key`,
    /// `session` and `meta`.
    fn event_of(
        variant: u8,
        key: &str,
        session: &str,
        meta: Option<String>,
        a: u64,
        b: u64,
    ) -> Event {
        let run = Run {
            key: key.to_string(),
            session_id: session.to_string(),
            generation: a,
            started_at_ms: b,
            meta: meta.clone(),
            nonce: 0,
        };
        let nonce = b | 1;
        match variant {
            0 => Event::Started(run),
            1 => Event::Completed {
                key: key.into(),
                generation: a,
                at_ms: b,
            },
            2 => Event::Shutdown { at_ms: a },
            3 => Event::Recovered { at_ms: a },
            4 => Event::Retention {
                forget_before_ms: a,
                at_ms: b,
            },
            5 => Event::Started(Run { nonce, ..run }),
            6 => Event::Finished {
                key: key.into(),
                generation: a,
                nonce: b,
                at_ms: a ^ b,
            },
            7 => Event::Promoted {
                key: key.into(),
                reason: session.chars().take(20).collect::<String>() + "r",
                at_ms: a,
            },
            8 => Event::Suspended {
                key: key.into(),
                at_ms: a,
            },
            9 => Event::Cleared {
                key: key.into(),
                at_ms: b,
            },
            10 => Event::Progress {
                key: key.into(),
                generation: a,
                nonce: b,
                meta,
                at_ms: a / 3,
            },
            _ => Event::Adopted(Adoption {
                run: Run { nonce, ..run },
                reason: if a.is_multiple_of(2) {
                    Reason::Crash
                } else {
                    Reason::Shutdown
                },
                recoveries: (a >> 32) as u32,
                stops: b as u32,
                pending: (!b.is_multiple_of(3)).then(|| Pending {
                    reason: "restart_interrupted".into(),
                    at_ms: a,
                }),
                suspended_at_ms: b.is_multiple_of(5).then_some(b),
                at_ms: a.wrapping_add(b),
            }),
        }
    }

    proptest::proptest! {
        /// The length the decoder checks against is the length of the one encoding, for every
        /// kind of event and every width of its integers, and a padded integer is refused.
        #[test]
        fn the_computed_length_is_the_encodings_and_padding_is_refused(
            variant in 0u8..12,
            key in "[a-z]{1,200}",
            session in ".{0,40}",
            meta in proptest::option::of(".{0,300}"),
            a in proptest::prelude::any::<u64>().prop_map(|n| n >> (n % 64)),
            b in proptest::prelude::any::<u64>().prop_map(|n| n >> (n % 64)),
        ) {
            let event = event_of(variant, &key, &session, meta, a, b);
            let bytes = encode_event(&event);
            proptest::prop_assert_eq!(Wire::of((&event).into()).encoded_len(), bytes.len());
            proptest::prop_assert_eq!(decode_event(&bytes), Some(event.clone()));
            // The same event with its last varint padded by a continuation byte (the same
            // value, one byte longer) is refused; so is the event with a byte cut off.
            let end = bytes.len() - 1;
            let mut padded = bytes.clone();
            padded[end] |= 0x80;
            padded.push(0);
            proptest::prop_assert_eq!(decode_event(&padded), None);
            proptest::prop_assert_eq!(decode_event(&bytes[..end]), None);
        }
    }

    #[test]
    fn a_start_has_one_encoding_with_or_without_a_nonce() {
        let legacy = Run::new("k", "s", Generation(1), UnixMs(2));
        assert_eq!(encode_event(&Event::Started(legacy.clone()))[0], 0);
        let with = Run {
            nonce: 9,
            ..legacy.clone()
        };
        let bytes = encode_event(&Event::Started(with.clone()));
        assert_eq!(bytes[0], 6);
        assert_eq!(decode_event(&bytes), Some(Event::Started(with)));
        // Variant 6 with nonce 0 is variant 0's event written another way: not an event.
        let mut zero = bytes.clone();
        // key "k", session "s", generation 1, then the nonce's one byte.
        assert_eq!(zero[1..7], [1, b'k', 1, b's', 1, 9]);
        zero[6] = 0;
        assert_eq!(decode_event(&zero), None);
        // Index 5 is a batch's tag, never an event.
        assert_eq!(decode_event(&[5]), None);
        // An empty reason, or one over the limit, is refused on both sides.
        let promoted = |reason: &str| Event::Promoted {
            key: "k".into(),
            reason: reason.into(),
            at_ms: 1,
        };
        for reason in ["", &"r".repeat(REASON_BYTES_MAX + 1)] {
            assert!(promoted(reason).validate().is_err());
            assert_eq!(decode_event(&encode_event(&promoted(reason))), None);
        }
        assert!(promoted(&"r".repeat(REASON_BYTES_MAX)).validate().is_ok());
    }

    #[test]
    fn a_token_reads_back_and_nothing_else_reads_as_one() {
        let token = Token {
            generation: u64::MAX,
            nonce: 1,
        };
        assert_eq!(token.to_string().parse::<Token>(), Ok(token));
        for not in [
            "",
            "0",
            &"0".repeat(31),
            &"0".repeat(33),
            &"A".repeat(32),
            &"g".repeat(32),
            "+000000000000001000000000000000a",
            "é0000000000000000000000000000000",
        ] {
            assert_eq!(not.parse::<Token>(), Err(NotAToken), "{not:?}");
        }
    }

    #[test]
    fn a_batch_payload_round_trips_and_only_its_one_encoding_decodes() {
        let events = [
            Event::Started(Run::new("a", "s", Generation(1), UnixMs(2))),
            Event::Completed {
                key: "a".into(),
                generation: 1,
                at_ms: 3,
            },
            Event::Shutdown { at_ms: 4 },
        ];
        let encoded: Vec<Vec<u8>> = events.iter().map(encode_event).collect();
        let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let batch = encode_payload(&parts).into_owned();
        assert_eq!(batch[..2], [BATCH_TAG, 3]);
        assert_eq!(
            batch.len(),
            payload_bytes(3, encoded.iter().map(Vec::len).sum())
        );
        assert_eq!(decode_payload(&batch).unwrap(), events);
        // One event is its own encoding, never a batch of one.
        assert_eq!(encode_payload(&parts[..1]), parts[0]);
        assert_eq!(decode_payload(parts[0]).unwrap(), events[..1]);
        let mut of_one = vec![BATCH_TAG, 1];
        of_one.extend_from_slice(parts[0]);
        assert_eq!(decode_payload(&of_one), None);
        // A count padded, a count that does not match, trailing bytes: not a batch.
        let mut padded = vec![BATCH_TAG, 0x83, 0x00];
        padded.extend_from_slice(&batch[2..]);
        assert_eq!(decode_payload(&padded), None);
        let mut short = batch.clone();
        short[1] = 4;
        assert_eq!(decode_payload(&short), None);
        let mut trailing = batch.clone();
        trailing.push(0);
        assert_eq!(decode_payload(&trailing), None);
        // A batch inside a batch is not an event.
        let mut nested = vec![BATCH_TAG, 2];
        nested.extend_from_slice(&batch);
        nested.extend_from_slice(parts[0]);
        assert_eq!(decode_payload(&nested), None);
    }

    #[test]
    fn decoded_events_must_respect_the_limits() {
        let long = Event::Completed {
            key: "k".repeat(KEY_BYTES_MAX + 1),
            generation: 1,
            at_ms: 1,
        };
        assert!(long.validate().is_err());
        assert_eq!(decode_event(&encode_event(&long)), None);
    }

    /// docs/FORMAT.md states these rules; a second reader must agree.
    #[test]
    fn varints_follow_the_documented_rules() {
        let shutdown = |at_ms| Some(Event::Shutdown { at_ms });
        assert_eq!(decode_event(&[2, 5]), shutdown(5));
        // Only the shortest form is accepted: each event has exactly one encoding.
        assert_eq!(decode_event(&[2, 0x80, 0x00]), None);
        assert_eq!(decode_event(&[0x82, 0x00, 5]), None);
        // A u64 is at most 10 bytes, the tenth at most 1.
        let mut max = vec![2];
        max.extend([0xff; 9]);
        max.push(0x01);
        assert_eq!(decode_event(&max), shutdown(u64::MAX));
        *max.last_mut().unwrap() = 0x02;
        assert_eq!(decode_event(&max), None);
        // The log's own records (format version 2), and an unknown variant index.
        assert_eq!(decode_event(&[3, 7]), Some(Event::Recovered { at_ms: 7 }));
        assert_eq!(
            decode_event(&[4, 5, 7]),
            Some(Event::Retention {
                forget_before_ms: 5,
                at_ms: 7
            })
        );
        assert_eq!(decode_event(&[5, 0]), None);
    }
}
