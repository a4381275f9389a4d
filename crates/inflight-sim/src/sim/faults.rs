//! Injected errors (F7 to F10): the faults a test arms, the rules that decide when they fire,
//! and the OS error numbers they return.

use std::io;
use std::path::Path;

use super::Inner;
#[cfg(doc)]
use super::SimStorage;
use super::trace::OpKind;

/// "I/O error" (Linux's EIO; Windows's ERROR_IO_DEVICE).
const EIO: i32 = if cfg!(windows) { 1117 } else { 5 };
/// "Bad file descriptor" (Linux's EBADF; Windows's ERROR_INVALID_HANDLE).
pub(super) const EBADF: i32 = if cfg!(windows) { 6 } else { 9 };
/// "No space left on device" (Linux's ENOSPC; Windows's ERROR_DISK_FULL): the error kind is
/// `StorageFull` on both.
pub(super) const ENOSPC: i32 = if cfg!(windows) { 112 } else { 28 };

/// An error to inject into one storage call. Each applies to the calls [`Fault::applies_to`]
/// lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// F7: `sync_data` or `sync_all` fails with EIO; the file's pending operations stay in the
    /// cache but will never become durable, and the next sync succeeds without writing them.
    SyncEio,
    /// F8: `write_at` fails with EIO and writes nothing.
    WriteEio,
    /// F8: `write_at` writes a random prefix of the buffer (possibly empty; it lands in the
    /// cache as a pending write) and then fails with ENOSPC.
    WriteNoSpace,
    /// F8: `write_at` writes a random non-empty prefix of the buffer and returns `Ok` with its
    /// length (a buffer of one byte is written whole).
    WriteShort,
    /// F9: `sync_dir` fails with EIO; the directory's pending operations stay pending (a crash
    /// may keep or lose each).
    SyncDirEio,
    /// F9: `rename` fails with EIO and changes nothing.
    RenameEio,
    /// F9: `create` or `create_dir_all` fails with EIO and creates nothing.
    CreateEio,
    /// F9: `remove` fails with EIO and removes nothing.
    RemoveEio,
    /// `open` fails with EIO.
    OpenEio,
    /// `set_len` fails with EIO and changes nothing.
    SetLenEio,
    /// `list` fails with EIO.
    ListEio,
    /// F10: `read_at` fails with EIO.
    ReadEio,
    /// F10: `read_at` returns a random non-empty part of what it could have read (a read of one
    /// byte is whole).
    ReadShort,
}

impl Fault {
    /// The storage calls this fault can be injected into.
    pub fn applies_to(self) -> &'static [OpKind] {
        match self {
            Fault::SyncEio => &[OpKind::SyncData, OpKind::SyncAll],
            Fault::WriteEio | Fault::WriteNoSpace | Fault::WriteShort => &[OpKind::WriteAt],
            Fault::SyncDirEio => &[OpKind::SyncDir],
            Fault::RenameEio => &[OpKind::Rename],
            Fault::CreateEio => &[OpKind::Create, OpKind::CreateDirAll],
            Fault::RemoveEio => &[OpKind::Remove],
            Fault::OpenEio => &[OpKind::Open],
            Fault::SetLenEio => &[OpKind::SetLen],
            Fault::ListEio => &[OpKind::List],
            Fault::ReadEio | Fault::ReadShort => &[OpKind::ReadAt],
        }
    }
}

/// When an armed [`FaultRule`] fires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trigger {
    /// On the n-th matching call from now (1 is the next one), then the rule is disarmed.
    Nth(u64),
    /// On each matching call with this probability (0.0 to 1.0), drawn from the seeded
    /// generator; stays armed until [`SimStorage::clear_faults`].
    Probability(f64),
}

/// A fault armed by a test: which fault, on which paths, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    /// The fault to inject.
    pub fault: Fault,
    /// Only calls whose path contains this substring match (for file calls, the path the file
    /// was opened or created with). `None` matches every path.
    pub path_contains: Option<String>,
    /// When the rule fires.
    pub trigger: Trigger,
}

impl FaultRule {
    /// Fires on the next matching call, once.
    pub fn once(fault: Fault) -> FaultRule {
        FaultRule::nth(fault, 1)
    }

    /// Fires on the n-th matching call from now (1 is the next), once.
    pub fn nth(fault: Fault, n: u64) -> FaultRule {
        FaultRule {
            fault,
            path_contains: None,
            trigger: Trigger::Nth(n.max(1)),
        }
    }

    /// Fires on each matching call with probability `p`, drawn from the seeded generator.
    pub fn with_probability(fault: Fault, p: f64) -> FaultRule {
        FaultRule {
            fault,
            path_contains: None,
            trigger: Trigger::Probability(p),
        }
    }

    /// This rule, restricted to paths containing `substring`.
    pub fn on_path(mut self, substring: impl Into<String>) -> FaultRule {
        self.path_contains = Some(substring.into());
        self
    }
}

