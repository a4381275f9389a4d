"""Turn markers over the log: the store's calls, exact at start-up, their durable decisions
(resume-pending, suspension, progress), loops across every kind of restart, recovery from a
failed write, and the asyncio twin on the waker-based front."""

import asyncio
import logging
import signal
import time

import pytest

import inflight
from inflight.turns import AsyncTurnMarkers, InterruptedTurn, TurnMarkers

from conftest import posix_only

KEY = "agent:main:telegram:dm:4242"


def crash_and_reopen(markers, log_dir, **options):
    markers.abandon()  # SIGKILL
    return TurnMarkers(log_dir, **options)


def test_marking_again_replaces_the_token_and_clearing_is_compare_and_swap(log_dir):
    with TurnMarkers(log_dir) as markers:
        first = markers.mark_turn_active(KEY)
        second = markers.mark_turn_active(KEY)
        assert isinstance(first, str) and len(first) == 32 and first != second
        assert markers.clear_turn_active(KEY, first) is False  # a stale unwind
        assert [r.token for r in markers.log.running()] == [second]
        assert markers.clear_turn_active(KEY, second) is True
        assert markers.clear_turn_active(KEY, second) is False  # cleared already
        assert markers.clear_turn_active(KEY, None) is False
        assert markers.clear_turn_active(KEY, "a-token-of-another-store") is False
        with pytest.raises(TypeError):
            markers.clear_turn_active(KEY, 7)
        assert markers.log.running() == []


def test_a_token_naming_a_later_generation_clears_nothing(log_dir):
    with TurnMarkers(log_dir) as markers:
        token = markers.mark_turn_active(KEY)
        # The same nonce with the generation field raised, and lowered: no such turn.
        generation = int(token[16:], 16)
        for other in (generation + 1, generation + 2**32, generation - 1):
            forged = token[:16] + f"{other:016x}"
            assert markers.clear_turn_active(KEY, forged) is False
        assert [r.token for r in markers.log.running()] == [token]
        assert markers.log.high_water(KEY) == generation  # no forged generation raised it


def test_keys_whose_crc32_collide_get_tokens_that_clear_only_their_own_turn(log_dir):
    # These two chat ids have the same CRC-32: tokens built from a key checksum collided.
    a, b = "agent:main:telegram:dm:304451600148", "agent:main:telegram:dm:619112783898"
    with TurnMarkers(log_dir) as markers:
        token_a = markers.mark_turn_active(a)
        token_b = markers.mark_turn_active(b)
        assert token_a != token_b
        assert markers.clear_turn_active(b, token_a) is False
        assert markers.clear_turn_active(a, token_b) is False
        assert len(markers.log.running()) == 2


def test_the_first_turn_of_a_key_in_two_stores_has_two_tokens(tmp_path):
    with TurnMarkers(tmp_path / "one") as one, TurnMarkers(tmp_path / "two") as two:
        token_one = one.mark_turn_active(KEY)
        token_two = two.mark_turn_active(KEY)
        assert token_one != token_two
        assert one.clear_turn_active(KEY, token_two) is False
        assert two.clear_turn_active(KEY, token_one) is False
        assert one.clear_turn_active(KEY, token_one) and two.clear_turn_active(KEY, token_two)


