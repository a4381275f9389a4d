"""A failed write poisons the handle: the failing call raises StorageError, every later call
PoisonedError, and a reopen recovers exactly what reached the disk."""

import subprocess
import sys

import inflight
from conftest import posix_only

pytestmark = posix_only

CHILD = r"""
import resource, signal, sys, inflight

log = inflight.open(sys.argv[1], segment_bytes_max=12288)
acked = 0
# From here on no write may reach past byte 4096 of a file: the appends into the segment's
# reserved space fail there, as on a failing disk.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    for i in range(1000):
        log.begin_run(f"k{i}", "s")
        acked += 1
except inflight.StorageError as e:
    print("storage", e.kind, e.op, isinstance(e, OSError))
try:
    log.begin_run("after", "s")
except inflight.PoisonedError as e:
    print("poisoned", e.kind, "reopen" in str(e))
print("acked", acked)
"""


def test_a_failed_write_poisons_the_handle_until_the_log_is_reopened(log_dir, python_env):
    out = subprocess.run([sys.executable, "-c", CHILD, log_dir], capture_output=True, text=True,
                         env=python_env, timeout=120)
    assert out.returncode == 0, out.stderr
    storage, poisoned, acked = out.stdout.splitlines()
    assert storage.split()[0] == "storage" and storage.endswith("True"), storage
    assert poisoned.split()[0] == "poisoned" and poisoned.endswith("True"), poisoned
    acked_count = int(acked.split()[1])
    assert 0 < acked_count < 1000
    # Every acknowledged start is there after a reopen; the failed one may or may not be.
    with inflight.open(log_dir) as log:
        keys = {r.key for r in log.report.running}
        assert {f"k{i}" for i in range(acked_count)} <= keys
        assert keys <= {f"k{i}" for i in range(acked_count + 1)}
