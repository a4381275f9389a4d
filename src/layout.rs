//! What a log directory holds: segment files named by their number, the temporary copies that
//! replace them, and the lock file. Every name in a log directory is defined here.

use std::path::{Path, PathBuf};

/// The lock file: the owner's `flock`, holding its pid as text.
pub const LOCK_FILE: &str = "LOCK";

/// File name of segment `n`.
pub(crate) fn segment_name(n: u64) -> String {
    format!("{n:020}.log")
}

/// Suffix of a file being written to replace another (`NAME.tmp`); readers ignore such files and
/// a read-write open removes them.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Where the replacement of `path` is written before it is renamed over `path`.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// The largest segment number. One below `u64::MAX`, so that the number after any segment's
/// never overflows; a name with a larger number is not a segment.
pub(crate) const SEGMENT_NO_MAX: u64 = u64::MAX - 1;

pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
        .filter(|&n| n <= SEGMENT_NO_MAX)
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
}
