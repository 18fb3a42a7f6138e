"""Artifact download over `DownloadArtifact`: resumable, verified before anything is installed.

Bytes go to `<work_dir>/<sha256>.part`. After a broken stream the next request asks for the
bytes from the length already on disk. When the stream has delivered everything, the size and
the sha256 of the whole file are checked; only then is it renamed to `<work_dir>/<sha256>` and
returned. A mismatch deletes the file and raises `IntegrityError`, so nothing is installed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from common.convoy.v1 import agent_pb2

log = logging.getLogger("convoy.agent.download")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Worth another try from the current offset; anything else (not found, denied) is final.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
                       grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED})


class DownloadError(Exception):
    """The artifact could not be fetched."""


class IntegrityError(DownloadError):
    """The fetched bytes are not the artifact the job names (size or sha256)."""


def sha256_file(path: Path) -> str:
    # hashlib loads OpenSSL's libcrypto (~3.5 MB of RSS): only an agent that downloads pays it.
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, sha256: str, size: int | None) -> None:
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        path.unlink(missing_ok=True)
        raise IntegrityError(f"size mismatch: expected {size} bytes, got {actual_size}")
    actual = sha256_file(path)
    if actual != sha256:
        path.unlink(missing_ok=True)
        raise IntegrityError(f"sha256 mismatch: expected {sha256} got {actual}")


class Downloader:
    """Fetches artifacts named by sha256 through an AgentService stub."""

    def __init__(self, stub: Any, metadata: Sequence[tuple[str, str]], work_dir: Path, *,
                 attempts: int = 5, backoff: float = 0.5, max_backoff: float = 10.0,
                 idle_timeout: float = 60.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None) -> None:
        self.stub = stub
        self.metadata = tuple(metadata)
        self.work_dir = work_dir
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.idle_timeout = idle_timeout
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def fetch(self, sha256: str, size: int | None = None) -> Path:
        """The verified artifact's path. `size` is the payload's declared size, if any."""
        sha256 = sha256.lower()
        if not _SHA256.match(sha256):
            raise DownloadError(f"artifact sha256 {sha256!r} is not 64 hex digits")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        final = self.work_dir / sha256
        if final.exists():
            try:
                await asyncio.to_thread(_verify, final, sha256, size)
                return final
            except IntegrityError as exc:
                log.warning("cached artifact %s failed verification (%s); downloading again", sha256, exc)
        part = self.work_dir / f"{sha256}.part"
        total: int | None = size
        last_error = ""
        for attempt in range(1, self.attempts + 1):
            have = part.stat().st_size if part.exists() else 0
            if total is not None and have >= total:
                break
            try:
                total, complete = await self._stream(sha256, part, have, total)
                if complete:
                    break
                last_error = f"stream ended after {part.stat().st_size} of {total} bytes"
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE:
                    raise DownloadError(f"download of {sha256} refused: {exc.code().name}: {exc.details()}") from exc
                last_error = f"{exc.code().name}: {exc.details()}"
            except TimeoutError:
                last_error = f"no data for {self.idle_timeout:.0f}s"
            if attempt < self.attempts:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * self._rng.uniform(0.5, 1.0)
                log.info("download %s interrupted (%s); resuming from byte %d in %.1fs",
                         sha256, last_error, part.stat().st_size if part.exists() else 0, delay)
                await self._sleep(delay)
        else:
            raise DownloadError(f"download of {sha256} failed after {self.attempts} attempts: {last_error}")
        await asyncio.to_thread(_verify, part, sha256, size if size is not None else total)
        os.replace(part, final)
        return final

    async def _stream(self, sha256: str, part: Path, offset: int, total: int | None) -> tuple[int | None, bool]:
        """One DownloadArtifact call from `offset`. Returns (total size, whether complete)."""
        call = self.stub.DownloadArtifact(agent_pb2.DownloadArtifactRequest(sha256=sha256, offset=offset),
                                          metadata=self.metadata)
        ended = False
        try:
            with open(part, "ab") as fh:
                while True:
                    chunk = await asyncio.wait_for(call.read(), self.idle_timeout)
                    if chunk is grpc.aio.EOF:
                        ended = True
                        break
                    if chunk.total_size:
                        if total is not None and chunk.total_size != total:
                            part.unlink(missing_ok=True)
                            raise IntegrityError(f"size mismatch: expected {total} bytes, "
                                                 f"the coordinator serves {chunk.total_size}")
                        total = chunk.total_size
                    if chunk.offset != offset:
                        raise DownloadError(f"chunk at offset {chunk.offset}, expected {offset}")
                    fh.write(chunk.data)
                    offset += len(chunk.data)
                    if total is not None and offset > total:
                        break
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            call.cancel()
        # Without a declared or served size, a clean end of stream is the only end there is.
        return total, (offset >= total) if total is not None else ended
