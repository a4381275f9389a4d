//! An async front for the log (cargo feature `tokio`), for async gateways. Each call runs the
//! blocking call on tokio's blocking thread pool, so no write or sync ever blocks a runtime
//! worker thread, and its future resolves once the event is durable. Concurrent tasks share
//! writes and syncs exactly as threads do (group commit): every call waiting in the pool joins
//! the next frame.
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

use std::io;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::event::{Event, Run};
use crate::fold::Applied;
use crate::log::Log;

/// A [`Log`] behind futures. Cheap to clone: clones share the log.
#[derive(Clone, Debug)]
pub struct AsyncLog {
    log: Arc<Log>,
}

impl AsyncLog {
    /// Wraps an open log.
    pub fn new(log: Log) -> AsyncLog {
        AsyncLog { log: Arc::new(log) }
    }

    /// The log itself, for the calls that do not wait for the disk
    /// ([`Log::running`], [`Log::high_water`], ...).
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// [`Log::mark_running`]: resolves once the start is durable.
    pub async fn mark_running(&self, run: Run) -> Result<Applied> {
        self.blocking(move |log| log.mark_running(run)).await
    }

    /// [`Log::begin_run`]: resolves with the run, its generation allocated, once its start is
    /// durable.
    pub async fn begin_run(
        &self,
        key: impl Into<String>,
        session_id: impl Into<String>,
        meta: Option<String>,
    ) -> Result<Run> {
        let (key, session_id) = (key.into(), session_id.into());
        self.blocking(move |log| log.begin_run(key, session_id, meta))
            .await
    }

    /// [`Log::mark_completed`]: resolves once the completion is durable.
    pub async fn mark_completed(&self, key: impl Into<String>, generation: u64) -> Result<Applied> {
        let key = key.into();
        self.blocking(move |log| log.mark_completed(&key, generation))
            .await
    }

    /// [`Log::record`]: resolves once the event is durable.
    pub async fn record(&self, event: Event) -> Result<Applied> {
        self.blocking(move |log| log.record(event)).await
    }

    /// [`Log::close`]: records a clean shutdown.
    pub async fn close(&self) -> Result<()> {
        self.blocking(|log| log.close()).await
    }

    /// Runs `call` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Log) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || call(&log)).await {
            Ok(result) => result,
            // The call panicked (or the runtime is shutting down): the log's lock tells the
            // next call whether the handle is still usable.
            Err(e) => Err(Error::Poisoned {
                kind: io::ErrorKind::Other,
                cause: format!("the blocking call did not finish: {e}"),
            }),
        }
    }
}
