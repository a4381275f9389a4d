"""The exceptions of ``inflight``: one base class, and one subclass per kind of failure.

Each exception's message is the Rust error's own (what happened, where, what to do), and the
variant's fields are attributes: ``LockedError.holder_pid``, ``CorruptError.offset``, and so on.

>>> import inflight, tempfile
>>> d = tempfile.mkdtemp()
>>> with inflight.open(d) as log:
...     try:
...         log.begin_run("", "s1")
...     except inflight.InvalidInputError as e:
...         print(e.field)
key
"""

from __future__ import annotations

from typing import Optional


class InflightError(Exception):
    """Base class of every error the log raises."""

    @property
    def message(self) -> str:
        """The error's message, as the Rust error words it."""
        return str(self.args[0]) if self.args else ""


class LockedError(InflightError):
    """Another process (or another open handle) holds the log directory's lock.

    ``path`` is the directory, ``holder_pid`` the pid written in its lock file (or None).
    Read the log meanwhile with :func:`inflight.read_only`, which takes no lock.
    """

    path: str
    holder_pid: Optional[int]


class CorruptError(InflightError):
    """The log holds a damaged region and the strict policy was asked for.

    ``path`` is the damaged file, ``offset`` the first damaged byte, ``detail`` what is wrong.
    Open without ``strict=True`` to skip the region and have it reported as a gap.
    """

    path: str
    offset: int
    detail: str


class UnsupportedVersionError(InflightError):
    """A file of the log was written by a newer version of the format (``found`` above
    ``supported``)."""

    path: str
    found: int
    supported: int


class InvalidInputError(InflightError, ValueError):
    """The caller's input breaks a limit (an empty key, a key over 1024 bytes, a negative
    generation, ...); nothing was written. ``field`` names it, ``reason`` says why, ``key`` is
    the key concerned (shortened) when the field is not the key itself."""

    field: str
    reason: str
    key: Optional[str]


class StaleGenerationError(InvalidInputError):
    """A start under a generation the caller chose is below the key's high-water mark (the log
    has recorded a higher generation for the key, often before a restart that began the
    gateway's own counter again at 1). The run would not be tracked, so it was refused and
    nothing was written. ``key``, ``generation`` (the one given) and ``high_water`` (the
    key's mark) say which. Let the log allocate generations (``Log.begin_run``, or the turn
    markers), or start above ``high_water``."""

    generation: int
    high_water: int


class CheckpointFileError(InflightError, ValueError):
    """The old JSON checkpoint file cannot be imported: it is not valid JSON, or not the
    checkpoint's shape. ``path`` is the file; ``line`` and ``column`` where the JSON breaks
    (None for a shape error); ``detail`` what is wrong. Nothing was imported and the file is
    untouched: repair it, or move it aside to start with an empty log (its runs are then not
    recovered, and the time-window fallback covers those sessions)."""

    path: str
    line: Optional[int]
    column: Optional[int]
    detail: str


class StorageError(InflightError, OSError):
    """A storage call failed (the log's I/O error). ``op`` is the operation, ``path`` the file,
    ``kind`` the Rust ``io::ErrorKind`` (``"StorageFull"`` for a full disk), ``errno`` the
    operating system's error number when there is one."""

    op: str
    path: str
    kind: str


class PoisonedError(InflightError, OSError):
    """An earlier write or sync failed: the handle refuses everything until the log is
    reopened, which replays exactly what reached the disk. ``kind`` and ``cause`` describe
    the failure that poisoned it. An ``OSError``, as the storage failure behind it is (the
    turn classes reopen the log on their next call)."""

    kind: str
    cause: str
    database: bool
    """Whether the failure was the database's (a fleet's log: the connection lost or stalled
    past its timeout, a statement refused), not a disk's."""


class ClosedError(InflightError):
    """The log was closed; open it again to write."""


class NotFoundError(InflightError, FileNotFoundError):
    """A read-only replay was pointed at a directory that holds no log (which must never read
    as "nothing in flight"). ``path`` is the path given."""

    path: str


class FencedError(InflightError):
    """The instance's log was taken over by another instance (``inflight.take_over``): from
    the moment the takeover committed, nothing this handle writes is accepted, and every call
    raises this. ``instance`` is the instance, ``by`` the one that took it over, ``epoch`` the
    fencing epoch. Stop this process, and start again under a new instance id."""

    instance: str
    by: str
    epoch: int


class AlreadyTakenOverError(InflightError):
    """A takeover found the instance already taken over by another instance (``by``): its runs
    are that one's, so they are not handed out twice. If ``by`` died too, take it over instead.
    A repeat by the same taker is not an error (``TakenOver.taken_before`` is set)."""

    instance: str
    by: str
    epoch: int


class DatabaseError(InflightError):
    """A fleet's database could not be reached, or refused a statement outside an append.
    ``database`` is its URL without the password; ``cause`` what the client or server said."""

    database: str
    cause: str


class NoSchemaError(DatabaseError):
    """The database holds no inflight schema (or another version of it): create it once with
    ``inflight.create_schema(database)`` (``inflight fleet init``). ``detail`` says what was
    found."""

    detail: str


class NoInstanceError(DatabaseError):
    """The database holds no log of ``instance``: check the id."""

    instance: str


class UnknownTakerError(DatabaseError):
    """A takeover's taker ``by`` is no instance of the database: the surviving instance opens
    its own log before it takes another over, so this is most often a typo. Nothing was
    fenced. Check the id, or pass ``create_taker=True``."""

    by: str


class KeptChangingError(InflightError):
    """A read-only reading of a live log was overtaken by a compaction or a segment rollover
    ``attempts`` times in a row, so none was reported: nothing is wrong with the log at
    ``path``; read it again."""

    path: str
    attempts: int


__all__ = [
    "InflightError",
    "LockedError",
    "CorruptError",
    "UnsupportedVersionError",
    "InvalidInputError",
    "StaleGenerationError",
    "CheckpointFileError",
    "StorageError",
    "PoisonedError",
    "ClosedError",
    "NotFoundError",
    "FencedError",
    "AlreadyTakenOverError",
    "DatabaseError",
    "NoSchemaError",
    "NoInstanceError",
    "UnknownTakerError",
    "KeptChangingError",
]
