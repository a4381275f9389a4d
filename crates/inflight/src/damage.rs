//! What reading a log reports of damage: a region of corruption (a gap in the log), and a torn
//! tail. Plain data, below both the reader that finds them and the snapshot that keeps gaps.

use serde::{Deserialize, Serialize};

/// An incomplete or invalid end of the last segment with nothing valid after it: the normal
/// trace of a crash during an append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TornTail {
    /// The segment file's name.
    pub segment: String,
    /// Where the torn bytes begin (the end of the last valid record).
    pub offset: u64,
    /// How many bytes follow the last valid record.
    pub bytes: u64,
    /// True once the bytes were cut off and the cut synced (a read-write open); false when the
    /// reading was read-only and left the file as it was.
    pub cut: bool,
}

/// A damaged region with valid records after it, or one reaching the end of the log that a
/// crash cannot explain, or a file that cannot be read as what its name says. Under the
/// default policy the region is skipped and marked as a gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corruption {
    /// The name of the file holding the damage: a segment, or a damaged snapshot (whose whole
    /// file is the region, and whose gap runs from the state the reading started from to the
    /// next record read).
    pub segment: String,
    /// First damaged byte.
    pub start_offset: u64,
    /// One past the last damaged byte.
    pub end_offset: u64,
    /// Sequence number of the last valid record before the gap (0 if none).
    pub after_seq: u64,
    /// Sequence number of the first valid record after the gap, if any.
    pub before_seq: Option<u64>,
    /// Timestamp of the last valid record before the gap: the gap's time range starts here.
    pub after_ms: Option<u64>,
    /// Timestamp of the first valid record after the gap: the gap's time range ends here.
    pub before_ms: Option<u64>,
    /// What is wrong.
    pub detail: String,
}

impl Corruption {
    /// Where it lies: `FILE bytes START..END`.
    pub fn place(&self) -> String {
        format!(
            "{} bytes {}..{}",
            self.segment, self.start_offset, self.end_offset
        )
    }

    /// What it is, with times written by `time`: `DETAIL; a gap between record A (T) and
    /// record B (T)`, with "the start of the log" and "the end of the log" at either end. The
    /// one wording of a damaged region: [`Display`](std::fmt::Display) (times in ms), the CLI
    /// (times in RFC 3339) and the offline tools use it.
    pub fn what(&self, time: &dyn Fn(u64) -> String) -> String {
        let at = |ms: Option<u64>| ms.map_or(String::new(), |ms| format!(" ({})", time(ms)));
        let after = match self.after_seq {
            0 => "the start of the log".to_string(),
            seq => format!("record {seq}{}", at(self.after_ms)),
        };
        let before = match self.before_seq {
            Some(seq) => format!("record {seq}{}", at(self.before_ms)),
            None => "the end of the log".to_string(),
        };
        format!("{}; a gap between {after} and {before}", self.detail)
    }
}

impl std::fmt::Display for Corruption {
    /// `FILE bytes START..END: DETAIL; a gap between record A (T ms) and record B (T ms)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.place(),
            self.what(&|ms| format!("{ms} ms"))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corruption_says_where_what_and_between_which_records() {
        let mut c = Corruption {
            segment: "00000000000000000002.log".into(),
            start_offset: 64,
            end_offset: 90,
            after_seq: 0,
            before_seq: Some(5),
            after_ms: None,
            before_ms: Some(1_500),
            detail: "no valid record here".into(),
        };
        assert_eq!(
            c.to_string(),
            "00000000000000000002.log bytes 64..90: no valid record here; a gap between the start of the log and record 5 (1500 ms)"
        );
        c.after_seq = 4;
        c.after_ms = Some(1_400);
        c.before_seq = None;
        assert!(
            c.to_string()
                .ends_with("between record 4 (1400 ms) and the end of the log")
        );
    }
}
