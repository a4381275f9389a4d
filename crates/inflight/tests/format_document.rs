//! The on-disk format document (docs/FORMAT.md) is complete: a second reader,
//! written from that section alone (module `doc`), replays every damaged log below exactly as
//! `inflight::inspect::read_only` does, under both policies.
//!
//! The module `doc` uses nothing of the crate: its CRC-32, header and frame decoding, payload
//! decoding (varints, strings, options, enum index), snapshot reading (with a JSON parser) and
//! fold follow the document's words. The tests build logs with the real writer and with `doc`'s
//! encoder, damage them in each edge case the document describes, and compare the two readers
//! field by field.

use std::path::Path;

use inflight::Opened;
use inflight::{Error, Log, Options, Policy, Run};
use inflight::{Generation, UnixMs};

/// An independent reader of the format, from the document alone.
mod doc {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::value::RawValue;

    pub const HEADER: usize = 64;
    pub const FRAME_HEADER: usize = 16;
    pub const MAX_PAYLOAD: usize = 8192;

    /// CRC-32, IEEE: reflected 0xEDB88320, initial 0xFFFFFFFF, final XOR 0xFFFFFFFF.
    pub fn crc32(parts: &[&[u8]]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for part in parts {
            for &b in *part {
                crc ^= b as u32;
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        (crc >> 1) ^ 0xEDB8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
        }
        crc ^ 0xFFFF_FFFF
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    // ----- encoding, by the document: used by the tests to craft logs -----

    pub struct Header {
        pub version: u32,
        pub number: u64,
        pub base: u64,
        pub salt: u64,
        pub log_created: u64,
        pub segment_created: u64,
    }

    /// A header with a checksum over whatever bytes 0..60 hold.
    pub fn encode_header(h: &Header) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER);
        b.extend_from_slice(b"INFLIGHT");
        b.extend_from_slice(&h.version.to_le_bytes());
        b.extend_from_slice(&64u32.to_le_bytes());
        b.extend_from_slice(&h.number.to_le_bytes());
        b.extend_from_slice(&h.base.to_le_bytes());
        b.extend_from_slice(&h.salt.to_le_bytes());
        b.extend_from_slice(&h.log_created.to_le_bytes());
        b.extend_from_slice(&h.segment_created.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        reseal_header(&mut b);
        b
    }

    /// Recomputes the header checksum (bytes 60..64) over bytes 0..60.
    pub fn reseal_header(b: &mut [u8]) {
        let c = crc32(&[&b[..60]]);
        b[60..64].copy_from_slice(&c.to_le_bytes());
    }

    pub fn encode_frame(salt: u64, seq: u64, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let c = crc32(&[
            &salt.to_le_bytes(),
            &len.to_le_bytes(),
            &seq.to_le_bytes(),
            payload,
        ]);
        let mut b = Vec::with_capacity(FRAME_HEADER + payload.len());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&c.to_le_bytes());
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(payload);
        b
    }

    pub fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    pub fn string(s: &[u8], out: &mut Vec<u8>) {
        varint(s.len() as u64, out);
        out.extend_from_slice(s);
    }

    pub fn started(key: &str, session: &str, g: u64, at: u64, meta: Option<&str>) -> Vec<u8> {
        let mut b = Vec::new();
        varint(0, &mut b);
        string(key.as_bytes(), &mut b);
        string(session.as_bytes(), &mut b);
        varint(g, &mut b);
        varint(at, &mut b);
        match meta {
            None => b.push(0),
            Some(m) => {
                b.push(1);
                string(m.as_bytes(), &mut b);
            }
        }
        b
    }

    pub fn completed(key: &str, g: u64, at: u64) -> Vec<u8> {
        let mut b = Vec::new();
        varint(1, &mut b);
        string(key.as_bytes(), &mut b);
        varint(g, &mut b);
        varint(at, &mut b);
        b
    }

    pub fn shutdown(at: u64) -> Vec<u8> {
        let mut b = Vec::new();
        varint(2, &mut b);
        varint(at, &mut b);
        b
    }

    pub fn recovered(at: u64) -> Vec<u8> {
        let mut b = Vec::new();
        varint(3, &mut b);
        varint(at, &mut b);
        b
    }

    pub fn retention(forget_before: u64, at: u64) -> Vec<u8> {
        let mut b = Vec::new();
        varint(4, &mut b);
        varint(forget_before, &mut b);
        varint(at, &mut b);
        b
    }

