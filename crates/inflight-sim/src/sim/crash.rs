//! What a power loss does to the pending operations (F1 to F6): the random crash's strategies,
//! the outcomes of one operation (lost, kept, grown without data, torn), how a torn write is
//! laid out in sectors and filled (F2, F3), and how a crash state is applied. The exhaustive
//! list of the same outcomes is in [`crash_states`](super::crash_states).

use std::collections::BTreeSet;
use std::fmt;
use std::mem;
use std::ops::Range;
use std::path::PathBuf;

use fastrand::Rng;

#[cfg(doc)]
use super::SimStorage;
use super::trace::{OpKind, TraceEntry};
use super::vfs::{FileOp, Ino, Node, ROOT};
use super::{Inner, PAGE_BYTES, SECTOR_BYTES};

/// What a crash does with the pending operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CrashMode {
    /// A state chosen by the seeded generator among those F1 to F5 allow.
    #[default]
    Random,
    /// Every pending operation is lost: only what was synced remains.
    KeepNothing,
    /// Every pending operation persists, as if everything had been synced (except data a failed
    /// sync already dropped, F7).
    KeepEverything,
}

/// How a random crash treats one file's (or the directories') pending operations.
enum Strategy {
    DropAll,
    KeepAll,
    /// Keep the first n operations, tear the next (if it is a write), drop the rest.
    Prefix(usize),
    /// Decide each operation independently.
    Independent,
}

impl Strategy {
    fn pick(rng: &mut Rng, ops: usize) -> Strategy {
        match rng.u8(0..6) {
            0 => Strategy::DropAll,
            1 => Strategy::KeepAll,
            2 => Strategy::Prefix(rng.usize(0..=ops)),
            _ => Strategy::Independent,
        }
    }

    /// The strategy for `ops` pending operations in a crash of this mode.
    fn for_mode(rng: &mut Rng, mode: CrashMode, ops: usize) -> Strategy {
        match mode {
            CrashMode::Random => Strategy::pick(rng, ops),
            CrashMode::KeepNothing => Strategy::DropAll,
            CrashMode::KeepEverything => Strategy::KeepAll,
        }
    }

    /// The fate of the `i`-th file operation.
    fn file_fate(&self, rng: &mut Rng, i: usize) -> Fate {
        match *self {
            Strategy::DropAll => Fate::Drop,
            Strategy::KeepAll => Fate::Keep,
            Strategy::Prefix(n) if i < n => Fate::Keep,
            Strategy::Prefix(n) if i == n => Fate::Tear,
            Strategy::Prefix(_) => Fate::Drop,
            // F1: any subset, not only a prefix; F2: any of them torn.
            Strategy::Independent => match rng.u8(0..4) {
                0 | 1 => Fate::Keep,
                2 => Fate::Drop,
                _ => Fate::Tear,
            },
        }
    }

    /// Whether the `i`-th directory operation persists.
    fn dir_keep(&self, rng: &mut Rng, i: usize) -> bool {
        match *self {
            Strategy::DropAll => false,
            Strategy::KeepAll => true,
            Strategy::Prefix(n) => i < n,
            Strategy::Independent => rng.bool(),
        }
    }
}

/// What a random crash does to one pending operation, before the details are drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Drop,
    Tear,
}

/// What a crash leaves in the bytes of a write that did not persist (F3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fill {
    /// What was there before: the old bytes, or zeros past the old end of the file.
    Old,
    Zeros,
    /// Random bytes, from a generator with this seed.
    Garbage(u64),
}

impl Fill {
    pub(super) fn apply(self, bytes: &mut [u8]) {
        match self {
            Fill::Old => {}
            Fill::Zeros => bytes.fill(0),
            Fill::Garbage(seed) => Rng::with_seed(seed).fill(bytes),
        }
    }
}

/// F2 and F3: how a write was torn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Tear {
    /// The parts that reached the disk, as ranges of the write's bytes (0 is its first byte),
    /// in order and disjoint.
    pub(super) kept: Vec<Range<usize>>,
    /// What the parts that did not persist read as.
    pub(super) fill: Fill,
    /// Whether the file's length covers the whole write; if not, it ends at the last persisted
    /// byte (it never shrinks).
    pub(super) whole_length: bool,
}

