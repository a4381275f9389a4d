//! The vocabulary: a run, the three events a gateway records, and the two records the log
//! writes itself.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits::{KEY_BYTES_MAX, META_BYTES_MAX, SESSION_ID_BYTES_MAX};

/// One agent run: what a gateway needs back after a crash to resume or suspend it.
///
/// The field order is part of the on-disk format (see docs/FORMAT.md).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Run {
    /// The session's stable routing key, e.g. `agent:main:telegram:dm:4242`. Non-empty, at
    /// most [`KEY_BYTES_MAX`] bytes.
    pub key: String,
    /// The transcript id of the conversation the run belongs to. At most
    /// [`SESSION_ID_BYTES_MAX`] bytes.
    pub session_id: String,
    /// Bumped by the gateway for every run it begins on `key`; monotonic per key.
    pub generation: u64,
    /// When the run started, in milliseconds since the Unix epoch (the gateway's clock).
    pub started_at_ms: u64,
    /// A small opaque payload the gateway wants back after a crash (often JSON). At most
    /// [`META_BYTES_MAX`] bytes.
    pub meta: Option<String>,
}

impl Run {
    /// A run with no `meta`. The generation and the start time are wrapped in their own types,
    /// so the two numbers cannot be swapped by mistake:
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
        }
    }

    /// The same run carrying `meta`.
    pub fn with_meta(mut self, meta: impl Into<String>) -> Run {
        self.meta = Some(meta.into());
        self
    }
}

/// A run's generation: bumped by the gateway for every run it begins on a key, monotonic per
/// key. A type of its own where a generation and a time would otherwise sit side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Generation(pub u64);

/// A time in milliseconds since the Unix epoch. A type of its own where a time and a generation
/// would otherwise sit side by side. Give milliseconds on the clock the log uses (the system's,
/// by default): retention compares these times with the log's clock, so seconds, or times from
/// another epoch, would make every idle mark look years old and forgotten at the next
/// compaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMs(pub u64);

/// What the log records. Variant order is part of the on-disk format.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    /// A run began (or was re-begun under a higher generation).
    Started(Run),
    /// The run of `key` with `generation` finished.
    Completed {
        /// The run's key.
        key: String,
        /// The generation that finished.
        generation: u64,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The process exited cleanly; runs still in flight were interrupted by the shutdown.
    Shutdown {
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// Written by the log itself: a read-write open found runs in flight. Every run then
    /// interrupted by a crash counts one more consecutive recovery (see
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
}

impl Event {
    /// The event's timestamp: a start's `started_at_ms`, otherwise `at_ms`.
    pub fn at_ms(&self) -> u64 {
        match self {
            Event::Started(run) => run.started_at_ms,
            Event::Completed { at_ms, .. }
            | Event::Shutdown { at_ms }
            | Event::Recovered { at_ms }
            | Event::Retention { at_ms, .. } => *at_ms,
        }
    }

    /// True for the records the log writes itself ([`Event::Recovered`], [`Event::Retention`]);
    /// [`Log::record`](crate::Log::record) refuses them.
    pub fn is_internal(&self) -> bool {
        matches!(self, Event::Recovered { .. } | Event::Retention { .. })
    }

    /// The key the event concerns, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Event::Started(run) => Some(&run.key),
            Event::Completed { key, .. } => Some(key),
            Event::Shutdown { .. } | Event::Recovered { .. } | Event::Retention { .. } => None,
        }
    }

    /// Checks every limit of [`crate::limits`]. Called before an event is written and after one
    /// is read back, so both sides of the disk hold the same invariants.
    pub fn validate(&self) -> Result<()> {
        EventRef::from(self).validate()
    }
}

/// A [`Run`] as decoded from a record, borrowing its strings from the record's bytes: replay
/// reads millions of records, and only the runs that go into the running set are copied.
/// Encodes exactly as the [`Run`] with the same fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(borrow)]
    pub meta: Option<&'a str>,
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
        }
    }
}