    /// An option of string: `0`, or `1` and the string.
    fn option_string(s: Option<&str>, out: &mut Vec<u8>) {
        match s {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                string(s.as_bytes(), out);
            }
        }
    }

    /// Event 6, a start with a nonce. Any nonce is encoded, 0 included, so that a test can
    /// craft the form the document calls invalid.
    pub fn started_with_nonce(
        key: &str,
        session: &str,
        g: u64,
        nonce: u64,
        at: u64,
        meta: Option<&str>,
    ) -> Vec<u8> {
        let mut b = Vec::new();
        varint(6, &mut b);
        string(key.as_bytes(), &mut b);
        string(session.as_bytes(), &mut b);
        varint(g, &mut b);
        varint(nonce, &mut b);
        varint(at, &mut b);
        option_string(meta, &mut b);
        b
    }

    /// Event 7, `Finished`: key, generation, nonce, at ms.
    pub fn finished(key: &str, g: u64, nonce: u64, at: u64) -> Vec<u8> {
        let mut b = Vec::new();
        varint(7, &mut b);
        string(key.as_bytes(), &mut b);
        varint(g, &mut b);
        varint(nonce, &mut b);
        varint(at, &mut b);
        b
    }

    /// Event 8, `Promoted`: key, reason, at ms. The reason is bytes, so that a test can craft
    /// one out of the limits.
    pub fn promoted(key: &str, reason: &[u8], at: u64) -> Vec<u8> {
        let mut b = Vec::new();
        varint(8, &mut b);
        string(key.as_bytes(), &mut b);
        string(reason, &mut b);
        varint(at, &mut b);
        b
    }

    /// Event 9, `Suspended`: key, at ms.
    pub fn suspended(key: &str, at: u64) -> Vec<u8> {
        let mut b = Vec::new();
        varint(9, &mut b);
        string(key.as_bytes(), &mut b);
        varint(at, &mut b);
        b
    }

    /// Event 10, `Cleared`: key, at ms.
    pub fn cleared(key: &str, at: u64) -> Vec<u8> {
        let mut b = Vec::new();
        varint(10, &mut b);
        string(key.as_bytes(), &mut b);
        varint(at, &mut b);
        b
    }

    /// Event 11, `Progress`: key, generation, nonce, meta (option of string), at ms.
    pub fn progress(key: &str, g: u64, nonce: u64, meta: Option<&str>, at: u64) -> Vec<u8> {
        let mut b = Vec::new();
        varint(11, &mut b);
        string(key.as_bytes(), &mut b);
        varint(g, &mut b);
        varint(nonce, &mut b);
        option_string(meta, &mut b);
        varint(at, &mut b);
        b
    }

    /// The fields of event 12, `Adopted`, in the table's order. `reason`, `crashes` and
    /// `stops` are u32 fields, held wider here so that a test can craft one out of range.
    #[derive(Default)]
    pub struct Adopt<'a> {
        pub key: &'a str,
        pub session: &'a str,
        pub generation: u64,
        pub nonce: u64,
        pub started_at: u64,
        pub meta: Option<&'a str>,
        pub reason: u64,
        pub crashes: u64,
        pub stops: u64,
        pub pending: Option<(&'a [u8], u64)>,
        pub suspended_at: Option<u64>,
        pub at: u64,
    }

    pub fn adopted(a: &Adopt<'_>) -> Vec<u8> {
        let mut b = Vec::new();
        varint(12, &mut b);
        string(a.key.as_bytes(), &mut b);
        string(a.session.as_bytes(), &mut b);
        varint(a.generation, &mut b);
        varint(a.nonce, &mut b);
        varint(a.started_at, &mut b);
        option_string(a.meta, &mut b);
        varint(a.reason, &mut b);
        varint(a.crashes, &mut b);
        varint(a.stops, &mut b);
        match a.pending {
            None => b.push(0),
            Some((reason, at)) => {
                b.push(1);
                string(reason, &mut b);
                varint(at, &mut b);
            }
        }
        match a.suspended_at {
            None => b.push(0),
            Some(at) => {
                b.push(1);
                varint(at, &mut b);
            }
        }
        varint(a.at, &mut b);
        b
    }

    // ----- decoding the payload -----

    /// The fields of event 12 after its key, as the table lists them.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Adoption {
        pub session: String,
        pub generation: u64,
        pub nonce: u64,
        pub started_at: u64,
        pub meta: Option<String>,
        /// `0` crash or `1` shutdown.
        pub reason: u32,
        pub crashes: u32,
        pub stops: u32,
        pub pending: Option<PendingState>,
        pub suspended_at: Option<u64>,
    }

    #[derive(Clone, Debug, PartialEq)]
    pub enum Event {
        /// Events 0 and 6: a start; event 0 has no nonce (0), event 6 one that is not 0.
        Started {
            key: String,
            session: String,
            generation: u64,
            nonce: u64,
            at: u64,
            meta: Option<String>,
        },
        /// Event 1: a completion by generation.
        Completed {
            key: String,
            generation: u64,
            at: u64,
        },
        Shutdown {
            at: u64,
        },
        Recovered {
            at: u64,
        },
        Retention {
            forget_before: u64,
            at: u64,
        },
        /// Event 7: an exact completion, by generation and nonce.
        Finished {
            key: String,
            generation: u64,
            nonce: u64,
            at: u64,
        },
        /// Event 8.
        Promoted {
            key: String,
            reason: String,
            at: u64,
        },
        /// Event 9.
        Suspended {
            key: String,
            at: u64,
        },
        /// Event 10.
        Cleared {
            key: String,
            at: u64,
        },
        /// Event 11.
        Progress {
            key: String,
            generation: u64,
            nonce: u64,
            meta: Option<String>,
            at: u64,
        },
        /// Event 12; `at` is its last field.
        Adopted {
            key: String,
            adoption: Box<Adoption>,
            at: u64,
        },
    }

    impl Event {
        /// The event's timestamp: `started at ms` (events 0 and 6), or `at ms` (not
        /// `forget before ms`; an adoption's last field).
        pub fn at(&self) -> u64 {
            match self {
                Event::Started { at, .. }
                | Event::Completed { at, .. }
                | Event::Shutdown { at }
                | Event::Recovered { at }
                | Event::Retention { at, .. }
                | Event::Finished { at, .. }
                | Event::Promoted { at, .. }
                | Event::Suspended { at, .. }
                | Event::Cleared { at, .. }
                | Event::Progress { at, .. }
                | Event::Adopted { at, .. } => *at,
            }
        }
    }

    struct Cursor<'a> {
        b: &'a [u8],
        pos: usize,
    }

    impl Cursor<'_> {
        fn byte(&mut self) -> Option<u8> {
            let v = *self.b.get(self.pos)?;
            self.pos += 1;
            Some(v)
        }

        /// An unsigned LEB128 varint of at most `max_bytes` bytes, whose tenth byte (a u64's
        /// last) is at most 0x01 and fifth (a u32's last) at most 0x0F, in its shortest form
        /// (a last byte of 0 after others means it was longer than it needed to be).
        fn varint(&mut self, max_bytes: usize) -> Option<u64> {
            let mut v = 0u64;
            for i in 0..max_bytes {
                let byte = self.byte()?;
                if (i == 9 && byte > 0x01) || (max_bytes == 5 && i == 4 && byte > 0x0f) {
                    return None;
                }
                v |= ((byte & 0x7f) as u64) << (7 * i);
                if byte & 0x80 == 0 {
                    return (i == 0 || byte != 0).then_some(v);
                }
            }
            None
        }

        fn u64(&mut self) -> Option<u64> {
            self.varint(10)
        }

        /// The variant index and the fields marked u32: at most 5 bytes.
        fn u32(&mut self) -> Option<u32> {
            self.varint(5).map(|v| v as u32)
        }

        fn string(&mut self) -> Option<String> {
            let len = self.u64()? as usize;
            let end = self.pos.checked_add(len)?;
            let bytes = self.b.get(self.pos..end)?;
            self.pos = end;
            String::from_utf8(bytes.to_vec()).ok()
        }

        /// An option: `0` none, `1` then the value, any other byte invalid.
        fn option<T>(&mut self, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
            match self.byte()? {
                0 => Some(None),
                1 => Some(Some(value(self)?)),
                _ => None,
            }
        }
    }

    /// Key 1..=1024 bytes, session id at most 256 bytes, meta at most 4096 bytes.
    fn within_limits(key: &str, session: Option<&str>, meta: Option<&str>) -> bool {
        (1..=1024).contains(&key.len())
            && session.is_none_or(|s| s.len() <= 256)
            && meta.is_none_or(|m| m.len() <= 4096)
    }

    /// A reason (event 8's, event 12's pending one, a snapshot's pending one): 1..=128 bytes.
    fn reason_within_limits(reason: &str) -> bool {
        (1..=128).contains(&reason.len())
    }

    /// A frame's payload: one valid event, or a batch (byte 5, a count of 2..=4096 in its
    /// shortest form, that many valid events, nothing left over).
    pub fn decode_payload(payload: &[u8]) -> Option<Vec<Event>> {
        if payload.first() != Some(&5) {
            return decode_event(payload).map(|e| vec![e]);
        }
        let mut c = Cursor { b: payload, pos: 1 };
        let n = c.u64()?;
        if !(2..=4096).contains(&n) {
            return None;
        }
        let mut events = Vec::new();
        for _ in 0..n {
            let (event, used) = event_at(&payload[c.pos..])?;
            events.push(event);
            c.pos += used;
        }
        (c.pos == payload.len()).then_some(events)
    }

    pub fn decode_event(payload: &[u8]) -> Option<Event> {
        let (event, used) = event_at(payload)?;
        (used == payload.len()).then_some(event)
    }

    /// The valid event at the start of `payload`, and the bytes it takes. Index 5 is no event
    /// (it only opens a batch), so a batch inside a batch is invalid.
    fn event_at(payload: &[u8]) -> Option<(Event, usize)> {
        let mut c = Cursor { b: payload, pos: 0 };
        let event = match c.u32()? {
            index @ (0 | 6) => {
                let key = c.string()?;
                let session = c.string()?;
                let generation = c.u64()?;
                let nonce = if index == 6 { c.u64()? } else { 0 };
                let at = c.u64()?;
                let meta = c.option(|c| c.string())?;
                // Each start has one encoding: one without a nonce is event 0.
                if index == 6 && nonce == 0 {
                    return None;
                }
                if !within_limits(&key, Some(&session), meta.as_deref()) {
                    return None;
                }
                Event::Started {
                    key,
                    session,
                    generation,
                    nonce,
                    at,
                    meta,
                }
            }
            1 => Event::Completed {
                key: c.string()?,
                generation: c.u64()?,
                at: c.u64()?,
            },
            2 => Event::Shutdown { at: c.u64()? },
            3 => Event::Recovered { at: c.u64()? },
            4 => Event::Retention {
                forget_before: c.u64()?,
                at: c.u64()?,
            },
            7 => Event::Finished {
                key: c.string()?,
                generation: c.u64()?,
                nonce: c.u64()?,
                at: c.u64()?,
            },
            8 => {
                let key = c.string()?;
                let reason = c.string()?;
                if !reason_within_limits(&reason) {
                    return None;
                }
                Event::Promoted {
                    key,
                    reason,
                    at: c.u64()?,
                }
            }
            9 => Event::Suspended {
                key: c.string()?,
                at: c.u64()?,
            },
            10 => Event::Cleared {
                key: c.string()?,
                at: c.u64()?,
            },
            11 => {
                let key = c.string()?;
                let generation = c.u64()?;
                let nonce = c.u64()?;
                let meta = c.option(|c| c.string())?;
                if !within_limits(&key, None, meta.as_deref()) {
                    return None;
                }
                Event::Progress {
                    key,
                    generation,
                    nonce,
                    meta,
                    at: c.u64()?,
                }
            }
            12 => {
                let key = c.string()?;
                let session = c.string()?;
                let generation = c.u64()?;
                let nonce = c.u64()?;
                let started_at = c.u64()?;
                let meta = c.option(|c| c.string())?;
                let reason = c.u32()?;
                let crashes = c.u32()?;
                let stops = c.u32()?;
                let pending = c.option(|c| {
                    Some(PendingState {
                        reason: c.string()?,
                        at_ms: c.u64()?,
                    })
                })?;
                let suspended_at = c.option(|c| c.u64())?;
                let at = c.u64()?;
                if reason > 1
                    || !within_limits(&key, Some(&session), meta.as_deref())
                    || pending
                        .as_ref()
                        .is_some_and(|p| !reason_within_limits(&p.reason))
                {
                    return None;
                }
                Event::Adopted {
                    key,
                    adoption: Box::new(Adoption {
                        session,
                        generation,
                        nonce,
                        started_at,
                        meta,
                        reason,
                        crashes,
                        stops,
                        pending,
                        suspended_at,
                    }),
                    at,
                }
            }
            _ => return None,
        };
        // Every key, of every event that has one: 1..=1024 bytes.
        let key = match &event {
            Event::Completed { key, .. }
            | Event::Finished { key, .. }
            | Event::Promoted { key, .. }
            | Event::Suspended { key, .. }
            | Event::Cleared { key, .. } => Some(key),
            _ => None,
        };
        if key.is_some_and(|key| !within_limits(key, None, None)) {
            return None;
        }
        Some((event, c.pos))
    }

    // ----- the report -----

    /// A run's pending state: a reason and a time.
    #[derive(Clone, Debug, PartialEq)]
    pub struct PendingState {
        pub reason: String,
        pub at_ms: u64,
    }

    /// A run in flight: the run (key, session id, generation, started at ms, meta, nonce) and
    /// what the fold keeps of it.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Running {
        pub key: String,
        pub session_id: String,
        pub generation: u64,
        pub started_at_ms: u64,
        pub meta: Option<String>,
        pub nonce: u64,
        /// `crash` or `shutdown`.
        pub reason: String,
        /// The crash count.
        pub recoveries: u32,
        /// The graceful-stop count.
        pub stops: u32,
        /// Begun or resumed since its last interruption.
        pub running: bool,
        pub pending: Option<PendingState>,
        pub suspended_at_ms: Option<u64>,
    }

    impl Running {
        /// The report's word for where it stands: suspended, else running, else pending, else
        /// interrupted.
        pub fn state(&self) -> &'static str {
            if self.suspended_at_ms.is_some() {
                "suspended"
            } else if self.running {
                "running"
            } else if self.pending.is_some() {
                "pending"
            } else {
                "interrupted"
            }
        }
    }

    #[derive(Clone, Debug, PartialEq)]
    pub struct Gap {
        pub segment: String,
        pub start_offset: u64,
        pub end_offset: u64,
        pub after_seq: u64,
        pub before_seq: Option<u64>,
        pub after_ms: Option<u64>,
        pub before_ms: Option<u64>,
    }

    #[derive(Clone, Debug, PartialEq)]
    pub struct Torn {
        pub segment: String,
        pub offset: u64,
        pub bytes: u64,
    }

    #[derive(Clone, Debug, PartialEq, Default)]
    pub struct Counters {
        pub started: u64,
        pub completed: u64,
        pub shutdowns: u64,
        pub stale_starts: u64,
        pub stale_completions: u64,
        pub unknown_completions: u64,
        pub superseded: u64,
        pub recoveries: u64,
        pub retentions: u64,
        pub forgotten: u64,
        pub promoted: u64,
        pub suspended: u64,
        pub cleared: u64,
        pub progressed: u64,
        pub adopted: u64,
        pub unmatched: u64,
    }

    /// The snapshot replay started from: `{file, last_seq, bytes, created_ms}`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct SnapshotUsed {
        pub file: String,
        pub last_seq: u64,
        pub bytes: u64,
        pub created_ms: u64,
    }

    #[derive(Clone, Debug, PartialEq)]
    pub struct Replay {
        pub running: Vec<Running>,
        pub torn_tail: Option<Torn>,
        pub torn_tail_bytes: u64,
        pub corruption: Vec<Gap>,
        pub stale_ignored: u64,
        pub counters: Counters,
        pub clean_shutdown: bool,
        pub coverage_since_ms: Option<u64>,
        pub segments: u64,
        pub records: u64,
        pub last_seq: u64,
        pub snapshot: Option<SnapshotUsed>,
        pub gaps_before_snapshot: Vec<Gap>,
        pub crash_loop_threshold: u32,
        pub stop_loop_threshold: u32,
        /// The highest generation among the marks retention forgot.
        pub forgotten_generation: u64,
    }

    #[derive(Clone, Debug, PartialEq)]
    pub enum Failure {
        UnsupportedVersion,
        /// The first corruption under the strict policy: segment (or snapshot) file name and
        /// offset.
        Corrupt {
            segment: String,
            offset: u64,
        },
        /// Not a log: no segment read and no snapshot to start from.
        NoLog,
    }

    // ----- the fold -----

    #[derive(Clone, Copy, Default)]
    struct Mark {
        generation: u64,
        last_event_ms: u64,
    }

    #[derive(Default)]
    struct Fold {
        /// Each run in flight, with everything the fold keeps of it.
        runs: BTreeMap<String, Running>,
        marks: BTreeMap<String, Mark>,
        counters: Counters,
        ended_with_shutdown: bool,
        forgotten_generation: u64,
    }

    impl Fold {
        /// Raises the key's mark (generation and last event time) for a start, an adoption or
        /// a completion by generation; returns the mark's generation before.
        fn raise(&mut self, key: &str, generation: u64, at: u64) -> Option<u64> {
            let before = self.marks.get(key).map(|m| m.generation);
            let mark = self.marks.entry(key.to_string()).or_default();
            mark.generation = mark.generation.max(generation);
            mark.last_event_ms = mark.last_event_ms.max(at);
            before
        }

        /// Events 7 to 11 that apply raise only the key's `last_event_ms`, and never create
        /// a mark.
        fn touch(&mut self, key: &str, at: u64) {
            if let Some(mark) = self.marks.get_mut(key) {
                mark.last_event_ms = mark.last_event_ms.max(at);
            }
        }

        /// Events 7 to 11: applied (counted by `counter`, the key's `last_event_ms` raised) or
        /// unmatched (nothing changes).
        fn decided(&mut self, key: &str, at: u64, applied: bool, counter: fn(&mut Counters)) {
            if applied {
                counter(&mut self.counters);
                self.touch(key, at);
            } else {
                self.counters.unmatched += 1;
            }
        }

        fn apply(&mut self, e: &Event) {
            // Any event but a retention record sets the flag: a shutdown sets it, the others
            // (a recovery record among them) clear it.
            if !matches!(e, Event::Retention { .. }) {
                self.ended_with_shutdown = matches!(e, Event::Shutdown { .. });
            }
            match e {
                Event::Started {
                    key,
                    session,
                    generation,
                    nonce,
                    at,
                    meta,
                } => {
                    let mark = self.raise(key, *generation, *at);
                    if mark.is_some_and(|m| *generation < m) {
                        self.counters.stale_starts += 1;
                        return;
                    }
                    let mut run = Running {
                        key: key.clone(),
                        session_id: session.clone(),
                        generation: *generation,
                        started_at_ms: *at,
                        meta: meta.clone(),
                        nonce: *nonce,
                        reason: "crash".into(),
                        recoveries: 0,
                        stops: 0,
                        running: true,
                        pending: None,
                        suspended_at_ms: None,
                    };
                    // A resume carries the counts and the pending state of the run it
                    // replaces, unless that one was suspended (the session begins anew).
                    if let Some(old) = self.runs.get(key)
                        && old.suspended_at_ms.is_none()
                    {
                        run.recoveries = old.recoveries;
                        run.stops = old.stops;
                        run.pending = old.pending.clone();
                    }
                    self.counters.started += 1;
                    if self.runs.insert(key.clone(), run).is_some() {
                        self.counters.superseded += 1;
                    }
                }
                Event::Completed {
                    key,
                    generation,
                    at,
                } => {
                    self.raise(key, *generation, *at);
                    match self.runs.get(key) {
                        None => self.counters.unknown_completions += 1,
                        Some(run) if *generation < run.generation => {
                            self.counters.stale_completions += 1
                        }
                        Some(_) => {
                            self.runs.remove(key);
                            self.counters.completed += 1;
                        }
                    }
                }
                Event::Finished {
                    key,
                    generation,
                    nonce,
                    at,
                } => match self.runs.get(key) {
                    None => self.counters.unknown_completions += 1,
                    Some(run) => {
                        let exact = run.generation == *generation && run.nonce == *nonce;
                        if exact {
                            self.runs.remove(key);
                        }
                        self.decided(key, *at, exact, |c| c.completed += 1);
                    }
                },
                Event::Shutdown { .. } => {
                    self.counters.shutdowns += 1;
                    for run in self.runs.values_mut().filter(|r| r.running) {
                        run.reason = "shutdown".into();
                    }
                }
                Event::Recovered { .. } => {
                    self.counters.recoveries += 1;
                    for run in self.runs.values_mut().filter(|r| r.running) {
                        if run.reason == "crash" {
                            run.recoveries = run.recoveries.saturating_add(1);
                        } else {
                            run.stops = run.stops.saturating_add(1);
                        }
                        run.running = false;
                    }
                }
                Event::Promoted { key, reason, at } => {
                    let run = self.runs.get_mut(key);
                    let applies = run.is_some_and(|run| {
                        run.suspended_at_ms.is_none() && {
                            run.pending = Some(PendingState {
                                reason: reason.clone(),
                                at_ms: *at,
                            });
                            true
                        }
                    });
                    self.decided(key, *at, applies, |c| c.promoted += 1);
                }
                Event::Suspended { key, at } => {
                    let run = self.runs.get_mut(key);
                    let applies = run.is_some_and(|run| {
                        run.suspended_at_ms = Some(*at);
                        run.pending = None;
                        true
                    });
                    self.decided(key, *at, applies, |c| c.suspended += 1);
                }
                Event::Cleared { key, at } => {
                    let run = self.runs.get(key).filter(|r| r.pending.is_some());
                    let applies = match run.map(|r| r.running) {
                        None => false,
                        Some(false) => {
                            self.runs.remove(key);
                            true
                        }
                        Some(true) => {
                            self.runs.get_mut(key).unwrap().pending = None;
                            true
                        }
                    };
                    self.decided(key, *at, applies, |c| c.cleared += 1);
                }
                Event::Progress {
                    key,
                    generation,
                    nonce,
                    meta,
                    at,
                } => {
                    let run = self.runs.get_mut(key);
                    let applies = run.is_some_and(|run| {
                        (run.generation == *generation && run.nonce == *nonce) && {
                            run.meta = meta.clone();
                            true
                        }
                    });
                    self.decided(key, *at, applies, |c| c.progressed += 1);
                }
                Event::Adopted { key, adoption, at } => {
                    let a = adoption.as_ref();
                    let mark = self.raise(key, a.generation, *at);
                    if mark.is_some_and(|m| a.generation < m) {
                        self.counters.stale_starts += 1;
                        return;
                    }
                    let mut run = Running {
                        key: key.clone(),
                        session_id: a.session.clone(),
                        generation: a.generation,
                        started_at_ms: a.started_at,
                        meta: a.meta.clone(),
                        nonce: a.nonce,
                        reason: if a.reason == 0 { "crash" } else { "shutdown" }.into(),
                        recoveries: a.crashes,
                        stops: a.stops,
                        running: false,
                        pending: a.pending.clone(),
                        suspended_at_ms: a.suspended_at,
                    };
                    // Replacing a run: each count is the larger of the two.
                    if let Some(old) = self.runs.get(key) {
                        run.recoveries = run.recoveries.max(old.recoveries);
                        run.stops = run.stops.max(old.stops);
                        self.counters.superseded += 1;
                    }
                    self.counters.adopted += 1;
                    self.runs.insert(key.clone(), run);
                }
                Event::Retention { forget_before, .. } => {
                    self.counters.retentions += 1;
                    let runs = &self.runs;
                    let before = self.marks.len();
                    let mut highest = self.forgotten_generation;
                    self.marks.retain(|key, m| {
                        let keep = runs.contains_key(key) || m.last_event_ms >= *forget_before;
                        if !keep {
                            highest = highest.max(m.generation);
                        }
                        keep
                    });
                    self.forgotten_generation = highest;
                    self.counters.forgotten += (before - self.marks.len()) as u64;
                }
            }
        }
    }

    // ----- snapshots -----

    /// Whether `name` is a snapshot's name, and its number (any u64).
    pub fn snapshot_number(name: &str) -> Option<u64> {
        let digits = name.strip_prefix("snapshot-")?.strip_suffix(".json")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Check 2: the envelope, its members exactly these, in any order.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope<'a> {
        inflight_snapshot: u32,
        body_crc32: u32,
        #[serde(borrow)]
        body: &'a RawValue,
    }

    /// Check 5: the body, every member of the table and no other. The counters and the runs
    /// are read by the snapshot's version (`C`, `R`).
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body<C, R> {
        last_seq: u64,
        next_segment_no: u64,
        #[serde(default)]
        last_record_ms: Option<u64>,
        coverage_since_ms: u64,
        created_ms: u64,
        ended_with_shutdown: bool,
        counters: C,
        running: Vec<R>,
        marks: Vec<BodyMark>,
        gaps: Vec<BodyGap>,
        #[serde(default)]
        forgotten_generation: u64,
    }

    /// The counters of a version-1 snapshot. Other members are ignored, the six counters of
    /// version 2 among them, whatever they hold; the three newer of version 1 may be absent
    /// (0).
    #[derive(Deserialize)]
    struct BodyCountersV1 {
        started: u64,
        stale_starts: u64,
        completed: u64,
        stale_completions: u64,
        unknown_completions: u64,
        shutdowns: u64,
        superseded: u64,
        #[serde(default)]
        recoveries: u64,
        #[serde(default)]
        retentions: u64,
        #[serde(default)]
        forgotten: u64,
    }

    /// The counters of a version-2 snapshot: version 1's and six more, each of which may be
    /// absent (0). Other members are ignored.
    #[derive(Deserialize)]
    struct BodyCountersV2 {
        started: u64,
        stale_starts: u64,
        completed: u64,
        stale_completions: u64,
        unknown_completions: u64,
        shutdowns: u64,
        superseded: u64,
        #[serde(default)]
        recoveries: u64,
        #[serde(default)]
        retentions: u64,
        #[serde(default)]
        forgotten: u64,
        #[serde(default)]
        promoted: u64,
        #[serde(default)]
        suspended: u64,
        #[serde(default)]
        cleared: u64,
        #[serde(default)]
        progressed: u64,
        #[serde(default)]
        adopted: u64,
        #[serde(default)]
        unmatched: u64,
    }

    #[derive(Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum BodyReason {
        Crash,
        Shutdown,
    }

    /// A run of a version-1 snapshot. Other members are ignored (`nonce`, `stops`,
    /// `running`, `pending` and `suspended_at_ms` among them, whatever they hold: they are not
    /// part of version 1); `meta` may be absent (null), `recoveries` too (0).
    #[derive(Deserialize)]
    struct BodyRunV1 {
        key: String,
        session_id: String,
        generation: u64,
        started_at_ms: u64,
        #[serde(default)]
        meta: Option<String>,
        reason: BodyReason,
        #[serde(default)]
        recoveries: u32,
    }

    /// A run of a version-2 snapshot. Other members are ignored; `meta`, `pending` and
    /// `suspended_at_ms` may be absent (null), `nonce`, `recoveries` and `stops` too (0), and
    /// `running` (true).
    #[derive(Deserialize)]
    struct BodyRunV2 {
        key: String,
        session_id: String,
        generation: u64,
        started_at_ms: u64,
        #[serde(default)]
        meta: Option<String>,
        #[serde(default)]
        nonce: u64,
        reason: BodyReason,
        #[serde(default)]
        recoveries: u32,
        #[serde(default)]
        stops: u32,
        #[serde(default = "yes")]
        running: bool,
        #[serde(default)]
        pending: Option<BodyPending>,
        #[serde(default)]
        suspended_at_ms: Option<u64>,
    }

    fn yes() -> bool {
        true
    }

    /// A run's pending object: other members are ignored.
    #[derive(Deserialize)]
    struct BodyPending {
        reason: String,
        at_ms: u64,
    }

    impl From<BodyCountersV1> for Counters {
        /// A version-1 snapshot's counters: the six of version 2 take their default, 0.
        fn from(c: BodyCountersV1) -> Counters {
            Counters {
                started: c.started,
                completed: c.completed,
                shutdowns: c.shutdowns,
                stale_starts: c.stale_starts,
                stale_completions: c.stale_completions,
                unknown_completions: c.unknown_completions,
                superseded: c.superseded,
                recoveries: c.recoveries,
                retentions: c.retentions,
                forgotten: c.forgotten,
                ..Counters::default()
            }
        }
    }

    impl From<BodyCountersV2> for Counters {
        fn from(c: BodyCountersV2) -> Counters {
            Counters {
                started: c.started,
                completed: c.completed,
                shutdowns: c.shutdowns,
                stale_starts: c.stale_starts,
                stale_completions: c.stale_completions,
                unknown_completions: c.unknown_completions,
                superseded: c.superseded,
                recoveries: c.recoveries,
                retentions: c.retentions,
                forgotten: c.forgotten,
                promoted: c.promoted,
                suspended: c.suspended,
                cleared: c.cleared,
                progressed: c.progressed,
                adopted: c.adopted,
                unmatched: c.unmatched,
            }
        }
    }

    fn reason(r: BodyReason) -> String {
        match r {
            BodyReason::Crash => "crash",
            BodyReason::Shutdown => "shutdown",
        }
        .into()
    }

    impl From<BodyRunV1> for Running {
        /// A version-1 run: running, with no nonce, no stops and no decision.
        fn from(r: BodyRunV1) -> Running {
            Running {
                key: r.key,
                session_id: r.session_id,
                generation: r.generation,
                started_at_ms: r.started_at_ms,
                meta: r.meta,
                nonce: 0,
                reason: reason(r.reason),
                recoveries: r.recoveries,
                stops: 0,
                running: true,
                pending: None,
                suspended_at_ms: None,
            }
        }
    }

    impl From<BodyRunV2> for Running {
        fn from(r: BodyRunV2) -> Running {
            Running {
                key: r.key,
                session_id: r.session_id,
                generation: r.generation,
                started_at_ms: r.started_at_ms,
                meta: r.meta,
                nonce: r.nonce,
                reason: reason(r.reason),
                recoveries: r.recoveries,
                stops: r.stops,
                running: r.running,
                pending: r.pending.map(|p| PendingState {
                    reason: p.reason,
                    at_ms: p.at_ms,
                }),
                suspended_at_ms: r.suspended_at_ms,
            }
        }
    }

    /// A body of any version, its counters and runs in `doc`'s terms.
    type Start = Body<Counters, Running>;

    /// Check 5 for version 3: the body, every member of the table and no other, with the
    /// runs and marks in one array of key rows.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct BodyV3 {
        last_seq: u64,
        next_segment_no: u64,
        #[serde(default)]
        last_record_ms: Option<u64>,
        coverage_since_ms: u64,
        created_ms: u64,
        ended_with_shutdown: bool,
        counters: BodyCountersV2,
        keys: Vec<BodyRowV3>,
        gaps: Vec<BodyGap>,
        #[serde(default)]
        forgotten_generation: u64,
    }

    /// Check 6 for version 3: a key's row, an array of exactly 3 members (the key and its
    /// mark) or 14 (and its run).
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BodyRowV3 {
        Mark(String, u64, u64),
        Run(
            String,
            u64,
            u64,
            String,
            u64,
            u64,
            Option<String>,
            u64,
            BodyReason,
            u32,
            u32,
            bool,
            Option<BodyPending>,
            Option<u64>,
        ),
    }

    impl BodyV3 {
        /// The rows split into runs and marks, each in the rows' order.
        fn normalized(self) -> Start {
            let mut running = Vec::new();
            let mut marks = Vec::new();
            for row in self.keys {
                let (key, generation, last_event_ms) = match row {
                    BodyRowV3::Mark(key, generation, last_event_ms) => {
                        (key, generation, last_event_ms)
                    }
                    BodyRowV3::Run(
                        key,
                        generation,
                        last_event_ms,
                        session_id,
                        run_generation,
                        started_at_ms,
                        meta,
                        nonce,
                        why,
                        recoveries,
                        stops,
                        is_running,
                        pending,
                        suspended_at_ms,
                    ) => {
                        running.push(Running {
                            key: key.clone(),
                            session_id,
                            generation: run_generation,
                            started_at_ms,
                            meta,
                            nonce,
                            reason: reason(why),
                            recoveries,
                            stops,
                            running: is_running,
                            pending: pending.map(|p| PendingState {
                                reason: p.reason,
                                at_ms: p.at_ms,
                            }),
                            suspended_at_ms,
                        });
                        (key, generation, last_event_ms)
                    }
                };
                marks.push(BodyMark {
                    key,
                    generation,
                    last_event_ms,
                });
            }
            Body {
                last_seq: self.last_seq,
                next_segment_no: self.next_segment_no,
                last_record_ms: self.last_record_ms,
                coverage_since_ms: self.coverage_since_ms,
                created_ms: self.created_ms,
                ended_with_shutdown: self.ended_with_shutdown,
                counters: self.counters.into(),
                running,
                marks,
                gaps: self.gaps,
                forgotten_generation: self.forgotten_generation,
            }
        }
    }

    impl<C: Into<Counters>, R: Into<Running>> Body<C, R> {
        fn normalized(self) -> Start {
            Body {
                last_seq: self.last_seq,
                next_segment_no: self.next_segment_no,
                last_record_ms: self.last_record_ms,
                coverage_since_ms: self.coverage_since_ms,
                created_ms: self.created_ms,
                ended_with_shutdown: self.ended_with_shutdown,
                counters: self.counters.into(),
                running: self.running.into_iter().map(Into::into).collect(),
                marks: self.marks,
                gaps: self.gaps,
                forgotten_generation: self.forgotten_generation,
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct BodyMark {
        key: String,
        generation: u64,
        last_event_ms: u64,
    }

    /// Other members are ignored; the three optional numbers may be absent (null).
    #[derive(Deserialize)]
    struct BodyGap {
        segment: String,
        start_offset: u64,
        end_offset: u64,
        after_seq: u64,
        #[serde(default)]
        before_seq: Option<u64>,
        #[serde(default)]
        after_ms: Option<u64>,
        #[serde(default)]
        before_ms: Option<u64>,
        #[allow(dead_code)]
        detail: String,
    }

    /// The rules for every byte of a snapshot file: no array or object deeper than 32 (the
    /// envelope is 1), and every `\\u` escape of a high surrogate (D800..DBFF) followed at once
    /// by one of a low surrogate (DC00..DFFF), which never stands alone.
    fn nests_within_32_and_pairs_surrogates(b: &[u8]) -> bool {
        let mut depth = 0i64;
        let mut in_string = false;
        let mut i = 0;
        let unit = |at: usize| -> Option<u16> {
            let hex = b.get(at..at + 4)?;
            u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
        };
        while i < b.len() {
            let c = b[i];
            if !in_string {
                match c {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth -= 1,
                    _ => {}
                }
                if depth > 32 {
                    return false;
                }
                i += 1;
                continue;
            }
            match c {
                b'"' => in_string = false,
                b'\\' if b.get(i + 1) == Some(&b'u') => {
                    let high = unit(i + 2);
                    if let Some(u @ 0xD800..=0xDFFF) = high {
                        let low = if b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u') {
                            unit(i + 8)
                        } else {
                            None
                        };
                        let paired =
                            u <= 0xDBFF && low.is_some_and(|l| (0xDC00..=0xDFFF).contains(&l));
                        if !paired {
                            return false;
                        }
                        i += 6;
                    }
                    i += 5;
                }
                b'\\' => i += 1,
                _ => {}
            }
            i += 1;
        }
        true
    }

    /// Reads a snapshot file named with `number`: `Ok(None)` when it is damaged.
    fn read_snapshot(number: u64, b: &[u8]) -> Result<Option<Start>, Failure> {
        // Check 1.
        if b.len() as u64 > 2_147_483_648 {
            return Ok(None);
        }
        // Check 2: the two rules for every part of the file, then the envelope (whitespace
        // around the value is what a JSON parser allows anyway).
        if !nests_within_32_and_pairs_surrogates(b) {
            return Ok(None);
        }
        let Ok(envelope) = serde_json::from_slice::<Envelope<'_>>(b) else {
            return Ok(None);
        };
        // Check 3: the body's bytes as they stand in the file.
        let body = envelope.body.get();
        if crc32(&[body.as_bytes()]) != envelope.body_crc32 {
            return Ok(None);
        }
        // Checks 4, 5 and 6: version 1's runs and counters, version 2's, or version 3's rows.
        let body =
            match envelope.inflight_snapshot {
                1 => serde_json::from_str::<Body<BodyCountersV1, BodyRunV1>>(body)
                    .map(Body::normalized),
                2 => serde_json::from_str::<Body<BodyCountersV2, BodyRunV2>>(body)
                    .map(Body::normalized),
                3 => serde_json::from_str::<BodyV3>(body).map(BodyV3::normalized),
                _ => return Err(Failure::UnsupportedVersion),
            };
        let Ok(body) = body else {
            return Ok(None);
        };
        // Check 7.
        let ascending = |keys: Vec<&String>| keys.windows(2).all(|w| w[0] < w[1]);
        let marks: BTreeMap<&str, u64> = body
            .marks
            .iter()
            .map(|m| (m.key.as_str(), m.generation))
            .collect();
        let valid = body.last_seq == number
            && body.last_seq != u64::MAX
            && (1..u64::MAX).contains(&body.next_segment_no)
            && body.gaps.len() <= 64
            && ascending(body.running.iter().map(|r| &r.key).collect())
            && ascending(body.marks.iter().map(|m| &m.key).collect())
            && body
                .running
                .iter()
                .all(|r| within_limits(&r.key, Some(&r.session_id), r.meta.as_deref()))
            && body.running.iter().all(|r| {
                r.pending
                    .as_ref()
                    .is_none_or(|p| reason_within_limits(&p.reason))
            })
            && body.marks.iter().all(|m| within_limits(&m.key, None, None))
            && body.running.iter().all(|r| {
                marks
                    .get(r.key.as_str())
                    .is_some_and(|&g| g >= r.generation)
            });
        Ok(valid.then_some(body))
    }

    // ----- reading a log -----

    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Damage,
        InvalidEvent,
        Missing,
        Snapshot,
    }

    struct Pending {
        /// The segment's (or damaged snapshot's) file name.
        file: String,
        start: usize,
        end: usize,
        kind: Kind,
        /// The sequence number before the region: `next - 1` when it was found.
        after_seq: u64,
    }

    /// Whether `name` is a segment's name, and its number.
    pub fn segment_number(name: &str) -> Option<u64> {
        let digits = name.strip_suffix(".log")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // The largest u64 is not a segment number: every segment has a successor.
        digits.parse().ok().filter(|&n| n < u64::MAX)
    }

    /// Where a segment's data ends: at the start of the run of 0xFF bytes (its reserved space)
    /// that ends the file, or at its end if its last byte is not 0xFF.
    pub fn data_end(b: &[u8]) -> usize {
        let mut end = b.len();
        while end > 0 && b[end - 1] == 0xFF {
            end -= 1;
        }
        end
    }

    /// A valid frame at `p`: length in 1..=8192, fits in the file, checksum holds with salt.
    /// Returns (sequence, payload range end).
    pub fn valid_frame(b: &[u8], p: usize, salt: u64) -> Option<(u64, usize)> {
        if p + FRAME_HEADER > b.len() {
            return None;
        }
        let len = u32_at(b, p) as usize;
        if !(1..=MAX_PAYLOAD).contains(&len) || p + FRAME_HEADER + len > b.len() {
            return None;
        }
        let seq = u64_at(b, p + 8);
        let c = crc32(&[
            &salt.to_le_bytes(),
            &b[p..p + 4],
            &b[p + 8..p + 16],
            &b[p + FRAME_HEADER..p + FRAME_HEADER + len],
        ]);
        (seq != u64::MAX && c == u32_at(b, p + 4)).then_some((seq, p + FRAME_HEADER + len))
    }

    enum HeaderCheck {
        Valid {
            base: u64,
            created: u64,
        },
        /// Failed check 1 or 2.
        Early,
        /// Failed check 4, 5, 6 or 7.
        Late,
    }

    fn check_header(b: &[u8], number: u64, next: u64) -> Result<HeaderCheck, Failure> {
        if b.len() < HEADER || &b[..8] != b"INFLIGHT" {
            return Ok(HeaderCheck::Early);
        }
        if crc32(&[&b[..60]]) != u32_at(b, 60) {
            return Ok(HeaderCheck::Early);
        }
        if !(1..=3).contains(&u32_at(b, 8)) {
            return Err(Failure::UnsupportedVersion);
        }
        if u32_at(b, 12) != 64
            || u32_at(b, 56) != 0
            || u64_at(b, 16) != number
            || u64_at(b, 24) < next
        {
            return Ok(HeaderCheck::Late);
        }
        Ok(HeaderCheck::Valid {
            base: u64_at(b, 24),
            created: u64_at(b, 40),
        })
    }

    /// Step 2: every byte at 0..24 and 56..60 is zero or what this segment's header holds,
    /// written as version 1.
    fn unfinished_header(b: &[u8], number: u64) -> bool {
        let mut expect = Vec::new();
        expect.extend_from_slice(b"INFLIGHT");
        expect.extend_from_slice(&1u32.to_le_bytes());
        expect.extend_from_slice(&64u32.to_le_bytes());
        expect.extend_from_slice(&number.to_le_bytes());
        expect.extend_from_slice(&[0; 32]);
        expect.extend_from_slice(&0u32.to_le_bytes());
        b.len() <= HEADER
            && b.iter()
                .enumerate()
                .all(|(i, &x)| !((i < 24) || (56..60).contains(&i)) || x == 0 || x == expect[i])
    }

    /// Replays the files `files` (name, bytes) of a directory.
    pub fn replay(files: &[(String, Vec<u8>)], strict: bool) -> Result<Replay, Failure> {
        let mut fold = Fold::default();
        let mut next = 1u64;
        let mut last_seq = 0u64;
        let mut last_ms: Option<u64> = None;
        let mut coverage: Option<u64> = None;
        let mut pending: Vec<Pending> = Vec::new();
        let mut snapshot = None;
        let mut gaps_before_snapshot = Vec::new();
        let mut first_segment = 0u64;

        // Not a log: neither a segment nor a snapshot file, by name.
        if !files
            .iter()
            .any(|(n, _)| segment_number(n).is_some() || snapshot_number(n).is_some())
        {
            return Err(Failure::NoLog);
        }

        // Step 0: the start.
        let mut snaps: Vec<(u64, &str, &[u8])> = files
            .iter()
            .filter_map(|(n, b)| Some((snapshot_number(n)?, n.as_str(), b.as_slice())))
            .collect();
        snaps.sort_by_key(|s| std::cmp::Reverse(s.0));
        let mut damaged = Vec::new();
        for &(number, name, b) in &snaps {
            let Some(body) = read_snapshot(number, b)? else {
                damaged.push((name, b.len()));
                continue;
            };
            // It must agree with the segments it says it covers.
            let disagrees = files.iter().any(|(n, seg)| match segment_number(n) {
                Some(num) if num < body.next_segment_no => matches!(
                    check_header(seg, num, 0),
                    Ok(HeaderCheck::Valid { base, .. })
                        if base > body.last_seq + 1
                            || (base == body.last_seq + 1 && data_end(seg) > HEADER)
                ),
                _ => false,
            });
            if disagrees {
                damaged.push((name, b.len()));
                continue;
            }
            next = body.last_seq + 1;
            last_seq = body.last_seq;
            last_ms = body.last_record_ms;
            coverage = Some(body.coverage_since_ms);
            first_segment = body.next_segment_no;
            snapshot = Some(SnapshotUsed {
                file: name.to_string(),
                last_seq: body.last_seq,
                bytes: b.len() as u64,
                created_ms: body.created_ms,
            });
            gaps_before_snapshot = body
                .gaps
                .iter()
                .map(|g| Gap {
                    segment: g.segment.clone(),
                    start_offset: g.start_offset,
                    end_offset: g.end_offset,
                    after_seq: g.after_seq,
                    before_seq: g.before_seq,
                    after_ms: g.after_ms,
                    before_ms: g.before_ms,
                })
                .collect();
            fold.counters = body.counters;
            fold.ended_with_shutdown = body.ended_with_shutdown;
            fold.forgotten_generation = body.forgotten_generation;
            for m in &body.marks {
                let mark = Mark {
                    generation: m.generation,
                    last_event_ms: m.last_event_ms,
                };
                fold.marks.insert(m.key.clone(), mark);
            }
            for run in body.running {
                fold.runs.insert(run.key.clone(), run);
            }
            break;
        }
        for (name, len) in damaged.into_iter().rev() {
            pending.push(Pending {
                file: name.to_string(),
                start: 0,
                end: len,
                kind: Kind::Snapshot,
                after_seq: next - 1,
            });
        }

        // The segments at or above the start's `next_segment_no`.
        let mut segs: Vec<(u64, &str, &[u8])> = files
            .iter()
            .filter_map(|(n, b)| Some((segment_number(n)?, n.as_str(), b.as_slice())))
            .filter(|s| s.0 >= first_segment)
            .collect();
        segs.sort_by_key(|s| s.0);

        let mut corruption: Vec<Gap> = Vec::new();
        let mut records = 0u64;
        let mut last_header_valid = false;
        let mut torn: Option<Torn> = None;

        let gap = |p: &Pending, last_ms, before: Option<(u64, u64)>| Gap {
            segment: p.file.clone(),
            start_offset: p.start as u64,
            end_offset: p.end as u64,
            after_seq: p.after_seq,
            before_seq: before.map(|b| b.0),
            after_ms: last_ms,
            before_ms: before.map(|b| b.1),
        };

        'segments: for (i, &(number, name, b)) in segs.iter().enumerate() {
            let is_last = i + 1 == segs.len();
            let salt;
            match check_header(b, number, next)? {
                HeaderCheck::Valid { base, created } => {
                    last_header_valid = is_last;
                    coverage = Some(coverage.map_or(created, |c: u64| c.min(created)));
                    if base > next && pending.is_empty() {
                        pending.push(Pending {
                            file: name.to_string(),
                            start: 0,
                            end: 0,
                            kind: Kind::Missing,
                            after_seq: next - 1,
                        });
                    }
                    next = base;
                    salt = u64_at(b, 32);
                }
                check => {
                    if matches!(check, HeaderCheck::Early)
                        && is_last
                        && unfinished_header(b, number)
                    {
                        torn = Some(Torn {
                            segment: name.to_string(),
                            offset: 0,
                            bytes: b.len() as u64,
                        });
                        break 'segments;
                    }
                    pending.push(Pending {
                        file: name.to_string(),
                        start: 0,
                        end: b.len().min(HEADER),
                        kind: Kind::Damage,
                        after_seq: next - 1,
                    });
                    if b.len() <= HEADER {
                        continue;
                    }
                    salt = u64_at(b, 32);
                }
            }
            // Frames are read up to the reserved space (at least the header's end).
            let b = &b[..data_end(b).max(HEADER)];
            let mut p = HEADER;
            while p < b.len() {
                let (seq, end) = match valid_frame(b, p, salt) {
                    Some((s, e)) if s >= next => {
                        if s > next {
                            pending.push(Pending {
                                file: name.to_string(),
                                start: p,
                                end: p,
                                kind: Kind::Missing,
                                after_seq: next - 1,
                            });
                        }
                        (s, e)
                    }
                    _ => {
                        let found = (p + 1..b.len()).find_map(|q| {
                            valid_frame(b, q, salt)
                                .filter(|(s, _)| *s >= next)
                                .map(|(s, e)| (q, s, e))
                        });
                        match found {
                            None => {
                                pending.push(Pending {
                                    file: name.to_string(),
                                    start: p,
                                    end: b.len(),
                                    kind: Kind::Damage,
                                    after_seq: next - 1,
                                });
                                break;
                            }
                            Some((q, s, e)) => {
                                pending.push(Pending {
                                    file: name.to_string(),
                                    start: p,
                                    end: q,
                                    kind: Kind::Damage,
                                    after_seq: next - 1,
                                });
                                p = q;
                                (s, e)
                            }
                        }
                    }
                };
                match decode_payload(&b[p + FRAME_HEADER..end]) {
                    Some(events) => {
                        for region in pending.drain(..) {
                            corruption.push(gap(&region, last_ms, Some((seq, events[0].at()))));
                        }
                        for event in &events {
                            fold.apply(event);
                            records += 1;
                            last_ms = Some(event.at());
                        }
                        last_seq = seq;
                    }
                    None => pending.push(Pending {
                        file: name.to_string(),
                        start: p,
                        end,
                        kind: Kind::InvalidEvent,
                        after_seq: seq - 1,
                    }),
                }
                next = seq + 1;
                p = end;
            }
        }

        // The end: settle the pending regions.
        if torn.is_none() && last_header_valid {
            let (_, last_name, b) = segs[segs.len() - 1];
            let b = &b[..data_end(b).max(HEADER)];
            let tail: Vec<&Pending> = pending.iter().filter(|r| r.file == last_name).collect();
            if !tail.is_empty() {
                let start = tail[0].start;
                let total: usize = tail.iter().map(|r| r.end - r.start).sum();
                let plain = tail.iter().all(|r| r.kind == Kind::Damage);
                let within_frame = {
                    // The length is trusted only when the frame header is witnessed intact:
                    // 16 bytes long, its sequence field the next expected one, all within one
                    // 512-byte sector.
                    let r = tail[0];
                    let intact = r.end - r.start >= FRAME_HEADER
                        && u64_at(b, r.start + 8) == r.after_seq + 1
                        && r.start % 512 + FRAME_HEADER <= 512;
                    !intact || {
                        let len = u32_at(b, r.start) as usize;
                        !(1..=MAX_PAYLOAD).contains(&len)
                            || tail.iter().all(|t| t.end <= r.start + FRAME_HEADER + len)
                    }
                };
                let salt = u64_at(b, 32);
                let no_frame = tail
                    .iter()
                    .all(|r| (r.start..r.end).all(|q| valid_frame(b, q, salt).is_none()));
                if total <= MAX_PAYLOAD + FRAME_HEADER && plain && within_frame && no_frame {
                    torn = Some(Torn {
                        segment: last_name.to_string(),
                        offset: start as u64,
                        bytes: total as u64,
                    });
                    pending.retain(|r| r.file != last_name);
                }
            }
        }
        for region in pending.drain(..) {
            corruption.push(gap(&region, last_ms, None));
        }

        // The policy, once every segment is read: the first damaged region found, or else the
        // first gap the start kept.
        if strict && let Some(first) = corruption.first().or(gaps_before_snapshot.first()) {
            return Err(Failure::Corrupt {
                segment: first.segment.clone(),
                offset: first.start_offset,
            });
        }

        let clean_shutdown = fold.ended_with_shutdown
            && torn.is_none()
            && corruption.iter().all(|g| g.before_seq.is_some());
        Ok(Replay {
            running: fold.runs.into_values().collect(),
            torn_tail_bytes: torn.as_ref().map_or(0, |t| t.bytes),
            torn_tail: torn,
            corruption,
            stale_ignored: fold.counters.stale_starts + fold.counters.stale_completions,
            counters: fold.counters,
            clean_shutdown,
            coverage_since_ms: coverage,
            segments: segs.len() as u64,
            records,
            last_seq,
            snapshot,
            gaps_before_snapshot,
            crash_loop_threshold: 3,
            stop_loop_threshold: 3,
            forgotten_generation: fold.forgotten_generation,
        })
    }
}