impl Tear {
    /// Applies the torn write of `data` at `offset` to `bytes`. With `overwrite_keeps_old`, the
    /// fill only touches bytes past the old end of the file.
    pub(super) fn apply(
        &self,
        bytes: &mut Vec<u8>,
        offset: u64,
        data: &[u8],
        overwrite_keeps_old: bool,
    ) {
        let old_len = bytes.len();
        let start = offset as usize;
        let end = start + data.len();
        let kept_end = self
            .kept
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| start + r.end)
            .max()
            .unwrap_or(0);
        let covered = if self.whole_length { end } else { kept_end };
        let new_len = covered.max(old_len);
        bytes.resize(new_len, 0);
        let from = if overwrite_keeps_old {
            start.max(old_len)
        } else {
            start
        };
        let unwritten_end = end.min(new_len);
        self.fill
            .apply(&mut bytes[from.min(unwritten_end)..unwritten_end]);
        // An empty part (a sector cut to nothing) may lie past the new end of the file.
        for r in self.kept.iter().filter(|r| !r.is_empty()) {
            bytes[start + r.start..start + r.end].copy_from_slice(&data[r.clone()]);
        }
    }
}

/// What a crash does with one pending operation: the unit both the random crash and the
/// enumeration choose, and [`Inner::apply_crash`] applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The operation is lost.
    Lost,
    /// The operation persisted whole.
    Kept,
    /// A write only (F3): its data is lost but the file's length grew to cover it, the new
    /// bytes reading as the fill.
    Grown(Fill),
    /// A write only (F2): part of it persisted.
    Torn(Tear),
    /// A write only, with the sector spill on ([`SimStorage::set_sector_spill`]): the outcome
    /// (never [`Outcome::Kept`]), and then bytes outside the write, in the sectors it touches,
    /// damaged.
    Spilled(Box<Outcome>, Spill),
}

/// F2 without powersafe overwrite: what a write that a crash interrupted did to the bytes
/// around it in the sectors it shares with them (before its start in its first sector, after
/// its end in its last sector). Only with [`SimStorage::set_sector_spill`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Spill {
    /// The damaged bytes, as file offsets, outside the write and inside its first or last
    /// sector. Bytes past the end of the file are not there to damage.
    pub(super) range: Range<u64>,
    /// What they read as: [`Fill::Zeros`] or [`Fill::Garbage`].
    pub(super) fill: Fill,
}

impl Spill {
    /// Damages the bytes of the range that the file holds.
    fn apply(&self, bytes: &mut [u8]) {
        let len = bytes.len() as u64;
        let (start, end) = (self.range.start.min(len), self.range.end.min(len));
        self.fill.apply(&mut bytes[start as usize..end as usize]);
    }
}

/// Where a write of `len` bytes at `start` shares `sector`-byte sectors with other bytes: the
/// bytes before it in its first sector, and the bytes after it in its last sector (either
/// empty when the write starts or ends at a sector boundary).
pub(super) fn sector_neighbours(start: u64, len: usize, sector: u64) -> [Range<u64>; 2] {
    let end = start + len as u64;
    let head = start / sector * sector..start;
    let tail = end..end.div_ceil(sector) * sector;
    [head, tail]
}

/// The first `len` bytes of a write, as a tear's kept parts.
pub(super) fn prefix(len: usize) -> Vec<Range<usize>> {
    std::iter::once(0..len).collect()
}

/// A write of `len` bytes at `start` cut at the multiples of `sector`, as ranges of the write's
/// bytes.
pub(super) fn sector_ranges(start: u64, len: usize, sector: u64) -> Vec<Range<usize>> {
    let end = start + len as u64;
    let mut ranges = Vec::new();
    let mut at = start;
    while at < end {
        let stop = ((at / sector + 1) * sector).min(end);
        ranges.push((at - start) as usize..(stop - start) as usize);
        at = stop;
    }
    ranges
}

