"""Turn markers over the log: the four calls of a gateway's session store, made exact.

A gateway of this kind marks each running turn in its session store with an opaque token,
clears the marker with a compare-and-swap when the turn ends (so a stale asynchronous unwind
cannot clear a newer turn), and at start-up promotes the markers a crash left behind to
"resume pending". :class:`TurnMarkers` has exactly those calls, with the same names,
arguments and return types, and keeps the markers in the log instead of rewriting a JSON
file per marker:

=============================================  ===============================================
``mark_turn_active(session_key) -> token``     begins a run under a generation the log
                                               allocates (monotonic per key, across
                                               restarts); the token carries it. Durable on
                                               return; ``None`` if the log could not record it
``clear_turn_active(session_key, token)``      completes that run only: ``True`` if the token
                                               still owned the key, ``False`` if a newer turn
                                               owns it (or none does)
``recover_interrupted_turns(max_age_seconds)``  at start-up: the turns the log knows a crash
                                               interrupted become resume pending (see
                                               :meth:`TurnMarkers.resume_pending`), except
                                               crash loops, which are suspended; older ones,
                                               and a clean shutdown's leftovers, are cleared.
                                               Returns how many were promoted
``discard_active_turn_markers()``              after a clean shutdown: clears what is left
=============================================  ===============================================

Start-up is exact where the store's own version guesses: the log says whether the last exit
was clean (``report.clean_shutdown``) and which turns were in flight, and it counts how many
restarts in a row found each one interrupted, SIGKILLs included, so a turn that crashes the
process every time it is resumed is suspended, not resumed forever.

>>> import tempfile
>>> from inflight.turns import TurnMarkers
>>> d = tempfile.mkdtemp()
>>> markers = TurnMarkers(d)
>>> first = markers.mark_turn_active("agent:main:telegram:dm:4242")
>>> second = markers.mark_turn_active("agent:main:telegram:dm:4242")   # a newer turn
>>> markers.clear_turn_active("agent:main:telegram:dm:4242", first)    # the late unwind
False
>>> markers.abandon()                                                  # the process dies here
>>> markers = TurnMarkers(d)
>>> markers.recover_interrupted_turns()
1
>>> [t.token == second for t in markers.resume_pending().values()]
[True]
>>> markers.close()

:class:`AsyncTurnMarkers` is its asyncio twin: the same calls as coroutines, on the crate's
waker-based async front (nothing blocks the loop, no thread is held per waiting call).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import _inflight, _owners
from ._inflight import InterruptedRun, Log, RecoveryReport
from .aio import AsyncLog
from .errors import InvalidInputError, PoisonedError, StorageError

logger = logging.getLogger("inflight.turns")

#: Markers older than this are cleared at recovery rather than resumed (the store's default).
MAX_AGE_SECONDS_DEFAULT = 3600.0

_TOKEN_PREFIX = "inflight-"
_GENERATION_MAX = 2**64 - 1


def _key_tag(key: str) -> str:
    # A checksum of the key, so that a token used with another key owns nothing there.
    return f"{zlib.crc32(key.encode('utf-8', 'surrogatepass')):08x}"


def token_for(key: str, generation: int) -> str:
    """The opaque token of the run of ``generation`` on ``key`` (the gateway need not look
    inside): ``inflight-GENERATION-KEYCRC``, unique per key and run."""
    return f"{_TOKEN_PREFIX}{generation}-{_key_tag(key)}"


def generation_of(key: str, token: Any) -> Optional[int]:
    """The generation a token of :func:`token_for` carries for ``key``; ``None`` for anything
    else (a token of another key, or of another store, owns nothing here). A token that is
    not a ``str`` is a ``TypeError`` (``None`` aside, which owns nothing)."""
    if token is None:
        return None
    if not isinstance(token, str):
        raise TypeError(f"a turn token is a str, not {type(token).__name__}")
    generation, _, tag = token[len(_TOKEN_PREFIX) :].partition("-")
    if not token.startswith(_TOKEN_PREFIX) or tag != _key_tag(key):
        return None
    if not (generation.isascii() and generation.isdigit()):
        return None
    value = int(generation)
    return value if value <= _GENERATION_MAX else None


@dataclass(frozen=True)
class InterruptedTurn:
    """A turn the last process left active: promoted to resume pending, or suspended as a crash
    loop. ``token`` clears it (``clear_turn_active``); a new turn on the key replaces it."""

    key: str
    token: str
    session_id: str
    #: When the turn started, in seconds since the Unix epoch.
    started_at: float
    #: ``"crash"`` or ``"shutdown"``.
    reason: str
    #: How many start-ups in a row found the key interrupted by a crash, this one included.
    recoveries: int
    #: ``recoveries`` reached the log's crash-loop threshold: suspend, do not resume.
    crash_loop: bool
    meta: Optional[str]

    @staticmethod
    def of(run: InterruptedRun) -> "InterruptedTurn":
        return InterruptedTurn(
            key=run.key,
            token=token_for(run.key, run.generation),
            session_id=run.session_id,
            started_at=run.started_at,
            reason=run.reason,
            recoveries=run.recoveries,
            crash_loop=run.crash_loop,
            meta=run.meta,
        )


@dataclass
class RecoveryPlan:
    """What a recovery does with the turns the last process left active (pure: decided from the
    report, the turns still in flight, the age limit and the time)."""

    promote: List[InterruptedRun]
    suspend: List[InterruptedRun]
    clear: List[InterruptedRun]


def plan_recovery(
    leftovers: Iterable[InterruptedRun], max_age_seconds: float, now: float
) -> RecoveryPlan:
    """Crash victims younger than ``max_age_seconds`` are promoted, or suspended if they are
    crash loops; older ones, and runs a clean shutdown interrupted (the last exit was clean:
    nothing crashed), are cleared."""
    plan = RecoveryPlan([], [], [])
    for run in leftovers:
        if run.reason != "crash" or now - run.started_at > max_age_seconds:
            plan.clear.append(run)
        elif run.crash_loop:
            plan.suspend.append(run)
        else:
            plan.promote.append(run)
    return plan


def _max_age(max_age_seconds: Any) -> float:
    if isinstance(max_age_seconds, bool) or not isinstance(max_age_seconds, (int, float)):
        raise TypeError(f"max_age_seconds must be a number, not {type(max_age_seconds).__name__}")
    if not (math.isfinite(max_age_seconds) and max_age_seconds >= 0):
        e = InvalidInputError(f"invalid input: max_age_seconds is {max_age_seconds}; it must be a finite number of seconds, at least 0")
        e.field, e.reason, e.key = "max_age_seconds", "must be finite and at least 0", None
        raise e
    return float(max_age_seconds)


class _Turns:
    """What both classes share: the log, its report, the turns promoted and suspended."""

    log: Log

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._promoted: Dict[str, InterruptedRun] = {}
        self._suspended: Dict[str, InterruptedRun] = {}

    @property
    def report(self) -> RecoveryReport:
        """What the log's recovery found when it was opened (``clean_shutdown``, ``running``,
        ``crash_loops``, damage)."""
        return self.log.report

    @property
    def closed(self) -> bool:
        return self.log.closed

    def _leftovers(self) -> List[InterruptedRun]:
        """The runs the open found in flight that are still in flight under the same
        generation (not yet cleared, nor replaced by a new turn)."""
        still = []
        for run in self.log.report.running:
            now = self.log.in_flight(run.key)
            if now is not None and now.generation == run.generation:
                still.append(now)
        return still

    def _plan(self, max_age_seconds: Any) -> RecoveryPlan:
        plan = plan_recovery(self._leftovers(), _max_age(max_age_seconds), time.time())
        with self._lock:
            self._promoted = {r.key: r for r in plan.promote}
            self._suspended = {r.key: r for r in plan.suspend}
        for run in plan.suspend:
            logger.warning(
                "turn of %s suspended: a crash loop (%d start-ups in a row found it interrupted)",
                run.key,
                run.recoveries,
            )
        return plan

    def _still_owned(self, turns: Dict[str, InterruptedRun]) -> Dict[str, InterruptedTurn]:
        out = {}
        for key, run in turns.items():
            now = self.log.in_flight(key)
            if now is not None and now.generation == run.generation:
                out[key] = InterruptedTurn.of(now)
        return out

    def resume_pending(self) -> Dict[str, InterruptedTurn]:
        """The turns :meth:`recover_interrupted_turns` promoted that are still pending: not
        cleared, and not replaced by a new turn on the key (resuming a session is marking a new
        turn on it)."""
        with self._lock:
            promoted = dict(self._promoted)
        return self._still_owned(promoted)

    def suspended(self) -> Dict[str, InterruptedTurn]:
        """The crash loops recovery found: not promoted, and left active so that the count goes
        on if the key crashes the process again; a turn on the key that completes ends it."""
        with self._lock:
            suspended = dict(self._suspended)
        return self._still_owned(suspended)

    def _warn_if_crash_victims(self, runs: List[InterruptedRun]) -> None:
        crashed = [r.key for r in runs if r.reason == "crash"]
        if crashed:
            logger.warning(
                "discarding %d turn(s) the log says a crash interrupted (not a clean shutdown): %s",
                len(crashed),
                ", ".join(crashed[:10]),
            )


class TurnMarkers(_Turns):
    """A gateway store's turn markers over an ``inflight`` log in ``path`` (a directory,
    created if missing). Thread-safe: calls from several threads share the log's syncs.
    Keyword arguments go to :func:`inflight.open` (``crash_loop_threshold``, ``strict``, ...).

    A second ``TurnMarkers`` (or checkpoint) on the same directory in this process takes the
    log over from the first, as a restart would, with a ``RuntimeWarning``.
    """

    def __init__(self, path: Any, **options: Any) -> None:
        super().__init__()
        self.log = _owners.open_owned(self, str(path), options)

    def mark_turn_active(
        self, session_key: str, *, session_id: str = "", meta: Optional[str] = None
    ) -> Optional[str]:
        """Marks a turn of ``session_key`` running, replacing the previous marker; returns its
        token once durable. ``None`` if the log could not record it (a storage failure, or a
        log poisoned by an earlier one; the failure is logged, and the turn is then not
        protected against a crash). ``session_id`` and ``meta`` (at most
        4096 bytes) come back with the turn after a crash."""
        key = _inflight.check_key(session_key)
        try:
            run = self.log.begin_run(key, session_id, meta)
        except (StorageError, PoisonedError) as e:
            logger.error("could not mark the turn of %s active: %s", key, e)
            return None
        return token_for(key, run.generation)

    def clear_turn_active(self, session_key: str, token: Optional[str]) -> bool:
        """Clears the marker of ``session_key`` if ``token`` still owns it; durable on return.
        ``False`` (nothing changed) when a newer turn owns the key, the marker was cleared
        already, or the token is not one of this store's."""
        key = _inflight.check_key(session_key)
        generation = generation_of(key, token)
        if generation is None:
            return False
        return self.log.mark_completed(key, generation) == "completed"

    def recover_interrupted_turns(self, max_age_seconds: float = MAX_AGE_SECONDS_DEFAULT) -> int:
        """Promotes the turns the log knows a crash interrupted to resume pending
        (:meth:`resume_pending`) and returns how many. Crash loops are suspended instead
        (:meth:`suspended`). Turns older than ``max_age_seconds``, and those a clean shutdown
        interrupted, are cleared, durably, in a few shared syncs. After a clean shutdown it
        promotes nothing."""
        plan = self._plan(max_age_seconds)
        if plan.clear:
            self.log.mark_completed_many([(r.key, r.generation) for r in plan.clear])
        return len(plan.promote)

    def discard_active_turn_markers(self) -> int:
        """Clears every marker the last process left, durably, in a few shared syncs; returns
        how many. For a start-up after a clean shutdown; clearing turns a crash interrupted
        is logged as a warning."""
        leftovers = self._leftovers()
        self._warn_if_crash_victims(leftovers)
        results = self.log.mark_completed_many([(r.key, r.generation) for r in leftovers])
        with self._lock:
            self._promoted.clear()
            self._suspended.clear()
        return sum(1 for r in results if r == "completed")

    def close(self) -> None:
        """Records a clean shutdown and releases the log."""
        self.log.close()

    def abandon(self) -> None:
        """Releases the log without a shutdown record, as a crash would (for tests)."""
        self.log.abandon()

    def __enter__(self) -> "TurnMarkers":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.log.__exit__(exc_type, exc, tb)