// ----- the comparison -----

use doc::{Counters, Failure, Gap, PendingState, Replay, Running, SnapshotUsed, Torn};

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let bytes = if e.file_type().unwrap().is_file() {
                std::fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            (name, bytes)
        })
        .collect()
}

fn opt_u64(v: &serde_json::Value) -> Option<u64> {
    v.as_u64()
}

/// The real reader's answer, in `doc`'s terms.
fn real(dir: &Path, policy: Policy) -> Result<Replay, Failure> {
    let recovered = match inflight::inspect::read_only(dir, policy) {
        Ok(r) => r,
        Err(Error::UnsupportedVersion { .. }) => return Err(Failure::UnsupportedVersion),
        Err(Error::Corrupt {
            segment, offset, ..
        }) => {
            return Err(Failure::Corrupt {
                segment: segment.file_name().unwrap().to_string_lossy().into_owned(),
                offset,
            });
        }
        Err(Error::NotFound { .. }) => return Err(Failure::NoLog),
        Err(e) => panic!("unexpected error {e:?}"),
    };
    let r = serde_json::to_value(&recovered.report).unwrap();
    let running = r["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| Running {
            key: x["key"].as_str().unwrap().into(),
            session_id: x["session_id"].as_str().unwrap().into(),
            generation: x["generation"].as_u64().unwrap(),
            started_at_ms: x["started_at_ms"].as_u64().unwrap(),
            meta: x["meta"].as_str().map(Into::into),
            nonce: x["nonce"].as_u64().unwrap(),
            reason: x["reason"].as_str().unwrap().into(),
            recoveries: x["recoveries"].as_u64().unwrap().try_into().unwrap(),
            stops: x["stops"].as_u64().unwrap().try_into().unwrap(),
            running: x["running"].as_bool().unwrap(),
            pending: (!x["pending"].is_null()).then(|| PendingState {
                reason: x["pending"]["reason"].as_str().unwrap().into(),
                at_ms: x["pending"]["at_ms"].as_u64().unwrap(),
            }),
            suspended_at_ms: opt_u64(&x["suspended_at_ms"]),
        })
        .collect::<Vec<_>>();
    // The report's word for each run's state is the document's.
    for (ours, theirs) in running.iter().zip(&recovered.report.running) {
        assert_eq!(ours.state(), theirs.state().as_str(), "{ours:?}");
    }
    let torn_tail = (!r["torn_tail"].is_null()).then(|| Torn {
        segment: r["torn_tail"]["segment"].as_str().unwrap().into(),
        offset: r["torn_tail"]["offset"].as_u64().unwrap(),
        bytes: r["torn_tail"]["bytes"].as_u64().unwrap(),
    });
    let gaps = |list: &serde_json::Value| -> Vec<Gap> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|g| Gap {
                segment: g["segment"].as_str().unwrap().into(),
                start_offset: g["start_offset"].as_u64().unwrap(),
                end_offset: g["end_offset"].as_u64().unwrap(),
                after_seq: g["after_seq"].as_u64().unwrap(),
                before_seq: opt_u64(&g["before_seq"]),
                after_ms: opt_u64(&g["after_ms"]),
                before_ms: opt_u64(&g["before_ms"]),
            })
            .collect()
    };
    let s = &r["snapshot"];
    let snapshot = (!s.is_null()).then(|| SnapshotUsed {
        file: s["file"].as_str().unwrap().into(),
        last_seq: s["last_seq"].as_u64().unwrap(),
        bytes: s["bytes"].as_u64().unwrap(),
        created_ms: s["created_ms"].as_u64().unwrap(),
    });
    let c = &r["counters"];
    Ok(Replay {
        running,
        torn_tail,
        torn_tail_bytes: r["torn_tail_bytes"].as_u64().unwrap(),
        corruption: gaps(&r["corruption"]),
        stale_ignored: r["stale_ignored"].as_u64().unwrap(),
        counters: Counters {
            started: c["started"].as_u64().unwrap(),
            completed: c["completed"].as_u64().unwrap(),
            shutdowns: c["shutdowns"].as_u64().unwrap(),
            stale_starts: c["stale_starts"].as_u64().unwrap(),
            stale_completions: c["stale_completions"].as_u64().unwrap(),
            unknown_completions: c["unknown_completions"].as_u64().unwrap(),
            superseded: c["superseded"].as_u64().unwrap(),
            recoveries: c["recoveries"].as_u64().unwrap(),
            retentions: c["retentions"].as_u64().unwrap(),
            forgotten: c["forgotten"].as_u64().unwrap(),
            promoted: c["promoted"].as_u64().unwrap(),
            suspended: c["suspended"].as_u64().unwrap(),
            cleared: c["cleared"].as_u64().unwrap(),
            progressed: c["progressed"].as_u64().unwrap(),
            adopted: c["adopted"].as_u64().unwrap(),
            unmatched: c["unmatched"].as_u64().unwrap(),
        },
        clean_shutdown: r["clean_shutdown"].as_bool().unwrap(),
        coverage_since_ms: opt_u64(&r["coverage_since_ms"]),
        segments: r["segments"].as_u64().unwrap(),
        records: r["records"].as_u64().unwrap(),
        last_seq: r["last_seq"].as_u64().unwrap(),
        snapshot,
        gaps_before_snapshot: gaps(&r["gaps_before_snapshot"]),
        crash_loop_threshold: r["crash_loop_threshold"]
            .as_u64()
            .unwrap()
            .try_into()
            .unwrap(),
        stop_loop_threshold: r["stop_loop_threshold"]
            .as_u64()
            .unwrap()
            .try_into()
            .unwrap(),
        forgotten_generation: recovered.set.forgotten_generation(),
    })
}

/// Both readers under both policies; they must agree. Returns the default policy's answer.
fn agree(dir: &Path) -> Result<Replay, Failure> {
    let before = files(dir);
    let mut out = None;
    for (policy, strict) in [(Policy::SkipDamaged, false), (Policy::Strict, true)] {
        let theirs = real(dir, policy);
        let ours = doc::replay(&files(dir), strict);
        assert_eq!(
            ours, theirs,
            "document reader vs inflight::inspect::read_only ({policy:?})"
        );
        out.get_or_insert(ours);
    }
    assert_eq!(files(dir), before, "read-only replay changed nothing");
    out.unwrap()
}

fn ok(dir: &Path) -> Replay {
    agree(dir).expect("the default policy replays")
}

// ----- building logs -----

fn seg(dir: &Path, n: u64) -> std::path::PathBuf {
    dir.join(format!("{n:020}.log"))
}

/// A segment's bytes up to its reserved space (the run of 0xFF the writer fills ahead of its
/// records): what the tests below damage is the end of its data, and a segment written back
/// without reserved space is a valid segment too.
fn read(dir: &Path, n: u64) -> Vec<u8> {
    let mut bytes = std::fs::read(seg(dir, n)).unwrap();
    bytes.truncate(doc::data_end(&bytes).max(doc::HEADER));
    bytes
}

fn write(dir: &Path, n: u64, bytes: &[u8]) {
    std::fs::write(seg(dir, n), bytes).unwrap()
}

fn salt(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[32..40].try_into().unwrap())
}

/// Frame start offsets of a segment whose frames are all intact.
fn offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut p = doc::HEADER;
    while p + doc::FRAME_HEADER <= bytes.len() {
        out.push(p);
        p += doc::FRAME_HEADER + u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
    }
    out
}

fn run(key: &str, g: u64) -> Run {
    Run::new(key, format!("{key}-s{g}"), Generation(g), UnixMs(1_000 + g))
}

fn small() -> Options {
    Options::default().segment_bytes_max(inflight::limits::SEGMENT_BYTES_MIN)
}

/// A log written by the real writer: runs k0..k{n-1} started, with `meta_len` bytes of meta.
fn written(n: usize, meta_len: usize, options: Options) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let Opened { log, .. } = Log::open(dir.path(), options).unwrap();
    for i in 0..n {
        log.mark_running(run(&format!("k{i}"), 1).with_meta("m".repeat(meta_len)))
            .unwrap();
    }
    drop(log);
    dir
}

/// Four segments of three ~3.5 KiB records each (the last segment possibly shorter).
fn segmented() -> tempfile::TempDir {
    let dir = written(10, 3500, small());
    assert!(seg(dir.path(), 4).exists(), "the test needs four segments");
    dir
}

/// A hand-made single-segment log (salt 7, log created 500) holding `payloads` as sequences
/// 1, 2, ...
fn crafted(payloads: &[Vec<u8>]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1, &crafted_bytes(1, 1, payloads));
    dir
}

fn crafted_bytes(number: u64, base: u64, payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut b = doc::encode_header(&doc::Header {
        version: 3,
        number,
        base,
        salt: 7 + number,
        log_created: 500,
        segment_created: 600 + number,
    });
    for (i, p) in payloads.iter().enumerate() {
        b.extend(doc::encode_frame(7 + number, base + i as u64, p));
    }
    b
}

// ----- the tests -----

#[test]
fn crc_is_the_zlib_crc() {
    assert_eq!(doc::crc32(&[b"123456789"]), 0xCBF4_3926);
    assert_eq!(
        doc::crc32(&[b"hello ", b"world"]),
        crc32fast::hash(b"hello world")
    );
}

#[test]
fn an_undamaged_log_written_by_the_crate() {
    let dir = tempfile::tempdir().unwrap();
    let Opened { log, .. } = Log::open(dir.path(), Options::default()).unwrap();
    log.mark_running(run("b", 1).with_meta("x")).unwrap();
    log.mark_running(run("a", 2)).unwrap();
    log.mark_running(run("a", 3)).unwrap(); // supersedes a/2
    log.mark_completed_at("b", 1, UnixMs(9)).unwrap();
    log.mark_running(run("c", 1)).unwrap();
    drop(log);
    let r = ok(dir.path());
    assert_eq!(r.records, 5);
    assert_eq!(r.counters.superseded, 1);
    assert_eq!(r.running.len(), 2);
}