/// F2 and F3: a random tear of a write of `len` bytes at `start`: a prefix cut anywhere, or
/// some of its [`SECTOR_BYTES`] or [`PAGE_BYTES`] sectors, each possibly cut short; a random
/// fill and length.
fn random_tear(rng: &mut Rng, start: u64, len: usize) -> Tear {
    let kept = if len == 0 {
        Vec::new()
    } else if rng.bool() {
        // A prefix, cut anywhere (usually inside a sector).
        prefix(rng.usize(0..len))
    } else {
        let sector = if rng.bool() { SECTOR_BYTES } else { PAGE_BYTES };
        let mut kept = Vec::new();
        for r in sector_ranges(start, len, sector) {
            match rng.u8(0..8) {
                0..=3 => kept.push(r),
                4 => kept.push(r.start..r.start + rng.usize(0..r.len())),
                _ => {}
            }
        }
        kept
    };
    let whole_length = rng.bool();
    let fill = random_fill(rng);
    Tear {
        kept,
        fill,
        whole_length,
    }
}

/// The sector spill of a random crash: for a write at `start` of `len` bytes that the crash
/// interrupted, with probability 1/2, the bytes around it in its first or its last `sector`
/// (each with probability 1/2, if the write does not start or end at a sector boundary) are
/// damaged from a random cut in that sector to the sector's end, as a sector write cut short
/// leaves them. `None` if nothing was damaged.
fn random_spill(rng: &mut Rng, start: u64, len: usize, sector: u64) -> Option<Spill> {
    if !rng.bool() {
        return None;
    }
    let [head, tail] = sector_neighbours(start, len, sector);
    let fill = if rng.bool() {
        Fill::Zeros
    } else {
        Fill::Garbage(rng.u64(..))
    };
    let range = match (head.is_empty(), tail.is_empty()) {
        (true, true) => return None,
        (false, true) => head,
        (true, false) => tail,
        (false, false) if rng.bool() => head,
        (false, false) => tail,
    };
    let cut = rng.u64(range.clone());
    Some(Spill {
        range: cut..range.end,
        fill,
    })
}

fn random_fill(rng: &mut Rng) -> Fill {
    match rng.u8(0..3) {
        0 => Fill::Old,
        1 => Fill::Zeros,
        _ => Fill::Garbage(rng.u64(..)),
    }
}

/// Applies a crash's outcome for one pending file operation to the bytes that stay durable.
fn apply_file_outcome(
    bytes: &mut Vec<u8>,
    op: &FileOp,
    outcome: &Outcome,
    overwrite_keeps_old: bool,
    stats: &mut CrashStats,
) {
    match (op, outcome) {
        (FileOp::Write { .. }, Outcome::Spilled(base, spill)) => {
            stats.writes_spilled += 1;
            apply_file_outcome(bytes, op, base, overwrite_keeps_old, stats);
            spill.apply(bytes);
        }
        (FileOp::Write { .. }, Outcome::Lost) => stats.writes_lost += 1,
        (FileOp::Write { .. }, Outcome::Kept) => {
            stats.writes_kept += 1;
            op.apply(bytes);
        }
        (FileOp::Write { offset, data }, Outcome::Grown(fill)) => {
            stats.writes_grown += 1;
            let old_len = bytes.len();
            let end = *offset as usize + data.len();
            if end > old_len {
                bytes.resize(end, 0);
                fill.apply(&mut bytes[old_len..]);
            }
        }
        (FileOp::Write { offset, data }, Outcome::Torn(tear)) => {
            stats.writes_torn += 1;
            tear.apply(bytes, *offset, data, overwrite_keeps_old);
        }
        (FileOp::SetLen(_), Outcome::Kept) => {
            stats.set_len_kept += 1;
            op.apply(bytes);
        }
        (FileOp::SetLen(_), Outcome::Lost) => stats.set_len_lost += 1,
        (FileOp::SetLen(_), Outcome::Grown(_) | Outcome::Torn(_) | Outcome::Spilled(..)) => {
            unreachable!("a length change persists or is lost")
        }
    }
}

#[derive(Default)]
struct CrashStats {
    writes_kept: usize,
    writes_torn: usize,
    writes_lost: usize,
    writes_grown: usize,
    /// Writes whose crash also damaged bytes around them (counted besides their outcome).
    writes_spilled: usize,
    set_len_kept: usize,
    set_len_lost: usize,
    dir_ops_kept: usize,
    dir_ops_lost: usize,
}

