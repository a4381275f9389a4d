"""Which object of this process owns each open log directory, so that a second one on the same
directory takes the log over from the first (as a restart would) instead of failing on the
lock this very process holds.

Code that re-creates its store (a test simulating a restart, a gateway reloading its
configuration) expects the new object to work. The log's lock is per open handle, so the second
open would fail with ``LockedError`` naming this process. Instead the earlier owner is
abandoned, exactly as a crash would leave the log (no shutdown record: its runs in flight are
reported as interrupted), a ``RuntimeWarning`` says so, and the new owner opens the log. The
earlier owner's later calls raise ``ClosedError``.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
import weakref
from typing import Any, Dict

from . import _inflight
from .errors import LockedError

#: How long an open waits for an abandoned owner's last call in another thread to let go of
#: the log (its handle is released when that call returns).
RELEASE_WAIT_SECONDS = 5.0

_owners: "Dict[str, weakref.ref[Any]]" = {}
_lock = threading.Lock()


def open_owned(owner: Any, log_dir: str, options: Dict[str, Any]) -> _inflight.Log:
    """Opens the log in ``log_dir`` for ``owner`` (an object with ``abandon()``), taking it over
    from an earlier owner of this process if one still holds it."""
    where = os.path.realpath(log_dir)
    with _lock:
        earlier_ref = _owners.get(where)
        earlier = earlier_ref() if earlier_ref is not None else None
        if earlier is not None and earlier is not owner and not earlier.closed:
            warnings.warn(
                f"{type(owner).__name__}({log_dir!r}): an earlier {type(earlier).__name__} of "
                f"this process still held the log; it is abandoned, as a crash would leave it "
                f"(its runs in flight are reported as interrupted; its later calls raise ClosedError)",
                RuntimeWarning,
                stacklevel=3,
            )
            earlier.abandon()
        log = _open_waiting_for_release(log_dir, options)
        _owners[where] = weakref.ref(owner)
    return log


def _open_waiting_for_release(log_dir: str, options: Dict[str, Any]) -> _inflight.Log:
    deadline = time.monotonic() + RELEASE_WAIT_SECONDS
    while True:
        try:
            return _inflight.open(log_dir, **options)
        except LockedError as e:
            # Held by this process: an abandoned owner's call in another thread has not
            # returned yet. Held by another process: that is its log.
            if e.holder_pid != os.getpid() or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
