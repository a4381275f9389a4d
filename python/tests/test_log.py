"""Every call of the log, as a gateway makes it."""

import os
import time

import pytest

import inflight
from conftest import events_in

KEY = "agent:main:telegram:dm:4242"


def test_a_new_log_reports_nothing_in_flight_and_covers_from_now(log_dir):
    before = int(time.time() * 1000)
    with inflight.open(log_dir) as log:
        report = log.report
        assert report.running == []
        assert report.crash_loops == []
        assert report.torn_tail is None and report.torn_tail_bytes == 0
        assert report.corruption == [] and report.gaps_before_snapshot == []
        assert report.coverage_since_ms >= before
        assert report.crash_loop_threshold == 3
        assert log.dir == log_dir and not log.closed
    assert log.closed
    assert oct(os.stat(log_dir).st_mode & 0o777) == "0o700"


def test_begin_run_allocates_generations_and_a_crash_reports_the_run_with_its_meta(log_dir):
    log = inflight.open(log_dir)
    first = log.begin_run(KEY, "20261126_1")
    second = log.begin_run(KEY, "20261126_2", meta='{"resume_from":"m-2"}')
    assert (first.generation, second.generation) == (1, 2)
    assert second.meta == '{"resume_from":"m-2"}'
    assert abs(second.started_at - time.time()) < 60
    assert log.high_water(KEY) == 2 and log.high_water("nobody") is None
    assert [r.generation for r in log.running()] == [2]
    log.abandon()  # the process dies here: no shutdown record

    with inflight.open(log_dir) as log:
        (run,) = log.report.running
        assert (run.key, run.session_id, run.generation, run.meta) == (KEY, "20261126_2", 2, '{"resume_from":"m-2"}')
        assert run.reason == "crash" and run.recoveries == 1 and not run.crash_loop
        assert run.started_at_ms == second.started_at_ms
        assert run.run == second
        assert log.report.clean_shutdown is False


def test_mark_running_with_explicit_generations_and_stale_records(log_dir):
    with inflight.open(log_dir) as log:
        assert log.mark_running(KEY, "s", 7, started_at_ms=1_764_150_000_000, meta="m") == "started"
        assert log.mark_running(KEY, "s", 8) == "superseded"
        with pytest.raises(inflight.StaleGenerationError):
            log.mark_running(KEY, "s", 3)  # refused: nothing written
        assert log.mark_completed(KEY, 7) == "stale-completion"
        assert log.mark_completed(KEY, 8, at_ms=1_764_150_000_500) == "completed"
        assert log.mark_completed(KEY, 8) == "unknown-completion"
        counters = log.counters()
        assert counters["stale_starts"] == 0 and counters["stale_completions"] == 1
        assert counters["superseded"] == 1
    report = inflight.open(log_dir).report
    assert report.running == [] and report.stale_ignored == 1


def test_a_clean_close_reports_the_runs_left_with_reason_shutdown(log_dir):
    log = inflight.open(log_dir)
    log.begin_run(KEY, "s")
    log.close()
    log.close()  # closing twice does nothing
    with pytest.raises(inflight.ClosedError):
        log.begin_run(KEY, "s")
    with inflight.open(log_dir) as again:
        assert [r.reason for r in again.report.running] == ["shutdown"]
        assert again.report.clean_shutdown


def test_an_exception_in_the_with_block_abandons_the_log_as_a_crash_would(log_dir):
    with pytest.raises(RuntimeError):
        with inflight.open(log_dir) as log:
            log.begin_run(KEY, "s")
            raise RuntimeError("the gateway fails")
    assert [r.reason for r in inflight.open(log_dir).report.running] == ["crash"]


def test_crash_loops_are_counted_and_flagged_at_the_threshold(log_dir):
    with inflight.open(log_dir) as log:
        log.begin_run(KEY, "s")
        log.abandon()
    for expected in (1, 2, 3):
        log = inflight.open(log_dir)
        (run,) = log.report.running
        assert run.recoveries == expected
        assert run.crash_loop == (expected >= 3)
        assert [r.key for r in log.report.crash_loops] == ([KEY] if expected >= 3 else [])
        log.begin_run(KEY, "s")  # resumed: and the process dies again
        log.abandon()
    log = inflight.open(log_dir, crash_loop_threshold=5)
    assert log.report.crash_loops == [] and log.report.crash_loop_threshold == 5
    assert log.report.running[0].recoveries == 4
    log.abandon()
    # Not resumed, it is not running: later restarts do not count it.
    log = inflight.open(log_dir)
    assert log.report.running[0].recoveries == 4 and log.report.running[0].state == "interrupted"
    log.abandon()


