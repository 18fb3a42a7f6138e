"""The systemd units Convoy ships (agent/systemd/, coordinator/systemd/), made for one install:
the shipped file with its ExecStart pointing at the convoy command that is running now."""

from __future__ import annotations

import shlex
import sys
from importlib import resources
from pathlib import Path

AGENT = ("agent", "systemd/convoy-agent.service")
COORDINATOR = ("coordinator", "systemd/convoy-coordinator.service")


def convoy_command() -> list[str]:
    """The `convoy` of this Python environment (a venv's bin/convoy), else `python -m cli.main`."""
    script = Path(sys.executable).parent / "convoy"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def shipped(unit: tuple[str, str]) -> str:
    package, name = unit
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def render(unit: tuple[str, str], argv: list[str]) -> str:
    """The shipped unit with its one ExecStart= line replaced by `argv` (quoted for systemd, whose
    ExecStart= takes shell-style quotes)."""
    lines = shipped(unit).splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("ExecStart=")]
    if len(starts) != 1:
        raise ValueError(f"{unit[1]} must have exactly one ExecStart= line")
    lines[starts[0]] = f"ExecStart={shlex.join(argv)}\n"
    return "".join(lines)
