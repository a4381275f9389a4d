"""Awaitable calls for gateways on asyncio, on the crate's waker-based async front.

A call accepts its event at once, on the event loop's thread (microseconds, no disk), and
returns an awaitable that completes once the event is durable. Nothing waits on the loop's
thread and no thread is held per waiting call: the front's flusher thread writes and syncs
every event accepted meanwhile as one frame with one sync (group commit, shared with threads
calling the blocking methods), and wakes the loop; the loop then completes exactly the calls
that sync made durable. A selector loop (every loop on Unix) is woken through a socket it
watches (``loop.add_reader``); a loop without ``add_reader`` (the proactor loop, the default
on Windows) by one thread per ``AsyncLog`` that waits for the flusher with the GIL released
and hands the loop its turn with ``call_soon_threadsafe``.

>>> import asyncio, tempfile, inflight
>>> from inflight.aio import AsyncLog
>>> async def main(d):
...     async with AsyncLog(inflight.open(d)) as log:
...         runs = await asyncio.gather(*(log.begin_run(f"agent:main:http:c-{i}", "s1") for i in range(20)))
...         await asyncio.gather(*(log.mark_completed(r.key, r.generation) for r in runs))
...         return len(log.log.running())
>>> asyncio.run(main(tempfile.mkdtemp()))
0

An ``AsyncLog`` serves the event loop that first awaits one of its calls. A task cancelled
while it waits stops waiting; its event stays accepted and is written with the next batch.
Accepting waits only while the log's queue of accepted events is full (65,536 events).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, Optional, Tuple, TypeVar, overload

from . import _inflight
from ._inflight import Log, Run

T = TypeVar("T")


class AsyncLog:
    """An open :class:`inflight.Log` behind awaitables. Use ``async with`` to close it cleanly
    (an exception abandons it instead, as the synchronous context manager does)."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self._front = _inflight._AsyncFront(log)
        self._waiting: Dict[int, "asyncio.Future[Any]"] = {}
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._watched: Optional[int] = None
        self._waker: Optional[threading.Thread] = None

    def _attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise RuntimeError("this AsyncLog serves another event loop")
            self._loop = loop
            fd = self._front.fileno()
            try:
                if fd is None:
                    raise NotImplementedError
                loop.add_reader(fd, self._on_ready)
                self._watched = fd
            except NotImplementedError:
                # The proactor loop has no add_reader: a thread waits for the flusher instead.
                self._waker = threading.Thread(
                    target=self._wake_loop, args=(loop,), name="inflight-aio-waker", daemon=True
                )
                self._waker.start()
        return loop

    def _wake_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        # Each wait lasts at most a second, so the thread also ends soon after its loop does.
        while not loop.is_closed():
            began = self._front.wait_round(1.0)
            if began is None:
                return
            if began:
                try:
                    loop.call_soon_threadsafe(self._on_ready)
                except RuntimeError:
                    return  # the loop closed meanwhile

    def _on_ready(self) -> None:
        for call, ok, value in self._front.ready():
            future = self._waiting.pop(call, None)
            if future is None or future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    # A call of the front starts as (0, its result) when done at once, else (its call number,
    # None); the first overload types a close, whose result is None.
    @overload
    async def _wait(self, started: Tuple[int, None]) -> None: ...
    @overload
    async def _wait(self, started: Tuple[int, Optional[T]]) -> T: ...
    async def _wait(self, started: Tuple[int, Optional[T]]) -> Optional[T]:
        call, value = started
        if call == 0:
            return value
        future: "asyncio.Future[Optional[T]]" = asyncio.get_running_loop().create_future()
        self._waiting[call] = future
        try:
            return await future
        finally:
            self._waiting.pop(call, None)

    async def mark_running(
        self,
        key: str,
        session_id: str,
        generation: int,
        started_at_ms: Optional[int] = None,
        meta: Optional[str] = None,
    ) -> str:
        """:meth:`Log.mark_running`: completes once the start is durable."""
        self._attach()
        return await self._wait(self._front.mark_running(key, session_id, generation, started_at_ms, meta))

    async def begin_run(self, key: str, session_id: str, meta: Optional[str] = None) -> Run:
        """:meth:`Log.begin_run`: completes with the run once its start is durable."""
        self._attach()
        return await self._wait(self._front.begin_run(key, session_id, meta))

    async def mark_completed(self, key: str, generation: int, at_ms: Optional[int] = None) -> str:
        """:meth:`Log.mark_completed`: completes once the completion is durable."""
        self._attach()
        return await self._wait(self._front.mark_completed(key, generation, at_ms))

    async def complete_token(self, key: str, token: str) -> str:
        """:meth:`Log.complete_token`: completes once the exact completion is durable (at once
        with "unmatched" for text that is no token)."""
        self._attach()
        return await self._wait(self._front.complete_token(key, token))

    async def progress(self, key: str, token: str, meta: Optional[str]) -> str:
        """:meth:`Log.progress`: completes once the new meta is durable."""
        self._attach()
        return await self._wait(self._front.progress(key, token, meta))

    async def close(self) -> None:
        """Records a clean shutdown, durably, then stops the front and releases the log."""
        if self.log.closed:
            self._stop()
            return
        self._attach()
        try:
            await self._wait(self._front.close())
        finally:
            self._stop()
            self.log.close()  # the shutdown is recorded: this only releases the handle

    def abandon(self) -> None:
        """Releases the log without a shutdown record, as a crash would (for tests)."""
        self._stop()
        self.log.abandon()

    def _stop(self) -> None:
        if self._watched is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._watched)
        self._watched = None
        self._front.shutdown()
        if self._waker is not None and self._waker is not threading.current_thread():
            self._waker.join(timeout=2.0)  # shutdown ended its wait
        self._waker = None
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()

    async def __aenter__(self) -> "AsyncLog":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.close()
        else:
            self.abandon()


__all__ = ["AsyncLog"]
