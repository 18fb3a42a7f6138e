"""The REST door: a request with a body is authenticated before a byte of it is read, refused
with 413 when larger than `Settings.max_body_bytes` (from Content-Length, or counted as chunks
arrive), and refused with 400 when its JSON nests deeper than MAX_JSON_DEPTH (Python's parser
would hit its recursion limit and answer 500). Only then does the route see it.

Requests without a body (GET, most POST actions) pass straight through: their routes
authenticate as before.

One route streams instead: an artifact upload (`POST /v2/artifacts`) is authenticated and its
Content-Length checked against the artifact limit (`payloads.MAX_ARTIFACT_BYTES`) the same way,
then handed to the route unbuffered; the store counts the bytes as they arrive.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import ConvoyError, InvalidArgument
from coordinator.app import App
from coordinator.auth import authenticate_api, bearer
from coordinator.service.payloads import MAX_ARTIFACT_BYTES

STREAMED = ("POST", "/v2/artifacts")  # the artifact upload (rest_payloads.upload_artifact)

log = logging.getLogger("convoy.rest")

MAX_JSON_DEPTH = 32
_OPEN = {ord("["), ord("{")}
_CLOSE = {ord("]"), ord("}")}
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays/objects in `body` nest deeper than `limit` (strings are skipped, so a
    bracket inside one does not count). Linear, no parsing, stops at the first excess."""
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSE:
            depth -= 1
    return False


class TooLarge(ConvoyError):
    code = "payload_too_large"
    http_status = 413


class DoorGuard:
    """ASGI middleware for `/v2`: authenticate, bound the body, bound its nesting."""

    def __init__(self, app: ASGIApp, convoy: App, max_body: int) -> None:
        self.app = app
        self.convoy = convoy
        self.max_body = max_body

    def _authenticate(self, token: str) -> None:
        with self.convoy.store.read() as s:
            authenticate_api(s, token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/v2"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if not chunked and (length is None or length.strip() in (b"", b"0")):
            await self.app(scope, receive, send)
            return
        streamed = (scope.get("method"), scope.get("path")) == STREAMED
        try:
            await self._admit(headers, length, MAX_ARTIFACT_BYTES if streamed else self.max_body)
        except ConvoyError as exc:
            await _send(send, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a store failure while authenticating
            from coordinator.api.grpc_util import store_unavailable

            mapped = store_unavailable(exc)
            if mapped is None:
                log.exception("REST door check failed", exc_info=exc)
                mapped = ConvoyError("internal error (logged on the coordinator)")
            await _send(send, mapped)
            return
        if streamed:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await _send(send, _too_large(self.max_body))
                return
            if not message.get("more_body", False):
                break
        if json_depth_exceeds(bytes(body)):
            await _send(send, InvalidArgument(f"request body nests deeper than {MAX_JSON_DEPTH} levels",
                                              parameter="body"))
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _admit(self, headers: dict[bytes, bytes], length: bytes | None, limit: int) -> None:
        raw = headers.get(b"authorization")
        token = bearer(raw.decode("latin-1") if raw else None)
        await self.convoy.run(self._authenticate, token)
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise InvalidArgument("bad Content-Length header", parameter="Content-Length") from None
            if declared > limit:
                raise _too_large(limit)


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"request body larger than {limit} bytes", limit=limit)


async def _send(send: Send, exc: ConvoyError) -> None:
    payload = json.dumps(exc.body()).encode()
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"),
                                          (b"content-length", str(len(payload)).encode()),
                                          # the unread body makes the connection unusable: close it
                                          (b"connection", b"close")]
    if exc.http_status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    start: dict[str, Any] = {"type": "http.response.start", "status": exc.http_status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": payload})
