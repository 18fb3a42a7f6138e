"""Test harness: real coordinators (in a thread or a subprocess), stores on both backends,
and small helpers to call the APIs the way a user would.

Transport security, decided here for the whole suite:

- `InProcessCoordinator` (most tests: API rules, the engine, the store) runs with an explicit
  `insecure=True` on 127.0.0.1 — the same `--insecure` an operator would have to ask for, and
  refused by the coordinator on any other address. What those tests prove is independent of
  the transport, and the CLI calls they make get `CONVOY_INSECURE=1`.
- `CoordinatorProcess` (the e2e tier: `convoy coordinator serve` as a subprocess) serves TLS by
  default, exactly as shipped: it makes its CA in its data dir, the CLI calls made through it
  trust that CA by file (`CONVOY_CA`), REST clients get `verify=coord.verify`, and real agents
  install with `--ca-fingerprint`. `CoordinatorProcess(..., insecure=True)` is the opt-out.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import grpc

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
CONVOY = [sys.executable, "-m", "cli.main"]
PG_ADMIN_URL = os.environ.get("CONVOY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --- PostgreSQL ---------------------------------------------------------------------------

def _pg_admin() -> Any:
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def pg_available() -> bool:
    try:
        with _pg_admin().connect() as c:
            c.exec_driver_sql("SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def pg_template(name: str) -> None:
    from coordinator.store.db import Store

    engine = _pg_admin()
    with engine.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    Store.open(_pg_url(name)).close()
    engine.dispose()


def pg_create_from_template(name: str, template: str) -> str:
    engine = _pg_admin()
    with engine.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    engine.dispose()
    return _pg_url(name)


def pg_drop(name: str) -> None:
    engine = _pg_admin()
    with engine.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


# --- coordinators -------------------------------------------------------------------------

class InProcessCoordinator:
    """A real Coordinator running on its own event loop in a background thread."""

    def __init__(self, db_url: str, data_dir: Path, clock: Any = None, **settings: Any) -> None:
        from coordinator.config import Settings

        self.db_url = db_url
        self.data_dir = data_dir
        self.clock = clock
        settings.setdefault("insecure", True)  # loopback only; see the module docstring
        self.settings = Settings(db=db_url, data_dir=str(data_dir), grpc_listen="127.0.0.1:0",
                                 http_listen="127.0.0.1:0", **settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.coordinator: Any = None
        self.token = ""
        self.client_id = ""

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def call_soon(self, fn: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def start(self, bootstrap: bool = True) -> None:
        from common.clock import utcnow
        from coordinator.server import Coordinator
        from coordinator.service.tenancy import bootstrap as do_bootstrap
        from coordinator.store.db import Store

        self.thread.start()
        store = Store.open(self.db_url)
        if bootstrap:
            out = do_bootstrap(store, "Test Client", utcnow(), force=True)
            self.token, self.client_id = out["token"], out["client_id"]
        self.coordinator = Coordinator(self.settings, clock=self.clock, store=store)
        self.run(self.coordinator.start())

    def stop(self) -> None:
        if self.coordinator is not None:
            self.run(self.coordinator.stop(grace=0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def advance(self, seconds: float) -> None:
        """Move a FakeClock forward, on the coordinator's loop."""
        async def _go() -> None:
            self.clock.advance(seconds)
            await asyncio.sleep(0)
        self.run(_go())

    @property
    def store(self) -> Any:
        return self.coordinator.app.store

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.coordinator.grpc_port}"

    @property
    def tls(self) -> Any:
        from common import transport

        tls = self.coordinator.tls
        return transport.PLAINTEXT if tls is None else transport.ClientTLS(ca_pem=tls.ca_file.read_bytes())

    @property
    def http_url(self) -> str:
        scheme = "http" if self.coordinator.tls is None else "https"
        return f"{scheme}://127.0.0.1:{self.coordinator.http_port}"

    @property
    def verify(self) -> Any:
        """httpx's `verify=` for this coordinator's REST listener."""
        tls = self.coordinator.tls
        return True if tls is None else ssl.create_default_context(cafile=str(tls.ca_file))

    def trust_env(self) -> dict[str, str]:
        tls = self.coordinator.tls
        return {"CONVOY_INSECURE": "1"} if tls is None else {"CONVOY_CA": str(tls.ca_file)}

    def admin(self, token: str | None = None) -> AdminClient:
        return AdminClient(self.grpc_target, token if token is not None else self.token, self.tls)

    def cli(self, *args: str, token: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, server=self.grpc_target, token=token if token is not None else self.token,
                       check=check, timeout=timeout, env=self.trust_env())


