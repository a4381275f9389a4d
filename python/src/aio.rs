//! The crate's waker-based async front for an asyncio event loop.
//!
//! A call accepts its event at once (on the loop's thread, in microseconds) and polls the
//! crate's future once. If the event is not durable yet, the future stays here under a call
//! number, registered with the log by a `Waker` of this module's own. When a sync makes the
//! event durable, the thread that synced it (the front's flusher, or a thread calling the
//! blocking methods) wakes that waker, which only notes the call number and, if it is the first
//! since the loop last looked, tells the loop to look. The loop then calls `ready()`, which polls
//! the woken calls and hands back their results. No thread is held per waiting call, the loop
//! never waits for a write or a sync, and the syncing thread never takes the GIL.
//!
//! The loop is told in one of two ways, the same round either way:
//! - a selector loop (every loop on Unix) watches a socket (`loop.add_reader`), and the round is
//!   one byte written to it;
//! - a loop without `add_reader` (the proactor loop, Windows' default) has one Python thread
//!   per front waiting in `wait_round()` with the GIL released; the round ends that wait, and
//!   the thread hands `ready()` to the loop with `call_soon_threadsafe`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

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

/// The longest one `wait_round()` waits, whatever the caller asks: the thread that calls it
/// comes back at least this often to see whether its loop or its front is gone.
const ROUND_WAIT_MAX: Duration = Duration::from_secs(1);

/// What the wakers share with the loop's side.
#[derive(Default)]
struct Rounds {
    /// The calls woken since the loop last looked.
    woken: Vec<u64>,
    /// A round began (the first call was woken) and no `wait_round()` has seen it yet.
    unseen: bool,
    /// The front is shut down: `wait_round()` returns at once.
    stopped: bool,
}

/// The calls woken since the loop last looked, and the two ways of telling it to look.
struct Notifier {
    rounds: Mutex<Rounds>,
    /// Ends a `wait_round()`.
    round_began: Condvar,
    /// The write end of the socket a selector loop watches; non-blocking, so a full socket
    /// (the loop has a byte to read already) never holds up the syncing thread.
    signal: socket::Signal,
}

impl Notifier {
    fn wake(&self, call: u64) {
        let mut rounds = lock(&self.rounds);
        let first = rounds.woken.is_empty();
        rounds.woken.push(call);
        if first {
            rounds.unseen = true;
        }
        drop(rounds);
        if first {
            // One round per first wake: the loop drains the list whole when it looks.
            self.signal.notify();
            self.round_began.notify_all();
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
    /// The read end, watched by a selector loop.
    readable: socket::Watched,
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
        lock(&self.notifier.rounds).stopped = true;
        self.notifier.round_began.notify_all();
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
        let (readable, signal) = socket::pair()?;
        let log = log.handle(py)?;
        Ok(PyAsyncFront {
            front: Mutex::new(Some(AsyncLog::shared(log))),
            notifier: Arc::new(Notifier {
                rounds: Mutex::new(Rounds::default()),
                round_began: Condvar::new(),
                signal,
            }),
            readable,
            waiting: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(1),
        })
    }

    /// The file descriptor a selector loop watches for readiness; `None` where there is none
    /// (Windows), and the loop is told by `wait_round()` instead.
    fn fileno(&self) -> Option<i32> {
        self.readable.fileno()
    }

    /// Waits, with the GIL released, until a round begins that no earlier call saw, or at most
    /// `timeout` seconds (and never more than 1 s): `True` if a round began (hand `ready()` to
    /// the loop), `False` if the wait ran out, `None` once the front is shut down.
    fn wait_round(&self, py: Python<'_>, timeout: f64) -> Option<bool> {
        let timeout = if timeout.is_finite() && timeout > 0.0 {
            Duration::from_secs_f64(timeout.min(ROUND_WAIT_MAX.as_secs_f64()))
        } else {
            Duration::ZERO
        };
        let notifier = self.notifier.clone();
        py.allow_threads(move || {
            let rounds = lock(&notifier.rounds);
            let (mut rounds, _) = notifier
                .round_began
                .wait_timeout_while(rounds, timeout, |r| !r.unseen && !r.stopped)
                .unwrap_or_else(|e| e.into_inner());
            if rounds.stopped {
                return None;
            }
            Some(std::mem::take(&mut rounds.unseen))
        })
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
        self.readable.drain();
        let woken = std::mem::take(&mut lock(&self.notifier.rounds).woken);
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

/// The socket pair of a selector loop, where there is one.
#[cfg(unix)]
mod socket {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// The write end.
    pub(super) struct Signal(UnixStream);
    /// The read end.
    pub(super) struct Watched(UnixStream);

    /// A connected pair, both ends non-blocking.
    pub(super) fn pair() -> std::io::Result<(Watched, Signal)> {
        let (readable, signal) = UnixStream::pair()?;
        readable.set_nonblocking(true)?;
        signal.set_nonblocking(true)?;
        Ok((Watched(readable), Signal(signal)))
    }

    impl Signal {
        /// One byte; a full socket means the loop has one to read already.
        pub(super) fn notify(&self) {
            let _ = (&self.0).write(&[1]);
        }
    }

    impl Watched {
        pub(super) fn fileno(&self) -> Option<i32> {
            Some(self.0.as_raw_fd())
        }

        /// Reads every byte written so far.
        pub(super) fn drain(&self) {
            let mut drained = [0u8; 64];
            while matches!((&self.0).read(&mut drained), Ok(n) if n > 0) {}
        }
    }
}

/// No socket: the loop is told by `wait_round()` only.
#[cfg(not(unix))]
mod socket {
    pub(super) struct Signal;
    pub(super) struct Watched;

    pub(super) fn pair() -> std::io::Result<(Watched, Signal)> {
        Ok((Watched, Signal))
    }

    impl Signal {
        pub(super) fn notify(&self) {}
    }

    impl Watched {
        pub(super) fn fileno(&self) -> Option<i32> {
            None
        }

        pub(super) fn drain(&self) {}
    }
}
