"""Fleets from Python: an instance's log in PostgreSQL, a takeover, a fenced zombie.

Needs a server: INFLIGHT_PG_URL (``scripts/pg-cluster start DIR`` prints one). Without it
these tests are skipped, unless INFLIGHT_PG_REQUIRED is set (as CI sets it).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

import inflight

URL = os.environ.get("INFLIGHT_PG_URL")
if not URL:
    if os.environ.get("INFLIGHT_PG_REQUIRED"):
        raise RuntimeError("INFLIGHT_PG_REQUIRED is set but INFLIGHT_PG_URL is not")
    pytest.skip("set INFLIGHT_PG_URL to run the fleet tests", allow_module_level=True)


def instance(name):
    return f"py-{name}-{os.getpid()}-{time.time_ns()}"


@pytest.fixture(scope="module", autouse=True)
def schema():
    inflight.create_schema(URL)


CHILD = """
import sys, time, inflight
log = inflight.open_database(sys.argv[1], sys.argv[2])
a = log.begin_run("agent:main:telegram:dm:1", "s1", meta='{"resume_from":"m-1"}')
b = log.begin_run("agent:main:http:c-2", "s2")
c = log.begin_run("agent:main:http:c-3", "s3")
log.mark_completed(c.key, c.generation)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_killed_instance_is_taken_over_with_exactly_its_runs(python_env):
    a = instance("killed")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, URL, a], stdout=subprocess.PIPE, text=True, env=python_env
    )
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    taken = inflight.take_over(URL, a, "py-survivor", create_taker=True)
    assert taken.by == "py-survivor" and taken.taken_before is None
    running = {r.key: r for r in taken.report.running}
    assert sorted(running) == ["agent:main:http:c-2", "agent:main:telegram:dm:1"]
    assert running["agent:main:telegram:dm:1"].meta == '{"resume_from":"m-1"}'
    assert all(r.reason == "crash" and r.recoveries == 1 for r in running.values())
    # The survivor records them in its own log before resuming them.
    with inflight.open_database(URL, instance("survivor")) as mine:
        for r in taken.report.running:
            mine.begin_run(r.key, r.session_id, meta=r.meta)
        assert len(mine.running()) == 2
    # The fallback over the dead instance's log: the log speaks for its keys.
    now = int(time.time() * 1000)
    flagged = taken.fallback([("agent:main:http:c-2", now), ("agent:main:http:c-3", now)], 60_000, now)
    # Both runs it had in flight are the log's answer; c-3 completed: not flagged.
    assert [(f.key, f.reason) for f in flagged] == [
        ("agent:main:http:c-2", "log"),
        ("agent:main:telegram:dm:1", "log"),
    ]


def test_a_zombie_raises_fenced_error_every_time():
    a = instance("zombie")
    log = inflight.open_database(URL, a)
    log.begin_run("agent:main:http:c-1", "s1")
    taken = inflight.take_over(URL, a, "py-b", create_taker=True)
    assert taken.was_open
    with pytest.raises(inflight.AlreadyTakenOverError) as e:
        inflight.take_over(URL, a, "py-c", create_taker=True)
    assert e.value.by == "py-b"
    assert inflight.take_over(URL, a, "py-b", create_taker=True).taken_before == "py-b"
    for _ in range(3):
        with pytest.raises(inflight.FencedError) as e:
            log.begin_run("agent:main:http:c-2", "s2")
        assert e.value.by == "py-b" and e.value.instance == a and e.value.epoch == taken.epoch
    log.abandon()
    with pytest.raises(inflight.FencedError):
        inflight.open_database(URL, a)
    seen = inflight.read_only_database(URL, a).report.running
    assert [r.key for r in seen] == ["agent:main:http:c-1"]


def test_database_errors_are_typed():
    with pytest.raises(inflight.NoInstanceError) as e:
        inflight.take_over(URL, instance("nobody"), "py-b", create_taker=True)
    assert "no log of instance" in str(e.value)
    with pytest.raises(inflight.InvalidInputError) as e:
        inflight.open_database(URL, "a b")
    assert e.value.field == "instance"
    with pytest.raises(inflight.InvalidInputError):
        inflight.open_database("postgres://[nope", "a")
    nowhere = URL.rsplit("/", 1)[0] + "/inflight_no_such_database"
    with pytest.raises(inflight.DatabaseError) as e:
        inflight.open_database(nowhere, "a")
    assert "inflight_no_such_database" in e.value.cause


def test_a_run_that_kills_one_instance_after_another_is_a_loop_across_the_fleet():
    key = "agent:main:telegram:dm:poison"
    names = [instance(f"chain{i}") for i in range(4)]
    log = inflight.open_database(URL, names[0])
    log.begin_run(key, "s1", meta='{"resume_from":"m-1"}')
    log.abandon()  # the run brings the instance down
    counts = []
    for dead, survivor in zip(names, names[1:]):
        log = inflight.open_database(URL, survivor)
        taken = inflight.take_over(URL, dead, survivor)
        (run,) = [r for r in taken.report.running if r.key == key]
        counts.append(run.recoveries)
        if run.crash_loop:
            log.close()
            break  # suspended rather than resumed again
        adopted = log.adopt(run)  # into the survivor's own log, as it was there
        assert adopted.meta == run.meta and log.in_flight(key).recoveries == run.recoveries
        log.begin_run(key, adopted.session_id, adopted.meta)  # resumed: and it dies too
        log.abandon()
    assert counts == [1, 2, 3]


def test_an_unknown_taker_is_refused_and_nothing_is_fenced():
    dead = instance("dead")
    log = inflight.open_database(URL, dead)
    log.begin_run("k", "s")
    log.abandon()
    with pytest.raises(inflight.UnknownTakerError) as e:
        inflight.take_over(URL, dead, instance("typo"))
    assert isinstance(e.value, inflight.DatabaseError) and e.value.by.startswith("py-typo")
    survivor = instance("survivor")
    taken = inflight.take_over(URL, dead, survivor, create_taker=True)
    assert taken.taken_before is None and [r.key for r in taken.report.running] == ["k"]
