//! What a log directory holds: segment files named by their number, snapshots named by the last
//! sequence number they cover, the temporary copies that replace or become them, and the lock
//! file. Every name in a log directory is defined here.

use std::path::{Path, PathBuf};

/// The lock file: the owner's `flock`, holding its pid as text.
pub const LOCK_FILE: &str = "LOCK";

/// File name of segment `n`: its number in 20 decimal digits, then `.log` (docs/FORMAT.md).
pub fn segment_name(n: u64) -> String {
    format!("{n:020}.log")
}

/// Suffix of a file being written to replace another (`NAME.tmp`); readers ignore such files and
/// a read-write open removes them.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Where the replacement of `path` is written before it is renamed over `path`.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// Where segment `path` is prepared ahead of need (`NAME.prepared.tmp`): its reserved space
/// filled and synced, its header written at the rollover, then renamed to `path`. Distinct from
/// [`temp_path`], so that a segment created when it is needed never meets a preparation of it.
pub(crate) fn prepared_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".prepared");
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// The largest segment number. One below `u64::MAX`, so that the number after any segment's
/// never overflows; a name with a larger number is not a segment.
pub const SEGMENT_NO_MAX: u64 = u64::MAX - 1;

/// The number of the segment named `name` ([`segment_name`]'s inverse), or `None` if `name`
/// is not a segment's: twenty digits, `.log`, at most [`SEGMENT_NO_MAX`].
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
        .filter(|&n| n <= SEGMENT_NO_MAX)
}

/// File name of the snapshot that covers the log up to sequence number `last_seq`.
pub fn snapshot_name(last_seq: u64) -> String {
    format!("snapshot-{last_seq:020}.json")
}

/// The last sequence number a snapshot file covers, from its name; `None` for other names.
pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Whether `name` is a segment or a snapshot: what makes a directory a log.
pub(crate) fn is_log_file(name: &str) -> bool {
    parse_segment_name(name).is_some() || parse_snapshot_name(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_others_are_ignored() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("LOCK"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.log"), None);
        assert_eq!(
            parse_segment_name(&segment_name(SEGMENT_NO_MAX)),
            Some(SEGMENT_NO_MAX)
        );
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), None);
        assert_eq!(parse_segment_name("99999999999999999999.log"), None);
    }

    #[test]
    fn snapshot_names_round_trip_and_others_are_ignored() {
        assert_eq!(parse_snapshot_name(&snapshot_name(7)), Some(7));
        assert_eq!(
            parse_snapshot_name(&snapshot_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_snapshot_name("snapshot-7.json"), None);
        assert_eq!(
            parse_snapshot_name("snapshot-00000000000000000007.json.tmp"),
            None
        );
        assert_eq!(
            parse_snapshot_name("snapshot-99999999999999999999.json"),
            None
        );
    }
}
