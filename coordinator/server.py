"""The coordinator process: gRPC (admin + agent + health + reflection), REST, background loops.

Lifecycle: `start()` migrates the store, binds both listeners and starts the background tasks;
`stop()` stops accepting, gives in-flight calls a grace period, stops the tasks and closes the
store. `stop()` is safe to call twice. SIGTERM and SIGINT call it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common import transport
from common.clock import Clock, SystemClock
from common.convoy.v1 import admin_pb2, admin_pb2_grpc, agent_pb2, agent_pb2_grpc
from coordinator import gc_policy
from coordinator.app import App
from coordinator.config import Settings
from coordinator.health import Readiness
from coordinator.metrics import GrpcMetricsInterceptor, Metrics
from coordinator.store.db import Store
from coordinator.tls import TlsConfigError, TlsMaterial

log = logging.getLogger("convoy.coordinator")

# Background tasks besides the engine and the hub: each takes the App and returns a coroutine
# that runs until cancelled.
BackgroundTask = Callable[[App], Coroutine[Any, Any, None]]


def _background_tasks() -> list[BackgroundTask]:
    from coordinator.service.enrollment import enrollment_timeout_loop

    return [enrollment_timeout_loop]


REPLICA_METADATA = "convoy-replica"
"""Initial metadata of every gRPC health answer: which replica answered (`convoy coordinator status`)."""


class ReplicaHealthServicer(health.aio.HealthServicer):  # type: ignore[misc]
    """The standard gRPC health service, answering with the replica id in its metadata."""

    def __init__(self, replica_id: str) -> None:
        super().__init__()
        self.replica_id = replica_id

    async def Check(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
        await context.send_initial_metadata(((REPLICA_METADATA, self.replica_id),))
        return await super().Check(request, context)


class Coordinator:
    def __init__(self, settings: Settings, clock: Clock | None = None, store: Store | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self._store = store
        self.app: App | None = None
        self.grpc_port = 0
        self.agent_port = 0
        """The mutual-TLS port for agent calls (the gRPC port + 1); 0 with `--insecure`."""
        self.http_port = 0
        self._server: grpc.aio.Server | None = None
        self._http: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = False
        self.tls: TlsMaterial | None = None
        self.metrics = Metrics()
        self.readiness: Readiness | None = None

    def _tls_material(self) -> TlsMaterial | None:
        """TLS unless `--insecure` (loopback only): the operator's files or the coordinator's own."""
        from coordinator.config import check_insecure
        from coordinator.tls import default_sans, ensure_server_cert, operator_material

        refusal = check_insecure(self.settings)
        if refusal:
            raise TlsConfigError(refusal)
        if self.settings.insecure:
            return None
        if bool(self.settings.tls_cert) != bool(self.settings.tls_key):
            raise TlsConfigError("--tls-cert and --tls-key go together")
        if self.settings.tls_cert and self.settings.tls_key:
            return operator_material(self.settings.tls_cert, self.settings.tls_key)
        sans = list(self.settings.tls_sans) or default_sans()
        return ensure_server_cert(self.settings.data_dir, sans)

    async def start(self) -> None:
        self.tls = await asyncio.to_thread(self._tls_material)
        store = self._store
        if store is None:
            store = await asyncio.to_thread(Store.open, self.settings.db, self.settings.data_dir)
        if "sealer" not in store.info:  # secret script parameters are encrypted with the data dir's key
            from coordinator.store.sealing import open_sealer

            store.info["sealer"] = await asyncio.to_thread(open_sealer, self.settings.data_dir)
        from coordinator.config import generated_replica_id

        app = self.app = App(store=store, settings=self.settings, clock=self.clock,
                             replica_id=self.settings.replica_id or generated_replica_id())
        from coordinator.webhook_keys import WebhookKeys

        app.webhook_keys = await asyncio.to_thread(WebhookKeys.load_or_create, self.settings.data_dir)
        await self._wire(app)
        self.metrics.attach(app)

        server = self._server = transport.aio_server(interceptors=[GrpcMetricsInterceptor(self.metrics)])
        from coordinator.api.admin_grpc import AdminServicer

        admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(app), server)
        from coordinator.api.agent_grpc import AgentServicer

        agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(app), server)
        health_servicer = ReplicaHealthServicer(app.replica_id)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names = (
            admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
            agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        self._bind(server)
        await server.start()

        async def set_health(serving: bool) -> None:
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ("", *names[:2]):
                await health_servicer.set(name, status)

        self.readiness = Readiness(app, set_health)
        await self.readiness.check()
        self._tasks.append(asyncio.create_task(self.readiness.loop(), name="readiness"))

        if self.settings.http_listen:
            await self._start_http(app)
        from coordinator.service.webhook_delivery import start_worker

        self._tasks.append(start_worker(app, app.webhook_keys))
        for factory in _background_tasks():
            self._tasks.append(asyncio.create_task(factory(app), name=getattr(factory, "__name__", "task")))
        # The engine last, once every door is open: a first pass before that would count the
        # start-up (seconds of imports under load) as the devices' silence (Engine.run).
        self._tasks.append(asyncio.create_task(app.engine.run(), name="engine"))
        log.info("coordinator listening grpc=%s agents=%s http=%s tls=%s", self.grpc_port, self.agent_port or "-",
                 self.http_port,
                 f"on, CA {self.tls.ca_fingerprint}" if self.tls else "OFF (--insecure, loopback only)")

    def _bind(self, server: grpc.aio.Server) -> None:
        """The gRPC port (TLS, no client certificate: Enroll and operators' clients) and, with
        TLS, the agent port right above it, which requires a device certificate."""
        listen = self.settings.grpc_listen
        if self.tls is None:
            self.grpc_port = transport.bind(server, listen, None)
            return
        from common.device_identity import AGENT_PORT_OFFSET
        from coordinator.device_certs import load_ca

        host, _, port = listen.rpartition(":")
        wanted = int(port) if port.isdigit() else 0
        if wanted == 0:
            wanted = transport.free_port_pair(host.strip("[]"))
        if wanted + AGENT_PORT_OFFSET > 65535:
            raise TlsConfigError(f"--grpc-listen {listen}: the agent port (the gRPC port + 1) would be above 65535")
        self.grpc_port = transport.bind(server, f"{host}:{wanted}", self.tls.server)
        self.agent_port = transport.bind_agent_port(server, f"{host}:{wanted + AGENT_PORT_OFFSET}", self.tls.server,
                                                    load_ca(self.settings.data_dir).pem)

    async def _wire(self, app: App) -> None:
        """Attach the agent connection hub, the other replicas' signals and the engine (started by
        `start` once the servers listen)."""
        from coordinator.api.hub import Hub
        from coordinator.engine.reconciler import Engine
        from coordinator.store.signals import Subscriber, open_signals

        app.hub = Hub(app)
        app.hub.start()
        app.engine = Engine(app)
        hub, engine = app.hub, app.engine

        def resync() -> None:
            hub.resync()
            engine.resync()

        app.signals = open_signals(app.store.url, app.replica_id)
        app.signals.subscribe(Subscriber(devices=hub.on_devices, deployments=engine.on_deployments, resync=resync))
        await app.signals.start()

    async def _start_http(self, app: App) -> None:
        import socket

        import uvicorn

        from coordinator.api.http_protocol import guarded_protocol
        from coordinator.api.rest import create_app

        host, _, port = self.settings.http_listen.rpartition(":")
        sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), int(port)))
        self.http_port = sock.getsockname()[1]
        tls: dict[str, Any] = {}
        if self.tls is not None:
            tls = {"ssl_certfile": str(self.tls.cert_file), "ssl_keyfile": str(self.tls.key_file)}
        # Limits at the door: a header deadline and a connection cap (guarded_protocol), a short
        # keep-alive, a bound on an incomplete request head, and a cap on requests in flight.
        config = uvicorn.Config(create_app(app, self.metrics, self.readiness), log_level="warning", access_log=False,
                                lifespan="off",
                                http=guarded_protocol(self.settings.max_connections, self.settings.header_timeout_s), timeout_keep_alive=5,
                                h11_max_incomplete_event_size=64 * 1024,
                                limit_concurrency=self.settings.max_connections, **tls)
        self._http = uvicorn.Server(config)
        self._tasks.append(asyncio.create_task(self._http.serve(sockets=[sock]), name="http"))
        while not self._http.started:
            await asyncio.sleep(0.01)

    async def stop(self, grace: float = 2.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.app is not None and self.app.hub is not None:
            await self.app.hub.close()
        if self.app is not None and self.app.signals is not None:
            await self.app.signals.close()
        if self._http is not None:
            self._http.should_exit = True
        if self._server is not None:
            await self._server.stop(grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.app is not None:
            await asyncio.to_thread(self.app.store.close)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT. Prints one JSON line with the bound ports (for scripts/tests)."""
    gc_policy.tune_for_server()
    coordinator = Coordinator(settings)
    await coordinator.start()
    gc_policy.freeze_startup()
    tls = coordinator.tls
    replica = coordinator.app.replica_id if coordinator.app is not None else ""
    print(json.dumps({"event": "listening", "replica_id": replica, "grpc_port": coordinator.grpc_port,
                      "agent_port": coordinator.agent_port,
                      "http_port": coordinator.http_port, "tls": tls is not None,
                      "ca_file": str(tls.ca_file) if tls and tls.ca_file else "",
                      "ca_fingerprint": tls.ca_fingerprint if tls else ""}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await coordinator.stop()
    print(json.dumps({"event": "stopped"}), flush=True)
    sys.stdout.flush()
