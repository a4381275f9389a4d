//! The open end of the log: what the open does to the end of the log (cut a torn tail, seal a
//! damaged segment, replace an unfinished one), creating segments, appending synced frames and
//! rolling over. Everything that writes a segment lives here (snapshots are written by
//! `compaction`, the lock file by `storage`, a removed temporary file by `log::open`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::environment::Environment;
use crate::error::{Error, IoContext, Result};
use crate::frame::{
    FORMAT_VERSION, FRAME_HEADER_BYTES, RESERVED_BYTE, SEGMENT_HEADER_BYTES, SegmentHeader,
    encode_frame,
};
use crate::layout::{SEGMENT_NO_MAX, prepared_path, segment_name, temp_path};
use crate::limits::SEGMENT_RESERVED_BYTES_MAX;
use crate::read::End;
use crate::storage::{Storage, StorageFile, write_all_at};

/// Where a writer works: the storage, the log directory, the segment size limit, and the clock
/// and salt source.
#[derive(Clone)]
pub(crate) struct Context {
    pub storage: Arc<dyn Storage>,
    pub dir: PathBuf,
    pub environment: Arc<dyn Environment>,
    pub segment_bytes_max: u64,
    /// Whether the next segment is prepared in a background thread (see
    /// [`Options::prepare_segments`](crate::Options::prepare_segments)).
    pub prepare_segments: bool,
}

/// A segment file made ahead of need, at its [`prepared_path`]: its reserved space filled and
/// synced, its first 64 bytes zeros where the header goes at the rollover.
struct Prepared {
    segment_no: u64,
    path: PathBuf,
    file: Box<dyn StorageFile>,
}

/// Makes segment `segment_no` ahead of need (in a background thread).
fn prepare(context: &Context, segment_no: u64) -> Result<Prepared> {
    let path = prepared_path(&context.dir.join(segment_name(segment_no)));
    let storage = &context.storage;
    // Left by a preparation that was not used (a failed rollover): made again.
    match storage.remove(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io("remove", &path, e));
        }
        _ => {}
    }
    let file = storage.create(&path).at("create", &path)?;
    let mut bytes = vec![0; SEGMENT_HEADER_BYTES];
    reserve(context, &mut bytes);
    write_all_at(&*file, &bytes, 0).at("write", &path)?;
    file.sync_data().at("sync", &path)?;
    Ok(Prepared {
        segment_no,
        path,
        file,
    })
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
    file: Box<dyn StorageFile>,
    path: PathBuf,
    header: SegmentHeader,
    /// Where the next frame goes: the end of the last durable frame.
    offset: u64,
    next_seq: u64,
    buf: Vec<u8>,
    /// The preparation of the next segment under way, if one was started.
    next: Option<std::thread::JoinHandle<Result<Prepared>>>,
}

