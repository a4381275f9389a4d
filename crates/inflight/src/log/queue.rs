//! Group commit's bookkeeping: the events accepted into the log's order and not yet durable,
//! the batches a leader takes from them (as many as one frame holds), the last accepted event
//! known durable, and where each event's result goes once it is folded. No I/O and no locking
//! here: the log handle keeps a [`Queue`] under its state lock, and the caller that finds no
//! leader at work becomes one, writes a batch as one frame with one write and one fdatasync,
//! folds it, and wakes the callers it made durable and the one that leads next (see
//! `Log::record`). Each waiting caller is woken on its own: a condition variable shared by
//! all would wake every waiter at every batch, and with dozens of callers the wakeups, not
//! the disk, set the pace.
//!
//! Events are numbered in the order accepted (from 1 for each handle); a frame's sequence number
//! is the writer's, shared by every event in the frame.
//!
//! The running set only ever holds durable events (folded in log order once their batch is
//! synced), so a failed event never shows in it. Generations the log allocates must still
//! count the events accepted and not yet durable: the queue keeps, per key, the highest
//! generation among them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::thread::Thread;

use crate::event::{Event, encode_payload, payload_bytes};
use crate::fold::Applied;

use crate::frame::FRAME_HEADER_BYTES;
use crate::limits::{BATCH_EVENTS_MAX, QUEUE_BYTES_MAX, QUEUE_EVENTS_MAX, RECORD_BYTES_MAX};

/// An accepted event, its encoding and its number in the order accepted.
#[derive(Debug)]
struct Entry {
    seq: u64,
    payload: Vec<u8>,
    event: Event,
    result: Slot,
}

/// Where the leader puts what a durable event did to the running set; its caller holds the
/// other end (a [`Ticket`](crate::Ticket)).
pub(crate) type Slot = Arc<OnceLock<Applied>>;

/// Events a leader writes and syncs together, as one frame: consecutive numbers, in order.
#[derive(Debug)]
pub(crate) struct Batch {
    entries: Vec<Entry>,
}

impl Batch {
    /// The payload of the frame that holds the batch (see
    /// [`encode_payload`](crate::event::encode_payload)).
    pub(crate) fn payload(&self) -> std::borrow::Cow<'_, [u8]> {
        let parts: Vec<&[u8]> = self.entries.iter().map(|e| e.payload.as_slice()).collect();
        encode_payload(&parts)
    }

    /// The events with their sequence numbers, in log order.
    pub(crate) fn events(&self) -> impl Iterator<Item = (u64, &Event)> {
        self.entries.iter().map(|e| (e.seq, &e.event))
    }

    /// The first and the last sequence number in the batch.
    pub(crate) fn seqs(&self) -> (u64, u64) {
        let first = self.entries.first().map_or(0, |e| e.seq);
        let last = self.entries.last().map_or(0, |e| e.seq);
        (first, last)
    }

    /// How many events the batch holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The accepted events waiting to be written, and what is durable.
#[derive(Debug)]
pub(crate) struct Queue {
    entries: VecDeque<Entry>,
    /// Frame bytes of the entries.
    bytes: usize,
    /// The sequence number the next accepted event gets.
    next_seq: u64,
    /// Every event up to this sequence number is durable.
    durable_seq: u64,
    /// A leader has taken a batch and not yet finished it.
    leading: bool,
    /// Per key, the highest generation among accepted events not yet durable, and how many
    /// such events name the key.
    pending_generations: HashMap<String, (u64, usize)>,
    /// The callers asleep until their event is durable (or they are to lead), by the event's
    /// sequence number and the order they went to sleep in (a ticket may be waited for by
    /// several threads at once).
    waiters: BTreeMap<(u64, u64), Thread>,
    /// The async callers (tasks) waiting for their event, by the same keys. A task never leads
    /// a batch (it must not block its runtime): the async front's flusher thread does.
    tasks: BTreeMap<(u64, u64), Waker>,
    /// How many callers went to sleep: the second half of the waiters' keys.
    sleeps: u64,
}

