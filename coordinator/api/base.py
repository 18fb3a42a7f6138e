"""What every servicer mixin and REST router uses: authenticate, then run a unit of work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from coordinator.app import App
from coordinator.auth import Principal, authenticate_api

T = TypeVar("T")


class Api:
    def __init__(self, app: App) -> None:
        self.app = app

    def _in_tx(self, token: str, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        with self.app.store.tx() as s:
            who = authenticate_api(s, token)
            return fn(s, who, *args, **kwargs)

    async def call(self, token: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Authenticate `token` and run `fn(session, principal, *args)` in one transaction."""
        return await self.app.run(self._in_tx, token, fn, args, kwargs)

    def _read(self, token: str, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        with self.app.store.read() as s:
            who = authenticate_api(s, token)
            return fn(s, who, *args, **kwargs)

    async def read(self, token: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The same without taking the write lock: for queries."""
        return await self.app.run(self._read, token, fn, args, kwargs)


ServiceFn = Callable[[Session, Principal], Any]
