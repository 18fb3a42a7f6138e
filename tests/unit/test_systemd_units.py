"""The shipped systemd units: valid for systemd (`systemd-analyze verify`, no warnings), hardened
as documented, and starting a real entry point of the `convoy` command."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.install import unit_text
from cli.main import build_parser
from common import systemd_units

UNITS = {"convoy-agent.service": systemd_units.AGENT, "convoy-coordinator.service": systemd_units.COORDINATOR}
ARGV = {"convoy-agent.service": ["agent", "run", "--state-dir", "/var/lib/convoy-agent"],
        "convoy-coordinator.service": ["coordinator", "serve"]}


def _parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",), comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(text)
    return parser


@pytest.mark.parametrize("name", UNITS)
def test_shipped_unit_starts_a_real_convoy_command(name: str) -> None:
    unit = _parse(systemd_units.shipped(UNITS[name]))
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0] == "/opt/convoy/bin/convoy" and argv[1:] == ARGV[name]
    args = build_parser().parse_args(argv[1:])  # a command the CLI has, with flags it takes
    assert callable(args.handler)
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert unit["Service"]["KillSignal"] == "SIGTERM"


@pytest.mark.parametrize("name", UNITS)
def test_rendered_unit_verifies_and_its_exec_start_runs(name: str, tmp_path: Path) -> None:
    argv = [*systemd_units.convoy_command(), *ARGV[name]]
    text = systemd_units.render(UNITS[name], argv)
    assert shlex.split(_parse(text)["Service"]["ExecStart"]) == argv
    probe = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and probe.stdout.startswith("usage: convoy"), probe.stderr
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    path = tmp_path / name
    path.write_text(text)
    verify = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    # verify exits 0 on an unknown key or a bad value; it only warns, so any output is a failure
    assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify.stdout + verify.stderr


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    path = tmp_path / "convoy-agent.service"
    path.write_text(systemd_units.render(systemd_units.AGENT, ["/nonexistent/convoy", "agent", "run"])
                    + "[Service]\nProtectSystem=maybe\n")
    verify = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert verify.returncode != 0 and "not executable" in verify.stderr and "protect system" in verify.stderr


def test_hardening_fits_each_program() -> None:
    coordinator = _parse(systemd_units.shipped(systemd_units.COORDINATOR))["Service"]
    for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "DynamicUser": "yes",
                       "StateDirectory": "convoy", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes"}.items():
        assert coordinator[key] == value, key
    assert coordinator["Environment"] == "CONVOY_DATA_DIR=/var/lib/convoy"
    agent = _parse(systemd_units.shipped(systemd_units.AGENT))["Service"]
    # the agent installs software as root: a read-only /usr or no-new-privileges would break that
    for key in ("ProtectSystem", "NoNewPrivileges", "User", "DynamicUser", "RestrictSUIDSGID"):
        assert key not in agent, key
    assert agent["Restart"] == "always" and agent["UMask"] == "0077"


def test_agent_install_writes_the_shipped_unit_for_its_state_dir() -> None:
    text = unit_text(Path("/srv/convoy agents/a1"))
    shipped = systemd_units.shipped(systemd_units.AGENT)
    exec_start = _parse(text)["Service"]["ExecStart"]
    assert shlex.split(exec_start)[-2:] == ["--state-dir", "/srv/convoy agents/a1"]  # quoted for systemd
    assert [line for line in text.splitlines() if not line.startswith("ExecStart=")] == \
        [line for line in shipped.splitlines() if not line.startswith("ExecStart=")]
