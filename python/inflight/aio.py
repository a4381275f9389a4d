"""Awaitable calls for gateways on asyncio.

Each call runs the blocking call in a thread of the ``AsyncLog``'s own pool (with the GIL
released while the event is written and synced), so the event loop never blocks on the disk,
and the awaitable completes once the event is durable. Calls awaited at the same time share
syncs (group commit) as threads do, up to ``max_workers`` at once (64 by default).

>>> import asyncio, tempfile, inflight
>>> from inflight.aio import AsyncLog
>>> async def main(d):
...     async with AsyncLog(inflight.open(d)) as log:
...         runs = await asyncio.gather(*(log.begin_run(f"agent:main:http:c-{i}", "s1") for i in range(20)))
...         await asyncio.gather(*(log.mark_completed(r.key, r.generation) for r in runs))
...         return len(log.log.running())
>>> asyncio.run(main(tempfile.mkdtemp()))
0
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar

from ._inflight import Log, Run

T = TypeVar("T")

#: Threads an ``AsyncLog`` uses by default: as many calls can wait for a sync at once.
MAX_WORKERS_DEFAULT = 64


class AsyncLog:
    """An open :class:`inflight.Log` behind awaitables. Use ``async with`` to close it cleanly
    (an exception abandons it instead, as the synchronous context manager does)."""

    def __init__(self, log: Log, max_workers: int = MAX_WORKERS_DEFAULT) -> None:
        self.log = log
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="inflight")

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def mark_running(
        self,
        key: str,
        session_id: str,
        generation: int,
        started_at_ms: Optional[int] = None,
        meta: Optional[str] = None,
    ) -> str:
        """:meth:`Log.mark_running`: completes once the start is durable."""
        return await self._call(self.log.mark_running, key, session_id, generation, started_at_ms, meta)

    async def begin_run(self, key: str, session_id: str, meta: Optional[str] = None) -> Run:
        """:meth:`Log.begin_run`: completes with the run once its start is durable."""
        return await self._call(self.log.begin_run, key, session_id, meta)

    async def mark_completed(self, key: str, generation: int, at_ms: Optional[int] = None) -> str:
        """:meth:`Log.mark_completed`: completes once the completion is durable."""
        return await self._call(self.log.mark_completed, key, generation, at_ms)

    async def close(self) -> None:
        """:meth:`Log.close`, then the pool's threads stop."""
        try:
            await self._call(self.log.close)
        finally:
            self._pool.shutdown(wait=False)

    async def __aenter__(self) -> "AsyncLog":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.close()
        else:
            self.log.abandon()
            self._pool.shutdown(wait=False)


__all__ = ["AsyncLog", "MAX_WORKERS_DEFAULT"]
