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
    assert clock.waits[3] <= 3.0  # back to the first step: anywhere in the 3 s window
    # Full jitter: any one wait may be short, so compare the steps' upper bounds over many runs.
    from agent.daemon import reconnect_delay

    rng = random.Random(3)
    assert max(reconnect_delay(3, rng) for _ in range(200)) > 6.0  # 0-8 s after three failures
    assert max(reconnect_delay(0, rng) for _ in range(200)) <= 3.0


def test_backoff_grows_while_never_welcomed(tmp_path: Path) -> None:
    d, clock = _daemon(tmp_path, [False] * 6)
    asyncio.run(d.connect_loop(None, ()))
    assert clock.waits[-1] > clock.waits[0]


def test_a_busy_coordinator_is_retried_after_its_hint_quietly(tmp_path: Path, caplog: Any) -> None:
    """(issue 14) RESOURCE_EXHAUSTED with `retryAfterMs`: the agent waits exactly the hint, logs
    it at info level (no warning), and its backoff does not grow; a hint over the bound is cut."""
    import json
    import logging

    import grpc
    import grpc.aio

    def busy(ms: object) -> grpc.aio.AioRpcError:
        details = json.dumps({"retryAfterMs": ms})
        return grpc.aio.AioRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.aio.Metadata(),
                                    grpc.aio.Metadata(("convoy-error-details", details)), details="busy")

    clock = RecordingClock()
    d = Daemon(StateDir(tmp_path), clock=clock, rng=random.Random(1))  # type: ignore[arg-type]
    d.identity = AgentIdentity(server="127.0.0.1:1", device_id="d", client_id="c", machine_id="m")
    errors = iter([busy(1500), busy(10**9), busy("soon"), ConnectionError("refused")])

    async def session(_stub: Any, _md: Any) -> bool:
        try:
            raise next(errors)
        except StopIteration:
            d.stop()
            return False

    d._session = session  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="convoy.agent"):
        assert asyncio.run(d.connect_loop(None, ())) == 0
    assert clock.waits[:3] == [1.5, 60.0, 3.0]  # the hint; bounded at 60 s; unreadable: the window
    assert clock.waits[3] <= 2.0  # the first real failure: backoff step 1 (0-2 s), not grown by the hints
    busy_lines = [r for r in caplog.records if "busy" in r.getMessage()]
    assert len(busy_lines) == 3 and all(r.levelno == logging.INFO for r in busy_lines)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "busy" in r.getMessage()]


def test_an_unreachable_coordinator_is_one_warning_per_outage(tmp_path: Path, caplog: Any) -> None:
    """(issue 14) Attempts that never reach the coordinator (failed before the hello): the first
    after a welcome is a warning, the rest info; a stream that broke after its hello always warns."""
    import logging

    clock = RecordingClock()
    d = Daemon(StateDir(tmp_path), clock=clock, rng=random.Random(1))  # type: ignore[arg-type]
    d.identity = AgentIdentity(server="127.0.0.1:1", device_id="d", client_id="c", machine_id="m")
    # (hello written, welcomed) per attempt: three unreachable, a welcomed stream, two unreachable
    steps = iter([(False, False)] * 3 + [(True, True)] + [(False, False)] * 2)

    async def session(_stub: Any, _md: Any) -> bool:
        try:
            d._hello_sent, d._welcomed = next(steps)
        except StopIteration:
            d.stop()
            return False
        raise ConnectionError("refused")

    d._session = session  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="convoy.agent"):
        asyncio.run(d.connect_loop(None, ()))
    levels = [r.levelno for r in caplog.records if "lost" in r.getMessage()]
    w, i = logging.WARNING, logging.INFO
    assert levels == [w, i, i, w, w, i]
