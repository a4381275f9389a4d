//! Compaction, after the cut: fold the segments the cut closed (from the newest snapshot on),
//! write the state as a snapshot atomically, then remove what it covers. It reads and writes
//! only files no appender touches, so appends go on meanwhile; the cut itself (a retention
//! record, and a switch to a new segment) is the log handle's, under its lock.
//!
//! The order is what makes a crash at any instant leave the old state or the new one, never a
//! mix and never less: the snapshot is written to `NAME.tmp`, synced, renamed and the directory
//! synced before anything it covers is removed, and replay skips what a snapshot covers by the
//! segment numbers it names, so a segment left behind by a crash is never read twice. The
//! snapshot the new one was built from is kept, so that a new snapshot damaged later still has
//! a good state to fall back to.

use std::path::{Path, PathBuf};

use crate::damage::Corruption;
use crate::error::{Error, IoContext, Result};
use crate::fold::RunningSet;
use crate::layout::{is_log_file, snapshot_name};
use crate::limits::SNAPSHOT_BYTES_MAX;
use crate::log::{Log, Opened};
use crate::options::Options;
use crate::read::core::Found;
use crate::recovery::{Policy, Replayed, replay};
use crate::snapshot::{EncodedState, Snapshot, SnapshotCut, encode_state};
use crate::storage::{FsStorage, Storage};
use crate::store::LogStore;

/// Where a compaction cut the log: every record up to `last_seq` is in the segments numbered
/// below `segment_no` (or the snapshot before them); appends go on in `segment_no`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cut {
    pub segment_no: u64,
    pub last_seq: u64,
}

/// What a compaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compacted {
    /// The snapshot written.
    pub snapshot: PathBuf,
    /// The last sequence number it covers.
    pub last_seq: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Running runs it holds.
    pub running: usize,
    /// High-water marks it holds.
    pub marks: usize,
    /// High-water marks the compaction's retention record forgot.
    pub forgotten: usize,
    /// Segment files removed (covered by the snapshot).
    pub segments_removed: usize,
    /// Older snapshot files removed.
    pub snapshots_removed: usize,
}

/// Folds everything up to `cut`, writes the snapshot durably, then removes the segments it
/// covers and every snapshot but it and the one it was built from.
pub(crate) fn write_snapshot(
    store: &dyn LogStore,
    policy: Policy,
    cut: Cut,
    now_ms: u64,
) -> Result<Compacted> {
    let dir = store.place();
    let names = store.list()?;
    let replayed = replay(store, &names, policy, Some(cut.segment_no), &mut |_, _| {})?;
    check_the_cut(dir, &replayed.found, cut)?;
    log_corruption(&replayed.found.corruption);
    let base = replayed.found.started_from.clone();
    if let Some(used) = base.as_ref().filter(|used| used.last_seq == cut.last_seq) {
        // Nothing was recorded since that snapshot (marks kept forever, so the cut wrote no
        // retention record): it is the state. Writing it again under its own name would leave
        // no earlier snapshot to fall back to.
        let compacted = Compacted {
            snapshot: dir.join(&used.file),
            last_seq: used.last_seq,
            bytes: used.bytes,
            running: replayed.set.len(),
            marks: replayed.set.marks_len(),
            forgotten: 0,
            segments_removed: 0,
            snapshots_removed: 0,
        };
        free_behind(replayed.set);
        return Ok(compacted);
    }
    let (state, set) = state_at_the_cut(replayed, cut, now_ms);
    free_behind(set);
    let written = write_durably(store, &names, &state.bytes, cut)?;
    // Only now, with the new state durable, may what it covers go: every segment below the
    // cut, and every snapshot but the new one and the one it was built from (a fallback).
    let new = snapshot_name(cut.last_seq);
    let keep: Vec<&str> = std::iter::once(new.as_str())
        .chain(base.as_ref().map(|b| b.file.as_str()))
        .collect();
    let (segments_removed, snapshots_removed) =
        store.remove_covered(&names, cut.segment_no, &keep)?;
    Ok(Compacted {
        snapshot: written.0,
        last_seq: cut.last_seq,
        bytes: written.1,
        running: state.running,
        marks: state.marks,
        forgotten: 0,
        segments_removed,
        snapshots_removed,
    })
}

