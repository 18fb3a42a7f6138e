"""What every command shares: connection settings, calling the admin API, printing results.

Errors leave as one line on stderr (`error: <the server's message>`) and a non-zero exit:
2 bad usage / invalid argument, 3 authentication or permission, 4 not found, 5 conflict,
6 coordinator unreachable, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

EXIT_CODES = {
    "invalid_argument": 2, "retries_exhausted": 2, "unauthenticated": 3, "forbidden": 3,
    "not_found": 4, "conflict": 5, "unavailable": 6,
}


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def add_connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=None, help="coordinator gRPC address (default: $CONVOY_SERVER or 127.0.0.1:7443)")
    p.add_argument("--token", default=None, help="API token (default: $CONVOY_TOKEN)")


def add_output_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=("table", "json"), default="table",
                   help="output format: table for people, json for scripts")


def server_address(args: argparse.Namespace) -> str:
    return getattr(args, "server", None) or os.environ.get("CONVOY_SERVER") or "127.0.0.1:7443"


def api_token(args: argparse.Namespace) -> str:
    token = getattr(args, "token", None) or os.environ.get("CONVOY_TOKEN")
    if not token:
        raise CliError("no API token: set CONVOY_TOKEN or pass --token", 3)
    return token


def admin_stub(args: argparse.Namespace) -> tuple[Any, list[tuple[str, str]]]:
    """A sync AdminService stub and the metadata to send with each call."""
    from common import transport
    from common.convoy.v1 import admin_pb2_grpc

    channel = transport.sync_channel(server_address(args))
    return admin_pb2_grpc.AdminServiceStub(channel), [("authorization", f"Bearer {api_token(args)}")]


def call(args: argparse.Namespace, method: str, request: Any, timeout: float = 60.0) -> Any:
    """Call one AdminService RPC; turn any failure into a one-line CliError."""
    import grpc

    stub, metadata = admin_stub(args)
    try:
        return getattr(stub, method)(request, metadata=metadata, timeout=timeout)
    except grpc.RpcError as exc:
        raise rpc_failure(exc, server_address(args)) from None


def rpc_failure(exc: Any, server: str) -> CliError:
    from common.errors import from_rpc_error

    err = from_rpc_error(exc)
    if err.code == "unavailable":
        return CliError(f"cannot reach the coordinator at {server}: {err.message}", 6)
    return CliError(err.message, EXIT_CODES.get(err.code, 1))


def to_dict(message: Any, snake: bool = False) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(message, preserving_proto_field_name=snake, always_print_fields_with_no_presence=True)


def emit(args: argparse.Namespace, data: Any, table: Callable[[], None] | None = None) -> None:
    """Print `data` as JSON for `-o json`, else call `table` (or pretty-print the JSON)."""
    if getattr(args, "output", "table") == "json" or table is None:
        print(json.dumps(data, indent=2, sort_keys=False))
    else:
        table()


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*[h.upper() for h in headers]))
    for row in rows:
        print(fmt.format(*row))
    if not rows:
        print("(none)")


def command(sub: Any, name: str, help_text: str, examples: str, handler: Callable[[argparse.Namespace], int | None],
            *, connection: bool = True, output: bool = True) -> argparse.ArgumentParser:
    """Add a subcommand with a help text, examples, and the usual flags."""
    p = sub.add_parser(name, help=help_text, description=help_text,
                       epilog="examples:\n" + examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    if connection:
        add_connection_args(p)
    if output:
        add_output_arg(p)
    p.set_defaults(handler=handler)
    return p
