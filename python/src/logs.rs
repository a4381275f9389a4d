//! The crate's warnings and errors (a torn tail cut at open, a snapshot skipped, a failed
//! sync, a vacuum that failed...) for Python's `logging`. The crate reports through `tracing`
//! from any thread, a flusher's or a compaction's included, which must never wait for the
//! GIL (a Python thread holding it may be waiting for that very thread). So a `tracing`
//! subscriber of ours puts each record in a bounded queue without blocking (a full queue
//! drops the record and counts it), and a daemon thread of the package
//! (`inflight/_logs.py`) takes them out every 100 ms, sleeping in Python in between, and logs
//! them under the `inflight` logger.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, OnceLock};

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};

/// Records waiting for the Python thread, at most.
pub const QUEUE_RECORDS_MAX: usize = 1024;

/// One record: Python's level number, the logger's name, the message.
type Record = (u32, String, String);

struct Queue {
    sender: SyncSender<Record>,
    receiver: Mutex<Receiver<Record>>,
    dropped: AtomicU64,
}

fn queue() -> &'static Queue {
    static QUEUE: OnceLock<Queue> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, receiver) = sync_channel(QUEUE_RECORDS_MAX);
        Queue {
            sender,
            receiver: Mutex::new(receiver),
            dropped: AtomicU64::new(0),
        }
    })
}

/// The subscriber: warnings and errors only, formatted where they happen, queued.
struct ToPython;

impl Subscriber for ToPython {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let level = match *metadata.level() {
            Level::ERROR => 40,
            Level::WARN => 30,
            Level::INFO => 20,
            _ => 10,
        };
        let mut text = Text::default();
        event.record(&mut text);
        // `inflight::log::open` is logged as `inflight.log.open`, under `inflight`.
        let logger = metadata.target().replace("::", ".");
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            queue().sender.try_send((level, logger, text.finish()))
        {
            queue().dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// An event's message, then its fields as `name=value`.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Text {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else {
            format!("{} ({})", self.message, self.fields)
        }
    }
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push_str(", ");
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            if !self.fields.is_empty() {
                self.fields.push_str(", ");
            }
            let _ = write!(self.fields, "{}={value}", field.name());
        }
    }
}

/// Installs the subscriber for the process, unless one is installed already (a Rust host
/// that embeds Python and set its own). Called when the module is imported.
pub fn install() {
    let _ = tracing::subscriber::set_global_default(ToPython);
}

/// The records waiting, oldest first, at most `limit`, without waiting for more: `(level,
/// logger, message)` each. For the package's logging thread, which polls: it must not wait
/// inside this module with the GIL released, since a daemon thread still there when the
/// interpreter exits is ended by `pthread_exit`, whose forced unwinding through Rust frames
/// crashes the process (it sleeps in Python between polls instead).
#[pyfunction]
pub fn _take_log_records(limit: usize) -> Vec<Record> {
    let receiver = queue().receiver.lock().unwrap_or_else(|p| p.into_inner());
    receiver.try_iter().take(limit).collect()
}

/// How many records were dropped because the queue was full.
#[pyfunction]
pub fn _dropped_log_records() -> u64 {
    queue().dropped.load(Ordering::Relaxed)
}
