//! The crate's waker-based async front for an asyncio event loop.
//!
//! A call accepts its event at once (on the loop's thread, in microseconds) and polls the
//! crate's future once. If the event is not durable yet, the future stays here under a call
//! number, registered with the log by a `Waker` of this module's own. When a sync makes the
//! event durable, the thread that synced it (the front's flusher, or a thread calling the
//! blocking methods) wakes that waker, which only notes the call number and, if it is the first
//! since the loop last looked, writes one byte to a socket the loop watches (`add_reader`). The
//! loop then calls `ready()`, which polls the woken calls and hands back their results. No
//! thread is held per waiting call, the loop never waits for a write or a sync, and the syncing
//! thread never takes the GIL.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use pyo3::prelude::*;

use inflight::asynclog::AsyncLog;
use inflight::{Applied, Event, Run, UnixMs};

use crate::convert::{applied_str, ms_or_now, to_key, to_u64};
use crate::errors::to_py_err;
use crate::log::{PyLog, finished_event, progress_event};
use crate::values::PyRun;

/// What a call resolves to, before it becomes a Python value.
enum Done {
    Run(Run),
    Applied(Applied),
    Closed,
}

impl Done {
    fn into_py(self, py: Python<'_>) -> PyResult<PyObject> {
        use pyo3::IntoPyObjectExt;
        match self {
            Done::Run(run) => PyRun::from(run).into_py_any(py),
            Done::Applied(applied) => applied_str(applied).into_py_any(py),
            Done::Closed => Ok(py.None()),
        }
    }
}

type Call = Pin<Box<dyn Future<Output = inflight::Result<Done>> + Send>>;

/// The calls woken since the loop last looked, and the socket that tells it to look.
struct Notifier {
    woken: Mutex<Vec<u64>>,
    /// The write end; non-blocking, so a full socket (the loop has a byte to read already)
    /// never holds up the syncing thread.
    signal: UnixStream,
}

impl Notifier {
    fn wake(&self, call: u64) {
        let mut woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        let first = woken.is_empty();
        woken.push(call);
        drop(woken);
        if first {
            // One byte per round: the loop drains the list whole when it wakes.
            let _ = (&self.signal).write(&[1]);
        }
    }
}

/// The waker of one call.
struct CallWaker {
    call: u64,
    notifier: Arc<Notifier>,
}

impl Wake for CallWaker {
    fn wake(self: Arc<Self>) {
        self.notifier.wake(self.call);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notifier.wake(self.call);
    }
}

/// The async front of one open log, for one event loop: `inflight.aio.AsyncLog` drives it.
#[pyclass(frozen, name = "_AsyncFront", module = "inflight")]
pub(crate) struct PyAsyncFront {
    /// `None` once shut down: the flusher thread is stopped.
    front: Mutex<Option<AsyncLog>>,
    notifier: Arc<Notifier>,
    /// The read end, watched by the loop.
    readable: UnixStream,
    /// Calls whose event is not durable yet, with their wakers, by call number. Only the
    /// loop's thread uses it; the lock makes the class shareable, as PyO3 asks.
    waiting: Mutex<HashMap<u64, (Call, Waker)>>,
    next_call: AtomicU64,
}

impl PyAsyncFront {
    fn front(&self, py: Python<'_>) -> PyResult<AsyncLog> {
        lock(&self.front)
            .clone()
            .ok_or_else(|| to_py_err(py, inflight::Error::Closed))
    }

    /// Drops the front and the waiting calls, with the GIL released: the flusher thread is
    /// joined.
    fn stop(&self, py: Python<'_>) {
        let front = lock(&self.front).take();
        let waiting = std::mem::take(&mut *lock(&self.waiting));
        py.allow_threads(move || {
            drop(waiting);
            drop(front)
        });
    }

    /// Starts recording `event`; `None` (a token that is no token) is "unmatched" at once.
    fn record(&self, py: Python<'_>, event: Option<Event>) -> PyResult<(u64, PyObject)> {
        let Some(event) = event else {
            use pyo3::IntoPyObjectExt;
            return Ok((0, "unmatched".into_py_any(py)?));
        };
        let front = self.front(py)?;
        let call: Call = Box::pin(async move { front.record(event).await.map(Done::Applied) });
        self.start(py, call)
    }

    /// Polls a new call once: its result if it is done already (call number 0), or else the
    /// number under which `ready()` will hand it back.
    fn start(&self, py: Python<'_>, mut call: Call) -> PyResult<(u64, PyObject)> {
        let number = self.next_call.fetch_add(1, Ordering::Relaxed);
        let waker = Waker::from(Arc::new(CallWaker {
            call: number,
            notifier: self.notifier.clone(),
        }));
        match call.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(done) => Ok((0, done.map_err(|e| to_py_err(py, e))?.into_py(py)?)),
            Poll::Pending => {
                lock(&self.waiting).insert(number, (call, waker));
                Ok((number, py.None()))
            }
        }
    }
}

/// A lock whatever an earlier holder did: the maps it guards are changed by code that cannot
/// panic halfway.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for PyAsyncFront {
    /// Stops the flusher thread (joining it) without holding the GIL.
    fn drop(&mut self) {
        if lock(&self.front).is_some() {
            Python::with_gil(|py| self.stop(py));
        }
    }
}

