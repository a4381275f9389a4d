"""Turn markers over the log: a gateway session store's calls for its turns, made exact.

A gateway of this kind marks each running turn in its session store with an opaque token,
clears the marker with a compare-and-swap when the turn ends (so a stale asynchronous unwind
cannot clear a newer turn), and at start-up promotes the markers a crash left behind to
"resume pending", resumes them once their platform is connected, and suspends sessions that
must not be resumed. :class:`TurnMarkers` has exactly those calls, with the same names,
arguments and meanings, and keeps everything in the log, durably:

==================================================  ==========================================
``mark_turn_active(session_key) -> token``          begins a run under the log's next
                                                    generation; the token (32 hex digits)
                                                    names this turn and no other, of any key,
                                                    log or process. Durable on return; ``None``
                                                    if the log could not record it
``clear_turn_active(session_key, token) -> bool``   completes exactly that turn: ``False`` if
                                                    a newer turn owns the key, or none does, or
                                                    the token is another key's or log's
``record_progress(session_key, token, meta)``       the turn's meta is now ``meta``, durably
                                                    ("reply ready: message 981"): after a
                                                    crash, recovery says where it got
``recover_interrupted_turns(max_age_seconds)``      at an unclean start: the turns a stop
                                                    interrupted become resume-pending
                                                    (``restart_interrupted``, or
                                                    ``shutdown_timeout`` for a drain that timed
                                                    out), loops are suspended, turns older
                                                    than the limit (``<= 0``: none) are
                                                    cleared. Returns how many it *newly*
                                                    promoted
``discard_active_turn_markers()``                   after a clean shutdown: clears what a crash
                                                    left and nobody resumed; a drain's cut turns
                                                    become resume-pending instead of lost
``mark_resume_pending(session_key, reason)``        the key's turn is resume-pending (a drain
                                                    timeout, at a graceful stop); never
                                                    overrides a suspension
``clear_resume_pending(session_key)``               the resumed turn succeeded (or the gateway
                                                    gives up on resuming)
``suspend_session(session_key)``                    not to be resumed; a new turn on the key
                                                    begins the session anew
==================================================  ==========================================

Every one of these is an event in the log, folded like the others: a pending turn stays pending
across any number of restarts until it is resumed (a new turn on the key), suspended, cleared or
completed, and the log counts, for each key, how many times in a row a stop interrupted a turn
of it *while it ran*, by crashes and by graceful stops apart, so a turn that brings the process
down (or restarts it) every time it is resumed is suspended instead of resumed forever. A turn
that waits as pending and never runs again keeps its count.

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
>>> list(markers.interrupted_turns())                                  # marked active when it died
['agent:main:telegram:dm:4242']
>>> markers.recover_interrupted_turns(), markers.recover_interrupted_turns()
(1, 0)
>>> [(t.token == second, t.pending_reason) for t in markers.resume_pending().values()]
[(True, 'restart_interrupted')]
>>> markers.close()

:class:`AsyncTurnMarkers` is its asyncio twin: the same calls as coroutines, the turns' own on
the crate's waker-based async front (nothing blocks the loop, no thread is held per waiting
call). Both are thin shells over one core, so they decide alike.

After a failed write (a full disk for a moment), the log's handle refuses everything; the next
call of either class reopens the log (replaying what is durable, as an open after a crash does,
without counting the process's own turns as interrupted) and says so in a warning, so the
gateway is not left unprotected for the rest of its life. Storage failures are raised as
``OSError`` (``StorageError``, ``PoisonedError``), except by ``mark_turn_active``, which returns
``None`` as the gateway's own store does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Iterable, Optional, TypeVar

from . import _inflight, _owners
from ._inflight import InterruptedRun, Log, RecoveryReport
from .aio import AsyncLog
from .errors import ClosedError, PoisonedError, StorageError

logger = logging.getLogger("inflight.turns")

#: Markers older than this are cleared at recovery rather than resumed (the store's default).
MAX_AGE_SECONDS_DEFAULT = 3600.0

#: The reason ``mark_resume_pending`` records by default (the gateway's: a restart's drain
#: timed out).
RESTART_TIMEOUT = "restart_timeout"

#: What the log raises when a write or sync failed; the classes reopen the log on the next call.
_FAILURES = (StorageError, PoisonedError)

T = TypeVar("T")


@dataclass(frozen=True)
class InterruptedTurn:
    """A turn in the log that is not simply running: interrupted by the last process's stop,
    resume-pending, or suspended. ``token`` clears it (``clear_turn_active``); a new turn on
    the key resumes it (and carries its loop counts)."""

    key: str
    token: str
    session_id: str
    #: When the turn started, in seconds since the Unix epoch.
    started_at: float
    #: ``"running"``, ``"interrupted"``, ``"pending"`` or ``"suspended"``.
    state: str
    #: What last interrupted it while it ran: ``"crash"`` or ``"shutdown"`` (a drain that
    #: timed out).
    reason: str
    #: How many stops in a row interrupted the key while a turn of it ran: crashes ...
    recoveries: int
    #: ... and graceful stops.
    stops: int
    #: ``recoveries`` reached the crash-loop threshold: suspend, do not resume.
    crash_loop: bool
    #: ``stops`` reached the reboot-loop threshold: suspend, do not resume.
    stop_loop: bool
    #: Why it is resume-pending (``restart_interrupted``, ``shutdown_timeout``, ...), or None.
    pending_reason: Optional[str]
    #: When it was promoted, in seconds since the Unix epoch, or None.
    pending_at: Optional[float]
    #: Its meta, as its latest progress left it.
    meta: Optional[str]

    @staticmethod
    def of(run: InterruptedRun) -> "InterruptedTurn":
        return InterruptedTurn(
            key=run.key,
            token=run.token,
            session_id=run.session_id,
            started_at=run.started_at,
            state=run.state,
            reason=run.reason,
            recoveries=run.recoveries,
            stops=run.stops,
            crash_loop=run.crash_loop,
            stop_loop=run.stop_loop,
            pending_reason=run.pending_reason,
            pending_at=run.pending_at,
            meta=run.meta,
        )


class _Core:
    """What both classes are: the log (reopened after a failed write), its views, and the
    decisions at start-up. The classes add only how a turn's own call waits."""

    def __init__(self, owner: Any, path: Any, options: Dict[str, Any]) -> None:
        self._owner = owner
        self._path = str(path)
        self._options = dict(options)
        self._lock = threading.Lock()
        self._failed: Optional[BaseException] = None
        self.log: Log = _owners.open_owned(owner, self._path, self._options)
        self.report: RecoveryReport = self.log.report

    # The failure policy, one for every call of both classes.

    def failed(self, what: str, error: BaseException) -> None:
        """A write failed: the log is reopened on the next call."""
        logger.error("%s failed: %s; the log is reopened on the next call", what, error)
        with self._lock:
            self._failed = error

    @property
    def needs_reopen(self) -> bool:
        return self._failed is not None

    def reopen(self) -> None:
        """Reopens the log after a failed write, replaying what is durable. The process's own
        turns still run, so this open does not count them as interrupted."""
        with self._lock:
            if self._failed is None:
                return
            logger.warning(
                "reopening the log in %s after a failed write (%s): it replays what is durable; "
                "a call that failed may or may not have been recorded",
                self._path,
                self._failed,
            )
            self.log.abandon()
            options = dict(self._options, record_recovery=False)
            self.log = _owners.open_owned(self._owner, self._path, options)
            self._failed = None

    def guarded(self, what: str, call: Callable[[], T]) -> T:
        """Runs a blocking call on the log, reopening it first if an earlier write failed; a
        storage failure is raised (an ``OSError``) after it is noted for the next call."""
        self.reopen()
        try:
            return call()
        except _FAILURES as e:
            self.failed(what, e)
            raise

    # The views.

    def turns(self, state: str) -> Dict[str, InterruptedTurn]:
        return {r.key: InterruptedTurn.of(r) for r in self.log.running() if r.state == state}

    def interrupted_turns(self) -> Dict[str, InterruptedTurn]:
        keys = set(self.report.interrupted)
        return {r.key: InterruptedTurn.of(r) for r in self.report.running if r.key in keys}

    # The start-up decisions, in the crate (one implementation: `inflight::turns`).

    def recover(self, max_age_seconds: Any) -> int:
        promoted, suspended, _ = self.guarded(
            "recover_interrupted_turns", lambda: self.log.recover_interrupted(max_age_seconds)
        )
        self._warn_suspended(suspended)
        return promoted

    def discard(self) -> int:
        crashed = [t.key for t in self.turns("interrupted").values() if t.reason == "crash" and not t.crash_loop and not t.stop_loop]
        promoted, suspended, cleared = self.guarded("discard_active_turn_markers", self.log.discard_interrupted)
        if crashed:
            logger.warning(
                "discarding %d turn(s) a crash interrupted and nobody resumed: %s",
                len(crashed),
                ", ".join(crashed[:10]),
            )
        if promoted:
            logger.info("%d turn(s) a drain timed out on are resume-pending (shutdown_timeout)", promoted)
        self._warn_suspended(suspended)
        return cleared

    def _warn_suspended(self, suspended: int) -> None:
        if suspended:
            loops = [
                f"{t.key} ({t.recoveries} crash(es), {t.stops} graceful stop(s) in a row)"
                for t in self.turns("suspended").values()
                if t.crash_loop or t.stop_loop
            ]
            logger.warning("suspended %d turn(s) as loops: %s", suspended, ", ".join(loops[:10]))

    def decision(self, what: str, call: Callable[[Log], str], done: str) -> bool:
        return self.guarded(what, lambda: call(self.log)) == done

    def adopt(self, runs: Iterable[InterruptedRun]) -> int:
        def adopt_all() -> int:
            adopted = 0
            for run in runs:
                self.log.adopt(run)
                adopted += 1
            return adopted

        return self.guarded("adopt_turns", adopt_all)


