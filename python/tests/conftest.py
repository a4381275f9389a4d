import os

import pytest

import inflight


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