def test_a_crash_promotes_exactly_the_turns_in_flight_and_only_once(log_dir):
    markers = TurnMarkers(log_dir)
    tokens = {f"agent:main:http:c-{i}": markers.mark_turn_active(f"agent:main:http:c-{i}", session_id=f"s{i}") for i in range(5)}
    markers.clear_turn_active("agent:main:http:c-0", tokens["agent:main:http:c-0"])
    late = markers.mark_turn_active("agent:main:http:c-1")  # replaces c-1's marker
    markers = crash_and_reopen(markers, log_dir)
    assert not markers.report.clean_shutdown
    assert sorted(markers.interrupted_turns()) == [f"agent:main:http:c-{i}" for i in range(1, 5)]
    assert markers.recover_interrupted_turns() == 4
    assert markers.recover_interrupted_turns() == 0  # the gateway's: turns *newly* promoted
    pending = markers.resume_pending()
    assert sorted(pending) == [f"agent:main:http:c-{i}" for i in range(1, 5)]
    assert pending["agent:main:http:c-1"].token == late
    turn = pending["agent:main:http:c-2"]
    assert turn == InterruptedTurn(
        key="agent:main:http:c-2",
        token=tokens["agent:main:http:c-2"],
        session_id="s2",
        started_at=turn.started_at,
        state="pending",
        reason="crash",
        recoveries=1,
        stops=0,
        crash_loop=False,
        stop_loop=False,
        pending_reason="restart_interrupted",
        pending_at=turn.pending_at,
        meta=None,
    )
    # Resuming a session is a new turn on it: no longer waiting. Declining is a clear.
    resumed = markers.mark_turn_active("agent:main:http:c-2")
    assert markers.clear_resume_pending("agent:main:http:c-3") is True
    assert sorted(markers.resume_pending()) == ["agent:main:http:c-1", "agent:main:http:c-4"]
    # The resumed turn succeeds: its completion and the pending flag's clear.
    assert markers.clear_turn_active("agent:main:http:c-2", resumed)
    markers.close()
    # Pending lasts: across a clean restart and a crash, until it is resumed or cleared.
    markers = TurnMarkers(log_dir)
    assert sorted(markers.resume_pending()) == ["agent:main:http:c-1", "agent:main:http:c-4"]
    markers = crash_and_reopen(markers, log_dir)
    assert sorted(markers.resume_pending()) == ["agent:main:http:c-1", "agent:main:http:c-4"]
    assert markers.recover_interrupted_turns() == 0
    markers.close()


def test_an_age_limit_at_most_zero_is_no_limit_and_old_turns_are_cleared(log_dir):
    with inflight.open(log_dir) as log:
        log.mark_running("old", "s", 1, started_at_ms=(time.time() - 7200) * 1000)
        log.mark_running("new", "s", 1)
        log.abandon()
    markers = TurnMarkers(log_dir)
    with pytest.raises(inflight.InvalidInputError):
        markers.recover_interrupted_turns(max_age_seconds=float("nan"))
    with pytest.raises(TypeError):
        markers.recover_interrupted_turns(max_age_seconds="1h")
    assert markers.recover_interrupted_turns(max_age_seconds=3600) == 1
    assert list(markers.resume_pending()) == ["new"]
    assert [r.key for r in markers.log.running()] == ["new"]
    markers.close()
    for no_limit in (0, -1, 0.0, float("inf")):
        with inflight.open(log_dir) as log:
            generation = (log.high_water("old") or 0) + 1
            log.mark_running("old", "s", generation, started_at_ms=(time.time() - 7200) * 1000)
            log.abandon()
        markers = TurnMarkers(log_dir)
        # The old turn is no longer cleared: promoted, whatever its age.
        assert markers.recover_interrupted_turns(max_age_seconds=no_limit) == 1, no_limit
        assert "old" in markers.resume_pending()
        assert markers.clear_resume_pending("old")
        markers.close()


