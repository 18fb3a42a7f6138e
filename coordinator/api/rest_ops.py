"""Operations endpoints on the HTTP port: `/metrics`, `/healthz`, `/readyz` (no authentication,
as Prometheus and load balancers expect; they reveal counts, never names or ids)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from coordinator.api.rest_models import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics (text exposition format)",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    body = await asyncio.to_thread(request.app.state.metrics.exposition)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", summary="Liveness: the process answers (and which replica it is)", response_model=Health)
async def healthz(request: Request) -> dict[str, Any]:
    return {"status": "ok", "replica": request.app.state.convoy.replica_id}


@router.get("/readyz", summary="Readiness: store reachable and migrations current (503 otherwise)",
            response_model=Readiness, responses={503: {"model": Readiness, "description":
                                                       "Not ready: the store is unreachable or its schema is behind"}})
async def readyz(request: Request) -> JSONResponse:
    state = await request.app.state.readiness.check()
    return JSONResponse(status_code=200 if state.ready else 503,
                        content={"status": "ready" if state.ready else "not ready",
                                 "replica": request.app.state.convoy.replica_id,
                                 "store": state.store, "migrations": state.migrations})
