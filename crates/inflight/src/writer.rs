//! The open end of the log: what the open does to the end of the log (cut a torn tail, seal a
//! damaged segment, replace an unfinished one), creating segments, appending synced frames and
//! rolling over. It decides what a segment holds and when; how that is made durable in a
//! directory (or elsewhere) is the store's ([`crate::store`]).

use std::path::PathBuf;
use std::sync::Arc;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::frame::{
    FORMAT_VERSION, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, SegmentHeader, encode_frame,
};
use crate::layout::{SEGMENT_NO_MAX, segment_name};
use crate::read::End;
use crate::store::{Appender, LogStore};

/// Where a writer works: the store, the segment size limit, and the clock and salt source.
#[derive(Clone)]
pub(crate) struct Context {
    pub store: Arc<dyn LogStore>,
    pub environment: Arc<dyn Environment>,
    pub segment_bytes_max: u64,
    /// Whether the next segment is prepared ahead of need (see
    /// [`Options::prepare_segments`](crate::Options::prepare_segments)).
    pub prepare_segments: bool,
}

/// What an open did to the end of the log ([`Writer::resume`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resumed {
    /// A torn tail (or an unfinished segment) was cut, durably.
    pub cut: bool,
    /// Since when the log has been recording: the reading's, or now for a new log.
    pub coverage_since_ms: u64,
}

/// The open end of the last segment.
pub(crate) struct Writer {
    context: Context,
    appender: Box<dyn Appender>,
    /// The segment's path, as errors name it.
    path: PathBuf,
    header: SegmentHeader,
    /// Where the next frame goes: the end of the last durable frame.
    offset: u64,
    next_seq: u64,
    buf: Vec<u8>,
    /// Whether the store was asked to prepare the next segment.
    preparing: bool,
}

