"""asyncio: an event's durability is awaited without blocking the loop."""

import asyncio
import os
import time

import pytest

import inflight
from inflight.aio import AsyncLog


class ProactorLikeLoop(asyncio.SelectorEventLoop):
    """A loop without ``add_reader``, as the proactor loop (Windows' default) is."""

    def add_reader(self, *args, **kwargs):
        raise NotImplementedError


LOOPS = {"selector": asyncio.SelectorEventLoop, "no_add_reader": ProactorLikeLoop}
attached = []


@pytest.fixture(params=sorted(LOOPS))
def loop_kind(request, monkeypatch):
    """Every test runs on a selector loop and on a loop without ``add_reader``; each checks that
    its AsyncLogs were woken the way that kind of loop is."""
    attach = AsyncLog._attach

    def recording_attach(self):
        first = self._loop is None
        loop = attach(self)
        if first:
            attached.append((self._watched is not None, self._waker is not None))
        return loop

    monkeypatch.setattr(AsyncLog, "_attach", recording_attach)
    attached.clear()
    yield request.param
    want = (True, False) if request.param == "selector" else (False, True)
    assert attached and set(attached) == {want}, (request.param, set(attached))


def run(coroutine, kind):
    loop = LOOPS[kind]()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def test_awaited_events_are_durable_and_the_loop_keeps_running(log_dir, loop_kind):
    async def main():
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        tick_task = asyncio.create_task(ticker())
        async with AsyncLog(inflight.open(log_dir)) as log:
            runs = await asyncio.gather(*(log.begin_run(f"agent:main:http:c-{i}", "s") for i in range(200)))
            assert sorted(r.generation for r in runs) == [1] * 200
            assert await log.mark_running("explicit", "s", 5, meta="m") == "started"
            results = await asyncio.gather(*(log.mark_completed(r.key, r.generation) for r in runs[:100]))
            assert set(results) == {"completed"}
            assert len(log.log.running()) == 101
        stop = True
        await tick_task
        return ticks

    ticks = run(main(), loop_kind)
    assert ticks > 0  # the loop ran other tasks while events were being synced
    report = inflight.open(log_dir).report
    assert len(report.running) == 101 and {r.reason for r in report.running} == {"shutdown"}


def test_errors_arrive_as_exceptions_in_the_awaiting_task(log_dir, loop_kind):
    async def main():
        async with AsyncLog(inflight.open(log_dir)) as log:
            with pytest.raises(inflight.InvalidInputError):
                await log.begin_run("", "s")

    run(main(), loop_kind)


def test_an_exception_in_the_async_with_block_abandons_the_log(log_dir, loop_kind):
    async def main():
        async with AsyncLog(inflight.open(log_dir)) as log:
            await log.begin_run("k", "s")
            raise RuntimeError("the gateway fails")

    with pytest.raises(RuntimeError):
        run(main(), loop_kind)
    assert [r.reason for r in inflight.open(log_dir).report.running] == ["crash"]


def _threads():
    """The process's threads, Rust's included (``threading`` only sees Python's); 0 where there
    is no /proc to count them (macOS, Windows), and the count is not checked."""
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 0


def test_a_thousand_waiting_calls_hold_no_thread_and_share_syncs(log_dir, loop_kind):
    """Finding 10: each awaited call ran in a thread of a 64-thread pool. On the waker-based
    front a waiting call holds no thread: the front adds its flusher, nothing per call."""

    async def main():
        before = _threads()
        async with AsyncLog(inflight.open(log_dir)) as log:
            calls = [asyncio.ensure_future(log.begin_run(f"agent:main:http:c-{i}", "s")) for i in range(1000)]
            await asyncio.sleep(0)  # every call accepted, most still waiting for their sync
            during = _threads()
            runs = await asyncio.gather(*calls)
            assert len({r.key for r in runs}) == 1000
            last_seq = inflight.read_only(log_dir).report.last_seq
        return before, during, last_seq

    before, during, frames = run(main(), loop_kind)
    assert during - before <= 3, f"{during - before} threads for 1,000 waiting calls"
    assert frames < 200, f"1,000 starts took {frames} frames: they should share syncs"


def test_the_loop_runs_while_events_are_synced(log_dir, loop_kind):
    """No call waits for the disk on the loop's thread: a ticker keeps running between a
    thousand calls' submission and their completion."""

    async def main():
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0)

        async with AsyncLog(inflight.open(log_dir)) as log:
            tick = asyncio.ensure_future(ticker())
            await asyncio.sleep(0)
            calls = [log.begin_run(f"agent:main:http:c-{i}", "s") for i in range(1000)]
            seen = len(ticks)
            await asyncio.gather(*calls)
            tick.cancel()
            return len(ticks) - seen

    assert run(main(), loop_kind) > 0


def test_a_stale_generation_and_a_closed_log_raise_in_the_awaiting_task(log_dir, loop_kind):
    async def main():
        log = AsyncLog(inflight.open(log_dir))
        assert await log.mark_running("k", "s", 5) == "started"
        with pytest.raises(inflight.StaleGenerationError):
            await log.mark_running("k", "s", 4)
        await log.close()
        with pytest.raises(inflight.ClosedError):
            await log.begin_run("k", "s")

    run(main(), loop_kind)
    report = inflight.open(log_dir).report
    assert report.clean_shutdown and [r.generation for r in report.running] == [5]


def test_threads_and_tasks_share_one_log(log_dir, loop_kind):
    async def main():
        async with AsyncLog(inflight.open(log_dir)) as log:
            def blocking():
                for i in range(200):
                    r = log.log.begin_run(f"thread:{i}", "s")
                    log.log.mark_completed(r.key, r.generation)

            async def tasks(tag):
                for i in range(200):
                    r = await log.begin_run(f"task:{tag}:{i}", "s")
                    await log.mark_completed(r.key, r.generation)

            await asyncio.gather(asyncio.to_thread(blocking), tasks("a"), tasks("b"))
            return log.log.counters()

    counters = run(main(), loop_kind)
    assert counters["started"] == 600 and counters["completed"] == 600
