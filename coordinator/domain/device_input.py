"""Every field a device sends, bounded and cleaned in one place, before anything stores it.

A device is not trusted to send sane values: a 256-character hostname used to fail a whole
batched presence write on PostgreSQL (every other device's hello with it), a failure reason of
2,000,000 characters was stored as sent, and NUL bytes cannot be stored in PostgreSQL text at
all. The rules, per field:

| field | rule |
|---|---|
| hostname, os, os_version, arch, agent_version | one line: control characters removed, cut to the column's size |
| tags | at most 50, each one line of at most 64 characters, empty and duplicates dropped |
| site | one line, at most 200 characters |
| cpu_count, memory_bytes, disk sizes | clamped to 0 … the column's range |
| ip_addresses, disks | at most 64 each; addresses at most 45 characters, mountpoints 512, fstype 32 |
| maintenance windows (as text) | at most 32, each one line of at most 200 characters |
| job output | NUL removed, the last 64 KiB kept (the end of a log says why it failed) |
| job reason | NUL and control characters removed (newlines kept), at most 2,000 characters |
| enrollment log lines | at most 1,000 lines (first and last halves), each one line of at most 2,000 characters |

Pure: no I/O. Protobuf messages are copied, never changed in place.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

M = TypeVar("M")

HOSTNAME, OS, OS_VERSION, ARCH, AGENT_VERSION = 255, 32, 100, 32, 50
SITE, TAG, MAX_TAGS = 200, 64, 50
MAX_ADDRESSES, ADDRESS, MAX_DISKS, MOUNTPOINT, FSTYPE = 64, 45, 64, 512, 32
MAX_WINDOWS, WINDOW = 32, 200
OUTPUT = 64 * 1024
REASON = 2000
MAX_LOG_LINES, LOG_LINE = 1000, 2000
INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1

_LINE_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # keeps \t \n \r


def line(value: Any, limit: int) -> str:
    """One line of at most `limit` characters, without control characters."""
    return _LINE_CONTROL.sub("", str(value or "")).strip()[:limit]


def clamp(value: Any, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(0, min(number, high))


def tags(values: Any) -> list[str]:
    out = [line(t, TAG) for t in list(values or [])[: MAX_TAGS * 4]]
    return list(dict.fromkeys(t for t in out if t))[:MAX_TAGS]


def site(value: Any) -> str:
    return line(value, SITE)


def addresses(values: Any) -> list[str]:
    out = [line(a, ADDRESS) for a in list(values or [])[:MAX_ADDRESSES]]
    return [a for a in out if a]


def disk(d: dict[str, Any]) -> dict[str, Any]:
    return {"mountpoint": line(d.get("mountpoint"), MOUNTPOINT), "fstype": line(d.get("fstype"), FSTYPE),
            "total_bytes": clamp(d.get("total_bytes"), INT64_MAX), "free_bytes": clamp(d.get("free_bytes"), INT64_MAX)}


def windows(values: Any) -> list[str]:
    return [w for w in (line(v, WINDOW) for v in list(values or [])[:MAX_WINDOWS]) if w]


def output(value: Any) -> str:
    text = str(value or "").replace("\x00", "")
    return text[-OUTPUT:]


def reason(value: Any) -> str:
    return _TEXT_CONTROL.sub("", str(value or ""))[:REASON]


def log_lines(values: Any) -> list[str]:
    lines = [str(v) for v in list(values or [])]
    if len(lines) > MAX_LOG_LINES:
        lines = [*lines[: MAX_LOG_LINES // 2], "…", *lines[-(MAX_LOG_LINES // 2 - 1):]]
    return [line(v, LOG_LINE) for v in lines]


def facts_message(facts: M) -> M:
    """A bounded copy of a `DeviceFacts` message."""
    f: Any = type(facts)()
    f.CopyFrom(facts)
    f.hostname, f.os = line(f.hostname, HOSTNAME), line(f.os, OS)
    f.os_version, f.arch = line(f.os_version, OS_VERSION), line(f.arch, ARCH)
    f.cpu_count, f.memory_bytes = clamp(f.cpu_count, INT32_MAX), clamp(f.memory_bytes, INT64_MAX)
    kept = addresses(f.ip_addresses)
    del f.ip_addresses[:]
    f.ip_addresses.extend(kept)
    disks = [disk({"mountpoint": d.mountpoint, "fstype": d.fstype, "total_bytes": d.total_bytes,
                   "free_bytes": d.free_bytes}) for d in list(f.disks)[:MAX_DISKS]]
    del f.disks[:]
    for d in disks:
        f.disks.add(**d)
    return f  # type: ignore[no-any-return]


def hello(msg: M) -> M:
    """A bounded copy of a `Hello` (facts, windows, agent version; the journal's statuses are
    bounded one by one where they are parsed, see `job_status`)."""
    h: Any = type(msg)()
    h.CopyFrom(msg)
    h.facts.CopyFrom(facts_message(h.facts))
    h.agent_version = line(h.agent_version, AGENT_VERSION)
    kept = windows(h.maintenance_windows)
    del h.maintenance_windows[:]
    h.maintenance_windows.extend(kept)
    return h  # type: ignore[no-any-return]


def job_status(msg: Any) -> tuple[str, str, int | None, str, str]:
    """(job id, state, exit code or None, output, reason) of a `JobStatus`, bounded (ids and
    state are checked by the engine against what it dispatched). Read field by field, without
    copying the message: one runs per agent report."""
    return (line(msg.job_id, 64), line(msg.state, 32), msg.exit_code if msg.HasField("exit_code") else None,
            output(msg.output), reason(msg.reason))
