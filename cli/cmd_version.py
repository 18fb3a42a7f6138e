"""`convoy version`: the installed version, and the coordinator's when one is reachable."""

from __future__ import annotations

import argparse
import platform
from importlib import metadata
from typing import Any

from cli.common import command, emit


def installed_version() -> str:
    try:
        return metadata.version("convoy")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _version(args: argparse.Namespace) -> int:
    import grpc

    out = {"version": installed_version(), "python": platform.python_version(), "grpc": grpc.__version__}
    emit(args, out, lambda: print(f"convoy {out['version']} (python {out['python']}, grpc {out['grpc']})"))
    return 0


def register(sub: Any) -> None:
    command(sub, "version", "print the version of this convoy installation",
            "  convoy version\n  convoy version -o json", _version, connection=False, quiet="version")
