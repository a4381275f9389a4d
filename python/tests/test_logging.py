"""The crate's warnings reach Python's ``logging`` under the ``inflight`` logger: a torn tail
cut at open is logged as a warning by ``inflight.log.open``, with its segment and size."""

import glob
import logging
import os
import time

import inflight


def _torn_log(directory):
    with inflight.open(directory) as log:
        for i in range(3):
            log.begin_run(f"agent:main:http:c-{i}", "s1")
        log.abandon()  # the process dies here
    [segment] = glob.glob(os.path.join(directory, "*.log"))
    data = bytearray(open(segment, "rb").read())
    end = len(data.rstrip(b"\xff"))  # the reserved space after the records is 0xFF
    # The last record's final bytes never reached the disk: zeros where they were.
    data[end - 5 : end] = b"\x00" * 5
    open(segment, "wb").write(bytes(data))


def test_a_torn_tail_cut_at_open_is_a_warning_on_the_inflight_logger(tmp_path, caplog):
    directory = str(tmp_path / "log")
    _torn_log(directory)
    caplog.set_level(logging.WARNING, logger="inflight")
    with inflight.open(directory) as log:
        assert log.report.torn_tail_bytes > 0
    deadline = time.monotonic() + 5
    records = []
    while time.monotonic() < deadline and not records:
        records = [r for r in caplog.records if "torn tail" in r.getMessage()]
        time.sleep(0.02)
    assert records, [r.getMessage() for r in caplog.records]
    record = records[0]
    assert record.name.startswith("inflight."), record.name
    assert record.levelno == logging.WARNING
    assert "segment=" in record.getMessage() and "bytes=" in record.getMessage()
    assert inflight._logs.dropped_records() == 0