class _Turns:
    """The calls both classes answer alike, from the core."""

    _core: _Core

    @property
    def log(self) -> Log:
        """The log (a new handle after a reopen)."""
        return self._core.log

    @property
    def report(self) -> RecoveryReport:
        """What the log's recovery found when it was first opened (``clean_shutdown``,
        ``running``, ``interrupted``, ``crash_loops``, ``stop_loops``, damage)."""
        return self._core.report

    @property
    def closed(self) -> bool:
        return self._core.log.closed

    def interrupted_turns(self) -> Dict[str, InterruptedTurn]:
        """The turns that were marked active when the last process stopped, as they stood then
        (their meta as their latest progress left it), before any decision: where a turn's
        reply was already made, deliver it instead of running the turn again."""
        return self._core.interrupted_turns()

    def resume_pending(self) -> Dict[str, InterruptedTurn]:
        """The turns waiting to be resumed now (durable: the same after any number of
        restarts): resume each once its platform is connected, by marking a new turn on its
        key, then ``clear_resume_pending`` when that turn succeeded."""
        return self._core.turns("pending")

    def suspended(self) -> Dict[str, InterruptedTurn]:
        """The turns suspended now (loops among them): not to be resumed. A new turn on the key
        begins the session anew; ``clear_turn_active`` with the token ends it."""
        return self._core.turns("suspended")


