//! Group commit: each caller accepts its event into the log's order under a short lock; the
//! first caller to find no write under way becomes the leader, writes every event accepted so
//! far that fits in one frame with one write and one fdatasync, folds them, and wakes the
//! callers it made durable and the one that leads next. A failed write or sync poisons the
//! handle.

use std::sync::MutexGuard;
use std::time::Instant;

use super::queue::Slot;
use super::{Failure, Led, Shared, State, lock, wait};
use crate::error::{Error, FencedError, Result};
use crate::event::{Event, encode_event};
use crate::fold::Applied;
use crate::frame::FRAME_HEADER_BYTES;

impl State {
    /// The key's high-water mark as the fold will see it once every accepted event is folded:
    /// the durable mark, or the highest generation among accepted events not yet durable.
    pub(super) fn high_water(&self, key: &str) -> Option<u64> {
        let durable = self.set.mark(key).map(|m| m.generation);
        durable.max(self.queue.pending_generation(key))
    }
}

impl Shared {
    /// After a failed write or sync: the handle refuses everything until the log is reopened,
    /// and the events still waiting to be written are dropped.
    pub(super) fn poison(&self, state: &mut State, e: &Error) {
        // A failed write or sync leaves the file in an unknown state and, after a failed
        // fsync, the kernel may report the next one as a success without writing the data
        // (Linux drops dirty pages on error). Nothing written after this point could be
        // trusted, so the handle refuses everything until the log is reopened and replayed.
        tracing::error!(dir = %self.dir.display(), error = %e, "append failed; log handle refuses every call");
        state.failure = Some(match e {
            Error::Fenced {
                instance,
                by,
                epoch,
            } => {
                state.figures.fence();
                Failure::Fenced(FencedError {
                    instance: instance.clone(),
                    by: by.clone(),
                    epoch: *epoch,
                })
            }
            _ => {
                state.figures.poison();
                Failure::Poisoned {
                    kind: e.io_kind(),
                    cause: e.to_string(),
                    database: e.is_database(),
                }
            }
        });
        state.queue.drop_waiting();
        state.queue.wake_all();
    }

    /// Accepts the event `make` builds from the state (under the state's lock, so a generation
    /// it allocates is never given twice): assigns its sequence number and queues it. Waits
    /// while the queue is full. Returns the sequence number and where its result will be.
    pub(super) fn accept_with(
        &self,
        make: impl FnOnce(&State) -> Result<Event>,
    ) -> Result<(u64, Slot)> {
        let mut state = lock(&self.state);
        loop {
            if let Some(failure) = &state.failure {
                return Err(failure.to_error());
            }
            if !state.queue.is_full() {
                break;
            }
            state.room_waiters += 1;
            state = wait(&self.committed, state);
            state.room_waiters -= 1;
        }
        let event = make(&state)?;
        let payload = encode_event(&event);
        state.bytes_since_cut += (FRAME_HEADER_BYTES + payload.len()) as u64;
        if matches!(event, Event::Shutdown { .. }) {
            // In the same critical section as the accept, so no other thread's event can land
            // after the shutdown record.
            state.failure = Some(Failure::Closed);
        }
        Ok(state.queue.push(event, payload))
    }

    /// Returns once the event with `seq` is durable, with what it did to the running set:
    /// leads a batch when no other caller is writing one, or waits for the leader. The leader
    /// folds its batch into the running set once it is synced, in log order. An error from the
    /// batch holding `seq` is returned as it is to its leader and as [`Error::Poisoned`] to the
    /// others. Also says whether the compaction policy asks for a compaction (decided under
    /// the lock this already holds).
    pub(super) fn commit(&self, (seq, result): &(u64, Slot)) -> Result<(Applied, bool)> {
        let seq = *seq;
        let mut state = lock(&self.state);
        loop {
            if state.queue.is_durable(seq) {
                let applied = *result.get().expect("a durable event has been folded");
                return Ok((applied, self.wants_compaction(&state)));
            }
            if let Some(failure) = &state.failure
                && failure.stops_commits()
            {
                return Err(failure.to_error());
            }
            if !state.queue.needs_leader() {
                // Asleep until the leader wakes this caller: its event is durable, or it is to
                // lead the next batch.
                state.queue.add_waiter(seq, std::thread::current());
                drop(state);
                std::thread::park();
                state = lock(&self.state);
                continue;
            }
            let (next, failed) = self.lead(state);
            state = next;
            if let Some((e, (first, last))) = failed
                && (first..=last).contains(&seq)
            {
                return Err(e);
            }
        }
    }

    /// Leads one batch: takes it, writes and syncs it as one frame, folds it, and wakes the
    /// callers it made durable and the one that leads next (or the flusher, if only tasks
    /// wait). Returns the lock again, and the error with the batch's first and last sequence
    /// numbers if the write or sync failed (the handle is then poisoned).
    pub(super) fn lead<'a>(&'a self, mut state: MutexGuard<'a, State>) -> Led<'a> {
        let batch = state.queue.take_batch();
        drop(state);
        let payload = batch.payload();
        let began = Instant::now();
        let written = lock(&self.writer).append(&payload);
        let took = began.elapsed();
        state = lock(&self.state);
        let applied: Option<Vec<Applied>> = written.is_ok().then(|| {
            let set = &mut state.set;
            batch.events().map(|(_, e)| set.apply(e)).collect()
        });
        if let Some(applied) = &applied {
            let waiting = state.queue.waiting();
            state.figures.commit(took, applied, payload.len(), waiting);
        }
        state.queue.finish(&batch, applied);
        let failed = written.err();
        if let Some(e) = &failed {
            self.poison(&mut state, e);
        }
        let wakeups = state.queue.take_wakeups();
        let flusher = wakeups.leader.is_none() && state.queue.needs_leader() && state.flusher.idle;
        let room_waiters = state.room_waiters > 0;
        drop(state);
        if flusher {
            self.flusher_wanted.notify_one();
        }
        wakeups.wake();
        if room_waiters {
            self.committed.notify_all();
        }
        let state = lock(&self.state);
        (state, failed.map(|e| (e, batch.seqs())))
    }
}
