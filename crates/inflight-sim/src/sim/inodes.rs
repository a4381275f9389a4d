//! The inodes of the virtual file system: files and directories, what is durable, cached and
//! pending in each, the pending directory operations, and the resolution of paths to inodes.
//! The storage calls that change them are in [`vfs`](super::vfs); what a crash does with the
//! pending part is in [`crash`](super::crash).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::mem;
use std::path::{Component, Path, PathBuf};

use super::Inner;

/// The root directory's inode.
pub(super) const ROOT: Ino = 0;

pub(super) type Ino = u64;

/// A pending write or length change of one file.
#[derive(Clone, Debug)]
pub(super) enum FileOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

impl FileOp {
    pub(super) fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            FileOp::Write { offset, data } => write_into(bytes, *offset, data),
            FileOp::SetLen(len) => bytes.resize(*len as usize, 0),
        }
    }
}

fn write_into(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[start..end].copy_from_slice(data);
}

#[derive(Clone, Default)]
pub(super) struct FileNode {
    pub(super) durable: Vec<u8>,
    /// What reads see: `durable` with `pending` applied, plus whatever a failed sync dropped
    /// from the durable path (F7).
    pub(super) cache: Vec<u8>,
    pub(super) pending: Vec<FileOp>,
}

#[derive(Clone, Default)]
pub(super) struct DirNode {
    pub(super) durable: BTreeMap<String, Ino>,
    pub(super) cache: BTreeMap<String, Ino>,
}

#[derive(Clone)]
pub(super) enum Node {
    File(FileNode),
    Dir(DirNode),
}

/// One change to one directory entry: `name` in `dir` now names `target`, or nothing.
#[derive(Clone, Debug)]
pub(super) struct EntrySet {
    pub(super) dir: Ino,
    pub(super) name: String,
    pub(super) target: Option<Ino>,
}

impl EntrySet {
    pub(super) fn link(dir: Ino, name: &str, target: Ino) -> EntrySet {
        EntrySet {
            dir,
            name: name.to_string(),
            target: Some(target),
        }
    }

    pub(super) fn unlink(dir: Ino, name: &str) -> EntrySet {
        EntrySet {
            dir,
            name: name.to_string(),
            target: None,
        }
    }
}

/// A pending directory operation: entry changes that persist (or not) together.
#[derive(Clone, Debug)]
pub(super) struct DirOp {
    pub(super) sets: Vec<EntrySet>,
}

/// Which names to resolve a path through.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum View {
    Cache,
    Durable,
}

impl Inner {
    pub(super) fn new_node(&mut self, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    pub(super) fn file(&self, ino: Ino) -> io::Result<&FileNode> {
        match self.nodes.get(&ino) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(is_a_directory()),
            None => Err(not_found()),
        }
    }

