"""The GIL is released while an event is written and synced, so Python threads share syncs."""

import sys
import threading

import inflight


def test_other_threads_run_while_an_event_is_synced(log_dir):
    # With a switch interval of minutes, a thread gives up the GIL only where it releases it
    # itself: the ticker can advance during a call only if the call released the GIL.
    old = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        with inflight.open(log_dir) as log:
            ticks = 0
            done = threading.Event()

            def ticker():
                nonlocal ticks
                while not done.is_set():
                    ticks += 1
                    done.wait(0.0001)

            t = threading.Thread(target=ticker)
            t.start()
            during = 0
            for i in range(300):
                before = ticks
                log.begin_run(f"k{i % 8}", "s")
                during += ticks - before
            done.set()
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert during > 0


def test_sixteen_threads_lose_nothing_and_share_the_log(log_dir):
    with inflight.open(log_dir) as log:
        errors = []

        def worker(t):
            try:
                for i in range(50):
                    run = log.begin_run(f"agent:main:http:t{t}", "s", meta=str(i))
                    assert log.mark_completed(run.key, run.generation) == "completed"
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert log.counters()["completed"] == 800
        assert all(log.high_water(f"agent:main:http:t{t}") == 50 for t in range(16))
    counters = inflight.read_only(log_dir).report.counters
    assert counters["started"] == 800 and counters["completed"] == 800
