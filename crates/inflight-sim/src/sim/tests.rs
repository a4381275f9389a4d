//! Unit tests of the simulated machine as a whole: crash points, replay from a seed, forks.

use super::*;
use crate::sim::test_util::*;

#[test]
fn crash_after_ops_stops_every_call_until_the_crash() {
    let sim = SimStorage::new(10);
    let file = setup(&sim, b"abc");
    let before = sim.op_count();
    sim.crash_after_ops(2);
    assert!(!sim.is_stopped());
    file.len().unwrap();
    write_all_at(&*file, b"d", 3).unwrap();
    for _ in 0..3 {
        let err = file.sync_data().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert_eq!(err.to_string(), "simulated crash");
        assert!(sim.is_dir(Path::new(DIR)).is_err());
    }
    assert!(sim.is_stopped());
    assert_eq!(sim.op_count(), before + 8);
    sim.crash_keep_nothing();
    assert!(sim.is_dir(Path::new(DIR)).unwrap());
    assert_eq!(sim.file_bytes(file_path()).unwrap(), b"abc");
}

/// A workload with unsynced operations of every kind, then a random crash.
fn run(seed: u64) -> (Vec<TraceEntry>, Vec<(PathBuf, Vec<u8>)>) {
    let sim = SimStorage::new(seed);
    let file = setup(&sim, b"header");
    sim.inject(FaultRule::with_probability(Fault::WriteShort, 0.3));
    for i in 0..20u8 {
        write_all_at(&*file, &[i; 300], 6 + u64::from(i) * 300).unwrap();
    }
    file.set_len(1000).unwrap();
    let other = sim.create(&Path::new(DIR).join("other")).unwrap();
    write_all_at(&*other, &[1; 5000], 0).unwrap();
    sim.rename(&Path::new(DIR).join("other"), &Path::new(DIR).join("moved"))
        .unwrap();
    sim.list(Path::new(DIR)).unwrap();
    sim.crash();
    sim.random_media_fault();
    let inner = sim.inner();
    let files = inner
        .walk(View::Durable)
        .into_iter()
        .map(|(path, ino)| (path, inner.file(ino).unwrap().durable.clone()))
        .collect();
    (inner.trace.clone(), files)
}

#[test]
fn same_seed_same_crash_state_and_trace() {
    for seed in 0..20 {
        assert_eq!(run(seed), run(seed), "seed {seed}");
    }
    let states: BTreeSet<_> = (0..20).map(|seed| run(seed).1).collect();
    assert!(states.len() > 10, "different seeds give different crashes");
}

#[test]
fn forks_are_independent() {
    let sim = SimStorage::new(13);
    let file = setup(&sim, b"synced");
    write_all_at(&*file, b"+pending", 6).unwrap();
    let _lock = sim.lock(Path::new(DIR)).unwrap();
    sim.inject(FaultRule::nth(Fault::ReadEio, 2));
    let fork = sim.fork();

    // The same state, the same random choices.
    assert_eq!(fork.file_bytes(file_path()).unwrap(), b"synced+pending");
    assert_eq!(fork.trace(), sim.trace());
    assert_eq!(fork.crash_state_count(), sim.crash_state_count());
    assert_eq!(fork.pending_summary(), sim.pending_summary());
    // Locks are released in the fork, held in the original.
    let fork_lock = fork.lock(Path::new(DIR)).unwrap();
    assert!(matches!(
        sim.lock(Path::new(DIR)),
        Err(LockError::Held(Some(FAKE_PID)))
    ));
    drop(fork_lock);

    // Changes to one never reach the other.
    write_all_at(&*file, b"!", 14).unwrap();
    assert_eq!(sim.file_bytes(file_path()).unwrap(), b"synced+pending!");
    assert_eq!(fork.file_bytes(file_path()).unwrap(), b"synced+pending");
    let forked_file = fork.open(&file_path(), true).unwrap();
    forked_file.sync_data().unwrap();
    assert_eq!(fork.durable_bytes(file_path()).unwrap(), b"synced+pending");
    assert_eq!(sim.durable_bytes(file_path()).unwrap(), b"synced");
    fork.create(&Path::new(DIR).join("only-in-fork")).unwrap();
    assert!(
        sim.file_bytes(Path::new(DIR).join("only-in-fork"))
            .is_none()
    );
    // The armed fault is armed in both, separately: each fires on its own second read.
    for storage in [&sim, &fork] {
        let f = storage.open(&file_path(), false).unwrap();
        f.read_at(&mut [0; 1], 0).unwrap();
        assert!(f.read_at(&mut [0; 1], 0).is_err());
    }
    // A crash of the fork leaves the original's handles alive, and the reverse.
    fork.crash();
    assert_eq!(file.len().unwrap(), 15);
    assert!(forked_file.len().is_err());
    sim.crash_keep_nothing();
    assert_eq!(fork.file_bytes(file_path()).unwrap(), b"synced+pending");
    assert_eq!(sim.file_bytes(file_path()).unwrap(), b"synced");
    assert_ne!(fork.trace(), sim.trace());

    // Both draw the same random crash from the same state.
    let sim = SimStorage::new(14);
    let file = setup(&sim, &[3; 700]);
    write_all_at(&*file, &[4; 3000], 500).unwrap();
    sim.create(&Path::new(DIR).join("g")).unwrap();
    let fork = sim.fork();
    sim.crash();
    fork.crash();
    assert_eq!(durable_state(&fork), durable_state(&sim));
}
