"""Type stubs of the compiled module ``inflight._inflight`` (re-exported by ``inflight``)."""

from os import PathLike
from types import TracebackType
from typing import (
    Any,
    ClassVar,
    Dict,
    Iterable,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypedDict,
    TypeVar,
    Union,
    final,
)

from typing_extensions import disjoint_base

__all__ = [
    "_take_log_records",
    "_dropped_log_records",
    "Log",
    "Recovered",
    "_AsyncFront",
    "Run",
    "InterruptedRun",
    "RecoveryReport",
    "Flagged",
    "open",
    "read_only",
    "fallback_without_log",
    "import_runs",
    "started_at_ms_from_secs",
    "check_key",
    "check_seconds",
    "read_checkpoint",
    "TakenOver",
    "create_schema",
    "open_database",
    "read_only_database",
    "take_over",
    "_native_load",
    "_native_async_load",
    "KEY_BYTES_MAX",
    "SESSION_ID_BYTES_MAX",
    "META_BYTES_MAX",
    "WINDOW_MS_DEFAULT",
]

KEY_BYTES_MAX: int
SESSION_ID_BYTES_MAX: int
META_BYTES_MAX: int
WINDOW_MS_DEFAULT: int

_Path = Union[str, "PathLike[str]"]
_T = TypeVar("_T")
_Number = Union[int, float]
_Sessions = Union[Mapping[str, _Number], Iterable[Tuple[str, _Number]]]
Reason = Literal["crash", "shutdown"]
FlagReason = Literal["log", "crash-loop", "reboot-loop", "gap", "no-log", "before-coverage"]
RunState = Literal["running", "interrupted", "pending", "suspended"]
ExactApplied = Literal["completed", "unmatched", "unknown-completion"]
DecisionApplied = Literal["promoted", "suspended", "cleared", "cleared-and-dropped", "progressed", "unmatched"]
StartApplied = Literal["started", "superseded"]
CompletionApplied = Literal["completed", "stale-completion", "unknown-completion"]

class TornTail(TypedDict):
    segment: str
    offset: int
    bytes: int
    cut: bool

class Corruption(TypedDict):
    segment: str
    start_offset: int
    end_offset: int
    after_seq: int
    before_seq: Optional[int]
    after_ms: Optional[int]
    before_ms: Optional[int]
    detail: str

class SnapshotUsed(TypedDict):
    file: str
    last_seq: int
    bytes: int
    created_ms: int

class Metrics(TypedDict):
    started: int
    superseded: int
    stale_starts: int
    completed: int
    stale_completions: int
    unknown_completions: int
    log_records: int
    syncs: int
    sync_seconds: float
    sync_seconds_max: float
    written_bytes: int
    queue_events: int
    compactions: int
    compaction_seconds: float
    snapshot_bytes: int
    recovered_runs: int
    crash_loops: int
    poisoned: bool
    fenced: bool

class Counters(TypedDict):
    started: int
    stale_starts: int
    completed: int
    stale_completions: int
    unknown_completions: int
    shutdowns: int
    superseded: int
    recoveries: int
    retentions: int
    forgotten: int
    promoted: int
    suspended: int
    cleared: int
    progressed: int
    adopted: int
    unmatched: int

class Compacted(TypedDict):
    snapshot: str
    last_seq: int
    bytes: int
    running: int
    marks: int
    forgotten: int
    segments_removed: int
    snapshots_removed: int

