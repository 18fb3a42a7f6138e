"""Batch sizing and the batch plan frozen at initialize (seed 004; docs/deployments-rules.md, "Batch sizing").

`batchSize` is an integer ≥ 1 or "N%" (0 < N ≤ 100, decimals allowed) of the resolved device
count, rounded up and never 0, capped at the resolved count. `batches` is a list of such sizes
(the last repeats); `ramp` grows each batch by a factor up to a cap. Immediate mode is one batch. The
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


def step_sizes(steps: Sequence[int | str], resolved: int) -> list[int]:
    """`staggered.batches`: each step an integer or "N%" of `resolved` (rounded up, at least 1);
    the last step repeats until every device is planned. The sizes sum to `resolved`."""
    if not steps:
        raise ValueError("a step list needs at least one step")
    sizes: list[int] = []
    left = resolved
    i = 0
    while left > 0:
        size = min(left, batch_size(steps[min(i, len(steps) - 1)], resolved))
        sizes.append(size)
        left -= size
        i += 1
    return sizes


def ramp_sizes(start: int, factor: float | int, cap: int | str | None, resolved: int) -> list[int]:
    """`staggered.ramp`: the first batch has `start` devices, each next one the previous × `factor`
    rounded up, never more than `cap` (an integer or "N%" of `resolved`). Sums to `resolved`."""
    if start < 1 or factor < 1:
        raise ValueError(f"a ramp needs start >= 1 and factor >= 1, got {start}, {factor}")
    limit = resolved if cap is None else batch_size(cap, resolved)
    exact_factor = Fraction(repr(float(factor)))  # 1.5 is exactly 3/2
    sizes: list[int] = []
    left = resolved
    current = Fraction(start)
    while left > 0:
        size = min(left, limit, math.ceil(current))
        sizes.append(size)
        left -= size
        current = min(Fraction(limit), Fraction(math.ceil(current)) * exact_factor)
    return sizes


def planned_sizes(rollout: Mapping[str, Any], resolved: int) -> list[int]:
    """Devices per batch for a normalized rolloutConfig over `resolved` devices."""
    if resolved <= 0:
        return []
    kind = rollout.get("type")
    if kind == "immediate":
        return [resolved]
    if kind != "staggered":
        raise ValueError(f"unknown rollout type {kind!r}")
    s = rollout["staggered"]
    if s.get("batches") is not None:
        return step_sizes(s["batches"], resolved)
    ramp = s.get("ramp")
    if ramp is not None:
        return ramp_sizes(int(ramp["start"]), ramp.get("factor", 2), ramp.get("max"), resolved)
    size = batch_size(s["batchSize"], resolved)
    return [min(size, resolved - i) for i in range(0, resolved, size)]


def plan_batches(device_ids: Sequence[str], rollout: Mapping[str, Any]) -> list[list[str]]:
    """Device ids split into batches for a normalized rolloutConfig; duplicates collapse."""
    ids = sorted(set(device_ids))
    out: list[list[str]] = []
    at = 0
    for size in planned_sizes(rollout, len(ids)):
        out.append(ids[at:at + size])
        at += size
    return out