#[test]
fn a_log_crafted_from_the_document_alone() {
    let dir = crafted(&[
        doc::started("k", "s", 1, 10, Some("meta")),
        doc::started("j", "s", 4, 11, None),
        doc::completed("j", 4, 12),
        doc::shutdown(13),
    ]);
    let r = ok(dir.path());
    assert_eq!(r.records, 4);
    assert!(r.clean_shutdown);
    assert_eq!(r.coverage_since_ms, Some(500));
    assert_eq!(r.running[0].reason, "shutdown");
}

/// Edge case 1: a completion raises the mark of a key with no running run; a start below it
/// is then stale.
#[test]
fn a_completion_raises_the_mark_then_a_start_below_it_is_stale() {
    let dir = crafted(&[
        doc::completed("k", 5, 10),
        doc::started("k", "s", 3, 11, None),
        doc::started("k", "s", 5, 12, None),
    ]);
    let r = ok(dir.path());
    assert_eq!(r.counters.unknown_completions, 1);
    assert_eq!(r.counters.stale_starts, 1);
    assert_eq!(r.running.len(), 1);
    assert_eq!(r.running[0].generation, 5);
}

/// Edge case 2: stale starts, stale completions and unknown completions, each counted apart.
#[test]
fn stale_starts_stale_completions_and_unknown_completions_are_counted() {
    let dir = crafted(&[
        doc::started("k", "s", 4, 10, None),
        doc::started("k", "s", 2, 11, None), // stale start
        doc::completed("k", 3, 12),          // stale completion
        doc::completed("k", 3, 12),          // stale completion
        doc::completed("x", 1, 13),          // unknown
        doc::completed("x", 1, 13),          // unknown
        doc::completed("y", 0, 13),          // unknown
        doc::started("k", "s", 4, 14, None), // equal to the mark: replaces
        doc::completed("k", 9, 15),          // removes, raises the mark to 9
        doc::started("k", "s", 8, 16, None), // stale
        doc::started("x", "s", 1, 17, None), // at the mark: runs
        doc::shutdown(18),
        doc::started("z", "s", 1, 19, None), // after the shutdown: crash
        doc::started("x", "s2", 2, 20, None), // replaced after the shutdown: crash
    ]);
    let r = ok(dir.path());
    assert_eq!(r.stale_ignored, 4);
    assert_eq!(r.counters.unknown_completions, 3);
    assert_eq!(r.counters.superseded, 2);
    let reasons: Vec<_> = r.running.iter().map(|x| x.reason.as_str()).collect();
    assert_eq!(reasons, ["crash", "crash"]);
    assert!(!r.clean_shutdown);
}

/// Edge case 3: a middle segment deleted: a gap at the next segment's base sequence.
#[test]
fn a_missing_middle_segment_is_a_gap_at_the_base_sequence() {
    let dir = segmented();
    std::fs::remove_file(seg(dir.path(), 2)).unwrap();
    let r = ok(dir.path());
    assert_eq!(r.corruption.len(), 1);
    assert_eq!(
        (r.corruption[0].start_offset, r.corruption[0].end_offset),
        (0, 0)
    );
}

/// The first segment deleted: records 1.. are missing before the first one left.
#[test]
fn a_missing_first_segment_is_a_gap_at_the_start() {
    let dir = segmented();
    std::fs::remove_file(seg(dir.path(), 1)).unwrap();
    let r = ok(dir.path());
    assert_eq!(r.corruption.len(), 1);
    assert_eq!(r.corruption[0].after_seq, 0);
}

/// Edge case 4: damage at the end of one segment, then the next segment is missing: one region.
#[test]
fn damage_at_the_end_of_a_segment_then_a_missing_segment_is_one_region() {
    let dir = segmented();
    let mut b = read(dir.path(), 1);
    let n = b.len();
    b[n - 10] ^= 0xff;
    write(dir.path(), 1, &b);
    std::fs::remove_file(seg(dir.path(), 2)).unwrap();
    let r = ok(dir.path());
    assert_eq!(r.corruption.len(), 1);
}

/// Damage at the end of one segment, then the next segment's first frame cut short in the
/// last segment (a tail): the earlier damage is corruption reaching the end.
#[test]
fn damage_at_the_end_of_a_segment_then_a_torn_first_frame_in_the_last() {
    let dir = written(4, 3500, small());
    let last = (1..)
        .take_while(|n| seg(dir.path(), *n).exists())
        .last()
        .unwrap();
    assert!(last >= 2);
    let mut prev = read(dir.path(), last - 1);
    let n = prev.len();
    prev[n - 10] ^= 0xff;
    write(dir.path(), last - 1, &prev);
    let b = read(dir.path(), last);
    let o = offsets(&b);
    write(dir.path(), last, &b[..o[o.len() - 1] + 20]);
    let r = ok(dir.path());
    assert!(r.torn_tail.is_some());
    assert_eq!(r.corruption.len(), 1);
    assert_eq!(r.corruption[0].before_seq, None);
}

/// Edge case 5: a damaged header whose salt survives: its frames still count.
#[test]
fn a_damaged_header_whose_salt_survives() {
    let dir = segmented();
    let mut b = read(dir.path(), 2);
    b[50] ^= 0x01; // segment created: only the checksum fails
    write(dir.path(), 2, &b);
    let r = ok(dir.path());
    assert_eq!(r.corruption.len(), 1);
    assert_eq!(
        (r.corruption[0].start_offset, r.corruption[0].end_offset),
        (0, 64)
    );
    assert_eq!(r.records, 10);
}

/// Edge case 5: a damaged header whose salt is damaged too: two regions.
#[test]
fn a_damaged_header_whose_salt_is_damaged() {
    let dir = segmented();
    let mut b = read(dir.path(), 2);
    b[33] ^= 0x01;
    write(dir.path(), 2, &b);
    let r = ok(dir.path());
    assert_eq!(r.corruption.len(), 2);
}

fn with_header(dir: &Path, n: u64, change: impl FnOnce(&mut Vec<u8>)) {
    let mut b = read(dir, n);
    change(&mut b);
    write(dir, n, &b);
}

/// Edge case 6: each header check alone, in a middle segment and in the last one.
#[test]
fn header_checks_one_at_a_time() {
    type Change = fn(&mut Vec<u8>);
    let changes: [(&str, Change); 6] = [
        ("header length 63", |b| {
            b[12] = 63;
            doc::reseal_header(b);
        }),
        ("reserved nonzero", |b| {
            b[57] = 1;
            doc::reseal_header(b);
        }),
        ("log created differs", |b| {
            b[40..48].copy_from_slice(&7u64.to_le_bytes());
            doc::reseal_header(b);
        }),
        ("segment number", |b| {
            b[16] ^= 0x40;
            doc::reseal_header(b);
        }),
        ("base sequence overlaps", |b| {
            let base = u64::from_le_bytes(b[24..32].try_into().unwrap());
            b[24..32].copy_from_slice(&(base - 1).to_le_bytes());
            doc::reseal_header(b);
        }),
        ("magic", |b| {
            b[0] = b'X';
            doc::reseal_header(b);
        }),
    ];
    for (what, change) in changes {
        for n in [2, 4] {
            let dir = segmented();
            with_header(dir.path(), n, change);
            eprintln!("{what}, segment {n}");
            let _ = agree(dir.path());
        }
    }
}

/// Edge case 6: a base sequence above the next expected one (records missing), and a base
/// sequence jumping back below it.
#[test]
fn base_sequence_above_and_below_next() {
    let dir = segmented();
    with_header(dir.path(), 3, |b| {
        // Sequences in segment 3 no longer follow its base: every frame is below next.
        let base = u64::from_le_bytes(b[24..32].try_into().unwrap());
        b[24..32].copy_from_slice(&(base + 2).to_le_bytes());
        doc::reseal_header(b);
    });
    let _ = agree(dir.path());
}

/// Edge case 6: a segment file renamed to a higher number: the numbers have a gap, the
/// sequences run on, and the header's number no longer matches the file name.
#[test]
fn a_renamed_segment() {
    let dir = segmented();
    let last = (1..)
        .take_while(|n| seg(dir.path(), *n).exists())
        .last()
        .unwrap();
    std::fs::rename(seg(dir.path(), last), seg(dir.path(), last + 5)).unwrap();
    let r = ok(dir.path());
    assert_eq!(r.corruption.len(), 1, "check 5 fails");

    // Renumbered consistently (header too): a gap in numbers loses nothing.
    with_header(dir.path(), last + 5, |b| {
        b[16..24].copy_from_slice(&(last + 5).to_le_bytes());
        doc::reseal_header(b);
    });
    let r = ok(dir.path());
    assert!(r.corruption.is_empty());
    assert_eq!(r.records, 10);
}

/// Edge case 6: an unsupported version, with magic and checksum holding, anywhere.
#[test]
fn an_unsupported_version_is_an_error() {
    for (n, version) in [(1, 4), (2, 0), (4, 4), (2, u32::MAX)] {
        let dir = segmented();
        with_header(dir.path(), n, |b| {
            b[8..12].copy_from_slice(&version.to_le_bytes());
            doc::reseal_header(b);
        });
        assert_eq!(agree(dir.path()), Err(Failure::UnsupportedVersion));
    }
    // Version 4 without a valid checksum is only a damaged header.
    let dir = segmented();
    with_header(dir.path(), 2, |b| b[8] = 4);
    assert!(agree(dir.path()).is_ok());
    // Versions 1, 2 and 3 are read the same way.
    for version in [1u32, 2, 3] {
        let dir = segmented();
        for n in 1..=4 {
            with_header(dir.path(), n, |b| {
                b[8..12].copy_from_slice(&version.to_le_bytes());
                doc::reseal_header(b);
            });
        }
        let r = ok(dir.path());
        assert!(
            r.corruption.is_empty() && r.records == 10,
            "version {version}"
        );
    }
}

/// Edge case 7: damage at the end of a segment whose header is damaged is never a torn tail.
#[test]
fn damage_at_the_end_of_a_segment_with_a_damaged_header() {
    for salt_too in [false, true] {
        let dir = written(3, 10, Options::default());
        with_header(dir.path(), 1, |b| {
            b[if salt_too { 35 } else { 45 }] ^= 0x10;
            let n = b.len();
            b.truncate(n - 5);
        });
        let r = ok(dir.path());
        assert!(r.torn_tail.is_none());
    }
}

/// Edge case 8: clean shutdown, and what can follow a shutdown.
#[test]
fn clean_shutdown_and_what_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let Opened { log, .. } = Log::open(dir.path(), Options::default()).unwrap();
    log.mark_running(run("a", 1)).unwrap();
    log.close().unwrap();
    let r = ok(dir.path());
    assert!(r.clean_shutdown);
    let clean = read(dir.path(), 1);

    // A torn append after the shutdown.
    let mut b = clean.clone();
    b.extend(&doc::encode_frame(salt(&clean), 3, &doc::started("b", "s", 1, 1, None))[..20]);
    write(dir.path(), 1, &b);
    let r = ok(dir.path());
    assert!(r.torn_tail.is_some() && !r.clean_shutdown);

    // Garbage longer than a frame after the shutdown.
    let mut b = clean.clone();
    b.extend(std::iter::repeat_n(0xAB, 9000));
    write(dir.path(), 1, &b);
    assert!(!ok(dir.path()).clean_shutdown);

    // Trailing zeros after the shutdown.
    let mut b = clean.clone();
    b.extend([0; 100]);
    write(dir.path(), 1, &b);
    assert!(!ok(dir.path()).clean_shutdown);

    // An invalid event after the shutdown.
    let mut b = clean.clone();
    b.extend(doc::encode_frame(salt(&clean), 3, &[7]));
    write(dir.path(), 1, &b);
    assert!(!ok(dir.path()).clean_shutdown);

    // A shutdown in a middle segment, then an unfinished header.
    write(dir.path(), 1, &clean);
    write(dir.path(), 2, &b"INFLIGHT"[..]);
    let r = ok(dir.path());
    assert!(!r.clean_shutdown && r.torn_tail.is_some());
}

/// Edge case 9: the last frame cut at every point.
#[test]
fn a_torn_last_frame_at_every_cut_point() {
    let dir = written(3, 50, Options::default());
    let full = read(dir.path(), 1);
    let o = offsets(&full);
    let last = o[o.len() - 1];
    for cut in last..full.len() {
        write(dir.path(), 1, &full[..cut]);
        let r = ok(dir.path());
        assert_eq!(r.torn_tail.is_some(), cut > last, "cut at {cut}");
    }
    // And every cut of a segment's last frame that is followed by a new segment.
    for cut in (last + 1..full.len()).step_by(7) {
        write(dir.path(), 1, &full[..cut]);
        write(dir.path(), 2, &crafted_bytes(2, 3, &[doc::shutdown(4)]));
        let r = ok(dir.path());
        assert!(r.torn_tail.is_none() && r.corruption.len() == 1);
        std::fs::remove_file(seg(dir.path(), 2)).unwrap();
    }
}

/// Edge case 9: a torn last frame in a multi-segment log, and one whose bytes were flipped
/// rather than cut.
#[test]
fn a_flipped_byte_in_the_last_frame_at_every_position() {
    let dir = written(3, 50, Options::default());
    let full = read(dir.path(), 1);
    let o = offsets(&full);
    let last = o[o.len() - 1];
    for at in last..full.len() {
        for extra in [0, 3] {
            let mut b = full.clone();
            b[at] ^= 0x20;
            b.extend(std::iter::repeat_n(0, extra));
            write(dir.path(), 1, &b);
            let r = ok(dir.path());
            let header_intact =
                !(last..last + 4).contains(&at) && !(last + 8..last + 16).contains(&at);
            if extra == 3 && header_intact {
                // Bytes past the end of the frame an intact header describes: not a torn tail.
                assert!(r.torn_tail.is_none(), "flip at {at}");
            }
        }
    }
}

/// Reserved space: the run of 0xFF that ends a segment is no data; an append into it that a
/// crash tore is a torn tail; zeros where records were are damage, never reserved space; and
/// 0xFF bytes followed by a record are damage too.
#[test]
fn reserved_space() {
    let dir = written(3, 50, Options::default());
    let file = std::fs::read(seg(dir.path(), 1)).unwrap();
    let data = read(dir.path(), 1);
    assert!(
        file.len() > data.len() + 4096 && file[data.len()..].iter().all(|&b| b == 0xFF),
        "the writer reserves the space after the records"
    );
    let r = ok(dir.path());
    assert_eq!(
        (r.records, r.torn_tail.is_some(), r.corruption.len()),
        (3, false, 0)
    );

    // A torn append into the reserved space: a few bytes of a frame, then 0xFF again.
    let mut torn = file.clone();
    torn[data.len()..data.len() + 10].copy_from_slice(&[0x40, 0, 0, 0, 1, 2, 3, 4, 4, 0]);
    write(dir.path(), 1, &torn);
    let r = ok(dir.path());
    let t = r.torn_tail.expect("a torn tail");
    assert_eq!((t.offset, t.bytes), (data.len() as u64, 10));

    // The last two records zeroed (a disk that lost them): damage, reported, never reserved
    // space.
    let o = offsets(&data);
    let mut zeroed = file.clone();
    zeroed[o[1]..data.len()].fill(0);
    write(dir.path(), 1, &zeroed);
    let r = ok(dir.path());
    assert_eq!(r.records, 1);
    let t = r.torn_tail.expect("reported where it is");
    assert_eq!(
        (t.offset, t.bytes),
        (o[1] as u64, (data.len() - o[1]) as u64)
    );

    // The middle record overwritten with 0xFF: a record follows, so it is corruption.
    let mut middle = file.clone();
    middle[o[1]..o[2]].fill(0xFF);
    write(dir.path(), 1, &middle);
    let r = ok(dir.path());
    assert_eq!((r.records, r.corruption.len()), (2, 1));
    assert_eq!(r.corruption[0].start_offset, o[1] as u64);
}

/// Edge case 9: trailing zeros, of many lengths.
#[test]
fn trailing_zeros() {
    let dir = written(2, 10, Options::default());
    let full = read(dir.path(), 1);
    for zeros in [1, 3, 4, 15, 16, 17, 100, 8208, 8209, 9000] {
        let mut b = full.clone();
        b.extend(std::iter::repeat_n(0, zeros));
        write(dir.path(), 1, &b);
        let r = ok(dir.path());
        eprintln!("{zeros} zeros: {:?} {:?}", r.torn_tail, r.corruption);
    }
}

/// Edge case 9: a complete, checksum-valid copy of an earlier frame appended at the end.
#[test]
fn a_copy_of_an_earlier_frame_at_the_end() {
    let dir = written(3, 10, Options::default());
    let full = read(dir.path(), 1);
    let o = offsets(&full);
    for (from, cut) in [(0, 0), (1, 0), (2, 0), (0, 3), (1, 1)] {
        let mut b = full.clone();
        let end = if from + 1 < o.len() {
            o[from + 1]
        } else {
            full.len()
        };
        b.extend_from_slice(&full[o[from]..end - cut]);
        write(dir.path(), 1, &b);
        let r = ok(dir.path());
        if cut == 0 {
            assert!(r.torn_tail.is_none(), "a valid frame cannot be torn");
        }
    }
    // A copy preceded by a few junk bytes.
    let mut b = full.clone();
    b.extend([1, 2, 3]);
    b.extend_from_slice(&full[o[0]..o[1]]);
    write(dir.path(), 1, &b);
    let _ = agree(dir.path());
}

/// Edge case 9: a short junk file as the only segment; a header prefix or zeros as a last
/// segment of at most 64 bytes.
#[test]
fn short_segment_files() {
    let dir = tempfile::tempdir().unwrap();
    for junk in [
        &b""[..],
        b"x",
        b"hello, this is not a log",
        &[0xAB; 63],
        &[0xAB; 64],
    ] {
        write(dir.path(), 1, junk);
        let _ = agree(dir.path());
    }
    let header = crafted_bytes(2, 3, &[]);
    for prefix in [0, 1, 8, 20, 24, 40, 56, 60, 63, 64] {
        let dir = crafted(&[doc::started("a", "s", 1, 1, None), doc::shutdown(2)]);
        write(dir.path(), 2, &header[..prefix]);
        let r = ok(dir.path());
        eprintln!("prefix {prefix}: {:?} {:?}", r.torn_tail, r.corruption);
        // Zeros.
        write(dir.path(), 2, &vec![0; prefix]);
        let _ = agree(dir.path());
        // A prefix whose salt and times are there but the checksum is not.
        let mut b = header.clone();
        b[60..64].fill(0);
        write(dir.path(), 2, &b[..prefix]);
        let _ = agree(dir.path());
        // A prefix with a wrong segment number.
        let mut b = header[..prefix].to_vec();
        if prefix > 16 {
            b[16] = 9;
        }
        write(dir.path(), 2, &b);
        let _ = agree(dir.path());
    }
    // A header prefix as a middle segment.
    let dir = crafted(&[doc::started("a", "s", 1, 1, None)]);
    write(dir.path(), 2, &header[..20]);
    write(dir.path(), 3, &crafted_bytes(3, 2, &[doc::shutdown(2)]));
    let _ = agree(dir.path());
    // A complete header, checksum valid, that fails check 5: damaged, not unfinished.
    let dir = crafted(&[doc::started("a", "s", 1, 1, None)]);
    let mut b = crafted_bytes(2, 2, &[]);
    b[16] = 3;
    doc::reseal_header(&mut b);
    write(dir.path(), 2, &b);
    let r = ok(dir.path());
    assert!(r.torn_tail.is_none() && r.corruption.len() == 1);
    // A complete valid header with no frames as the last segment.
    let dir = crafted(&[doc::started("a", "s", 1, 1, None)]);
    write(dir.path(), 2, &crafted_bytes(2, 2, &[]));
    let _ = agree(dir.path());
}

/// Edge case 10: a frame whose checksum holds around a payload that is not a valid event, in
/// the middle and at the end.
#[test]
fn checksummed_frames_that_are_not_events() {
    let mut bad: Vec<(&str, Vec<u8>)> = vec![
        ("unknown variant", vec![5, 0]),
        ("variant 3 without its field", vec![3]),
        ("variant 4 with one field", vec![4, 1]),
        (
            "variant 4 with a trailing byte",
            [doc::retention(1, 2), vec![0]].concat(),
        ),
        ("trailing byte", [doc::shutdown(5), vec![0]].concat()),
        (
            "truncated",
            doc::started("k", "s", 1, 1, None)[..4].to_vec(),
        ),
        ("option byte 2", {
            let mut p = doc::started("k", "s", 1, 1, None);
            *p.last_mut().unwrap() = 2;
            p
        }),
        ("empty key", doc::completed("", 1, 1)),
        ("key of 1025 bytes", doc::completed(&"k".repeat(1025), 1, 1)),
        (
            "session of 257 bytes",
            doc::started("k", &"s".repeat(257), 1, 1, None),
        ),
        (
            "meta of 4097 bytes",
            doc::started("k", "s", 1, 1, Some(&"m".repeat(4097))),
        ),
        ("invalid UTF-8", {
            let mut p = vec![1];
            doc::string(&[0xff, 0xfe], &mut p);
            p.extend([1, 1]);
            p
        }),
        (
            "6-byte variant index",
            vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 5],
        ),
        ("11-byte u64", [vec![2], vec![0x80; 10], vec![0]].concat()),
        (
            "tenth u64 byte 0x02",
            [vec![2], vec![0x80; 9], vec![0x02]].concat(),
        ),
        (
            "string length overflow",
            [vec![1], vec![0xff; 9], vec![0x01]].concat(),
        ),
        // Longer than needed: only the shortest form is an encoding.
        (
            "5-byte variant index",
            vec![0x82, 0x80, 0x80, 0x80, 0x00, 5],
        ),
        (
            "10-byte zero",
            [vec![2], vec![0x80; 9], vec![0x00]].concat(),
        ),
        (
            "80 00 generation",
            [vec![1, 1, b'k', 0x80, 0x00, 4]].concat(),
        ),
    ];
    // At the limits: valid.
    let good: Vec<(&str, Vec<u8>)> = vec![
        ("key of 1024 bytes", doc::completed(&"k".repeat(1024), 1, 1)),
        (
            "meta of 4096 bytes",
            doc::started("k", &"s".repeat(256), 1, 1, Some(&"m".repeat(4096))),
        ),
        ("10-byte u64", [vec![2], vec![0x80; 9], vec![0x01]].concat()),
    ];
    for (what, payload) in &good {
        let dir = crafted(std::slice::from_ref(payload));
        let r = ok(dir.path());
        assert!(r.corruption.is_empty() && r.records == 1, "{what}");
    }
    bad.push(("variant 0 without its fields", vec![0]));
    for (what, payload) in &bad {
        eprintln!("{what}");
        // In the middle.
        let dir = crafted(&[
            doc::started("a", "s", 1, 1, None),
            payload.clone(),
            doc::started("b", "s", 1, 2, None),
        ]);
        let r = ok(dir.path());
        assert_eq!(r.corruption.len(), 1, "{what}");
        assert_eq!(r.records, 2, "{what}");
        // At the end.
        let dir = crafted(&[doc::started("a", "s", 1, 1, None), payload.clone()]);
        let r = ok(dir.path());
        assert_eq!(r.corruption.len(), 1, "{what}");
        assert!(r.torn_tail.is_none(), "{what}");
        // Alone, and twice in a row, and followed by a torn frame.
        let dir = crafted(&[payload.clone(), payload.clone()]);
        let mut b = read(dir.path(), 1);
        b.extend(&doc::encode_frame(8, 3, &doc::shutdown(1))[..10]);
        write(dir.path(), 1, &b);
        let _ = agree(dir.path());
    }
}

