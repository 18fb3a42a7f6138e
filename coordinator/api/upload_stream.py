"""An upload arriving on the event loop, read from a worker thread one piece at a time: the
bridge both doors (gRPC `UploadArtifact`, REST `POST /v2/artifacts`) hand to
`payloads.store_artifact`, which writes each MiB to the store as it comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from sqlalchemy.orm import Session

from coordinator.auth import Principal

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