/// The callers a finished batch wakes, once the lock is let go.
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    /// The thread that leads the next batch, if events wait and one of their callers sleeps.
    pub leader: Option<Thread>,
    /// The threads whose events are durable now.
    pub threads: Vec<Thread>,
    /// The tasks whose events are durable now.
    pub tasks: Vec<Waker>,
}

impl Wakeups {
    /// Wakes them, the next leader first.
    pub(crate) fn wake(self) {
        if let Some(leader) = self.leader {
            leader.unpark();
        }
        for thread in self.threads {
            thread.unpark();
        }
        for task in self.tasks {
            task.wake();
        }
    }
}

impl Queue {
    /// An empty queue whose next event gets `next_seq`; everything before it is durable.
    pub(crate) fn new(next_seq: u64) -> Queue {
        assert!(next_seq >= 1, "sequence numbers start at 1");
        Queue {
            entries: VecDeque::new(),
            bytes: 0,
            next_seq,
            durable_seq: next_seq - 1,
            leading: false,
            pending_generations: HashMap::new(),
            waiters: BTreeMap::new(),
            tasks: BTreeMap::new(),
            sleeps: 0,
        }
    }

    /// Registers `thread` as asleep until the event with `seq` is durable, or until it is to
    /// lead the next batch. (It parks; a wakeup that finds neither is spurious, and it
    /// registers again.)
    pub(crate) fn add_waiter(&mut self, seq: u64, thread: Thread) {
        self.sleeps += 1;
        self.waiters.insert((seq, self.sleeps), thread);
    }

    /// Registers the task of `waker` as waiting for the event with `seq`, in place of its
    /// registration `previous` (from an earlier poll) if it is still there. Returns its key.
    pub(crate) fn add_task(&mut self, seq: u64, waker: &Waker, previous: Option<u64>) -> u64 {
        if let Some(previous) = previous {
            self.tasks.remove(&(seq, previous));
        }
        self.sleeps += 1;
        self.tasks.insert((seq, self.sleeps), waker.clone());
        self.sleeps
    }

    /// Forgets the registration `key` of a task waiting for `seq` (its future was dropped).
    pub(crate) fn remove_task(&mut self, seq: u64, key: u64) {
        self.tasks.remove(&(seq, key));
    }

    /// The callers to wake now: the caller of the oldest waiting event that sleeps, when events
    /// wait and no leader is at work (it leads next: wake it first), and the callers whose
    /// events are durable. The caller wakes them once it has let go of the lock, so they do
    /// not wake into it held.
    pub(crate) fn take_wakeups(&mut self) -> Wakeups {
        let first_waiting = (self.durable_seq + 1, 0);
        let later = self.waiters.split_off(&first_waiting);
        let threads = std::mem::replace(&mut self.waiters, later);
        let later = self.tasks.split_off(&first_waiting);
        let tasks = std::mem::replace(&mut self.tasks, later);
        let leader = if self.needs_leader() {
            self.waiters.pop_first().map(|(_, thread)| thread)
        } else {
            None
        };
        Wakeups {
            leader,
            threads: threads.into_values().collect(),
            tasks: tasks.into_values().collect(),
        }
    }

    /// Wakes every caller that sleeps: after a failure, which each of them must see.
    pub(crate) fn wake_all(&mut self) {
        for thread in std::mem::take(&mut self.waiters).into_values() {
            thread.unpark();
        }
        for task in std::mem::take(&mut self.tasks).into_values() {
            task.wake();
        }
    }

    /// How many accepted events are not yet taken into a batch.
    pub(crate) fn waiting(&self) -> usize {
        self.entries.len()
    }