impl fmt::Display for CrashStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "writes kept {} torn {} lost {} grown {}; set_len kept {} lost {}; \
             dir ops kept {} lost {}",
            self.writes_kept,
            self.writes_torn,
            self.writes_lost,
            self.writes_grown,
            self.set_len_kept,
            self.set_len_lost,
            self.dir_ops_kept,
            self.dir_ops_lost
        )?;
        if self.writes_spilled > 0 {
            write!(f, "; writes spilled {}", self.writes_spilled)?;
        }
        Ok(())
    }
}

impl Inner {
    /// A random crash (or one of the extremes, by `mode`).
    pub(super) fn crash(&mut self, mode: CrashMode) {
        let outcomes = self.random_outcomes(mode);
        self.apply_crash(outcomes, &format!("{mode:?}"));
    }

    /// Draws one outcome per pending operation, in the order of [`Inner::pending_items`]: per
    /// file, and for the directory operations, a [`Strategy`], then each operation's fate and
    /// its details.
    fn random_outcomes(&mut self, mode: CrashMode) -> Vec<Outcome> {
        let sector_spill = self.sector_spill;
        let rng = &mut self.crash_rng;
        let mut outcomes = Vec::new();
        for node in self.nodes.values() {
            let Node::File(file) = node else { continue };
            if file.pending.is_empty() {
                continue;
            }
            let strategy = Strategy::for_mode(rng, mode, file.pending.len());
            for (i, op) in file.pending.iter().enumerate() {
                let fate = strategy.file_fate(rng, i);
                let outcome = match (op, fate) {
                    (_, Fate::Keep) => Outcome::Kept,
                    // F3: a lost write's length may have persisted without its data.
                    (FileOp::Write { .. }, Fate::Drop)
                        if mode == CrashMode::Random && rng.u8(0..8) == 0 =>
                    {
                        Outcome::Grown(if rng.bool() {
                            Fill::Garbage(rng.u64(..))
                        } else {
                            Fill::Zeros
                        })
                    }
                    (_, Fate::Drop) => Outcome::Lost,
                    (FileOp::Write { offset, data }, Fate::Tear) => {
                        Outcome::Torn(random_tear(rng, *offset, data.len()))
                    }
                    (FileOp::SetLen(_), Fate::Tear) if rng.bool() => Outcome::Kept,
                    (FileOp::SetLen(_), Fate::Tear) => Outcome::Lost,
                };
                // F2 without powersafe overwrite: an interrupted write may damage its
                // neighbours in the sectors it touches.
                let outcome = match (op, sector_spill) {
                    (FileOp::Write { offset, data }, Some(sector))
                        if mode == CrashMode::Random && outcome != Outcome::Kept =>
                    {
                        match random_spill(rng, *offset, data.len(), sector) {
                            Some(spill) => Outcome::Spilled(Box::new(outcome), spill),
                            None => outcome,
                        }
                    }
                    _ => outcome,
                };
                outcomes.push(outcome);
            }
        }
        // F5: each pending directory operation persists or not.
        let strategy = Strategy::for_mode(rng, mode, self.dir_ops.len());
        for i in 0..self.dir_ops.len() {
            outcomes.push(if strategy.dir_keep(rng, i) {
                Outcome::Kept
            } else {
                Outcome::Lost
            });
        }
        outcomes
    }

