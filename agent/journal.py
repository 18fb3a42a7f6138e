"""The durable per-job journal: what makes delivery exactly-once on the device.

One JSON file per job in `StateDir.journal_dir`, named `<job_id>.json`, written atomically
(write, fsync, rename). The rules (docs/protocol.md, "Exactly once"):

- a job is journaled `received` before anything else happens; a job id already journaled is
  never run again (`record_received` returns False);
- every state is journaled *before* the agent acts on it, so after a crash the journal tells
  what may have happened: a job found `downloading` or `installing` at start-up becomes `failed`
  with reason "agent restarted during install" and is not run again (`recover`);
- a terminal status stays until the coordinator acknowledges it; then the entry shrinks to a
  tombstone (id, deployment, final state) so a late redelivery is still recognised and not run.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.state import atomic_write
from common.clock import utcnow
from common.convoy.v1 import agent_pb2
from common.states import JobState

log = logging.getLogger("convoy.agent.journal")

OUTPUT_LIMIT = 64 * 1024
RESTARTED_REASON = "agent restarted during install"
TOMBSTONE_TTL = timedelta(days=30)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


TERMINAL = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.SKIPPED, JobState.CANCELLED})

# Forward moves only; a terminal state never changes again.
_ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.RECEIVED: frozenset({JobState.DOWNLOADING, JobState.INSTALLING, JobState.SKIPPED,
                                  JobState.CANCELLED, JobState.FAILED}),
    JobState.DOWNLOADING: frozenset({JobState.INSTALLING, JobState.FAILED, JobState.CANCELLED,
                                     JobState.RECEIVED}),
    JobState.INSTALLING: frozenset({JobState.COMPLETED, JobState.FAILED}),
}


class JournalError(Exception):
    """An illegal transition or an unknown job: a bug in the caller, never a device condition."""


def tail(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """The last `limit` bytes of `text` (UTF-8), cut on a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[-limit:].decode("utf-8", "ignore")


