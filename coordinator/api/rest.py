"""The REST API under /v2: routers per area, errors as the seeds' body, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import ConvoyError
from coordinator.app import App
from coordinator.health import Readiness
from coordinator.metrics import HttpMetricsMiddleware, Metrics

log = logging.getLogger("convoy.rest")


def _error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status,
                        content={"error": {"code": code, "message": message, "details": details or {}}})


def create_app(app: App, metrics: Metrics | None = None, readiness: Readiness | None = None) -> FastAPI:
    api = FastAPI(title="Convoy", version="2", description="Convoy coordinator REST API",
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    api.state.convoy = app
    api.state.metrics = metrics = metrics or Metrics()
    api.state.readiness = readiness or Readiness(app)
    api.add_middleware(HttpMetricsMiddleware, metrics=metrics)  # type: ignore[arg-type]

    @api.exception_handler(ConvoyError)
    async def convoy_error(_: Request, exc: ConvoyError) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content=exc.body())

    @api.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        name = ".".join(loc) or "request"
        return _error(400, "invalid_argument", f"invalid {name}: {first.get('msg', 'bad value')}",
                      {"parameter": name})

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated"}
        return _error(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))

    # Store errors get their own handlers: Starlette's catch-all `Exception` handler runs in the
    # outermost middleware, which re-raises after answering, so uvicorn would log "Exception in
    # ASGI application" with a traceback for every clean 503. These run in the inner exception
    # middleware, which answers and stops there.
    async def store_error(_: Request, exc: Exception) -> JSONResponse:
        from coordinator.api.grpc_util import store_unavailable

        mapped = store_unavailable(exc)
        if mapped is None:  # pragma: no cover - both registered types always map
            log.exception("unhandled store error in REST call", exc_info=exc)
            return _error(500, "internal", "internal error (logged on the coordinator)")
        return JSONResponse(status_code=mapped.http_status, content=mapped.body())

    from sqlalchemy.exc import DataError, OperationalError

    api.add_exception_handler(OperationalError, store_error)
    api.add_exception_handler(DataError, store_error)

    @api.exception_handler(Exception)
    async def unhandled(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in REST call", exc_info=exc)
        return _error(500, "internal", "internal error (logged on the coordinator)")

    from coordinator.api import (
        rest_audit,
        rest_clients,
        rest_credentials,
        rest_deployments,
        rest_devices,
        rest_enrollment,
        rest_events,
        rest_history,
        rest_ops,
        rest_payloads,
        rest_signers,
        rest_webhooks,
        web,
    )

    api.include_router(rest_ops.router)
    api.include_router(rest_clients.router, prefix="/v2")
    api.include_router(rest_signers.router, prefix="/v2")
    api.include_router(rest_history.router, prefix="/v2")
    api.include_router(rest_devices.router, prefix="/v2")
    api.include_router(rest_deployments.router, prefix="/v2")
    api.include_router(rest_credentials.router, prefix="/v2")
    api.include_router(rest_events.router, prefix="/v2")
    api.include_router(rest_webhooks.router, prefix="/v2")
    api.include_router(rest_audit.router, prefix="/v2")
    api.include_router(rest_enrollment.router, prefix="/v2")
    api.include_router(rest_payloads.router, prefix="/v2")
    from coordinator.api.rest_limits import DoorGuard

    api.add_middleware(DoorGuard, convoy=app, max_body=app.settings.max_body_bytes)
    _document_errors(api)
    web.mount_dashboard(api)  # last: the API's routes come first
    return api


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message", "details"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}},
}
_ERRORS = {
    "400": "Invalid parameters or body (`invalid_argument`; `retries_exhausted` for a device retry)",
    "401": "Authentication required (`unauthenticated`)",
    "403": "Insufficient permissions for this client (`forbidden`)",
    "404": "Not found (`not_found`)",
    "409": "Not allowed in the current status (`conflict`; details carry the status)",
    "413": "Request body larger than the coordinator's limit (`payload_too_large`)",
    "503": "The store is unavailable; try again (`unavailable`)",
}


def _document_errors(api: FastAPI) -> None:
    """The served OpenAPI document shows the errors the API really answers with: the seeds'
    body and status codes (FastAPI would advertise a 422 validation error we never send)."""
    from fastapi.openapi.utils import get_openapi

    from coordinator.api.rest_io import documented_schemas

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            spec = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
            spec.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
            spec["components"]["schemas"].update(documented_schemas())  # bodies routes parse themselves
            spec["components"]["schemas"].pop("HTTPValidationError", None)
            spec["components"]["schemas"].pop("ValidationError", None)
            spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            spec["security"] = [{"bearer": []}]
            for path, ops in spec["paths"].items():
                if not path.startswith("/v2/"):
                    continue  # /metrics, /healthz, /readyz answer no error bodies
                for op in ops.values():
                    responses = op.setdefault("responses", {})
                    responses.pop("422", None)
                    for code, text in _ERRORS.items():
                        responses.setdefault(code, {"description": text, "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
            api.openapi_schema = spec
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
