//! Helpers shared by the simulator's unit tests.

pub(super) use std::collections::BTreeSet;
pub(super) use std::path::{Path, PathBuf};

use super::vfs::View;
pub(super) use super::{PAGE_BYTES, SECTOR_BYTES, SimStorage};
pub(super) use inflight::storage::{
    LOCK_FILE, LockError, Storage, StorageFile, read_to_vec, write_all_at,
};

pub(super) const DIR: &str = "/data";

pub(super) fn file_path() -> PathBuf {
    Path::new(DIR).join("f")
}

/// A directory made durable, holding a durable file with `synced` synced into it.
pub(super) fn setup(sim: &SimStorage, synced: &[u8]) -> Box<dyn StorageFile> {
    sim.create_dir_all(Path::new(DIR)).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    let file = sim.create(&file_path()).unwrap();
    write_all_at(&*file, synced, 0).unwrap();
    file.sync_data().unwrap();
    sim.sync_dir(Path::new(DIR)).unwrap();
    file
}

/// Every file a durable name reaches, with its durable bytes.
pub(super) fn durable_state(sim: &SimStorage) -> Vec<(PathBuf, Vec<u8>)> {
    let inner = sim.inner();
    inner
        .walk(View::Durable)
        .into_iter()
        .map(|(path, ino)| (path, inner.file(ino).unwrap().durable.clone()))
        .collect()
}

/// Every crash state of `sim`'s enumeration, each on its own fork.
pub(super) fn all_states(sim: &SimStorage) -> Vec<Vec<(PathBuf, Vec<u8>)>> {
    (0..sim.crash_state_count())
        .map(|index| {
            let fork = sim.fork();
            fork.crash_into(index);
            durable_state(&fork)
        })
        .collect()
}