def test_read_only_replays_without_the_lock_and_changes_nothing(log_dir):
    with inflight.open(log_dir) as log:
        run = log.begin_run(KEY, "s")
        before = {n: os.stat(os.path.join(log_dir, n)).st_mtime_ns for n in os.listdir(log_dir)}
        recovered = inflight.read_only(log_dir)  # while the writer holds the lock
        assert [r.key for r in recovered.report.running] == [KEY]
        assert recovered.report.running[0].generation == run.generation
        after = {n: os.stat(os.path.join(log_dir, n)).st_mtime_ns for n in os.listdir(log_dir)}
        assert before == after
    strict = inflight.read_only(log_dir, strict=True)
    assert strict.report.to_dict()["running"][0]["key"] == KEY


def test_read_only_of_a_directory_without_a_log_is_not_found(tmp_path):
    with pytest.raises(inflight.NotFoundError) as e:
        inflight.read_only(str(tmp_path / "missing"))
    assert e.value.path.endswith("missing")
    assert isinstance(e.value, FileNotFoundError)


def test_compaction_writes_a_snapshot_the_next_open_starts_from(log_dir):
    with inflight.open(log_dir) as log:
        run = log.begin_run(KEY, "s", meta="m")
        done = log.compact()
        assert done["running"] == 1 and done["snapshot"].endswith(".json")
        log.abandon()
    report = inflight.open(log_dir).report
    assert report.snapshot is not None
    assert report.running[0].run == run


def test_options_are_checked_and_passed_on(log_dir):
    with pytest.raises(inflight.InvalidInputError) as e:
        inflight.open(log_dir, segment_bytes_max=10)
    assert e.value.field == "segment_bytes_max"
    with inflight.open(log_dir, strict=True, compact_after_bytes=None, retention_ms=None,
                       segment_bytes_max=64 << 10) as log:
        log.begin_run(KEY, "s")


def test_import_runs_builds_a_new_log_all_or_nothing(tmp_path):
    target = str(tmp_path / "imported")
    runs = [inflight.Run(KEY, "s", 1, 1_764_150_000_123), inflight.Run("agent:main:http:c-5", "t", 4, 1_764_150_001_000.9)]
    assert runs[1].started_at_ms == 1_764_150_001_000
    assert inflight.import_runs(target, runs) == 2
    assert [r.key for r in inflight.open(target).report.running] == ["agent:main:http:c-5", KEY]
    with pytest.raises(inflight.InvalidInputError):
        inflight.import_runs(target, runs)  # over an existing log
    assert inflight.started_at_ms_from_secs(KEY, 1_764_150_000.1239) == 1_764_150_000_123


def test_values_read_as_their_fields():
    run = inflight.Run(KEY, "s", 2, 1500, meta="x")
    assert "generation=2" in repr(run) and run.started_at == 1.5
    assert run == inflight.Run(KEY, "s", 2, 1500, meta="x")
    assert inflight.KEY_BYTES_MAX == 1024 and inflight.WINDOW_MS_DEFAULT == 120_000
    assert events_in  # imported helper is used by other modules


def test_metrics_are_the_handles_figures_and_agree_with_the_calls(log_dir):
    with inflight.open(log_dir) as log:
        before = log.metrics()
        assert before["started"] == 0 and before["syncs"] == 0 and before["poisoned"] is False
        runs = [log.begin_run(f"{KEY}:{i}", f"s{i}") for i in range(5)]
        for run in runs[:3]:
            log.mark_completed(run.key, run.generation)
        log.mark_completed(runs[0].key, runs[0].generation)  # no run in flight: a no-op
        log.compact()
        m = log.metrics()
        assert (m["started"], m["completed"], m["unknown_completions"]) == (5, 3, 1)
        assert 1 <= m["syncs"] <= 9 + m["log_records"]
        assert m["sync_seconds"] > 0 and m["sync_seconds_max"] <= m["sync_seconds"]
        assert m["written_bytes"] >= 16 * m["syncs"]
        assert m["compactions"] == 1 and m["snapshot_bytes"] > 0
        assert m["queue_events"] == 0
    # The next open's figures say what it recovered.
    with inflight.open(log_dir) as log:
        m = log.metrics()
        assert m["recovered_runs"] == 2 and m["crash_loops"] == 0
        assert m["started"] == 0
