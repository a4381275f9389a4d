//! For the benchmarks: the same workload as the Python side runs, with no Python in the loop,
//! through the same build of the library, so that both are measured in one run.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use inflight::Options;
use inflight::asynclog::AsyncLog;

use crate::errors::to_py_err;

/// `threads` Rust threads begin and complete runs on their own keys through the log in `path`
/// for `seconds`, every event synced; returns (events, elapsed seconds).
#[pyfunction]
pub(crate) fn _native_load(
    py: Python<'_>,
    path: PathBuf,
    threads: usize,
    seconds: f64,
) -> PyResult<(u64, f64)> {
    let result = py.allow_threads(move || -> inflight::Result<(u64, f64)> {
        let log = inflight::Log::open(&path, Options::default())?.log;
        let events = AtomicU64::new(0);
        let failed = AtomicBool::new(false);
        let started = Instant::now();
        let deadline = Duration::from_secs_f64(seconds);
        let first_error = Mutex::new(None);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (log, events, failed, first_error) = (&log, &events, &failed, &first_error);
                s.spawn(move || {
                    let mut i = 0u64;
                    while started.elapsed() < deadline && !failed.load(Ordering::Relaxed) {
                        let key = format!("bench:native:{t}:{}", i % 16);
                        let done = log
                            .begin_run(key, "s", None)
                            .and_then(|run| log.mark_completed(&run.key, run.generation));
                        if let Err(e) = done {
                            failed.store(true, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(e);
                            return;
                        }
                        events.fetch_add(2, Ordering::Relaxed);
                        i += 1;
                    }
                });
            }
        });
        let elapsed = started.elapsed().as_secs_f64();
        if let Some(e) = first_error.into_inner().unwrap() {
            return Err(e);
        }
        log.close()?;
        Ok((events.load(Ordering::Relaxed), elapsed))
    });
    result.map_err(|e| to_py_err(py, e))
}

/// `tasks` async tasks begin and complete runs on their own keys through the crate's async
/// front for `seconds`, all driven by one thread (as asyncio drives its tasks from one),
/// every event synced; returns (events, elapsed seconds).
#[pyfunction]
pub(crate) fn _native_async_load(
    py: Python<'_>,
    path: PathBuf,
    tasks: usize,
    seconds: f64,
) -> PyResult<(u64, f64)> {
    let result = py.allow_threads(move || -> inflight::Result<(u64, f64)> {
        let front = AsyncLog::new(inflight::Log::open(&path, Options::default())?.log);
        let events = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = Duration::from_secs_f64(seconds);
        let futures: Vec<Task> = (0..tasks)
            .map(|t| {
                let (front, events) = (front.clone(), events.clone());
                Box::pin(async move {
                    let mut i = 0u64;
                    while started.elapsed() < deadline {
                        let key = format!("bench:async:{t}:{}", i % 16);
                        let run = front.begin_run(key, "s", None).await?;
                        front.mark_completed(run.key, run.generation).await?;
                        events.fetch_add(2, Ordering::Relaxed);
                        i += 1;
                    }
                    Ok(())
                }) as Task
            })
            .collect();
        run_to_completion(futures)?;
        let elapsed = started.elapsed().as_secs_f64();
        front.log().close()?;
        Ok((events.load(Ordering::Relaxed), elapsed))
    });
    result.map_err(|e| to_py_err(py, e))
}

type Task = Pin<Box<dyn Future<Output = inflight::Result<()>> + Send>>;

/// The tasks woken and not yet polled, for the one thread that polls them.
#[derive(Default)]
struct ReadyQueue {
    ready: Mutex<VecDeque<usize>>,
    wanted: Condvar,
}

struct TaskWaker {
    task: usize,
    queue: Arc<ReadyQueue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.queue
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(self.task);
        self.queue.wanted.notify_one();
    }
}

/// A minimal executor: polls every task from this thread until all are done, each when its
/// waker says so; the first error ends it.
fn run_to_completion(mut tasks: Vec<Task>) -> inflight::Result<()> {
    let queue = Arc::new(ReadyQueue::default());
    let wakers: Vec<Waker> = (0..tasks.len())
        .map(|task| {
            Waker::from(Arc::new(TaskWaker {
                task,
                queue: queue.clone(),
            }))
        })
        .collect();
    queue
        .ready
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(0..tasks.len());
    let mut done = vec![false; tasks.len()];
    let mut left = tasks.len();
    while left > 0 {
        let mut ready = queue.ready.lock().unwrap_or_else(|e| e.into_inner());
        while ready.is_empty() {
            ready = queue.wanted.wait(ready).unwrap_or_else(|e| e.into_inner());
        }
        let batch: Vec<usize> = ready.drain(..).collect();
        drop(ready);
        for task in batch {
            if done[task] {
                continue;
            }
            let mut cx = Context::from_waker(&wakers[task]);
            if let Poll::Ready(result) = tasks[task].as_mut().poll(&mut cx) {
                result?;
                done[task] = true;
                left -= 1;
            }
        }
    }
    Ok(())
}
