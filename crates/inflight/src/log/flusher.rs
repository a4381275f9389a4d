//! The async front's side of the log (`crate::asynclog`): its flusher thread, which leads the
//! batches only tasks wait for (a task must not block its runtime's thread on a write and a
//! sync), and the futures' side of a commit: registering a task's waker, and forgetting it.

use std::sync::Arc;

use super::queue::Slot;
use super::{Log, Shared, Ticket, lock, wait};
use crate::error::Result;
use crate::fold::Applied;

/// The async front's flusher thread (see [`Log::start_flusher`]); dropping it stops the thread
/// and waits for it.
pub(crate) struct Flusher {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher").finish_non_exhaustive()
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.flusher.stop = true;
        drop(state);
        self.shared.flusher_wanted.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Log {
    /// Starts the async front's flusher thread: it leads the batches of events only tasks wait
    /// for (a task must not block its runtime's thread on a write and a sync). It stops when
    /// the returned handle is dropped.
    pub(crate) fn start_flusher(&self) -> std::io::Result<Flusher> {
        let shared = self.shared.clone();
        let thread = std::thread::Builder::new()
            .name("inflight-flusher".into())
            .spawn(move || shared.run_flusher())?;
        Ok(Flusher {
            shared: self.shared.clone(),
            thread: Some(thread),
        })
    }

    /// The async side of [`Log::wait`] (see `Shared::poll_durable`).
    pub(crate) fn poll_durable(
        &self,
        ticket: &Ticket,
        waker: &std::task::Waker,
        registered: &mut Option<u64>,
    ) -> std::task::Poll<Result<Applied>> {
        let polled = self
            .shared
            .poll_durable(ticket.seq, &ticket.result, waker, registered);
        polled.map(|done| {
            done.map(|(applied, compact)| {
                self.after_commit(compact);
                applied
            })
        })
    }

    /// Forgets a task's registration for `ticket`.
    pub(crate) fn forget_task(&self, ticket: &Ticket, registered: u64) {
        self.shared.forget_task(ticket.seq, registered);
    }
}

impl Shared {
    /// The async side of `commit`: whether the event with `seq` is durable (with what it did,
    /// and whether the compaction policy asks for a compaction), or else registers `waker` to
    /// be woken when it is (in place of the task's earlier registration, kept in `registered`)
    /// and makes sure the flusher leads if nobody is.
    pub(crate) fn poll_durable(
        &self,
        seq: u64,
        result: &Slot,
        waker: &std::task::Waker,
        registered: &mut Option<u64>,
    ) -> std::task::Poll<Result<(Applied, bool)>> {
        use std::task::Poll;
        let mut state = lock(&self.state);
        if state.queue.is_durable(seq) {
            *registered = None;
            let applied = *result.get().expect("a durable event has been folded");
            return Poll::Ready(Ok((applied, self.wants_compaction(&state))));
        }
        if let Some(failure) = &state.failure
            && failure.stops_commits()
        {
            *registered = None;
            return Poll::Ready(Err(failure.to_error()));
        }
        *registered = Some(state.queue.add_task(seq, waker, *registered));
        let flusher = state.queue.needs_leader() && state.flusher.idle;
        drop(state);
        if flusher {
            self.flusher_wanted.notify_one();
        }
        Poll::Pending
    }

    /// Forgets a task's registration (its future was dropped before the event was durable).
    pub(crate) fn forget_task(&self, seq: u64, registered: u64) {
        let mut state = lock(&self.state);
        state.queue.remove_task(seq, registered);
    }

    /// The async front's flusher: leads each batch no calling thread leads (one that only
    /// tasks wait for), and sleeps while there is none, until told to stop.
    pub(super) fn run_flusher(&self) {
        let mut state = lock(&self.state);
        while !state.flusher.stop {
            if state.queue.needs_leader() {
                state = self.lead(state).0;
                continue;
            }
            state.flusher.idle = true;
            state = wait(&self.flusher_wanted, state);
            state.flusher.idle = false;
        }
    }
}