impl Drop for Writer {
    /// Waits for a preparation under way: no thread of a closed log writes to its directory.
    fn drop(&mut self) {
        if let Some(next) = self.next.take() {
            let _ = next.join();
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
    ///   torn tail is left out, so the cut is durable before the first append; see
    ///   [`replace_durably`]);
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
                let writer = Writer::create(context, segment_no, next_seq, created, None)?;
                (writer, false)
            }
            End::NewSegment { segment_no, remove } => {
                let cut = remove.is_some();
                if let Some(path) = remove {
                    remove_durably(&context, &path)?;
                }
                let writer = Writer::create(context, segment_no, next_seq, created, None)?;
                (writer, cut)
            }
            End::Append {
                path,
                header,
                end,
                bytes,
            } => {
                let at = (end, next_seq, created);
                let writer = Writer::after_last_record(context, path, header, &bytes, at)?;
                (writer, true)
            }
            End::Seal {
                path,
                bytes,
                next_segment_no,
            } => {
                // The damage stays where it is, for inspection; new records go to a new segment.
                replace_durably(&*context.storage, &context.dir, &path, &bytes)?;
                let writer = Writer::create(context, next_segment_no, next_seq, created, None)?;
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
        path: PathBuf,
        header: SegmentHeader,
        bytes: &[u8],
        (end, next_seq, created): (u64, u64, u64),
    ) -> Result<Writer> {
        let valid = &bytes[..end as usize];
        if header.version < FORMAT_VERSION {
            replace_durably(&*context.storage, &context.dir, &path, valid)?;
            return Writer::create(context, header.segment_no + 1, next_seq, created, None);
        }
        let mut valid = valid.to_vec();
        reserve(&context, &mut valid);
        let file = replace_durably(&*context.storage, &context.dir, &path, &valid)?;
        Ok(Writer {
            context,
            file,
            path,
            header,
            offset: end,
            next_seq,
            buf: Vec::new(),
            next: None,
        })
    }

    /// Creates segment `segment_no` atomically: its header is written to `NAME.tmp`, synced, and
    /// renamed into place, and the directory synced, before any record goes in. So a record is
    /// never acknowledged in a file that could vanish or whose salt could be lost, and a crash
    /// can never leave a segment under its own name without a complete, synced header: a
    /// damaged header is always corruption, never the trace of a crash.
    fn create(
        context: Context,
        segment_no: u64,
        base_seq: u64,
        log_created_ms: u64,
        prepared: Option<Prepared>,
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
        let path = context.dir.join(segment_name(segment_no));
        if segment_no > SEGMENT_NO_MAX {
            // Replay would not read a segment with this number: never write one.
            let exhausted = std::io::Error::other("no segment number is left after this one");
            return Err(Error::io("create", &path, exhausted));
        }
        let file = match prepared.filter(|p| p.segment_no == segment_no) {
            // Prepared ahead: only the header is written and synced here, then the rename.
            Some(prepared) => {
                let Prepared {
                    path: tmp, file, ..
                } = prepared;
                write_all_at(&*file, &header.encode(), 0).at("write", &tmp)?;
                file.sync_data().at("sync", &tmp)?;
                let storage = &context.storage;
                storage.rename(&tmp, &path).at("rename", &tmp)?;
                storage
                    .sync_dir(&context.dir)
                    .at("sync directory", &context.dir)?;
                file
            }
            None => {
                let mut bytes = header.encode().to_vec();
                reserve(&context, &mut bytes);
                replace_durably(&*context.storage, &context.dir, &path, &bytes)?
            }
        };
        tracing::debug!(segment = %path.display(), base_seq, "created segment");
        Ok(Writer {
            context,
            file,
            path,
            header,
            offset: SEGMENT_HEADER_BYTES as u64,
            next_seq: base_seq,
            buf: Vec::new(),
            next: None,
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
        write_all_at(&*self.file, &self.buf, self.offset).at("write", &self.path)?;
        self.file.sync_data().at("sync", &self.path)?;
        self.offset += frame_len;
        self.next_seq += 1;
        if self.next.is_none()
            && self.context.prepare_segments
            && self.context.storage.reserves_space()
            && self.offset > self.context.segment_bytes_max / 2
            && self.header.segment_no < SEGMENT_NO_MAX
        {
            self.start_preparing();
        }
        Ok(())
    }

    /// Starts preparing the next segment in a background thread. If the thread cannot be
    /// started, the rollover creates the segment itself.
    fn start_preparing(&mut self) {
        let context = self.context.clone();
        let segment_no = self.header.segment_no + 1;
        let spawned = std::thread::Builder::new()
            .name("inflight-segment".into())
            .spawn(move || prepare(&context, segment_no));
        match spawned {
            Ok(handle) => self.next = Some(handle),
            Err(e) => tracing::warn!(error = %e, "could not start preparing the next segment"),
        }
    }

    /// The next segment, if its preparation was started and succeeded (waiting for it to
    /// finish: it started half a segment ago).
    fn take_prepared(&mut self) -> Option<Prepared> {
        match self.next.take()?.join() {
            Ok(Ok(prepared)) => Some(prepared),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "preparing the next segment failed; creating it now");
                None
            }
            Err(_) => {
                tracing::warn!("preparing the next segment panicked; creating it now");
                None
            }
        }
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
        let prepared = self.take_prepared();
        let next = Writer::create(
            self.context.clone(),
            self.header.segment_no + 1,
            self.next_seq,
            self.header.log_created_ms,
            prepared,
        )?;
        *self = next;
        Ok(())
    }
}

/// Reserves a segment's space: fills it with [`RESERVED_BYTE`] from the end of `bytes` (its
/// header and records) up to its size limit or [`SEGMENT_RESERVED_BYTES_MAX`], whichever is
/// smaller. It is written with the rest into `NAME.tmp` and synced before the rename, so a
/// segment never has space reserved in place, and a crash cannot leave a reservation half done
/// under the segment's name.
fn reserve(context: &Context, bytes: &mut Vec<u8>) {
    if !context.storage.reserves_space() {
        return;
    }
    let reserved = context.segment_bytes_max.min(SEGMENT_RESERVED_BYTES_MAX) as usize;
    if bytes.len() < reserved {
        bytes.resize(reserved, RESERVED_BYTE);
    }
}

/// Removes `path` and syncs the directory: the removal is durable before anything is created.
fn remove_durably(context: &Context, path: &Path) -> Result<()> {
    context.storage.remove(path).at("remove", path)?;
    context
        .storage
        .sync_dir(&context.dir)
        .at("sync directory", &context.dir)
}

/// Replaces the file at `path` with `bytes`, durably: writes them to `NAME.tmp`, syncs it,
/// renames it over `path` and syncs the directory. Returns the new file, open for writing.
///
/// A read-write open does this with the segment it will append to, because replay reads the
/// page cache: after a failed fsync the cache can hold data that will never reach the disk
/// (Linux marks the pages clean, and the next fsync succeeds without writing them), and a
/// segment whose directory sync failed is visible but not durable. A reopen that trusted what
/// it read could report a record as recovered (say a completion the gateway then acts on) that
/// vanishes at the next power loss. Copying, rather than rewriting in place, never puts synced
/// bytes at risk of a torn overwrite.
pub(crate) fn replace_durably(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> Result<Box<dyn StorageFile>> {
    let tmp = temp_path(path);
    let file = storage.create(&tmp).at("create", &tmp)?;
    write_all_at(&*file, bytes, 0).at("write", &tmp)?;
    file.sync_data().at("sync", &tmp)?;
    storage.rename(&tmp, path).at("rename", &tmp)?;
    storage.sync_dir(dir).at("sync directory", dir)?;
    Ok(file)
}
