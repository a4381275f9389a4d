//! Reading a log: the one implementation of the format's reading rules (`docs/FORMAT.md`,
//! "Reading a log"), which every reader of a log directory goes through: a read-write open, a
//! read-only replay, a compaction folding what it covers, the offline tools (dump, verify,
//! stats, follow) and time travel. They differ only in where they start (the newest snapshot,
//! or the beginning), what they do with the items, and whether they read on.
//!
//! - `core`: the pure core. Fed the bytes of snapshots and segments in log order, it checks
//!   headers, scans frames, folds each valid record, holds damage until what follows settles
//!   it, hands every [`Item`] to a visitor (asking it first before each state it takes in),
//!   and says what a read-write open must do to the end of the log. No I/O.
//! - `snapshots`: which snapshot the log starts from, which are fallbacks, which are damaged,
//!   and when each is met (pure).
//! - `tail`: the rules that tell what one interrupted append can leave at the end of a log (a
//!   torn tail) from corruption (pure).
//! - `files`: the shell: lists the directory, opens only regular files, reads them through the
//!   storage seam, feeds the core; reads on as a gateway appends.
//! - `settle`: reading a live log exactly: a reading that a compaction or a rollover
//!   overtook starts over from a new listing, and only damage seen in files that held still is
//!   reported.
//! - [`item`]: what a reading finds, one item at a time.
//! - [`point`]: a point in a log's history, why the state there may be unknowable, and time
//!   travel: the visitor that stops a reading before the first state past its point.
//! - `progress`: the visitor that reports how far into the segments a reading's items reach.

pub(crate) mod core;
pub(crate) mod files;
pub mod item;
pub mod point;
pub(crate) mod progress;
pub(crate) mod settle;
pub(crate) mod snapshots;
pub(crate) mod tail;

pub use item::{
    DamageKind, DamageSeen, EndSeen, EventSeen, Item, SegmentSeen, SnapshotRole, SnapshotSeen,
};
pub use point::{Point, Unknowable};
pub use tail::UNSYNCED_TAIL_BYTES_MAX;

pub(crate) use core::End;