class AdminClient:
    """AdminService over a real channel: `client.CreateClient(request)` with the bearer attached."""

    def __init__(self, target: str, token: str, tls: Any) -> None:
        from common import transport
        from common.convoy.v1 import admin_pb2_grpc

        self.channel = transport.sync_channel(target, tls)
        self.stub = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.stub, name)

        def invoke(request: Any, timeout: float = 30.0) -> Any:
            return method(request, metadata=self.metadata, timeout=timeout)
        return invoke


def rpc_code(fn: Any, *args: Any) -> grpc.StatusCode:
    """The status code a call fails with (AssertionError if it succeeds)."""
    try:
        fn(*args)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    raise AssertionError("call unexpectedly succeeded")


def run_cli(*args: str, server: str | None = None, token: str | None = None, check: bool = True,
            timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    for name in ("CONVOY_SERVER", "CONVOY_TOKEN", "CONVOY_CA", "CONVOY_CA_FINGERPRINT", "CONVOY_INSECURE",
                 "CONVOY_CONFIG", "CONVOY_CONTEXT", "CONVOY_CLIENT"):
        full_env.pop(name, None)
    full_env.update(env or {})
    if server:
        full_env["CONVOY_SERVER"] = server
    if token:
        full_env["CONVOY_TOKEN"] = token
    proc = subprocess.run([*CONVOY, *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"convoy {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def terminate(proc: subprocess.Popen[Any] | None, grace: float = 15.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL: how tests stop what they started."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def cli_json(*args: str, **kw: Any) -> Any:
    return json.loads(run_cli(*args, "-o", "json", **kw).stdout)


class CoordinatorProcess:
    """`convoy coordinator serve` as a real subprocess on free ports."""

    def __init__(self, data_dir: Path, db: str | None = None, extra: tuple[str, ...] = (),
                 insecure: bool = False) -> None:
        self.data_dir = data_dir
        self.db = db
        self.extra = (*extra, "--insecure") if insecure else extra
        self.insecure = insecure
        self.ca_file = ""
        self.ca_fingerprint = ""
        self.proc: subprocess.Popen[str] | None = None
        self.grpc_port = 0
        self.http_port = 0
        self.token = ""
        self.client_id = ""
        self.log_path = data_dir / "coordinator.log"

    def _store_args(self) -> list[str]:
        # The data dir always: with --db it still holds the coordinator's CA and certificate.
        return [*(["--db", self.db] if self.db else []), "--data-dir", str(self.data_dir)]

    def bootstrap(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = cli_json("admin", "bootstrap", *self._store_args(), "--client-name", "Test Client", "--force")
        self.token, self.client_id = out["token"], out["client_id"]
        self.ca_file, self.ca_fingerprint = out["ca_file"], out["ca_fingerprint"]

    def start(self, grpc_port: int = 0, http_port: int = 0) -> None:
        cmd = [*CONVOY, "coordinator", "serve", *self._store_args(), "--grpc-listen", f"127.0.0.1:{grpc_port}",
               "--http-listen", f"127.0.0.1:{http_port}", *self.extra]
        log = open(self.log_path, "a")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "listening":
                self.grpc_port, self.http_port = event["grpc_port"], event["http_port"]
                assert event["tls"] == (not self.insecure), event
                if event["tls"]:
                    self.ca_file, self.ca_fingerprint = event["ca_file"], event["ca_fingerprint"]
                return
        raise AssertionError(f"coordinator did not start; log:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        terminate(self.proc)

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{'http' if self.insecure else 'https'}://127.0.0.1:{self.http_port}"

    @property
    def tls(self) -> Any:
        from common import transport

        return transport.PLAINTEXT if self.insecure else transport.ClientTLS(ca_pem=Path(self.ca_file).read_bytes())

    @property
    def verify(self) -> Any:
        """httpx's `verify=` for this coordinator's REST listener."""
        return True if self.insecure else ssl.create_default_context(cafile=self.ca_file)

    def trust_env(self) -> dict[str, str]:
        return {"CONVOY_INSECURE": "1"} if self.insecure else {"CONVOY_CA": self.ca_file}

    def install_trust(self) -> list[str]:
        """What `convoy agent install` is given to trust this coordinator."""
        return ["--insecure"] if self.insecure else ["--ca-fingerprint", self.ca_fingerprint]

    def admin(self, token: str | None = None) -> AdminClient:
        return AdminClient(self.grpc_target, token if token is not None else self.token, self.tls)

    def cli(self, *args: str, token: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, server=self.grpc_target, token=token if token is not None else self.token,
                       check=check, timeout=timeout, env=self.trust_env())