    /// Makes one crash state the new durable and cache state, then does the rest of a crash:
    /// `outcomes` has one outcome per pending operation, in the order of
    /// [`Inner::pending_items`]. `what` names the state in the trace.
    pub(super) fn apply_crash(&mut self, outcomes: Vec<Outcome>, what: &str) {
        let mut stats = CrashStats::default();
        let keeps_old = self.overwrite_keeps_old;
        let mut outcomes = outcomes.into_iter();
        let mut next = || outcomes.next().expect("one outcome per pending operation");
        // F1 to F4.
        for node in self.nodes.values_mut() {
            if let Node::File(file) = node {
                for op in mem::take(&mut file.pending) {
                    apply_file_outcome(&mut file.durable, &op, &next(), keeps_old, &mut stats);
                }
                file.cache = file.durable.clone();
            }
        }

        // F5, with the rule sync_dir follows: an operation persists only together with every
        // earlier pending operation on a name it touches.
        let mut lost_names: BTreeSet<(Ino, String)> = BTreeSet::new();
        for op in mem::take(&mut self.dir_ops) {
            let names: Vec<(Ino, String)> =
                op.sets.iter().map(|s| (s.dir, s.name.clone())).collect();
            let keep = next() == Outcome::Kept && !names.iter().any(|n| lost_names.contains(n));
            if keep {
                stats.dir_ops_kept += 1;
                self.apply_durable(&op);
            } else {
                stats.dir_ops_lost += 1;
                lost_names.extend(names);
            }
        }
        debug_assert!(
            outcomes.next().is_none(),
            "one outcome per pending operation"
        );
        for node in self.nodes.values_mut() {
            if let Node::Dir(dir) = node {
                dir.cache = dir.durable.clone();
            }
        }

        // Files and directories no durable name reaches are gone.
        let mut reachable = BTreeSet::from([ROOT]);
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if let Some(Node::Dir(dir)) = self.nodes.get(&ino) {
                for &child in dir.durable.values() {
                    if reachable.insert(child) {
                        stack.push(child);
                    }
                }
            }
        }
        self.nodes.retain(|ino, _| reachable.contains(ino));

        self.epoch += 1;
        self.locks.clear();
        self.stop_at = None;
        self.trace.push(TraceEntry {
            index: self.op_count,
            op: OpKind::Crash,
            path: PathBuf::new(),
            offset: None,
            len: None,
            fault: None,
            detail: format!("{what}: {stats}"),
            result: Ok(0),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::test_util::*;

    #[test]
    fn synced_data_survives_every_crash() {
        let synced: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        for seed in 0..200 {
            for mode in [
                CrashMode::Random,
                CrashMode::KeepNothing,
                CrashMode::KeepEverything,
            ] {
                let sim = SimStorage::new(seed);
                let file = setup(&sim, &synced);
                // Unsynced work after the sync: appends, an overwrite past the synced end, and
                // an unsynced create.
                write_all_at(&*file, &[0xAA; 700], synced.len() as u64).unwrap();
                write_all_at(&*file, &[0xBB; 10], synced.len() as u64 + 1000).unwrap();
                sim.create(&Path::new(DIR).join("g")).unwrap();
                sim.crash_with(mode);
                let bytes = sim.file_bytes(file_path()).expect("synced file exists");
                assert!(bytes.len() >= synced.len(), "seed {seed} {mode:?}");
                assert_eq!(&bytes[..synced.len()], &synced[..], "seed {seed} {mode:?}");
                let reopened = sim.open(&file_path(), false).unwrap();
                assert_eq!(read_to_vec(&*reopened).unwrap(), bytes);
            }
        }
    }

    #[test]
    fn unsynced_write_vanishes_under_keep_nothing_and_stays_under_keep_everything() {
        let sim = SimStorage::new(1);
        let file = setup(&sim, b"synced");
        write_all_at(&*file, b"+unsynced", 6).unwrap();
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"synced+unsynced");
        assert_eq!(sim.durable_bytes(file_path()).unwrap(), b"synced");
        sim.crash_keep_nothing();
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"synced");

        let file = sim.open(&file_path(), true).unwrap();
        write_all_at(&*file, b"+kept", 6).unwrap();
        file.set_len(20).unwrap();
        sim.crash_keep_everything();
        assert_eq!(
            sim.file_bytes(file_path()).unwrap(),
            b"synced+kept\0\0\0\0\0\0\0\0\0"
        );
    }

    #[test]
    fn torn_overwrites_damage_old_bytes_unless_they_keep_them() {
        let old = [7u8; 2048];
        let mut damaged = false;
        for seed in 0..300 {
            for keeps_old in [false, true] {
                let sim = SimStorage::new(seed);
                sim.set_overwrite_keeps_old_bytes(keeps_old);
                let file = setup(&sim, &old);
                write_all_at(&*file, &old, 0).unwrap(); // rewritten unchanged
                sim.crash();
                let bytes = sim.file_bytes(file_path()).unwrap();
                if keeps_old {
                    assert_eq!(bytes, old, "seed {seed}");
                } else {
                    damaged |= bytes != old;
                }
            }
        }
        assert!(
            damaged,
            "unless overwrites keep the old bytes, a torn rewrite can damage them"
        );
    }