/// An [`Event`] as decoded from a record, borrowing its strings from the record's bytes (see
/// [`decode_payload_with`]). Variant for variant the same as [`Event`], and encodes exactly as
/// it does; [`EventRef::to_event`] gives the owned event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventRef<'a> {
    /// See [`Event::Started`].
    Started(#[serde(borrow)] RunRef<'a>),
    /// See [`Event::Completed`].
    Completed {
        /// The run's key.
        key: &'a str,
        /// The generation that finished.
        generation: u64,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// See [`Event::Shutdown`].
    Shutdown {
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// See [`Event::Recovered`].
    Recovered {
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// See [`Event::Retention`].
    Retention {
        /// Marks whose latest event is older than this are dropped.
        forget_before_ms: u64,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
}

impl EventRef<'_> {
    /// The event, owned.
    pub fn to_event(&self) -> Event {
        match *self {
            EventRef::Started(run) => Event::Started(run.to_run()),
            EventRef::Completed {
                key,
                generation,
                at_ms,
            } => Event::Completed {
                key: key.to_string(),
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
        }
    }

    /// The event's timestamp: a start's `started_at_ms`, otherwise `at_ms`.
    pub fn at_ms(&self) -> u64 {
        match *self {
            EventRef::Started(run) => run.started_at_ms,
            EventRef::Completed { at_ms, .. }
            | EventRef::Shutdown { at_ms }
            | EventRef::Recovered { at_ms }
            | EventRef::Retention { at_ms, .. } => at_ms,
        }
    }

    /// The key the event concerns, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            EventRef::Started(run) => Some(run.key),
            EventRef::Completed { key, .. } => Some(key),
            EventRef::Shutdown { .. } | EventRef::Recovered { .. } | EventRef::Retention { .. } => {
                None
            }
        }
    }

    /// Checks every limit of [`crate::limits`] (see [`Event::validate`]).
    pub fn validate(&self) -> Result<()> {
        match *self {
            EventRef::Started(run) => validate_run(run),
            EventRef::Completed { key, .. } => validate_key(key),
            EventRef::Shutdown { .. } | EventRef::Recovered { .. } | EventRef::Retention { .. } => {
                Ok(())
            }
        }
    }

    /// The length of the event's one encoding ([`encode_event`]), computed without encoding it.
    fn encoded_len(&self) -> usize {
        fn str_len(s: &str) -> usize {
            varint_len(s.len() as u64) + s.len()
        }
        // The variant index is a varint too, one byte for each of these.
        1 + match *self {
            EventRef::Started(run) => {
                str_len(run.key)
                    + str_len(run.session_id)
                    + varint_len(run.generation)
                    + varint_len(run.started_at_ms)
                    + 1
                    + run.meta.map_or(0, str_len)
            }
            EventRef::Completed {
                key,
                generation,
                at_ms,
            } => str_len(key) + varint_len(generation) + varint_len(at_ms),
            EventRef::Shutdown { at_ms } | EventRef::Recovered { at_ms } => varint_len(at_ms),
            EventRef::Retention {
                forget_before_ms,
                at_ms,
            } => varint_len(forget_before_ms) + varint_len(at_ms),
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
        }
    }
}

impl<'a> From<&EventRef<'a>> for EventRef<'a> {
    fn from(event: &EventRef<'a>) -> EventRef<'a> {
        *event
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
    // Serializing owned strings and integers into a Vec cannot fail.
    postcard::to_allocvec(event).expect("postcard encodes an Event into a Vec")
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
    let (event, rest): (EventRef, &[u8]) = postcard::take_from_bytes(bytes).ok()?;
    // postcard also reads a varint padded with 0x80 bytes, which no writer produces. Every other
    // part of an encoding has one form (a string's bytes, an option's 0 or 1, a varint's last
    // byte without bits above the type's width), so the bytes read are the one encoding exactly
    // when they are as long as it is.
    (event.encoded_len() == bytes.len() - rest.len() && event.validate().is_ok())
        .then_some((event, rest))
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

    proptest::proptest! {
        /// The length the decoder checks against is the length of the one encoding, for every
        /// shape of event and every width of its integers, and a padded integer is refused.
        #[test]
        fn the_computed_length_is_the_encodings_and_padding_is_refused(
            variant in 0u8..5,
            key in "[a-z]{1,200}",
            session in ".{0,40}",
            meta in proptest::option::of(".{0,300}"),
            a in proptest::prelude::any::<u64>().prop_map(|n| n >> (n % 64)),
            b in proptest::prelude::any::<u64>().prop_map(|n| n >> (n % 64)),
        ) {
            let event = match variant {
                0 => Event::Started(Run { key: key.clone(), session_id: session, generation: a, started_at_ms: b, meta }),
                1 => Event::Completed { key: key.clone(), generation: a, at_ms: b },
                2 => Event::Shutdown { at_ms: a },
                3 => Event::Recovered { at_ms: a },
                _ => Event::Retention { forget_before_ms: a, at_ms: b },
            };
            let bytes = encode_event(&event);
            proptest::prop_assert_eq!(EventRef::from(&event).encoded_len(), bytes.len());
            proptest::prop_assert_eq!(decode_event(&bytes), Some(event.clone()));
            // The same event with one varint padded by a continuation byte (the same value, one
            // byte longer): the last integer, or a start's generation.
            let end = match &event {
                Event::Started(run) => {
                    1 + varint_len(run.key.len() as u64) + run.key.len()
                        + varint_len(run.session_id.len() as u64) + run.session_id.len()
                        + varint_len(run.generation) - 1
                }
                _ => bytes.len() - 1,
            };
            let mut padded = bytes.clone();
            padded[end] |= 0x80;
            padded.insert(end + 1, 0);
            proptest::prop_assert_eq!(decode_event(&padded), None);
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
