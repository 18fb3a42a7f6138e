"""The idle agent stays small: a real `convoy agent run` process, enrolled, connected and idle,
has not imported what only a job, a signature check, another command or the coordinator needs.
Each of these was measured in that process (docs/BENCHMARKS.md, "idle agent"); this keeps them
from coming back through an innocent top-level import."""

from __future__ import annotations

import signal
from pathlib import Path

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import wait_for
from tests.harness import CoordinatorProcess
from tests.real_agents import RealAgent, RealFleet

NOT_WHEN_IDLE = (
    "hashlib", "_hashlib",                 # OpenSSL's libcrypto, ~4 MB: downloads and signatures only
    "ssl", "_ssl",                         # gRPC brings its own TLS
    "cryptography",                        # signature checks only
    "importlib.metadata", "email",         # `--version` only
    "difflib", "argcomplete",              # the CLI's suggestions and completion
    "google.protobuf.json_format",         # journaling a job
    "agent.installers.script", "agent.installers.software", "agent.installers.patch",
    "agent.installers.policy",             # a job of that type (or a policy once applied)
    "agent.install", "agent.simulate",
    "coordinator", "sqlalchemy", "fastapi", "uvicorn", "rich", "yaml",
)
AGENT_CLI = {"cli", "cli.common", "cli.cmd_agent", "cli.main"}


def test_idle_agent_has_not_imported_what_only_work_needs(env: tuple[CoordinatorProcess, RealFleet],
                                                         tmp_path: Path) -> None:
    coord, fleet = env
    token = coord.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=coord.client_id)).token
    agent = RealAgent(coord, fleet.root, "idle")
    agent.install(token)
    dump = tmp_path / "modules.txt"
    agent.env = {"CONVOY_AGENT_MODULES_FILE": str(dump)}
    agent.start()
    fleet.agents.append(agent)
    fleet.wait_online([agent])
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGUSR1)
    wait_for(dump.exists, timeout=10, what="the module list")
    lines = dump.read_text().splitlines()
    assert lines[0].startswith("# VmRSS ")
    loaded = set(lines[1:])
    assert "grpc" in loaded and "agent.daemon" in loaded and "psutil" in loaded  # facts went with the hello
    heavy = sorted(m for m in loaded if m in NOT_WHEN_IDLE or m.split(".")[0] in NOT_WHEN_IDLE)
    assert heavy == [], f"the idle agent imported {heavy}"
    other_cli = sorted(m for m in loaded if m.split(".")[0] == "cli" and m not in AGENT_CLI)
    assert other_cli == [], f"the idle agent imported other commands' modules {other_cli}"
