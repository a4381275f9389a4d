"""Type stubs of the compiled module ``inflight._inflight`` (re-exported by ``inflight``)."""

from os import PathLike
from types import TracebackType
from typing import Any, Dict, Iterable, List, Literal, Mapping, Optional, Tuple, Type, TypedDict, Union

KEY_BYTES_MAX: int
SESSION_ID_BYTES_MAX: int
META_BYTES_MAX: int
WINDOW_MS_DEFAULT: int

_Path = Union[str, "PathLike[str]"]
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

class Run:
    """One agent run: key, session id, generation, start time (ms since the epoch), meta."""

    key: str
    session_id: str
    generation: int
    started_at_ms: int
    meta: Optional[str]
    nonce: int
    def __init__(
        self, key: str, session_id: str, generation: int, started_at_ms: _Number, meta: Optional[str] = None
    ) -> None: ...
    @property
    def token(self) -> str:
        """32 hex digits that name this run of this key in this log, and nothing else."""
    @property
    def started_at(self) -> float:
        """The start time in seconds since the epoch."""

class InterruptedRun:
    """A run in flight: its fields, where it stands, why it stopped, and its loop counts."""

    key: str
    session_id: str
    generation: int
    started_at_ms: int
    meta: Optional[str]
    token: str
    state: RunState
    reason: Reason
    recoveries: int
    stops: int
    running: bool
    pending_reason: Optional[str]
    pending_at_ms: Optional[int]
    suspended_at_ms: Optional[int]
    crash_loop: bool
    stop_loop: bool
    @property
    def pending_at(self) -> Optional[float]: ...
    @property
    def is_loop(self) -> bool: ...
    @property
    def started_at(self) -> float: ...
    @property
    def run(self) -> Run: ...

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

class Flagged:
    """A key the fallback says to treat as interrupted, and why."""

    key: str
    reason: FlagReason
    precise: bool
    recoveries: Optional[int]

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
        self, sessions: _Sessions, window_ms: _Number = 120000, now_ms: Optional[_Number] = None
    ) -> List[Flagged]: ...
    def __enter__(self) -> "Log": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Recovered:
    """What a read-only replay found."""

    @property
    def report(self) -> RecoveryReport: ...
    def fallback(
        self, sessions: _Sessions, window_ms: _Number = 120000, now_ms: Optional[_Number] = None
    ) -> List[Flagged]: ...

def open(
    path: _Path,
    *,
    strict: bool = False,
    segment_bytes_max: int = 1048576,
    compact_after_bytes: Optional[int] = 67108864,
    retention_ms: Optional[int] = 604800000,
    crash_loop_threshold: int = 3,
    stop_loop_threshold: int = 3,
    record_recovery: bool = True,
) -> Log: ...
def read_only(path: _Path, *, strict: bool = False) -> Recovered: ...

class TakenOver(Recovered):
    """What a takeover found and did: the dead instance's report and fallback (as a
    ``Recovered``), and the fence."""

    instance: str
    by: str
    epoch: int
    was_open: bool
    taken_before: Optional[str]

def create_schema(database: str) -> None: ...
def open_database(
    database: str,
    instance: str,
    *,
    strict: bool = False,
    segment_bytes_max: int = 1048576,
    compact_after_bytes: Optional[int] = 67108864,
    retention_ms: Optional[int] = 604800000,
    crash_loop_threshold: int = 3,
    stop_loop_threshold: int = 3,
    record_recovery: bool = True,
) -> Log: ...
def read_only_database(database: str, instance: str, *, strict: bool = False) -> Recovered: ...
def take_over(database: str, dead_instance: str, by: str, *, create_taker: bool = False) -> TakenOver: ...
def fallback_without_log(
    sessions: _Sessions, window_ms: _Number = 120000, now_ms: Optional[_Number] = None
) -> List[Flagged]: ...
def import_runs(path: _Path, runs: List[Run]) -> int: ...
def started_at_ms_from_secs(key: str, secs: float) -> int: ...
def check_key(key: object) -> str: ...
def check_seconds(field: str, value: object, key: Optional[str] = None) -> float: ...
def read_checkpoint(path: _Path) -> List[Run]: ...
def _native_load(path: _Path, threads: int, seconds: float) -> Tuple[int, float]: ...
def _native_async_load(path: _Path, tasks: int, seconds: float) -> Tuple[int, float]: ...

class _AsyncFront:
    """The crate's async front for one event loop (driven by ``inflight.aio.AsyncLog``)."""

    def __init__(self, log: Log) -> None: ...
    def fileno(self) -> int: ...
    def waiting(self) -> int: ...
    def begin_run(self, key: str, session_id: str, meta: Optional[str] = None) -> Tuple[int, Any]: ...
    def mark_running(
        self,
        key: str,
        session_id: str,
        generation: int,
        started_at_ms: Optional[_Number] = None,
        meta: Optional[str] = None,
    ) -> Tuple[int, Any]: ...
    def mark_completed(self, key: str, generation: int, at_ms: Optional[_Number] = None) -> Tuple[int, Any]: ...
    def complete_token(self, key: str, token: str) -> Tuple[int, Any]: ...
    def progress(self, key: str, token: str, meta: Optional[str]) -> Tuple[int, Any]: ...
    def close(self) -> Tuple[int, Any]: ...
    def ready(self) -> List[Tuple[int, bool, Any]]: ...
    def shutdown(self) -> None: ...
