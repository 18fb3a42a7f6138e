"""One error tree for the whole product, mapped once to gRPC and once to HTTP.

    ConvoyError
    ├── InvalidArgument      400  INVALID_ARGUMENT     bad input; names the parameter
    │   └── RetriesExhausted 400  FAILED_PRECONDITION  no automatic or manual retries left
    ├── Unauthenticated      401  UNAUTHENTICATED      no, bad, expired or revoked credential
    ├── PermissionDenied     403  PERMISSION_DENIED    outside the token's clients or role
    ├── NotFound             404  NOT_FOUND
    ├── Conflict             409  FAILED_PRECONDITION  invalid transition; carries current status
    └── Unavailable          503  UNAVAILABLE          store or peer unreachable (try again)

The HTTP body is the seed's `{"error": {"code", "message", "details"}}`. Over gRPC the message
is the status details string and `convoy-error-code` / `convoy-error-details` trailing metadata
carry the code and the JSON details.
"""

from __future__ import annotations

import json
from typing import Any

import grpc


class ConvoyError(Exception):
    code = "internal"
    http_status = 500
    grpc_status = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("convoy-error-code", self.code), ("convoy-error-details", json.dumps(self.details)))


class InvalidArgument(ConvoyError):
    code = "invalid_argument"
    http_status = 400
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class RetriesExhausted(InvalidArgument):
    code = "retries_exhausted"
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(ConvoyError):
    code = "unauthenticated"
    http_status = 401
    grpc_status = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ConvoyError):
    code = "forbidden"
    http_status = 403
    grpc_status = grpc.StatusCode.PERMISSION_DENIED


class NotFound(ConvoyError):
    code = "not_found"
    http_status = 404
    grpc_status = grpc.StatusCode.NOT_FOUND


class Conflict(ConvoyError):
    code = "conflict"
    http_status = 409
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ConvoyError):
    code = "unavailable"
    http_status = 503
    grpc_status = grpc.StatusCode.UNAVAILABLE


_BY_CODE: dict[str, type[ConvoyError]] = {
    cls.code: cls
    for cls in (InvalidArgument, RetriesExhausted, Unauthenticated, PermissionDenied, NotFound,
                Conflict, Unavailable)
}


def from_rpc_error(exc: grpc.RpcError) -> ConvoyError:
    """Rebuild the typed error from a failed call (used by the CLI and the agent)."""
    meta = {}
    try:
        meta = dict(exc.trailing_metadata() or ())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - some RpcErrors carry no metadata
        pass
    code = meta.get("convoy-error-code")
    details_text = meta.get("convoy-error-details")
    details = json.loads(details_text) if isinstance(details_text, str) else {}
    message = exc.details() if hasattr(exc, "details") else str(exc)  # type: ignore[attr-defined]
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    if cls is None:
        status = exc.code() if hasattr(exc, "code") else None  # type: ignore[attr-defined]
        if status == grpc.StatusCode.UNAVAILABLE:
            return Unavailable(message or "coordinator unavailable")
        err = ConvoyError(message or "call failed")
        err.code = status.name.lower() if status is not None else "internal"
        return err
    return cls(message or cls.code, **details)
