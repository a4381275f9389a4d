"""A small asyncio chat gateway on ``inflight``'s turn markers, with a real turn lifecycle.

Messages arrive for a few dozen sessions; each starts a turn (an "agent run" that takes a
while), marked active before it starts and cleared in its ``finally``. A newer message on a
session interrupts its running turn; ``/stop`` cancels it; a janitor evicts turns that run too
long. Each of those ends a turn late: its ``finally`` clears the marker only after some
clean-up, often after a newer turn on the session began, and the compare-and-swap of
``clear_turn_active`` keeps that newer turn's marker. At start-up the gateway asks the log
what the last process left: after a crash it resumes those turns (except crash loops, which
it suspends); after a clean shutdown it discards the leftovers.

    python python/examples/gateway.py /tmp/gw --seconds 5

Each line on stdout is JSON, flushed, so that a test can kill the process at any instant and
check every turn it acknowledged: ``{"submit": "mark", "key": K}`` before a turn is marked,
``{"ack": "mark", "key": K, "token": T}`` once it is durable; ``{"submit": "clear", ...}`` and
``{"ack": "clear", "key": K, "token": T, "cleared": bool}`` likewise; ``{"startup": ...}`` with
what the log reported; ``{"resume": K}``, ``{"stop": K}``, ``{"evict": K}``, ``{"stopped": N}``.
SIGTERM stops it cleanly (a drain, then a shutdown record). A session named with
``--poison KEY`` crashes the process (SIGKILL, as an out-of-memory kill would) whenever a turn
of it runs: after three start-ups in a row it is a crash loop, suspended instead of resumed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
from typing import Dict, Optional

from inflight.turns import AsyncTurnMarkers

#: How long a turn may run before the janitor evicts it (a real gateway: 30 minutes idle).
EVICT_AFTER_SECONDS = 0.4
#: How long a clean stop waits for running turns before it records the shutdown.
DRAIN_SECONDS = 0.1


def say(**line: object) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


class Gateway:
    def __init__(self, markers: AsyncTurnMarkers, rng: random.Random, poison: Optional[str]) -> None:
        self.markers = markers
        self.rng = rng
        self.poison = poison
        self.turns: Dict[str, asyncio.Task] = {}
        self.started: Dict[str, float] = {}
        self.suspended: set = set()

    async def start_up(self) -> None:
        """Exact where the store's own version guesses: the log says how the last process
        ended and which turns it left."""
        report = self.markers.report
        leftovers = [{"key": r.key, "generation": r.generation, "reason": r.reason, "recoveries": r.recoveries} for r in report.running]
        if report.clean_shutdown:
            discarded = await self.markers.discard_active_turn_markers()
            say(startup={"clean": True, "leftovers": leftovers, "discarded": discarded, "promoted": [], "suspended": []})
            return
        await self.markers.recover_interrupted_turns(max_age_seconds=3600)
        pending, suspended = self.markers.resume_pending(), self.markers.suspended()
        self.suspended = set(suspended)
        say(startup={
            "clean": False,
            "leftovers": leftovers,
            "promoted": sorted(pending),
            "suspended": sorted(suspended),
        })
        for key, turn in pending.items():
            say(resume=key, token=turn.token)
            await self.message(key, f"resume {turn.session_id}")

    async def message(self, key: str, text: str) -> None:
        if text == "/stop":
            task = self.turns.get(key)
            if task is not None:
                say(stop=key)
                task.cancel()
            return
        if key in self.suspended:
            return  # a crash loop: the user is told, nothing runs
        previous = self.turns.get(key)
        if previous is not None:
            previous.cancel()  # a newer message interrupts the running turn
        say(submit="mark", key=key)
        token = await self.markers.mark_turn_active(key, session_id=f"{key}:{text}")
        say(ack="mark", key=key, token=token)
        self.turns[key] = asyncio.ensure_future(self.turn(key, token))
        self.started[key] = asyncio.get_running_loop().time()

    async def turn(self, key: str, token: Optional[str]) -> None:
        try:
            if key == self.poison:
                os.kill(os.getpid(), signal.SIGKILL)  # this turn brings the process down
            await asyncio.sleep(self.rng.uniform(0.01, 0.6))  # the agent at work
        finally:
            if self.turns.get(key) is asyncio.current_task():
                del self.turns[key]
            # A late unwind: clean-up first, then the marker, maybe after a newer turn began.
            await asyncio.sleep(self.rng.uniform(0, 0.05))
            say(submit="clear", key=key, token=token)
            cleared = await self.markers.clear_turn_active(key, token)
            say(ack="clear", key=key, token=token, cleared=cleared)

    async def janitor(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = asyncio.get_running_loop().time()
            for key, task in list(self.turns.items()):
                if now - self.started.get(key, now) > EVICT_AFTER_SECONDS:
                    say(evict=key)
                    task.cancel()

    async def platform(self, keys: int, seconds: float) -> None:
        """Messages from the chat platform: a few dozen sessions, now and then a /stop."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        if self.poison:
            await self.message(self.poison, "hello")
        while loop.time() < end:
            await asyncio.sleep(self.rng.uniform(0, 0.01))
            key = f"agent:main:telegram:dm:{self.rng.randrange(keys)}"
            await self.message(key, "/stop" if self.rng.random() < 0.1 else f"m{self.rng.randrange(10**6)}")

    async def stop(self) -> None:
        """A clean stop: drain the running turns a little, then record the shutdown."""
        running = list(self.turns.values())
        if running:
            await asyncio.wait(running, timeout=DRAIN_SECONDS)
        say(stopped=len(self.turns))
        await self.markers.close()


async def main(args: argparse.Namespace) -> None:
    markers = await AsyncTurnMarkers.open(os.path.join(args.state, "inflight"))
    gateway = Gateway(markers, random.Random(args.seed), args.poison)
    await gateway.start_up()
    janitor = asyncio.ensure_future(gateway.janitor())
    platform = asyncio.ensure_future(gateway.platform(args.keys, args.seconds))
    stopping = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: stopping.done() or stopping.set_result(None))
    await asyncio.wait([platform, stopping], return_when=asyncio.FIRST_COMPLETED)
    platform.cancel()
    janitor.cancel()
    await gateway.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state", help="the gateway's state directory (its log is STATE/inflight)")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long messages arrive")
    parser.add_argument("--keys", type=int, default=24, help="how many sessions send messages")
    parser.add_argument("--seed", type=int, default=1, help="the messages' random seed")
    parser.add_argument("--poison", help="a session whose every turn crashes the process")
    asyncio.run(main(parser.parse_args()))
