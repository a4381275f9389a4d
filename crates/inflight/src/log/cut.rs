//! Compaction from the handle (`cut`, named so beside `crate::compaction`): the cut (a retention record, then a new segment: the only
//! moment appends wait), one compaction at a time, and compactions in the background once the
//! policy asks for one. The snapshot itself is written by [`crate::compaction`].

use std::sync::MutexGuard;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Log, Shared, State, lock};
use crate::compaction::{Compacted, Cut, write_snapshot};
use crate::error::Result;
use crate::event::Event;
use crate::fold::Applied;

/// A compaction whose cut is made: [`Compaction::finish`] writes the snapshot and removes what
/// it covers. Dropping it abandons the compaction (the cut stays; nothing is lost).
#[must_use = "the snapshot is only written by finish()"]
pub struct Compaction<'a> {
    shared: &'a Shared,
    _one_at_a_time: MutexGuard<'a, ()>,
    cut: Cut,
    retention: Option<Event>,
    forgotten: usize,
}

impl std::fmt::Debug for Compaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compaction")
            .field("cut", &self.cut)
            .finish_non_exhaustive()
    }
}

impl Compaction<'_> {
    /// The retention record the cut wrote (none when marks are kept forever).
    pub fn retention_record(&self) -> Option<&Event> {
        self.retention.as_ref()
    }

    /// The last sequence number the snapshot will cover.
    pub fn last_seq(&self) -> u64 {
        self.cut.last_seq
    }

    /// Folds everything up to the cut, writes the snapshot (temporary file, sync, rename,
    /// directory sync), then removes the segments it covers and the snapshots before the one
    /// it was built from. An error here does not poison the handle, and the log reads the same
    /// whatever step failed: before the rename nothing changed; after it, the new snapshot
    /// holds what any covered segment still there holds.
    pub fn finish(self) -> Result<Compacted> {
        let shared = self.shared;
        let span = tracing::info_span!(
            "compaction",
            dir = %shared.dir.display(),
            last_seq = self.cut.last_seq,
            snapshot_bytes = tracing::field::Empty,
            seconds = tracing::field::Empty,
        )
        .entered();
        let began = std::time::Instant::now();
        let now_ms = shared.environment.now_ms();
        let mut compacted = write_snapshot(&*shared.store, shared.policy, self.cut, now_ms)?;
        compacted.forgotten = self.forgotten;
        let took = began.elapsed();
        let mut state = lock(&shared.state);
        state.snapshot_bytes = compacted.bytes;
        state.figures.compacted(took, compacted.bytes);
        drop(state);
        span.record("snapshot_bytes", compacted.bytes);
        span.record("seconds", took.as_secs_f64());
        tracing::debug!(snapshot = %compacted.snapshot.display(), last_seq = compacted.last_seq, "compacted");
        Ok(compacted)
    }
}

impl Shared {
    /// The cut, one compaction at a time: [`Log::begin_compaction`].
    pub(super) fn begin_compaction(&self) -> Result<Compaction<'_>> {
        let one_at_a_time = lock(&self.compaction);
        let (cut, retention, forgotten) = self.cut()?;
        Ok(Compaction {
            shared: self,
            _one_at_a_time: one_at_a_time,
            cut,
            retention,
            forgotten,
        })
    }

    /// A whole compaction, for the background thread.
    pub(super) fn compact(&self) -> Result<Compacted> {
        self.begin_compaction()?.finish()
    }

    /// Whether the segments written since the last cut have grown past the policy's threshold.
    pub(super) fn wants_compaction(&self, state: &State) -> bool {
        state.failure.is_none()
            && self.compact_after_bytes.is_some_and(|floor| {
                state.bytes_since_cut >= floor.max(state.snapshot_bytes.saturating_mul(2))
            })
    }

    /// The cut: a retention record (if marks are retained for a limited time), durable like
    /// any event, then a new segment, made with the writer to itself, so every frame before it
    /// is written and synced. Returns where the log was cut and how many marks the retention
    /// forgot.
    pub(super) fn cut(&self) -> Result<(Cut, Option<Event>, usize)> {
        let mut forgotten = 0;
        let mut retention = None;
        if let Some(retention_ms) = self.retention_ms {
            let now = self.environment.now_ms();
            let event = Event::Retention {
                forget_before_ms: now.saturating_sub(retention_ms),
                at_ms: now,
            };
            let accepted = self.accept_with(|_| Ok(event.clone()))?;
            if let (Applied::Retention { forgotten: n }, _) = self.commit(&accepted)? {
                forgotten = n;
            }
            retention = Some(event);
        }
        let mut writer = lock(&self.writer);
        let mut state = lock(&self.state);
        if let Some(failure) = &state.failure {
            return Err(failure.to_error());
        }
        drop(state);
        let rolled = writer.roll_over();
        let cut = Cut {
            segment_no: writer.segment_no(),
            last_seq: writer.next_seq() - 1,
        };
        state = lock(&self.state);
        if let Err(e) = rolled {
            self.poison(&mut state, &e);
            self.committed.notify_all();
            return Err(e);
        }
        state.bytes_since_cut = 0;
        Ok((cut, retention, forgotten))
    }
}

impl Log {
    /// After a commit: starts a background compaction if the policy asked for one when the
    /// event became durable.
    pub(super) fn after_commit(&self, wanted: bool) {
        if !wanted || self.shared.background_busy.swap(true, Ordering::AcqRel) {
            return;
        }
        // Spawned while holding the lock on the handle of the last one, which has cleared
        // `background_busy` (it is done), so joining it never waits for a compaction.
        let mut background = lock(&self.background);
        if let Some(previous) = background.take() {
            let _ = previous.join();
        }
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("inflight-compaction".into())
            .spawn(move || {
                /// Clears `background_busy` however the compaction ends, a panic included.
                struct Done<'a>(&'a AtomicBool);
                impl Drop for Done<'_> {
                    fn drop(&mut self) {
                        self.0.store(false, Ordering::Release);
                    }
                }
                let _done = Done(&shared.background_busy);
                match shared.compact() {
                    Ok(c) => tracing::info!(
                        snapshot = %c.snapshot.display(),
                        bytes = c.bytes,
                        running = c.running,
                        segments_removed = c.segments_removed,
                        "compacted in the background"
                    ),
                    // The log itself is unharmed (a failed cut poisons the handle, which then
                    // reports it); the next append past the threshold tries again.
                    Err(e) => tracing::error!(error = %e, "background compaction failed"),
                }
            });
        match spawned {
            Ok(handle) => *background = Some(handle),
            Err(e) => {
                tracing::error!(error = %e, "could not start a background compaction");
                self.shared.background_busy.store(false, Ordering::Release);
            }
        }
    }
}
