"""The REST listener's HTTP/1.1 protocol with two limits uvicorn does not have on its own.

- **A deadline for the request head.** uvicorn's keep-alive timer only runs *between* requests,
  so a client that connects and never finishes its headers would hold the connection forever.
  Here a connection that has not sent a complete request head within `header_timeout_s` of
  connecting is closed.
- **A connection cap.** `limit_concurrency` answers 503 only once a request has been read; a
  flood of idle connections is refused here at accept time instead, before it can exhaust file
  descriptors the gRPC server shares.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("convoy.rest")


def guarded_protocol(max_connections: int, header_timeout_s: float) -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning("REST connection from %s refused: %d connections open (limit %d)",
                            self.client, len(self.connections) - 1, max_connections)
                transport.abort()
                return
            self._head_deadline = self.loop.call_later(header_timeout_s, self._head_expired)

        def _head_expired(self) -> None:
            self._head_deadline = None
            if self.cycle is None and not self.transport.is_closing():
                log.info("REST connection from %s closed: no request head within %.0f s",
                         self.client, header_timeout_s)
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None
            super().connection_lost(exc)

    return GuardedH11Protocol