class AsyncTurnMarkers(_Turns):
    """:class:`TurnMarkers` for asyncio: the same four calls as coroutines, on the crate's
    waker-based async front. Open it with ``await AsyncTurnMarkers.open(path)`` (the replay
    runs in a thread), or construct it directly before the loop starts.

    >>> import asyncio, tempfile
    >>> from inflight.turns import AsyncTurnMarkers
    >>> async def main(d):
    ...     markers = await AsyncTurnMarkers.open(d)
    ...     tokens = await asyncio.gather(*(markers.mark_turn_active(f"agent:main:http:c-{i}") for i in range(50)))
    ...     cleared = await asyncio.gather(*(markers.clear_turn_active(f"agent:main:http:c-{i}", t) for i, t in enumerate(tokens)))
    ...     await markers.close()
    ...     return sum(cleared)
    >>> asyncio.run(main(tempfile.mkdtemp()))
    50
    """

    def __init__(self, path: Any, **options: Any) -> None:
        super().__init__()
        self.log = _owners.open_owned(self, str(path), options)
        self.front = AsyncLog(self.log)

    @classmethod
    async def open(cls, path: Any, **options: Any) -> "AsyncTurnMarkers":
        """Opens the log in a thread, so that its replay does not block the loop."""
        return await asyncio.get_running_loop().run_in_executor(None, lambda: cls(path, **options))

    async def mark_turn_active(
        self, session_key: str, *, session_id: str = "", meta: Optional[str] = None
    ) -> Optional[str]:
        """:meth:`TurnMarkers.mark_turn_active`, awaited."""
        key = _inflight.check_key(session_key)
        try:
            run = await self.front.begin_run(key, session_id, meta)
        except (StorageError, PoisonedError) as e:
            logger.error("could not mark the turn of %s active: %s", key, e)
            return None
        return token_for(key, run.generation)

    async def clear_turn_active(self, session_key: str, token: Optional[str]) -> bool:
        """:meth:`TurnMarkers.clear_turn_active`, awaited."""
        key = _inflight.check_key(session_key)
        generation = generation_of(key, token)
        if generation is None:
            return False
        return await self.front.mark_completed(key, generation) == "completed"

    async def recover_interrupted_turns(self, max_age_seconds: float = MAX_AGE_SECONDS_DEFAULT) -> int:
        """:meth:`TurnMarkers.recover_interrupted_turns`, awaited."""
        plan = self._plan(max_age_seconds)
        await self._complete_all([(r.key, r.generation) for r in plan.clear])
        return len(plan.promote)

    async def discard_active_turn_markers(self) -> int:
        """:meth:`TurnMarkers.discard_active_turn_markers`, awaited."""
        leftovers = self._leftovers()
        self._warn_if_crash_victims(leftovers)
        results = await self._complete_all([(r.key, r.generation) for r in leftovers])
        with self._lock:
            self._promoted.clear()
            self._suspended.clear()
        return sum(1 for r in results if r == "completed")

    async def _complete_all(self, pairs: List[Tuple[str, int]]) -> List[str]:
        # Accepted together, so they share frames and syncs.
        return list(await asyncio.gather(*(self.front.mark_completed(k, g) for k, g in pairs)))

    async def close(self) -> None:
        """Records a clean shutdown, durably, and releases the log."""
        await self.front.close()

    def abandon(self) -> None:
        """Releases the log without a shutdown record, as a crash would (for tests)."""
        self.front.abandon()

    async def __aenter__(self) -> "AsyncTurnMarkers":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.close()
        else:
            self.abandon()


__all__ = [
    "TurnMarkers",
    "AsyncTurnMarkers",
    "InterruptedTurn",
    "RecoveryPlan",
    "plan_recovery",
    "token_for",
    "generation_of",
    "MAX_AGE_SECONDS_DEFAULT",
]
