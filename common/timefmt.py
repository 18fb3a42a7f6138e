"""Timestamps on the wire: RFC 3339, UTC, millisecond precision, `Z` suffix (as the seeds show)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def iso_or_empty(ts: datetime | None) -> str:
    return iso(ts) or ""


def log_line(ts: datetime, message: str) -> str:
    """One enrollment log line, formatted as the seed's error_logs: `2026-01-29T09:00:01Z: msg`."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + ": " + message
