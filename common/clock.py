"""Time as a dependency: the real clock, and a fake one that jumps.

Every duration in Convoy (batch delays, retry backoff, install and enrollment timeouts,
heartbeats) is measured with a `Clock`, so tests cover a 60-minute backoff in milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Protocol


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        """Wait for `event` or `timeout` seconds of this clock; True if the event fired."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
        # arrives as the wait completes, and the engine would then outlive Coordinator.stop().
        try:
            async with asyncio.timeout(None if timeout is None else max(0.0, timeout)):
                await event.wait()
            return True
        except TimeoutError:
            return event.is_set()


class FakeClock:
    """A clock that only moves when told to. `advance()` wakes every sleeper that is due."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def _timer(self, seconds: float) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        due = self._now + timedelta(seconds=max(0.0, seconds))
        if due <= self._now:
            fut.set_result(None)
        else:
            heapq.heappush(self._sleepers, (due, next(self._seq), fut))
        return fut

    async def sleep(self, seconds: float) -> None:
        await self._timer(seconds)

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        pending = {waiter}
        timer = self._timer(timeout) if timeout is not None else None
        if timer is not None:
            pending.add(timer)  # type: ignore[arg-type]
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if timer is not None and not timer.done():
            timer.cancel()
        return event.is_set()

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def set(self, when: datetime) -> None:
        self.advance((when - self._now).total_seconds())
