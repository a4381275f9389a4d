"""What a real gateway found when it adopted the package: one test per finding, each of which
failed before its fix (the finding's number is in the test's docstring)."""

import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

import inflight
from inflight.checkpoint import SessionCrashCheckpoint, log_dir_for

KEY = "agent:main:telegram:dm:4242"


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "agent_checkpoints.json")


def test_a_late_completion_with_its_token_cannot_clear_the_newer_run(path):
    """1. ``mark_completed(key)`` completed the key's newest run, so run A's late ``finally``
    wiped run B. With the token ``mark_running`` returns, it completes only its own run."""
    with SessionCrashCheckpoint(path) as checkpoint:
        run_a = checkpoint.mark_running(KEY, "20261126_104512_9f1c2ab0")
        run_b = checkpoint.mark_running(KEY, "20261126_104513_0a1b2c3d")  # /new
        assert run_a != run_b
        assert checkpoint.mark_completed(KEY, run_a) is False  # A's late finally
        assert checkpoint.get_active_sessions()[KEY]["session_id"] == "20261126_104513_0a1b2c3d"
        assert checkpoint.mark_completed(KEY, run_b) is True
        assert checkpoint.get_active_sessions() == {}
        # A token of another store owns nothing here.
        checkpoint.mark_running(KEY, "s3")
        assert checkpoint.mark_completed(KEY, "3f2a9c1e-uuid-of-the-old-store") is False
        assert KEY in checkpoint.get_active_sessions()


def test_a_gateway_generation_that_restarts_at_1_is_refused_not_lost(tmp_path):
    """2. After a restart, ``mark_running(key, sid, 1)`` returned "stale-start" and the run was
    not recorded: the next crash reported nothing for it. Now it raises, writing nothing."""
    d = str(tmp_path / "log")
    with inflight.open(d) as log:
        for generation in (1, 2, 3):
            log.mark_running(KEY, "s", generation)
        log.mark_completed(KEY, 3)
    with inflight.open(d) as log:
        with pytest.raises(inflight.StaleGenerationError) as e:
            log.mark_running(KEY, "20261126_2", 1)  # the gateway's counter began again
        assert (e.value.key, e.value.generation, e.value.high_water) == (KEY, 1, 3)
        assert isinstance(e.value, inflight.InvalidInputError) and "begin_run" in str(e.value)
        assert log.counters()["stale_starts"] == 0
        assert log.begin_run(KEY, "20261126_2").generation == 4  # what the error says to do


def test_a_second_checkpoint_in_the_same_process_takes_the_log_over(path):
    """3. A second ``SessionCrashCheckpoint`` on the same path in the same process failed with
    ``LockedError`` naming its own pid. It takes the log over, as a crash would leave it."""
    first = SessionCrashCheckpoint(path)
    first.mark_running(KEY, "s1")
    with pytest.warns(RuntimeWarning, match="abandoned"):
        second = SessionCrashCheckpoint(path)
    active = second.get_active_sessions()
    assert active[KEY]["session_id"] == "s1" and active[KEY]["reason"] == "crash"
    with pytest.raises(inflight.ClosedError):
        first.mark_running(KEY, "s2")
    second.close()
    # A process that really holds the log is still refused.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = SessionCrashCheckpoint(path)  # the second was closed: no takeover, no warning
    third.close()


def test_a_corrupted_json_checkpoint_is_a_typed_error_naming_the_file(path):
    """4. A corrupted old JSON file raised a bare ``json.JSONDecodeError`` naming no file."""
    with open(path, "w") as f:
        f.write('{"agent:main:telegram:dm:4242": {"session_id": "s1", "started_at": 1764150000.5')
    with pytest.raises(inflight.CheckpointFileError) as e:
        SessionCrashCheckpoint(path)
    assert e.value.path == path and e.value.line == 1 and e.value.column > 1
    assert path in str(e.value) and "move it aside" in str(e.value)
    assert isinstance(e.value, inflight.InflightError)
    assert not os.path.exists(log_dir_for(path)), "nothing was imported"
    with open(path, "wb") as f:
        f.write(b'{"agent:main:telegram:dm:4242": "\xff"}')
    with pytest.raises(inflight.CheckpointFileError, match="UTF-8"):
        SessionCrashCheckpoint(path)


def test_started_at_is_never_earlier_than_the_clock_before_the_call(path):
    """5. ``started_at`` was rounded down to the millisecond, so it could be earlier than
    ``time.time()`` read before the call."""
    with SessionCrashCheckpoint(path) as checkpoint:
        for i in range(300):
            before = time.time()
            checkpoint.mark_running(f"agent:main:http:c-{i}", "s")
            after = time.time()
            started_at = checkpoint.get_active_sessions()[f"agent:main:http:c-{i}"]["started_at"]
            assert before <= started_at <= after + 0.001, (before, started_at, after)


CONTENDER = textwrap.dedent(
    """
    import json, sys, time
    import inflight
    from inflight.checkpoint import SessionCrashCheckpoint
    path, go = sys.argv[1], float(sys.argv[2])
    while time.time() < go:
        pass
    try:
        checkpoint = SessionCrashCheckpoint(path)
    except inflight.LockedError as e:
        print(json.dumps({"locked": e.holder_pid}))
    except Exception as e:
        print(json.dumps({"error": type(e).__name__ + ": " + str(e)}))
    else:
        print(json.dumps({"imported": checkpoint.imported, "running": len(checkpoint.get_active_sessions())}), flush=True)
        time.sleep(0.3)
        checkpoint.close()
    """
)


