"""What every installer shares: the job context, the outcome, and running a command safely.

Commands are argv lists (never a shell string), run in a new session so a timeout can kill the
whole process group, grandchildren included; output (stdout and stderr together) is kept to
its last 64 KiB while it streams, so a chatty script cannot exhaust the agent's memory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.state import StateDir

OUTPUT_LIMIT = 64 * 1024
DEFAULT_TIMEOUT = 3600.0
KILL_GRACE = 3.0


@dataclass(frozen=True)
class JobContext:
    """Everything an installer may use: the job, where it runs, and the fetched artifact."""

    job_id: str
    deployment_id: str
    device_id: str
    attempt: int
    payload: Mapping[str, Any]
    state: StateDir
    timeout_seconds: float = DEFAULT_TIMEOUT
    """Bound on the install step; 0 or less means DEFAULT_TIMEOUT."""
    rollback: bool = False
    artifact: Path | None = None
    """The verified artifact (software installs only)."""

    @property
    def timeout(self) -> float:
        return self.timeout_seconds if self.timeout_seconds > 0 else DEFAULT_TIMEOUT

    def env(self) -> dict[str, str]:
        """The agent's environment plus the job's context variables."""
        return {**os.environ, "CONVOY_DEVICE_ID": self.device_id, "CONVOY_DEPLOYMENT_ID": self.deployment_id,
                "CONVOY_JOB_ID": self.job_id, "CONVOY_ATTEMPT": str(self.attempt)}

    @property
    def job_dir(self) -> Path:
        return self.state.work_dir / "jobs" / self.job_id


@dataclass(frozen=True)
class Outcome:
    success: bool
    exit_code: int | None = None
    output: str = ""
    reason: str = ""
    """One line on every failure: why."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Agent settings the job changed (policy): applied by the daemon at once."""


class InstallError(Exception):
    """The installer cannot do what the payload asks; the message is the job's reason."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None
    output: str
    timed_out: bool = False


class _Tail:
    """A bounded buffer keeping the last OUTPUT_LIMIT bytes written to it."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        self.buf += data
        excess = len(self.buf) - self.limit
        if excess > 0:
            del self.buf[:excess]
            self.dropped += excess

    def text(self) -> str:
        text = bytes(self.buf).decode("utf-8", "replace")
        if self.dropped:
            # The cut may split a character; the replacement char marks it, which is honest.
            text = text.lstrip("\ufffd")
        return text


def _drain(stream: Any, tail: _Tail) -> None:
    while True:
        data = os.read(stream.fileno(), 65536)
        if not data:
            return
        tail.feed(data)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """TERM the whole process group, then KILL what is left after a short grace."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_GRACE
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader: a zombie still counts as a member of its group
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_command(argv: Sequence[str], *, timeout: float, cwd: Path | None = None,
                env: Mapping[str, str] | None = None) -> CommandResult:
    """Run `argv` in its own session; bounded output; a timeout kills its process group."""
    tail = _Tail()
    try:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env) if env is not None else None,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    except OSError as exc:
        raise InstallError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    assert proc.stdout is not None
    reader = threading.Thread(target=_drain, args=(proc.stdout, tail), daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        proc.wait()
    # A background grandchild may keep the pipe open after the leader exits; read what it has
    # written for a moment, then stop listening rather than wait for it.
    reader.join(timeout=1.0 if not timed_out else KILL_GRACE)
    if not reader.is_alive():
        proc.stdout.close()
    return CommandResult(exit_code=None if timed_out else proc.returncode, output=tail.text(), timed_out=timed_out)


def outcome_of(result: CommandResult, timeout: float, what: str = "exit code") -> Outcome:
    """Exit code 0 is success; anything else fails with a one-line reason."""
    if result.timed_out:
        return Outcome(False, None, result.output, f"timed out after {timeout:g}s")
    code = result.exit_code
    assert code is not None
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return Outcome(False, code, result.output, f"killed by {name}")
    if code != 0:
        return Outcome(False, code, result.output, f"{what} {code}")
    return Outcome(True, 0, result.output, "")


def scalar_text(value: Any) -> str:
    """A payload value as text: Struct numbers arrive as floats, so 3.0 reads "3"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def require(payload: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = payload.get(key)
    if not isinstance(value, kind) or (isinstance(value, str) and not value):
        raise InstallError(f"payload field {key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value
