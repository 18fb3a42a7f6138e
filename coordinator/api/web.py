"""The web dashboard: static files from the package (coordinator/web/static), served at `/`.

No build step: plain HTML, CSS and JavaScript modules. The page signs in with an API token
(kept in sessionStorage) and calls the same REST API as everyone else, with a bearer header.
Every response carries a Content-Security-Policy that allows only this origin's scripts and no
inline script, as a second wall behind the page's own rule of rendering device data as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


class _Dashboard:
    """StaticFiles with the security headers, and `no-cache` so an upgrade is seen at once."""

    def __init__(self) -> None:
        self.files = StaticFiles(directory=STATIC, html=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS, (b"cache-control", b"no-cache")]
            await send(message)

        await self.files(scope, receive, send_with_headers)


def mount_dashboard(api: FastAPI) -> None:
    """Mount last: every route declared before it (/v2, /metrics, /docs …) wins over a file."""
    api.mount("/", _Dashboard(), name="dashboard")
