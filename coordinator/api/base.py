"""What every servicer mixin and REST router uses: authenticate, then run a unit of work."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from common.errors import ConvoyError
from coordinator.app import App
from coordinator.auth import Principal, authenticate_api
from coordinator.service import audit_log

log = logging.getLogger("convoy.api")

T = TypeVar("T")


class Api:
    def __init__(self, app: App) -> None:
        self.app = app

    def _in_tx(self, token: str, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        app, who = self.app, None
        try:
            with app.store.tx() as s:
                who = authenticate_api(s, token)
                out = fn(s, who, *args, **kwargs)
                audit_log.record(s, who, fn, out, app.replica_id, app.clock.now())
                return out
        except ConvoyError as exc:
            if who is not None:  # refused after authenticating: the refusal is audited too
                self._audit_refusal(who, fn, exc)
            raise

    def _audit_refusal(self, who: Principal, fn: Callable[..., Any], exc: ConvoyError) -> None:
        try:
            with self.app.store.tx() as s:
                audit_log.record_refusal(s, who, fn, exc, self.app.replica_id, self.app.clock.now())
        except Exception:  # noqa: BLE001 - the caller gets the original error either way
            log.exception("writing the audit row of a refused %s failed", audit_log.action_of(fn))

    async def call(self, token: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Authenticate `token` and run `fn(session, principal, *args)` in one transaction, with
        its audit-log row (service/audit_log.py): every write through a door comes here."""
        return await self.app.run(self._in_tx, token, fn, args, kwargs)

    def _read(self, token: str, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        with self.app.store.read() as s:
            who = authenticate_api(s, token)
            return fn(s, who, *args, **kwargs)

    async def read(self, token: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The same without taking the write lock: for queries."""
        return await self.app.run(self._read, token, fn, args, kwargs)


ServiceFn = Callable[[Session, Principal], Any]
