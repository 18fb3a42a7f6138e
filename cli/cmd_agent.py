"""`convoy agent install` and `convoy agent run`: the device side."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import command


def _seconds(text: str) -> float:
    """Seconds for the simulator's knobs: a bare number is seconds (as their help says), or 2s, 1m."""
    from common.durations import parse_duration

    try:
        return parse_duration(text, bare_unit="s")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _install(args: argparse.Namespace) -> int:
    from agent.install import cli_install

    return cli_install(args)


def _run(args: argparse.Namespace) -> int:
    from agent.daemon import cli_run

    return cli_run(args)


def _simulate(args: argparse.Namespace) -> int:
    from agent.simulate import cli_simulate

    return cli_simulate(args)


def register(sub: Any) -> None:
    from agent.state import DEFAULT_STATE_DIR

    agent = sub.add_parser("agent", help="the agent on a device").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(agent, "install", "enroll this device with an enrollment token and install the agent",
                "  convoy agent install --server coordinator.example:7443 --token cvy_enr_... --ca-fingerprint sha256:...\n"
                "  convoy agent install --server 10.0.0.5:7443 --token $TOKEN --ca /etc/convoy/ca.pem \\\n"
                "      --state-dir /tmp/agent1 --machine-id vm-clone-17\n"
                "  convoy agent install --server replica-a:7443,replica-b:7443 --token $TOKEN --ca-fingerprint sha256:...\n"
                "  (--machine-id: for cloned VM images whose /etc/machine-id collides, or several agents on one host)",
                _install, connection=False)
    p.add_argument("--server", required=True,
                   help="the coordinator's gRPC address, HOST:PORT; several replicas: HOST:PORT,HOST:PORT "
                        "(stored in agent.json, tried in turn)")
    p.add_argument("--token", required=True, help="an enrollment token from `convoy tokens create`")
    p.add_argument("--ca-fingerprint", metavar="SHA256",
                   help="pin the coordinator's CA: sha256:... as printed by `convoy tokens create`")
    p.add_argument("--ca", metavar="FILE", help="pin the coordinator's CA from this PEM file instead")
    p.add_argument("--insecure", action="store_true",
                   help="plaintext, no pinning: only for a coordinator started with --insecure on loopback")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help=f"where the agent keeps its state (default {DEFAULT_STATE_DIR})")
    p.add_argument("--machine-id", help="override the machine id (default: /etc/machine-id)")
    p.add_argument("--tag", action="append", default=[], help="a device tag (repeatable), used by deployment filters")
    p.add_argument("--site", default="", help="the device's site, used by deployment filters")
    p.add_argument("--maintenance-window", action="append", default=[],
                   help="a weekly maintenance window, e.g. 'Sat 01:00-05:00 Europe/Berlin' (repeatable)")
    p.add_argument("--no-service", action="store_true", help="do not write a systemd unit")
    p.add_argument("--trust-key", action="append", default=[], metavar="KEY_OR_FILE",
                   help="run only work signed by this key (ed25519:<base64>, or a file holding one; repeatable; "
                        "printed by `convoy tokens create`)")

    r = command(agent, "run", "run the agent daemon: connect, heartbeat, receive and run jobs",
                "  convoy agent run --state-dir /var/lib/convoy-agent\n"
                "  convoy agent run --server replica-a:7443,replica-b:7443   (instead of agent.json's addresses)",
                _run, connection=False, output=False)
    r.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    r.add_argument("--server", metavar="HOST:PORT[,HOST:PORT...]",
                   help="coordinator addresses for this run instead of those in agent.json (the pinned CA still applies)")
    r.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    r.add_argument("--log-format", default="text", choices=("text", "json"),
                   help="text for people, json for log collectors: one object per line (default text)")

    sim = command(agent, "simulate", "simulate N agents in one process over the real agent protocol (for benchmarks)",
                  "  convoy agent simulate --server 127.0.0.1:7443 --token cvy_enr_... --count 1000\n"
                  "  convoy agent simulate --server 127.0.0.1:7443 --token $TOKEN --count 10000 --channels 8 \\\n"
                  "      --install-time 0.5 --failure-rate 0.05 --window 'Sat 01:00-05:00 UTC' --state-dir /tmp/sim",
                  _simulate, connection=False, output=False)
    sim.add_argument("--server", required=True,
                     help="the coordinator's gRPC address, HOST:PORT; replicas: HOST:PORT,HOST:PORT (agents spread, and fail over)")
    sim.add_argument("--token", required=True, help="an enrollment token with enough uses for --count agents")
    sim.add_argument("--ca-fingerprint", metavar="SHA256", help="pin the coordinator's CA (as for install)")
    sim.add_argument("--ca", metavar="FILE", help="pin the coordinator's CA from this PEM file")
    sim.add_argument("--insecure", action="store_true", help="plaintext, for an --insecure loopback coordinator")
    sim.add_argument("--count", type=int, required=True, help="how many agents to simulate")
    sim.add_argument("--channels", type=int, default=8,
                     help="gRPC channels the streams are spread over, per address (default 8)")
    sim.add_argument("--install-time", type=_seconds, default=0.0, help="seconds each install takes (default 0)")
    sim.add_argument("--failure-rate", type=float, default=0.0, help="probability an install fails, 0..1 (default 0)")
    sim.add_argument("--window", action="append", default=[],
                     help="a maintenance window every agent reports, e.g. 'Sat 01:00-05:00 UTC' (repeatable)")
    sim.add_argument("--state-dir", help="keep credentials here and reuse them on the next run")
    sim.add_argument("--wave", type=int, default=100, help="streams opened per wave (default 100)")
    sim.add_argument("--wave-pause", type=_seconds, default=0.01, help="seconds between waves (default 0.01)")
    sim.add_argument("--enroll-concurrency", type=int, default=32, help="enrollments in flight at once (default 32)")
    sim.add_argument("--device-keys", action="store_true",
                     help="enroll each agent with a device key and certificate, reporting over mutual TLS (the "
                          "install's cost over TLS); the agents then only enroll and hold no streams")
    sim.add_argument("--stats-interval", type=_seconds, default=1.0, help="seconds between stats lines (default 1)")
    sim.add_argument("--seed", type=int, help="random seed (failures, reconnect jitter)")
    sim.add_argument("--spread", action="store_true",
                     help="with several --server addresses: agent i starts on address i mod n (default: the first)")
    sim.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
