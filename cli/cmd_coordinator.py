"""`convoy coordinator serve` and `convoy admin bootstrap`."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from cli.common import CliError, command, emit


def _serve(args: argparse.Namespace) -> int:
    from coordinator.config import Settings, check_insecure
    from coordinator.server import serve
    from coordinator.tls import TlsConfigError

    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(db=args.db, data_dir=args.data_dir, grpc_listen=args.grpc_listen, http_listen=args.http_listen,
                        enrollment_timeout_s=args.enrollment_timeout, heartbeat_interval_s=args.heartbeat_interval,
                        default_install_timeout_minutes=args.install_timeout / 60.0, insecure=args.insecure,
                        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_sans=tuple(args.tls_san))
    refusal = check_insecure(settings)  # before the store is opened or anything is written
    if refusal:
        raise CliError(refusal, 2)
    from coordinator.file_modes import private_process, secure_data_dir

    private_process()
    secure_data_dir(args.data_dir)
    try:
        asyncio.run(serve(settings))
    except TlsConfigError as exc:
        raise CliError(str(exc), 2) from None
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    from common.clock import utcnow
    from common.errors import ConvoyError
    from coordinator.file_modes import private_process, secure_data_dir
    from coordinator.service.tenancy import bootstrap
    from coordinator.store.db import Store
    from coordinator.tls import ca_info

    private_process()
    secure_data_dir(args.data_dir)
    store = Store.open(args.db, args.data_dir)
    try:
        out = bootstrap(store, args.client_name, utcnow(), force=args.force)
    except ConvoyError as exc:
        raise CliError(exc.message, 5) from None
    finally:
        store.close()
    out = {**out, **ca_info(args.data_dir)}
    emit(args, out, lambda: print(
        f"client id: {out['client_id']}\nadmin token (shown once, keep it safe): {out['token']}\n"
        f"CA certificate: {out['ca_file']}\nCA fingerprint: {out['ca_fingerprint']}\n"
        f"for the CLI:    export CONVOY_TOKEN=<the token> CONVOY_CA={out['ca_file']}"))
    return 0


def register(sub: Any) -> None:
    from common.durations import parse_duration

    coord = sub.add_parser("coordinator", help="run the coordinator").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(coord, "serve", "run the coordinator (gRPC + REST); migrates the store on start",
                "  convoy coordinator serve --data-dir /var/lib/convoy\n"
                "  convoy coordinator serve --db postgresql+psycopg://convoy@db/convoy --grpc-listen 0.0.0.0:7443\n"
                "  convoy coordinator serve --data-dir /var/lib/convoy --tls-san convoy.example.com --tls-san 10.0.0.5\n"
                "  convoy coordinator serve --tls-cert /etc/convoy/chain.pem --tls-key /etc/convoy/key.pem\n"
                "  convoy coordinator serve --insecure   (plaintext, loopback only: tests and demos)",
                _serve, connection=False, output=False)
    p.add_argument("--db", help="SQLAlchemy URL (default: SQLite in --data-dir)")
    p.add_argument("--data-dir", default="./convoy-data", help="data directory for the SQLite store")
    p.add_argument("--grpc-listen", default="127.0.0.1:7443", help="gRPC listen address (port 0: any free port)")
    p.add_argument("--http-listen", default="127.0.0.1:7080", help="REST listen address; '' disables REST")
    p.add_argument("--enrollment-timeout", type=parse_duration, default=600.0,
                   help="pending enrollments that never report become error after this (default 10m)")
    p.add_argument("--heartbeat-interval", type=parse_duration, default=15.0,
                   help="how often agents send heartbeats; offline after 3 missed (default 15s)")
    p.add_argument("--install-timeout", type=parse_duration, default=1800.0,
                   help="default install timeout for deployments that set none (default 30m)")
    p.add_argument("--insecure", action="store_true",
                   help="serve plaintext gRPC and REST; refused unless both listen addresses are loopback")
    p.add_argument("--tls-cert", help="your own certificate chain (PEM, leaf first) instead of the coordinator-made one")
    p.add_argument("--tls-key", help="the private key (PEM) of --tls-cert")
    p.add_argument("--tls-san", action="append", default=[],
                   help="a DNS name or IP address the coordinator-made certificate covers (repeatable; "
                        "default: this host's names and addresses, localhost, 127.0.0.1, ::1)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))

    admin = sub.add_parser("admin", help="store administration").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    b = command(admin, "bootstrap", "create the first client and a partner-level admin token, on the store directly",
                "  convoy admin bootstrap --data-dir ./convoy-data --client-name 'Acme IT' -o json",
                _bootstrap, connection=False)
    b.add_argument("--db", help="SQLAlchemy URL (default: SQLite in --data-dir)")
    b.add_argument("--data-dir", default="./convoy-data")
    b.add_argument("--client-name", required=True)
    b.add_argument("--force", action="store_true", help="mint another partner admin even if one exists")
