"""Concurrent unary calls queued to one writer, written a batch per transaction.

Each round the writer takes every call waiting (at most `max_batch`) and runs `write(items)` off
the event loop; while it runs, new calls queue for the next round. The writer task exists only
while calls wait. So a lone call is written at
once (after `linger_s`, a few milliseconds), and a burst (an install wave) is written in a few large transactions instead of one small
transaction each. `write` returns one outcome per item, a value or the ConvoyError that item
alone would have raised: a refused item fails its own call, never the batch.

If the batch itself raises (a row the database refuses, a guard that failed), every item is
written again alone, so only the item at fault fails. A store that is unavailable fails the
batch's calls at once (retrying each alone would wait out the store's timeout once per call).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from common.errors import ConvoyError, Unavailable
from coordinator.api.grpc_util import store_unavailable

log = logging.getLogger("convoy.batch")

T = TypeVar("T")
R = TypeVar("R")


class CallBatcher(Generic[T, R]):
    def __init__(self, name: str, write: Callable[[list[T]], list[R | ConvoyError]], max_batch: int = 500,
                 linger_s: float = 0.0) -> None:
        self.name = name
        self._write = write
        self.max_batch = max(1, max_batch)
        self.linger_s = linger_s if self.max_batch > 1 else 0.0
        """How long a round waits for more calls before it is written, when fewer than
        `max_batch` wait (0: at once)."""
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        """The writer; it runs while calls are waiting and ends when none are (nothing idles)."""
        self.batches = 0
        """Rounds written (for tests and the log)."""

    async def submit(self, item: T) -> R:
        """Queue `item`; its outcome once its batch is committed (a ConvoyError is raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=f"batch-{self.name}")
        return await future

    async def close(self) -> None:
        """Stop the writer (safe to call twice); calls of the round in progress get Unavailable."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while self._waiting:
            if self.linger_s > 0 and len(self._waiting) < self.max_batch:
                # The calls of a wave arrive one at a time: written at once, rounds held about
                # 6 calls and the fixed cost of a round (transaction, statements, thread hop)
                # dominated (profile note 2026-12-03). A moment's wait (a scheduling detail, not
                # a timeout: real time, not the app's clock) lets a round take more of them.
                await asyncio.sleep(self.linger_s)
            batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            try:
                outcomes = await asyncio.to_thread(self._write_all, [item for item, _ in batch])
            except BaseException as exc:
                # No caller is left waiting on a round that will never answer.
                error = Unavailable("the coordinator is shutting down; try again") \
                    if isinstance(exc, asyncio.CancelledError) else exc
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                raise
            self.batches += 1
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # the caller went away (deadline, cancelled RPC)
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _write_all(self, items: list[T]) -> list[R | BaseException]:
        try:
            outcomes: list[R | BaseException] = list(self._write(items))
            if len(outcomes) != len(items):
                raise RuntimeError(f"{self.name}: {len(outcomes)} outcomes for {len(items)} calls")
            return outcomes
        except Exception as exc:  # noqa: BLE001 - answered per call below, never lost
            mapped = store_unavailable(exc)
            if len(items) == 1 or isinstance(mapped, Unavailable):
                return [exc] * len(items)
            log.warning("%s batch of %d failed (%s: %s); writing each call alone", self.name, len(items),
                        type(exc).__name__, exc)
        out: list[R | BaseException] = []
        for item in items:
            try:
                out.append(self._write([item])[0])
            except Exception as exc:  # noqa: BLE001 - this call's own failure
                out.append(exc)
        return out
