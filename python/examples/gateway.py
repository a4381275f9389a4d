"""A small asyncio chat gateway on ``inflight``'s turn markers, with a real turn lifecycle.

Messages arrive for a few dozen sessions; each starts a turn (an "agent run" that takes a
while), marked active before it starts and cleared in its ``finally``. A newer message on a
session interrupts its running turn; ``/stop`` cancels it; a janitor evicts turns that run too
long. Each of those ends a turn late: its ``finally`` clears the marker only after some
clean-up, often after a newer turn on the session began, and the compare-and-swap of
``clear_turn_active`` keeps that newer turn's marker. A turn records its progress when its
reply is ready, before delivering it.

At start-up the gateway asks the log what the last process left:

- the turns marked active when it stopped whose reply was already made are delivered, not run
  again (``interrupted_turns()`` and their progress);
- after a crash, the rest become resume-pending (``recover_interrupted_turns``); after a clean
  shutdown, what a crash left is discarded and what the drain cut stays pending;
- a pending turn is resumed only once its platform's adapter is connected (a random delay):
  if the process stops first, it stays pending for the next life, as long as it takes;
- loops are suspended, not resumed: a session named with ``--poison KEY`` crashes the process
  (SIGKILL, as an out-of-memory kill would) whenever a turn of it runs, one named with
  ``--reboot KEY`` restarts the gateway gracefully (its tool asks for a restart).

A clean stop (SIGTERM, or a ``--reboot`` turn) drains the running turns for a moment, marks the
ones still running resume-pending (``shutdown_timeout``), and records the shutdown.

    python python/examples/gateway.py /tmp/gw --seconds 5

Each line on stdout is JSON, flushed, so that a test can kill the process at any instant and
check every turn it acknowledged: ``{"submit": "mark", "key": K}`` before a turn is marked,
``{"ack": "mark", "key": K, "token": T}`` once it is durable; ``{"submit": "clear", ...}`` and
``{"ack": "clear", "key": K, "token": T, "cleared": bool}`` likewise; ``{"startup": ...}`` with
what the log reported and the turns kept after its decisions; ``{"deliver": K}``,
``{"resume": K}``, ``{"stop": K}``, ``{"evict": K}``, ``{"drain": [K...]}``, ``{"stopped": N}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
from typing import Dict, Optional, Set

from inflight.turns import AsyncTurnMarkers, InterruptedTurn

#: How long a turn may run before the janitor evicts it (a real gateway: 30 minutes idle).
EVICT_AFTER_SECONDS = 0.4
#: How long a clean stop waits for running turns before it records the shutdown.
DRAIN_SECONDS = 0.1
#: What a turn's progress says once its reply is made and only needs delivering.
REPLY_READY = "reply_ready"


def say(**line: object) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def turns(found: Dict[str, InterruptedTurn]) -> list:
    return [
        {"key": t.key, "token": t.token, "state": t.state, "reason": t.reason, "recoveries": t.recoveries, "stops": t.stops, "pending_reason": t.pending_reason, "meta": t.meta}
        for t in found.values()
    ]


class Gateway:
    def __init__(self, markers: AsyncTurnMarkers, rng: random.Random, poison: Optional[str], reboot: Optional[str]) -> None:
        self.markers = markers
        self.rng = rng
        self.poison = poison
        self.reboot = reboot
        self.turns: Dict[str, asyncio.Task] = {}
        self.tokens: Dict[str, Optional[str]] = {}
        self.started: Dict[str, float] = {}
        self.suspended: Set[str] = set()
        self.resuming: Set[str] = set()
        self.stopping: Optional[asyncio.Future] = None
        #: Set once the shutdown is being recorded: the turns the drain cut stay as they are.
        self.closing = False

    async def start_up(self) -> None:
        """Exact where the store's own version guesses: the log says how the last process
        ended, which turns it left and where each got."""
        report = self.markers.report
        leftovers = [
            {"key": r.key, "token": r.token, "state": r.state, "reason": r.reason, "recoveries": r.recoveries, "stops": r.stops}
            for r in report.running
        ]
        # Replies already made are delivered, not made again.
        delivered = []
        for key, turn in self.markers.interrupted_turns().items():
            if turn.meta == REPLY_READY:
                say(deliver=key, token=turn.token)
                if await self.markers.clear_turn_active(key, turn.token):
                    delivered.append(key)
        if report.clean_shutdown:
            await self.markers.discard_active_turn_markers()
        else:
            await self.markers.recover_interrupted_turns(max_age_seconds=3600)
        pending, suspended = self.markers.resume_pending(), self.markers.suspended()
        self.suspended = set(suspended)
        kept = {r.key: r.token for r in self.markers.log.running()}
        say(startup={
            "clean": report.clean_shutdown,
            "leftovers": leftovers,
            "delivered": delivered,
            "pending": turns(pending),
            "suspended": turns(suspended),
            "kept": kept,
        })
        self.resuming = set(pending)

    async def adapter(self) -> None:
        """The platform's adapter connects after a while; only then are pending turns resumed
        (a real gateway: when Telegram, Discord, ... are connected again)."""
        await asyncio.sleep(self.rng.uniform(0, 0.8))
        for key, turn in self.markers.resume_pending().items():
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
            return  # a loop: the user is told, nothing runs
        previous = self.turns.get(key)
        if previous is not None:
            previous.cancel()  # a newer message interrupts the running turn
        say(submit="mark", key=key)
        token = await self.markers.mark_turn_active(key, session_id=f"{key}:{text}")
        say(ack="mark", key=key, token=token)
        self.tokens[key] = token
        self.turns[key] = asyncio.ensure_future(self.turn(key, token))
        self.started[key] = asyncio.get_running_loop().time()

    async def turn(self, key: str, token: Optional[str]) -> None:
        succeeded = False
        try:
            if key == self.poison:
                os.kill(os.getpid(), signal.SIGKILL)  # this turn brings the process down
            if key == self.reboot and self.stopping is not None and not self.stopping.done():
                self.stopping.set_result("reboot")  # this turn's tool restarts the gateway
                await asyncio.sleep(60)
            await asyncio.sleep(self.rng.uniform(0.01, 0.6))  # the agent at work
            if token is not None:
                await self.markers.record_progress(key, token, REPLY_READY)
            await asyncio.sleep(self.rng.uniform(0, 0.05))  # delivering the reply
            succeeded = True
        finally:
            if self.turns.get(key) is asyncio.current_task():
                del self.turns[key]
            if self.closing:
                return  # cut by the drain: resume-pending, not cleared
            # A late unwind: clean-up first, then the marker, maybe after a newer turn began.
            await asyncio.sleep(self.rng.uniform(0, 0.05))
            say(submit="clear", key=key, token=token)
            cleared = await self.markers.clear_turn_active(key, token)
            say(ack="clear", key=key, token=token, cleared=cleared)
            if succeeded and cleared and key in self.resuming:
                self.resuming.discard(key)
                await self.markers.clear_resume_pending(key)  # the resumed turn succeeded

    async def janitor(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = asyncio.get_running_loop().time()
            for key, task in list(self.turns.items()):
                if key != self.reboot and now - self.started.get(key, now) > EVICT_AFTER_SECONDS:
                    say(evict=key)
                    task.cancel()

    async def platform(self, keys: int, seconds: float) -> None:
        """Messages from the chat platform: a few dozen sessions, now and then a /stop."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        for special in (self.poison, self.reboot):
            if special and self.rng.random() < 0.5:
                await self.message(special, "hello")
        while loop.time() < end:
            await asyncio.sleep(self.rng.uniform(0, 0.01))
            key = f"agent:main:telegram:dm:{self.rng.randrange(keys)}"
            await self.message(key, "/stop" if self.rng.random() < 0.1 else f"m{self.rng.randrange(10**6)}")

    async def stop(self) -> None:
        """A clean stop: drain the running turns a little; those still running when the drain
        times out are resume-pending, then the shutdown is recorded."""
        running = list(self.turns.values())
        if running:
            await asyncio.wait(running, timeout=DRAIN_SECONDS)
        cut = sorted(self.turns)
        for key in cut:
            await self.markers.mark_resume_pending(key, "shutdown_timeout")
        say(drain=cut)
        say(stopped=len(cut))
        self.closing = True
        await self.markers.close()


