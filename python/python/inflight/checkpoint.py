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

=========================================  ==================================================
``SessionCrashCheckpoint(path)``           opens the log (taking its lock); a path ending in
                                           ``.json`` becomes the directory ``NAME.inflight``
                                           beside it, and the first time, the runs of an
                                           existing JSON file are imported into it
``mark_running(key, session_id) -> token``  begins a run under the next generation, which
                                           the log allocates; durable on return. The token
                                           names this run
``mark_completed(key, token)``             completes that run only, so a late completion of
                                           an old run cannot clear a newer one (``True`` if
                                           it completed the run). Without a token: the key's
                                           run in flight, whichever it is, as the old class
                                           did: unsafe when a run's end can arrive late
``get_active_sessions()``                  ``{key: {"session_id", "started_at"}}`` as before,
                                           for the runs in flight, plus ``token``,
                                           ``generation``, ``reason`` (``crash`` or
                                           ``shutdown``), ``recoveries``, ``crash_loop``,
                                           ``meta``
``clear()``                                completes every run in flight, durably, in a few
                                           shared syncs (the old one deleted the file)
=========================================  ==================================================

>>> import tempfile, os
>>> from inflight.checkpoint import SessionCrashCheckpoint
>>> path = os.path.join(tempfile.mkdtemp(), "agent_checkpoints.json")
>>> checkpoint = SessionCrashCheckpoint(path)
>>> token = checkpoint.mark_running("agent:main:telegram:dm:4242", "20261126_104512_9f1c2ab0")
>>> checkpoint.abandon()                                    # the process dies here
>>> checkpoint = SessionCrashCheckpoint(path)
>>> active = checkpoint.get_active_sessions()
>>> active["agent:main:telegram:dm:4242"]["session_id"], active["agent:main:telegram:dm:4242"]["reason"]
('20261126_104512_9f1c2ab0', 'crash')
>>> checkpoint.mark_completed("agent:main:telegram:dm:4242", token)
True
>>> checkpoint.get_active_sessions()
{}
>>> checkpoint.close()
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from . import _inflight, _owners
from ._inflight import Log, RecoveryReport
from .errors import CheckpointFileError, InvalidInputError, LockedError

PathLike = Union[str, "os.PathLike[str]"]

#: The old sweep's window: sessions active within it were suspended after a crash.
WINDOW_SECONDS_DEFAULT = 120.0

#: How far after now a session's last activity may be (clocks drift); later is a mistake,
#: most often milliseconds given as seconds.
FUTURE_SECONDS_MAX = 24 * 3600.0

