"""Events per second from Python beside the Rust figure, in one run, every event synced.

For each thread count, a fresh log in DIR (on the disk to measure; not tmpfs):

- python: T Python threads, each beginning and completing runs on keys of its own through
  the binding (`begin_run` then `mark_completed`: two events, each durable on return);
- rust: the same loop in T Rust threads through the same library (`_native_load`), with no
  Python in the loop.

The two fronts alternate, `--repeat` times each (3 by default), so that a change in the
disk's speed during the run (a shared machine) hits both alike; the table gives the median
and the range of each, then one JSON line per measurement follows.

    python python/bench/throughput.py /work/benchlogs/py --threads 1 16 --seconds 4

(Run it with the installed package: from python/ itself, `import inflight` would find the
source directory, which has no compiled module.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time

import inflight
from inflight import _inflight


def python_load(path: str, threads: int, seconds: float) -> tuple[int, float]:
    log = inflight.open(path)
    counts = [0] * threads
    stop = threading.Event()

    def worker(t: int) -> None:
        i = 0
        while not stop.is_set():
            run = log.begin_run(f"bench:python:{t}:{i % 16}", "s")
            log.mark_completed(run.key, run.generation)
            counts[t] += 2
            i += 1

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    log.close()
    return sum(counts), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="a directory on the disk to measure (logs are made inside it)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    rows = []
    for threads in args.threads:
        for attempt in range(args.repeat):
            for front in ("rust", "python"):
                path = os.path.join(args.dir, f"{front}-{threads}-{attempt}")
                shutil.rmtree(path, ignore_errors=True)
                if front == "rust":
                    events, elapsed = _inflight._native_load(path, threads, args.seconds)
                else:
                    events, elapsed = python_load(path, threads, args.seconds)
                shutil.rmtree(path, ignore_errors=True)
                rows.append({"front": front, "threads": threads, "attempt": attempt, "events": events,
                             "seconds": round(elapsed, 2), "events_per_s": round(events / elapsed)})

    def summary(front: str, threads: int) -> tuple[int, str]:
        rates = sorted(r["events_per_s"] for r in rows if r["front"] == front and r["threads"] == threads)
        return rates[len(rates) // 2], f"{rates[0]:,}..{rates[-1]:,}"

    print(f"{'threads':>7}  {'rust events/s (range)':>28}  {'python events/s (range)':>28}  {'python/rust':>11}")
    for threads in args.threads:
        rust, rust_range = summary("rust", threads)
        py, py_range = summary("python", threads)
        print(f"{threads:>7}  {f'{rust:,} ({rust_range})':>28}  {f'{py:,} ({py_range})':>28}  {py / max(rust, 1):>10.0%}")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