#[pymethods]
impl PyAsyncFront {
    /// A front over the open `log`, starting its flusher thread.
    #[new]
    fn new(py: Python<'_>, log: &PyLog) -> PyResult<PyAsyncFront> {
        let (readable, signal) = UnixStream::pair()?;
        readable.set_nonblocking(true)?;
        signal.set_nonblocking(true)?;
        let log = log.handle(py)?;
        Ok(PyAsyncFront {
            front: Mutex::new(Some(AsyncLog::shared(log))),
            notifier: Arc::new(Notifier {
                woken: Mutex::new(Vec::new()),
                signal,
            }),
            readable,
            waiting: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(1),
        })
    }

    /// The file descriptor the loop watches for readiness.
    fn fileno(&self) -> i32 {
        self.readable.as_raw_fd()
    }

    /// How many calls wait for their event to be durable.
    fn waiting(&self) -> usize {
        lock(&self.waiting).len()
    }

    /// Starts `Log.begin_run`; see `start` for what it returns.
    #[pyo3(signature = (key, session_id, meta = None))]
    fn begin_run(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        session_id: String,
        meta: Option<String>,
    ) -> PyResult<(u64, PyObject)> {
        let key = to_key(key)?;
        let front = self.front(py)?;
        let call: Call =
            Box::pin(async move { front.begin_run(key, session_id, meta).await.map(Done::Run) });
        self.start(py, call)
    }

    /// Starts `Log.mark_running`.
    #[pyo3(signature = (key, session_id, generation, started_at_ms = None, meta = None))]
    fn mark_running(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        session_id: String,
        generation: &Bound<'_, PyAny>,
        started_at_ms: Option<&Bound<'_, PyAny>>,
        meta: Option<String>,
    ) -> PyResult<(u64, PyObject)> {
        let key = to_key(key)?;
        let generation = to_u64(generation, "generation", Some(&key))?;
        let started_at = ms_or_now(started_at_ms, "started_at_ms", Some(&key))?;
        let mut run = Run::new(
            key,
            session_id,
            inflight::Generation(generation),
            UnixMs(started_at),
        );
        run.meta = meta;
        let front = self.front(py)?;
        let call: Call = Box::pin(async move { front.mark_running(run).await.map(Done::Applied) });
        self.start(py, call)
    }

    /// Starts `Log.mark_completed`.
    #[pyo3(signature = (key, generation, at_ms = None))]
    fn mark_completed(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        generation: &Bound<'_, PyAny>,
        at_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(u64, PyObject)> {
        let key = to_key(key)?;
        let generation = to_u64(generation, "generation", Some(&key))?;
        let at_ms = ms_or_now(at_ms, "at_ms", Some(&key))?;
        let front = self.front(py)?;
        let event = Event::Completed {
            key,
            generation,
            at_ms,
        };
        let call: Call = Box::pin(async move { front.record(event).await.map(Done::Applied) });
        self.start(py, call)
    }

    /// Starts `Log.complete_token`; a token that is no token resolves to "unmatched" at once.
    fn complete_token(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        token: &Bound<'_, PyAny>,
    ) -> PyResult<(u64, PyObject)> {
        self.record(py, finished_event(key, token)?)
    }

    /// Starts `Log.progress`.
    fn progress(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        token: &Bound<'_, PyAny>,
        meta: Option<String>,
    ) -> PyResult<(u64, PyObject)> {
        self.record(py, progress_event(key, token, meta)?)
    }

    /// Starts `Log.close`: a clean shutdown record.
    fn close(&self, py: Python<'_>) -> PyResult<(u64, PyObject)> {
        let front = self.front(py)?;
        let call: Call = Box::pin(async move { front.close().await.map(|()| Done::Closed) });
        self.start(py, call)
    }

    /// The calls done since the last look: `(call, ok, value)` each, `value` the result or the
    /// exception. Called by the loop when the socket is readable.
    fn ready(&self, py: Python<'_>) -> PyResult<Vec<(u64, bool, PyObject)>> {
        let mut drained = [0u8; 64];
        while matches!((&self.readable).read(&mut drained), Ok(n) if n > 0) {}
        let woken = std::mem::take(&mut *lock(&self.notifier.woken));
        let mut done = Vec::with_capacity(woken.len());
        let mut waiting = lock(&self.waiting);
        for number in woken {
            let Some((call, waker)) = waiting.get_mut(&number) else {
                continue; // woken twice, and handed back already
            };
            let Poll::Ready(result) = call.as_mut().poll(&mut Context::from_waker(waker)) else {
                continue; // woken early: it registered again
            };
            waiting.remove(&number);
            done.push(match result {
                Ok(value) => (number, true, value.into_py(py)?),
                Err(e) => (number, false, to_py_err(py, e).into_value(py).into_any()),
            });
        }
        Ok(done)
    }

    /// Stops the flusher thread. Calls still waiting are dropped (their events stay accepted,
    /// and are written by the next call that leads a batch, or not at all if none comes).
    fn shutdown(&self, py: Python<'_>) {
        self.stop(py);
    }
}
