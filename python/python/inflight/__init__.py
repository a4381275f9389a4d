"""Exact crash recovery of a gateway's in-flight agent runs.

A gateway records each agent run's start and completion; each call returns once its event is
a synced, CRC-framed record in an append-only log. After a crash, opening the log reports
exactly which runs were in flight. This package wraps the Rust crate ``inflight``.

>>> import inflight, tempfile
>>> d = tempfile.mkdtemp()
>>> with inflight.open(d) as log:
...     print(len(log.report.running))                      # a new log: nothing in flight
...     run = log.begin_run("agent:main:telegram:dm:4242", "20261126_1", meta='{"resume_from":"m-9"}')
...     log.abandon()                                       # the process dies here
0
>>> with inflight.open(d) as log:
...     [(r.key, r.generation, r.reason, r.meta) for r in log.report.running]
[('agent:main:telegram:dm:4242', 1, 'crash', '{"resume_from":"m-9"}')]

- :func:`open` opens a log (a context manager); :attr:`Log.report` is what recovery found.
- :meth:`Log.begin_run`, :meth:`Log.mark_running`, :meth:`Log.mark_completed` record events;
  each returns once the event is durable, with the GIL released meanwhile, so Python threads
  share group commits.
- :func:`read_only` replays a log without its lock and without changing a byte.
- :meth:`Log.fallback`, :meth:`Recovered.fallback`, :func:`fallback_without_log`: the
  time-window fallback, only for what the log cannot speak for.
- :mod:`inflight.turns`: ``TurnMarkers`` and ``AsyncTurnMarkers``, a gateway store's turn
  markers (a token per turn, compare-and-swap clears) over the log.
- :mod:`inflight.checkpoint`: ``SessionCrashCheckpoint``, the old JSON checkpoint's shape.
- :mod:`inflight.aio`: awaitable calls for gateways on asyncio, on the crate's async front.
- :func:`open_database`, :func:`take_over`, :func:`read_only_database`,
  :func:`create_schema`: a fleet's logs in PostgreSQL, and the takeover of a dead instance's
  runs, fenced (``FencedError`` for the old owner from then on).
- :mod:`inflight.errors`: the exceptions (also importable from here).
"""

from __future__ import annotations

from ._inflight import (
    KEY_BYTES_MAX,
    META_BYTES_MAX,
    SESSION_ID_BYTES_MAX,
    WINDOW_MS_DEFAULT,
    Flagged,
    InterruptedRun,
    Log,
    RecoveryReport,
    Recovered,
    Run,
    TakenOver,
    fallback_without_log,
    check_key,
    create_schema,
    import_runs,
    open,
    open_database,
    read_only,
    read_only_database,
    started_at_ms_from_secs,
    take_over,
)
from .errors import (
    AlreadyTakenOverError,
    CheckpointFileError,
    ClosedError,
    CorruptError,
    DatabaseError,
    FencedError,
    InflightError,
    InvalidInputError,
    LockedError,
    NoInstanceError,
    NoSchemaError,
    NotFoundError,
    PoisonedError,
    StaleGenerationError,
    StorageError,
    UnknownTakerError,
    KeptChangingError,
    UnsupportedVersionError,
)
from . import _logs

_logs.start()

__all__ = [
    "KEY_BYTES_MAX",
    "META_BYTES_MAX",
    "SESSION_ID_BYTES_MAX",
    "WINDOW_MS_DEFAULT",
    "Flagged",
    "InterruptedRun",
    "Log",
    "RecoveryReport",
    "Recovered",
    "Run",
    "TakenOver",
    "create_schema",
    "open_database",
    "read_only_database",
    "take_over",
    "fallback_without_log",
    "check_key",
    "import_runs",
    "open",
    "read_only",
    "started_at_ms_from_secs",
    "InflightError",
    "LockedError",
    "CorruptError",
    "UnsupportedVersionError",
    "InvalidInputError",
    "StaleGenerationError",
    "CheckpointFileError",
    "StorageError",
    "PoisonedError",
    "ClosedError",
    "NotFoundError",
    "FencedError",
    "AlreadyTakenOverError",
    "DatabaseError",
    "NoSchemaError",
    "NoInstanceError",
    "UnknownTakerError",
    "KeptChangingError",
]
