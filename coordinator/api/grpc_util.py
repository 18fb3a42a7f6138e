"""The one path from domain errors to gRPC status, and bearer extraction from metadata."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import grpc.aio

from common.errors import ConvoyError, InvalidArgument, Unauthenticated, Unavailable

log = logging.getLogger("convoy.grpc")
T = TypeVar("T")


def metadata_bearer(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            from coordinator.auth import bearer

            return bearer(value if isinstance(value, str) else value.decode())
    raise Unauthenticated("authentication required: send 'authorization: Bearer <token>' metadata")


def presented_certificate(context: grpc.aio.ServicerContext) -> str:
    """`sha256:<hex>` of the client certificate of the call's connection, "" without one. gRPC
    puts it in the auth context only after verifying it against the CA (the agent port requires
    one; the gRPC port never asks), so a certificate here was issued by the coordinator."""
    pems = context.auth_context().get("x509_pem_cert") or []
    if not pems:
        return ""
    from common import pins

    certs = pins.pem_certificates(pems[0])
    return pins.fingerprint(certs[0]) if certs else ""


def store_unavailable(exc: BaseException) -> ConvoyError | None:
    """Store failures caused by the request or the store, not by a bug: a store that cannot be
    reached (or stays locked) is a 503 the caller may retry; a value it cannot hold is a 400."""
    from sqlalchemy.exc import DataError, OperationalError

    if isinstance(exc, OperationalError):
        log.warning("store unavailable: %s", exc.orig if exc.orig is not None else exc)
        return Unavailable("the coordinator's store is unavailable; try again shortly")
    if isinstance(exc, DataError):  # e.g. a NUL byte in text, a number out of the column's range
        first = str(exc.orig if exc.orig is not None else exc).splitlines()[0]
        return InvalidArgument(f"a value in the request cannot be stored: {first}")
    return None


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    exc = store_unavailable(exc) or exc
    if isinstance(exc, ConvoyError):
        context.set_trailing_metadata(exc.trailing_metadata())
        await context.abort(exc.grpc_status, exc.message)
    log.exception("unhandled error in RPC", exc_info=exc)
    # With the error code like every other status the coordinator sends: an agent tells a status
    # from the coordinator from gRPC's own report of a failed connection by it (agent/daemon.py
    # `answered`), and a coordinator bug must be logged as such, not as "unreachable".
    internal = ConvoyError("internal error (logged on the coordinator)")
    context.set_trailing_metadata(internal.trailing_metadata())
    await context.abort(grpc.StatusCode.INTERNAL, internal.message)


def unary(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Decorate a unary servicer method so every error leaves as the right status."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped, never leaked
            await _abort(context, exc)
            raise  # unreachable: abort raises

    return wrapper


def streaming(fn: Callable[..., AsyncIterator[T]]) -> Callable[..., AsyncIterator[T]]:
    """The same for server-streaming methods (async generators)."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[T]:
        try:
            async for item in fn(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001
            await _abort(context, exc)

    return wrapper