    #[test]
    fn unsynced_set_len_may_be_lost() {
        let sim = SimStorage::new(2);
        let file = setup(&sim, b"0123456789");
        file.set_len(4).unwrap();
        assert_eq!(file.len().unwrap(), 4);
        sim.crash_keep_nothing();
        assert_eq!(sim.durable_len(file_path()), Some(10));
    }

    #[test]
    fn random_crashes_keep_subsets_and_tear_writes() {
        // Two writes to different sectors: F1 allows the second to persist without the first.
        let mut second_only = false;
        let mut torn = false;
        let mut grown_without_data = false;
        for seed in 0..500 {
            let sim = SimStorage::new(seed);
            let file = setup(&sim, &[]);
            write_all_at(&*file, &[1; 1024], 0).unwrap();
            write_all_at(&*file, &[2; 1024], 1024).unwrap();
            sim.crash();
            let bytes = sim.file_bytes(file_path()).unwrap();
            assert!(bytes.len() <= 2048, "seed {seed}: nothing past the writes");
            let first = &bytes[..bytes.len().min(1024)];
            let second = bytes.get(1024..).unwrap_or(&[]);
            second_only |= bytes.len() == 2048 && first != [1; 1024] && second == [2; 1024];
            torn |= second.contains(&2) && second != [2; 1024];
            grown_without_data |= !bytes.is_empty() && !bytes.contains(&1) && !bytes.contains(&2);
        }
        assert!(second_only, "F1: some seed kept the second write alone");
        assert!(torn, "F2: some seed tore a write");
        assert!(
            grown_without_data,
            "F3: some seed grew the file without data"
        );
    }

    #[test]
    fn a_tear_whose_last_part_is_empty_applies_past_the_new_end() {
        let tear = Tear {
            kept: vec![0..10, 600..600],
            fill: Fill::Zeros,
            whole_length: false,
        };
        let mut bytes = Vec::new();
        tear.apply(&mut bytes, 0, &[7u8; 700], false);
        assert_eq!(bytes, vec![7u8; 10]);
    }

    #[test]
    fn random_crashes_damage_synced_bytes_before_a_write_only_with_the_sector_spill() {
        let synced: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut damaged_last_byte = 0;
        for spill in [None, Some(SECTOR_BYTES)] {
            for seed in 0..400 {
                let sim = SimStorage::new(seed);
                sim.set_sector_spill(spill);
                let file = setup(&sim, &synced);
                write_all_at(&*file, &[0xAB; 300], 1000).unwrap();
                sim.crash();
                let bytes = sim.file_bytes(file_path()).unwrap();
                if spill.is_none() {
                    assert_eq!(&bytes[..1000], &synced[..], "seed {seed}: nothing spilled");
                    continue;
                }
                // Only the write's first sector, from a cut to the write's start.
                assert_eq!(&bytes[..512], &synced[..512], "seed {seed}");
                if let Some(cut) = (512..1000).find(|&i| bytes[i] != synced[i]) {
                    assert!(
                        bytes[cut..1000].iter().all(|&b| b == 0) || bytes[999] != synced[999],
                        "seed {seed}: damage from a cut to the write"
                    );
                    assert!(sim.trace_text_last(1).contains("writes spilled 1"));
                }
                damaged_last_byte += usize::from(bytes[999] != synced[999]);
            }
        }
        assert!(
            damaged_last_byte > 20,
            "the synced byte just before the write is damaged in {damaged_last_byte} crashes"
        );
    }

    #[test]
    fn a_write_that_persisted_whole_spills_nothing() {
        let synced = vec![3u8; 1000];
        for seed in 0..50 {
            let sim = SimStorage::new(seed);
            sim.set_sector_spill(Some(PAGE_BYTES));
            let file = setup(&sim, &synced);
            write_all_at(&*file, &[4; 100], 1000).unwrap();
            sim.crash_keep_everything();
            let mut expected = synced.clone();
            expected.extend([4; 100]);
            assert_eq!(sim.file_bytes(file_path()).unwrap(), expected);
        }
    }
}