async def main(args: argparse.Namespace) -> None:
    markers = await AsyncTurnMarkers.open(os.path.join(args.state, "inflight"), stop_loop_threshold=3)
    gateway = Gateway(markers, random.Random(args.seed), args.poison, args.reboot)
    loop = asyncio.get_running_loop()
    gateway.stopping = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: gateway.stopping.done() or gateway.stopping.set_result("sigterm"))
    await gateway.start_up()
    janitor = asyncio.ensure_future(gateway.janitor())
    adapter = asyncio.ensure_future(gateway.adapter())
    platform = asyncio.ensure_future(gateway.platform(args.keys, args.seconds))
    await asyncio.wait([platform, gateway.stopping], return_when=asyncio.FIRST_COMPLETED)
    for task in (platform, janitor, adapter):
        task.cancel()
    await gateway.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state", help="the gateway's state directory (its log is STATE/inflight)")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long messages arrive")
    parser.add_argument("--keys", type=int, default=24, help="how many sessions send messages")
    parser.add_argument("--seed", type=int, default=1, help="the messages' random seed")
    parser.add_argument("--poison", help="a session whose every turn crashes the process")
    parser.add_argument("--reboot", help="a session whose every turn restarts the gateway gracefully")
    asyncio.run(main(parser.parse_args()))
