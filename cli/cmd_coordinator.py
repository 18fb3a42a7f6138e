"""`convoy coordinator serve` and `convoy admin bootstrap`."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from cli.common import CliError, command, emit

# Every `serve` setting can come from the environment (flags override), so a database password
# need not appear on a command line where `ps` shows it.
ENV = {
    "db": "CONVOY_DB", "data_dir": "CONVOY_DATA_DIR", "grpc_listen": "CONVOY_GRPC_LISTEN",
    "http_listen": "CONVOY_HTTP_LISTEN", "enrollment_timeout": "CONVOY_ENROLLMENT_TIMEOUT",
    "heartbeat_interval": "CONVOY_HEARTBEAT_INTERVAL", "install_timeout": "CONVOY_INSTALL_TIMEOUT",
    "log_level": "CONVOY_LOG_LEVEL", "device_cert_lifetime": "CONVOY_DEVICE_CERT_LIFETIME", "log_format": "CONVOY_LOG_FORMAT", "replica_id": "CONVOY_REPLICA_ID",
}
DEFAULTS = {"data_dir": "./convoy-data", "grpc_listen": "127.0.0.1:7443", "http_listen": "127.0.0.1:7080",
            "enrollment_timeout": "10m", "heartbeat_interval": "15s", "install_timeout": "30m",
            "device_cert_lifetime": "365d",
            "log_level": "info", "log_format": "text"}
DURATIONS = ("enrollment_timeout", "heartbeat_interval", "install_timeout", "device_cert_lifetime")
CHOICES = {"log_level": ("debug", "info", "warning", "error"), "log_format": ("text", "json")}


def _setting(args: argparse.Namespace, key: str) -> Any:
    """A flag if given, else its environment variable, else the default; checked like the flag."""
    value = getattr(args, key, None)
    origin = "--" + key.replace("_", "-")
    if value is None and os.environ.get(ENV[key]) is not None:
        value, origin = os.environ[ENV[key]], ENV[key]
    if value is None:
        value = DEFAULTS.get(key)
    if key in DURATIONS:
        from common.durations import parse_duration

        try:
            return parse_duration(str(value))
        except ValueError as exc:
            raise CliError(f"{origin}: {exc}", 2) from None
    if key in CHOICES and value not in CHOICES[key]:
        raise CliError(f"{origin}: {value!r} is not one of {', '.join(CHOICES[key])}", 2)
    return value


def _enroll_batch_max() -> int:
    """CONVOY_ENROLL_BATCH_MAX: enrollments written per transaction at most (docs/coordinator.md)."""
    raw = os.environ.get("CONVOY_ENROLL_BATCH_MAX", "500")
    if not raw.isdigit() or not 1 <= int(raw) <= 5000:
        raise CliError(f"CONVOY_ENROLL_BATCH_MAX: {raw!r} is not a number from 1 to 5000", 2)
    return int(raw)


def _serve(args: argparse.Namespace) -> int:
    from common import logs
    from coordinator.config import Settings, check_insecure, check_replica_id, generated_replica_id
    from coordinator.server import serve
    from coordinator.tls import TlsConfigError
    from coordinator.webhook_keys import WebhookKeyError

    replica = _setting(args, "replica_id")
    if replica is None:
        replica = generated_replica_id()
    else:
        why = check_replica_id(replica)
        if why:
            origin = "--replica-id" if args.replica_id is not None else ENV["replica_id"]
            raise CliError(f"{origin}: {why}", 2)
    logs.configure(_setting(args, "log_level"), _setting(args, "log_format"), replica=replica)
    admission = args.connect_admission_limit if args.connect_admission_limit is not None else \
        Settings.connect_admission_limit
    if admission < 1:
        raise CliError(f"--connect-admission-limit must be at least 1 (got {admission})", 2)
    settings = Settings(db=_setting(args, "db"), data_dir=_setting(args, "data_dir"), replica_id=replica,
                        grpc_listen=_setting(args, "grpc_listen"), http_listen=_setting(args, "http_listen"),
                        enrollment_timeout_s=_setting(args, "enrollment_timeout"),
                        heartbeat_interval_s=_setting(args, "heartbeat_interval"),
                        default_install_timeout_minutes=_setting(args, "install_timeout") / 60.0,
                        insecure=args.insecure, tls_cert=args.tls_cert, tls_key=args.tls_key,
                        tls_sans=tuple(args.tls_san), webhooks_allow_link_local=args.webhooks_allow_link_local,
                        connect_admission_limit=admission, enroll_batch_max=_enroll_batch_max(),
                        require_device_certs=args.require_device_certs,
                        device_cert_lifetime_s=_setting(args, "device_cert_lifetime"))
    if settings.device_cert_lifetime_s < 3600:
        raise CliError("--device-cert-lifetime must be at least 1h", 2)
    refusal = check_insecure(settings)  # before the store is opened or anything is written
    if refusal:
        raise CliError(refusal, 2)
    from coordinator.file_modes import private_process, secure_data_dir

    private_process()
    secure_data_dir(settings.data_dir)
    try:
        asyncio.run(serve(settings))
    except (TlsConfigError, WebhookKeyError) as exc:
        raise CliError(str(exc), 2) from None
    return 0


def _status(args: argparse.Namespace) -> int:
    """The gRPC health answer of the coordinator (the replica) at --server, and its replica id."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from cli.common import client_trust, rpc_failure, server_address
    from common import transport

    server = server_address(args)
    tls, _ = client_trust(args)
    stub = health_pb2_grpc.HealthStub(transport.sync_channel(server, tls))
    try:
        resp, rpc = stub.Check.with_call(health_pb2.HealthCheckRequest(service=""), timeout=10)
    except grpc.RpcError as exc:
        raise rpc_failure(exc, server, tls.secure) from None
    metadata = dict(rpc.initial_metadata() or ())
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    out = {"server": server, "status": status, "replica": str(metadata.get("convoy-replica", ""))}
    emit(args, out, lambda: print(f"{server}: {status} (replica {out['replica'] or 'unknown'})"))
    return 0 if resp.status == health_pb2.HealthCheckResponse.SERVING else 1


