"""The webhook delivery worker: claims due outbox rows, POSTs them signed, settles each attempt.

It never polls per row: one indexed query says what is due now and one when the next row is due;
between them it sleeps until that time, or until a commit here queued a new event (a session
`after_commit` hook), or at most MAX_SLEEP_S (rows another replica queued and then left when it
died become due at their lease's end). The schedule is in coordinator/domain/webhooks.py.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from coordinator.app import App
from coordinator.domain import webhooks as W
from coordinator.store import webhook_outbox as outbox
from coordinator.webhook_keys import WebhookKeyError, WebhookKeys

log = logging.getLogger("convoy.webhooks")

MAX_SLEEP_S = 30.0
CLAIM_BATCH = 20
USER_AGENT = "convoy-webhooks/1"


class WebhookWorker:
    def __init__(self, app: App, keys: WebhookKeys, client: httpx.AsyncClient | None = None) -> None:
        self.app = app
        self.keys = keys
        self._client = client
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outcomes = {"delivered": 0, "retry": 0, "dead": 0}

    # --- waking on this replica's commits ------------------------------------------------------

    def _committed(self, session: Session) -> None:
        if session.info.pop(outbox.ENQUEUED, False) and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    @staticmethod
    def _rolled_back(session: Session) -> None:
        session.info.pop(outbox.ENQUEUED, None)

    def poke(self) -> None:
        self._wake.set()

    def stats(self) -> dict[str, int]:
        """Attempts made here by outcome (`/metrics`: convoy_webhook_attempts)."""
        return dict(self._outcomes)

    # --- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        sessions = self.app.store.sessions
        event.listen(sessions, "after_commit", self._committed)
        event.listen(sessions, "after_rollback", self._rolled_back)
        # The system's trusted roots (an internal CA added to the host's store is trusted), and
        # HTTPS_PROXY / NO_PROXY from the environment, for an egress proxy in front of receivers.
        client = self._client or httpx.AsyncClient(timeout=W.REQUEST_TIMEOUT_S, follow_redirects=False,
                                                   headers={"User-Agent": USER_AGENT}, trust_env=True,
                                                   verify=ssl.create_default_context())
        checked = False
        try:
            while True:
                self._wake.clear()
                try:
                    if not checked:
                        await self.app.run(self._check_keys)
                        checked = True
                    if await self._tick(client):
                        continue
                    nxt = await self.app.run(self._next_due)
                except OperationalError:  # what is due stays due in the store
                    log.warning("webhook outbox unavailable (store down); retrying")
                    await asyncio.sleep(1.0)
                    continue
                except Exception:  # noqa: BLE001 - the worker must outlive any one bad row
                    log.exception("webhook delivery pass failed; retrying")
                    await asyncio.sleep(1.0)
                    continue
                timeout = MAX_SLEEP_S
                if nxt is not None:
                    timeout = min(timeout, max(0.0, (nxt - self.app.clock.now()).total_seconds()))
                await self.app.clock.wait(self._wake, timeout)
        finally:
            event.remove(sessions, "after_commit", self._committed)
            event.remove(sessions, "after_rollback", self._rolled_back)
            if self._client is None:
                await client.aclose()

    async def _tick(self, client: httpx.AsyncClient) -> bool:
        """Claim what is due and try it; True if a full batch was claimed (look again at once)."""
        claimed = await self.app.run(self._claim, self.app.clock.now())
        if claimed:
            await asyncio.gather(*(self._attempt(client, c) for c in claimed))
        return len(claimed) >= CLAIM_BATCH

    def _claim(self, now: datetime) -> list[outbox.Claimed]:
        with self.app.store.tx() as s:
            return outbox.claim(s, now, self.keys.key_id, CLAIM_BATCH)

    def _check_keys(self) -> None:
        """Say so at start when webhooks exist whose secrets this replica's key cannot open: their
        deliveries wait for a replica that has their webhooks.key (docs/replicas.md)."""
        with self.app.store.read() as s:
            n = outbox.foreign_webhooks(s, self.keys.key_id)
        if n:
            log.warning("%d webhook(s) were created with another webhooks.key than this replica's (key id %s): "
                        "this replica cannot deliver them; copy webhooks.key from the replica that made them",
                        n, self.keys.key_id)

    def _next_due(self) -> datetime | None:
        with self.app.store.read() as s:
            return outbox.next_due(s, self.keys.key_id)

    def _settle(self, c: outbox.Claimed, result: W.AttemptResult, code: int | None, error: str, now: datetime) -> None:
        with self.app.store.tx() as s:
            outbox.settle(s, c.id, c.attempt, result, code, error, now)

    async def _attempt(self, client: httpx.AsyncClient, c: outbox.Claimed) -> None:
        code, error = await self._post(client, c)
        ok = code is not None and W.is_success(code)
        now = self.app.clock.now()
        result = W.after_attempt(c.attempt, ok, now)
        self._outcomes["retry" if result.status == "pending" else result.status] += 1
        if result.status == "dead":
            log.warning("webhook %s: delivery %s (%s) is dead after %d attempts: %s", c.webhook_id, c.id,
                        c.event_type, c.attempt, error)
        elif result.status == "pending":
            log.info("webhook %s: delivery %s attempt %d failed (%s); next at %s", c.webhook_id, c.id, c.attempt,
                     error, result.next_attempt_at)
        await self.app.run(self._settle, c, result, code, error, now)

    async def _post(self, client: httpx.AsyncClient, c: outbox.Claimed) -> tuple[int | None, str]:
        """The receiver's status code (None if there was no answer) and what went wrong, if anything."""
        try:
            secret = self.keys.decrypt(c.secret_encrypted)
        except WebhookKeyError as exc:
            return None, str(exc)
        refused = None if self.app.settings.webhooks_allow_link_local else await _refused(W.url_host(c.url))
        if refused:
            return None, f"refused: {refused} (--webhooks-allow-link-local allows it)"
        body = c.body.encode("utf-8")
        timestamp = str(int(self.app.clock.now().timestamp()))
        headers = {"Content-Type": "application/json", "X-Convoy-Event": c.event_type,
                   "X-Convoy-Event-Id": c.event_id, "X-Convoy-Timestamp": timestamp,
                   "X-Convoy-Attempt": str(c.attempt),
                   "X-Convoy-Signature": W.signature(secret, timestamp, body)}
        try:
            response = await client.post(c.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if W.is_success(response.status_code):
            return response.status_code, ""
        return response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"


async def _refused(host: str) -> str | None:
    """Why `host` is refused as a receiver (it is, or resolves to, a link-local or metadata
    address), or None. Checked at every attempt, since a name can change what it points at."""
    why = W.refused_address(host)
    if why or not host:
        return why
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return None  # the POST reports the resolution failure itself
    for info in infos:
        why = W.refused_address(str(info[4][0]))
        if why:
            return f"{host} resolves to {why}"
    return None


def start_worker(app: App, keys: WebhookKeys) -> asyncio.Task[Any]:
    worker = WebhookWorker(app, keys)
    app.webhooks = worker
    return asyncio.create_task(worker.run(), name="webhooks")

