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
import time

from . import _inflight

_started = False
_lock = threading.Lock()


def _pump() -> None:
    # It sleeps in Python between polls, never inside the compiled module: a daemon thread is
    # ended where it stands when the interpreter exits, which must not be in Rust code.
    while True:
        for level, name, message in _inflight._take_log_records(256):
            logging.getLogger(name).log(level, "%s", message)
        time.sleep(0.1)


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
