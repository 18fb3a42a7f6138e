"""(issue 9, 15) The agent's reconnect backoff resets after a welcomed stream breaks, whether the
stream ended cleanly or with an error (a coordinator restart looks like the latter)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.daemon import Daemon
from agent.state import AgentIdentity, StateDir


class RecordingClock:
    """Records every reconnect wait instead of sleeping; its time moves by the waits only."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.at = datetime(2026, 12, 3, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - unused here
        self.waits.append(seconds)
        self.at += timedelta(seconds=seconds)

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        self.waits.append(float(timeout or 0))
        self.at += timedelta(seconds=float(timeout or 0))
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


def _unanswered(code: Any = None) -> Any:
    """gRPC's own status for an attempt the coordinator never answered (no convoy-error-code)."""
    import grpc
    import grpc.aio

    return grpc.aio.AioRpcError(code or grpc.StatusCode.CANCELLED, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                details="CANCELLED")


def _from_coordinator() -> Any:
    import grpc
    import grpc.aio

    from common.errors import ConvoyError

    return grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(),
                                grpc.aio.Metadata(*ConvoyError("internal error").trailing_metadata()),
                                details="internal error (logged on the coordinator)")


def _scripted(tmp_path: Path, steps: list[tuple[bool, BaseException]]) -> tuple[Daemon, RecordingClock]:
    """A daemon whose attempts go as scripted: (welcomed, then the error the attempt ended with)."""
    clock = RecordingClock()
    d = Daemon(StateDir(tmp_path), clock=clock, rng=random.Random(1))  # type: ignore[arg-type]
    d.identity = AgentIdentity(server="127.0.0.1:1", device_id="d", client_id="c", machine_id="m")
    it = iter(steps)

    async def session(_stub: Any, _md: Any) -> bool:
        try:
            d._welcomed, exc = next(it)
        except StopIteration:
            d.stop()
            return False
        raise exc

    d._session = session  # type: ignore[method-assign]
    return d, clock


def test_an_unreachable_coordinator_is_one_warning_per_outage(tmp_path: Path, caplog: Any) -> None:
    """(issue 14) Attempts the coordinator never answers (refused, or gRPC's CANCELLED / INTERNAL
    for a connection that failed, even after the hello was written): the first after a welcome is
    a warning, the rest info; a welcomed stream that broke, or a status the coordinator sent (its
    error code in the trailers), always warns."""
    import logging

    refused = ConnectionError("refused")
    steps = [(False, refused), (False, _unanswered()), (False, refused), (True, refused),
             (False, _unanswered()), (False, _from_coordinator()), (False, refused)]
    d, _clock = _scripted(tmp_path, steps)
    with caplog.at_level(logging.INFO, logger="convoy.agent"):
        asyncio.run(d.connect_loop(None, ()))
    lost = [r for r in caplog.records if "lost" in r.getMessage()]
    w, i = logging.WARNING, logging.INFO
    assert [r.levelno for r in lost] == [w, i, i, w, w, w, i]
    assert "before the coordinator answered: CANCELLED" in lost[1].getMessage()
    assert "lost: INTERNAL: internal error" in lost[5].getMessage()


def test_a_coordinator_that_stays_unreachable_is_warned_about_again(tmp_path: Path, caplog: Any) -> None:
    """The quiet attempts are not a hidden failure: while no attempt is answered, a warning again
    every UNREACHABLE_REWARN_S, saying for how long."""
    import logging

    from agent.daemon import UNREACHABLE_REWARN_S

    d, clock = _scripted(tmp_path, [(False, _unanswered())] * 40)
    with caplog.at_level(logging.INFO, logger="convoy.agent"):
        asyncio.run(d.connect_loop(None, ()))
    elapsed = sum(clock.waits)
    warned = [r.getMessage() for r in caplog.records if "lost" in r.getMessage() and r.levelno == logging.WARNING]
    assert elapsed > 2 * UNREACHABLE_REWARN_S
    # the first attempt's warning, then one per UNREACHABLE_REWARN_S (each wait is at most 30 s)
    assert int(elapsed // UNREACHABLE_REWARN_S) - 1 <= len(warned) - 1 <= int(elapsed // UNREACHABLE_REWARN_S)
    assert len(warned) >= 2 and "unreachable for" in warned[1] and "unreachable for" not in warned[0]


def test_the_backoff_never_waits_longer_than_the_outage_has_lasted(tmp_path: Path) -> None:
    """(issue 14) Failures that come fast (a restarted coordinator swamped) do not push an agent onto
    16-30 s steps a few seconds into an outage: each wait is at most max(window, the outage so far)."""
    from agent.daemon import RECONNECT_WINDOW, reconnect_delay

    rng = random.Random(5)
    assert max(reconnect_delay(6, rng, outage_s=1.0) for _ in range(500)) <= RECONNECT_WINDOW
    assert max(reconnect_delay(6, rng, outage_s=10.0) for _ in range(500)) <= 10.0
    assert max(reconnect_delay(6, rng, outage_s=10.0) for _ in range(500)) > 8.0
    assert max(reconnect_delay(6, rng, outage_s=600.0) for _ in range(500)) > 25.0  # the cap again
    d, clock = _scripted(tmp_path, [(False, ConnectionError("refused"))] * 12)
    asyncio.run(d.connect_loop(None, ()))
    outage = 0.0
    for w in clock.waits:
        assert w <= max(RECONNECT_WINDOW, outage) + 1e-9, clock.waits
        outage += w