class TurnMarkers(_Turns):
    """A gateway store's turn markers over an ``inflight`` log in ``path`` (a directory,
    created if missing). Thread-safe: calls from several threads share the log's syncs.
    Keyword arguments go to :func:`inflight.open` (``crash_loop_threshold``,
    ``stop_loop_threshold``, ``strict``, ...).

    A second ``TurnMarkers`` (or checkpoint) on the same directory in this process takes the
    log over from the first, as a restart would, with a ``RuntimeWarning``.
    """

    def __init__(self, path: Any, **options: Any) -> None:
        self._core = _Core(self, path, options)

    def mark_turn_active(
        self, session_key: str, *, session_id: str = "", meta: Optional[str] = None
    ) -> Optional[str]:
        """Marks a turn of ``session_key`` running, replacing the previous marker (a turn that
        was pending is resumed: its loop counts go on); returns its token once durable.
        ``None`` if the log could not record it (the failure is logged, the log reopened on the
        next call; the turn is then not protected against a crash). ``session_id`` and
        ``meta`` (at most 4096 bytes) come back with the turn after a crash."""
        key = _inflight.check_key(session_key)
        try:
            return self._core.guarded("mark_turn_active", lambda: self.log.begin_run(key, session_id, meta)).token
        except _FAILURES:
            return None
        except ClosedError as e:
            logger.error("could not mark the turn of %s active: %s", key, e)
            return None

    def clear_turn_active(self, session_key: str, token: Optional[str]) -> bool:
        """Clears the marker of ``session_key`` if ``token`` still owns it; durable on return.
        ``False`` (nothing changed) when a newer turn owns the key, the marker was cleared
        already, or the token names another key's or another log's turn."""
        key = _inflight.check_key(session_key)
        if token is None:
            return False
        return self._core.decision("clear_turn_active", lambda log: log.complete_token(key, token), "completed")

    def record_progress(self, session_key: str, token: str, meta: Optional[str]) -> bool:
        """The turn ``token`` names now has ``meta`` (at most 4096 bytes), durably: after a
        crash, ``interrupted_turns()`` and the report say exactly where it got. ``False`` if
        the token does not own the key."""
        key = _inflight.check_key(session_key)
        return self._core.decision("record_progress", lambda log: log.progress(key, token, meta), "progressed")

    def recover_interrupted_turns(self, max_age_seconds: float = MAX_AGE_SECONDS_DEFAULT) -> int:
        """At an unclean start: the turns the last stop interrupted become resume-pending
        (:meth:`resume_pending`), loops are suspended (:meth:`suspended`), turns older than
        ``max_age_seconds`` (``<= 0``: no limit) are cleared; durable, in shared syncs. Returns
        how many turns it newly promoted: a second call returns 0."""
        return self._core.recover(max_age_seconds)

    def discard_active_turn_markers(self) -> int:
        """After a clean shutdown: clears the turns a crash left and nobody resumed (logged as
        a warning), and makes the turns the shutdown's drain cut resume-pending
        (``shutdown_timeout``) instead of losing them. Returns how many it cleared."""
        return self._core.discard()

    def mark_resume_pending(self, session_key: str, reason: str = RESTART_TIMEOUT) -> bool:
        """Marks the turn of ``session_key`` resume-pending with ``reason`` (at a graceful stop
        whose drain timed out: ``restart_timeout``, ``shutdown_timeout``), durably. ``False``
        if the key has no turn, or it is suspended (a suspension is never overridden)."""
        key = _inflight.check_key(session_key)
        return self._core.decision("mark_resume_pending", lambda log: log.mark_resume_pending(key, reason), "promoted")

    def clear_resume_pending(self, session_key: str) -> bool:
        """Ends the resume-pending state of ``session_key`` (after its resumed turn succeeded,
        or to give up on it: a turn that waited is then dropped), durably. ``True`` if it was
        pending."""
        key = _inflight.check_key(session_key)
        return self._core.guarded("clear_resume_pending", lambda: self.log.clear_resume_pending(key)) != "unmatched"

    def suspend_session(self, session_key: str) -> bool:
        """Suspends the turn of ``session_key``, durably: it is never resumed (its pending state
        ends); a new turn on the key begins the session anew. ``True`` if the key had a turn."""
        key = _inflight.check_key(session_key)
        return self._core.decision("suspend_session", lambda log: log.suspend(key), "suspended")

    def adopt_turns(self, runs: Iterable[InterruptedRun]) -> int:
        """Records turns taken over from a dead instance's log (``inflight.take_over(...)
        .report.running``) in this one, as they were there (interrupted, their loop counts,
        pending or suspended), so that resuming them here goes on counting the same loop.
        Returns how many."""
        return self._core.adopt(runs)

    def close(self) -> None:
        """Records a clean shutdown and releases the log (reopening it first if a write had
        failed, so that the shutdown is recorded)."""
        self._core.reopen()
        self.log.close()

    def abandon(self) -> None:
        """Releases the log without a shutdown record, as a crash would (for tests)."""
        self.log.abandon()

    def __enter__(self) -> "TurnMarkers":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.log.__exit__(exc_type, exc, tb)


