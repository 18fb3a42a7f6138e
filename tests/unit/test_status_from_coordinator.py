"""(issue 14) Every status the coordinator sends carries its error code, so an agent tells it from
gRPC's own report of a connection that failed before the coordinator answered (agent/daemon.py
`answered`): a coordinator bug (INTERNAL) stays a warning, a swamped restart stays quiet."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest

from agent.daemon import answered
from common.errors import NotFound
from coordinator.api.grpc_util import _abort


class _Aborted(Exception):
    pass


class RecordingContext:
    """The two calls `_abort` makes on a grpc.aio ServicerContext."""

    def __init__(self) -> None:
        self.trailers: tuple[tuple[str, str], ...] = ()
        self.status: tuple[grpc.StatusCode, str] | None = None

    def set_trailing_metadata(self, md: tuple[tuple[str, str], ...]) -> None:
        self.trailers = md

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status = (code, details)
        raise _Aborted()


def _as_client_sees(ctx: RecordingContext) -> grpc.aio.AioRpcError:
    assert ctx.status is not None
    return grpc.aio.AioRpcError(ctx.status[0], grpc.aio.Metadata(), grpc.aio.Metadata(*ctx.trailers),
                                details=ctx.status[1])


@pytest.mark.parametrize("exc", [RuntimeError("a bug"), NotFound("no such device")])
def test_every_status_the_coordinator_sends_is_answered(exc: Exception, caplog: Any) -> None:
    ctx = RecordingContext()
    with pytest.raises(_Aborted):
        asyncio.run(_abort(ctx, exc))  # type: ignore[arg-type]
    assert answered(_as_client_sees(ctx))
    if isinstance(exc, RuntimeError):
        assert ctx.status == (grpc.StatusCode.INTERNAL, "internal error (logged on the coordinator)")
        assert "unhandled error in RPC" in caplog.text


def test_grpcs_own_status_for_a_failed_connection_is_not_answered() -> None:
    for code, details in ((grpc.StatusCode.CANCELLED, "CANCELLED"), (grpc.StatusCode.INTERNAL, "Internal error from Core"),
                          (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")):
        assert not answered(grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details))
