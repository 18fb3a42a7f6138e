"""The README tour's `convoy` commands parse with today's CLI (flags, choices, durations), so the
tour cannot drift from the code; tests/e2e/test_readme_tour.py runs it end to end as pasted."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cli.main import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def tour_commands() -> list[str]:
    text = README.read_text()
    block = text.split("## A five-minute tour", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"\s#\s.*$", "", line)  # trailing comments
        line = re.sub(r"\d?>\s*\S+", "", line)  # redirections
        commands += [m.strip() for m in re.findall(r"\bconvoy [^)|&;]*", line)]
    return commands


def test_the_tour_has_the_whole_story() -> None:
    verbs = {" ".join(c.split()[1:3]) for c in tour_commands()}
    assert {"admin bootstrap", "coordinator serve", "tokens create", "agent install", "agent run",
            "scripts create", "deployments create", "deployments start", "deployments watch"} <= verbs


@pytest.mark.parametrize("command", tour_commands())
def test_each_tour_command_parses(command: str) -> None:
    words = shlex.split(re.sub(r"\$[A-Z_]+", "X", command))[1:]
    args = build_parser().parse_args(words)  # argparse exits (SystemExit 2) on a bad flag or value
    assert callable(args.handler)