def _systemd_unit(args: argparse.Namespace) -> int:
    """Print the shipped, hardened coordinator unit with ExecStart at this install's convoy."""
    from common import systemd_units

    print(systemd_units.render(systemd_units.COORDINATOR, [*systemd_units.convoy_command(), "coordinator", "serve"]),
          end="")
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    from common.clock import utcnow
    from common.errors import ConvoyError
    from coordinator.file_modes import private_process, secure_data_dir
    from coordinator.service.tenancy import bootstrap
    from coordinator.store.db import Store
    from coordinator.tls import ca_info

    data_dir = args.data_dir or os.environ.get("CONVOY_DATA_DIR") or DEFAULTS["data_dir"]
    if args.save_context:  # a bad name or config file is refused before anything is written
        from cli import config

        config.check_name(args.save_context)
        config.load()
    private_process()
    secure_data_dir(data_dir)
    store = Store.open(args.db or os.environ.get("CONVOY_DB"), data_dir)
    try:
        out = bootstrap(store, args.client_name, utcnow(), force=args.force)
    except ConvoyError as exc:
        raise CliError(exc.message, 5) from None
    finally:
        store.close()
    out = {**out, **ca_info(data_dir)}
    if args.save_context:
        from cli.cmd_context import save_bootstrap_context

        out.update(save_bootstrap_context(args.save_context, out["token"], out["client_id"], out["ca_file"],
                                          _local_server()))
    emit(args, out, lambda: print(
        f"client id: {out['client_id']}\nadmin token (shown once, keep it safe): {out['token']}\n"
        f"CA certificate: {out['ca_file']}\nCA fingerprint: {out['ca_fingerprint']}\n"
        + (f"context {out['context']!r} saved (current; token in {out['token_file']}): convoy clients list"
           if args.save_context else
           f"for the CLI:    export CONVOY_TOKEN=<the token> CONVOY_CA={out['ca_file']}")))
    return 0


def _local_server() -> str:
    """Where `serve` on this host will listen for gRPC ($CONVOY_GRPC_LISTEN or the default), as an
    address a client dials (a wildcard host becomes loopback)."""
    listen = os.environ.get(ENV["grpc_listen"]) or DEFAULTS["grpc_listen"]
    host, _, port = listen.rpartition(":")
    return f"{'127.0.0.1' if host in ('', '0.0.0.0', '[::]', '::') else host}:{port}"