/// Edge case 11: a frame cut out of the middle of a segment: no damaged byte, records missing.
#[test]
fn a_frame_cut_out_of_the_middle() {
    let dir = written(5, 10, Options::default());
    let full = read(dir.path(), 1);
    let o = offsets(&full);
    for (i, j) in [(1, 2), (2, 3), (1, 3), (3, 4)] {
        let mut b = full[..o[i]].to_vec();
        b.extend_from_slice(&full[o[j]..]);
        write(dir.path(), 1, &b);
        let r = ok(dir.path());
        assert_eq!(r.corruption.len(), 1);
        assert_eq!(r.corruption[0].start_offset, r.corruption[0].end_offset);
    }
    // The last frame cut out: nothing tells.
    write(dir.path(), 1, &full[..o[4]]);
    assert!(ok(dir.path()).corruption.is_empty());
    // Cut out, with damage right before the cut.
    let mut b = full[..o[2]].to_vec();
    b[o[2] - 3] ^= 1;
    b.extend_from_slice(&full[o[3]..]);
    write(dir.path(), 1, &b);
    assert_eq!(ok(dir.path()).corruption.len(), 1);
    // Frames swapped: a sequence below next after a valid one.
    let mut b = full[..o[1]].to_vec();
    b.extend_from_slice(&full[o[2]..o[3]]);
    b.extend_from_slice(&full[o[1]..o[2]]);
    b.extend_from_slice(&full[o[3]..]);
    write(dir.path(), 1, &b);
    let _ = agree(dir.path());
}

/// Damage in the middle of a segment, in a multi-segment log, at several places.
#[test]
fn damage_in_the_middle_at_many_places() {
    let dir = segmented();
    let original = read(dir.path(), 2);
    for at in (0..original.len()).step_by(97) {
        let mut b = original.clone();
        b[at] ^= 0x04;
        write(dir.path(), 2, &b);
        let _ = agree(dir.path());
    }
}

/// Strict policy's first corruption, when damage precedes a segment with an unsupported
/// version: which error wins.
#[test]
fn damage_then_an_unsupported_version() {
    let dir = segmented();
    with_header(dir.path(), 1, |b| {
        let n = b.len();
        b[n - 10] ^= 0xff;
    });
    with_header(dir.path(), 2, |b| {
        b[8] = 4;
        doc::reseal_header(b);
    });
    assert_eq!(agree(dir.path()), Err(Failure::UnsupportedVersion));
}

/// Files that are not segments are ignored.
#[test]
fn other_names_are_ignored() {
    let dir = crafted(&[doc::started("a", "s", 1, 1, None)]);
    std::fs::write(dir.path().join("00000000000000000002.log.tmp"), b"junk").unwrap();
    std::fs::write(dir.path().join("2.log"), b"junk").unwrap();
    std::fs::write(dir.path().join("0000000000000000002.log"), b"junk").unwrap();
    std::fs::write(dir.path().join("LOCK"), b"123").unwrap();
    std::fs::write(dir.path().join("0000000000000000000a.log"), b"junk").unwrap();
    std::fs::write(dir.path().join("99999999999999999999.log"), b"junk").unwrap();
    std::fs::write(dir.path().join(format!("{}.log", u64::MAX)), b"junk").unwrap();
    let r = ok(dir.path());
    assert_eq!(r.segments, 1);
}

/// Edge case 4, the other way: damage at the end of one segment, then the next segment's
/// first frame cut out (its header is intact, the records after it survive).
#[test]
fn damage_at_the_end_of_a_segment_then_a_frame_missing_at_the_start_of_the_next() {
    let dir = segmented();
    with_header(dir.path(), 1, |b| {
        let n = b.len();
        b[n - 10] ^= 0xff;
    });
    with_header(dir.path(), 2, |b| {
        let o = offsets(b);
        let rest = b[o[1]..].to_vec();
        b.truncate(o[0]);
        b.extend(rest);
    });
    // Step 1 merges missing records into pending damage only at a segment's base sequence;
    // a frame missing after an intact header is its own empty region (step 4).
    let r = ok(dir.path());
    assert_eq!(r.corruption.len(), 2, "{:?}", r.corruption);
    assert_eq!(r.corruption[1].start_offset, 64);
    assert_eq!(r.corruption[1].end_offset, 64);
}

/// Random damage of every kind across a multi-segment log: flips, zeroed stretches, cuts,
/// copies, deleted and emptied segments, and combinations.
#[test]
fn random_damage_agrees() {
    let template = segmented();
    let originals: Vec<Vec<u8>> = (1..=4).map(|n| read(template.path(), n)).collect();
    let mut rng = fastrand::Rng::with_seed(0x1f1_6417);
    for round in 0..400 {
        let dir = tempfile::tempdir().unwrap();
        let mut segs = originals.clone();
        for _ in 0..rng.usize(1..=3) {
            let s = rng.usize(..segs.len());
            let len = segs[s].len();
            match rng.u8(..7) {
                0 if len > 0 => segs[s][rng.usize(..len)] ^= 1 << rng.u8(..8),
                1 if len > 0 => {
                    let a = rng.usize(..len);
                    let b = (a + rng.usize(1..200)).min(len);
                    segs[s][a..b].fill(0);
                }
                2 if len > 0 => segs[s].truncate(rng.usize(..len)),
                3 => {
                    let extra = rng.usize(1..9000);
                    segs[s].extend((0..extra).map(|_| rng.u8(..)));
                }
                4 if len > 100 => {
                    let a = rng.usize(64..len);
                    let b = rng.usize(a..len);
                    let copy = segs[s][a..b].to_vec();
                    segs[s].extend(copy);
                }
                5 if len > 100 => {
                    let a = rng.usize(64..len);
                    let b = rng.usize(a..len);
                    segs[s].drain(a..b);
                }
                _ => segs[s].clear(),
            }
        }
        let delete = if rng.u8(..4) == 0 {
            Some(rng.usize(..segs.len()))
        } else {
            None
        };
        for (i, b) in segs.iter().enumerate() {
            if Some(i) != delete {
                write(dir.path(), i as u64 + 1, b);
            }
        }
        if std::fs::read_dir(dir.path()).unwrap().count() == 0 {
            continue;
        }
        let before = files(dir.path());
        eprintln!("round {round}");
        let _ = agree(dir.path());
        assert_eq!(files(dir.path()), before);
    }
}

#[test]
fn a_frame_with_the_largest_sequence_number_is_never_valid() {
    // Segment 1 holds record 1; a checksum-valid frame with sequence u64::MAX follows, in the
    // middle (before record 2) and at the end.
    let one = doc::shutdown(5);
    for at_end in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut b = crafted_bytes(1, 1, std::slice::from_ref(&one));
        b.extend(doc::encode_frame(8, u64::MAX, &doc::shutdown(6)));
        if !at_end {
            b.extend(doc::encode_frame(8, 2, &doc::shutdown(7)));
        }
        write(dir.path(), 1, &b);
        let r = agree(dir.path()).unwrap();
        // Never valid, so plain damage: corruption before record 2, a torn tail at the end.
        if at_end {
            assert_eq!((r.records, r.torn_tail_bytes), (1, 18), "{r:?}");
        } else {
            assert_eq!((r.records, r.corruption.len()), (2, 1), "{r:?}");
        }
    }
}

// ----- version 2: the log's own records, snapshots, version-1 segments -----

/// A clock the test moves, and fixed salts.
#[derive(Clone)]
struct Clock(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Clock {
    fn at(ms: u64) -> Clock {
        Clock(std::sync::Arc::new(std::sync::atomic::AtomicU64::new(ms)))
    }

    fn set(&self, ms: u64) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl inflight::Environment for Clock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn salt(&self) -> u64 {
        0x5a17
    }
}

/// The snapshot files of a directory, oldest (lowest number) first.
fn snapshots(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| doc::snapshot_number(p.file_name().unwrap().to_str().unwrap()).is_some())
        .collect();
    out.sort();
    out
}

/// The segment numbers of a directory, ascending.
fn segment_numbers(dir: &Path) -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| doc::segment_number(e.unwrap().file_name().to_str().unwrap()))
        .collect();
    out.sort();
    out
}

fn snapshot_file(dir: &Path, last_seq: u64) -> std::path::PathBuf {
    dir.join(format!("snapshot-{last_seq:020}.json"))
}

/// A version-1 snapshot file's bytes around `body`, with the checksum the document defines.
fn snapshot_bytes(body: &str) -> Vec<u8> {
    versioned_snapshot_bytes(1, body)
}

/// A snapshot file of `version` around `body`.
fn versioned_snapshot_bytes(version: u32, body: &str) -> Vec<u8> {
    let crc = doc::crc32(&[body.as_bytes()]);
    format!("{{\"inflight_snapshot\":{version},\"body_crc32\":{crc},\"body\":{body}}}\n")
        .into_bytes()
}

/// A log compacted twice, so that the newest snapshot has a predecessor and the segments
/// between the two are gone: runs on k0..k5, completions, a shutdown, reopens (recoveries),
/// two compactions with events between and after them.
fn compacted_twice() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap().log;
    for i in 0..4 {
        log.mark_running(run(&format!("k{i}"), 1).with_meta("m".repeat(3000)))
            .unwrap();
    }
    log.mark_completed_at("k0", 1, UnixMs(2_000)).unwrap();
    log.compact().unwrap();
    log.mark_running(run("k4", 1)).unwrap();
    log.mark_completed_at("k1", 1, UnixMs(2_001)).unwrap();
    drop(log);
    // A crash, then a recovery.
    let log = Log::open(dir.path(), small()).unwrap().log;
    log.mark_running(run("k5", 2).with_meta("n".repeat(3000)))
        .unwrap();
    log.compact().unwrap();
    log.mark_running(run("k2", 2)).unwrap();
    log.mark_completed_at("k3", 1, UnixMs(2_002)).unwrap();
    drop(log);
    assert_eq!(
        snapshots(dir.path()).len(),
        2,
        "the previous snapshot is kept"
    );
    dir
}

/// Events 3 and 4 crafted by hand, in a version-3 segment: the fold's rules for them. A
/// recovery record counts only the runs that are running and makes them not running; a
/// shutdown marks only the running ones.
#[test]
fn recovery_and_retention_records_crafted_from_the_document() {
    let events = [
        doc::started("a", "s", 1, 10, None),
        doc::started("b", "s", 1, 11, None),
        doc::started("c", "s", 1, 12, None),
        doc::recovered(13), // a, b, c: 1, none running
        doc::completed("c", 1, 14),
        doc::started("a", "s", 2, 15, None), // resumes a/1: carries its count, running
        doc::recovered(16),                  // a: 2; b was not running: stays at 1
        doc::started("c", "s", 2, 17, None), // c again, from 0
        // Up to here: the first check below.
        doc::shutdown(18), // only c is running: c is the shutdown's, a and b stay crashes
        doc::recovered(19), // c: one graceful stop; a and b keep their counts
        doc::started("d", "s", 5, 20, None),
        doc::completed("d", 5, 21),
        doc::completed("e", 3, 5), // unknown: e's mark is 3, its last event 5
        doc::started("e", "s", 1, 30, None), // stale, and e's last event is now 30
        doc::completed("f", 2, 7),
        doc::retention(25, 40), // forgets d (21) and f (7), keeps e (30) and the keys in flight
        doc::started("f", "s", 1, 41, None), // f was forgotten: not stale
        doc::retention(u64::MAX, 42), // forgets e, the only idle mark left
    ];
    let dir = crafted(&events[..8]);
    let r = ok(dir.path());
    let counts: Vec<(&str, u32, bool)> = r
        .running
        .iter()
        .map(|x| (x.key.as_str(), x.recoveries, x.running))
        .collect();
    assert_eq!(counts, [("a", 2, false), ("b", 1, false), ("c", 0, true)]);
    assert_eq!(r.counters.recoveries, 2);

    let dir = crafted(&events);
    let r = ok(dir.path());
    assert_eq!(r.counters.recoveries, 3);
    assert_eq!(r.counters.retentions, 2);
    assert_eq!(r.counters.forgotten, 3);
    assert_eq!(r.counters.stale_starts, 1);
    assert!(!r.clean_shutdown, "starts follow the shutdown");
    let counts: Vec<(&str, u32, u32, &str, &str)> = r
        .running
        .iter()
        .map(|x| {
            let state = x.state();
            (
                x.key.as_str(),
                x.recoveries,
                x.stops,
                x.reason.as_str(),
                state,
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("a", 2, 0, "crash", "interrupted"),
            ("b", 1, 0, "crash", "interrupted"),
            ("c", 0, 1, "shutdown", "interrupted"),
            ("f", 0, 0, "crash", "running")
        ]
    );
    // The same records in a version-1 segment.
    let mut b = doc::encode_header(&doc::Header {
        version: 1,
        number: 1,
        base: 1,
        salt: 8,
        log_created: 500,
        segment_created: 601,
    });
    for (i, p) in events.iter().enumerate() {
        b.extend(doc::encode_frame(8, 1 + i as u64, p));
    }
    write(dir.path(), 1, &b);
    assert_eq!(ok(dir.path()), r);

    // A retention record after a shutdown leaves the log clean; a recovery record (a process
    // that opened the log after the shutdown) does not, and counts a graceful stop.
    let dir = crafted(&[
        doc::started("a", "s", 1, 10, None),
        doc::shutdown(11),
        doc::retention(0, 13),
    ]);
    assert!(ok(dir.path()).clean_shutdown);
    let dir = crafted(&[
        doc::started("a", "s", 1, 10, None),
        doc::shutdown(11),
        doc::recovered(12),
        doc::retention(0, 13),
    ]);
    let r = ok(dir.path());
    assert!(!r.clean_shutdown);
    let a = &r.running[0];
    assert_eq!(
        (a.reason.as_str(), a.recoveries, a.stops, a.running),
        ("shutdown", 0, 1, false)
    );
}

/// Reopening after a crash records a recovery, which counts only the runs that were running:
/// a run nobody resumed keeps its count across any number of opens, a resumed one (a start on
/// its key) carries its count and adds the next crash, a completed and restarted one starts
/// over; a clean shutdown then counts graceful stops instead.
#[test]
fn reopens_count_recoveries_of_running_runs_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap().log;
    log.mark_running(run("a", 1)).unwrap();
    log.mark_running(run("b", 1)).unwrap();
    drop(log);
    let counts = |report: &inflight::RecoveryReport| -> Vec<(u32, u32, bool)> {
        report
            .running
            .iter()
            .map(|x| (x.recoveries, x.stops, x.running))
            .collect()
    };
    for round in 1..=3u32 {
        let Opened { log, report } = Log::open(dir.path(), Options::default()).unwrap();
        match round {
            // The crash found both running.
            1 => assert_eq!(counts(&report), [(1, 0, false), (1, 0, false)]),
            // Nothing resumed them since: another recovery record leaves their counts.
            2 => {
                assert_eq!(counts(&report), [(1, 0, false), (1, 0, false)]);
                // b resumed (by the log, with a nonce) keeps its count; a completed and
                // restarted starts over.
                let b = log.begin_run("b", "s", None).unwrap();
                assert_ne!(b.nonce, 0);
                assert_eq!(log.in_flight("b").unwrap().recoveries, 1);
                log.mark_completed("a", 1).unwrap();
                log.mark_running(run("a", 2)).unwrap();
            }
            // Both were running again.
            _ => assert_eq!(counts(&report), [(1, 0, false), (2, 0, false)]),
        }
        drop(log);
        let r = ok(dir.path());
        assert_eq!(r.counters.recoveries, u64::from(round));
    }

    // A clean shutdown with only b resumed, then an open: b is reported as interrupted by the
    // shutdown (a graceful stop), a keeps its reason and count (it was not running), and the
    // log no longer ends with a shutdown (that open recorded its recovery and died).
    let Opened { log, .. } = Log::open(dir.path(), Options::default()).unwrap();
    log.begin_run("b", "s", Some("again".into())).unwrap();
    log.close().unwrap();
    drop(log);
    let Opened { log, report } = Log::open(dir.path(), Options::default()).unwrap();
    assert_eq!(counts(&report), [(1, 0, false), (2, 1, false)]);
    drop(log);
    let r = ok(dir.path());
    assert!(!r.clean_shutdown);
    let reasons: Vec<&str> = r.running.iter().map(|x| x.reason.as_str()).collect();
    assert_eq!(reasons, ["crash", "shutdown"]);
    assert_eq!(r.counters.recoveries, 5);
    assert_eq!(r.stop_loop_threshold, 3);
}

/// Retention at a compaction's cut forgets idle marks, by the clock the log was given.
#[test]
fn retention_forgets_idle_marks() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::at(10_000);
    let options = Options::default()
        .environment(clock.clone())
        .retention(Some(std::time::Duration::from_millis(1_000)));
    let log = Log::open(dir.path(), options.clone()).unwrap().log;
    let idle = log.begin_run("idle", "s", None).unwrap();
    log.mark_completed(&idle.key, idle.generation).unwrap();
    log.mark_running(Run::new("late", "s", Generation(4), UnixMs(10_500)))
        .unwrap();
    log.mark_completed_at("late", 4, UnixMs(10_600)).unwrap();
    let busy = log.begin_run("busy", "s", None).unwrap();
    clock.set(11_550); // forget before 10_550: idle (10_000) goes, late (10_600) stays
    let compacted = log.compact().unwrap();
    assert_eq!(compacted.forgotten, 1);
    // After the cut: a start of the forgotten key below its old generation is a new run.
    log.mark_running(Run::new("idle", "s", Generation(1), UnixMs(11_600)))
        .unwrap();
    drop(log);
    let r = ok(dir.path());
    assert_eq!((r.counters.retentions, r.counters.forgotten), (1, 1));
    assert!(r.snapshot.is_some());
    let keys: Vec<&str> = r.running.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys, ["busy", "idle"]);
    assert_eq!(r.running[0].generation, busy.generation);

    // The same without a compaction in between: the retention record is read from a segment.
    let dir2 = tempfile::tempdir().unwrap();
    let log = Log::open(dir2.path(), options).unwrap().log;
    log.mark_running(Run::new("x", "s", Generation(1), UnixMs(1)))
        .unwrap();
    log.mark_completed_at("x", 1, UnixMs(2)).unwrap();
    let _ = log.begin_compaction().unwrap(); // the cut only: the snapshot is never written
    drop(log);
    let r = ok(dir2.path());
    assert_eq!((r.counters.retentions, r.counters.forgotten), (1, 1));
    assert!(r.snapshot.is_none());
}

/// A compacted log starts from its snapshot: covered segments are skipped and the counts are
/// of what follows.
#[test]
fn a_compacted_log_starts_from_its_snapshot() {
    let dir = compacted_twice();
    let r = ok(dir.path());
    let snapshot = r.snapshot.as_ref().unwrap();
    assert_eq!(snapshot.file, {
        let newest = snapshots(dir.path()).pop().unwrap();
        newest.file_name().unwrap().to_str().unwrap().to_string()
    });
    assert_eq!(r.records, 2);
    assert!(r.corruption.is_empty() && r.torn_tail.is_none());
    assert_eq!(r.counters.recoveries, 1);
    assert_eq!(r.counters.retentions, 2);
    let counts: Vec<(&str, u32)> = r
        .running
        .iter()
        .map(|x| (x.key.as_str(), x.recoveries))
        .collect();
    assert_eq!(counts, [("k2", 1), ("k4", 1), ("k5", 0)]);

    // Segments below the snapshot's next segment left behind (a crash before their removal):
    // skipped, whatever they hold.
    let first = segment_numbers(dir.path())[0];
    assert!(first > 1);
    write(dir.path(), first - 1, b"left behind, not read");
    write(dir.path(), 1, &crafted_bytes(1, 1, &[doc::shutdown(1)]));
    let again = ok(dir.path());
    assert_eq!(again, r);

    // Other names that look like snapshots are ignored.
    std::fs::write(dir.path().join("snapshot-1.json"), b"x").unwrap();
    std::fs::write(
        snapshot_file(dir.path(), 1).with_extension("json.tmp"),
        b"x",
    )
    .unwrap();
    std::fs::write(dir.path().join("snapshot-0000000000000000000x.json"), b"x").unwrap();
    assert_eq!(ok(dir.path()), r);
}