    pub(super) fn file_mut(&mut self, ino: Ino) -> io::Result<&mut FileNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(is_a_directory()),
            None => Err(not_found()),
        }
    }

    pub(super) fn dir(&self, ino: Ino) -> io::Result<&DirNode> {
        match self.nodes.get(&ino) {
            Some(Node::Dir(d)) => Ok(d),
            Some(Node::File(_)) => Err(not_a_directory()),
            None => Err(not_found()),
        }
    }

    pub(super) fn files(&self) -> impl Iterator<Item = (Ino, &FileNode)> {
        self.nodes.iter().filter_map(|(&ino, node)| match node {
            Node::File(f) => Some((ino, f)),
            Node::Dir(_) => None,
        })
    }

    /// The inode `path` names in `view`.
    pub(super) fn lookup(&self, path: &Path, view: View) -> io::Result<Ino> {
        self.lookup_names(&components(path)?, view)
    }

    fn lookup_names(&self, names: &[String], view: View) -> io::Result<Ino> {
        let mut cur = ROOT;
        for name in names {
            let dir = self.dir(cur)?;
            let entries = match view {
                View::Cache => &dir.cache,
                View::Durable => &dir.durable,
            };
            cur = *entries.get(name).ok_or_else(not_found)?;
        }
        Ok(cur)
    }

    pub(super) fn lookup_file(&self, path: &Path, view: View) -> io::Result<Ino> {
        let ino = self.lookup(path, view)?;
        self.file(ino)?;
        Ok(ino)
    }

    /// The (cache view) directory holding `path`, and its last name.
    pub(super) fn lookup_parent(&self, path: &Path) -> io::Result<(Ino, String)> {
        let mut names = components(path)?;
        let name = names
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
        let parent = self.lookup_names(&names, View::Cache)?;
        self.dir(parent)?;
        Ok((parent, name))
    }

    /// Every file reachable in `view`, with a path to it, in a deterministic order.
    pub(super) fn walk(&self, view: View) -> Vec<(PathBuf, Ino)> {
        let mut files = Vec::new();
        let mut stack = vec![(PathBuf::from("/"), ROOT)];
        while let Some((path, ino)) = stack.pop() {
            match self.nodes.get(&ino) {
                Some(Node::Dir(dir)) => {
                    let entries = match view {
                        View::Cache => &dir.cache,
                        View::Durable => &dir.durable,
                    };
                    for (name, &child) in entries.iter().rev() {
                        stack.push((path.join(name), child));
                    }
                }
                Some(Node::File(_)) => files.push((path, ino)),
                None => {}
            }
        }
        files
    }

    /// Records a directory operation: visible at once, pending until a directory sync (F5).
    pub(super) fn dir_op(&mut self, sets: Vec<EntrySet>) -> io::Result<()> {
        for set in &sets {
            let Some(Node::Dir(dir)) = self.nodes.get_mut(&set.dir) else {
                return Err(not_a_directory());
            };
            match set.target {
                Some(target) => dir.cache.insert(set.name.clone(), target),
                None => dir.cache.remove(&set.name),
            };
        }
        self.dir_ops.push(DirOp { sets });
        Ok(())
    }

    pub(super) fn apply_durable(&mut self, op: &DirOp) {
        for set in &op.sets {
            if let Some(Node::Dir(dir)) = self.nodes.get_mut(&set.dir) {
                match set.target {
                    Some(target) => dir.durable.insert(set.name.clone(), target),
                    None => dir.durable.remove(&set.name),
                };
            }
        }
    }

    /// Makes durable every pending operation on directory `dir`, and every earlier one on the
    /// same entries (a synced rename needs the create of its source).
    pub(super) fn sync_dir(&mut self, dir: Ino) {
        let mut entries: BTreeSet<(Ino, String)> = BTreeSet::new();
        let mut needed = vec![false; self.dir_ops.len()];
        for (i, op) in self.dir_ops.iter().enumerate().rev() {
            let touches = op
                .sets
                .iter()
                .any(|s| s.dir == dir || entries.contains(&(s.dir, s.name.clone())));
            if touches {
                needed[i] = true;
                entries.extend(op.sets.iter().map(|s| (s.dir, s.name.clone())));
            }
        }
        for (op, needed) in mem::take(&mut self.dir_ops).into_iter().zip(needed) {
            if needed {
                self.apply_durable(&op);
            } else {
                self.dir_ops.push(op);
            }
        }
    }

    /// Writes into the cache and records the pending write.
    pub(super) fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> io::Result<()> {
        let file = self.file_mut(ino)?;
        if data.is_empty() {
            return Ok(());
        }
        write_into(&mut file.cache, offset, data);
        file.pending.push(FileOp::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }

    /// Changes the cache's length and records the pending change.
    pub(super) fn set_len(&mut self, ino: Ino, len: u64) -> io::Result<()> {
        let file = self.file_mut(ino)?;
        file.cache.resize(len as usize, 0);
        file.pending.push(FileOp::SetLen(len));
        Ok(())
    }

    /// A path for every inode a name reaches: through the cache's names, else the durable ones.
    pub(super) fn paths(&self) -> BTreeMap<Ino, PathBuf> {
        let mut paths = BTreeMap::new();
        for view in [View::Cache, View::Durable] {
            let mut stack = vec![(PathBuf::from("/"), ROOT)];
            while let Some((path, ino)) = stack.pop() {
                if let Some(Node::Dir(dir)) = self.nodes.get(&ino) {
                    let entries = match view {
                        View::Cache => &dir.cache,
                        View::Durable => &dir.durable,
                    };
                    for (name, &child) in entries {
                        stack.push((path.join(name), child));
                    }
                }
                paths.entry(ino).or_insert(path);
            }
        }
        paths
    }
}

/// The names of `path`, resolved lexically from the root.
pub(super) fn components(path: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                names.pop();
            }
            Component::Normal(name) => {
                let name = name.to_str().ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the simulator needs UTF-8 names",
                    )
                })?;
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

pub(super) fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

pub(super) fn not_a_directory() -> io::Error {
    io::Error::from(io::ErrorKind::NotADirectory)
}

pub(super) fn is_a_directory() -> io::Error {
    io::Error::from(io::ErrorKind::IsADirectory)
}
