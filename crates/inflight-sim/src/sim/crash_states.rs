//! Every crash state (tier 3): the finite enumeration of what F1 to F5 allow, item by item,
//! behind [`SimStorage::crash_state_count`](super::SimStorage::crash_state_count) and
//! [`SimStorage::crash_into`](super::SimStorage::crash_into). See "Every crash state" in the
//! [module documentation](super) for the alternatives of each item.

use std::ops::Range;

use fastrand::Rng;

use super::crash::{Fill, Outcome, Spill, Tear, prefix, sector_neighbours, sector_ranges};
use super::vfs::{FileOp, Ino};
use super::{Inner, SECTOR_BYTES};

/// Mixed into the seed for the garbage of the crash-state enumeration.
const GARBAGE_SEED_SALT: u64 = 0x2545_f491_4f6c_dd1d;

/// One pending operation, in the enumeration's order.
#[derive(Clone, Copy, Debug)]
pub(super) enum ItemRef {
    /// Operation `op` of the pending list of file `ino`.
    File { ino: Ino, op: usize },
    /// Pending directory operation `op`.
    Dir { op: usize },
}

/// A pending operation and its alternatives in the enumeration.
pub(super) struct PendingItem {
    what: ItemRef,
    alternatives: Vec<Outcome>,
}

/// The number of crash states: the product of the items' numbers of alternatives.
pub(super) fn state_count(items: &[PendingItem]) -> u64 {
    items.iter().fold(1, |count: u64, item| {
        count.saturating_mul(item.alternatives.len() as u64)
    })
}

/// The outcomes of crash state `index`: a mixed-radix number, the first item's choice the least
/// significant digit.
pub(super) fn choose(items: Vec<PendingItem>, mut index: u64) -> Vec<Outcome> {
    items
        .into_iter()
        .map(|item| {
            let mut alternatives = item.alternatives;
            let n = alternatives.len() as u64;
            let choice = index % n;
            index /= n;
            alternatives.swap_remove(choice as usize)
        })
        .collect()
}

/// How the disk treats the bytes around a write, for [`write_alternatives`].
#[derive(Clone, Copy)]
struct DiskModel {
    /// [`SimStorage::set_overwrite_keeps_old_bytes`](super::SimStorage::set_overwrite_keeps_old_bytes).
    overwrite_keeps_old: bool,
    /// [`SimStorage::set_sector_spill`](super::SimStorage::set_sector_spill).
    sector_spill: Option<u64>,
}

/// The enumeration's alternatives for a pending write of `len` bytes at `start`, when the file
/// is at least `least` and at most `greatest` bytes long just before it. See "Every crash
/// state" in the module documentation.
fn write_alternatives(
    start: u64,
    len: usize,
    least: u64,
    greatest: u64,
    disk: DiskModel,
    garbage: u64,
) -> Vec<Outcome> {
    let end = start + len as u64;
    let may_extend = end > least;
    let mut alternatives = vec![Outcome::Lost];
    if may_extend {
        alternatives.push(Outcome::Grown(Fill::Zeros));
        alternatives.push(Outcome::Grown(Fill::Garbage(garbage)));
    }
    alternatives.push(Outcome::Kept);
    let fills = if disk.overwrite_keeps_old && end <= least {
        vec![Fill::Old]
    } else if start >= greatest {
        // The old bytes are past the end of the file: they read as zeros.
        vec![Fill::Zeros, Fill::Garbage(garbage)]
    } else {
        vec![Fill::Old, Fill::Zeros, Fill::Garbage(garbage)]
    };
    for kept in torn_patterns(start, len) {
        let kept_end = kept.last().map_or(0, |r| r.end);
        let is_prefix = kept.len() == 1 && kept[0].start == 0;
        alternatives.extend(fills.iter().map(|&fill| {
            Outcome::Torn(Tear {
                kept: kept.clone(),
                fill,
                whole_length: true,
            })
        }));
        if may_extend && kept_end < len {
            // Past the end of the file, a prefix leaves nothing unpersisted inside it.
            let short_fills = if is_prefix && start >= greatest {
                &fills[..1]
            } else {
                &fills[..]
            };
            alternatives.extend(short_fills.iter().map(|&fill| {
                Outcome::Torn(Tear {
                    kept: kept.clone(),
                    fill,
                    whole_length: false,
                })
            }));
        }
    }
    if let Some(sector) = disk.sector_spill {
        // Only with the sector spill on: every outcome of an interrupted write again, with
        // damage around it: the bytes before it in its first sector, then those after it in
        // its last sector (where the file may hold any). Damage runs from a cut to the end of
        // the sector, as a sector write cut short leaves it: each of these runs whole, then
        // only its last byte, reading as zeros, then garbage.
        let spill_garbage = Rng::with_seed(garbage).u64(..);
        let mut damaged: Vec<Range<u64>> = Vec::new();
        for range in sector_neighbours(start, len, sector) {
            if range.is_empty() || range.start >= greatest {
                continue;
            }
            if range.end - range.start > 1 {
                damaged.push(range.clone());
            }
            damaged.push(range.end - 1..range.end);
        }
        let interrupted: Vec<Outcome> = alternatives
            .iter()
            .filter(|o| **o != Outcome::Kept)
            .cloned()
            .collect();
        for base in interrupted {
            for range in &damaged {
                for fill in [Fill::Zeros, Fill::Garbage(spill_garbage)] {
                    let spill = Spill {
                        range: range.clone(),
                        fill,
                    };
                    alternatives.push(Outcome::Spilled(Box::new(base.clone()), spill));
                }
            }
        }
    }
    alternatives
}

