"""`convoy agent install` and `convoy agent run`: the device side."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import command


def _install(args: argparse.Namespace) -> int:
    from agent.install import cli_install

    return cli_install(args)


def _run(args: argparse.Namespace) -> int:
    from agent.daemon import cli_run

    return cli_run(args)


def register(sub: Any) -> None:
    from agent.state import DEFAULT_STATE_DIR

    agent = sub.add_parser("agent", help="the agent on a device").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(agent, "install", "enroll this device with an enrollment token and install the agent",
                "  convoy agent install --server coordinator.example:7443 --token cvy_enr_... \n"
                "  convoy agent install --server 10.0.0.5:7443 --token $TOKEN --state-dir /tmp/agent1 --machine-id vm-clone-17\n"
                "  (--machine-id: for cloned VM images whose /etc/machine-id collides, or several agents on one host)",
                _install, connection=False)
    p.add_argument("--server", required=True, help="the coordinator's gRPC address, HOST:PORT")
    p.add_argument("--token", required=True, help="an enrollment token from `convoy tokens create`")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help=f"where the agent keeps its state (default {DEFAULT_STATE_DIR})")
    p.add_argument("--machine-id", help="override the machine id (default: /etc/machine-id)")
    p.add_argument("--tag", action="append", default=[], help="a device tag (repeatable), used by deployment filters")
    p.add_argument("--site", default="", help="the device's site, used by deployment filters")
    p.add_argument("--maintenance-window", action="append", default=[],
                   help="a weekly maintenance window, e.g. 'Sat 01:00-05:00 Europe/Berlin' (repeatable)")
    p.add_argument("--no-service", action="store_true", help="do not write a systemd unit")

    r = command(agent, "run", "run the agent daemon: connect, heartbeat, receive and run jobs",
                "  convoy agent run --state-dir /var/lib/convoy-agent", _run, connection=False, output=False)
    r.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    r.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
