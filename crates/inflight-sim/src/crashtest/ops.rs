//! The operations a crash test is made of ([`Op`], with the injectable faults of
//! [`FaultKind`]), and the `ops` fuzz target's input ([`FuzzInput`]): a seed and operations for
//! the [`Harness`] to run.

use crate::sim::Fault;

use super::harness::{Coverage, Failure, Harness};

/// Storage calls a recovery may be stopped after, at most (for [`Op::CrashDuringRecovery`]).
pub const RECOVERY_CRASH_POINT_MAX: u64 = 64;

/// One step of a crash test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum Op {
    /// `mark_running` on key `k{key}` with `generation`.
    Start {
        /// Which of a few keys.
        key: u8,
        /// The run's generation.
        generation: u8,
    },
    /// `mark_completed` on key `k{key}` with `generation`.
    Complete {
        /// Which of a few keys.
        key: u8,
        /// The generation that completed.
        generation: u8,
    },
    /// A clean shutdown (`close`), then a reopen.
    Close,
    /// Drop the handle and open the log again, without a crash.
    Reopen,
    /// A power loss (a crash state chosen by the simulator's seed), then recovery.
    Crash,
    /// A power loss, a recovery stopped by another power loss after `after` storage calls
    /// (modulo [`RECOVERY_CRASH_POINT_MAX`]), then a full recovery.
    CrashDuringRecovery {
        /// Storage calls the interrupted recovery gets.
        after: u8,
    },
    /// Arm a one-shot fault on the next storage call it applies to.
    Fault(FaultKind),
    /// `compact`: a retention record and a new segment (the cut), then the snapshot written
    /// and the segments it covers removed.
    Compact,
    /// A decision or an exact event on key `k{key}`, by `kind` modulo 6: a promotion to
    /// resume-pending, a suspension, a clear, progress or an exact completion of the run
    /// `generation` (with the nonce a start of this `key` gets), or an adoption under
    /// `generation`.
    Decide {
        /// Which of a few keys.
        key: u8,
        /// The generation named (progress, exact completion, adoption).
        generation: u8,
        /// Which event.
        kind: u8,
    },
    /// `submit` two to four events (starts and completions of keys from `key` on), then `wait`
    /// for each: several events in flight at once, written in the order accepted.
    Batch {
        /// The first key.
        key: u8,
        /// The generation of the events.
        generation: u8,
        /// Two more than this, modulo three, events.
        count: u8,
    },
}

/// The injectable errors of the persistence model that the harness drives (F7 to F10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum FaultKind {
    /// F7: a sync fails with EIO (Linux semantics).
    SyncEio,
    /// F8: a write fails with EIO.
    WriteEio,
    /// F8: ENOSPC partway through a write.
    WriteNoSpace,
    /// F8: a short write.
    WriteShort,
    /// F9: a directory sync fails.
    SyncDirEio,
    /// F9: a create fails.
    CreateEio,
    /// F9: a rename fails.
    RenameEio,
    /// F10: a read fails.
    ReadEio,
    /// F10: a read returns short.
    ReadShort,
}

impl FaultKind {
    /// The simulator's fault this kind arms.
    pub(super) fn fault(self) -> Fault {
        match self {
            FaultKind::SyncEio => Fault::SyncEio,
            FaultKind::WriteEio => Fault::WriteEio,
            FaultKind::WriteNoSpace => Fault::WriteNoSpace,
            FaultKind::WriteShort => Fault::WriteShort,
            FaultKind::SyncDirEio => Fault::SyncDirEio,
            FaultKind::CreateEio => Fault::CreateEio,
            FaultKind::RenameEio => Fault::RenameEio,
            FaultKind::ReadEio => Fault::ReadEio,
            FaultKind::ReadShort => Fault::ReadShort,
        }
    }
}

/// Operations a fuzz input may run at most (more are ignored), keeping each execution short.
pub const FUZZ_OPS_MAX: usize = 64;

/// One input of the `ops` fuzz target: a simulator seed and the operations to run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub struct FuzzInput {
    /// The simulator's seed (crash states, fault draws).
    pub seed: u64,
    /// The operations, of which the first [`FUZZ_OPS_MAX`] run.
    pub ops: Vec<Op>,
}

impl FuzzInput {
    /// Runs the input, then a final power loss and recovery, checking the oracle throughout.
    pub fn run(&self) -> Result<Coverage, Box<Failure>> {
        let mut h = Harness::new(self.seed)?;
        h.run(&self.ops[..self.ops.len().min(FUZZ_OPS_MAX)])?;
        h.apply(Op::Crash)?;
        Ok(h.coverage())
    }
}
