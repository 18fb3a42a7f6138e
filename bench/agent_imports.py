"""What each import costs the `convoy agent run` process: RSS after each step, in a fresh
interpreter, in the order the agent loads them (cli/main.py's agent path, then agent.daemon's
imports, then what the first session loads: the policy settings and the facts).

    python -m bench.agent_imports            # the agent path as it is
    python -m bench.agent_imports --all-cli  # as before: every command's parser, and Python's ssl

RSS is read from /proc/self/status (VmRSS) after each step; a step's cost depends on what came
before it (a shared library is paid for by the first module that maps it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from bench.common import ROOT

AGENT_PATH = [
    "cli.common", "cli.cmd_agent", "asyncio", "logging", "grpc", "grpc.aio", "google.protobuf.struct_pb2",
    "common.convoy.v1.types_pb2", "common.convoy.v1.agent_pb2", "common.convoy.v1.agent_pb2_grpc", "agent.state",
    "agent.download", "google.protobuf.json_format", "agent.journal", "agent.installers", "common.maintenance",
    "agent.runner", "agent.daemon", "agent.installers.policy", "psutil", "agent.facts",
]
OPTIONAL = ["hashlib", "ssl", "argcomplete", "common.convoy.v1.admin_pb2", "cli.main:build_parser"]

PROBE = r"""
import importlib, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0
steps, block_ssl = sys.argv[1].split(","), sys.argv[2] == "1"
if block_ssl:
    sys.modules["ssl"] = None
prev = rss()
print(f"{'(python)':34s} {prev:6.1f} MB")
for step in steps:
    if step == "cli.main:build_parser":
        importlib.import_module("cli.main").build_parser()
    else:
        importlib.import_module(step)
    now = rss()
    print(f"{step:34s} {now:6.1f} MB  {now - prev:+5.1f}")
    prev = now
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.agent_imports")
    p.add_argument("--all-cli", action="store_true", help="every command's parser and Python's ssl, as before")
    args = p.parse_args(argv)
    steps = list(AGENT_PATH)
    if args.all_cli:
        steps[2:2] = ["cli.main:build_parser", "argcomplete", "ssl"]
    print("the agent path" + (" before: all commands' parsers, argcomplete, Python's ssl" if args.all_cli else
                              " as `convoy agent run` loads it (no Python ssl, only the agent's parser)"))
    out = subprocess.run([sys.executable, "-c", PROBE, ",".join(steps), "0" if args.all_cli else "1"], cwd=ROOT,
                         capture_output=True, text=True)
    print(out.stdout + out.stderr, end="")
    rest = [s for s in OPTIONAL if s not in steps and not (s == "ssl" and not args.all_cli)]
    print("\nloaded only when needed (each alone, after the agent path):")
    for step in rest:
        one = subprocess.run([sys.executable, "-c", PROBE, ",".join([*steps, step]), "0" if args.all_cli else "1"],
                             cwd=ROOT, capture_output=True, text=True)
        print("  " + (one.stdout.strip().splitlines() or ["?"])[-1])
    return out.returncode


if __name__ == "__main__":
    sys.exit(main())