def test_a_pending_turn_that_never_runs_again_is_not_counted_by_later_crashes(log_dir):
    markers = TurnMarkers(log_dir, crash_loop_threshold=3)
    markers.mark_turn_active(KEY)
    markers = crash_and_reopen(markers, log_dir, crash_loop_threshold=3)
    assert markers.recover_interrupted_turns() == 1  # its adapter is not connected yet
    for i in range(4):  # unrelated crashes: other sessions' turns die with the process
        markers.mark_turn_active(f"agent:main:http:other-{i}")
        markers = crash_and_reopen(markers, log_dir, crash_loop_threshold=3)
        markers.recover_interrupted_turns()
    turn = markers.resume_pending()[KEY]
    assert (turn.recoveries, turn.crash_loop) == (1, False)
    assert KEY not in markers.suspended()
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
    # Promoted once: a resumed turn keeps its pending state until it succeeds (the store's
    # meaning), so it is not "newly" promoted again; at the third crash in a row it is a loop.
    assert promoted == [1, 0, 0, 0]
    markers = TurnMarkers(log_dir, crash_loop_threshold=3)
    assert markers.recover_interrupted_turns() == 0
    suspended = markers.suspended()
    assert list(suspended) == [KEY] and suspended[KEY].crash_loop and suspended[KEY].recoveries == 3
    # The user writes again: a new session; its turn completes and the loop is over.
    token = markers.mark_turn_active(KEY)
    assert markers.suspended() == {}
    assert markers.clear_turn_active(KEY, token)
    markers = crash_and_reopen(markers, log_dir, crash_loop_threshold=3)
    assert markers.report.running == [] and markers.recover_interrupted_turns() == 0
    markers.close()


def test_a_turn_that_restarts_the_gateway_gracefully_is_a_reboot_loop(log_dir):
    # The turn's tool restarts the gateway: a graceful stop whose drain times out, each time.
    markers = TurnMarkers(log_dir, stop_loop_threshold=2)
    markers.mark_turn_active(KEY)
    for life in range(3):
        markers.mark_resume_pending(KEY, "restart_timeout")  # the drain timed out
        markers.close()
        markers = TurnMarkers(log_dir, stop_loop_threshold=2)
        assert markers.report.clean_shutdown
        markers.discard_active_turn_markers()
        pending = markers.resume_pending()
        if life == 0:
            assert pending[KEY].pending_reason == "restart_timeout" and pending[KEY].stops == 1
        if KEY not in pending:
            break
        markers.mark_turn_active(KEY)  # resumed: and it restarts the gateway again
    turn = markers.suspended()[KEY]
    assert (turn.stops, turn.stop_loop, turn.recoveries) == (2, True, 0)
    assert [r.key for r in markers.report.stop_loops] == [KEY]
    markers.close()


def test_a_drain_timeouts_turns_become_pending_instead_of_cleared(log_dir):
    markers = TurnMarkers(log_dir)
    markers.mark_turn_active("drained")  # still running when the drain timed out
    crashed = markers.mark_turn_active("crashed")
    markers = crash_and_reopen(markers, log_dir)
    markers.recover_interrupted_turns()
    markers.mark_turn_active("drained")  # resumed before the shutdown, still running at it
    assert markers.clear_resume_pending("crashed") is True  # declined: dropped
    markers.mark_turn_active("left")
    markers.abandon()
    markers = TurnMarkers(log_dir)
    markers.close()  # a clean shutdown of a process that decided nothing
    markers = TurnMarkers(log_dir)
    assert markers.report.clean_shutdown
    # discard clears what a crash left (nobody resumed "left"), keeps the rest.
    assert markers.discard_active_turn_markers() == 1
    assert sorted(markers.resume_pending()) == ["drained"]
    assert [r.key for r in markers.log.running()] == ["drained"]
    assert crashed is not None
    markers.close()
    # The same after a clean shutdown whose drain cut a turn the gateway did not mark: it is
    # kept pending (shutdown_timeout), not lost.
    markers = TurnMarkers(log_dir)
    markers.mark_turn_active("cut")
    markers.close()
    markers = TurnMarkers(log_dir)
    assert markers.recover_interrupted_turns() == 1
    assert markers.resume_pending()["cut"].pending_reason == "shutdown_timeout"
    markers.close()


