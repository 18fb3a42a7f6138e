"""`convoy`: one command for the coordinator, the agent and operators.

Each area registers its own subcommands (cli/cmd_*.py). Heavy imports (SQLAlchemy, FastAPI,
rich) happen inside command handlers, so `convoy agent run` stays small in memory.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from cli.common import CliError, fail

COMMAND_MODULES = (
    "cli.cmd_coordinator",
    "cli.cmd_tenancy",
    "cli.cmd_enrollment",
    "cli.cmd_devices",
    "cli.cmd_payloads",
    "cli.cmd_deployments",
    "cli.cmd_run",
    "cli.cmd_agent",
    "cli.cmd_demo",
    "cli.cmd_completion",
)


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convoy",
        description="Convoy: controlled, auditable rollouts to a fleet of devices.",
        epilog="Admin commands read CONVOY_SERVER (host:port of the coordinator's gRPC listener) and "
               "CONVOY_TOKEN (an API token); --server/--token override them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:2] == ["agent", "run"] and "_ARGCOMPLETE" not in os.environ:
        # The daemon on every device: only its own area's parser, so it never imports the
        # operator commands (their protobuf stubs, argcomplete): measured ~1 MB of idle RSS.
        parser = build_parser(["cli.cmd_agent"])
        # asyncio imports Python's ssl module, which maps OpenSSL (~5 MB of RSS with libcrypto),
        # for TLS streams the agent never opens: gRPC brings its own TLS (BoringSSL). Absent,
        # asyncio runs without it; a later `import ssl` in this process raises ImportError.
        sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
    else:
        parser = build_parser()
        try:
            import argcomplete

            argcomplete.autocomplete(parser)
        except ImportError:  # pragma: no cover - completion is optional at run time
            pass
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except CliError as exc:
        return fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