#[derive(Clone)]
pub(super) struct ArmedRule {
    pub(super) rule: FaultRule,
    /// Matching calls seen so far (for [`Trigger::Nth`]).
    pub(super) seen: u64,
}

impl Inner {
    /// The fault to inject into this call, if an armed rule fires.
    pub(super) fn fault(&mut self, op: OpKind, path: &Path) -> Option<Fault> {
        let path = path.to_string_lossy();
        let mut fired = None;
        for (i, armed) in self.faults.iter_mut().enumerate() {
            let rule = &armed.rule;
            if !rule.fault.applies_to().contains(&op)
                || rule
                    .path_contains
                    .as_ref()
                    .is_some_and(|s| !path.contains(s.as_str()))
            {
                continue;
            }
            match rule.trigger {
                Trigger::Nth(n) => {
                    armed.seen += 1;
                    if armed.seen >= n {
                        fired = Some((i, true));
                        break;
                    }
                }
                Trigger::Probability(p) => {
                    if self.fault_rng.f64() < p {
                        fired = Some((i, false));
                        break;
                    }
                }
            }
        }
        let (i, disarm) = fired?;
        let fault = self.faults[i].rule.fault;
        if disarm {
            self.faults.remove(i);
        }
        self.fired = Some(fault);
        Some(fault)
    }
}

pub(super) fn eio() -> io::Error {
    io::Error::from_raw_os_error(EIO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::test_util::*;

    #[test]
    fn failed_sync_drops_data_from_the_durable_path() {
        // F7.
        let sim = SimStorage::new(6);
        let file = setup(&sim, b"synced");
        write_all_at(&*file, b"+lost", 6).unwrap();
        sim.fail_next(Fault::SyncEio);
        let err = file.sync_data().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(EIO));
        // Still readable from the cache...
        let mut buf = [0; 11];
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 11);
        assert_eq!(&buf, b"synced+lost");
        // ...and the next sync says it is fine, without writing it.
        file.sync_data().unwrap();
        assert_eq!(sim.durable_bytes(file_path()).unwrap(), b"synced");
        sim.crash_keep_everything();
        assert_eq!(sim.file_bytes(file_path()).unwrap(), b"synced");
        let trace = sim.trace();
        assert!(trace.iter().any(|e| e.fault == Some(Fault::SyncEio)));
    }

    #[test]
    fn write_faults() {
        // F8.
        let sim = SimStorage::new(7);
        let file = setup(&sim, b"");
        sim.fail_next(Fault::WriteEio);
        assert_eq!(
            file.write_at(b"abc", 0).unwrap_err().raw_os_error(),
            Some(EIO)
        );
        assert_eq!(file.len().unwrap(), 0);

        sim.fail_next(Fault::WriteShort);
        let n = file.write_at(&[9; 100], 0).unwrap();
        assert!((1..100).contains(&n));
        assert_eq!(file.len().unwrap(), n as u64);

        sim.inject(FaultRule::once(Fault::WriteNoSpace).on_path("no-such-file"));
        sim.fail_next(Fault::WriteNoSpace);
        let err = file.write_at(&[7; 100], 1000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        let len = file.len().unwrap();
        assert!(len == n as u64 || (1000..1100).contains(&len));
        // The rule for another path is still armed.
        assert!(file.write_at(b"ok", 0).is_ok());
    }

    #[test]
    fn read_and_directory_faults() {
        // F9 and F10.
        let sim = SimStorage::new(8);
        let file = setup(&sim, &[5; 100]);
        sim.fail_next(Fault::ReadEio);
        assert!(file.read_at(&mut [0; 10], 0).is_err());
        sim.fail_next(Fault::ReadShort);
        let n = file.read_at(&mut [0; 100], 0).unwrap();
        assert!((1..100).contains(&n));
        // read_to_vec retries short reads.
        sim.inject(FaultRule::with_probability(Fault::ReadShort, 0.5));
        assert_eq!(read_to_vec(&*file).unwrap(), [5; 100]);
        sim.clear_faults();

        let g = Path::new(DIR).join("g");
        sim.fail_next(Fault::CreateEio);
        assert!(sim.create(&g).is_err());
        assert!(sim.file_bytes(&g).is_none());
        sim.create(&g).unwrap();
        sim.inject(FaultRule::nth(Fault::SyncDirEio, 2));
        sim.sync_dir(Path::new("/")).unwrap();
        assert!(sim.sync_dir(Path::new(DIR)).is_err());
        assert_eq!(sim.durable_list(DIR).unwrap(), ["f"]);
        sim.fail_next(Fault::RenameEio);
        assert!(sim.rename(&g, &file_path()).is_err());
        assert_eq!(sim.file_bytes(file_path()).unwrap(), [5; 100]);
    }
}
