"""Failed enrollments per source address: after `limit` failures within `window_s`, the source
is refused until its oldest failure in the window ages out. Successful enrollments are never
counted (an install wave behind one NAT address must not be slowed down).

Pure: time is passed in (seconds on any monotonic scale); memory is bounded by `max_sources`
(the sources seen least recently are forgotten first).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field


def source_host(peer: str) -> str:
    """`ipv4:10.0.0.5:41234` → `10.0.0.5`; `ipv6:[::1]:5000` → `::1`; anything else as it is."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6") and rest:
        host = rest.rpartition(":")[0] or rest
        return host.strip("[]")
    return peer


@dataclass
class FailureThrottle:
    limit: int = 20
    """Failures allowed per source within the window."""
    window_s: float = 60.0
    """How long a failure counts."""
    max_sources: int = 100_000
    """Sources remembered at most."""
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def _recent(self, source: str, now: float) -> deque[float]:
        times = self._failures.get(source)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[source]
        return times

    def retry_after(self, source: str, now: float) -> float:
        """Seconds until `source` may try again; 0 when it may now."""
        times = self._recent(source, now)
        if len(times) < self.limit:
            return 0.0
        return max(0.0, times[-self.limit] + self.window_s - now)

    def failed(self, source: str, now: float) -> int:
        """Record a failure; returns the failures of `source` in the window, this one included."""
        times = self._recent(source, now)
        if source not in self._failures:
            self._failures[source] = times
        self._failures.move_to_end(source)
        times.append(now)
        while len(times) > self.limit:
            times.popleft()
        while len(self._failures) > self.max_sources:
            self._failures.popitem(last=False)
        return len(times)
