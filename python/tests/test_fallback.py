"""The time-window fallback, only for what the log cannot speak for, with crash-loop flags."""

import os
import time
from collections.abc import Mapping
from types import MappingProxyType

import inflight

NOW = 1_764_150_000_000
WINDOW = 120_000


def test_without_a_log_every_session_active_in_the_window_is_a_guess():
    sessions = {"a": NOW - 1_000, "b": NOW - WINDOW - 1, "c": (NOW - 5_000) / 1.0}
    flagged = inflight.fallback_without_log(sessions, window_ms=WINDOW, now_ms=NOW)
    assert [(f.key, f.reason, f.precise, f.recoveries) for f in flagged] == [
        ("a", "no-log", False, None),
        ("c", "no-log", False, None),
    ]
    # Pairs work as well as a mapping; the default window is 120 s.
    pairs = [("a", NOW - 119_000), ("b", NOW - 121_000)]
    assert [f.key for f in inflight.fallback_without_log(pairs, now_ms=NOW)] == ["a"]
    # Any mapping, not only a dict: a read-only view of the gateway's own table, or a store of
    # its own that is a collections.abc.Mapping.
    class Sessions(Mapping):
        def __init__(self, table):
            self.table = table

        def __getitem__(self, key):
            return self.table[key]

        def __iter__(self):
            return iter(self.table)

        def __len__(self):
            return len(self.table)

    for view in (MappingProxyType(sessions), Sessions(sessions)):
        assert [f.key for f in inflight.fallback_without_log(view, window_ms=WINDOW, now_ms=NOW)] == ["a", "c"]


def test_the_log_answers_precisely_and_guesses_only_before_its_coverage(log_dir):
    with inflight.open(log_dir) as log:
        log.begin_run("running", "s")
        done = log.begin_run("finished", "s")
        log.mark_completed(done.key, done.generation)
        log.abandon()
    log = inflight.open(log_dir)
    now = int(time.time() * 1000)
    coverage = log.report.coverage_since_ms
    sessions = {
        "running": now - 3_600_000,  # long ago: still precise
        "finished": now,  # the log knows it completed
        "early": coverage - 30_000,  # before the log began, within the window
        "ancient": coverage - 3_600_000,  # before, outside the window
    }
    flagged = {f.key: f for f in log.fallback(sessions, window_ms=WINDOW + (now - coverage), now_ms=now)}
    assert set(flagged) == {"running", "early"}
    assert (flagged["running"].reason, flagged["running"].precise, flagged["running"].recoveries) == ("log", True, 1)
    assert (flagged["early"].reason, flagged["early"].precise) == ("before-coverage", False)
    # A read-only replay gives the same answer.
    replayed = {f.key: f.reason for f in inflight.read_only(log_dir).fallback(sessions, window_ms=WINDOW + (now - coverage), now_ms=now)}
    assert replayed == {"running": "log", "early": "before-coverage"}
    log.abandon()


def test_a_crash_loop_is_flagged_crash_loop_with_its_count(log_dir):
    with inflight.open(log_dir) as log:
        log.begin_run("loops", "s")
        log.abandon()
    for _ in range(3):
        log = inflight.open(log_dir)
        log.begin_run("loops", "s")  # resumed, and it crashes the process again
        log.abandon()
    log = inflight.open(log_dir)
    (f,) = log.fallback({}, now_ms=time.time() * 1000)
    assert (f.key, f.reason, f.precise, f.recoveries) == ("loops", "crash-loop", True, 4)
    log.abandon()


def test_a_gap_flags_the_sessions_active_around_it(log_dir):
    base = int(time.time() * 1000) + 1_000  # after the log's coverage begins
    with inflight.open(log_dir, segment_bytes_max=64 << 10) as log:
        for i in range(40):
            log.mark_running(f"k{i}", "s", 1, started_at_ms=base + i * 1_000)
        log.mark_running("late", "s", 1, started_at_ms=base + 150_000)
    (segment,) = sorted(n for n in os.listdir(log_dir) if n.endswith(".log"))
    with open(os.path.join(log_dir, segment), "r+b") as f:
        f.seek(400)
        f.write(b"\x00" * 16)
    recovered = inflight.read_only(log_dir)
    assert len(recovered.report.corruption) == 1
    gap = recovered.report.corruption[0]
    sessions = {"lost-session": gap["after_ms"] + 1, "quiet": base - 1_000_000}
    flagged = {f.key: f.reason for f in recovered.fallback(sessions, window_ms=WINDOW, now_ms=base + 200_000)}
    assert flagged["lost-session"] == "gap"
    assert flagged["late"] == "log"
    assert "quiet" not in flagged