impl Drop for Writer {
    /// Waits for a preparation under way: no work of a closed log touches its place.
    fn drop(&mut self) {
        if self.preparing {
            self.context.store.finish_preparing();
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Carries out replay's plan for the end of the log, the one place where an open changes
    /// what is on disk, and returns the writer positioned after the last valid record, with
    /// what it did:
    ///
    /// - a fresh directory gets segment 1;
    /// - the last segment is made durable as replay read it, up to its last valid record (a
    ///   torn tail is left out, so the cut is durable before the first append: a reopen
    ///   never trusts what the page cache holds; see the file store's `replace_durably`);
    /// - a last segment that ends in corruption, or whose header is damaged, is made durable as
    ///   it is and left for inspection; appends go to a new segment;
    /// - a segment whose creation a crash interrupted (by a build that wrote headers in place)
    ///   is removed and created anew.
    ///
    /// `coverage_since_ms` is the reading's; a new log's starts now.
    pub(crate) fn resume(
        context: Context,
        end: End,
        next_seq: u64,
        coverage_since_ms: Option<u64>,
    ) -> Result<(Writer, Resumed)> {
        let created = coverage_since_ms.unwrap_or_else(|| context.environment.now_ms());
        let (writer, cut) = match end {
            End::Fresh { segment_no } => {
                let writer = Writer::create(context, segment_no, next_seq, created)?;
                (writer, false)
            }
            End::NewSegment { segment_no, remove } => {
                let cut = remove.is_some();
                if let Some(name) = remove {
                    context.store.remove_segment(&name)?;
                }
                let writer = Writer::create(context, segment_no, next_seq, created)?;
                (writer, cut)
            }
            End::Append {
                name,
                header,
                end,
                bytes,
            } => {
                let at = (end, next_seq, created);
                let writer = Writer::after_last_record(context, &name, header, &bytes, at)?;
                (writer, true)
            }
            End::Seal {
                name,
                bytes,
                next_segment_no,
            } => {
                // The damage stays where it is, for inspection; new records go to a new segment.
                context.store.seal_segment(&name, &bytes)?;
                let writer = Writer::create(context, next_segment_no, next_seq, created)?;
                (writer, false)
            }
        };
        let created = writer.header.log_created_ms;
        let coverage_since_ms = coverage_since_ms.map_or(created, |c| c.min(created));
        let resumed = Resumed {
            cut,
            coverage_since_ms,
        };
        Ok((writer, resumed))
    }

    /// The last segment made durable up to its last valid record (`at`: its end, the next
    /// sequence number, and the log's creation time for a new segment): appends go on there,
    /// in the copy, reserved again; a segment of an older version is never given records it
    /// could not hold, so the log goes on in a new segment.
    fn after_last_record(
        context: Context,
        name: &str,
        header: SegmentHeader,
        bytes: &[u8],
        (end, next_seq, created): (u64, u64, u64),
    ) -> Result<Writer> {
        let valid = &bytes[..end as usize];
        if header.version < FORMAT_VERSION {
            context.store.seal_segment(name, valid)?;
            return Writer::create(context, header.segment_no + 1, next_seq, created);
        }
        let appender = context.store.create_segment(header.segment_no, valid)?;
        Ok(Writer {
            path: context.store.place().join(name),
            context,
            appender,
            header,
            offset: end,
            next_seq,
            buf: Vec::new(),
            preparing: false,
        })
    }

    /// Creates segment `segment_no` (through [`LogStore::create_segment`]: atomically, its
    /// header durable before any record goes in). So a record is never acknowledged in a
    /// segment that could vanish or whose salt could be lost, and a crash can never leave a
    /// segment under its own name without a complete, synced header: a damaged header is
    /// always corruption, never the trace of a crash.
    fn create(
        context: Context,
        segment_no: u64,
        base_seq: u64,
        log_created_ms: u64,
    ) -> Result<Writer> {
        crate::metrics::segment_created();
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            segment_no,
            base_seq,
            salt: context.environment.salt(),
            log_created_ms,
            segment_created_ms: context.environment.now_ms(),
        };
        let path = context.store.place().join(segment_name(segment_no));
        if segment_no > SEGMENT_NO_MAX {
            // Replay would not read a segment with this number: never write one.
            let exhausted = std::io::Error::other("no segment number is left after this one");
            return Err(Error::io("create", &path, exhausted));
        }
        let appender = context.store.create_segment(segment_no, &header.encode())?;
        tracing::debug!(segment = %path.display(), base_seq, "created segment");
        Ok(Writer {
            context,
            appender,
            path,
            header,
            offset: SEGMENT_HEADER_BYTES as u64,
            next_seq: base_seq,
            buf: Vec::new(),
            preparing: false,
        })
    }

    /// Appends one frame holding `payload` and syncs it, rolling over to a new segment first
    /// when the frame would take this one past its size limit (unless it holds no frame yet).
    /// One frame per synced append: a crash can then tear at most this frame, which is what
    /// tells a torn tail from corruption (group commit puts several events in one frame).
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<()> {
        if self.next_seq == u64::MAX {
            // No frame may carry it (it would have no successor): the log is full.
            let full = std::io::Error::other("no sequence number is left for a record");
            return Err(Error::io("write", &self.path, full));
        }
        let frame_len = (FRAME_HEADER_BYTES + payload.len()) as u64;
        if self.offset + frame_len > self.context.segment_bytes_max
            && self.offset > SEGMENT_HEADER_BYTES as u64
        {
            self.roll_over()?;
        }
        self.buf.clear();
        encode_frame(self.header.salt, self.next_seq, payload, &mut self.buf);
        debug_assert_eq!(self.buf.len() as u64, frame_len);
        self.appender.append(self.offset, &self.buf)?;
        self.offset += frame_len;
        self.next_seq += 1;
        if !self.preparing
            && self.context.prepare_segments
            && self.offset > self.context.segment_bytes_max / 2
            && self.header.segment_no < SEGMENT_NO_MAX
        {
            self.context
                .store
                .prepare_segment(self.header.segment_no + 1);
            self.preparing = true;
        }
        Ok(())
    }

    /// The number of the segment the next append goes to.
    pub(crate) fn segment_no(&self) -> u64 {
        self.header.segment_no
    }

    /// The sequence number the next append gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Closes the current segment and starts the next one: what a compaction does at its cut.
    pub(crate) fn roll_over(&mut self) -> Result<()> {
        let next = Writer::create(
            self.context.clone(),
            self.header.segment_no + 1,
            self.next_seq,
            self.header.log_created_ms,
        )?;
        // The preparation, if any, was taken by the creation: the old writer has none to wait for.
        self.preparing = false;
        *self = next;
        Ok(())
    }
}
