"""An upload arriving on the event loop, read from a worker thread one piece at a time: the
bridge both doors (gRPC `UploadArtifact`, REST `POST /v2/artifacts`) hand to
`payloads.store_artifact`, which writes each MiB to the store as it comes.

The thread an upload is read on waits for the client between pieces, so uploads run on a pool
of their own (`UploadSlots`), never on the workers every other store call shares: a client that
sends one byte and stalls holds one upload slot, not the coordinator. Each API token has at most
`PER_PRINCIPAL` uploads at once and the coordinator `TOTAL`; past them an upload is refused at
once (RESOURCE_EXHAUSTED / 429), before a byte of it is read.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc
from sqlalchemy.orm import Session

from common.errors import ConvoyError
from coordinator.auth import Principal

T = TypeVar("T")

PER_PRINCIPAL = 2
"""Uploads one API token may have in flight at once."""
TOTAL = 8
"""Uploads in flight at once on this coordinator (the size of their own thread pool)."""


class TooManyUploads(ConvoyError):
    code = "too_many_uploads"
    http_status = 429
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED


class UploadSlots:
    """Admission and threads for uploads (see the module doc). One per coordinator process."""

    def __init__(self, per_principal: int = PER_PRINCIPAL, total: int = TOTAL) -> None:
        self.per_principal, self.total = per_principal, total
        self._pool = ThreadPoolExecutor(total, thread_name_prefix="upload")
        self._by: Counter[str] = Counter()

    @contextmanager
    def slot(self, who: Principal) -> Iterator[None]:
        """Hold one upload slot for `who` (on the event loop: no lock needed), or refuse."""
        if self._by[who.token_id] >= self.per_principal:
            raise TooManyUploads(f"this API token already has {self.per_principal} uploads in flight; "
                                 "wait for one to finish", limit=self.per_principal)
        if sum(self._by.values()) >= self.total:
            raise TooManyUploads(f"the coordinator is taking {self.total} uploads already; retry shortly",
                                 limit=self.total)
        self._by[who.token_id] += 1
        try:
            yield
        finally:
            self._by[who.token_id] -= 1
            if not self._by[who.token_id]:
                del self._by[who.token_id]

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn` on an upload thread (not the shared store workers)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))


def slots(app: Any) -> UploadSlots:
    """The coordinator's upload slots (made on first use)."""
    if app.uploads is None:
        app.uploads = UploadSlots()
    return app.uploads  # type: ignore[no-any-return]

_END = object()


async def _next(source: AsyncIterator[bytes]) -> object:
    try:
        return await anext(source)
    except StopAsyncIteration:
        return _END


def blocking_pieces(loop: asyncio.AbstractEventLoop, source: AsyncIterator[bytes]) -> Iterator[bytes]:
    """A blocking iterator, for a worker thread, over the pieces still arriving on `loop`.

    Each `next()` asks the loop for one more piece, so the client is read only as fast as the
    store writes: nothing beyond the current piece and one MiB of buffer is in memory.
    """
    while True:
        piece = asyncio.run_coroutine_threadsafe(_next(source), loop).result()
        if piece is _END:
            return
        assert isinstance(piece, bytes)
        yield piece


def principal(_s: Session, who: Principal) -> Principal:
    """For `Api.read`: authenticate (before a byte of the upload is read) and keep the caller."""
    return who
