"""The crate's warnings and errors, on Python's ``logging``.

The Rust side queues each warning or error the log reports (from any of its threads) without
ever waiting for the GIL; this daemon thread takes them out and logs them under the
``inflight`` logger (``inflight.log.open``, ``inflight.read.files``, ... by the Rust module
that said it), so a gateway's logging configuration decides where they go::

    logging.getLogger("inflight").setLevel(logging.WARNING)
"""

from __future__ import annotations

import logging
import threading

from . import _inflight

_started = False
_lock = threading.Lock()


def _pump() -> None:
    while True:
        record = _inflight._next_log_record(0.5)
        if record is None:
            continue
        level, name, message = record
        logging.getLogger(name).log(level, "%s", message)


def start() -> None:
    """Starts the thread once per process (it is a daemon: it never holds the exit up)."""
    global _started
    with _lock:
        if _started:
            return
        threading.Thread(target=_pump, name="inflight-logs", daemon=True).start()
        _started = True


def dropped_records() -> int:
    """How many records were dropped because the queue was full (1024 waiting)."""
    return int(_inflight._dropped_log_records())
