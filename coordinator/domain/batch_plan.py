"""Batch sizing and the batch plan frozen at initialize (seed 004; docs/deployments-rules.md, "Batch sizing").

`batchSize` is an integer ≥ 1 or "N%" (0 < N ≤ 100, decimals allowed) of the resolved device
count, rounded up and never 0, capped at the resolved count. Immediate mode is one batch. The
plan sorts device ids first, so the same targets always give the same batches whatever order
target resolution returned them in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_percent(spec: str) -> Fraction | None:
    """The N of an "N%" batch size as an exact fraction, or None if `spec` is not one."""
    match = _PERCENT.match(spec)
    if not match:
        return None
    value = Fraction(match.group(1))
    return value if 0 < value <= 100 else None


def batch_size(spec: int | str, resolved: int) -> int:
    """Devices per batch for `spec` over `resolved` devices (0 only when resolved is 0)."""
    if resolved <= 0:
        return 0
    if isinstance(spec, bool):
        raise ValueError(f"batch size must be an integer or 'N%', got {spec!r}")
    if isinstance(spec, int):
        if spec < 1:
            raise ValueError(f"batch size must be at least 1, got {spec}")
        return min(spec, resolved)
    if isinstance(spec, str):
        percent = parse_percent(spec)
        if percent is None:
            raise ValueError(f"batch size {spec!r} is not 'N%' with 0 < N <= 100")
        # Exact arithmetic: 10% of 30 is exactly 3, not 3.0000000000000004 rounded up to 4.
        return max(1, min(resolved, math.ceil(percent * resolved / 100)))
    raise ValueError(f"batch size must be an integer or 'N%', got {spec!r}")


def plan_batches(device_ids: Sequence[str], rollout: Mapping[str, Any]) -> list[list[str]]:
    """Device ids split into batches for a normalized rolloutConfig; duplicates collapse."""
    ids = sorted(set(device_ids))
    if not ids:
        return []
    kind = rollout.get("type")
    if kind == "immediate":
        return [ids]
    if kind == "staggered":
        size = batch_size(rollout["staggered"]["batchSize"], len(ids))
        return [ids[i:i + size] for i in range(0, len(ids), size)]
    raise ValueError(f"unknown rollout type {kind!r}")
