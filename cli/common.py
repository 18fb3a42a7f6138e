"""What every command shares: connection settings, calling the admin API, printing results.

Errors leave as one line on stderr (`error: <the server's message>`) and a non-zero exit:
2 bad usage / invalid argument, 3 authentication or permission, 4 not found, 5 conflict,
6 coordinator unreachable, 7 the coordinator's certificate is not trusted, 1 anything else.

Output (`-o`): `table` for people, `json` and `yaml` for scripts (a list is always
`{"data": [...], "total": N}`), and `-q/--quiet` prints only ids, one a line, for `$(…)`.

Every connection setting comes from, strongest first: its flag, its environment variable, the
context (`--context NAME`, `$CONVOY_CONTEXT`, else the config file's current one: cli/config.py),
the default. The same holds for `--client` (`$CONVOY_CLIENT`, the context's `client`).

Trust in the coordinator, strongest first (flags override the environment): `--ca FILE` /
`CONVOY_CA` (a PEM CA file), `--ca-fingerprint` / `CONVOY_CA_FINGERPRINT` (`sha256:…` of the CA
certificate, which is fetched from the server and checked, see common/transport.discover_ca), the
system's trusted roots when neither is given, and plaintext only with `--insecure` /
`CONVOY_INSECURE=1` (for a coordinator started with `--insecure` on loopback).

Every table is printed through `print_table`, which strips control characters from each cell:
device-sent text (hostnames, output, error text, log lines) never reaches a terminal as escape
sequences. JSON output (`-o json`) is printed exactly as received.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from common.exits import EXIT_CODES, EXIT_UNTRUSTED, CliError  # noqa: F401 - re-exported for cli/*

if TYPE_CHECKING:
    from cli.config import Context
    from common.transport import ClientTLS

_TRUE = ("1", "true", "yes", "on")
# gRPC core logs a failed TLS handshake to stderr on its own; the CLI reports it as one line.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def add_connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--context", default=None, metavar="NAME",
                   help="use this context of the config file (default: $CONVOY_CONTEXT, else the current one)")
    p.add_argument("--server", default=None, help="coordinator gRPC address (default: $CONVOY_SERVER or 127.0.0.1:7443)")
    p.add_argument("--token", default=None, help="API token (default: $CONVOY_TOKEN)")
    p.add_argument("--ca", default=None, metavar="FILE",
                   help="trust the coordinator's certificate if it chains to this CA file (default: $CONVOY_CA)")
    p.add_argument("--ca-fingerprint", default=None, metavar="SHA256",
                   help="trust the CA with this fingerprint, sha256:… (default: $CONVOY_CA_FINGERPRINT)")
    p.add_argument("--insecure", action="store_true", default=None,
                   help="plaintext, for a coordinator started with --insecure (default: $CONVOY_INSECURE)")


OUTPUTS = ("table", "json", "yaml")


def add_output_arg(p: argparse.ArgumentParser, quiet: str = "id") -> None:
    p.add_argument("-o", "--output", choices=OUTPUTS, default="table",
                   help="output format: table for people, json or yaml for scripts")
    what = {"token": "the secret token", "secret": "the secret"}.get(quiet, "ids")
    p.add_argument("-q", "--quiet", action="store_true", help=f"print only {what}, one a line (for $(...))")
    p.set_defaults(quiet_field=quiet)


def context(args: argparse.Namespace) -> tuple[str, Context]:
    """The context this command uses (its name, "" for none), read once per command."""
    cached = getattr(args, "_context", None)
    if cached is None:
        # imported here: `convoy agent run` shares this module and never reads the config file
        from cli import config

        cached = args._context = config.selected(getattr(args, "context", None))
    return cached  # type: ignore[no-any-return]


def _setting(args: argparse.Namespace, flag: str, env: str, key: str) -> tuple[Any, str]:
    """A connection setting and where it came from: the flag, else its variable, else the context."""
    value = getattr(args, flag, None)
    if value:
        return value, "--" + flag.replace("_", "-")
    if os.environ.get(env):
        return os.environ[env], env
    name, ctx = context(args)
    return getattr(ctx, key), f"context {name!r} ({key})"


def server_address(args: argparse.Namespace) -> str:
    address, source = _setting(args, "server", "CONVOY_SERVER", "server")
    address = address or "127.0.0.1:7443"
    if "://" in address:
        bare = address.split("://", 1)[1].split("/", 1)[0]
        raise CliError(f"{source} is {address!r}, a URL: the CLI speaks gRPC to HOST:PORT, e.g. "
                       f"{bare if ':' in bare else bare + ':7443'} (the gRPC port, 7443 by default; "
                       f"http://… is the dashboard and REST port)", 2)
    return address


def api_token(args: argparse.Namespace) -> str:
    token = getattr(args, "token", None) or os.environ.get("CONVOY_TOKEN")
    if token:
        return token
    _, ctx = context(args)
    if ctx.token_file:
        from cli import config

        return config.read_token_file(ctx.token_file)
    raise CliError("no API token: set CONVOY_TOKEN, pass --token, or use a context with a token file "
                   "(convoy context set NAME --token-file FILE)", 3)


def default_client(args: argparse.Namespace) -> str:
    """`--client` when given (even ''), else $CONVOY_CLIENT when set (even empty: "no default"),
    else the context's client, else '' (the token's only client, or all of its clients for lists)."""
    if getattr(args, "client", None) is not None:
        return str(args.client)
    if "CONVOY_CLIENT" in os.environ:
        return os.environ["CONVOY_CLIENT"]
    return context(args)[1].client


def client_trust(args: argparse.Namespace) -> tuple[ClientTLS, str]:
    """How this command trusts the coordinator, and the CA fingerprint when one is known."""
    cached = getattr(args, "_trust", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    result = _resolve_trust(args)
    args._trust = result
    return result


def _resolve_trust(args: argparse.Namespace) -> tuple[ClientTLS, str]:
    from common import pins, transport

    flags = (getattr(args, "insecure", None), getattr(args, "ca", None), getattr(args, "ca_fingerprint", None))
    if not any(flags):  # nothing on the command line: the environment decides
        flags = (os.environ.get("CONVOY_INSECURE", "").lower() in _TRUE, os.environ.get("CONVOY_CA") or None,
                 os.environ.get("CONVOY_CA_FINGERPRINT") or None)
    if not any(flags):  # nor in the environment: the context
        ctx = context(args)[1]
        flags = (ctx.insecure, ctx.ca or None, ctx.ca_fingerprint or None)
    insecure, ca_file, fingerprint = flags
    if insecure:
        if ca_file or fingerprint:
            raise CliError("--insecure cannot be combined with --ca or --ca-fingerprint", 2)
        return transport.PLAINTEXT, ""
    want = ""
    if fingerprint:
        try:
            want = pins.parse_fingerprint(fingerprint)
        except ValueError as exc:
            raise CliError(str(exc), 2) from None
    if ca_file:
        try:
            pem = open(ca_file, "rb").read()  # noqa: SIM115 - small file, read once
            have = pins.bundle_fingerprint(pem)
        except OSError as exc:
            raise CliError(f"cannot read the CA file {ca_file}: {exc.strerror or exc}", 2) from None
        except ValueError:
            raise CliError(f"{ca_file} holds no PEM certificate", 2) from None
        if want and want != have:
            raise CliError(f"the CA file {ca_file} has fingerprint {have}, not {want}", EXIT_UNTRUSTED)
        return transport.ClientTLS(ca_pem=pem), have
    if want:
        try:
            return transport.ClientTLS(ca_pem=transport.discover_ca(server_address(args), want)), want
        except transport.TrustError as exc:
            raise CliError(str(exc), EXIT_UNTRUSTED) from None
    return transport.SYSTEM_ROOTS, ""


def admin_stub(args: argparse.Namespace) -> tuple[Any, list[tuple[str, str]]]:
    """A sync AdminService stub and the metadata to send with each call."""
    from common import transport
    from common.convoy.v1 import admin_pb2_grpc

    tls, _ = client_trust(args)
    channel = transport.sync_channel(server_address(args), tls)
    return admin_pb2_grpc.AdminServiceStub(channel), [("authorization", f"Bearer {api_token(args)}")]


def call(args: argparse.Namespace, method: str, request: Any, timeout: float = 60.0) -> Any:
    """Call one AdminService RPC; turn any failure into a one-line CliError."""
    import grpc

    stub, metadata = admin_stub(args)
    try:
        return getattr(stub, method)(request, metadata=metadata, timeout=timeout)
    except grpc.RpcError as exc:
        raise rpc_failure(exc, server_address(args), client_trust(args)[0].secure) from None


_HANDSHAKE = re.compile(r"handshake|CERTIFICATE_VERIFY_FAILED|certificate verify failed", re.IGNORECASE)


def rpc_failure(exc: Any, server: str, secure: bool = True) -> CliError:
    from common.errors import from_rpc_error

    err = from_rpc_error(exc)
    if err.code == "unavailable":
        if secure and _HANDSHAKE.search(err.message):
            return CliError(f"the coordinator at {server} is not trusted (TLS handshake failed: check --ca / "
                            f"CONVOY_CA or --ca-fingerprint): {err.message}", EXIT_UNTRUSTED)
        hint = "" if secure else " (plaintext: if the coordinator serves TLS, pass --ca or set CONVOY_CA)"
        return CliError(f"cannot reach the coordinator at {server}: {err.message}{hint}{_port_hint(err.message)}", 6)
    return CliError(err.message, EXIT_CODES.get(err.code, 1))


def _port_hint(message: str) -> str:
    """gRPC's own words when the address answers HTTP/1 (the coordinator's REST port, or a web
    server) or TLS: say what the operator most likely meant."""
    low = message.lower()
    if "http1.x server" in low or "http/1" in low:
        return ("; this address answers HTTP/1, probably the coordinator's REST/dashboard port (7080 by "
                "default): point CONVOY_SERVER or --server at the gRPC port (7443 by default)")
    if "ssl" in low or "tls" in low or "handshake" in low:
        return "; this address speaks TLS: check that the CLI and the coordinator agree on TLS"
    return ""


def to_dict(message: Any, snake: bool = False) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(message, preserving_proto_field_name=snake, always_print_fields_with_no_presence=True)


def emit(args: argparse.Namespace, data: Any, table: Callable[[], None] | None = None) -> None:
    """Print `data` as `-o json|yaml`, ids for `--quiet`, else call `table` (or print the JSON).
    A bare list is printed as `{"data": [...], "total": N}`, the shape of every list."""
    if isinstance(data, list):
        data = {"data": data, "total": len(data)}
    output = getattr(args, "output", "table")
    if getattr(args, "quiet", False):
        for value in quiet_values(data, getattr(args, "quiet_field", "id")):
            print(value)
    elif output == "yaml":
        import yaml

        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False), end="")
    elif output == "json" or table is None:
        print(json.dumps(data, indent=2, sort_keys=False))
    else:
        table()


# C0 and C1 control characters and DEL (ESC starts every terminal escape sequence), plus the
# Unicode line and paragraph separators and bidi overrides that reorder what a reader sees.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(value: Any) -> str:
    """`value` as one line of text safe for a terminal: control characters become `?`
    (tabs and newlines a space), so device-sent text cannot move the cursor or recolour output."""
    text = "" if value is None else str(value)
    return _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "?", text)
def quiet_values(data: Any, field: str = "id") -> list[str]:
    """What `--quiet` prints: `field` of each row of a list, or of the object (or of the object it
    wraps, e.g. initialize's `deployment`); a device record's id is its `deviceId`."""
    rows = data["data"] if isinstance(data, dict) and isinstance(data.get("data"), list) else [data]
    out = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        value = row.get(field) or row.get("deviceId") or row.get("client_id")
        if value is None:
            nested = next((v for v in row.values() if isinstance(v, dict) and v.get(field)), None)
            value = nested.get(field) if nested else None
        if value:
            out.append(str(value))
    return out


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    rows = [[printable(v) for v in row] for row in rows]
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
            *, connection: bool = True, output: bool = True, quiet: str = "id") -> argparse.ArgumentParser:
    """Add a subcommand with a help text, examples, and the usual flags."""
    p = sub.add_parser(name, help=help_text, description=help_text,
                       epilog="examples:\n" + examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    if connection:
        add_connection_args(p)
    if output:
        add_output_arg(p, quiet)
    p.set_defaults(handler=_with_default_client(handler) if connection else handler)
    return p


def _with_default_client(handler: Callable[[argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int | None]:
    """Fill a command's `--client` from $CONVOY_CLIENT or the context when it is not given
    (`--client ''` given: no default client, e.g. to list across all the token's clients)."""
    def run(args: argparse.Namespace) -> int | None:
        if hasattr(args, "client") and args.client is None:
            args.client = default_client(args)
        return handler(args)
    return run
