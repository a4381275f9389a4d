"""The example gateway (``python/examples/gateway.py``), killed with SIGKILL at random instants
many times (and now and then stopped cleanly): after every restart, the turns the log reports
are exactly the ones the gateway had acknowledged and not cleared, give or take the one call in
flight when it died, and every compare-and-swap it saw agreed with that model.

``INFLIGHT_GATEWAY_LIVES`` sets how many lives (20 by default).
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
from typing import Dict, List, Optional

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "gateway.py")
POISON = "agent:main:telegram:dm:poison"


@dataclass
class Turn:
    """What the acknowledgements say of one key's marker."""

    generation: Optional[int] = None  # of the last acknowledged mark
    cleared: bool = False  # its clear was acknowledged
    clearing: bool = False  # its clear was submitted, not acknowledged
    marking: bool = False  # a newer mark was submitted, not acknowledged


def generation(token: str) -> int:
    return int(token.split("-")[1])


def live(state: str, seed: int, seconds: float, stop: bool, env: dict) -> List[dict]:
    """One life of the gateway: started, then killed (or stopped) ``seconds`` after its
    start-up line, or when it dies on its own (the poison)."""
    child = subprocess.Popen(
        [sys.executable, EXAMPLE, state, "--seconds", "60", "--seed", str(seed), "--poison", POISON],
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


def check_startup(startup: dict, model: Dict[str, Turn]) -> None:
    """The log's leftovers against the acknowledgements of the life before."""
    left = {l["key"]: l["generation"] for l in startup["leftovers"]}
    for key, turn in model.items():
        got = left.pop(key, None)
        allowed = set()
        if turn.generation is not None and not turn.cleared:
            allowed.add(turn.generation)  # acknowledged, never cleared: it must be there...
            if turn.clearing:
                allowed.add(None)  # ...unless its clear, in flight at the kill, got through
        else:
            allowed.add(None)
        newer = turn.marking and got is not None and (turn.generation is None or got > turn.generation)
        assert got in allowed or newer, f"{key}: the log has {got}, the acknowledgements allow {allowed} (marking: {turn.marking})"
    assert not left, f"turns nobody marked: {left}"


def apply(line: dict, model: Dict[str, Turn]) -> None:
    """One line of the gateway's output, into the model; every clear's answer is checked."""
    if line.get("submit") == "mark":
        model.setdefault(line["key"], Turn()).marking = True
    elif line.get("ack") == "mark":
        assert line["token"] is not None, line
        model[line["key"]] = Turn(generation=generation(line["token"]))
    elif line.get("submit") == "clear":
        turn = model.setdefault(line["key"], Turn())
        if generation(line["token"]) == turn.generation:
            turn.clearing = True
    elif line.get("ack") == "clear":
        turn = model[line["key"]]
        owned = generation(line["token"]) == turn.generation and not turn.cleared
        # A newer mark in flight may have superseded the token already: then False is right too.
        expected = {owned, False} if turn.marking else {owned}
        assert line["cleared"] in expected, f"clear {line}: the model says owned={owned} ({turn})"
        if line["cleared"]:
            turn.cleared, turn.clearing = True, False


def test_the_example_gateway_loses_no_acknowledged_turn_across_kills(tmp_path, python_env):
    lives = int(os.environ.get("INFLIGHT_GATEWAY_LIVES", "20"))
    rng = random.Random(20261203)
    state = str(tmp_path / "gw")
    model: Dict[str, Turn] = {}
    seen = {"kills": 0, "clean starts": 0, "late unwinds": 0, "stops": 0, "evictions": 0, "resumes": 0, "poison suspended": 0}
    for life in range(lives):
        stop = life % 5 == 4
        lines = live(state, seed=life, seconds=rng.uniform(0.2, 1.2), stop=stop, env=python_env)
        startup = lines[0]["startup"]
        check_startup(startup, model)
        suspended = set(startup["suspended"])
        kept = set(startup["promoted"]) | suspended
        model = {key: Turn(generation=g) for key, g in ((l["key"], l["generation"]) for l in startup["leftovers"]) if key in kept}
        seen["clean starts"] += startup["clean"]
        seen["poison suspended"] += POISON in suspended
        for line in lines[1:]:
            apply(line, model)
            seen["late unwinds"] += line.get("ack") == "clear" and not line["cleared"]
            seen["stops"] += "stop" in line
            seen["evictions"] += "evict" in line
            if "resume" in line:
                assert line["resume"] not in suspended, "a crash loop was resumed"
                seen["resumes"] += 1
        seen["kills"] += not stop and not any("stopped" in l for l in lines)
    print(f"example gateway, {lives} lives: {seen}")
    # Every part of the lifecycle was exercised, so a change cannot shrink the test silently.
    assert all(n > 0 for n in seen.values()), seen
