"""REST: `GET /v2/deployments/{id}/events`, live progress as server-sent events.

The same snapshots as gRPC `WatchDeployment` (`DeploymentActions.watch`, woken by the engine's
notifications, never polling): one `progress` event now, then one per change, and the stream
ends after the deployment finishes. A comment line every few seconds keeps proxies from closing
an idle stream and lets the server notice a client that went away.

The first snapshot is read before the response starts, so a bad token or an unknown id is the
usual 401/403/404 JSON error, not a broken stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from coordinator.api.deployment_actions import DeploymentActions
from coordinator.auth import bearer

router = APIRouter(tags=["deployments"])

KEEPALIVE_S = 10.0


def _event(snapshot: dict[str, Any]) -> bytes:
    return f"event: progress\ndata: {json.dumps(snapshot, separators=(',', ':'))}\n\n".encode()


async def _stream(first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n" + _event(first)
    pending: asyncio.Task[dict[str, Any]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(rest))
            # wait without cancelling the read: a timeout only sends a keep-alive comment
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_S)
            if not done:
                yield b": keep-alive\n\n"
                continue
            try:
                snapshot = pending.result()
            except StopAsyncIteration:
                yield b"event: end\ndata: {}\n\n"
                return
            pending = None
            yield _event(snapshot)
    finally:
        if pending is not None:  # the client went away mid-wait: stop the read, then the watch
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await rest.aclose()  # type: ignore[attr-defined]


@router.get("/deployments/{dep_id}/events", summary="Live progress as server-sent events (text/event-stream)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": "`progress` events: {deployment, batches, recentFailures}; "
                                            "`end` once the deployment has finished"}})
async def deployment_events(request: Request, dep_id: str) -> StreamingResponse:
    token = bearer(request.headers.get("authorization"))
    snapshots = DeploymentActions(request.app.state.convoy).watch(token, dep_id)
    first = await anext(snapshots)  # errors here are ordinary JSON error responses
    return StreamingResponse(_stream(first, snapshots), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
