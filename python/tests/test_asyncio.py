"""asyncio: an event's durability is awaited without blocking the loop."""

import asyncio
import time

import pytest

import inflight
from inflight.aio import AsyncLog


def test_awaited_events_are_durable_and_the_loop_keeps_running(log_dir):
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

    ticks = asyncio.run(main())
    assert ticks > 0  # the loop ran other tasks while events were being synced
    report = inflight.open(log_dir).report
    assert len(report.running) == 101 and {r.reason for r in report.running} == {"shutdown"}


def test_errors_arrive_as_exceptions_in_the_awaiting_task(log_dir):
    async def main():
        async with AsyncLog(inflight.open(log_dir)) as log:
            with pytest.raises(inflight.InvalidInputError):
                await log.begin_run("", "s")

    asyncio.run(main())


def test_an_exception_in_the_async_with_block_abandons_the_log(log_dir):
    async def main():
        async with AsyncLog(inflight.open(log_dir)) as log:
            await log.begin_run("k", "s")
            raise RuntimeError("the gateway fails")

    with pytest.raises(RuntimeError):
        asyncio.run(main())
    assert [r.reason for r in inflight.open(log_dir).report.running] == ["crash"]
