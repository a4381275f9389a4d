//! Every size the log accepts, in one table.
//!
//! Each limit is checked before an event is encoded (a clear
//! [`Error::InvalidInput`](crate::Error::InvalidInput), nothing written) and again after a
//! record is decoded during replay, so a record that breaks one is reported as corruption rather
//! than trusted.

/// Largest routing key, in bytes of UTF-8. Keys must also be non-empty.
pub const KEY_BYTES_MAX: usize = 1024;

/// Longest instance id of a fleet's log, in bytes. An id is ASCII letters, digits and
/// `-_.:@` (a host name, a pod name, `gateway-3@eu-west`).
pub const INSTANCE_BYTES_MAX: usize = 128;

/// Largest session id, in bytes of UTF-8.
pub const SESSION_ID_BYTES_MAX: usize = 256;

/// Largest `meta` payload, in bytes of UTF-8.
pub const META_BYTES_MAX: usize = 4096;

/// Largest reason a run is promoted to resume-pending for (`restart_interrupted`,
/// `shutdown_timeout`, ...), in bytes of UTF-8. Reasons must also be non-empty.
pub const REASON_BYTES_MAX: usize = 128;

/// Largest encoded event (a frame's payload). An event with every field at its limit encodes
/// to well under this (see the `worst_case_event_fits_a_record` test), so the bound only ever
/// rejects corrupt lengths read back from disk.
pub const RECORD_BYTES_MAX: usize = 8 * 1024;

/// Default size at which the writer starts a new segment file. A read-write open copies the
/// last segment once (to make what replay read durable), so this also bounds that copy. The
/// whole of a segment of this size is reserved when it is created (see
/// [`SEGMENT_RESERVED_BYTES_MAX`]).
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 1 << 20;

/// Most bytes of a segment reserved when it is created: the writer fills the space after the
/// header with [`RESERVED_BYTE`](crate::frame::RESERVED_BYTE) up to the segment's size or this,
/// whichever is smaller, so that appends write into blocks the file already has and their
/// fdatasync commits no new file size (1.4 times as many synced appends a second on ext4 here).
/// Appends past it extend the file.
pub const SEGMENT_RESERVED_BYTES_MAX: u64 = 1 << 20;

/// Smallest segment size a caller may configure: a header plus at least one largest record.
pub const SEGMENT_BYTES_MIN: u64 = 12 * 1024;

/// Largest segment size a caller may configure. Replay maps one whole segment at a time, so this
/// also bounds the address space replay uses.
pub const SEGMENT_BYTES_LIMIT: u64 = 1 << 30;

/// Largest snapshot file a compaction writes or a replay reads. A snapshot holds every running
/// run (meta included) and every kept high-water mark, and is read whole into memory.
pub const SNAPSHOT_BYTES_MAX: u64 = 2 << 30;

/// Deepest nesting of arrays and objects a snapshot file may hold, the envelope counted as 1.
/// The format itself needs 4 (envelope, body, a list, its objects); the rest leaves room for
/// members a later version adds, and bounds what a reader walks.
pub const SNAPSHOT_NESTING_MAX: usize = 32;

/// Damaged regions a snapshot keeps from what it covers (the newest), for the time-window
/// fallback.
pub const GAPS_KEPT_MAX: usize = 64;

/// How long taking a directory's lock that this same process holds is tried again before the
/// open fails with [`Error::Locked`](crate::Error::Locked): a child process that another
/// thread forked holds a copy of the lock until it calls exec (microseconds), so a log handle
/// dropped and opened again while the gateway spawns processes would otherwise find its own
/// lock held. A second handle of this process holds it for good, and the open fails after this
/// wait.
pub const LOCK_OWN_PROCESS_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Default retention of an idle key's high-water mark: 7 days.
pub const RETENTION_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;

/// Default size of the segments written since the last snapshot at which a log compacts on its
/// own: 64 MiB, or twice the last snapshot's size if that is larger.
pub const COMPACT_AFTER_BYTES_DEFAULT: u64 = 64 << 20;

/// Default number of consecutive crashes that make an interrupted run a crash loop.
pub const CRASH_LOOP_THRESHOLD_DEFAULT: u32 = 3;

/// Default number of consecutive graceful stops that make an interrupted run a reboot loop (a
/// run whose tool restarts the gateway).
pub const STOP_LOOP_THRESHOLD_DEFAULT: u32 = 3;

/// Most events one frame holds (group commit): concurrent callers' events are written as one
/// frame, with one write and one fdatasync, as many as fit in [`RECORD_BYTES_MAX`] bytes and at
/// most this many. One frame per synced append is what tells a torn tail from corruption: a
/// crash can tear several frames of one write out of order, never one frame into a valid
/// record.
pub const BATCH_EVENTS_MAX: usize = 4096;

/// Most events accepted and not yet written; past it, callers wait for a batch to be written.
pub const QUEUE_EVENTS_MAX: usize = 65_536;

/// Most frame bytes accepted and not yet written; past it, callers wait.
pub const QUEUE_BYTES_MAX: usize = 64 << 20;

/// Most readings a read-only tool makes of a live log before it gives up: a reading that a
/// compaction or a segment rollover overtook (a file it listed was removed, or what looked like
/// damage lies where the files changed under it) starts over from a new listing, with a short
/// pause, and after this many readings in a row the tool returns
/// [`Error::KeptChanging`](crate::Error::KeptChanging).
pub const READ_ATTEMPTS_MAX: u32 = 16;
