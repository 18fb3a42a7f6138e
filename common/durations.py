"""Durations as operators write them: `30s`, `5m`, `24h`, `7d`, `1h30m`, `1.5h`.

A bare number is ambiguous (seconds? minutes?), so it is refused unless the caller names the
unit it means (`bare_unit="s"`): `--expires-in 90` must not silently become 90 seconds.
"""

from __future__ import annotations

import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?[smhd])+$")
_BARE = re.compile(r"^\d+(?:\.\d+)?$")
HINT = "use a number with a unit: s, m, h or d, e.g. 30s, 5m, 1h30m, 24h"


def parse_duration(text: str, bare_unit: str | None = None) -> float:
    """Seconds in `text`; ValueError with a readable message otherwise. A bare number is read
    in `bare_unit` when one is given, else refused."""
    compact = text.strip().replace(" ", "").lower()
    if _BARE.match(compact):
        if bare_unit is None:
            raise ValueError(f"duration {text!r} has no unit: {HINT}")
        return float(compact) * _UNITS[bare_unit]
    if not compact or not _WHOLE.match(compact):
        raise ValueError(f"invalid duration {text!r}: {HINT}")
    return sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(compact))


def parse_minutes(text: str) -> float:
    """Minutes in `text`: a duration with a unit (`90s`, `5m`, `1h30m`), or a bare number of minutes
    (the seed's fields are in minutes, so a bare number there is not ambiguous)."""
    return parse_duration(text, bare_unit="m") / 60.0


def duration_arg(text: str) -> float:
    """argparse `type=`: seconds, a unit required."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        import argparse

        raise argparse.ArgumentTypeError(str(exc)) from None


def minutes_arg(text: str) -> float:
    """argparse `type=`: minutes, from a duration or a bare number of minutes."""
    try:
        return parse_minutes(text)
    except ValueError as exc:
        import argparse

        raise argparse.ArgumentTypeError(str(exc)) from None
