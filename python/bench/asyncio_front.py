"""asyncio on the waker-based front: event-loop lag under load, and events per second from
1, 64 and 1,000 tasks beside the crate's async front driven from Rust, in one run.

For each task count, a fresh log in DIR (on the disk to measure; not tmpfs):

- python: T asyncio tasks on one event loop, each beginning and completing runs on keys of
  its own through ``inflight.aio.AsyncLog`` (two events per loop, each durable when awaited),
  while a ticker task sleeps 1 ms at a time and records how late it wakes: the loop's lag;
- rust: the same loop in T async tasks on the crate's async front, polled from one Rust
  thread (as asyncio polls its tasks from one), with no Python in the loop;
- paced: 1,000 tasks that together record ``--paced`` events per second (a gateway's load,
  not a flood), for the loop's lag when recording is not all the loop does.

The two fronts alternate, ``--repeat`` times each (3 by default); the table gives the median
of each and the range, then one JSON line per measurement follows.

    python python/bench/asyncio_front.py /work/benchlogs/aio --tasks 1 64 1000 --seconds 4

(Run it with the installed package. Under an older package without the Rust-driven load, only
the python column is measured.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import time
from typing import Dict, List, Tuple

import inflight
from inflight import _inflight
from inflight.aio import AsyncLog


def percentile(samples: List[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def python_load(path: str, tasks: int, seconds: float, rate: float = 0) -> Tuple[int, float, List[float]]:
    """Events recorded, elapsed seconds, and the 1 ms ticker's lags (seconds late). With
    ``rate``, the tasks together record about that many events per second (each task paced),
    as a gateway's turns do, rather than as fast as they can."""
    log = AsyncLog(inflight.open(path))
    events = 0
    stop = False
    lags: List[float] = []
    pause = 2 * tasks / rate if rate else 0.0

    async def worker(t: int) -> None:
        nonlocal events
        i = 0
        if pause:
            await asyncio.sleep(pause * t / tasks)  # spread the tasks over one period
        while not stop:
            run = await log.begin_run(f"bench:py:{t}:{i % 16}", "s")
            await log.mark_completed(run.key, run.generation)
            events += 2
            i += 1
            if pause:
                await asyncio.sleep(pause)

    async def ticker() -> None:
        while not stop:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t0 - 0.001)

    started = time.perf_counter()
    running = [asyncio.ensure_future(worker(t)) for t in range(tasks)]
    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(seconds)
    stop = True
    await asyncio.gather(*running, tick)
    elapsed = time.perf_counter() - started
    await log.close()
    return events, elapsed, lags


async def on_loop_cost(path: str, calls: int) -> List[float]:
    """How long each call holds the loop's thread (its event accepted, its future made), in
    seconds: the awaitable is created and started, and the clock stops when it first
    suspends to wait for the sync."""
    log = AsyncLog(inflight.open(path))
    costs: List[float] = []
    pending = []
    for i in range(calls):
        t0 = time.perf_counter()
        call = asyncio.ensure_future(log.mark_completed(f"bench:cost:{i % 64}", 1))
        await asyncio.sleep(0)  # the call runs up to its first suspension
        costs.append(time.perf_counter() - t0)
        pending.append(call)
        if len(pending) >= 256:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    await log.close()
    return costs


def fresh(root: str, name: str) -> str:
    path = os.path.join(root, name)
    shutil.rmtree(path, ignore_errors=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="where the logs are made (removed afterwards)")
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 64, 1000])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--paced", type=float, nargs="*", default=[10_000.0],
                        help="events/s of the paced runs (1,000 tasks), for the loop's lag at a gateway's load")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    native = getattr(_inflight, "_native_async_load", None)
    rows: Dict[int, Dict[str, List[float]]] = {}
    lines = []
    for tasks in args.tasks:
        row = rows.setdefault(tasks, {"python": [], "rust": [], "p50": [], "p99": [], "max": []})
        for r in range(args.repeat):
            events, elapsed, lags = asyncio.run(python_load(fresh(args.dir, f"py-{tasks}-{r}"), tasks, args.seconds))
            row["python"].append(events / elapsed)
            for p, name in ((50, "p50"), (99, "p99"), (100, "max")):
                row[name].append(percentile(lags, p) * 1e3)
            lines.append({"front": "python-asyncio", "tasks": tasks, "events": events, "seconds": elapsed,
                          "lag_ms_p50": row["p50"][-1], "lag_ms_p99": row["p99"][-1], "lag_ms_max": row["max"][-1]})
            if native is not None:
                events, elapsed = native(fresh(args.dir, f"rs-{tasks}-{r}"), tasks, args.seconds)
                row["rust"].append(events / elapsed)
                lines.append({"front": "rust-async", "tasks": tasks, "events": events, "seconds": elapsed})
    paced: Dict[float, Dict[str, List[float]]] = {}
    for rate in args.paced:
        row = paced.setdefault(rate, {"events": [], "p50": [], "p99": [], "max": []})
        for r in range(args.repeat):
            events, elapsed, lags = asyncio.run(python_load(fresh(args.dir, f"paced-{r}"), 1000, args.seconds, rate))
            row["events"].append(events / elapsed)
            for p, name in ((50, "p50"), (99, "p99"), (100, "max")):
                row[name].append(percentile(lags, p) * 1e3)
            lines.append({"front": "python-asyncio-paced", "tasks": 1000, "rate": rate, "events": events, "seconds": elapsed,
                          "lag_ms_p50": row["p50"][-1], "lag_ms_p99": row["p99"][-1], "lag_ms_max": row["max"][-1]})
    costs = asyncio.run(on_loop_cost(fresh(args.dir, "cost"), 20_000))
    lines.append({"front": "python-asyncio-call", "calls": len(costs),
                  "on_loop_us_p50": percentile(costs, 50) * 1e6, "on_loop_us_p99": percentile(costs, 99) * 1e6})
    shutil.rmtree(args.dir, ignore_errors=True)

    def cell(values: List[float], digits: int = 0) -> str:
        if not values:
            return "-"
        fmt = f"{{:,.{digits}f}}"
        return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))} to {fmt.format(max(values))})"

    print("| tasks | asyncio: events/s | Rust async front: events/s | loop lag p50 ms | p99 ms | max ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for tasks, row in rows.items():
        print(f"| {tasks:,} | {cell(row['python'])} | {cell(row['rust'])} | {cell(row['p50'], 2)} | {cell(row['p99'], 2)} | {cell(row['max'], 2)} |")
    if paced:
        print()
        print("| 1,000 tasks, paced | events/s | loop lag p50 ms | p99 ms | max ms |")
        print("|---:|---:|---:|---:|---:|")
        for rate, row in paced.items():
            print(f"| {rate:,.0f} events/s | {cell(row['events'])} | {cell(row['p50'], 2)} | {cell(row['p99'], 2)} | {cell(row['max'], 2)} |")
    print()
    print(f"A call holds the loop's thread (submitted, then suspended until durable; one sleep(0) included): "
          f"p50 {percentile(costs, 50) * 1e6:.1f} µs, p99 {percentile(costs, 99) * 1e6:.1f} µs over {len(costs):,} calls.")
    for line in lines:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
