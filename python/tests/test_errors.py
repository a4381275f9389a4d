"""Bad input: a clear exception, and nothing written. And the exception hierarchy."""

import pytest

import inflight
from conftest import events_in, linux_only

KEY = "agent:main:telegram:dm:4242"


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda log: log.begin_run("", "s"), "key"),
        (lambda log: log.begin_run("k" * 1025, "s"), "key"),
        (lambda log: log.mark_running("", "s", 1), "key"),
        (lambda log: log.mark_running("k" * 1025, "s", 1), "key"),
        (lambda log: log.mark_completed("k" * 1025, 1), "key"),
        (lambda log: log.begin_run(KEY, "s" * 257), "session_id"),
        (lambda log: log.begin_run(KEY, "s", meta="m" * 4097), "meta"),
        (lambda log: log.mark_running(KEY, "s", -1), "generation"),
        (lambda log: log.mark_running(KEY, "s", 2**64), "generation"),
        (lambda log: log.mark_completed(KEY, -5), "generation"),
        (lambda log: log.mark_running(KEY, "s", 1, started_at_ms=-1), "started_at_ms"),
        (lambda log: log.mark_running(KEY, "s", 1, started_at_ms=float("nan")), "started_at_ms"),
        (lambda log: log.mark_completed(KEY, 1, at_ms=float("inf")), "at_ms"),
    ],
)
def test_bad_input_raises_invalid_input_and_writes_nothing(log_dir, call, field):
    with inflight.open(log_dir) as log:
        log.begin_run(KEY, "s")  # one event, to see that no second one appears
        with pytest.raises(inflight.InvalidInputError) as e:
            call(log)
        assert e.value.field == field
        assert field in str(e.value)
        assert isinstance(e.value, ValueError) and isinstance(e.value, inflight.InflightError)
        assert events_in(log_dir) == 1
        # The handle is not poisoned by bad input.
        log.mark_completed(KEY, 1)
        assert events_in(log_dir) == 2


def test_a_key_at_the_limit_is_accepted(log_dir):
    with inflight.open(log_dir) as log:
        run = log.begin_run("k" * 1024, "s" * 256, meta="m" * 4096)
        assert run.generation == 1


def test_wrong_types_raise_type_error_and_write_nothing(log_dir):
    with inflight.open(log_dir) as log:
        with pytest.raises(TypeError):
            log.begin_run(42, "s")
        with pytest.raises(TypeError):
            log.mark_running(KEY, "s", "1")
        with pytest.raises(TypeError):
            log.mark_running(KEY, "s", True)
        with pytest.raises(TypeError):
            log.fallback([("k",)])
        assert log.running() == []
    assert inflight.read_only(log_dir).report.counters["started"] == 0


def test_invalid_input_names_the_key_it_concerns(log_dir):
    with inflight.open(log_dir) as log:
        with pytest.raises(inflight.InvalidInputError) as e:
            log.begin_run(KEY, "s", meta="m" * 5000)
        assert e.value.key == KEY and e.value.reason


def test_strict_open_of_a_damaged_log_raises_corrupt_error_with_where(log_dir):
    import os

    with inflight.open(log_dir, segment_bytes_max=64 << 10) as log:
        for i in range(40):
            log.begin_run(f"k{i}", "s")
    (segment,) = sorted(n for n in os.listdir(log_dir) if n.endswith(".log"))
    path = os.path.join(log_dir, segment)
    with open(path, "r+b") as f:
        f.seek(200)
        f.write(b"\x00" * 16)  # damage in the middle: valid records follow
    with pytest.raises(inflight.CorruptError) as e:
        inflight.open(log_dir, strict=True)
    assert e.value.path.endswith(segment) and e.value.offset > 0 and e.value.detail
    # The default policy skips it, reports it, and the fallback sees the gap.
    with inflight.open(log_dir) as log:
        (gap,) = log.report.corruption
        assert gap["segment"] == segment and gap["start_offset"] <= 216


def test_every_exception_derives_from_inflight_error():
    for cls in (
        inflight.LockedError,
        inflight.CorruptError,
        inflight.InvalidInputError,
        inflight.StorageError,
        inflight.PoisonedError,
        inflight.ClosedError,
        inflight.NotFoundError,
        inflight.UnsupportedVersionError,
    ):
        assert issubclass(cls, inflight.InflightError)
    assert issubclass(inflight.StorageError, OSError)


def test_a_path_that_is_a_file_is_invalid_input(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(inflight.InvalidInputError) as e:
        inflight.open(str(f))
    assert e.value.path == str(f)


@linux_only
def test_storage_errors_carry_the_operation_and_path():
    # /proc refuses new directories, even to root.
    with pytest.raises(inflight.StorageError) as e:
        inflight.open("/proc/self/inflight-log")
    assert e.value.path.startswith("/proc") and e.value.op and e.value.kind
    assert isinstance(e.value, OSError) and e.value.errno