    /// Whether accepting one more event must wait for a batch to be written (the queue is
    /// bounded in events and bytes, so a disk slower than the callers holds them back rather
    /// than memory growing without limit).
    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= QUEUE_EVENTS_MAX || self.bytes >= QUEUE_BYTES_MAX
    }

    /// Accepts `event`, encoded as `payload`; returns its sequence number and where its result
    /// will be.
    pub(crate) fn push(&mut self, event: Event, payload: Vec<u8>) -> (u64, Slot) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += FRAME_HEADER_BYTES + payload.len();
        if let Some((key, generation)) = key_generation(&event) {
            let entry = self
                .pending_generations
                .entry(key.to_string())
                .or_insert((generation, 0));
            entry.0 = entry.0.max(generation);
            entry.1 += 1;
        }
        let result = Slot::default();
        self.entries.push_back(Entry {
            seq,
            payload,
            event,
            result: result.clone(),
        });
        (seq, result)
    }

    /// The highest generation of `key` among accepted events not yet durable.
    pub(crate) fn pending_generation(&self, key: &str) -> Option<u64> {
        self.pending_generations.get(key).map(|&(g, _)| g)
    }

    /// Whether the event with `seq` is durable.
    pub(crate) fn is_durable(&self, seq: u64) -> bool {
        seq <= self.durable_seq
    }

    /// Whether events wait and no leader is writing: the caller should lead.
    pub(crate) fn needs_leader(&self) -> bool {
        !self.leading && !self.entries.is_empty()
    }

    /// Takes the next batch, oldest first: as many events as one frame holds (at most
    /// [`BATCH_EVENTS_MAX`], and a payload of at most [`RECORD_BYTES_MAX`] bytes; at least one),
    /// and marks a leader at work.
    pub(crate) fn take_batch(&mut self) -> Batch {
        assert!(self.needs_leader(), "a batch is taken by the one leader");
        self.leading = true;
        let mut entries = Vec::new();
        let mut encoded = 0;
        while let Some(next) = self.entries.front() {
            let grown = payload_bytes(entries.len() + 1, encoded + next.payload.len());
            if !entries.is_empty()
                && (entries.len() >= BATCH_EVENTS_MAX || grown > RECORD_BYTES_MAX)
            {
                break;
            }
            encoded += next.payload.len();
            self.bytes -= FRAME_HEADER_BYTES + next.payload.len();
            entries.extend(self.entries.pop_front());
        }
        Batch { entries }
    }

    /// The leader is done with `batch`: durable if `applied` holds what each of its events
    /// did (in order), failed if it is `None`.
    pub(crate) fn finish(&mut self, batch: &Batch, applied: Option<Vec<Applied>>) {
        assert!(self.leading, "only a leader finishes a batch");
        self.leading = false;
        for (_, event) in batch.events() {
            self.forget_pending(event);
        }
        let Some(applied) = applied else {
            return;
        };
        let (first, last) = batch.seqs();
        assert_eq!(
            first,
            self.durable_seq + 1,
            "batches are written in order, each right after the last durable event"
        );
        assert_eq!(applied.len(), batch.entries.len(), "one result per event");
        for (entry, result) in batch.entries.iter().zip(applied) {
            entry.result.set(result).expect("each event is folded once");
        }
        self.durable_seq = last;
    }

    fn forget_pending(&mut self, event: &Event) {
        if let Some((key, _)) = key_generation(event)
            && let Some(entry) = self.pending_generations.get_mut(key)
        {
            entry.1 -= 1;
            if entry.1 == 0 {
                self.pending_generations.remove(key);
            }
        }
    }

    /// After a failure nothing more is written: the events still waiting are dropped (their
    /// callers get the failure).
    pub(crate) fn drop_waiting(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        for entry in &entries {
            self.forget_pending(&entry.event);
        }
        self.bytes = 0;
    }
}

