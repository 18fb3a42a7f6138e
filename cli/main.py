"""`convoy`: one command for the coordinator, the agent and operators.

Each area registers its own subcommands (cli/cmd_*.py). Heavy imports (SQLAlchemy, FastAPI,
rich) happen inside command handlers, so `convoy agent run` stays small in memory.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from cli.common import CliError, fail

COMMAND_MODULES = (
    "cli.cmd_coordinator",
    "cli.cmd_tenancy",
    "cli.cmd_enrollment",
    "cli.cmd_devices",
    "cli.cmd_payloads",
    "cli.cmd_deployments",
    "cli.cmd_keys",
    "cli.cmd_webhooks",
    "cli.cmd_run",
    "cli.cmd_audit",
    "cli.cmd_agent",
    "cli.cmd_demo",
    "cli.cmd_completion",
    "cli.cmd_version",
    "cli.cmd_context",
)

# `pip install convoy` is the agent; these modules come with an extra (pyproject.toml).
EXTRA_OF = {
    "sqlalchemy": "coordinator", "alembic": "coordinator", "psycopg": "coordinator", "fastapi": "coordinator",
    "starlette": "coordinator", "uvicorn": "coordinator", "prometheus_client": "coordinator",
    "grpc_health": "coordinator", "grpc_reflection": "coordinator", "rich": "cli", "yaml": "cli",
    "tomli_w": "cli",
}

# SIGPIPE's conventional status (128 + 13): what `yes | head` leaves for `set -o pipefail`.
EXIT_BROKEN_PIPE = 141

_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped command or choice. Subcommand parsers are
    made with the parent's class, so every level has it."""

    def error(self, message: str) -> NoReturn:
        match = _INVALID_CHOICE.search(message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2)) or [c.strip() for c in match.group(2).split(",")]
            import difflib

            close = difflib.get_close_matches(match.group(1), choices, n=3, cutoff=0.5)
            prefixed = [c for c in choices if c.startswith(match.group(1)) and c not in close] if match.group(1) else []
            guesses = close + prefixed
            if guesses:
                message += "\ndid you mean " + " or ".join(f"'{g}'" for g in guesses[:3]) + "?"
        super().error(message)


class _Version(argparse.Action):
    """`--version`, reading the installed version only when asked: importlib.metadata (with the
    email and zipfile modules under it) is ~1.5 MB of RSS in every `convoy agent run` otherwise."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from cli.cmd_version import installed_version

        print(f"convoy {installed_version()}")
        parser.exit()


def _help_for(parser: argparse.ArgumentParser) -> None:
    """Where a command group is called without its subcommand: show the group's help."""
    def show(_: argparse.Namespace) -> int:
        parser.print_help()
        return 0 if parser.prog == "convoy" else 2
    parser.set_defaults(handler=show)


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = Parser(
        prog="convoy",
        description="Convoy: controlled, auditable rollouts to a fleet of devices.",
        epilog="Admin commands read CONVOY_SERVER (host:port of the coordinator's gRPC listener) and "
               "CONVOY_TOKEN (an API token); --server/--token override them, and a context of the config "
               "file (convoy context --help) fills what neither gives.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    _help_for(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    for group in sub.choices.values():
        # groups (`convoy deployments`) print their help instead of "arguments are required"
        for action in group._actions:
            if isinstance(action, argparse._SubParsersAction):
                action.required = False
                if group.get_default("handler") is None:
                    _help_for(group)
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
        sys.stdout.flush()
    except CliError as exc:
        return fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        return fail(f"this command needs convoy[{extra}] (no module {exc.name!r}): "
                    f"pip install 'convoy[{extra}]' (or 'convoy[all]')", 1)
    except BrokenPipeError:
        # The reader went away (`convoy … | head`): stop quietly. Python would otherwise print a
        # traceback, and then complain again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
