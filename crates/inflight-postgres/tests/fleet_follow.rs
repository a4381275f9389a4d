//! Following a fleet's log in the database (`inflight dump --follow --database`, `Reader::poll`
//! over `Fleet::source`) fetches what was committed since the last poll, not the segment
//! again: the source counts the chunk bytes it fetched.

mod common;

use std::ops::ControlFlow;

use common::pg;
use inflight::inspect::{Item, Reader};
use inflight::store::LogSource;
use inflight::{Log, Opened, Options};
use inflight_postgres::{Fleet, PgSource};

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

/// The chunk bytes `source` fetched during `f`.
fn fetched_by<T>(source: &PgSource, f: impl FnOnce() -> T) -> (T, u64) {
    let before = source.bytes_fetched();
    let out = f();
    (out, source.bytes_fetched() - before)
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

    let source = Fleet::new(&url).source(&a).unwrap();
    let mut reader = Reader::new(&source);
    let (events, first) = fetched_by(&source, || poll(&mut reader));
    assert_eq!(events, 2_000);
    assert!(
        first > 2_000 * 400,
        "the first poll reads the log: {first} bytes"
    );

    // Ten more events: the next poll fetches about their frames, not the segment.
    for i in 2_000..2_010 {
        start(&log, i);
    }
    let (events, again) = fetched_by(&source, || poll(&mut reader));
    assert_eq!(events, 10);
    assert!(
        again < 10 * 1_024,
        "a poll after 10 events fetched {again} bytes (the first read {first})"
    );
    assert!(again >= 10 * 400, "the new events' frames: {again} bytes");

    // Nothing new: nothing fetched.
    let (events, idle) = fetched_by(&source, || poll(&mut reader));
    assert_eq!((events, idle), (0, 0));
    eprintln!(
        "follow: first poll {first} bytes for 2000 events; 10 events later {again} bytes; idle {idle}"
    );
}

/// A source keeps the segments it read, and opening one again fetches nothing when nothing was
/// committed to it since; a snapshot, which never grows, it does not keep.
#[test]
fn a_source_keeps_the_segments_it_downloaded() {
    let Some(url) = pg::url() else { return };
    let a = pg::instance("follow-kept");
    {
        let Opened { log, .. } = Fleet::new(&url).open(&a, Options::default()).unwrap();
        for i in 0..50 {
            log.mark_running(pg::run(&format!("k{i}"), 1)).unwrap();
        }
        log.compact().unwrap();
        log.mark_running(pg::run("after", 1)).unwrap();
    }
    let source = Fleet::new(&url).source(&a).unwrap();
    let names = source.list().unwrap();
    let segment = names
        .iter()
        .find(|n| inflight::layout::parse_segment_name(n).is_some())
        .expect("a segment");
    let snapshot = names
        .iter()
        .find(|n| n.starts_with("snapshot-"))
        .expect("a snapshot");
    let open_twice = |name: &str| {
        let (_, first) = fetched_by(&source, || source.open_part(name).unwrap().unwrap());
        let (_, again) = fetched_by(&source, || source.open_part(name).unwrap().unwrap());
        (first, again)
    };
    let (first, again) = open_twice(segment);
    assert!(first > 20, "the segment: {first} bytes");
    assert_eq!(again, 0, "the segment is kept");
    let (first, again) = open_twice(snapshot);
    assert!(first > 50 * 20, "the snapshot: {first} bytes");
    assert_eq!(again, first, "a snapshot is not kept");
}