/// The key and generation an event raises the key's mark to, if any (an exact completion, a
/// decision or progress never raises one).
fn key_generation(event: &Event) -> Option<(&str, u64)> {
    match event {
        Event::Started(run) => Some((&run.key, run.generation)),
        Event::Adopted(adoption) => Some((&adoption.run.key, adoption.run.generation)),
        Event::Completed {
            key, generation, ..
        } => Some((key, *generation)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(key: &str, generation: u64) -> Event {
        Event::Completed {
            key: key.into(),
            generation,
            at_ms: 0,
        }
    }

    #[test]
    fn a_batch_is_as_many_events_as_one_frame_holds_in_order() {
        let mut q = Queue::new(5);
        let first = q.push(done("k", 0), vec![1; 10]);
        for g in 1..1000 {
            q.push(done("k", g), vec![1; 10]);
        }
        assert_eq!(q.pending_generation("k"), Some(999));
        assert!(q.needs_leader());
        let batch = q.take_batch();
        let n = batch.len();
        // Bounded by the frame's payload: one more event would not fit.
        assert!(payload_bytes(n, n * 10) <= RECORD_BYTES_MAX);
        assert!(payload_bytes(n + 1, (n + 1) * 10) > RECORD_BYTES_MAX);
        assert_eq!(batch.payload().len(), payload_bytes(n, n * 10));
        assert_eq!(batch.seqs(), (5, 5 + n as u64 - 1));
        assert!(!q.needs_leader(), "one leader at a time");
        assert!(!q.is_durable(5));
        q.finish(&batch, Some(vec![Applied::UnknownCompletion; n]));
        assert!(q.is_durable(5 + n as u64 - 1));
        assert_eq!(first.1.get(), Some(&Applied::UnknownCompletion));
        // The next batch fails: its events are not durable, and after the failure the ones
        // still waiting are dropped.
        let rest = q.take_batch();
        assert_eq!(rest.seqs().0, 5 + n as u64);
        q.finish(&rest, None);
        assert!(!q.is_durable(rest.seqs().0));
        q.drop_waiting();
        assert!(!q.needs_leader());
        assert_eq!(q.pending_generation("k"), None);
    }

    #[test]
    fn a_finished_batch_wakes_its_waiters_and_the_next_leader_only() {
        let mut q = Queue::new(1);
        let me = std::thread::current();
        q.push(done("a", 1), vec![1; 10]);
        q.push(done("b", 1), vec![1; 10]);
        let batch = q.take_batch();
        // Accepted while the batch is written: they wait for the next one.
        q.push(done("c", 1), vec![1; 10]);
        q.push(done("d", 1), vec![1; 10]);
        for seq in [1, 2, 2, 3, 4] {
            q.add_waiter(seq, me.clone());
        }
        q.finish(&batch, Some(vec![Applied::UnknownCompletion; 2]));
        let Wakeups {
            leader,
            threads: durable,
            ..
        } = q.take_wakeups();
        assert_eq!(
            durable.len(),
            3,
            "the callers of events 1 and 2 (two wait for event 2), durable now"
        );
        assert!(leader.is_some(), "the caller of event 3 leads next");
        assert_eq!(q.waiters.keys().map(|k| k.0).collect::<Vec<_>>(), [4]);
        // While a leader is at work, nobody else is woken to lead.
        let next = q.take_batch();
        assert_eq!(q.take_wakeups().leader.map(|t| t.id()), None);
        q.finish(&next, None);
        q.drop_waiting();
        q.wake_all();
        assert!(
            q.waiters.is_empty(),
            "after a failure every sleeper is woken"
        );
    }

    #[test]
    fn a_lone_event_is_a_batch_of_one_whatever_its_size() {
        let mut q = Queue::new(1);
        q.push(done("k", 1), vec![7; RECORD_BYTES_MAX]);
        q.push(done("k", 2), vec![7; 10]);
        let batch = q.take_batch();
        assert_eq!(batch.len(), 1);
        assert_eq!(
            batch.payload().len(),
            RECORD_BYTES_MAX,
            "one event is its own payload"
        );
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut q = Queue::new(1);
        while !q.is_full() {
            q.push(Event::Shutdown { at_ms: 0 }, vec![0; 100]);
        }
        assert!(q.entries.len() <= QUEUE_EVENTS_MAX);
        assert!(q.bytes >= QUEUE_BYTES_MAX || q.entries.len() == QUEUE_EVENTS_MAX);
    }
}