/// The newest snapshot damaged at every byte, truncated at every length, deleted: the reader
/// falls back to the previous one, and the damaged file is a gap.
#[test]
fn the_newest_snapshot_damaged_falls_back_to_the_previous() {
    let dir = compacted_twice();
    let all = snapshots(dir.path());
    let (previous, newest) = (&all[0], &all[1]);
    let original = std::fs::read(newest).unwrap();
    let mut unsupported = 0;
    // Every byte of the envelope and the body's ends; a stride through the metas between.
    let n = original.len();
    let places = (0..n).filter(|&at| at < 300 || at + 60 > n || at % 37 == 0);
    for at in places {
        for mask in [0x01, 0x02, 0x80] {
            let mut b = original.clone();
            b[at] ^= mask;
            std::fs::write(newest, &b).unwrap();
            match agree(dir.path()) {
                Err(Failure::UnsupportedVersion) => unsupported += 1,
                Ok(r) => {
                    let start = r.snapshot.as_ref().unwrap();
                    assert_eq!(
                        start.file,
                        previous.file_name().unwrap().to_str().unwrap(),
                        "a flip at {at}"
                    );
                    assert_eq!(r.corruption.len(), 1);
                    assert_eq!(r.corruption[0].after_seq, start.last_seq);
                    assert_eq!(r.corruption[0].end_offset, original.len() as u64);
                }
                Err(e) => panic!("a flip at {at}: {e:?}"),
            }
        }
    }
    // The version digit `3` flipped to `2` or `1`: versions this build reads, whose bodies
    // this is not, so damaged; or to no digit at all. None is a version it does not know.
    assert_eq!(unsupported, 0);
    for len in (0..n - 1).step_by(7).chain([n - 2]) {
        std::fs::write(newest, &original[..len]).unwrap();
        let r = ok(dir.path());
        assert_eq!(r.corruption[0].end_offset, len as u64);
    }
    // Without its final newline it is still valid.
    std::fs::write(newest, &original[..n - 1]).unwrap();
    assert!(ok(dir.path()).corruption.is_empty());
    // Deleted: the previous snapshot, and records missing before the first segment left.
    std::fs::remove_file(newest).unwrap();
    let r = ok(dir.path());
    assert_eq!(r.corruption.len(), 1);
    assert_eq!(
        (r.corruption[0].start_offset, r.corruption[0].end_offset),
        (0, 0)
    );
    // Both damaged: from nothing; both are gaps, the oldest first.
    std::fs::write(newest, &original[..10]).unwrap();
    std::fs::write(previous, b"{}").unwrap();
    let r = ok(dir.path());
    assert!(r.snapshot.is_none());
    let gaps: Vec<&str> = r.corruption.iter().map(|g| g.segment.as_str()).collect();
    assert_eq!(
        gaps[..2],
        [all[0].file_name().unwrap(), all[1].file_name().unwrap()].map(|n| n.to_str().unwrap())
    );
}

/// The only snapshot damaged after its segments were removed: a gap from the start of the log.
#[test]
fn the_only_snapshot_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap().log;
    log.mark_running(run("a", 1)).unwrap();
    log.mark_running(run("b", 1)).unwrap();
    let compacted = log.compact().unwrap();
    log.mark_completed_at("a", 1, UnixMs(5)).unwrap();
    drop(log);
    let original = std::fs::read(&compacted.snapshot).unwrap();
    for len in [
        0,
        1,
        original.len() / 2,
        original.len() - 3,
        original.len() - 2,
    ] {
        std::fs::write(&compacted.snapshot, &original[..len]).unwrap();
        let r = ok(dir.path());
        assert!(r.snapshot.is_none());
        assert_eq!(r.corruption.len(), 1);
        assert_eq!(r.corruption[0].after_seq, 0);
        assert_eq!(r.counters.unknown_completions, 1);
    }
    // A trailing newline is whitespace, nothing else is.
    let mut b = original.clone();
    b.extend(b" \t\r\n");
    std::fs::write(&compacted.snapshot, &b).unwrap();
    assert!(ok(dir.path()).corruption.is_empty());
    *b.last_mut().unwrap() = 0x0b;
    std::fs::write(&compacted.snapshot, &b).unwrap();
    assert_eq!(ok(dir.path()).corruption.len(), 1);

    // No segment left and the snapshot damaged: a log that lost its state, reported as
    // corruption by default (a gap to the end, no coverage start), an error under strict.
    std::fs::write(&compacted.snapshot, &original[..10]).unwrap();
    for n in segment_numbers(dir.path()) {
        std::fs::remove_file(seg(dir.path(), n)).unwrap();
    }
    let r = ok(dir.path());
    assert_eq!((r.corruption.len(), r.coverage_since_ms), (1, None));
    assert!(r.running.is_empty());
    assert!(matches!(
        real(dir.path(), Policy::Strict),
        Err(Failure::Corrupt { offset: 0, .. })
    ));
    let _ = agree(dir.path());

    // The valid snapshot alone, with no segment after it: a log.
    std::fs::write(&compacted.snapshot, &original).unwrap();
    let r = ok(dir.path());
    assert_eq!((r.segments, r.records, r.running.len()), (0, 0, 2));
    assert_eq!(r.last_seq, compacted.last_seq);
}

/// A snapshot whose name and content disagree, an unsupported snapshot version, and a
/// snapshot the offline compaction wrote.
#[test]
fn snapshot_names_versions_and_the_offline_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap().log;
    log.mark_running(run("a", 1)).unwrap();
    drop(log);
    // Offline: no recovery recorded.
    let compacted = inflight::compaction::compact_dir(dir.path(), Options::default()).unwrap();
    let r = ok(dir.path());
    assert_eq!(r.counters.recoveries, 0);
    assert_eq!(r.running[0].recoveries, 0);
    assert_eq!(r.segments, 1);

    let original = std::fs::read(&compacted.snapshot).unwrap();
    // Renamed to another number: damaged.
    let other = snapshot_file(dir.path(), compacted.last_seq + 1);
    std::fs::rename(&compacted.snapshot, &other).unwrap();
    let r = ok(dir.path());
    assert!(r.snapshot.is_none() && r.corruption.len() == 1);
    std::fs::rename(&other, &compacted.snapshot).unwrap();
    // This build writes snapshot version 3.
    let text = String::from_utf8(original.clone()).unwrap();
    assert!(text.starts_with("{\"inflight_snapshot\":3,"), "{text}");
    let versioned = |v: u32| text.replacen(":3,", &format!(":{v},"), 1);
    std::fs::write(&compacted.snapshot, &original).unwrap();
    // A newer version, its checksum holding: an error, even with a valid older snapshot.
    let newer = snapshot_file(dir.path(), compacted.last_seq + 5);
    std::fs::write(&newer, versioned(4)).unwrap();
    assert_eq!(agree(dir.path()), Err(Failure::UnsupportedVersion));
    std::fs::remove_file(&newer).unwrap();
    // The same version number, older than the start: never read.
    std::fs::write(snapshot_file(dir.path(), 0), versioned(4)).unwrap();
    assert!(ok(dir.path()).snapshot.is_some());
}

