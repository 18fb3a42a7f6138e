"""Durations as operators write them: `30s`, `5m`, `24h`, `7d`, or plain seconds."""

from __future__ import annotations

import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError with a readable message otherwise."""
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number with s, m, h or d, e.g. 30s, 5m, 24h")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]
