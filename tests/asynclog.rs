//! The async front: thousands of tasks record durably, share syncs, and never block the
//! runtime's worker threads on the disk.

use inflight::asynclog::AsyncLog;
use inflight::{Log, Options, Policy};

#[test]
fn thousands_of_tasks_share_syncs_and_every_event_is_durable() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = AsyncLog::new(Log::open(dir.path(), Options::default()).unwrap().log);
    let tasks = 2000;
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    let run = log
                        .begin_run(format!("agent:main:http:c-{i}"), "s", None)
                        .await
                        .unwrap();
                    if i % 2 == 0 {
                        log.mark_completed(run.key, run.generation).await.unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(log.log().running().len(), tasks / 2);
    drop(log);
    let replayed = Log::read_only(dir.path(), Policy::Strict).unwrap();
    let report = replayed.report;
    assert_eq!(report.records, (tasks + tasks / 2) as u64);
    assert_eq!(report.running.len(), tasks / 2);
    // Group commit: far fewer frames (each one write and one sync) than events.
    assert!(
        report.last_seq < report.records,
        "{} frames for {} events",
        report.last_seq,
        report.records
    );
}

mod watched {
    //! The real file system, recording which thread made each fdatasync, and failing them
    //! while `fail` is set.
    use std::io;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use inflight::storage::{DirLock, LockError};
    use inflight::{FsStorage, Storage, StorageFile};

    #[derive(Debug, Default)]
    pub struct Watched {
        fs: FsStorage,
        pub syncs: Arc<Mutex<Vec<String>>>,
        pub fail: Arc<AtomicBool>,
    }

    #[derive(Debug)]
    struct WatchedFile {
        inner: Box<dyn StorageFile>,
        syncs: Arc<Mutex<Vec<String>>>,
        fail: Arc<AtomicBool>,
    }

    impl Watched {
        fn wrap(&self, inner: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
            Box::new(WatchedFile {
                inner,
                syncs: self.syncs.clone(),
                fail: self.fail.clone(),
            })
        }
    }

    impl Storage for Watched {
        fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            self.fs.create_dir_all(dir)
        }
        fn is_dir(&self, dir: &Path) -> io::Result<bool> {
            self.fs.is_dir(dir)
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            self.fs.list(dir)
        }
        fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
            self.fs.create(path).map(|f| self.wrap(f))
        }
        fn open(&self, path: &Path, write: bool) -> io::Result<Box<dyn StorageFile>> {
            self.fs.open(path, write).map(|f| self.wrap(f))
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.fs.rename(from, to)
        }
        fn remove(&self, path: &Path) -> io::Result<()> {
            self.fs.remove(path)
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            self.fs.sync_dir(dir)
        }
        fn lock(&self, dir: &Path) -> Result<DirLock, LockError> {
            self.fs.lock(dir)
        }
    }

    impl StorageFile for WatchedFile {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            self.inner.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
            self.inner.write_at(buf, offset)
        }
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            let name = std::thread::current().name().unwrap_or("").to_string();
            self.syncs.lock().unwrap().push(name);
            if self.fail.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(5));
            }
            self.inner.sync_data()
        }
        fn sync_all(&self) -> io::Result<()> {
            self.sync_data()
        }
    }
}

/// On a runtime of one thread, hundreds of tasks record durably, and not one fdatasync runs on
/// the runtime's thread: the front's flusher thread makes them.
#[test]
fn no_sync_runs_on_the_runtime_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .thread_name("the-runtime")
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = std::sync::Arc::new(watched::Watched::default());
    let opened = Log::open_with_storage(storage.clone(), dir.path(), Options::default()).unwrap();
    let log = AsyncLog::new(opened.log);
    storage.syncs.lock().unwrap().clear();
    let tasks = 500;
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    let run = log.begin_run(format!("k{i}"), "s", None).await.unwrap();
                    log.mark_completed(run.key, run.generation).await.unwrap();
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    let syncs = storage.syncs.lock().unwrap().clone();
    assert!(!syncs.is_empty());
    assert!(
        syncs.iter().all(|t| t == "inflight-flusher"),
        "syncs made on: {:?}",
        syncs.iter().collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        syncs.len() < 2 * tasks,
        "{} syncs for {} events",
        syncs.len(),
        2 * tasks
    );
    assert!(log.log().running().is_empty());
}

/// A failed sync fails every task waiting on it and every later call, and none is left waiting.
#[test]
fn a_failed_sync_wakes_every_waiting_task_with_an_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = std::sync::Arc::new(watched::Watched::default());
    let opened = Log::open_with_storage(storage.clone(), dir.path(), Options::default()).unwrap();
    let log = AsyncLog::new(opened.log);
    storage
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (done, finished) = std::sync::mpsc::channel();
    let watched = log.clone();
    std::thread::spawn(move || {
        let results = runtime.block_on(async {
            let handles: Vec<_> = (0..200)
                .map(|i| {
                    let log = watched.clone();
                    tokio::spawn(async move { log.begin_run(format!("k{i}"), "s", None).await })
                })
                .collect();
            let mut results = Vec::new();
            for h in handles {
                results.push(h.await.unwrap());
            }
            results
        });
        done.send(results).unwrap();
    });
    let results = finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("every task finished");
    assert!(results.iter().all(|r| r.is_err()), "nothing was durable");
    // No caller led the batch (the flusher did): each gets the poisoned handle's error, which
    // carries the failed sync's.
    for r in &results {
        match r {
            Err(inflight::Error::Poisoned { cause, .. }) => {
                assert!(cause.contains("sync"), "{cause}")
            }
            other => panic!("{other:?}"),
        }
    }
    let later = runtime_block(log.mark_completed("k0", 1));
    assert!(
        matches!(later, Err(inflight::Error::Poisoned { .. })),
        "{later:?}"
    );
}

fn runtime_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}