/// Snapshots crafted from the document: members in another order, optional members absent,
/// unknown members where they are ignored and where they are not, and each check of the body.
#[test]
fn snapshots_crafted_from_the_document() {
    let counters = r#"{"started":2,"stale_starts":0,"completed":0,"stale_completions":0,"unknown_completions":0,"shutdowns":0,"superseded":0,"recoveries":1,"retentions":0,"forgotten":0}"#;
    let run_a = r#"{"key":"a","session_id":"s","generation":2,"started_at_ms":5,"meta":"m","reason":"crash","recoveries":4294967295}"#;
    let run_b = r#"{"key":"b","session_id":"s","generation":1,"started_at_ms":6,"meta":null,"reason":"shutdown","recoveries":0}"#;
    let marks = r#"[{"key":"a","generation":3,"last_event_ms":5},{"key":"b","generation":1,"last_event_ms":6}]"#;
    let body = |counters: &str, running: &str, marks: &str, rest: &str| {
        format!(
            r#"{{"last_seq":7,"next_segment_no":3,"last_record_ms":6,"coverage_since_ms":1,"created_ms":9,"ended_with_shutdown":true,"counters":{counters},"running":{running},"marks":{marks},"gaps":[]{rest}}}"#
        )
    };
    let good = body(counters, &format!("[{run_a},{run_b}]"), marks, "");
    let cases: Vec<(&str, String, bool)> = vec![
        ("as written", good.clone(), true),
        (
            "whitespace inside the body",
            good.replace(',', " ,\n\t"),
            true,
        ),
        (
            "optional members absent",
            body(
                &counters.replace(r#","recoveries":1,"retentions":0,"forgotten":0"#, ""),
                &format!("[{},{run_b}]", run_a.replace(r#","recoveries":4294967295"#, "")),
                marks,
                "",
            )
            .replace(r#""last_record_ms":6,"#, ""),
            true,
        ),
        (
            "unknown members in a run and in the counters",
            body(
                &counters.replace("{", r#"{"later":[1,{"x":2}],"#),
                &format!("[{},{run_b}]", run_a.replace("{", r#"{"note":"x","#)),
                marks,
                "",
            ),
            true,
        ),
        ("an unknown member in the body", body(counters, &format!("[{run_a},{run_b}]"), marks, r#","x":1"#), false),
        (
            "an unknown member in a mark",
            body(counters, &format!("[{run_a},{run_b}]"), &marks.replacen("}", r#","x":1}"#, 1), ""),
            false,
        ),
        ("a member twice", body(counters, &format!("[{run_a},{run_b}]"), marks, r#","gaps":[]"#), false),
        ("runs out of order", body(counters, &format!("[{run_b},{run_a}]"), marks, ""), false),
        ("a run twice", body(counters, &format!("[{run_a},{run_a}]"), marks, ""), false),
        (
            "a run above its mark",
            body(counters, &format!("[{run_a},{run_b}]"), &marks.replace(r#""generation":3"#, r#""generation":1"#), ""),
            false,
        ),
        ("a run without a mark", body(counters, &format!("[{run_a},{run_b}]"), "[]", ""), false),
        (
            "a mark with an empty key",
            body(counters, "[]", r#"[{"key":"","generation":3,"last_event_ms":5}]"#, ""),
            false,
        ),
        (
            "a session id of 257 bytes",
            body(counters, &format!("[{}]", run_a.replace(r#""session_id":"s""#, &format!(r#""session_id":"{}""#, "s".repeat(257)))), marks, ""),
            false,
        ),
        ("an unknown reason", body(counters, &format!("[{}]", run_a.replace("crash", "oom")), marks, ""), false),
        ("a float", good.replace(r#""created_ms":9"#, r#""created_ms":9.0"#), false),
        ("next segment 0", good.replace(r#""next_segment_no":3"#, r#""next_segment_no":0"#), false),
        (
            "next segment the largest u64",
            good.replace(r#""next_segment_no":3"#, r#""next_segment_no":18446744073709551615"#),
            false,
        ),
        (
            "recoveries over u32",
            body(counters, &format!("[{},{run_b}]", run_a.replace("4294967295", "4294967296")), marks, ""),
            false,
        ),
        ("65 gaps", good.replace(r#""gaps":[]"#, &format!(r#""gaps":[{}]"#, vec![r#"{"segment":"x","start_offset":0,"end_offset":0,"after_seq":0,"detail":"d"}"#; 65].join(","))), false),
        ("64 gaps", good.replace(r#""gaps":[]"#, &format!(r#""gaps":[{}]"#, vec![r#"{"segment":"x","start_offset":0,"end_offset":1,"after_seq":0,"before_seq":null,"detail":"d","more":1}"#; 64].join(","))), true),
        ("the body not an object", "[]".to_string(), false),
        (
            "a lone surrogate in an unknown member of the counters",
            body(&counters.replace("{", r#"{"later":"\ud800","#), &format!("[{run_a},{run_b}]"), marks, ""),
            false,
        ),
        (
            "a lone low surrogate in an unknown member of a run",
            body(counters, &format!("[{},{run_b}]", run_a.replace("{", r#"{"note":"\udc00","#)), marks, ""),
            false,
        ),
        (
            "a paired surrogate in an unknown member of a gap",
            good.replace(r#""gaps":[]"#, r#""gaps":[{"segment":"x","start_offset":0,"end_offset":1,"after_seq":0,"detail":"d","more":"\ud83d\ude00"}]"#),
            true,
        ),
        (
            "1e400 and -0 in unknown members",
            body(&counters.replace("{", r#"{"later":1e400,"#), &format!("[{},{run_b}]", run_a.replace("{", r#"{"note":-0,"#)), marks, ""),
            true,
        ),
        ("-0 in an integer", good.replace(r#""created_ms":9"#, r#""created_ms":-0"#), false),
        (
            "nesting 32 deep in the counters",
            body(&counters.replace("{", &format!(r#"{{"later":{}1{},"#, "[".repeat(29), "]".repeat(29))), &format!("[{run_a},{run_b}]"), marks, ""),
            true,
        ),
        (
            "nesting 33 deep in the counters",
            body(&counters.replace("{", &format!(r#"{{"later":{}1{},"#, "[".repeat(30), "]".repeat(30))), &format!("[{run_a},{run_b}]"), marks, ""),
            false,
        ),
        (
            "nesting 1,000,000 deep in a run",
            body(counters, &format!("[{},{run_b}]", run_a.replace("{", &format!(r#"{{"note":{}1{},"#, "[".repeat(1_000_000), "]".repeat(1_000_000)))), marks, ""),
            false,
        ),
    ];
    for (what, body, valid) in cases {
        eprintln!("{what}");
        let r = replay_crafted_snapshot(1, &body);
        assert_eq!(r.snapshot.is_some(), valid, "{what}");
        if valid {
            // a's count stays at the largest u32 (absent: 0, then 1); b is a shutdown's.
            assert_eq!(r.running.len(), 1, "{what}");
            assert!(!r.clean_shutdown, "{what}");
        }
    }
    // The envelope's members in another order, with whitespace around.
    let crc = doc::crc32(&[good.as_bytes()]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        snapshot_file(dir.path(), 7),
        format!(" {{ \"body\" : {good} , \"inflight_snapshot\" : 1, \"body_crc32\": {crc} }}\r\n"),
    )
    .unwrap();
    let r = ok(dir.path());
    assert!(r.snapshot.is_some() && r.segments == 0 && r.clean_shutdown);
    assert_eq!(r.running[0].recoveries, u32::MAX);
}

/// Both readers' replay of a log holding `body` as snapshot 7 of `version` (covering the
/// segments below 3), then a segment 3 with a recovery and b's completion at generation 1.
fn replay_crafted_snapshot(version: u32, body: &str) -> Replay {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        snapshot_file(dir.path(), 7),
        versioned_snapshot_bytes(version, body),
    )
    .unwrap();
    write(
        dir.path(),
        3,
        &crafted_bytes(3, 8, &[doc::recovered(10), doc::completed("b", 1, 11)]),
    );
    ok(dir.path())
}

/// Version-3 snapshots crafted from the document: the key rows, each check of a row, and the
/// rest of the body as in versions 1 and 2.
#[test]
fn version_3_snapshots_crafted_from_the_document() {
    let counters = r#"{"started":2,"stale_starts":0,"completed":0,"stale_completions":0,"unknown_completions":0,"shutdowns":0,"superseded":0,"recoveries":1,"retentions":0,"forgotten":0,"adopted":0}"#;
    let row_a = r#"["a",3,5,"s",2,5,"m",7,"crash",4294967295,0,false,{"reason":"restart_interrupted","at_ms":6},null]"#;
    let row_b = r#"["b",1,6,"s",1,6,null,0,"shutdown",0,1,true,null,null]"#;
    let row_c = r#"["c",9,4]"#;
    let body = |rows: &str| {
        format!(
            r#"{{"last_seq":7,"next_segment_no":3,"last_record_ms":6,"coverage_since_ms":1,"created_ms":9,"ended_with_shutdown":true,"counters":{counters},"keys":[{rows}],"gaps":[],"forgotten_generation":2}}"#
        )
    };
    let good = body(&format!("{row_a},{row_b},{row_c}"));
    let cases: Vec<(&str, String, bool)> = vec![
        ("as written", good.clone(), true),
        (
            "whitespace inside the rows",
            good.replace(',', " ,\n\t"),
            true,
        ),
        (
            "an unknown member in a pending object",
            good.replace(r#""at_ms":6"#, r#""at_ms":6,"x":[1]"#),
            true,
        ),
        ("no rows", body(""), true),
        (
            "the old runs member",
            good.replace(r#""keys":"#, r#""running":[],"keys":"#),
            false,
        ),
        (
            "a row of 2 members",
            body(&format!(r#"{row_a},{row_b},["c",9]"#)),
            false,
        ),
        (
            "a row of 4 members",
            body(&format!(r#"{row_a},{row_b},["c",9,4,"s"]"#)),
            false,
        ),
        (
            "a row of 15 members",
            body(&format!(
                "{row_a},{},{row_c}",
                row_b.replace("null,null]", "null,null,0]")
            )),
            false,
        ),
        (
            "a row as an object",
            body(&format!(r#"{row_a},{row_b},{{"key":"c"}}"#)),
            false,
        ),
        (
            "rows out of order",
            body(&format!("{row_b},{row_a},{row_c}")),
            false,
        ),
        (
            "a key twice",
            body(&format!("{row_a},{row_a},{row_c}")),
            false,
        ),
        (
            "a run above its mark",
            body(&format!("{},{row_b}", row_a.replacen(",3,", ",1,", 1))),
            false,
        ),
        (
            "an unknown reason",
            body(&row_a.replace("crash", "oom")),
            false,
        ),
        (
            "stops over u32",
            body(&row_b.replace(",0,1,true", ",0,4294967296,true")),
            false,
        ),
        ("an empty key", body(r#"["",1,1]"#), false),
        (
            "a lone surrogate in a key",
            body(r#"["\ud800",1,1]"#),
            false,
        ),
    ];
    for (what, body, valid) in cases {
        eprintln!("{what}");
        let r = replay_crafted_snapshot(3, &body);
        assert_eq!(r.snapshot.is_some(), valid, "{what}");
        if valid && what != "no rows" {
            // a stays (pending, its counts as written); b completes.
            assert_eq!(r.running.len(), 1, "{what}");
            let a = &r.running[0];
            assert_eq!(
                (a.key.as_str(), a.recoveries, a.nonce),
                ("a", u32::MAX, 7),
                "{what}"
            );
            assert_eq!(a.state(), "pending", "{what}");
        }
    }
}

/// Version-1 and version-2 segments written by older builds: read as they are; a read-write
/// open keeps their valid records, cuts a torn tail, and goes on in a new version-3 segment
/// (a writer never appends to a segment of an older version). A version-3 last segment is
/// appended to.
#[test]
fn older_segment_versions_then_an_open() {
    let segment = |version: u32, payloads: &[Vec<u8>]| {
        let mut b = doc::encode_header(&doc::Header {
            version,
            number: 1,
            base: 1,
            salt: 9,
            log_created: 500,
            segment_created: 501,
        });
        for (i, p) in payloads.iter().enumerate() {
            b.extend(doc::encode_frame(9, 1 + i as u64, p));
        }
        b
    };
    let payloads = [
        doc::started("a", "s", 1, 10, None),
        doc::started("b", "s", 1, 11, Some("m")),
        doc::recovered(12), // events 3 and 4 are valid in a version-1 segment too
        doc::completed("b", 1, 13),
    ];
    for version in [1, 2, 3] {
        for torn in [0, 9] {
            let dir = tempfile::tempdir().unwrap();
            let mut b = segment(version, &payloads);
            let valid = b.len();
            b.extend(&doc::encode_frame(9, 5, &doc::shutdown(14))[..torn]);
            write(dir.path(), 1, &b);
            let before = ok(dir.path());
            assert_eq!(before.running[0].recoveries, 1);
            assert_eq!(before.running[0].state(), "interrupted");
            assert_eq!(before.torn_tail_bytes, torn as u64);

            // The open's recovery record finds a not running: its count stays.
            let Opened { log, report } = Log::open(dir.path(), Options::default()).unwrap();
            assert_eq!(report.running[0].recoveries, 1);
            log.mark_running(run("c", 1)).unwrap();
            drop(log);
            assert_eq!(read(dir.path(), 1)[..valid], b[..valid]);
            if version < 3 {
                // Segment 1 holds its valid records, untouched; segment 2 is version 3.
                assert_eq!(read(dir.path(), 1), b[..valid], "version {version}");
                let two = read(dir.path(), 2);
                assert_eq!(u32::from_le_bytes(two[8..12].try_into().unwrap()), 3);
                assert_eq!(u64::from_le_bytes(two[24..32].try_into().unwrap()), 5);
            } else {
                assert!(!seg(dir.path(), 2).exists(), "a version-3 segment goes on");
            }
            let r = ok(dir.path());
            let segments = if version < 3 { 2 } else { 1 };
            assert_eq!(
                (r.segments, r.records, r.counters.recoveries),
                (segments, 6, 2)
            );
            assert!(r.corruption.is_empty() && r.torn_tail.is_none());
        }
    }
}

/// Random damage of every kind across snapshots and segments, the snapshots deleted or
/// swapped too.
#[test]
fn random_damage_with_snapshots_agrees() {
    let template = compacted_twice();
    let originals = files(template.path());
    let mut rng = fastrand::Rng::with_seed(0x5a_9503);
    for round in 0..300 {
        let dir = tempfile::tempdir().unwrap();
        let mut all = originals.clone();
        for _ in 0..rng.usize(1..=3) {
            let f = rng.usize(..all.len());
            let b = &mut all[f].1;
            let len = b.len();
            match rng.u8(..6) {
                0 if len > 0 => b[rng.usize(..len)] ^= 1 << rng.u8(..8),
                1 if len > 0 => {
                    let a = rng.usize(..len);
                    let e = (a + rng.usize(1..50)).min(len);
                    b[a..e].fill(0);
                }
                2 if len > 0 => b.truncate(rng.usize(..len)),
                3 => b.extend((0..rng.usize(1..100)).map(|_| rng.u8(..))),
                4 => {
                    all.remove(f);
                }
                _ => b.clear(),
            }
            if all.is_empty() {
                break;
            }
        }
        for (name, b) in &all {
            std::fs::write(dir.path().join(name), b).unwrap();
        }
        eprintln!("round {round}");
        let _ = agree(dir.path());
    }
}

/// A snapshot that does not belong with the segments it says it covers (its next_segment_no
/// above a segment holding later records) is damaged, not trusted: replay falls back and reads
/// that segment.
#[test]
fn a_snapshot_that_skips_segments_with_later_records_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let Opened { log, .. } = Log::open(dir.path(), Options::default()).unwrap();
    log.mark_running(run("a", 1)).unwrap();
    let compacted = log.compact().unwrap();
    log.mark_running(run("b", 1)).unwrap();
    drop(log);
    let text = std::fs::read_to_string(&compacted.snapshot).unwrap();
    let envelope: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut body = envelope["body"].clone();
    let next = body["next_segment_no"].as_u64().unwrap();
    body["next_segment_no"] = serde_json::json!(next + 7);
    let body = serde_json::to_string(&body).unwrap();
    let forged = versioned_snapshot_bytes(2, &body);
    std::fs::write(&compacted.snapshot, forged).unwrap();
    let r = ok(dir.path());
    assert!(r.snapshot.is_none(), "the forged snapshot is not the start");
    assert_eq!(r.corruption.len(), 1);
    assert!(
        r.running.iter().any(|x| x.key == "b"),
        "the later records are read"
    );
    assert!(matches!(
        real(dir.path(), Policy::Strict),
        Err(Failure::Corrupt { offset: 0, .. })
    ));
    let _ = agree(dir.path());
}

/// Batches: frames the writer fills with several events (group commit), and crafted ones at
/// the edges of the rule.
#[test]
fn batches_of_events_in_one_frame() {
    // Real batches: one thread submits many events, then waits for the last.
    let dir = tempfile::tempdir().unwrap();
    let Opened { log, .. } = Log::open(dir.path(), Options::default()).unwrap();
    let tickets: Vec<_> = (1..=50u64)
        .map(|i| {
            log.submit(inflight::Event::Started(run(&format!("k{}", i % 7), i)))
                .unwrap()
        })
        .collect();
    log.wait(tickets.last().unwrap()).unwrap();
    drop(log);
    let r = agree(dir.path()).unwrap();
    assert_eq!(r.records, 50);
    assert!(
        r.last_seq < 50,
        "several events share a frame: last sequence {}",
        r.last_seq
    );

    // Crafted: the same events as single frames and as one batch fold the same.
    let events = [
        doc::started("a", "s", 1, 10, None),
        doc::started("b", "s", 1, 11, None),
        doc::completed("a", 1, 12),
    ];
    let singles = ok(crafted(&events).path());
    let mut batch = vec![5u8, 3];
    for e in &events {
        batch.extend_from_slice(e);
    }
    let one = ok(crafted(&[batch.clone()]).path());
    assert_eq!(one.running, singles.running);
    assert_eq!((one.records, one.last_seq), (3, 1));
    // Not batches: one event, a padded count, a count that does not match, a batch inside.
    let mut of_one = vec![5u8, 1];
    of_one.extend_from_slice(&events[0]);
    let mut padded = vec![5u8, 0x83, 0x00];
    padded.extend_from_slice(&batch[2..]);
    let mut wrong = batch.clone();
    wrong[1] = 4;
    let mut nested = vec![5u8, 2];
    nested.extend_from_slice(&batch);
    nested.extend_from_slice(&events[0]);
    for bad in [of_one, padded, wrong, nested] {
        let r = ok(crafted(&[events[1].clone(), bad, events[2].clone()]).path());
        assert_eq!(
            r.corruption.len(),
            1,
            "an invalid batch is a checksummed frame that is not an event"
        );
    }
}

// ----- version 3: events 6 to 12, snapshot version 2, the fold of decisions -----

/// The encoders of events 6 to 12 give the table's bytes: checked against bytes written out by
/// hand, field by field, so that the tests below craft what the document says.
#[test]
fn events_6_to_12_encoders_follow_the_table() {
    // 6: key, session id, generation, nonce, started at ms, meta.
    assert_eq!(
        doc::started_with_nonce("k", "s", 2, 300, 4, Some("m")),
        [6, 1, b'k', 1, b's', 2, 0xAC, 0x02, 4, 1, 1, b'm']
    );
    // 7: key, generation, nonce, at ms.
    assert_eq!(doc::finished("k", 2, 3, 4), [7, 1, b'k', 2, 3, 4]);
    // 8: key, reason, at ms.
    assert_eq!(doc::promoted("k", b"r", 4), [8, 1, b'k', 1, b'r', 4]);
    // 9 and 10: key, at ms.
    assert_eq!(doc::suspended("k", 4), [9, 1, b'k', 4]);
    assert_eq!(doc::cleared("k", 4), [10, 1, b'k', 4]);
    // 11: key, generation, nonce, meta, at ms.
    assert_eq!(
        doc::progress("k", 2, 3, Some("m"), 4),
        [11, 1, b'k', 2, 3, 1, 1, b'm', 4]
    );
    assert_eq!(doc::progress("k", 2, 3, None, 4), [11, 1, b'k', 2, 3, 0, 4]);
    // 12: key, session id, generation, nonce, started at ms, meta, reason, crashes, stops,
    // pending (reason, at ms), suspended at ms, at ms.
    let adopted = doc::adopted(&doc::Adopt {
        key: "k",
        session: "s",
        generation: 2,
        nonce: 3,
        started_at: 5,
        meta: None,
        reason: 1,
        crashes: 2,
        stops: 3,
        pending: Some((b"r", 6)),
        suspended_at: Some(7),
        at: 8,
    });
    assert_eq!(
        adopted,
        [
            12, 1, b'k', 1, b's', 2, 3, 5, 0, 1, 2, 3, 1, 1, b'r', 6, 1, 7, 8
        ]
    );
    // The crashes at the largest u32: five bytes, the fifth 0x0F.
    let most = doc::adopted(&doc::Adopt {
        key: "k",
        crashes: u32::MAX.into(),
        ..Default::default()
    });
    assert_eq!(
        most,
        [
            12, 1, b'k', 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0, 0, 0
        ]
    );
}

/// Each of the events 6 to 12, encoded by hand from the table and written into a segment,
/// applying as the fold says; the same as one batch, and in a version-1 segment (events 6 to
/// 12 are valid in a segment of any version).
#[test]
fn events_6_to_12_crafted_from_the_document() {
    let events = [
        doc::started_with_nonce("a", "s", 1, 0xA1, 10, Some("m0")),
        doc::progress("a", 1, 0xA1, Some("m1"), 11), // a's token: its meta is now m1
        doc::promoted("a", b"restart_interrupted", 12), // a running run may be promoted
        doc::started_with_nonce("b", "s", 4, u64::MAX, 13, None), // a 10-byte nonce
        doc::suspended("b", 14),                     // b is suspended, and still running
        doc::adopted(&doc::Adopt {
            key: "c",
            session: "sc",
            generation: 7,
            nonce: 0xC,
            started_at: 3,
            meta: Some("mc"),
            reason: 1,
            crashes: 2,
            stops: 3,
            pending: Some((b"shutdown_timeout", 5)),
            suspended_at: None,
            at: 15,
        }),
        doc::finished("d", 1, 1, 16), // no run on d: an unknown completion
        doc::cleared("a", 17),        // a is running: only its pending state goes
        doc::finished("a", 1, 0xA1, 18), // a's token: a completion
    ];
    let dir = crafted(&events);
    let r = ok(dir.path());
    assert!(r.corruption.is_empty() && r.torn_tail.is_none());
    assert_eq!((r.records, r.last_seq), (9, 9));
    let c = &r.counters;
    assert_eq!(
        (c.started, c.progressed, c.promoted, c.suspended, c.adopted),
        (2, 1, 1, 1, 1)
    );
    assert_eq!(
        (c.unknown_completions, c.cleared, c.completed, c.unmatched),
        (1, 1, 1, 0)
    );
    let b = &r.running[0];
    assert_eq!((b.key.as_str(), b.nonce, b.running), ("b", u64::MAX, true));
    assert_eq!((b.suspended_at_ms, b.state()), (Some(14), "suspended"));
    let adopted = &r.running[1];
    assert_eq!(
        adopted,
        &Running {
            key: "c".into(),
            session_id: "sc".into(),
            generation: 7,
            started_at_ms: 3,
            meta: Some("mc".into()),
            nonce: 0xC,
            reason: "shutdown".into(),
            recoveries: 2,
            stops: 3,
            running: false,
            pending: Some(PendingState {
                reason: "shutdown_timeout".into(),
                at_ms: 5
            }),
            suspended_at_ms: None,
        }
    );
    assert_eq!(adopted.state(), "pending");

    // Before the clear and the completion: a holds its progress and its pending state.
    let r7 = ok(crafted(&events[..7]).path());
    let a = &r7.running[0];
    assert_eq!(a.meta.as_deref(), Some("m1"));
    assert_eq!(
        a.pending,
        Some(PendingState {
            reason: "restart_interrupted".into(),
            at_ms: 12
        })
    );
    assert_eq!(
        a.state(),
        "running",
        "suspended, else running, else pending"
    );

    // The same events as one batch: one frame, nine records, the same state.
    let mut batch = vec![5u8, 9];
    for e in &events {
        batch.extend_from_slice(e);
    }
    let one = ok(crafted(&[batch]).path());
    assert_eq!(
        (one.running, one.counters),
        (r.running.clone(), r.counters.clone())
    );
    assert_eq!((one.records, one.last_seq), (9, 1));

    // Each event's timestamp (an adoption's last field, a start's `started at ms`) is what
    // a gap after it and a gap before it report.
    let invalid = vec![13u8];
    for (e, at) in events.iter().zip(10..) {
        let gap = &ok(crafted(&[e.clone(), invalid.clone(), doc::shutdown(99)]).path()).corruption;
        assert_eq!((gap[0].after_ms, gap[0].before_ms), (Some(at), Some(99)));
        let gap = &ok(crafted(&[doc::shutdown(1), invalid.clone(), e.clone()]).path()).corruption;
        assert_eq!((gap[0].after_ms, gap[0].before_ms), (Some(1), Some(at)));
    }

    // In a version-1 segment.
    let mut b = doc::encode_header(&doc::Header {
        version: 1,
        number: 1,
        base: 1,
        salt: 8,
        log_created: 500,
        segment_created: 601,
    });
    for (i, p) in events.iter().enumerate() {
        b.extend(doc::encode_frame(8, 1 + i as u64, p));
    }
    write(dir.path(), 1, &b);
    assert_eq!(ok(dir.path()), r);
}

/// Forms of events 6 to 12 that are not valid events: each a checksummed frame that is
/// corruption, in the middle and at the end (never a torn tail), and inside a batch; and the
/// forms at the limits, which are valid.
#[test]
fn invalid_forms_of_events_6_to_12_are_corruption() {
    let adopt = |change: &dyn Fn(&mut doc::Adopt<'static>)| {
        let mut a = doc::Adopt {
            key: "k",
            session: "s",
            generation: 1,
            nonce: 1,
            started_at: 1,
            at: 1,
            ..Default::default()
        };
        change(&mut a);
        doc::adopted(&a)
    };
    let long = "r".repeat(129);
    let long: &'static [u8] = long.leak().as_bytes();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        (
            "event 6 with nonce 0",
            doc::started_with_nonce("k", "s", 1, 0, 1, None),
        ),
        ("index 5 alone", vec![5]),
        ("index 5 inside a batch", {
            let mut b = vec![5, 2];
            b.extend(doc::shutdown(1));
            b.extend([5, 1]);
            b
        }),
        ("index 13", vec![13, 1, b'k', 1]),
        ("a reason of 0 bytes", doc::promoted("k", b"", 1)),
        ("a reason of 129 bytes", doc::promoted("k", long, 1)),
        ("a reason that is not UTF-8", doc::promoted("k", &[0xFF], 1)),
        (
            "a pending reason of 0 bytes",
            adopt(&|a| a.pending = Some((b"", 1))),
        ),
        (
            "a pending reason of 129 bytes",
            adopt(&|a| a.pending = Some((long, 1))),
        ),
        ("an Adopted reason of 2", adopt(&|a| a.reason = 2)),
        (
            "an Adopted reason above a u32",
            adopt(&|a| a.reason = 1 << 32),
        ),
        (
            "crashes of 2^32 (a fifth u32 byte above 0x0F)",
            adopt(&|a| a.crashes = 1 << 32),
        ),
        ("stops of 2^35 (6 bytes)", adopt(&|a| a.stops = 1 << 35)),
        (
            "a padded nonce in Finished",
            vec![7, 1, b'k', 1, 0x80, 0x00, 1],
        ),
        ("a padded variant index", vec![0x87, 0x00, 1, b'k', 1, 1, 1]),
        (
            "padded crashes (a u32) in Adopted",
            // key, session, generation, nonce, started, meta none, reason 0, crashes 80 00,
            // stops 0, pending none, suspended none, at.
            vec![12, 1, b'k', 1, b's', 1, 1, 1, 0, 0, 0x80, 0x00, 0, 0, 0, 1],
        ),
        ("an Adopted suspended time with option byte 2", {
            let mut b = adopt(&|_| {});
            let n = b.len();
            b[n - 2] = 2;
            b
        }),
        ("a Progress meta with option byte 2", {
            let mut b = doc::progress("k", 1, 1, None, 1);
            b[5] = 2;
            b
        }),
        (
            "a Progress meta of 4097 bytes",
            doc::progress("k", 1, 1, Some(&"m".repeat(4097)), 1),
        ),
        (
            "an Adopted meta of 4097 bytes",
            adopt(&|a| a.meta = Some("m".repeat(4097).leak())),
        ),
        (
            "an Adopted session id of 257 bytes",
            adopt(&|a| a.session = "s".repeat(257).leak()),
        ),
        ("an Adopted key of 0 bytes", adopt(&|a| a.key = "")),
        ("a Suspended key of 0 bytes", doc::suspended("", 1)),
        (
            "a Cleared key of 1025 bytes",
            doc::cleared(&"k".repeat(1025), 1),
        ),
        (
            "a Finished with a trailing byte",
            [doc::finished("k", 1, 1, 1), vec![0]].concat(),
        ),
        ("a Suspended without its time", vec![9, 1, b'k']),
    ];
    let good: Vec<(&str, Vec<u8>)> = vec![
        (
            "a reason of 128 bytes",
            doc::promoted("k", "r".repeat(128).as_bytes(), 1),
        ),
        ("a reason of 1 byte", doc::promoted("k", b"r", 1)),
        (
            "a pending reason of 128 bytes",
            adopt(&|a| a.pending = Some(("r".repeat(128).leak().as_bytes(), 1))),
        ),
        ("an Adopted reason of 1", adopt(&|a| a.reason = 1)),
        (
            "crashes and stops at the largest u32",
            adopt(&|a| {
                a.crashes = u32::MAX.into();
                a.stops = u32::MAX.into();
            }),
        ),
        // Only event 6 may not have nonce 0.
        ("an Adopted nonce of 0", adopt(&|a| a.nonce = 0)),
        ("a Finished nonce of 0", doc::finished("k", 1, 0, 1)),
        ("a Progress nonce of 0", doc::progress("k", 1, 0, None, 1)),
        (
            "a Progress meta of 4096 bytes",
            doc::progress("k", 1, 1, Some(&"m".repeat(4096)), 1),
        ),
        (
            "event 6 with the largest nonce",
            doc::started_with_nonce("k", "s", 1, u64::MAX, 1, None),
        ),
    ];
    for (what, payload) in &good {
        let dir = crafted(std::slice::from_ref(payload));
        let r = ok(dir.path());
        assert!(r.corruption.is_empty() && r.records == 1, "{what}");
    }
    for (what, payload) in &bad {
        eprintln!("{what}");
        // In the middle.
        let dir = crafted(&[
            doc::started("a", "s", 1, 1, None),
            payload.clone(),
            doc::started("b", "s", 1, 2, None),
        ]);
        let r = ok(dir.path());
        assert_eq!((r.corruption.len(), r.records), (1, 2), "{what}");
        // At the end: corruption, never a torn tail.
        let dir = crafted(&[doc::started("a", "s", 1, 1, None), payload.clone()]);
        let r = ok(dir.path());
        assert_eq!(r.corruption.len(), 1, "{what}");
        assert!(r.torn_tail.is_none(), "{what}");
        // Inside a batch: the whole frame is invalid.
        let mut batch = vec![5u8, 2];
        batch.extend(doc::shutdown(1));
        batch.extend(payload);
        let dir = crafted(&[doc::started("a", "s", 1, 1, None), batch, doc::shutdown(3)]);
        let r = ok(dir.path());
        assert_eq!((r.corruption.len(), r.records), (1, 2), "{what}");
    }
}

/// A snapshot body for the tests below: `last_seq` 7, next segment 3, with these counters,
/// runs and marks.
fn snapshot_body(counters: &str, running: &[&str], marks: &str) -> String {
    format!(
        r#"{{"last_seq":7,"next_segment_no":3,"last_record_ms":6,"coverage_since_ms":1,"created_ms":9,"ended_with_shutdown":false,"counters":{counters},"running":[{}],"marks":{marks},"gaps":[]}}"#,
        running.join(",")
    )
}

const COUNTERS_V1: &str = r#"{"started":2,"stale_starts":0,"completed":0,"stale_completions":0,"unknown_completions":0,"shutdowns":0,"superseded":0,"recoveries":1,"retentions":0,"forgotten":0}"#;

/// A version-1 snapshot whose runs and counters hold members named as version 2's: they are
/// not part of version 1, so each takes its default whatever it holds (a version-1 run is
/// running, with no nonce, no stops and no decision); the same members in a version-2
/// snapshot are the state.
#[test]
fn a_version_1_snapshot_ignores_the_members_version_2_added() {
    let run_a = r#"{"key":"a","session_id":"s","generation":2,"started_at_ms":5,"meta":null,"reason":"crash","recoveries":1,"nonce":5,"stops":9,"running":false,"pending":{"reason":"r","at_ms":4},"suspended_at_ms":null}"#;
    let run_b = r#"{"key":"b","session_id":"s","generation":1,"started_at_ms":6,"reason":"shutdown","running":false,"suspended_at_ms":6}"#;
    let counters = COUNTERS_V1.replace(
        '}',
        r#","promoted":4,"suspended":1,"cleared":0,"progressed":2,"adopted":0,"unmatched":3}"#,
    );
    let marks = r#"[{"key":"a","generation":3,"last_event_ms":5},{"key":"b","generation":1,"last_event_ms":6}]"#;
    let body = snapshot_body(&counters, &[run_a, run_b], marks);
    // After it: a recovery record, which counts the runs that are running.
    let after = crafted_bytes(3, 8, &[doc::recovered(10)]);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(snapshot_file(dir.path(), 7), snapshot_bytes(&body)).unwrap();
    write(dir.path(), 3, &after);
    let v1 = ok(dir.path());
    assert!(v1.snapshot.is_some());
    let c = &v1.counters;
    assert_eq!(
        (c.promoted, c.suspended, c.progressed, c.unmatched),
        (0, 0, 0, 0)
    );
    let runs: Vec<_> = v1
        .running
        .iter()
        .map(|x| {
            (
                x.nonce,
                x.recoveries,
                x.stops,
                x.running,
                x.pending.is_some(),
            )
        })
        .collect();
    // Both were running: a crash and a graceful stop counted.
    assert_eq!(runs, [(0, 2, 0, false, false), (0, 0, 1, false, false)]);
    assert_eq!(v1.running[1].suspended_at_ms, None);

    // Nor is version 2's check of a pending reason: an empty one is ignored with the rest.
    let empty = run_a.replace(r#""reason":"r""#, r#""reason":"""#);
    std::fs::write(
        snapshot_file(dir.path(), 7),
        snapshot_bytes(&snapshot_body(&counters, &[&empty, run_b], marks)),
    )
    .unwrap();
    assert_eq!(ok(dir.path()).running, v1.running);

    // The same body as version 2: the members are the state, and neither run is running.
    std::fs::write(
        snapshot_file(dir.path(), 7),
        versioned_snapshot_bytes(2, &body),
    )
    .unwrap();
    let v2 = ok(dir.path());
    assert!(v2.snapshot.is_some());
    assert_eq!((v2.counters.promoted, v2.counters.unmatched), (4, 3));
    let runs: Vec<_> = v2
        .running
        .iter()
        .map(|x| (x.nonce, x.recoveries, x.stops, x.running, x.state()))
        .collect();
    assert_eq!(
        runs,
        [(5, 1, 9, false, "pending"), (0, 0, 0, false, "suspended")]
    );
    // And there they are checked: an empty pending reason makes it damaged.
    std::fs::write(
        snapshot_file(dir.path(), 7),
        versioned_snapshot_bytes(2, &snapshot_body(&counters, &[&empty, run_b], marks)),
    )
    .unwrap();
    assert!(ok(dir.path()).snapshot.is_none());
}

/// A version-2 snapshot with runs in each state: a recovery record after it counts only the
/// running one; a start resumes a pending run with its counts and begins a suspended one
/// anew. Then each check version 2 adds to the runs.
#[test]
fn a_version_2_snapshot_with_pending_and_suspended_runs() {
    let counters = COUNTERS_V1.replace('}', r#","promoted":1,"suspended":1,"adopted":0}"#);
    let a = r#"{"key":"a","session_id":"s","generation":2,"started_at_ms":5,"meta":"m","nonce":11,"reason":"crash","recoveries":2,"stops":1,"running":false,"pending":{"reason":"restart_interrupted","at_ms":7,"note":[1]},"suspended_at_ms":null}"#;
    let b = r#"{"key":"b","session_id":"s","generation":1,"started_at_ms":6,"reason":"shutdown","recoveries":5,"stops":4,"running":false,"pending":null,"suspended_at_ms":8}"#;
    let c = r#"{"key":"c","session_id":"s","generation":1,"started_at_ms":6,"nonce":12,"reason":"crash","recoveries":1}"#;
    let d = r#"{"key":"d","session_id":"s","generation":1,"started_at_ms":6,"reason":"shutdown","stops":2,"running":false}"#;
    let marks = r#"[{"key":"a","generation":3,"last_event_ms":5},{"key":"b","generation":1,"last_event_ms":6},{"key":"c","generation":1,"last_event_ms":6},{"key":"d","generation":1,"last_event_ms":6}]"#;
    let snapshot = |runs: &[&str], dir: &Path| {
        let body = snapshot_body(&counters, runs, marks);
        std::fs::write(snapshot_file(dir, 7), versioned_snapshot_bytes(2, &body)).unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    snapshot(&[a, b, c, d], dir.path());
    let start = ok(dir.path());
    assert!(start.snapshot.is_some() && start.segments == 0);
    let states: Vec<&str> = start.running.iter().map(Running::state).collect();
    assert_eq!(states, ["pending", "suspended", "running", "interrupted"]);

    write(
        dir.path(),
        3,
        &crafted_bytes(
            3,
            8,
            &[
                doc::recovered(10), // only c is running: c's crash count 2
                doc::started_with_nonce("a", "s", 3, 13, 11, None), // a resumes: counts, pending
                doc::started("b", "s", 2, 12, None), // b was suspended: begins anew
            ],
        ),
    );
    let r = ok(dir.path());
    let runs: Vec<_> = r
        .running
        .iter()
        .map(|x| (x.key.as_str(), x.recoveries, x.stops, x.running, x.state()))
        .collect();
    assert_eq!(
        runs,
        [
            ("a", 2, 1, true, "running"),
            ("b", 0, 0, true, "running"),
            ("c", 2, 0, false, "interrupted"),
            ("d", 0, 2, false, "interrupted"),
        ]
    );
    assert_eq!(
        r.running[0].pending.as_ref().map(|p| p.at_ms),
        Some(7),
        "a resume keeps the pending state"
    );
    assert_eq!(r.running[0].nonce, 13);
    assert_eq!((r.counters.superseded, r.counters.promoted), (2, 1));

    // Each check of a run's version-2 members.
    let cases: Vec<(&str, String, bool)> = vec![
        (
            "a pending reason of 128 bytes",
            a.replace("restart_interrupted", &"r".repeat(128)),
            true,
        ),
        (
            "a pending reason of 0 bytes",
            a.replace("restart_interrupted", ""),
            false,
        ),
        (
            "a pending reason of 129 bytes",
            a.replace("restart_interrupted", &"r".repeat(129)),
            false,
        ),
        (
            "a pending object without its time",
            a.replace(r#","at_ms":7"#, ""),
            false,
        ),
        (
            "a pending that is a string",
            a.replace(
                r#"{"reason":"restart_interrupted","at_ms":7,"note":[1]}"#,
                r#""x""#,
            ),
            false,
        ),
        (
            "running that is not a boolean",
            a.replace(r#""running":false"#, r#""running":0"#),
            false,
        ),
        (
            "stops above a u32",
            a.replace(r#""stops":1"#, r#""stops":4294967296"#),
            false,
        ),
        (
            "stops at the largest u32",
            a.replace(r#""stops":1"#, r#""stops":4294967295"#),
            true,
        ),
        (
            "a nonce that is null",
            a.replace(r#""nonce":11"#, r#""nonce":null"#),
            false,
        ),
        (
            "a suspended time that is a string",
            a.replace(r#""suspended_at_ms":null"#, r#""suspended_at_ms":"8""#),
            false,
        ),
        (
            "pending twice",
            a.replace(r#""suspended_at_ms":null"#, r#""pending":null"#),
            false,
        ),
        (
            "a member not listed",
            a.replace(r#""nonce":11"#, r#""nonce":11,"later":{"x":1e400}"#),
            true,
        ),
    ];
    for (what, run, valid) in cases {
        snapshot(&[&run, b, c, d], dir.path());
        eprintln!("{what}");
        assert_eq!(ok(dir.path()).snapshot.is_some(), valid, "{what}");
    }
}

/// Finished (event 7) removes the key's run only when both generation and nonce are its
/// own: any other is unmatched (not stale, even below), one with no run is an unknown
/// completion, and none raises a mark's generation.
#[test]
fn an_exact_completion_with_a_wrong_token_is_unmatched() {
    let events = [
        doc::started_with_nonce("k", "s", 3, 77, 10, None),
        doc::finished("k", 3, 78, 11), // the wrong nonce
        doc::finished("k", 2, 77, 12), // the wrong generation, below
        doc::finished("k", 9, 77, 13), // the wrong generation, above: event 1 would remove
        doc::finished("x", 9, 1, 14),  // no run: unknown, and x gets no mark
        // Up to here: the first check below.
        doc::finished("k", 3, 77, 15), // its token: a completion
        doc::started("j", "s", 1, 16, None),
        doc::finished("j", 1, 0, 17), // a run started without a nonce has nonce 0
        doc::started("x", "s", 1, 18, None), // x has no mark: not stale
        doc::started("k", "s", 4, 19, None), // k's mark is 3, not 9: not stale
    ];
    let r = ok(crafted(&events[..5]).path());
    assert_eq!(r.running.len(), 1);
    let c = &r.counters;
    assert_eq!(
        (c.unmatched, c.unknown_completions, c.stale_completions),
        (3, 1, 0)
    );
    let r = ok(crafted(&events).path());
    let c = &r.counters;
    assert_eq!((c.completed, c.unmatched, c.stale_starts), (2, 3, 0));
    let keys: Vec<&str> = r.running.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys, ["k", "x"]);
}

/// A recovery record counts only runs that are running: a run waiting for its decision keeps
/// its counts and its pending state across any number of them, and a shutdown leaves its
/// reason.
#[test]
fn a_pending_run_keeps_its_counts_across_recoveries() {
    let r = ok(crafted(&[
        doc::started("a", "s", 1, 10, None),
        doc::recovered(11), // a: 1, not running
        doc::promoted("a", b"restart_interrupted", 12),
        doc::recovered(13),
        doc::recovered(14),
        doc::shutdown(15), // a is not running: keeps its reason
        doc::recovered(16),
    ])
    .path());
    let a = &r.running[0];
    assert_eq!(
        (a.recoveries, a.stops, a.reason.as_str(), a.running),
        (1, 0, "crash", false)
    );
    assert_eq!(
        a.pending,
        Some(PendingState {
            reason: "restart_interrupted".into(),
            at_ms: 12
        })
    );
    assert_eq!(a.state(), "pending");
    assert_eq!((r.counters.recoveries, r.counters.shutdowns), (4, 1));
    assert!(!r.clean_shutdown);
}

/// A start that replaces a run not suspended is a resume: it carries both counts and the
/// pending state; a start that replaces a suspended run begins the session anew (counts 0, no
/// pending state, no suspended time). A suspension leaves a running run running, so a
/// recovery record counts it.
#[test]
fn a_resume_carries_the_counts_and_a_start_after_a_suspension_resets_them() {
    let events = [
        doc::started_with_nonce("a", "s", 1, 5, 10, None),
        doc::recovered(11), // a: one crash, not running
        doc::started_with_nonce("a", "s", 2, 6, 12, None), // a resume: the crash carried
        doc::shutdown(13),  // a is the shutdown's
        doc::recovered(14), // a: one graceful stop, not running
        doc::promoted("a", b"shutdown_timeout", 15),
        doc::started_with_nonce("a", "s", 3, 7, 16, Some("m")), // a resume: both, pending
        doc::recovered(17), // a crashed again: 2 crashes, 1 stop, still pending
        // Up to here: the first check below.
        doc::suspended("a", 18), // suspended; its pending state ends
        doc::recovered(19),      // a is not running: unchanged
        doc::started_with_nonce("b", "s", 1, 9, 20, None),
        doc::suspended("b", 21), // suspended while running
        doc::recovered(22),      // b was running: counted, then not running
        // Up to here: the second check below.
        doc::started("a", "s", 4, 23, None), // after a suspension: anew
    ];
    let r = ok(crafted(&events[..8]).path());
    let a = &r.running[0];
    assert_eq!((a.generation, a.nonce, a.reason.as_str()), (3, 7, "crash"));
    assert_eq!((a.recoveries, a.stops, a.running), (2, 1, false));
    assert_eq!(a.pending.as_ref().map(|p| p.at_ms), Some(15));

    let r = ok(crafted(&events[..13]).path());
    let a = &r.running[0];
    assert_eq!((a.recoveries, a.stops, a.pending.is_none()), (2, 1, true));
    assert_eq!((a.suspended_at_ms, a.state()), (Some(18), "suspended"));
    let b = &r.running[1];
    assert_eq!((b.recoveries, b.running), (1, false));
    assert_eq!((b.suspended_at_ms, b.state()), (Some(21), "suspended"));

    let r = ok(crafted(&events).path());
    let a = &r.running[0];
    assert_eq!((a.recoveries, a.stops, a.running, a.nonce), (0, 0, true, 0));
    assert_eq!((a.pending.clone(), a.suspended_at_ms), (None, None));
    assert_eq!((r.counters.superseded, r.counters.started), (3, 5));
}

/// Both counts stay at 4294967295 once there: a recovery record adds nothing past it.
#[test]
fn crash_and_stop_counts_stay_at_the_largest_u32() {
    let r = ok(crafted(&[
        doc::adopted(&doc::Adopt {
            key: "c",
            session: "s",
            generation: 1,
            nonce: 3,
            crashes: u32::MAX.into(),
            stops: u32::MAX.into(),
            at: 10,
            ..Default::default()
        }),
        doc::started("c", "s", 2, 11, None), // a resume: both counts carried
        doc::recovered(12),                  // a crash past the largest
        doc::started("c", "s", 3, 13, None),
        doc::shutdown(14),
        doc::recovered(15), // a graceful stop past the largest
    ])
    .path());
    let c = &r.running[0];
    assert_eq!((c.recoveries, c.stops), (u32::MAX, u32::MAX));
    assert_eq!(c.reason, "shutdown");
}

/// Cleared (event 10) applies to a run with a pending state: it removes a run that is not
/// running (its mark stays) and only the pending state of a running one; anything else is
/// unmatched.
#[test]
fn cleared_removes_a_waiting_run_but_only_the_pending_state_of_a_running_one() {
    let r = ok(crafted(&[
        doc::started("a", "s", 1, 10, None),
        doc::recovered(11), // a is waiting
        doc::promoted("a", b"r", 12),
        doc::started("b", "s", 1, 13, None),
        doc::promoted("b", b"r", 14), // b is running, and pending
        doc::started("c", "s", 1, 15, None),
        doc::cleared("c", 16), // c has no pending state: unmatched
        doc::cleared("z", 17), // no run: unmatched
        doc::cleared("a", 18), // removes a
        doc::cleared("b", 19), // b goes on, without its pending state
        doc::cleared("b", 20), // unmatched now
        doc::started("a", "s", 0, 21, None), // a's mark stayed: stale
    ])
    .path());
    let runs: Vec<_> = r
        .running
        .iter()
        .map(|x| (x.key.as_str(), x.running, x.pending.is_some()))
        .collect();
    assert_eq!(runs, [("b", true, false), ("c", true, false)]);
    let c = &r.counters;
    assert_eq!(
        (
            c.cleared,
            c.unmatched,
            c.promoted,
            c.stale_starts,
            c.completed
        ),
        (2, 3, 2, 1, 0)
    );
}

/// Adopted (event 12): below the key's mark it is a stale start (and raises the mark's
/// `last_event_ms` by its last field, as stale starts do); otherwise the run as the event
/// gives it, not running, replacing a run with the larger of each count.
#[test]
fn an_adoption_below_the_mark_is_a_stale_start() {
    let adopt = |key, generation, at, change: &dyn Fn(&mut doc::Adopt<'_>)| {
        let mut a = doc::Adopt {
            key,
            session: "s2",
            generation,
            nonce: 40 + generation,
            started_at: 2,
            at,
            ..Default::default()
        };
        change(&mut a);
        doc::adopted(&a)
    };
    let r = ok(crafted(&[
        doc::started("k", "s", 5, 10, None),
        adopt("k", 4, 11, &|_| {}), // below the mark: stale
        adopt("k", 5, 12, &|a| {
            a.reason = 1;
            a.crashes = 1;
            a.stops = 7;
        }), // at the mark: replaces k/5 (its counts 0)
        doc::recovered(13),         // k is not running: unchanged
        adopt("k", 6, 14, &|a| {
            a.stops = 2;
            a.pending = Some((b"p", 9));
            a.suspended_at = Some(8);
        }), // replaces again: counts 1 and 7 stay the larger
        adopt("n", 1, 15, &|a| a.crashes = 4),
        // The stale adoption's timestamp is its last field (100), not its start (2): the
        // retention keeps s's mark, and a start below it is stale.
        doc::completed("s", 5, 1),
        adopt("s", 2, 100, &|_| {}),
        doc::retention(50, 101),
        doc::started("s", "s", 1, 102, None),
    ])
    .path());
    let k = &r.running[0];
    assert_eq!(
        (
            k.generation,
            k.nonce,
            k.session_id.as_str(),
            k.started_at_ms
        ),
        (6, 46, "s2", 2)
    );
    assert_eq!(
        (k.reason.as_str(), k.recoveries, k.stops, k.running),
        ("crash", 1, 7, false)
    );
    assert_eq!((k.suspended_at_ms, k.state()), (Some(8), "suspended"));
    assert_eq!(k.pending.as_ref().map(|p| p.at_ms), Some(9));
    let n = &r.running[1];
    assert_eq!(
        (n.recoveries, n.running, n.state()),
        (4, false, "interrupted")
    );
    let c = &r.counters;
    assert_eq!(
        (
            c.stale_starts,
            c.adopted,
            c.superseded,
            c.started,
            c.forgotten
        ),
        (3, 3, 2, 1, 0)
    );
}

/// Events 7 to 11 never create a mark or raise its generation; one that applies raises its
/// key's `last_event_ms` (so retention keeps the mark), one that does not changes nothing (so
/// retention forgets it).
#[test]
fn decisions_raise_only_last_event_ms_and_only_when_they_apply() {
    let r = ok(crafted(&[
        doc::started("p", "s", 1, 10, None),
        doc::started("q", "s", 1, 10, None),
        doc::recovered(11),
        doc::promoted("p", b"r", 100),
        doc::promoted("q", b"r", 12),
        doc::cleared("p", 101), // applies: p's last event 101
        doc::cleared("q", 13),  // applies: q's last event 13
        doc::completed("u", 1, 10),
        doc::promoted("u", b"r", 100), // unmatched: u's last event stays 10
        doc::suspended("n", 100),      // unmatched: n gets no mark
        doc::progress("u", 1, 0, None, 100), // unmatched
        doc::retention(50, 200),       // forgets q and u, keeps p
        doc::started("q", "s", 0, 201, None), // forgotten: not stale
        doc::started("p", "s", 0, 202, None), // kept: stale
    ])
    .path());
    let c = &r.counters;
    assert_eq!((c.forgotten, c.unmatched, c.stale_starts), (2, 3, 1));
    assert_eq!(r.forgotten_generation, 1);
    let keys: Vec<&str> = r.running.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys, ["q"]);
}

/// Promoted, Suspended and Progress each name a run the key has, or are unmatched: a
/// promotion replaces a pending state but never overrides a suspension; a suspension ends a
/// pending state and may come again; progress needs the run's token, running or not.
#[test]
fn promotion_suspension_and_progress_name_a_run_or_are_unmatched() {
    let r = ok(crafted(&[
        doc::started_with_nonce("a", "s", 2, 40, 10, Some("m")),
        doc::progress("a", 2, 41, Some("x"), 11), // the wrong nonce
        doc::progress("a", 3, 40, Some("x"), 12), // the wrong generation
        doc::progress("b", 1, 1, None, 13),       // no run
        doc::progress("a", 2, 40, None, 14),      // meta gone
        doc::promoted("a", b"one", 15),
        doc::promoted("a", b"two", 16),   // replaces the pending state
        doc::suspended("a", 17),          // ends it
        doc::promoted("a", b"three", 18), // a suspension is never overridden
        doc::suspended("a", 19),          // applies again: the time is 19
        doc::promoted("b", b"x", 20),
        doc::suspended("b", 21),
        doc::recovered(22),                          // a was still running
        doc::progress("a", 2, 40, Some("late"), 23), // its token, not running: applies
    ])
    .path());
    let a = &r.running[0];
    assert_eq!(a.meta.as_deref(), Some("late"));
    assert_eq!((a.pending.clone(), a.suspended_at_ms), (None, Some(19)));
    assert_eq!((a.running, a.recoveries), (false, 1));
    let c = &r.counters;
    assert_eq!(
        (c.progressed, c.promoted, c.suspended, c.unmatched),
        (2, 2, 2, 6)
    );
}

/// The log ended with a shutdown only when the last event other than a retention record is
/// a shutdown: any other event after it, one that changes nothing included, clears it.
#[test]
fn any_event_but_retention_after_a_shutdown_clears_it() {
    let shut = [
        doc::started_with_nonce("a", "s", 1, 3, 10, None),
        doc::shutdown(11),
        doc::retention(0, 12),
    ];
    assert!(ok(crafted(&shut).path()).clean_shutdown);
    for (what, after) in [
        ("an unmatched promotion", doc::promoted("z", b"r", 13)),
        ("an unmatched Finished", doc::finished("a", 1, 4, 13)),
        ("an unknown Finished", doc::finished("z", 1, 4, 13)),
        ("a stale adoption", {
            doc::adopted(&doc::Adopt {
                key: "a",
                at: 13,
                ..Default::default()
            })
        }),
        ("a suspension", doc::suspended("a", 13)),
    ] {
        let r = ok(crafted(&[shut.to_vec(), vec![after]].concat()).path());
        assert!(!r.clean_shutdown, "{what}");
    }
}

/// The crate's own writer: runs it begins (event 6, nonces), exact completions, progress,
/// the decisions and an adoption, read by both readers; then a reopen (its recovery record)
/// and a compaction (a version-2 snapshot of these states).
#[test]
fn events_6_to_12_written_by_the_crate() {
    let dir = tempfile::tempdir().unwrap();
    let Opened { log, .. } = Log::open(dir.path(), Options::default()).unwrap();
    let a = log.begin_run("a", "s", Some("m".into())).unwrap();
    log.progress(&a, Some("m2".into())).unwrap();
    let b = log.begin_run("b", "s", None).unwrap();
    log.complete_token("b", a.token()).unwrap(); // not b's token: unmatched
    log.complete_run(&b).unwrap();
    log.begin_run("c", "s", None).unwrap();
    log.mark_resume_pending("c", "restart_interrupted").unwrap();
    log.clear_resume_pending("c").unwrap();
    log.begin_run("d", "s", None).unwrap();
    log.suspend("d").unwrap();
    let mut taken = inflight::InFlightRun::new(Run::new("e", "s9", Generation(9), UnixMs(5)));
    taken.running = false;
    taken.recoveries = 2;
    taken.stops = 1;
    taken.pending = Some(inflight::Pending {
        reason: "shutdown_timeout".into(),
        at_ms: 6,
    });
    log.adopt(&taken).unwrap();
    log.close().unwrap();
    drop(log);
    let r = ok(dir.path());
    assert!(r.clean_shutdown);
    let c = &r.counters;
    assert_eq!(
        (c.started, c.completed, c.unmatched, c.progressed, c.adopted),
        (4, 1, 1, 1, 1)
    );
    assert!(r.running.iter().all(|x| x.key == "e" || x.nonce != 0));

    // A reopen records its recovery; a compaction writes the state into a snapshot.
    let Opened { log, .. } = Log::open(dir.path(), Options::default()).unwrap();
    drop(log);
    let reopened = ok(dir.path());
    let states: Vec<&str> = reopened.running.iter().map(Running::state).collect();
    assert_eq!(
        states,
        ["interrupted", "interrupted", "suspended", "pending"]
    );
    let Opened { log, .. } = Log::open(dir.path(), Options::default()).unwrap();
    let compacted = log.compact().unwrap();
    drop(log);
    let text = std::fs::read_to_string(&compacted.snapshot).unwrap();
    assert!(text.starts_with("{\"inflight_snapshot\":3,"));
    let r = ok(dir.path());
    assert!(r.snapshot.is_some() && r.records == 0);
    assert_eq!(r.running, reopened.running);
}

/// "In a version-1 snapshot, a run's `nonce`, `stops`, `running`, `pending` and
/// `suspended_at_ms` and those six counters are not part of the format": unlisted members, whose
/// value may be anything, even twice.
#[test]
fn a_version_1_snapshot_ignores_any_value_of_the_members_version_2_added() {
    let members = [
        r#""running":"no""#,
        r#""nonce":-1"#,
        r#""pending":7"#,
        r#""stops":4294967296"#,
        r#""pending":null,"pending":null"#,
        r#""suspended_at_ms":[1]"#,
    ];
    for (i, member) in members.iter().enumerate() {
        let counter = [
            "\"promoted\":-1",
            "\"unmatched\":\"x\"",
            "\"adopted\":1e400",
        ][i % 3];
        let dir = tempfile::tempdir().unwrap();
        let body = format!(
            r#"{{"last_seq":7,"next_segment_no":3,"coverage_since_ms":1,"created_ms":9,"ended_with_shutdown":false,"counters":{{"started":1,"stale_starts":0,"completed":0,"stale_completions":0,"unknown_completions":0,"shutdowns":0,"superseded":0,{counter}}},"running":[{{"key":"a","session_id":"s","generation":1,"started_at_ms":5,"reason":"crash",{member}}}],"marks":[{{"key":"a","generation":1,"last_event_ms":5}}],"gaps":[]}}"#
        );
        let crc = crc32fast::hash(body.as_bytes());
        std::fs::write(
            dir.path().join("snapshot-00000000000000000007.json"),
            format!(r#"{{"inflight_snapshot":1,"body_crc32":{crc},"body":{body}}}"#),
        )
        .unwrap();
        let report = inflight::inspect::read_only(dir.path(), Policy::Strict)
            .unwrap()
            .report;
        assert!(report.snapshot.is_some(), "{member}");
        let run = &report.running[0];
        assert_eq!(
            (
                run.run.nonce,
                run.stops,
                run.running,
                &run.pending,
                run.suspended_at_ms
            ),
            (0, 0, true, &None, None),
            "{member}"
        );
        assert_eq!(
            report.counters.promoted + report.counters.unmatched + report.counters.adopted,
            0
        );
    }
}
