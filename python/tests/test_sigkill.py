"""A Python process killed with SIGKILL mid-flight: every run it had acknowledged comes back.

The child begins runs as fast as it can from several threads (each on keys of its own, and
completes every third one), and writes one line per call: ``submit ...`` before the call and
``ack ...`` after it returned. The parent kills it at a random instant, then opens the log
through the binding and checks its recovery report against the lines:

- every acknowledged start whose completion was never submitted is in the report, exactly
  (key, session id, generation, meta), with reason ``crash``;
- no key whose completion was acknowledged is in the report;
- every run in the report was submitted (nothing invented).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import inflight
from conftest import posix_only

pytestmark = posix_only

CHILD = r"""
import json, os, sys, threading, inflight

log = inflight.open(sys.argv[1])
round_no = sys.argv[2]

def say(line):
    os.write(1, (json.dumps(line) + "\n").encode())  # one write: a whole line even at a kill

def worker(t):
    i = 0
    while True:
        key = f"r{round_no}:t{t}:{i}"
        meta = json.dumps({"resume_from": f"m-{i}"})
        say({"submit": "start", "key": key})
        run = log.begin_run(key, f"session-{t}", meta)
        say({"ack": "start", "key": key, "generation": run.generation, "session_id": run.session_id, "meta": run.meta})
        if i % 3 == 0:
            say({"submit": "complete", "key": key})
            log.mark_completed(key, run.generation)
            say({"ack": "complete", "key": key})
        i += 1

for t in range(4):
    threading.Thread(target=worker, args=(t,), daemon=True).start()
say({"ready": True})
threading.Event().wait()
"""


def run_and_kill(log_dir, round_no, after_s, env):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, log_dir, str(round_no)], stdout=subprocess.PIPE, env=env
    )
    first = child.stdout.readline()
    assert first, "the child died before it began"
    time.sleep(after_s)
    child.send_signal(signal.SIGKILL)
    rest = child.stdout.read()
    assert child.wait() == -signal.SIGKILL
    return [json.loads(line) for line in (first + rest).decode().splitlines()]


def test_every_acknowledged_run_survives_sigkill(log_dir, python_env):
    rng = random.Random(0x5EED)
    acked_runs, completed_submitted, completed_acked, submitted = {}, set(), set(), set()
    total_acks = 0
    for round_no in range(4):
        lines = run_and_kill(log_dir, round_no, rng.uniform(0.2, 1.2), python_env)
        for line in lines:
            if line.get("submit") == "start":
                submitted.add(line["key"])
            elif line.get("submit") == "complete":
                completed_submitted.add(line["key"])
            elif line.get("ack") == "start":
                acked_runs[line["key"]] = line
                total_acks += 1
            elif line.get("ack") == "complete":
                completed_acked.add(line["key"])
                total_acks += 1
        with inflight.open(log_dir) as log:
            report = log.report
            running = {r.key: r for r in report.running}
            assert report.corruption == [], "a kill must leave at most a torn tail"
        for key, ack in acked_runs.items():
            if key in completed_submitted:
                continue
            assert key in running, f"round {round_no}: acknowledged {key} is not in the report"
            r = running[key]
            assert (r.generation, r.session_id, r.meta) == (ack["generation"], ack["session_id"], ack["meta"])
            assert r.reason == "crash"
        for key in completed_acked:
            assert key not in running, f"round {round_no}: {key} completed, yet reported in flight"
        for key in running:
            assert key in submitted, f"round {round_no}: {key} was never submitted"
        # Each round's reopen resolved what it found: complete them so the next round starts clean.
        with inflight.open(log_dir) as log:
            for r in log.report.running:
                log.mark_completed(r.key, r.generation)
                completed_submitted.add(r.key)
    assert total_acks > 100, f"only {total_acks} acknowledgements: the child barely ran"