def test_two_gateways_starting_at_once_on_an_old_json_file(tmp_path, python_env):
    """6. Two gateways starting at once on an old JSON file went wrong in 6 of 6 trials (a
    ``StorageError`` on a rename, or on the import's lock). Exactly one imports; the other
    waits for that import and opens the log, or gets ``LockedError`` while the first holds it."""
    for trial in range(6):
        path = str(tmp_path / f"trial{trial}" / "agent_checkpoints.json")
        os.makedirs(os.path.dirname(path))
        runs = {f"agent:main:http:c-{i}": {"session_id": f"s{i}", "started_at": 1764150000.0 + i} for i in range(200)}
        with open(path, "w") as f:
            json.dump(runs, f)
        go = time.time() + 1.0
        children = [
            subprocess.Popen([sys.executable, "-c", CONTENDER, path, str(go)], stdout=subprocess.PIPE, env=python_env)
            for _ in range(2)
        ]
        outcomes = [json.loads(c.communicate(timeout=60)[0]) for c in children]
        assert not any("error" in o for o in outcomes), outcomes
        opened = [o for o in outcomes if "imported" in o]
        # One opened the log (the importer, or the other after waiting for the import); the
        # other opened it after the first closed it, or found it held: LockedError.
        assert len(opened) >= 1 and all(o["running"] == 200 for o in opened), outcomes
        assert sum(o["imported"] for o in opened) <= 200, outcomes
        assert all(set(o) in ({"imported", "running"}, {"locked"}) for o in outcomes), outcomes
        assert sorted(os.listdir(os.path.dirname(path))) == ["agent_checkpoints.inflight", "agent_checkpoints.json"]
        # Imported exactly once: the log holds each run's start once.
        counters = inflight.read_only(log_dir_for(path)).report.counters
        assert counters["started"] == 200, counters


@pytest.mark.parametrize("key", [None, "", 123, "k" * 1025])
def test_mark_completed_checks_its_key_as_mark_running_does(path, key):
    """7. ``mark_completed(None | "" | 123 | 1025-byte key)`` was a silent no-op where
    ``mark_running`` raises."""
    with SessionCrashCheckpoint(path) as checkpoint:
        with pytest.raises((TypeError, inflight.InvalidInputError)) as running:
            checkpoint.mark_running(key, "s")
        with pytest.raises(type(running.value)):
            checkpoint.mark_completed(key)
        with pytest.raises(type(running.value)):
            checkpoint.mark_completed(key, "inflight-1-00000000")


@pytest.mark.parametrize(
    "last_active, window, message",
    [
        (time.time() * 1000, 120, "milliseconds"),  # milliseconds given as seconds
        (time.time() + 10 * 86400, 120, "more than a day"),  # far in the future
        (math.nan, 120, "finite"),
        (-1.0, 120, "at least 0"),
        (time.time(), math.inf, "finite"),
        (time.time(), -5, "at least 0"),
    ],
    ids=["milliseconds", "far-future", "nan", "negative", "infinite-window", "negative-window"],
)
def test_suspend_recently_active_checks_its_times(path, last_active, window, message):
    """7. ``suspend_recently_active`` took milliseconds passed as seconds, and far-future
    times, silently."""
    with SessionCrashCheckpoint(path) as checkpoint:
        with pytest.raises(inflight.InvalidInputError, match=message):
            checkpoint.suspend_recently_active({KEY: last_active}, window_seconds=window)
    with SessionCrashCheckpoint(path) as checkpoint:
        with pytest.raises(TypeError):
            checkpoint.suspend_recently_active({KEY: "yesterday"})


def test_clear_and_many_completions_share_syncs(path):
    """8. With 10,000 runs recovered, ``clear()`` and the start-up completions ran at 400 per
    second, each completion a sync of its own after a scan of every run. They now share frames
    and syncs: 10,000 completions are a few dozen frames, one write and one sync each."""
    with SessionCrashCheckpoint(path) as checkpoint:
        assert checkpoint.log.mark_completed_many([]) == []

        def begin(t):
            for i in range(t, 10_000, 8):
                checkpoint.mark_running(f"agent:main:http:c-{i}", "s")

        threads = [threading.Thread(target=begin, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        checkpoint.abandon()
    checkpoint = SessionCrashCheckpoint(path)
    assert len(checkpoint.get_active_sessions()) == 10_000
    # A frame's sequence number is shared by every event in it: the difference counts frames.
    frames_before = inflight.read_only(checkpoint.log_dir).report.last_seq
    completed = checkpoint.mark_completed_many(f"agent:main:http:c-{i}" for i in range(5_000))
    assert completed == 5_000
    checkpoint.clear()
    assert checkpoint.get_active_sessions() == {}
    frames = inflight.read_only(checkpoint.log_dir).report.last_seq - frames_before
    # A frame holds up to 8 KiB of events: about 250 of these completions (~33 bytes each).
    assert frames <= 60, f"10,000 completions took {frames} frames"
    checkpoint.close()


def test_a_key_at_the_largest_generation_fails_instead_of_wrapping(tmp_path):
    """9. With marks at 2**64 - 1, ``begin_run`` allocated generation 0, acknowledged it, and
    the start was stale, so it was not running afterwards."""
    d = str(tmp_path / "log")
    with inflight.open(d) as log:
        log.mark_running(KEY, "s", 2**64 - 1)
        log.compact()
    with inflight.open(d) as log:
        with pytest.raises(inflight.InvalidInputError, match="no generation left") as e:
            log.begin_run(KEY, "s2")
        assert e.value.field == "generation" and e.value.key == KEY
        assert [r.generation for r in log.running()] == [2**64 - 1]
        with pytest.raises(inflight.InvalidInputError):
            log.mark_running(KEY, "s", 2**64)
