//! Media faults in synced data (F11, opt-in): a bit flip, or a sector of zeros or garbage.

use std::io;
use std::path::Path;

use super::trace::{OpKind, TraceEntry};
use super::vfs::{Ino, Node, not_found};
use super::{Inner, SECTOR_BYTES};

/// A media fault in synced data (F11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaFault {
    /// One bit of the byte at the offset flips.
    BitFlip,
    /// The [`SECTOR_BYTES`] sector holding the offset reads as zeros.
    ZeroSector,
    /// The [`SECTOR_BYTES`] sector holding the offset reads as random bytes.
    GarbageSector,
}

impl Inner {
    /// F11: damages the durable bytes of `ino` at `offset`, and the cache where it holds the
    /// same (clean) bytes.
    pub(super) fn corrupt(
        &mut self,
        ino: Ino,
        path: &Path,
        offset: u64,
        kind: MediaFault,
    ) -> io::Result<()> {
        let file = match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => f,
            _ => return Err(not_found()),
        };
        let len = file.durable.len() as u64;
        if offset >= len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("offset {offset} is past the {len} durable bytes"),
            ));
        }
        let range = match kind {
            MediaFault::BitFlip => offset..offset + 1,
            MediaFault::ZeroSector | MediaFault::GarbageSector => {
                let start = offset / SECTOR_BYTES * SECTOR_BYTES;
                start..(start + SECTOR_BYTES).min(len)
            }
        };
        let range = range.start as usize..range.end as usize;
        let before = file.durable[range.clone()].to_vec();
        let damaged = &mut file.durable[range.clone()];
        match kind {
            MediaFault::BitFlip => damaged[0] ^= 1 << self.crash_rng.u8(0..8),
            MediaFault::ZeroSector => damaged.fill(0),
            MediaFault::GarbageSector => self.crash_rng.fill(damaged),
        }
        for (i, old) in range.clone().zip(before) {
            if file.cache.get(i) == Some(&old) {
                file.cache[i] = file.durable[i];
            }
        }
        self.trace.push(TraceEntry {
            index: self.op_count,
            op: OpKind::MediaFault,
            path: path.to_path_buf(),
            offset: Some(offset),
            len: Some(range.len() as u64),
            fault: None,
            detail: format!("{kind:?}"),
            result: Ok(0),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::test_util::*;

    #[test]
    fn media_faults_damage_durable_bytes() {
        let sim = SimStorage::new(11);
        setup(&sim, &[0x55; 1500]);
        sim.corrupt_durable(file_path(), 3, MediaFault::BitFlip)
            .unwrap();
        let bytes = sim.durable_bytes(file_path()).unwrap();
        let flipped: u32 = bytes.iter().map(|b| (b ^ 0x55).count_ones()).sum();
        assert_eq!(flipped, 1);
        assert_ne!(bytes[3], 0x55);
        assert_eq!(sim.file_bytes(file_path()).unwrap(), bytes);

        sim.corrupt_durable(file_path(), 1100, MediaFault::ZeroSector)
            .unwrap();
        let bytes = sim.durable_bytes(file_path()).unwrap();
        assert!(bytes[1024..1500].iter().all(|&b| b == 0));
        assert!(bytes[512..1024].iter().all(|&b| b == 0x55));
        assert!(
            sim.corrupt_durable(file_path(), 1500, MediaFault::BitFlip)
                .is_err()
        );
        let (path, offset, _) = sim.random_media_fault().unwrap();
        assert!(offset < 1500 || path.ends_with(LOCK_FILE));
    }
}