@dataclass
class JournalEntry:
    job_id: str
    deployment_id: str
    type: str
    attempt: int
    payload: dict[str, Any]
    state: str
    respect_maintenance_windows: bool = False
    timeout_seconds: float = 0.0
    rollback: bool = False
    window_wait_max_seconds: float = 0.0
    """> 0: outside every window, hold the job until a window opens (at most this long after receipt)."""
    manifest: str = ""
    """The signed manifest, its key id and signature as delivered (docs/security.md, "Signed work")."""
    signature_key_id: str = ""
    signature: str = ""
    exit_code: int | None = None
    output: str = ""
    reason: str = ""
    acked: bool = False
    received_at: str = ""
    updated_at: str = ""
    history: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def status(self) -> agent_pb2.JobStatus:
        msg = agent_pb2.JobStatus(job_id=self.job_id, deployment_id=self.deployment_id,
                                  state=self.state, output=self.output, reason=self.reason)
        if self.exit_code is not None:
            msg.exit_code = self.exit_code
        return msg

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> JournalEntry:
        raw = json.loads(data)
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Journal:
    """The journal directory. Thread-safe: the runner's installer threads and the event loop
    both touch it, and every write is a whole-file atomic replace."""

    def __init__(self, directory: Path, now: Callable[[], datetime] = utcnow) -> None:
        self.dir = directory
        self._now = now
        self._lock = threading.RLock()
        self._cache: dict[str, JournalEntry] = {}
        self.dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.dir.glob("*.json")):
            try:
                entry = JournalEntry.from_json(path.read_bytes())
            except (ValueError, TypeError) as exc:
                # A torn file cannot happen with atomic writes; one edited by hand can. Keep it
                # aside rather than guess, and say so.
                log.error("journal file %s is unreadable (%s); moved aside", path.name, exc)
                path.rename(path.with_suffix(".corrupt"))
                continue
            self._cache[entry.job_id] = entry

    def _path(self, job_id: str) -> Path:
        if not _SAFE_ID.match(job_id):
            raise JournalError(f"job id {job_id!r} cannot name a journal file")
        return self.dir / f"{job_id}.json"

    def _write(self, entry: JournalEntry) -> None:
        entry.updated_at = self._now().isoformat()
        atomic_write(self._path(entry.job_id), entry.to_json(), mode=0o600)
        self._cache[entry.job_id] = entry

    def record_received(self, job: agent_pb2.Job) -> bool:
        """Journal a newly delivered job. False if its id is already known: do not run it."""
        # json_format (with text_format under it, ~0.4 MB of RSS) only once a job arrives.
        from google.protobuf import json_format

        with self._lock:
            if job.job_id in self._cache:
                return False
            now = self._now().isoformat()
            entry = JournalEntry(
                job_id=job.job_id, deployment_id=job.deployment_id, type=job.type,
                attempt=job.attempt, payload=json_format.MessageToDict(job.payload),
                state=JobState.RECEIVED, respect_maintenance_windows=job.respect_maintenance_windows,
                timeout_seconds=job.timeout_seconds, rollback=job.rollback,
                window_wait_max_seconds=job.window_wait_max_seconds, manifest=job.manifest,
                signature_key_id=job.signature_key_id, signature=job.signature, received_at=now,
                history=[f"{now} received"],
            )
            self._write(entry)
            return True

    def get(self, job_id: str) -> JournalEntry | None:
        with self._lock:
            return self._cache.get(job_id)

    def update(self, job_id: str, state: JobState | str, *, exit_code: int | None = None,
               output: str | None = None, reason: str | None = None) -> JournalEntry:
        """Move a job to `state`, durably, before the caller acts on it."""
        new = JobState(state)
        with self._lock:
            entry = self._cache.get(job_id)
            if entry is None:
                raise JournalError(f"job {job_id} is not in the journal")
            current = JobState(entry.state)
            if new not in _ALLOWED.get(current, frozenset()):
                raise JournalError(f"job {job_id}: illegal move {current} -> {new}; history {entry.history}")
            entry.state = new
            if exit_code is not None:
                entry.exit_code = exit_code
            if output is not None:
                entry.output = tail(output)
            if reason is not None:
                entry.reason = reason
            entry.history.append(f"{self._now().isoformat()} {new}")
            self._write(entry)
            return entry

    def status(self, job_id: str) -> agent_pb2.JobStatus | None:
        entry = self.get(job_id)
        return entry.status() if entry is not None else None

    def unacked_statuses(self) -> list[agent_pb2.JobStatus]:
        """The latest status of every job the coordinator has not acknowledged, oldest first."""
        with self._lock:
            entries = sorted((e for e in self._cache.values() if not e.acked), key=lambda e: e.received_at)
            return [e.status() for e in entries]

    def runnable(self) -> list[JournalEntry]:
        """Jobs journaled as received and never started, oldest first: they may still run."""
        with self._lock:
            return sorted((e for e in self._cache.values() if e.state == JobState.RECEIVED and not e.acked),
                          key=lambda e: e.received_at)

    def ack(self, job_id: str) -> bool:
        """The coordinator committed this job's terminal status: keep only a tombstone."""
        with self._lock:
            entry = self._cache.get(job_id)
            if entry is None or not entry.terminal:
                return False
            if entry.acked:
                return True
            tomb = JournalEntry(job_id=entry.job_id, deployment_id=entry.deployment_id, type=entry.type,
                                attempt=entry.attempt, payload={}, state=entry.state,
                                exit_code=entry.exit_code, reason=entry.reason, acked=True,
                                received_at=entry.received_at,
                                history=[*entry.history, f"{self._now().isoformat()} acked"])
            self._write(tomb)
            return True

    def recover(self) -> list[JournalEntry]:
        """At start-up: jobs the agent died in the middle of become failed, never run again.
        Returns them; old tombstones are pruned."""
        failed: list[JournalEntry] = []
        with self._lock:
            for entry in list(self._cache.values()):
                if entry.state in (JobState.DOWNLOADING, JobState.INSTALLING) and not entry.acked:
                    failed.append(self.update(entry.job_id, JobState.FAILED, reason=RESTARTED_REASON))
            self._prune()
        return failed

    def _prune(self) -> None:
        cutoff = self._now() - TOMBSTONE_TTL
        for entry in list(self._cache.values()):
            if entry.acked and entry.updated_at and datetime.fromisoformat(entry.updated_at) < cutoff:
                self._path(entry.job_id).unlink(missing_ok=True)
                del self._cache[entry.job_id]
