"""Turn markers over the log: the store's four calls, exact at start-up, and their asyncio
twin on the waker-based front."""

import asyncio
import resource
import signal
import time

import pytest

import inflight
from inflight.turns import (
    AsyncTurnMarkers,
    InterruptedTurn,
    TurnMarkers,
    generation_of,
    plan_recovery,
    token_for,
)

KEY = "agent:main:telegram:dm:4242"


def test_marking_again_replaces_the_token_and_clearing_is_compare_and_swap(log_dir):
    with TurnMarkers(log_dir) as markers:
        first = markers.mark_turn_active(KEY)
        second = markers.mark_turn_active(KEY)
        assert isinstance(first, str) and first != second
        assert markers.clear_turn_active(KEY, first) is False  # a stale unwind
        assert [r.generation for r in markers.log.running()] == [generation_of(KEY, second)]
        assert markers.clear_turn_active(KEY, second) is True
        assert markers.clear_turn_active(KEY, second) is False  # cleared already
        assert markers.clear_turn_active(KEY, None) is False
        assert markers.clear_turn_active(KEY, "a-token-of-another-store") is False
        with pytest.raises(TypeError):
            markers.clear_turn_active(KEY, 7)
        assert markers.log.running() == []


def test_tokens_are_opaque_strings_carrying_the_generation_for_one_key():
    assert generation_of(KEY, token_for(KEY, 0)) == 0
    assert generation_of(KEY, token_for(KEY, 2**64 - 1)) == 2**64 - 1
    assert generation_of("another key", token_for(KEY, 7)) is None
    tag = token_for(KEY, 1).rsplit("-", 1)[1]
    for other in ["", "inflight-", "inflight--" + tag, "inflight-1.5-" + tag, f"inflight-{2**64}-" + tag, "inflight-١-" + tag]:
        assert generation_of(KEY, other) is None, other


def test_a_token_of_one_key_does_not_clear_another(log_dir):
    with TurnMarkers(log_dir) as markers:
        a = markers.mark_turn_active("a")
        markers.mark_turn_active("b")  # the same generation, 1, on another key
        assert markers.clear_turn_active("b", a) is False
        assert len(markers.log.running()) == 2


def test_a_clean_shutdown_promotes_nothing_and_discard_clears_the_leftovers(log_dir):
    markers = TurnMarkers(log_dir)
    markers.mark_turn_active(KEY)  # still running when the drain timed out
    markers.close()
    markers = TurnMarkers(log_dir)
    assert markers.report.clean_shutdown
    assert markers.recover_interrupted_turns() == 0
    assert markers.resume_pending() == {}
    assert markers.log.running() == []  # a clean shutdown's leftover is cleared
    markers.mark_turn_active(KEY)
    markers.close()
    markers = TurnMarkers(log_dir)
    assert markers.discard_active_turn_markers() == 1
    assert markers.discard_active_turn_markers() == 0
    markers.close()


def test_a_crash_promotes_exactly_the_turns_in_flight(log_dir):
    markers = TurnMarkers(log_dir)
    tokens = {f"agent:main:http:c-{i}": markers.mark_turn_active(f"agent:main:http:c-{i}", session_id=f"s{i}") for i in range(5)}
    markers.clear_turn_active("agent:main:http:c-0", tokens["agent:main:http:c-0"])
    late = markers.mark_turn_active("agent:main:http:c-1")  # replaces c-1's marker
    markers.abandon()  # SIGKILL

    markers = TurnMarkers(log_dir)
    assert not markers.report.clean_shutdown
    assert markers.recover_interrupted_turns() == 4
    pending = markers.resume_pending()
    assert sorted(pending) == [f"agent:main:http:c-{i}" for i in range(1, 5)]
    assert pending["agent:main:http:c-1"].token == late
    assert pending["agent:main:http:c-2"] == InterruptedTurn(
        key="agent:main:http:c-2",
        token=tokens["agent:main:http:c-2"],
        session_id="s2",
        started_at=pending["agent:main:http:c-2"].started_at,
        reason="crash",
        recoveries=1,
        crash_loop=False,
        meta=None,
    )
    # Resuming a session is a new turn on it: no longer pending. Declining is a clear.
    markers.mark_turn_active("agent:main:http:c-2")
    assert markers.clear_turn_active("agent:main:http:c-3", pending["agent:main:http:c-3"].token)
    assert sorted(markers.resume_pending()) == ["agent:main:http:c-1", "agent:main:http:c-4"]
    markers.close()