/// Non-empty subsets of a write's sectors up to this many sectors; past it, only prefixes.
const SUBSET_SECTORS_MAX: usize = 4;

/// F2: the parts of a write of `len` bytes at `start` that the enumeration lets a torn write
/// keep, as ranges of the write's bytes: for at most [`SUBSET_SECTORS_MAX`] sectors every
/// non-empty proper subset of its [`SECTOR_BYTES`] sectors, else every prefix cut at a sector
/// boundary; then the prefix cut in the middle of the first sector, if it holds 2 bytes or more.
fn torn_patterns(start: u64, len: usize) -> Vec<Vec<Range<usize>>> {
    let sectors = sector_ranges(start, len, SECTOR_BYTES);
    let Some(first) = sectors.first() else {
        return Vec::new();
    };
    let n = sectors.len();
    let mut patterns = Vec::new();
    if n <= SUBSET_SECTORS_MAX {
        for mask in 1..(1u32 << n) - 1 {
            let mut kept: Vec<Range<usize>> = Vec::new();
            for (i, sector) in sectors.iter().enumerate() {
                if mask & (1 << i) == 0 {
                    continue;
                }
                match kept.last_mut() {
                    Some(last) if last.end == sector.start => last.end = sector.end,
                    _ => kept.push(sector.clone()),
                }
            }
            patterns.push(kept);
        }
    } else {
        patterns.extend(sectors[1..].iter().map(|sector| prefix(sector.start)));
    }
    if first.len() >= 2 {
        patterns.push(prefix(first.len() / 2));
    }
    patterns
}

impl Inner {
    /// The pending operations a crash decides about, in the enumeration's order (each file's
    /// operations, files by inode and operations oldest first; then the directory operations,
    /// oldest first), each with its alternatives. See "Every crash state" in the module
    /// documentation.
    pub(super) fn pending_items(&self) -> Vec<PendingItem> {
        let disk = DiskModel {
            overwrite_keeps_old: self.overwrite_keeps_old,
            sector_spill: self.sector_spill,
        };
        let mut items = Vec::new();
        for (ino, file) in self.files() {
            // The shortest and longest the file can be before each operation, whatever the
            // earlier ones became.
            let mut least = file.durable.len() as u64;
            let mut greatest = least;
            for (op_index, op) in file.pending.iter().enumerate() {
                let alternatives = match op {
                    FileOp::Write { offset, data } => {
                        let alternatives = write_alternatives(
                            *offset,
                            data.len(),
                            least,
                            greatest,
                            disk,
                            self.garbage_seed(items.len()),
                        );
                        greatest = greatest.max(offset + data.len() as u64);
                        alternatives
                    }
                    FileOp::SetLen(len) => {
                        least = least.min(*len);
                        greatest = greatest.max(*len);
                        vec![Outcome::Lost, Outcome::Kept]
                    }
                };
                items.push(PendingItem {
                    what: ItemRef::File { ino, op: op_index },
                    alternatives,
                });
            }
        }
        items.extend((0..self.dir_ops.len()).map(|op| PendingItem {
            what: ItemRef::Dir { op },
            alternatives: vec![Outcome::Lost, Outcome::Kept],
        }));
        items
    }

