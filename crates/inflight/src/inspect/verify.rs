//! Verification: every finding of a walk with its place, and the verdict (clean, a torn tail
//! only, corruption). Pure: items in, findings out.

use serde::Serialize;

use crate::read::{DamageKind, Item, SnapshotRole};
use crate::recovery::Corruption;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// An incomplete last record: what a crash during an append leaves (the next read-write
    /// open cuts it), or, on a live log, a record still being written.
    TornTail,
    /// Damage a crash cannot explain, or records missing: replay skips it and reports a gap.
    Corruption,
}

/// One finding, and where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// The file: a segment or a snapshot.
    pub file: String,
    /// The first byte concerned.
    pub start_offset: u64,
    /// One past the last byte concerned.
    pub end_offset: u64,
    /// What is wrong, and what it costs.
    pub detail: String,
}

/// What a verification concludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing found.
    Clean,
    /// An incomplete last record, and nothing else.
    TornTail,
    /// Corruption (and maybe a torn tail besides).
    Corrupt,
}

/// The findings of a walk. Feed it every item with [`Verification::add`].
#[derive(Clone, Debug, Default)]
pub struct Verification {
    /// Every finding, in log order.
    pub findings: Vec<Finding>,
    /// Segment files checked.
    pub segments: u64,
    /// Snapshot files checked (valid or damaged).
    pub snapshots: u64,
    /// Events read from the segments.
    pub events: u64,
    /// The last record (0 if none).
    pub last_seq: u64,
}

impl Verification {
    /// No findings yet.
    pub fn new() -> Verification {
        Verification::default()
    }

    /// Takes one item into account.
    pub fn add(&mut self, item: &Item<'_>) {
        match item {
            Item::Segment(_) => self.segments += 1,
            Item::Event(e) => {
                self.events += 1;
                self.last_seq = e.seq;
            }
            Item::Snapshot(s) => {
                self.snapshots += 1;
                self.last_seq = self.last_seq.max(s.last_seq);
                if s.matches_records == Some(false) {
                    self.findings.push(Finding {
                        severity: Severity::Corruption,
                        file: s.file.to_string(),
                        start_offset: 0,
                        end_offset: s.bytes,
                        detail: format!(
                            "the snapshot's state differs from the fold of records 1..={} that \
                             the log still holds; replay starts from the snapshot",
                            s.last_seq
                        ),
                    });
                }
                if s.role == SnapshotRole::Start {
                    for gap in s.gaps {
                        self.findings.push(Finding {
                            detail: format!(
                                "{} (found before {} was written, which keeps it as a gap; the \
                                 bytes went with the segments the compaction removed)",
                                describe(gap),
                                s.file
                            ),
                            ..corruption(gap)
                        });
                    }
                }
            }
            Item::Damage(d) => {
                if d.region.segment.starts_with("snapshot-") {
                    self.snapshots += 1;
                }
                let detail = match d.kind {
                    DamageKind::Corruption => describe(d.region),
                    DamageKind::UnreadSnapshot => format!(
                        "{}; an older snapshot, which replay does not need, but the fallback \
                         it was kept for is gone",
                        d.region.detail
                    ),
                };
                self.findings.push(Finding {
                    detail,
                    ..corruption(d.region)
                });
            }
            Item::End(end) => {
                if let Some(t) = end.torn_tail {
                    self.findings.push(Finding {
                        severity: Severity::TornTail,
                        file: t.segment.clone(),
                        start_offset: t.offset,
                        end_offset: t.offset + t.bytes,
                        detail: format!(
                            "an incomplete last record of {} bytes after record {}: a record \
                             still being written if a gateway is running, otherwise a torn \
                             tail, which the next read-write open cuts",
                            t.bytes, end.last_seq
                        ),
                    });
                }
            }
        }
    }

    /// Clean, a torn tail only, or corruption.
    pub fn verdict(&self) -> Verdict {
        match self.findings.iter().map(|f| f.severity).max() {
            None => Verdict::Clean,
            Some(Severity::TornTail) => Verdict::TornTail,
            Some(Severity::Corruption) => Verdict::Corrupt,
        }
    }
}

fn corruption(c: &Corruption) -> Finding {
    Finding {
        severity: Severity::Corruption,
        file: c.segment.clone(),
        start_offset: c.start_offset,
        end_offset: c.end_offset,
        detail: String::new(),
    }
}

/// A damaged region, in words: what is wrong and which records it lies between.
fn describe(c: &Corruption) -> String {
    c.what(&|ms| format!("{ms} ms"))
}