def test_old_markers_are_cleared_without_resuming(log_dir):
    with inflight.open(log_dir) as log:
        log.mark_running("old", "s", 1, started_at_ms=(time.time() - 7200) * 1000)
        log.mark_running("new", "s", 1)
        log.abandon()
    markers = TurnMarkers(log_dir)
    assert markers.recover_interrupted_turns(max_age_seconds=3600) == 1
    assert list(markers.resume_pending()) == ["new"]
    assert [r.key for r in markers.log.running()] == ["new"]
    with pytest.raises(inflight.InvalidInputError):
        markers.recover_interrupted_turns(max_age_seconds=float("nan"))
    with pytest.raises(TypeError):
        markers.recover_interrupted_turns(max_age_seconds="1h")
    markers.close()


def test_a_turn_that_crashes_every_restart_is_suspended_not_resumed(log_dir):
    # Each start-up resumes the turn (a new turn on the key), which crashes the process again.
    markers = TurnMarkers(log_dir, crash_loop_threshold=3)
    markers.mark_turn_active(KEY)
    markers.abandon()
    promoted = []
    for _ in range(4):
        markers = TurnMarkers(log_dir, crash_loop_threshold=3)
        promoted.append(markers.recover_interrupted_turns())
        for key in markers.resume_pending():
            markers.mark_turn_active(key)  # resume: and the process dies again
        markers.abandon()
    assert promoted == [1, 1, 0, 0]
    markers = TurnMarkers(log_dir, crash_loop_threshold=3)
    assert markers.recover_interrupted_turns() == 0
    suspended = markers.suspended()
    assert list(suspended) == [KEY] and suspended[KEY].crash_loop and suspended[KEY].recoveries == 5
    # The user writes again and the turn completes: the loop is over.
    token = markers.mark_turn_active(KEY)
    assert markers.clear_turn_active(KEY, token)
    markers.abandon()
    markers = TurnMarkers(log_dir, crash_loop_threshold=3)
    assert markers.report.running == [] and markers.recover_interrupted_turns() == 0
    markers.close()


def test_a_failed_write_gives_no_token(log_dir):
    with TurnMarkers(log_dir) as markers:
        markers.mark_turn_active(KEY)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
        try:
            for i in range(2000):
                token = markers.mark_turn_active(f"agent:main:http:c-{i}", meta="m" * 4000)
                if token is None:
                    break
            else:
                pytest.fail("the file size limit never stopped a write")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous)
        assert markers.mark_turn_active(KEY) is None  # poisoned: every later mark fails too
        markers.abandon()


def test_the_recovery_plan_is_pure():
    class Run:
        def __init__(self, key, reason, started_at, crash_loop=False):
            self.key, self.reason, self.started_at, self.crash_loop = key, reason, started_at, crash_loop

    runs = [Run("a", "crash", 990), Run("b", "crash", 100), Run("c", "shutdown", 995), Run("d", "crash", 999, True)]
    plan = plan_recovery(runs, max_age_seconds=60, now=1000)
    assert [r.key for r in plan.promote] == ["a"]
    assert [r.key for r in plan.suspend] == ["d"]
    assert [r.key for r in plan.clear] == ["b", "c"]


def test_a_second_store_in_the_same_process_takes_the_log_over(log_dir):
    first = TurnMarkers(log_dir)
    token = first.mark_turn_active(KEY)
    with pytest.warns(RuntimeWarning, match="abandoned"):
        second = TurnMarkers(log_dir)
    assert second.recover_interrupted_turns() == 1
    assert second.resume_pending()[KEY].token == token
    with pytest.raises(inflight.ClosedError):
        first.clear_turn_active(KEY, token)
    second.close()


def test_the_async_twin_has_the_same_calls(log_dir):
    async def first_life():
        markers = await AsyncTurnMarkers.open(log_dir)
        tokens = await asyncio.gather(*(markers.mark_turn_active(f"k{i}") for i in range(100)))
        assert len(set(tokens)) == 100
        newer = await markers.mark_turn_active("k0")
        assert await markers.clear_turn_active("k0", tokens[0]) is False
        assert await markers.clear_turn_active("k0", newer) is True
        cleared = await asyncio.gather(*(markers.clear_turn_active(f"k{i}", tokens[i]) for i in range(1, 50)))
        assert all(cleared)
        markers.abandon()  # the process dies

    async def second_life():
        async with await AsyncTurnMarkers.open(log_dir) as markers:
            assert await markers.recover_interrupted_turns(max_age_seconds=3600) == 50
            assert sorted(markers.resume_pending()) == sorted(f"k{i}" for i in range(50, 100))
            assert await markers.discard_active_turn_markers() == 50
        async with await AsyncTurnMarkers.open(log_dir) as markers:
            assert markers.report.clean_shutdown and markers.report.running == []
            assert await markers.recover_interrupted_turns() == 0

    asyncio.run(first_life())
    asyncio.run(second_life())