/// Every record up to the cut was synced before the cut; if the reading does not find them
/// all, the disk lost some since. Keep every file, and say so.
fn check_the_cut(dir: &Path, found: &Found, cut: Cut) -> Result<()> {
    let covered = found.next_seq - 1;
    if covered == cut.last_seq && found.torn_tail.is_none() {
        return Ok(());
    }
    Err(Error::Corrupt {
        segment: dir.join(crate::layout::segment_name(cut.segment_no - 1)),
        offset: 0,
        detail: format!(
            "compaction found records up to {covered} where the log wrote up to {}: the \
             segments changed under the log; nothing was compacted",
            cut.last_seq
        ),
    })
}

/// Corruption in what the compaction covers: its bytes go with the segments removed, and the
/// snapshot keeps the gap.
fn log_corruption(corruption: &[Corruption]) {
    for c in corruption {
        tracing::error!(
            corruption = %c,
            "compaction found corruption: its segment is removed, the snapshot keeps the gap"
        );
    }
}

/// Below this many keys a state is freed where it is: a thread would cost more.
const FREE_BEHIND_KEYS_MIN: usize = 10_000;

/// Frees the state a compaction folded on a thread of its own. Freeing a million runs (each
/// its allocations) took a third of a compaction's time, and nothing waits on it: the
/// snapshot is written and its covered segments removed meanwhile. A small state, or one whose
/// thread cannot be started, is freed here.
fn free_behind(set: RunningSet) {
    if set.marks_len() < FREE_BEHIND_KEYS_MIN {
        return;
    }
    // A failed spawn drops the closure, and the set with it, here.
    let _ = std::thread::Builder::new()
        .name("inflight-free".into())
        .spawn(move || drop(set));
}

/// The snapshot of the state the reading folded, with every gap it knows of, encoded, and
/// that state. In a debug build it is read back and checked as a reader checks it: the
/// invariants hold on both sides of the disk.
fn state_at_the_cut(replayed: Replayed, cut: Cut, now_ms: u64) -> (EncodedState, RunningSet) {
    let found = replayed.found;
    let mut gaps = found.gaps_before_snapshot;
    gaps.extend(found.corruption);
    let at = SnapshotCut {
        last_seq: cut.last_seq,
        next_segment_no: cut.segment_no,
        last_record_ms: found.last_ms,
        coverage_since_ms: found.coverage_since_ms.unwrap_or(now_ms),
        created_ms: now_ms,
    };
    let state = encode_state(&replayed.set, at, gaps);
    debug_assert!(
        Snapshot::decode(&state.bytes).is_ok_and(|s| s.into_set() == replayed.set),
        "a snapshot reads back as the state it was made of"
    );
    (state, replayed.set)
}

/// Installs the snapshot's bytes durably (see [`LogStore::install_snapshot`]); returns its
/// path and size.
fn write_durably(
    store: &dyn LogStore,
    names: &[String],
    bytes: &[u8],
    cut: Cut,
) -> Result<(PathBuf, u64)> {
    if bytes.len() as u64 > SNAPSHOT_BYTES_MAX {
        return Err(Error::InvalidInput {
            field: "snapshot",
            reason: format!(
                "would be {} bytes, over the limit of {SNAPSHOT_BYTES_MAX}; the running runs \
                 and marks are too many to compact",
                bytes.len()
            ),
            key: None,
        });
    }
    let path = store.install_snapshot(names, cut.last_seq, bytes)?;
    Ok((path, bytes.len() as u64))
}

/// Compacts the log in `dir` offline: takes the lock (so it fails with [`Error::Locked`]
/// while a gateway holds the log), recovers it as an open does (without counting a
/// recovery: this is not a restart), compacts, and releases it. The command line's
/// `inflight compact DIR`.
pub fn compact_dir(dir: impl AsRef<Path>, options: Options) -> Result<Compacted> {
    let dir = dir.as_ref();
    let storage = FsStorage::default();
    // A mistyped path must not become a new, empty log.
    let is_log = storage.is_dir(dir).at("stat", dir)?
        && storage
            .list(dir)
            .at("list", dir)?
            .iter()
            .any(|n| is_log_file(n));
    if !is_log {
        return Err(Error::NotFound {
            dir: dir.to_path_buf(),
        });
    }
    let mut options = options.compact_after_bytes(None);
    options.record_recovery = false;
    let Opened { log, report: _ } = Log::open(dir, options)?;
    log.compact()
}