#: How long a checkpoint waits for another process's import of the same JSON file to finish.
IMPORT_WAIT_SECONDS = 30.0


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

    Of two gateways started at once on an old JSON file, one imports it and the other waits
    for that import, then opens the log (and gets ``LockedError`` while the first holds it).
    A second checkpoint on the same path in this process takes the log over from the first,
    as a restart would, with a ``RuntimeWarning``. A JSON file that cannot be read raises
    ``CheckpointFileError`` naming it; it is never read as "nothing in flight".
    """

    def __init__(self, path: PathLike, **options: Any) -> None:
        self.path = os.fspath(path)
        self.log_dir = log_dir_for(path)
        self.imported = 0
        if self.log_dir != self.path and os.path.isfile(self.path):
            self.imported = _import_once(self.path, self.log_dir)
        self.log: Log = _owners.open_owned(self, self.log_dir, options)

    @property
    def report(self) -> RecoveryReport:
        """What the log's recovery found when the checkpoint was opened."""
        return self.log.report

    @property
    def closed(self) -> bool:
        return self.log.closed

    def mark_running(self, session_key: str, session_id: str, meta: Optional[str] = None) -> str:
        """Records that an agent run started on ``session_key``; returns its token once it is
        durable. ``meta`` (optional, at most 4096 bytes) comes back in
        ``get_active_sessions()`` after a crash."""
        return str(self.log.begin_run(session_key, session_id, meta).token)

    def mark_completed(self, session_key: str, token: Optional[str] = None) -> bool:
        """Records that the run of ``token`` on ``session_key`` completed; returns once it is
        durable: ``True`` if it completed that run, ``False`` if a newer run owns the key or
        none runs (nothing changes then).

        Without a token it completes the key's run in flight, whichever it is (the old class's
        meaning): a late call from an old run then clears a newer one. Pass the token
        ``mark_running`` returned wherever a run's end can arrive late (an asynchronous
        unwind, after ``/stop``, after a newer run began)."""
        key = _inflight.check_key(session_key)
        if token is None:
            run = self.log.in_flight(key)
            if run is None:
                return False
            return self.log.mark_completed(key, run.generation) == "completed"
        return self.log.complete_token(key, token) == "completed"

    def mark_completed_many(self, session_keys: Iterable[str]) -> int:
        """Completes the run in flight of each key, in a few shared syncs (a start-up that
        completes thousands of runs); returns how many it completed."""
        pairs = []
        for key in session_keys:
            run = self.log.in_flight(_inflight.check_key(key))
            if run is not None:
                pairs.append((run.key, run.generation))
        return sum(1 for r in self.log.mark_completed_many(pairs) if r == "completed")

    def get_active_sessions(self) -> Dict[str, Dict[str, Any]]:
        """The runs in flight, as the old file held them: ``{key: {"session_id": str,
        "started_at": float seconds}}``, with ``token``, ``generation``, ``reason``,
        ``recoveries``, ``crash_loop`` and ``meta`` added. Right after opening, these are the
        runs the crash (or a shutdown whose drain timed out) interrupted."""
        return {
            r.key: {
                "session_id": r.session_id,
                "started_at": r.started_at,
                "token": r.token,
                "generation": r.generation,
                "state": r.state,
                "reason": r.reason,
                "recoveries": r.recoveries,
                "stops": r.stops,
                "crash_loop": r.crash_loop,
                "stop_loop": r.stop_loop,
                "meta": r.meta,
            }
            for r in self.log.running()
        }

    def clear(self) -> None:
        """Completes every run in flight, durably, in a few shared syncs (the old class deleted
        its file)."""
        self.log.mark_completed_many([(r.key, r.generation) for r in self.log.running()])

    def suspend_recently_active(
        self,
        sessions: Union[Mapping[str, float], Iterable[Tuple[str, float]]],
        window_seconds: float = WINDOW_SECONDS_DEFAULT,
        now: Optional[float] = None,
    ) -> Dict[str, str]:
        """The old sweep, made precise: of the gateway's sessions (key to last activity, in
        seconds since the epoch), the ones to treat as interrupted, each with its reason:
        ``log`` and ``crash-loop`` are the log's exact answer; ``before-coverage``, ``gap``
        and ``no-log`` are guesses, only where the log cannot speak for the key.

        Every time is checked: a finite number of seconds, not negative, and not more than a
        day after ``now`` (a later one is most often milliseconds given as seconds); else
        ``InvalidInputError`` naming the key."""
        now_s = time.time() if now is None else _seconds("now", now, None)
        window_s = _seconds("window_seconds", window_seconds, None)
        items = sessions.items() if isinstance(sessions, Mapping) else sessions
        in_ms: List[Tuple[str, float]] = []
        for key, last_active in items:
            key = _inflight.check_key(key)
            seconds = _seconds("last_active", last_active, key)
            if seconds > now_s + FUTURE_SECONDS_MAX:
                raise _invalid(
                    "last_active",
                    f"is {seconds!r} s, more than a day after now ({now_s:.0f} s); give seconds "
                    f"since the Unix epoch, as time.time() does, not milliseconds",
                    key,
                )
            in_ms.append((key, seconds * 1000.0))
        flagged = self.log.fallback(in_ms, window_ms=int(window_s * 1000), now_ms=now_s * 1000.0)
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


def _invalid(field: str, reason: str, key: Optional[str]) -> InvalidInputError:
    e = InvalidInputError(f"invalid input: {field} {reason}" + (f" (key {key!r})" if key else ""))
    e.field, e.reason, e.key = field, reason, key
    return e


def _seconds(field: str, value: Any, key: Optional[str]) -> float:
    """A time or a duration in seconds: a finite, non-negative int or float (the crate's check)."""
    return float(_inflight.check_seconds(field, value, key))


def _holds_log(log_dir: str) -> bool:
    return os.path.isdir(log_dir) and bool(os.listdir(log_dir))


def _import_once(path: str, log_dir: str) -> int:
    """Brings the old file's runs into a new log at ``log_dir``, all or nothing, unless the log
    is there already; waits while another process imports it."""
    if _holds_log(log_dir):
        return 0
    runs = _read_checkpoint(path)
    deadline = time.monotonic() + IMPORT_WAIT_SECONDS
    while True:
        try:
            return _inflight.import_runs(log_dir, runs)
        except LockedError:
            # Another gateway is importing the same file: wait for its log.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
        except InvalidInputError:
            if _holds_log(log_dir):
                return 0  # that other import finished first
            raise


def _read_checkpoint(path: str) -> List[_inflight.Run]:
    """The old file's runs (the crate's one reader of the format), or ``CheckpointFileError``
    saying where and what is wrong."""
    return list(_inflight.read_checkpoint(path))


__all__ = ["SessionCrashCheckpoint", "log_dir_for", "WINDOW_SECONDS_DEFAULT"]
