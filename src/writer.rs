//! The open end of the log: creating segments, appending synced frames, rolling over, and the
//! durable copy a read-write open makes of the segment it continues.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::frame::{FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, SegmentHeader, encode_frame};
use crate::layout::{SEGMENT_NO_MAX, segment_name, temp_path};
use crate::log::{Environment, Options};
use crate::storage::{Storage, StorageFile, write_all_at};

/// The open end of the last segment.
#[derive(Debug)]
pub(crate) struct Writer {
    file: Box<dyn StorageFile>,
    path: PathBuf,
    pub(crate) header: SegmentHeader,
    /// Where the next frame goes: the end of the last durable frame.
    offset: u64,
    next_seq: u64,
    buf: Vec<u8>,
}

impl Writer {
    /// Creates segment `segment_no` atomically: its header is written to `NAME.tmp`, synced, and
    /// renamed into place, and the directory synced, before any record goes in. So a record is
    /// never acknowledged in a file that could vanish or whose salt could be lost, and a crash
    /// can never leave a segment under its own name without a complete, synced header: a
    /// damaged header is always corruption, never the trace of a crash.
    pub(crate) fn create(
        storage: &dyn Storage,
        dir: &Path,
        segment_no: u64,
        base_seq: u64,
        log_created_ms: u64,
        env: &dyn Environment,
    ) -> Result<Writer> {
        let header = SegmentHeader {
            segment_no,
            base_seq,
            salt: env.salt(),
            log_created_ms,
            segment_created_ms: env.now_ms(),
        };
        let path = dir.join(segment_name(segment_no));
        if segment_no > SEGMENT_NO_MAX {
            // Replay would not read a segment with this number: never write one.
            let exhausted = std::io::Error::other("no segment number is left after this one");
            return Err(Error::io("create", &path, exhausted));
        }
        let file = replace_durably(storage, dir, &path, &header.encode())?;
        tracing::debug!(segment = %path.display(), base_seq, "created segment");
        Ok(Writer {
            file,
            path,
            header,
            offset: SEGMENT_HEADER_BYTES as u64,
            next_seq: base_seq,
            buf: Vec::new(),
        })
    }

    /// Makes the last segment durable as replay read it (see [`replace_durably`]), up to its
    /// last valid record, then opens it to append after that record. Anything past it (a torn
    /// tail) is left out of the copy: it is cut, and the cut is durable before the first append.
    pub(crate) fn reopen(
        storage: &dyn Storage,
        dir: &Path,
        path: PathBuf,
        header: SegmentHeader,
        valid: &[u8],
        next_seq: u64,
    ) -> Result<Writer> {
        let file = replace_durably(storage, dir, &path, valid)?;
        Ok(Writer {
            file,
            path,
            header,
            offset: valid.len() as u64,
            next_seq,
            buf: Vec::new(),
        })
    }

    pub(crate) fn append(
        &mut self,
        storage: &dyn Storage,
        dir: &Path,
        payload: &[u8],
        options: &Options,
    ) -> Result<()> {
        let frame_len = (FRAME_HEADER_BYTES + payload.len()) as u64;
        if self.offset + frame_len > options.segment_bytes_max
            && self.offset > SEGMENT_HEADER_BYTES as u64
        {
            let next = Writer::create(
                storage,
                dir,
                self.header.segment_no + 1,
                self.next_seq,
                self.header.log_created_ms,
                &*options.environment,
            )?;
            *self = next;
        }
        self.buf.clear();
        encode_frame(self.header.salt, self.next_seq, payload, &mut self.buf);
        debug_assert_eq!(self.buf.len() as u64, frame_len);
        write_all_at(&*self.file, &self.buf, self.offset)
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| Error::io("sync", &self.path, e))?;
        self.offset += frame_len;
        self.next_seq += 1;
        Ok(())
    }
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
    let file = storage
        .create(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    write_all_at(&*file, bytes, 0).map_err(|e| Error::io("write", &tmp, e))?;
    file.sync_data().map_err(|e| Error::io("sync", &tmp, e))?;
    storage
        .rename(&tmp, path)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("sync directory", dir, e))?;
    Ok(file)
}
