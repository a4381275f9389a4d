"""The example gateway (``python/examples/gateway.py``), killed with SIGKILL at random instants
many times, now and then stopped cleanly (its drain cutting turns), with a session whose turns
crash it and one whose turns restart it gracefully: after every restart, the turns the log
reports are exactly the ones the gateway had acknowledged and not cleared (give or take the one
call in flight when it died) plus the ones still pending from before; every compare-and-swap it
saw agreed with that model; a pending turn that waited is never counted by a restart it did not
run through; both loops end suspended, never resumed again.

``INFLIGHT_GATEWAY_LIVES`` sets how many lives (30 by default).
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from conftest import posix_only

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "gateway.py")
POISON = "agent:main:telegram:dm:poison"
REBOOT = "agent:main:telegram:dm:reboot"


pytestmark = posix_only


@dataclass
class Turn:
    """What the acknowledgements say of one key's marker."""

    token: Optional[str] = None  # of the last acknowledged mark (or kept at start-up)
    cleared: bool = False  # its clear was acknowledged
    clearing: bool = False  # its clear was submitted, not acknowledged
    marking: bool = False  # a newer mark was submitted, not acknowledged


def live(state: str, seed: int, seconds: float, stop: bool, env: dict) -> List[dict]:
    """One life of the gateway: started, then killed (or stopped) ``seconds`` after its
    start-up line, or when it stops on its own (the poison, a reboot)."""
    child = subprocess.Popen(
        [sys.executable, EXAMPLE, state, "--seconds", "60", "--seed", str(seed), "--poison", POISON, "--reboot", REBOOT],
        stdout=subprocess.PIPE,
        env=env,
    )
    lines: List[dict] = []
    started = threading.Event()

    def read() -> None:
        for raw in child.stdout:
            line = json.loads(raw)
            lines.append(line)
            if "startup" in line:
                started.set()

    reader = threading.Thread(target=read)
    reader.start()
    started.wait(timeout=30)
    deadline = time.monotonic() + seconds
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if child.poll() is None:
        child.send_signal(signal.SIGTERM if stop else signal.SIGKILL)
    child.wait(timeout=30)
    reader.join()
    return lines


def check_leftovers(leftovers: List[dict], model: Dict[str, Turn]) -> None:
    """The log's turns at start-up against the acknowledgements of the life before."""
    left = {l["key"]: l["token"] for l in leftovers}
    for key, turn in model.items():
        got = left.pop(key, None)
        allowed = set()
        if turn.token is not None and not turn.cleared:
            allowed.add(turn.token)  # acknowledged, never cleared: it must be there...
            if turn.clearing:
                allowed.add(None)  # ...unless its clear, in flight at the kill, got through
        else:
            allowed.add(None)
        newer = turn.marking and got is not None and got != turn.token
        assert got in allowed or newer, f"{key}: the log has {got}, the acknowledgements allow {allowed} (marking: {turn.marking})"
    assert not left, f"turns nobody marked: {left}"


def apply(line: dict, model: Dict[str, Turn]) -> None:
    """One line of the gateway's output, into the model; every clear's answer is checked."""
    if line.get("submit") == "mark":
        model.setdefault(line["key"], Turn()).marking = True
    elif line.get("ack") == "mark":
        assert line["token"] is not None, line
        model[line["key"]] = Turn(token=line["token"])
    elif line.get("submit") == "clear":
        turn = model.setdefault(line["key"], Turn())
        if line["token"] == turn.token:
            turn.clearing = True
    elif line.get("ack") == "clear":
        turn = model[line["key"]]
        owned = line["token"] == turn.token and not turn.cleared
        # A newer mark in flight may have superseded the token already: then False is right too.
        expected = {owned, False} if turn.marking else {owned}
        assert line["cleared"] in expected, f"clear {line}: the model says owned={owned} ({turn})"
        if line["cleared"]:
            turn.cleared, turn.clearing = True, False


def test_the_example_gateway_loses_no_acknowledged_turn_across_kills(tmp_path, python_env):
    lives = int(os.environ.get("INFLIGHT_GATEWAY_LIVES", "30"))
    rng = random.Random(20261206)
    state = str(tmp_path / "gw")
    model: Dict[str, Turn] = {}
    waiting: Dict[str, Tuple[str, int, int]] = {}  # pending at the last start-up: token, counts
    seen = dict.fromkeys(
        ["kills", "clean starts", "late unwinds", "stops", "evictions", "resumes", "deferred resumes",
         "waits across a restart", "drains that cut turns", "replies delivered", "poison suspended",
         "reboot suspended"],
        0,
    )
    for life in range(lives):
        stop = life % 5 == 4
        lines = live(state, seed=life, seconds=rng.uniform(0.2, 1.2), stop=stop, env=python_env)
        at = next(i for i, l in enumerate(lines) if "startup" in l)
        startup = lines[at]["startup"]
        check_leftovers(startup["leftovers"], model)
        seen["clean starts"] += startup["clean"]
        seen["replies delivered"] += len(startup["delivered"])
        pending = {t["key"]: t for t in startup["pending"]}
        suspended = {t["key"]: t for t in startup["suspended"]}
        before = waiting
        for key, (token, recoveries, stops) in before.items():
            now = pending.get(key) or suspended.get(key)
            if now is not None and now["token"] == token:
                # It waited and never ran: the restart in between did not count it.
                assert (now["recoveries"], now["stops"]) == (recoveries, stops), (key, now)
                seen["waits across a restart"] += 1
        waiting = {k: (t["token"], t["recoveries"], t["stops"]) for k, t in pending.items()}
        if POISON in suspended:
            assert suspended[POISON]["recoveries"] >= 3, suspended[POISON]
            seen["poison suspended"] += 1
        if REBOOT in suspended:
            assert suspended[REBOOT]["stops"] >= 3, suspended[REBOOT]
            seen["reboot suspended"] += 1
        model = {key: Turn(token=token) for key, token in startup["kept"].items()}
        for line in lines[at + 1:]:
            apply(line, model)
            seen["late unwinds"] += line.get("ack") == "clear" and not line["cleared"]
            seen["stops"] += "stop" in line
            seen["evictions"] += "evict" in line
            seen["drains that cut turns"] += bool(line.get("drain"))
            if "resume" in line:
                assert line["resume"] not in suspended, "a loop was resumed"
                seen["resumes"] += 1
                # Pending since an earlier life: resumed only now, its adapter connected.
                seen["deferred resumes"] += before.get(line["resume"], ("",))[0] == line["token"]
        seen["kills"] += not stop and not any("stopped" in l for l in lines)
    print(f"example gateway, {lives} lives: {seen}")
    # Every part of the lifecycle was exercised, so a change cannot shrink the test silently.
    assert all(n > 0 for n in seen.values()), seen