class AsyncTurnMarkers(_Turns):
    """:class:`TurnMarkers` for asyncio: the same calls as coroutines. A turn's own calls
    (mark, clear, progress) go through the crate's waker-based async front; the start-up
    decisions, rare, run the blocking call in a thread. Open it with ``await
    AsyncTurnMarkers.open(path)`` (the replay runs in a thread), or construct it directly
    before the loop starts.

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
        self._core = _Core(self, path, options)
        self.front = AsyncLog(self._core.log)

    @classmethod
    async def open(cls, path: Any, **options: Any) -> "AsyncTurnMarkers":
        """Opens the log in a thread, so that its replay does not block the loop."""
        return await asyncio.get_running_loop().run_in_executor(None, lambda: cls(path, **options))

    def _reopen(self) -> None:
        if self._core.needs_reopen:
            self.front.abandon()
            self._core.reopen()
            self.front = AsyncLog(self._core.log)

    async def _turn_call(self, what: str, call: Callable[[AsyncLog], Awaitable[T]]) -> T:
        self._reopen()
        try:
            return await call(self.front)
        except _FAILURES as e:
            self._core.failed(what, e)
            raise

    async def _blocking(self, call: Callable[[], T]) -> T:
        self._reopen()
        return await asyncio.get_running_loop().run_in_executor(None, call)

    async def mark_turn_active(
        self, session_key: str, *, session_id: str = "", meta: Optional[str] = None
    ) -> Optional[str]:
        """:meth:`TurnMarkers.mark_turn_active`, awaited."""
        key = _inflight.check_key(session_key)
        try:
            run = await self._turn_call("mark_turn_active", lambda f: f.begin_run(key, session_id, meta))
        except _FAILURES:
            return None
        except ClosedError as e:
            logger.error("could not mark the turn of %s active: %s", key, e)
            return None
        return str(run.token)

    async def clear_turn_active(self, session_key: str, token: Optional[str]) -> bool:
        """:meth:`TurnMarkers.clear_turn_active`, awaited."""
        key = _inflight.check_key(session_key)
        if token is None:
            return False
        return await self._turn_call("clear_turn_active", lambda f: f.complete_token(key, token)) == "completed"

    async def record_progress(self, session_key: str, token: str, meta: Optional[str]) -> bool:
        """:meth:`TurnMarkers.record_progress`, awaited."""
        key = _inflight.check_key(session_key)
        return await self._turn_call("record_progress", lambda f: f.progress(key, token, meta)) == "progressed"

    async def recover_interrupted_turns(self, max_age_seconds: float = MAX_AGE_SECONDS_DEFAULT) -> int:
        """:meth:`TurnMarkers.recover_interrupted_turns`, awaited."""
        return await self._blocking(lambda: self._core.recover(max_age_seconds))

    async def discard_active_turn_markers(self) -> int:
        """:meth:`TurnMarkers.discard_active_turn_markers`, awaited."""
        return await self._blocking(self._core.discard)

    async def mark_resume_pending(self, session_key: str, reason: str = RESTART_TIMEOUT) -> bool:
        """:meth:`TurnMarkers.mark_resume_pending`, awaited."""
        key = _inflight.check_key(session_key)
        return await self._blocking(
            lambda: self._core.decision("mark_resume_pending", lambda log: log.mark_resume_pending(key, reason), "promoted")
        )

    async def clear_resume_pending(self, session_key: str) -> bool:
        """:meth:`TurnMarkers.clear_resume_pending`, awaited."""
        key = _inflight.check_key(session_key)
        result = await self._blocking(lambda: self._core.guarded("clear_resume_pending", lambda: self.log.clear_resume_pending(key)))
        return result != "unmatched"

    async def suspend_session(self, session_key: str) -> bool:
        """:meth:`TurnMarkers.suspend_session`, awaited."""
        key = _inflight.check_key(session_key)
        return await self._blocking(lambda: self._core.decision("suspend_session", lambda log: log.suspend(key), "suspended"))

    async def adopt_turns(self, runs: Iterable[InterruptedRun]) -> int:
        """:meth:`TurnMarkers.adopt_turns`, awaited."""
        runs = list(runs)
        return await self._blocking(lambda: self._core.adopt(runs))

    async def close(self) -> None:
        """Records a clean shutdown, durably, and releases the log (reopening it first if a
        write had failed, so that the shutdown is recorded)."""
        self._reopen()
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
    "MAX_AGE_SECONDS_DEFAULT",
    "RESTART_TIMEOUT",
]