    /// The seed of the garbage the enumeration writes for pending item number `item`: from the
    /// seed, the number of crashes so far and the item's place only, so that it does not depend
    /// on what the other items became.
    fn garbage_seed(&self, item: usize) -> u64 {
        let mix = self.seed
            ^ GARBAGE_SEED_SALT
            ^ self.epoch.wrapping_mul(0xbf58_476d_1ce4_e5b9)
            ^ (item as u64).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng::with_seed(mix).u64(..)
    }

    /// The text of [`SimStorage::pending_summary`](super::SimStorage::pending_summary).
    pub(super) fn summary(&self, items: &[PendingItem]) -> String {
        let paths = self.paths();
        let path = |ino: Ino| match paths.get(&ino) {
            Some(path) => super::shown(path),
            None => format!("(inode {ino})"),
        };
        let entry = |dir: Ino, name: &str| {
            let dir = path(dir);
            format!("{}/{name}", dir.trim_end_matches('/'))
        };
        let mut text = format!(
            "{} pending items, {} crash states\n",
            items.len(),
            state_count(items)
        );
        for (i, item) in items.iter().enumerate() {
            let what = match item.what {
                ItemRef::File { ino, op } => match self.file(ino).map(|f| &f.pending[op]) {
                    Ok(FileOp::Write { offset, data }) => {
                        format!("{}: write off={offset} len={}", path(ino), data.len())
                    }
                    Ok(FileOp::SetLen(len)) => format!("{}: set_len {len}", path(ino)),
                    Err(_) => format!("(inode {ino}): operation {op}"),
                },
                ItemRef::Dir { op } => match self.dir_ops[op].sets.as_slice() {
                    [to, from] if to.target.is_some() && from.target.is_none() => format!(
                        "rename {} -> {}",
                        entry(from.dir, &from.name),
                        entry(to.dir, &to.name)
                    ),
                    sets => {
                        let parts: Vec<String> = sets
                            .iter()
                            .map(|set| match set.target {
                                Some(target) if self.dir(target).is_ok() => {
                                    format!("mkdir {}", entry(set.dir, &set.name))
                                }
                                Some(_) => format!("create {}", entry(set.dir, &set.name)),
                                None => format!("remove {}", entry(set.dir, &set.name)),
                            })
                            .collect();
                        parts.join(", ")
                    }
                },
            };
            text.push_str(&format!(
                "  {i}: {what}: {} alternatives\n",
                item.alternatives.len()
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::test_util::*;

    #[test]
    fn nothing_pending_has_one_crash_state_keeping_everything() {
        let sim = SimStorage::new(15);
        let file = setup(&sim, b"all synced");
        assert_eq!(sim.crash_state_count(), 1);
        assert!(
            sim.pending_summary()
                .starts_with("0 pending items, 1 crash states")
        );
        let before = durable_state(&sim);
        sim.crash_into(0);
        assert!(sim.trace_text_last(1).contains("state 0 of 1"));
        assert_eq!(durable_state(&sim), before);
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"all synced");
        assert!(file.len().is_err(), "handles die at the crash");
    }

    #[test]
    #[should_panic(expected = "no crash state 1: the enumeration has 1")]
    fn crash_into_past_the_count_panics() {
        let sim = SimStorage::new(16);
        setup(&sim, b"x");
        sim.crash_into(1);
    }

    #[test]
    fn a_three_sector_write_has_23_crash_states() {
        let synced: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
        let sim = SimStorage::new(17);
        let file = setup(&sim, &synced);
        let written = [0xAB; 1536];
        write_all_at(&*file, &written, 1024).unwrap(); // sectors 2, 3 and 4
        // Lost 1, grown 2 (zeros, garbage), whole 1, torn 19: 7 patterns ({0}, {1}, {0,1},
        // {2}, {0,2}, {1,2}, half of sector 0) times 2 fills at full length, and the 4
        // patterns ending before the write's end at short length: the prefixes {0}, {0,1} and
        // the half sector once each, {1} with 2 fills.
        assert_eq!(sim.crash_state_count(), 23, "{}", sim.pending_summary());
        assert!(
            sim.pending_summary()
                .contains("/data/f: write off=1024 len=1536: 23 alternatives"),
            "{}",
            sim.pending_summary()
        );

        let states = all_states(&sim);
        let mut lost = false;
        let mut whole = false;
        let mut torn = false;
        for (index, state) in states.iter().enumerate() {
            let [(path, bytes)] = state.as_slice() else {
                panic!("state {index}: {state:?}");
            };
            assert_eq!(*path, file_path());
            assert!(bytes.len() >= 1024 && bytes.len() <= 2560, "state {index}");
            assert_eq!(
                &bytes[..1024],
                &synced[..],
                "state {index}: synced bytes survive"
            );
            let tail = &bytes[1024..];
            lost |= tail.is_empty();
            whole |= tail == written;
            torn |= tail.contains(&0xAB) && tail != written;
        }
        assert!(
            lost && whole && torn,
            "lost {lost} whole {whole} torn {torn}"
        );
        let distinct: BTreeSet<_> = states.iter().collect();
        assert_eq!(distinct.len(), 23, "every alternative is a different state");
        assert_eq!(
            states[0],
            [(file_path(), synced.clone())],
            "state 0 loses everything"
        );
    }

    #[test]
    fn an_unsynced_create_has_two_crash_states() {
        let sim = SimStorage::new(18);
        setup(&sim, b"x");
        sim.create(&Path::new(DIR).join("g")).unwrap();
        assert_eq!(sim.crash_state_count(), 2);
        assert!(
            sim.pending_summary()
                .contains("create /data/g: 2 alternatives")
        );
        let names = |index| {
            let fork = sim.fork();
            fork.crash_into(index);
            fork.list(Path::new(DIR)).map(|mut names| {
                names.sort();
                names
            })
        };
        assert_eq!(names(0).unwrap(), ["f"]);
        assert_eq!(names(1).unwrap(), ["f", "g"]);
    }

    #[test]
    fn enumerated_renames_keep_their_source_create() {
        let sim = SimStorage::new(19);
        setup(&sim, b"x");
        let (a, b) = (Path::new(DIR).join("a"), Path::new(DIR).join("b"));
        let file = sim.create(&a).unwrap();
        write_all_at(&*file, b"new", 0).unwrap();
        file.sync_data().unwrap();
        sim.rename(&a, &b).unwrap();
        assert_eq!(sim.crash_state_count(), 4);
        assert!(sim.pending_summary().contains("rename /data/a -> /data/b"));
        let names: BTreeSet<Vec<String>> = (0..4)
            .map(|index| {
                let fork = sim.fork();
                fork.crash_into(index);
                let mut names = fork.durable_list(DIR).unwrap();
                names.sort();
                names
            })
            .collect();
        let expected: BTreeSet<Vec<String>> = [vec!["f"], vec!["a", "f"], vec!["b", "f"]]
            .into_iter()
            .map(|v| v.into_iter().map(String::from).collect())
            .collect();
        assert_eq!(names, expected, "never b without the create of a");
    }

    #[test]
    fn enumeration_is_deterministic() {
        let workload = |seed| {
            let sim = SimStorage::new(seed);
            let file = setup(&sim, &[9; 600]);
            write_all_at(&*file, &[1; 1200], 300).unwrap();
            file.set_len(1000).unwrap();
            write_all_at(&*file, &[2; 100], 1400).unwrap();
            sim.create(&Path::new(DIR).join("g")).unwrap();
            sim
        };
        let sim = workload(20);
        let count = sim.crash_state_count();
        assert!(count > 100, "{}", sim.pending_summary());
        let again = workload(20);
        assert_eq!(again.crash_state_count(), count);
        let mut garbage = false;
        for index in (0..count).step_by(7) {
            let one = sim.fork();
            let two = sim.fork();
            let three = again.fork();
            one.crash_into(index);
            two.crash_into(index);
            three.crash_into(index);
            let state = durable_state(&one);
            assert_eq!(durable_state(&two), state, "index {index}");
            assert_eq!(durable_state(&three), state, "index {index}");
            garbage |= state
                .iter()
                .any(|(_, bytes)| bytes.iter().any(|b| ![0, 1, 2, 9].contains(b)));
        }
        assert!(garbage, "some states hold garbage");
    }

    /// 1000 synced bytes, then an unsynced append of 636 bytes at 1000: sectors
    /// `1000..1024`, `1024..1536` and `1536..1636` of 512 bytes.
    fn pending_append(seed: u64) -> (SimStorage, Vec<u8>, Vec<u8>) {
        let synced: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let sim = SimStorage::new(seed);
        let file = setup(&sim, &synced);
        let appended = vec![0xAB; 636];
        write_all_at(&*file, &appended, 1000).unwrap();
        (sim, synced, appended)
    }

    #[test]
    fn the_sector_spill_adds_states_that_damage_synced_bytes_before_an_append() {
        let (sim, synced, appended) = pending_append(21);
        assert_eq!(sim.crash_state_count(), 23, "{}", sim.pending_summary());
        let off = all_states(&sim);
        sim.set_sector_spill(Some(SECTOR_BYTES));
        // The 22 alternatives that are not "persisted whole", each again with the 488 bytes
        // before the append in its first sector damaged, then with only the last of them
        // damaged, each zeroed, then garbage.
        assert_eq!(
            sim.crash_state_count(),
            23 + 22 * 4,
            "{}",
            sim.pending_summary()
        );
        let on = all_states(&sim);
        assert_eq!(
            on[..23],
            off[..],
            "the first states are those without the spill"
        );

        for state in &off {
            let bytes = &state[0].1;
            assert_eq!(
                &bytes[..1000],
                &synced[..],
                "without the spill, synced bytes survive"
            );
        }
        let (mut whole, mut last_byte_only) = (0, 0);
        for (index, state) in on.iter().enumerate().skip(23) {
            let bytes = &state[0].1;
            assert_eq!(
                &bytes[..512],
                &synced[..512],
                "state {index}: another sector"
            );
            assert_ne!(
                bytes[999], synced[999],
                "state {index}: the byte before the write"
            );
            let head = &bytes[512..1000];
            whole += usize::from(head[..487] != synced[512..999]);
            last_byte_only += usize::from(head[..487] == synced[512..999]);
            assert_ne!(
                &bytes[1000..],
                &appended[..],
                "state {index}: the append never whole"
            );
        }
        assert_eq!((whole, last_byte_only), (44, 44));
    }

    #[test]
    fn the_sector_spill_of_a_4096_byte_sector_reaches_the_start_of_the_file() {
        let (sim, synced, _) = pending_append(22);
        sim.set_sector_spill(Some(PAGE_BYTES));
        // The tears stay at 512-byte sectors (23 alternatives); the 22 that are not "persisted
        // whole" come again with bytes 0..1000, which share the append's 4 KiB sector,
        // damaged, and with byte 999 alone damaged.
        assert_eq!(
            sim.crash_state_count(),
            23 + 22 * 4,
            "{}",
            sim.pending_summary()
        );
        let states = all_states(&sim);
        let damaged = states
            .iter()
            .filter(|s| s[0].1[..1000] != synced[..])
            .count();
        assert_eq!(damaged, 88);
        let second_byte_damaged = states.iter().filter(|s| s[0].1[1] != synced[1]).count();
        assert_eq!(second_byte_damaged, 44, "byte 1 shares the append's sector");
        assert!(states[..23].iter().all(|s| s[0].1[..1000] == synced[..]));
    }

    #[test]
    fn the_sector_spill_damages_bytes_after_an_overwrite_too() {
        let synced = vec![5u8; 2048];
        let sim = SimStorage::new(23);
        let file = setup(&sim, &synced);
        write_all_at(&*file, &[6; 100], 600).unwrap(); // inside sector 512..1024
        let plain = sim.crash_state_count();
        sim.set_sector_spill(Some(SECTOR_BYTES));
        // Every alternative but "persisted whole" again, with the 88 bytes before the write,
        // byte 599 alone, the 324 bytes after it and byte 1023 alone damaged, each zeroed or
        // garbage.
        assert_eq!(sim.crash_state_count(), plain + (plain - 1) * 8);
        let states = all_states(&sim);
        let mut before = false;
        let mut after = false;
        for state in &states {
            let bytes = &state[0].1;
            assert_eq!(bytes.len(), 2048);
            assert!(bytes[..512].iter().chain(&bytes[1024..]).all(|&b| b == 5));
            before |= bytes[512..600].iter().any(|&b| b != 5);
            after |= bytes[700..1024].iter().any(|&b| b != 5);
        }
        assert!(before && after, "before {before} after {after}");
    }

    #[test]
    fn a_write_aligned_to_sectors_spills_nothing() {
        let sim = SimStorage::new(24);
        let file = setup(&sim, &[1; 1024]);
        write_all_at(&*file, &[2; 512], 1024).unwrap();
        let plain = sim.crash_state_count();
        sim.set_sector_spill(Some(SECTOR_BYTES));
        assert_eq!(sim.crash_state_count(), plain);
        sim.set_sector_spill(None);
        assert_eq!(sim.crash_state_count(), plain);
    }
}