def register(sub: Any) -> None:
    coord = sub.add_parser("coordinator", help="run the coordinator").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(coord, "serve", "run the coordinator (gRPC + REST); migrates the store on start",
                "  convoy coordinator serve --data-dir /var/lib/convoy\n"
                "  convoy coordinator serve --db postgresql+psycopg://convoy@db/convoy --grpc-listen 0.0.0.0:7443\n"
                "  convoy coordinator serve --data-dir /var/lib/convoy --tls-san convoy.example.com --tls-san 10.0.0.5\n"
                "  convoy coordinator serve --tls-cert /etc/convoy/chain.pem --tls-key /etc/convoy/key.pem\n"
                "  convoy coordinator serve --insecure   (plaintext, loopback only: tests and demos)",
                _serve, connection=False, output=False)
    p.epilog = (p.epilog or "") + (
        "\n\nenvironment (a flag overrides its variable):\n" +
        "".join(f"  {var:<27} --{key.replace('_', '-')}\n" for key, var in ENV.items()))
    p.add_argument("--db", help="SQLAlchemy URL (default: SQLite in --data-dir; env CONVOY_DB)")
    p.add_argument("--data-dir", help="data directory for the SQLite store (default ./convoy-data)")
    p.add_argument("--grpc-listen", metavar="HOST:PORT",
                   help="gRPC listen address for agents and the CLI (default 127.0.0.1:7443; port 0: any free port); "
                        "with TLS, agents' calls after enrollment use the next port (7444), with mutual TLS")
    p.add_argument("--http-listen", metavar="HOST:PORT",
                   help="HTTP listen address: dashboard at /, REST at /v2, /metrics, /healthz, /readyz "
                        "(default 127.0.0.1:7080; '' disables it)")
    p.add_argument("--enrollment-timeout", metavar="DURATION",
                   help="pending enrollments that never report become error after this (default 10m)")
    p.add_argument("--heartbeat-interval", metavar="DURATION",
                   help="how often agents send heartbeats; offline after 3 missed (default 15s)")
    p.add_argument("--install-timeout", metavar="DURATION",
                   help="default install timeout for deployments that set none (default 30m)")
    p.add_argument("--insecure", action="store_true",
                   help="serve plaintext gRPC and REST; refused unless both listen addresses are loopback")
    p.add_argument("--tls-cert", help="your own certificate chain (PEM, leaf first) instead of the coordinator-made one")
    p.add_argument("--tls-key", help="the private key (PEM) of --tls-cert")
    p.add_argument("--tls-san", action="append", default=[],
                   help="a DNS name or IP address the coordinator-made certificate covers (repeatable; "
                        "default: this host's names and addresses, localhost, 127.0.0.1, ::1)")
    p.add_argument("--device-cert-lifetime", metavar="DURATION",
                   help="how long device certificates are valid; agents renew theirs in the last third "
                        "(default 365d)")
    p.add_argument("--require-device-certs", action="store_true",
                   help="refuse bearer-only devices (enrolled without a device key by an older agent or a "
                        "simulator): every agent call must present its device certificate (docs/security.md)")
    p.add_argument("--replica-id", metavar="ID",
                   help="this coordinator among replicas on one database: in its logs, the engine's audit "
                        "actor (engine@ID) and health answers (default: hostname-<random>; env CONVOY_REPLICA_ID)")
    p.add_argument("--webhooks-allow-link-local", action="store_true",
                   help="let webhooks reach link-local and cloud metadata addresses (refused by default; "
                        "docs/webhooks.md)")
    p.add_argument("--connect-admission-limit", type=int, metavar="N",
                   help="agent streams set up at once; more are asked to come back later (RESOURCE_EXHAUSTED with "
                        "a retry hint the agents honour): how a reconnect storm is absorbed (default 1000)")
    p.add_argument("--log-level", choices=CHOICES["log_level"], help="default info")
    p.add_argument("--log-format", choices=CHOICES["log_format"],
                   help="text for people, json for log collectors: one object per line (default text)")

    command(coord, "status", "ask a coordinator (one replica) whether it is serving, and which replica it is",
            "  convoy coordinator status --server convoy-a.example.com:7443\n"
            "  convoy coordinator status -o json", _status, quiet="replica")

    command(coord, "systemd-unit", "print a hardened systemd unit that runs this install's coordinator "
            "(settings from /etc/convoy/coordinator.env, data in /var/lib/convoy)",
            "  convoy coordinator systemd-unit > /etc/systemd/system/convoy-coordinator.service\n"
            "  systemctl daemon-reload && systemctl enable --now convoy-coordinator.service",
            _systemd_unit, connection=False, output=False)

    admin = sub.add_parser("admin", help="store administration").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    b = command(admin, "bootstrap", "create the first client and a partner-level admin token, on the store directly",
                "  convoy admin bootstrap --data-dir ./convoy-data --client-name 'Acme IT' -o json",
                _bootstrap, connection=False, quiet="token")
    b.add_argument("--db", help="SQLAlchemy URL (default: SQLite in --data-dir; env CONVOY_DB)")
    b.add_argument("--data-dir", help="default: $CONVOY_DATA_DIR or ./convoy-data")
    b.add_argument("--client-name", required=True)
    b.add_argument("--force", action="store_true", help="mint another partner admin even if one exists")
    b.add_argument("--save-context", metavar="NAME",
                   help="also save a CLI context NAME (this host's coordinator, its CA, the new token in a 0600 "
                        "file, the new client) and make it current")
