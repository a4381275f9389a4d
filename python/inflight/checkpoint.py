"""``SessionCrashCheckpoint``: the old JSON checkpoint's class, backed by the log.

The design ``inflight`` replaces kept the in-flight runs in one JSON file,
``{"KEY": {"session_id": "S", "started_at": SECONDS}, ...}``, rewritten with fsync on every
start and completion, through a class with four methods. This one has the same name, the
same methods and the same shapes, so a gateway swaps the file for the log by changing an
import::

    # before
    from gateway.checkpoint import SessionCrashCheckpoint
    # after
    from inflight.checkpoint import SessionCrashCheckpoint

What each method does now:

=====================================  ==================================================
``SessionCrashCheckpoint(path)``       opens the log (taking its lock); a path ending in
                                       ``.json`` becomes the directory ``NAME.inflight``
                                       beside it, and the first time, the runs of an
                                       existing JSON file are imported into it
``mark_running(key, session_id)``      begins a run under the next generation, which the
                                       log allocates and the checkpoint remembers for the
                                       key; durable on return
``mark_completed(key)``                completes the key's run of that generation (a late
                                       call for an older run can no longer clear a newer
                                       one); a key with no run is a no-op, as before
``get_active_sessions()``              ``{key: {"session_id", "started_at"}}`` as before,
                                       for the runs in flight, plus ``generation``,
                                       ``reason`` (``crash`` or ``shutdown``),
                                       ``recoveries``, ``crash_loop`` and ``meta``
``clear()``                            completes every run in flight (the old one deleted
                                       the file): call it where the old code did, once
                                       start-up has dealt with the active sessions
=====================================  ==================================================

>>> import tempfile, os
>>> from inflight.checkpoint import SessionCrashCheckpoint
>>> path = os.path.join(tempfile.mkdtemp(), "agent_checkpoints.json")
>>> checkpoint = SessionCrashCheckpoint(path)
>>> checkpoint.mark_running("agent:main:telegram:dm:4242", "20261126_104512_9f1c2ab0")
>>> checkpoint.abandon()                                    # the process dies here
>>> checkpoint = SessionCrashCheckpoint(path)
>>> active = checkpoint.get_active_sessions()
>>> active["agent:main:telegram:dm:4242"]["session_id"], active["agent:main:telegram:dm:4242"]["reason"]
('20261126_104512_9f1c2ab0', 'crash')
>>> checkpoint.clear()
>>> checkpoint.get_active_sessions()
{}
>>> checkpoint.close()
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

from . import _inflight
from ._inflight import Log, RecoveryReport

PathLike = Union[str, "os.PathLike[str]"]

#: The old sweep's window: sessions active within it were suspended after a crash.
WINDOW_SECONDS_DEFAULT = 120.0


def log_dir_for(path: PathLike) -> str:
    """The log directory the checkpoint at ``path`` uses: ``NAME.inflight`` for ``NAME.json``,
    the path itself otherwise."""
    path = os.fspath(path)
    root, ext = os.path.splitext(path)
    return root + ".inflight" if ext == ".json" else path


class SessionCrashCheckpoint:
    """The old checkpoint's interface over an ``inflight`` log. Thread-safe: threads of one
    gateway may call it at once, and share the log's syncs.

    ``path`` is the old JSON file's path (or a log directory). Keyword arguments go to
    :func:`inflight.open` (``strict``, ``crash_loop_threshold``, ...).
    """

    def __init__(self, path: PathLike, **options: Any) -> None:
        self.path = os.fspath(path)
        self.log_dir = log_dir_for(path)
        self.imported = 0
        if self.log_dir != self.path and os.path.isfile(self.path) and not os.path.exists(self.log_dir):
            self.imported = _import_json(self.path, self.log_dir)
        self.log: Log = _inflight.open(self.log_dir, **options)
        self._generations: Dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def report(self) -> RecoveryReport:
        """What the log's recovery found when the checkpoint was opened."""
        return self.log.report

    def mark_running(self, session_key: str, session_id: str, meta: Optional[str] = None) -> None:
        """Records that an agent run started on ``session_key``; returns once it is durable.
        ``meta`` (optional, at most 4096 bytes) comes back in ``get_active_sessions()`` after
        a crash."""
        run = self.log.begin_run(session_key, session_id, meta)
        with self._lock:
            if run.generation > self._generations.get(session_key, 0):
                self._generations[session_key] = run.generation

    def mark_completed(self, session_key: str) -> None:
        """Records that the run on ``session_key`` completed; returns once it is durable.
        Completes the generation this checkpoint began for the key (or, for a run begun before
        the restart, the one in flight); a key with no run is a no-op."""
        with self._lock:
            generation = self._generations.pop(session_key, None)
        if generation is None:
            generation = next((r.generation for r in self.log.running() if r.key == session_key), None)
            if generation is None:
                return
        self.log.mark_completed(session_key, generation)

    def get_active_sessions(self) -> Dict[str, Dict[str, Any]]:
        """The runs in flight, as the old file held them: ``{key: {"session_id": str,
        "started_at": float seconds}}``, with ``generation``, ``reason``, ``recoveries``,
        ``crash_loop`` and ``meta`` added. Right after opening, these are the runs the crash
        (or a shutdown whose drain timed out) interrupted."""
        return {
            r.key: {
                "session_id": r.session_id,
                "started_at": r.started_at,
                "generation": r.generation,
                "reason": r.reason,
                "recoveries": r.recoveries,
                "crash_loop": r.crash_loop,
                "meta": r.meta,
            }
            for r in self.log.running()
        }

    def clear(self) -> None:
        """Completes every run in flight, durably (the old class deleted its file)."""
        for r in self.log.running():
            self.log.mark_completed(r.key, r.generation)
        with self._lock:
            self._generations.clear()

    def suspend_recently_active(
        self,
        sessions: Union[Mapping[str, float], Iterable[Tuple[str, float]]],
        window_seconds: float = WINDOW_SECONDS_DEFAULT,
        now: Optional[float] = None,
    ) -> Dict[str, str]:
        """The old sweep, made precise: of the gateway's sessions (key to last activity, in
        seconds since the epoch), the ones to treat as interrupted, each with its reason:
        ``log`` and ``crash-loop`` are the log's exact answer; ``before-coverage``, ``gap``
        and ``no-log`` are guesses, only where the log cannot speak for the key."""
        items = sessions.items() if isinstance(sessions, Mapping) else sessions
        in_ms = [(key, float(t) * 1000.0) for key, t in items]
        now_ms = (time.time() if now is None else now) * 1000.0
        flagged = self.log.fallback(in_ms, window_ms=int(window_seconds * 1000), now_ms=now_ms)
        return {f.key: f.reason for f in flagged}

    def close(self) -> None:
        """Records a clean shutdown and releases the log."""
        self.log.close()

    def abandon(self) -> None:
        """Releases the log without a shutdown record, as a crash would (for tests)."""
        self.log.abandon()

    def __enter__(self) -> "SessionCrashCheckpoint":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.log.__exit__(exc_type, exc, tb)


def _import_json(path: str, log_dir: str) -> int:
    """Brings the old file's runs into a new log at ``log_dir``, all or nothing."""
    with open(path, "rb") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise _inflight_invalid(f"{path}: the checkpoint is not a JSON object")
    runs = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("session_id"), str):
            raise _inflight_invalid(f"{path}: the entry of {key!r} has no session_id string")
        started_at = entry.get("started_at")
        if isinstance(started_at, bool) or not isinstance(started_at, (int, float)):
            raise _inflight_invalid(f"{path}: the entry of {key!r} has no numeric started_at")
        ms = _inflight.started_at_ms_from_secs(key, float(started_at))
        runs.append(_inflight.Run(key, entry["session_id"], 1, ms))
    return _inflight.import_runs(log_dir, runs)


def _inflight_invalid(message: str) -> Exception:
    from .errors import InvalidInputError

    e = InvalidInputError(message)
    e.field, e.reason, e.key = "checkpoint", message, None
    return e

__all__ = ["SessionCrashCheckpoint", "log_dir_for", "WINDOW_SECONDS_DEFAULT"]
