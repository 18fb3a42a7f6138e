"""`convoy coordinator serve` and `convoy admin bootstrap`."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from cli.common import CliError, command, emit


def _serve(args: argparse.Namespace) -> int:
    from coordinator.config import Settings
    from coordinator.server import serve

    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(db=args.db, data_dir=args.data_dir, grpc_listen=args.grpc_listen, http_listen=args.http_listen,
                        enrollment_timeout_s=args.enrollment_timeout, heartbeat_interval_s=args.heartbeat_interval,
                        default_install_timeout_minutes=args.install_timeout / 60.0)
    asyncio.run(serve(settings))
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    from common.clock import utcnow
    from common.errors import ConvoyError
    from coordinator.service.tenancy import bootstrap
    from coordinator.store.db import Store

    store = Store.open(args.db, args.data_dir)
    try:
        out = bootstrap(store, args.client_name, utcnow(), force=args.force)
    except ConvoyError as exc:
        raise CliError(exc.message, 5) from None
    finally:
        store.close()
    emit(args, out, lambda: print(f"client id: {out['client_id']}\nadmin token (shown once, keep it safe): {out['token']}"))
    return 0


def register(sub: Any) -> None:
    from common.durations import parse_duration

    coord = sub.add_parser("coordinator", help="run the coordinator").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(coord, "serve", "run the coordinator (gRPC + REST); migrates the store on start",
                "  convoy coordinator serve --data-dir /var/lib/convoy\n"
                "  convoy coordinator serve --db postgresql+psycopg://convoy@db/convoy --grpc-listen 0.0.0.0:7443",
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
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))

    admin = sub.add_parser("admin", help="store administration").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    b = command(admin, "bootstrap", "create the first client and a partner-level admin token, on the store directly",
                "  convoy admin bootstrap --data-dir ./convoy-data --client-name 'Acme IT' -o json",
                _bootstrap, connection=False)
    b.add_argument("--db", help="SQLAlchemy URL (default: SQLite in --data-dir)")
    b.add_argument("--data-dir", default="./convoy-data")
    b.add_argument("--client-name", required=True)
    b.add_argument("--force", action="store_true", help="mint another partner admin even if one exists")
