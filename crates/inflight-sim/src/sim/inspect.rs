//! What a test can read of the simulated machine without making a storage call: the trace,
//! and the durable and cached bytes and names of its files.

use std::path::Path;

use super::vfs::{FileNode, View};
use super::{SimStorage, TraceEntry};

#[cfg(doc)]
use inflight::storage::Storage;

impl SimStorage {
    /// Every storage call, crash and media fault so far, in order.
    pub fn trace(&self) -> Vec<TraceEntry> {
        self.inner().trace.clone()
    }

    /// The whole trace, one entry a line.
    pub fn trace_text(&self) -> String {
        self.trace_text_last(usize::MAX)
    }

    /// The last `n` entries of the trace, one a line.
    pub fn trace_text_last(&self, n: usize) -> String {
        let inner = self.inner();
        let skip = inner.trace.len().saturating_sub(n);
        let mut text = String::new();
        if skip > 0 {
            text.push_str(&format!("({skip} earlier entries not shown)\n"));
        }
        for entry in &inner.trace[skip..] {
            text.push_str(&entry.to_string());
            text.push('\n');
        }
        text
    }

    /// The durable length of the file at `path` (resolved through the current names), or
    /// `None` if there is no such file.
    pub fn durable_len(&self, path: impl AsRef<Path>) -> Option<u64> {
        self.with_file(path.as_ref(), |f| f.durable.len() as u64)
    }

    /// The cache view of the file at `path`: what a read returns now.
    pub fn file_bytes(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        self.with_file(path.as_ref(), |f| f.cache.clone())
    }

    /// The durable bytes of the file at `path` (resolved through the current names).
    pub fn durable_bytes(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        self.with_file(path.as_ref(), |f| f.durable.clone())
    }

    /// The durable names in directory `dir` (resolved through durable names), sorted: what
    /// [`Storage::list`] would return after a crash that lost every pending operation.
    pub fn durable_list(&self, dir: impl AsRef<Path>) -> Option<Vec<String>> {
        let inner = self.inner();
        let ino = inner.lookup(dir.as_ref(), View::Durable).ok()?;
        let dir = inner.dir(ino).ok()?;
        Some(dir.durable.keys().cloned().collect())
    }

    fn with_file<T>(&self, path: &Path, f: impl FnOnce(&FileNode) -> T) -> Option<T> {
        let inner = self.inner();
        let ino = inner.lookup_file(path, View::Cache).ok()?;
        inner.file(ino).ok().map(f)
    }
}
