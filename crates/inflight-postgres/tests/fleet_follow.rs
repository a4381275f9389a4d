//! Following a fleet's log in the database (`inflight dump --follow --database`, `Reader::poll`
//! over `Fleet::read_only_storage`) fetches what was committed since the last poll, not the
//! segment again: the storage counts the chunk bytes it fetched.

mod common;

use std::ops::ControlFlow;

use common::pg;
use inflight::inspect::{Item, Reader};
use inflight::layout::segment_name;
use inflight::{Log, Opened, Options, Storage};
use inflight_postgres::{Fleet, PgStorage, instance_path};

/// The events one poll hands over.
fn poll(reader: &mut Reader<'_>) -> usize {
    let mut events = 0;
    reader
        .poll(|item| {
            if let Item::Event(_) = item {
                events += 1;
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    events
}

/// The chunk bytes `storage` fetched during `f`.
fn fetched_by<T>(storage: &PgStorage, f: impl FnOnce() -> T) -> (T, u64) {
    let before = storage.bytes_fetched();
    let out = f();
    (out, storage.bytes_fetched() - before)
}

#[test]
fn a_follower_fetches_only_what_was_committed_since_its_last_poll() {
    let Some(url) = pg::url() else { return };
    let a = pg::instance("follow");
    let Opened { log, .. } = Fleet::new(&url).open(&a, Options::default()).unwrap();
    let meta = format!("{{\"resume_from\":\"{}\"}}", "m".repeat(400));
    let start = |log: &Log, i: u64| {
        log.mark_running(pg::run(&format!("k{i}"), 1).with_meta(meta.clone()))
            .unwrap();
    };
    for i in 0..2_000 {
        start(&log, i);
    }

    let storage = Fleet::new(&url).read_only_storage(&a).unwrap();
    let dir = instance_path(&a);
    let mut reader = Reader::new(&storage, &dir);
    let (events, first) = fetched_by(&storage, || poll(&mut reader));
    assert_eq!(events, 2_000);
    assert!(
        first > 2_000 * 400,
        "the first poll reads the log: {first} bytes"
    );

    // Ten more events: the next poll fetches about their frames, not the segment.
    for i in 2_000..2_010 {
        start(&log, i);
    }
    let (events, again) = fetched_by(&storage, || poll(&mut reader));
    assert_eq!(events, 10);
    assert!(
        again < 10 * 1_024,
        "a poll after 10 events fetched {again} bytes (the first read {first})"
    );
    assert!(again >= 10 * 400, "the new events' frames: {again} bytes");

    // Nothing new: nothing fetched.
    let (events, idle) = fetched_by(&storage, || poll(&mut reader));
    assert_eq!((events, idle), (0, 0));
    eprintln!(
        "follow: first poll {first} bytes for 2000 events; 10 events later {again} bytes; idle {idle}"
    );
}

/// A storage that may write keeps no download: its reads are the open's replay, and it lives
/// as long as the log, so it would hold their bytes (a snapshot's too) for nothing. A read-only
/// one keeps the segment and fetches nothing the second time.
#[test]
fn only_a_read_only_storage_keeps_what_it_downloaded() {
    let Some(url) = pg::url() else { return };
    let a = pg::instance("follow-writer");
    {
        let Opened { log, .. } = Fleet::new(&url).open(&a, Options::default()).unwrap();
        for i in 0..50 {
            log.mark_running(pg::run(&format!("k{i}"), 1)).unwrap();
        }
    }
    let segment = instance_path(&a).join(segment_name(1));
    let open_twice = |storage: &PgStorage| {
        let (_, first) = fetched_by(storage, || storage.open(&segment, false).unwrap());
        let (_, again) = fetched_by(storage, || storage.open(&segment, false).unwrap());
        (first, again)
    };
    let (first, again) = open_twice(&Fleet::new(&url).open_storage(&a).unwrap());
    assert!(first > 50 * 20, "the segment: {first} bytes");
    assert_eq!(again, first, "a storage that may write downloads it again");
    let (first, again) = open_twice(&Fleet::new(&url).read_only_storage(&a).unwrap());
    assert!(first > 50 * 20, "the segment: {first} bytes");
    assert_eq!(again, 0, "a read-only storage keeps it");
}