def test_decisions_are_durable_and_a_suspension_is_never_overridden(log_dir):
    markers = TurnMarkers(log_dir)
    token = markers.mark_turn_active(KEY)
    assert markers.mark_resume_pending("nobody") is False
    assert markers.suspend_session(KEY) is True
    assert markers.mark_resume_pending(KEY, "restart_timeout") is False
    markers = crash_and_reopen(markers, log_dir)
    assert list(markers.suspended()) == [KEY] and markers.suspended()[KEY].token == token
    assert markers.recover_interrupted_turns() == 0  # never re-armed
    assert markers.resume_pending() == {}
    assert markers.clear_turn_active(KEY, token)  # its token still ends it
    markers.close()


def test_progress_is_durable_and_recovery_says_where_the_turn_got(log_dir):
    markers = TurnMarkers(log_dir)
    token = markers.mark_turn_active(KEY, meta='{"step":"thinking"}')
    other = markers.mark_turn_active("agent:main:http:c-5")
    assert markers.record_progress(KEY, token, '{"step":"reply_ready","message":981}')
    assert markers.record_progress(KEY, other, "not mine") is False
    markers = crash_and_reopen(markers, log_dir)
    turns = markers.interrupted_turns()
    assert turns[KEY].meta == '{"step":"reply_ready","message":981}'
    # The gateway delivers the reply instead of running the turn again, and clears it.
    assert markers.clear_turn_active(KEY, turns[KEY].token)
    assert markers.recover_interrupted_turns() == 1
    assert list(markers.resume_pending()) == ["agent:main:http:c-5"]
    markers.close()


@posix_only
def test_a_failed_write_is_recovered_by_reopening_on_the_next_call(log_dir, caplog):
    import resource

    markers = TurnMarkers(log_dir)
    kept = markers.mark_turn_active(KEY)
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
        # While the disk is still full, a decision raises an OSError (the store's own kind).
        with pytest.raises(OSError):
            markers.clear_turn_active(KEY, kept)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    with caplog.at_level(logging.WARNING, logger="inflight.turns"):
        again = markers.mark_turn_active("agent:main:http:after")
    assert again is not None, "the next call reopens the log"
    assert any("reopening the log" in r.message for r in caplog.records)
    # The turn begun before the failure is still owned by its token: not counted as a crash.
    turn = {r.key: r for r in markers.log.running()}[KEY]
    assert (turn.token, turn.state, turn.recoveries) == (kept, "running", 0)
    assert markers.clear_turn_active(KEY, kept)
    assert markers.clear_turn_active("agent:main:http:after", again)
    markers.close()


def test_storage_errors_are_oserrors_and_a_closed_store_marks_nothing(log_dir):
    assert issubclass(inflight.PoisonedError, OSError)
    assert issubclass(inflight.StorageError, OSError)
    markers = TurnMarkers(log_dir)
    markers.close()
    assert markers.mark_turn_active(KEY) is None  # ClosedError does not escape


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
        assert await markers.record_progress("k50", tokens[50], "reply ready")
        assert await markers.clear_turn_active("k51", "no token") is False
        markers.abandon()  # the process dies

    async def second_life():
        async with await AsyncTurnMarkers.open(log_dir) as markers:
            assert markers.interrupted_turns()["k50"].meta == "reply ready"
            assert await markers.recover_interrupted_turns(max_age_seconds=3600) == 50
            assert await markers.recover_interrupted_turns(max_age_seconds=3600) == 0
            assert sorted(markers.resume_pending()) == sorted(f"k{i}" for i in range(50, 100))
            assert await markers.suspend_session("k50") is True
            assert await markers.mark_resume_pending("k50") is False
            assert await markers.clear_resume_pending("k51") is True
            assert await markers.discard_active_turn_markers() == 0  # pending turns stay
        async with await AsyncTurnMarkers.open(log_dir) as markers:
            assert markers.report.clean_shutdown
            assert len(markers.resume_pending()) == 48 and list(markers.suspended()) == ["k50"]
            assert await markers.recover_interrupted_turns() == 0

    asyncio.run(first_life())
    asyncio.run(second_life())
