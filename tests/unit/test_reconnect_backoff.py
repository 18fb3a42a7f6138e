"""(issue 9, 15) The agent's reconnect backoff resets after a welcomed stream breaks, whether the
stream ended cleanly or with an error (a coordinator restart looks like the latter)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from agent.daemon import Daemon
from agent.state import AgentIdentity, StateDir


class RecordingClock:
    """Records every reconnect wait instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def now(self) -> Any:  # pragma: no cover - unused here
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - unused here
        self.waits.append(seconds)

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        self.waits.append(float(timeout or 0))
        return event.is_set()


def _daemon(tmp_path: Path, welcomed: list[bool]) -> tuple[Daemon, RecordingClock]:
    clock = RecordingClock()
    d = Daemon(StateDir(tmp_path), clock=clock, rng=random.Random(1))  # type: ignore[arg-type]
    d.identity = AgentIdentity(server="127.0.0.1:1", device_id="d", client_id="c", machine_id="m")
    sessions = iter(welcomed)

    async def session(_stub: Any, _md: Any) -> bool:
        try:
            d._welcomed = next(sessions)
        except StopIteration:
            d.stop()
            return False
        raise ConnectionError("stream broke")

    d._session = session  # type: ignore[method-assign]
    return d, clock


def test_backoff_resets_after_a_welcomed_stream_breaks(tmp_path: Path) -> None:
    # three refused connects (backoff grows), then a welcomed stream that breaks, then one more
    d, clock = _daemon(tmp_path, [False, False, False, True, False])
    assert asyncio.run(d.connect_loop(None, ())) == 0
    grown, after_welcome = clock.waits[2], clock.waits[3]
    assert grown > 3.0  # 4-8 s after three failures in a row
    assert after_welcome <= 1.0  # back to the first step: 0.5-1 s


def test_backoff_grows_while_never_welcomed(tmp_path: Path) -> None:
    d, clock = _daemon(tmp_path, [False] * 6)
    asyncio.run(d.connect_loop(None, ()))
    assert clock.waits[-1] > clock.waits[0]
