"""The clocks: the real one's wait is cancellable; the fake one only moves when told."""

from __future__ import annotations

import asyncio

from common.clock import FakeClock, SystemClock


def test_system_wait_returns_on_event_or_timeout_and_is_cancellable() -> None:
    async def main() -> None:
        clock = SystemClock()
        ev = asyncio.Event()
        assert await clock.wait(ev, 0.01) is False
        ev.set()
        assert await clock.wait(ev, 5) is True
        ev.clear()
        task = asyncio.create_task(clock.wait(ev, None))
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return
        raise AssertionError("wait swallowed the cancellation")

    asyncio.run(main())


def test_fake_clock_wakes_sleepers_only_when_advanced() -> None:
    async def main() -> None:
        clock = FakeClock()
        ev = asyncio.Event()
        waiter = asyncio.create_task(clock.wait(ev, 3600))
        await asyncio.sleep(0)
        assert not waiter.done()
        clock.advance(3599)
        await asyncio.sleep(0)
        assert not waiter.done()
        clock.advance(1)
        assert await waiter is False
        sleeper = asyncio.create_task(clock.sleep(60))
        await asyncio.sleep(0)
        clock.advance(60)
        await sleeper

    asyncio.run(main())
