"""One process owns a log: a second one gets LockedError naming the holder."""

import os
import subprocess
import sys

import inflight

CHILD = """
import sys, inflight
try:
    inflight.open(sys.argv[1])
except inflight.LockedError as e:
    print("locked", e.holder_pid, e.path == sys.argv[1], str(e))
    running = inflight.read_only(sys.argv[1]).report.running
    print("read", [r.key for r in running])
else:
    print("opened")
"""


def test_a_second_process_gets_locked_error_naming_the_holder(log_dir, python_env):
    with inflight.open(log_dir) as log:
        log.begin_run("agent:main:http:c-5", "s")
        out = subprocess.run(
            [sys.executable, "-c", CHILD, log_dir], capture_output=True, text=True, env=python_env, timeout=60
        )
        assert out.returncode == 0, out.stderr
        locked, read = out.stdout.splitlines()
        words = locked.split()
        assert words[:3] == ["locked", str(os.getpid()), "True"]
        assert f"process {os.getpid()}" in locked
        assert read == "read ['agent:main:http:c-5']"
    # Released at close: the next process opens it.
    out = subprocess.run([sys.executable, "-c", CHILD, log_dir], capture_output=True, text=True, env=python_env, timeout=60)
    assert out.stdout.strip() == "opened", out.stderr


def test_a_second_handle_in_the_same_process_is_locked_out_too(log_dir):
    with inflight.open(log_dir):
        try:
            inflight.open(log_dir)
        except inflight.LockedError as e:
            assert e.path == log_dir
        else:
            raise AssertionError("a second handle opened a locked log")
