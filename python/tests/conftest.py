import os
import sys

import pytest

import inflight


# Tests of what only some platforms have; the rest of the suite runs everywhere.
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and resource limits")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's /proc")


@pytest.fixture
def log_dir(tmp_path):
    """A path for a new log (not created yet)."""
    return str(tmp_path / "inflight")


def events_in(path):
    """Every start and completion a read-only replay finds, by the fold's counters."""
    c = inflight.read_only(path).report.counters
    return c["started"] + c["stale_starts"] + c["completed"] + c["stale_completions"] + c["unknown_completions"]


@pytest.fixture
def python_env():
    """The environment for a child Python process that imports this package."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env
