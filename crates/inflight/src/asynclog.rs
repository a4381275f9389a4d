//! An async front for the log (cargo feature `async`, formerly `tokio`), for async gateways on
//! any executor: it uses no runtime's API, only [`std::task::Waker`]s. A call accepts its
//! event into the log's order at once, and its future resolves once the event is durable. No
//! write or sync ever runs on a runtime's thread: a flusher thread of the front's own leads the
//! batches that only tasks wait for, writing every event accepted meanwhile as one frame with one
//! sync, and wakes exactly the tasks each sync made durable. Tasks share syncs with each other
//! and with threads calling the blocking [`Log`] methods (group commit), and a waiting task holds
//! no thread. Accepting an event waits only if the queue of accepted events is full
//! ([`QUEUE_EVENTS_MAX`](crate::limits::QUEUE_EVENTS_MAX) events).
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use inflight::asynclog::AsyncLog;
//! use inflight::{Log, Options};
//!
//! let dir = tempfile::tempdir()?;
//! let log = AsyncLog::new(Log::open(dir.path(), Options::default())?.log);
//! let tasks: Vec<_> = (0..100)
//!     .map(|i| {
//!         let log = log.clone();
//!         tokio::spawn(async move {
//!             let run = log.begin_run(format!("agent:main:http:c-{i}"), "s1", None).await?;
//!             log.mark_completed(run.key, run.generation).await
//!         })
//!     })
//!     .collect();
//! for task in tasks {
//!     task.await??;
//! }
//! assert!(log.log().running().is_empty());
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::Result;
use crate::event::{Event, Run, UnixMs};
use crate::fold::Applied;
use crate::log::{Flusher, Log, Ticket};

/// A [`Log`] behind futures. Cheap to clone: clones share the log and its flusher thread, which
/// stops when the last clone (and the last future) is gone.
#[derive(Clone, Debug)]
pub struct AsyncLog {
    // Dropped before the log: the flusher is stopped and joined first.
    _flusher: Arc<Flusher>,
    log: Arc<Log>,
}

impl AsyncLog {
    /// Wraps an open log, starting its flusher thread.
    ///
    /// # Panics
    /// If the thread cannot be started (the process is out of threads).
    pub fn new(log: Log) -> AsyncLog {
        AsyncLog::shared(Arc::new(log))
    }

    /// Wraps a log shared with other owners (a binding's handle, threads calling the blocking
    /// methods), starting its flusher thread. The flusher stops when the last clone of the
    /// front is gone; the log stays open while any owner holds it.
    ///
    /// # Panics
    /// If the thread cannot be started (the process is out of threads).
    pub fn shared(log: Arc<Log>) -> AsyncLog {
        let flusher = log
            .start_flusher()
            .expect("the async front's flusher thread starts");
        AsyncLog {
            _flusher: Arc::new(flusher),
            log,
        }
    }

    /// The log itself, for the calls that do not wait for the disk
    /// ([`Log::running`], [`Log::high_water`], ...).
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// [`Log::mark_running`]: resolves once the start is durable.
    pub async fn mark_running(&self, run: Run) -> Result<Applied> {
        self.record(Event::Started(run)).await
    }

    /// [`Log::begin_run`]: resolves with the run, its generation allocated, once its start is
    /// durable.
    pub async fn begin_run(
        &self,
        key: impl Into<String>,
        session_id: impl Into<String>,
        meta: Option<String>,
    ) -> Result<Run> {
        let (run, ticket) = self
            .log
            .submit_begin_run(key.into(), session_id.into(), meta)?;
        self.durable(ticket).await?;
        Ok(run)
    }

    /// [`Log::mark_completed`]: resolves once the completion is durable.
    pub async fn mark_completed(&self, key: impl Into<String>, generation: u64) -> Result<Applied> {
        let at = UnixMs(self.log.now_ms());
        self.record(Event::Completed {
            key: key.into(),
            generation,
            at_ms: at.0,
        })
        .await
    }

    /// [`Log::record`]: resolves once the event is durable.
    pub async fn record(&self, event: Event) -> Result<Applied> {
        let ticket = self.log.submit(event)?;
        self.durable(ticket).await
    }

    /// [`Log::close`]: records a clean shutdown.
    pub async fn close(&self) -> Result<()> {
        let at_ms = self.log.now_ms();
        self.record(Event::Shutdown { at_ms }).await.map(drop)
    }

    /// Resolves once the event of `ticket` is durable.
    fn durable(&self, ticket: Ticket) -> Durable {
        Durable {
            front: self.clone(),
            ticket,
            registered: None,
        }
    }
}

/// The future of an accepted event: ready once it is durable (or its batch failed).
struct Durable {
    front: AsyncLog,
    ticket: Ticket,
    /// The task's registration with the log, from its last poll.
    registered: Option<u64>,
}

impl Future for Durable {
    type Output = Result<Applied>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Applied>> {
        let this = self.get_mut();
        this.front
            .log
            .poll_durable(&this.ticket, cx.waker(), &mut this.registered)
    }
}

impl Drop for Durable {
    /// A future dropped before its event is durable forgets its waker (the event itself stays
    /// accepted, and is written with the next batch).
    fn drop(&mut self) {
        if let Some(registered) = self.registered {
            self.front.log.forget_task(&self.ticket, registered);
        }
    }
}
