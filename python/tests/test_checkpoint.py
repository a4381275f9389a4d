"""The old checkpoint's class over the log: same calls, same shapes, and what it gains."""

import json
import os
import threading
import time

import pytest

import inflight
from inflight.checkpoint import SessionCrashCheckpoint, log_dir_for

KEY = "agent:main:telegram:dm:4242"


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "agent_checkpoints.json")


def test_the_json_path_becomes_a_log_directory_beside_it(path):
    assert log_dir_for(path) == path[: -len(".json")] + ".inflight"
    assert log_dir_for("/var/lib/gw/inflight") == "/var/lib/gw/inflight"
    with SessionCrashCheckpoint(path) as checkpoint:
        assert checkpoint.log_dir == log_dir_for(path)
        assert os.path.isdir(checkpoint.log_dir) and not os.path.exists(path)


def test_the_old_calls_in_the_old_shapes(path):
    checkpoint = SessionCrashCheckpoint(path)
    assert checkpoint.get_active_sessions() == {}
    before = time.time()
    token = checkpoint.mark_running(KEY, "20261126_104512_9f1c2ab0")
    assert isinstance(token, str)
    checkpoint.mark_running("agent:main:http:c-5", "20261126_2", meta='{"resume_from":"m-1"}')
    assert checkpoint.mark_completed("agent:main:http:c-5") is True
    assert checkpoint.mark_completed("agent:main:never") is False  # unknown key: a no-op, as before
    checkpoint.abandon()  # the process dies

    checkpoint = SessionCrashCheckpoint(path)
    active = checkpoint.get_active_sessions()
    assert list(active) == [KEY]
    entry = active[KEY]
    assert entry["session_id"] == "20261126_104512_9f1c2ab0"
    assert before <= entry["started_at"] <= time.time() + 0.001
    assert (entry["token"], entry["generation"], entry["reason"], entry["recoveries"], entry["crash_loop"], entry["meta"]) == (
        token, 1, "crash", 1, False, None,
    )
    checkpoint.clear()
    assert checkpoint.get_active_sessions() == {}
    checkpoint.close()
    assert SessionCrashCheckpoint(path).get_active_sessions() == {}


def test_a_late_completion_of_an_old_run_cannot_clear_the_newer_one(path):
    with SessionCrashCheckpoint(path) as checkpoint:
        checkpoint.mark_running(KEY, "s1")
        first = checkpoint.log.running()[0].generation
        checkpoint.mark_running(KEY, "s2")  # /new: a newer run on the key
        # The old run's completion arrives late, by generation, straight to the log.
        assert checkpoint.log.mark_completed(KEY, first) == "stale-completion"
        assert checkpoint.get_active_sessions()[KEY]["session_id"] == "s2"
        checkpoint.mark_completed(KEY)
        assert checkpoint.get_active_sessions() == {}


def test_mark_completed_completes_a_run_begun_before_the_restart(path):
    with SessionCrashCheckpoint(path) as checkpoint:
        checkpoint.mark_running(KEY, "s1")
        checkpoint.abandon()
    with SessionCrashCheckpoint(path) as checkpoint:
        assert KEY in checkpoint.get_active_sessions()
        checkpoint.mark_completed(KEY)
        assert checkpoint.get_active_sessions() == {}


def test_an_old_json_checkpoint_is_imported_the_first_time(path):
    with open(path, "w") as f:
        json.dump({KEY: {"session_id": "old-1", "started_at": 1_764_150_000.25}}, f)
    checkpoint = SessionCrashCheckpoint(path)
    assert checkpoint.imported == 1
    entry = checkpoint.get_active_sessions()[KEY]
    assert (entry["session_id"], entry["started_at"], entry["reason"]) == ("old-1", 1_764_150_000.25, "crash")
    checkpoint.clear()
    checkpoint.close()
    # The file is read once: the log speaks from now on.
    assert SessionCrashCheckpoint(path).imported == 0


def test_a_malformed_json_checkpoint_is_refused_and_nothing_is_created(path):
    with open(path, "w") as f:
        json.dump({KEY: {"session_id": "old-1", "started_at": -5}}, f)
    with pytest.raises(inflight.CheckpointFileError) as e:
        SessionCrashCheckpoint(path)
    assert e.value.path == path and "started_at" in str(e.value)
    assert not os.path.exists(log_dir_for(path))


def test_suspend_recently_active_guesses_only_where_the_log_cannot_speak(path):
    with SessionCrashCheckpoint(path) as checkpoint:
        checkpoint.mark_running(KEY, "s")
        checkpoint.abandon()
    with SessionCrashCheckpoint(path) as checkpoint:
        opened = checkpoint.report.coverage_since_ms / 1000
        swept = checkpoint.suspend_recently_active(
            {KEY: opened - 7200, "quiet": time.time(), "before-log": opened - 30},
            now=time.time(),
        )
        assert swept == {KEY: "log", "before-log": "before-coverage"}


def test_threads_share_the_checkpoint(path):
    with SessionCrashCheckpoint(path) as checkpoint:
        def worker(t):
            for i in range(20):
                key = f"agent:main:http:t{t}-{i}"
                checkpoint.mark_running(key, "s")
                checkpoint.mark_completed(key)
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert checkpoint.get_active_sessions() == {}
        assert checkpoint.log.counters()["completed"] == 160