@final
class Run:
    """One agent run: key, session id, generation, start time (ms since the epoch), meta."""

    # Equality compares the fields; a Run is not hashable.
    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __new__(
        cls, key: str, session_id: str, generation: int, started_at_ms: _Number, meta: Optional[str] = None
    ) -> "Run": ...
    @property
    def key(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def generation(self) -> int: ...
    @property
    def started_at_ms(self) -> int: ...
    @property
    def meta(self) -> Optional[str]: ...
    @property
    def nonce(self) -> int: ...
    @property
    def token(self) -> str:
        """32 hex digits that name this run of this key in this log, and nothing else."""
    @property
    def started_at(self) -> float:
        """The start time in seconds since the epoch."""

@final
class InterruptedRun:
    """A run in flight: its fields, where it stands, why it stopped, and its loop counts."""

    # Equality compares the fields; an InterruptedRun is not hashable.
    __hash__: ClassVar[None]  # type: ignore[assignment]
    @property
    def key(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def generation(self) -> int: ...
    @property
    def started_at_ms(self) -> int: ...
    @property
    def meta(self) -> Optional[str]: ...
    @property
    def token(self) -> str: ...
    @property
    def state(self) -> RunState: ...
    @property
    def reason(self) -> Reason: ...
    @property
    def recoveries(self) -> int: ...
    @property
    def stops(self) -> int: ...
    @property
    def running(self) -> bool: ...
    @property
    def pending_reason(self) -> Optional[str]: ...
    @property
    def pending_at_ms(self) -> Optional[int]: ...
    @property
    def suspended_at_ms(self) -> Optional[int]: ...
    @property
    def crash_loop(self) -> bool: ...
    @property
    def stop_loop(self) -> bool: ...
    @property
    def pending_at(self) -> Optional[float]: ...
    @property
    def is_loop(self) -> bool: ...
    @property
    def started_at(self) -> float: ...
    @property
    def run(self) -> Run: ...

@final
class RecoveryReport:
    """What opening (or reading) a log found."""

    @property
    def running(self) -> List[InterruptedRun]: ...
    @property
    def crash_loops(self) -> List[InterruptedRun]: ...
    @property
    def crash_loop_threshold(self) -> int: ...
    @property
    def stop_loops(self) -> List[InterruptedRun]: ...
    @property
    def stop_loop_threshold(self) -> int: ...
    @property
    def interrupted(self) -> List[str]: ...
    @property
    def torn_tail(self) -> Optional[TornTail]: ...
    @property
    def torn_tail_bytes(self) -> int: ...
    @property
    def corruption(self) -> List[Corruption]: ...
    @property
    def gaps_before_snapshot(self) -> List[Corruption]: ...
    @property
    def stale_ignored(self) -> int: ...
    @property
    def clean_shutdown(self) -> bool: ...
    @property
    def coverage_since_ms(self) -> Optional[int]: ...
    @property
    def counters(self) -> Counters: ...
    @property
    def segments(self) -> int: ...
    @property
    def records(self) -> int: ...
    @property
    def last_seq(self) -> int: ...
    @property
    def snapshot(self) -> Optional[SnapshotUsed]: ...
    def to_dict(self) -> Dict[str, Any]: ...

@final
class Flagged:
    """A key the fallback says to treat as interrupted, and why."""

    # Equality compares the fields; a Flagged is not hashable.
    __hash__: ClassVar[None]  # type: ignore[assignment]
    @property
    def key(self) -> str: ...
    @property
    def reason(self) -> FlagReason: ...
    @property
    def precise(self) -> bool: ...
    @property
    def recoveries(self) -> Optional[int]: ...

@final
class Log:
    """An open log: a context manager that closes it cleanly (or abandons it on an exception)."""

    @property
    def report(self) -> RecoveryReport: ...
    @property
    def dir(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def mark_running(
        self,
        key: str,
        session_id: str,
        generation: int,
        started_at_ms: Optional[_Number] = None,
        meta: Optional[str] = None,
    ) -> StartApplied: ...
    def begin_run(self, key: str, session_id: str, meta: Optional[str] = None) -> Run: ...
    def mark_completed(self, key: str, generation: int, at_ms: Optional[_Number] = None) -> CompletionApplied: ...
    def mark_completed_many(
        self, pairs: Iterable[Tuple[str, int]], at_ms: Optional[_Number] = None
    ) -> List[CompletionApplied]: ...
    def complete_token(self, key: str, token: str) -> ExactApplied: ...
    def progress(self, key: str, token: str, meta: Optional[str]) -> DecisionApplied: ...
    def mark_resume_pending(self, key: str, reason: str) -> DecisionApplied: ...
    def clear_resume_pending(self, key: str) -> DecisionApplied: ...
    def suspend(self, key: str) -> DecisionApplied: ...
    def adopt(self, run: InterruptedRun) -> Run: ...
    def recover_interrupted(self, max_age_seconds: _Number) -> Tuple[int, int, int]: ...
    def discard_interrupted(self) -> Tuple[int, int, int]: ...
    def close(self) -> None: ...
    def abandon(self) -> None: ...
    def running(self) -> List[InterruptedRun]: ...
    def in_flight(self, key: str) -> Optional[InterruptedRun]: ...
    def high_water(self, key: str) -> Optional[int]: ...
    def counters(self) -> Counters: ...
    def metrics(self) -> Metrics: ...
    def compact(self) -> Compacted: ...
    def fallback(
        self, sessions: _Sessions, window_ms: Optional[_Number] = None, now_ms: Optional[_Number] = None
    ) -> List[Flagged]: ...
    def __enter__(self) -> "Log": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        _exc: Optional[BaseException],
        _tb: Optional[TracebackType],
    ) -> Literal[False]: ...

@disjoint_base
class Recovered:
    """What a read-only replay found."""

    @property
    def report(self) -> RecoveryReport: ...
    def fallback(
        self, sessions: _Sessions, window_ms: Optional[_Number] = None, now_ms: Optional[_Number] = None
    ) -> List[Flagged]: ...

def open(
    path: _Path,
    *,
    strict: bool = False,
    segment_bytes_max: int = ...,
    compact_after_bytes: Optional[int] = ...,
    retention_ms: Optional[int] = ...,
    crash_loop_threshold: int = ...,
    stop_loop_threshold: int = ...,
    record_recovery: bool = True,
) -> Log: ...
def read_only(path: _Path, *, strict: bool = False) -> Recovered: ...

@final
class TakenOver(Recovered):
    """What a takeover found and did: the dead instance's report and fallback (as a
    ``Recovered``), and the fence."""

    @property
    def instance(self) -> str: ...
    @property
    def by(self) -> str: ...
    @property
    def epoch(self) -> int: ...
    @property
    def was_open(self) -> bool: ...
    @property
    def taken_before(self) -> Optional[str]: ...

def create_schema(database: str) -> None: ...
def open_database(
    database: str,
    instance: str,
    *,
    strict: bool = False,
    segment_bytes_max: int = ...,
    compact_after_bytes: Optional[int] = ...,
    retention_ms: Optional[int] = ...,
    crash_loop_threshold: int = ...,
    stop_loop_threshold: int = ...,
    record_recovery: bool = True,
) -> Log: ...
def read_only_database(database: str, instance: str, *, strict: bool = False) -> Recovered: ...
def take_over(database: str, dead_instance: str, by: str, *, create_taker: bool = False) -> TakenOver: ...
def fallback_without_log(
    sessions: _Sessions, window_ms: Optional[_Number] = None, now_ms: Optional[_Number] = None
) -> List[Flagged]: ...
def import_runs(path: _Path, runs: Sequence[Run]) -> int: ...
def started_at_ms_from_secs(key: str, secs: float) -> int: ...
def check_key(key: object) -> str: ...
def check_seconds(field: str, value: object, key: Optional[str] = None) -> float: ...
def read_checkpoint(path: _Path) -> List[Run]: ...
def _native_load(path: _Path, threads: int, seconds: float) -> Tuple[int, float]: ...
def _native_async_load(path: _Path, tasks: int, seconds: float) -> Tuple[int, float]: ...

# A call of the async front: (0, its result) when it is done at once, else (its call number,
# None), the result handed back later by ``ready()``.
_Started = Tuple[int, Optional[_T]]

@final
class _AsyncFront:
    """The crate's async front for one event loop (driven by ``inflight.aio.AsyncLog``)."""

    def __new__(cls, log: Log) -> "_AsyncFront": ...
    def fileno(self) -> Optional[int]: ...
    def wait_round(self, timeout: float) -> Optional[bool]: ...
    def waiting(self) -> int: ...
    def begin_run(self, key: str, session_id: str, meta: Optional[str] = None) -> _Started[Run]: ...
    def mark_running(
        self,
        key: str,
        session_id: str,
        generation: int,
        started_at_ms: Optional[_Number] = None,
        meta: Optional[str] = None,
    ) -> _Started[StartApplied]: ...
    def mark_completed(
        self, key: str, generation: int, at_ms: Optional[_Number] = None
    ) -> _Started[CompletionApplied]: ...
    def complete_token(self, key: str, token: str) -> _Started[ExactApplied]: ...
    def progress(self, key: str, token: str, meta: Optional[str]) -> _Started[DecisionApplied]: ...
    def close(self) -> _Started[None]: ...
    # (call number, ok, value): the call's result when ok (a Run, a str or None, by the call),
    # else the exception it raised.
    def ready(self) -> List[Tuple[int, bool, Any]]: ...
    def shutdown(self) -> None: ...

def _take_log_records(limit: int) -> List[Tuple[int, str, str]]:
    """The warnings and errors the crate reported and nobody took yet, oldest first, at most
    ``limit``, without waiting: ``(level, logger, message)`` each. For ``inflight._logs``."""
    ...

def _dropped_log_records() -> int:
    """How many of the crate's records were dropped because their queue was full."""
    ...

