"""`pip install convoy` is the agent: its dependencies leave out the coordinator's stack and the
admin CLI's extras, and the agent commands run with none of them importable."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.agents import wait_for
from tests.harness import ROOT, InProcessCoordinator, terminate

HEAVY = ("sqlalchemy", "alembic", "psycopg", "fastapi", "starlette", "uvicorn", "pydantic", "rich", "yaml",
         "prometheus_client", "grpc_tools", "grpc_health", "grpc_reflection")

# Run `convoy ARGS` with every HEAVY module unimportable, as on a host with only `pip install convoy`.
BLOCKED = f"""
import sys
from importlib.abc import MetaPathFinder
HEAVY = {HEAVY!r}
class Block(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
from cli.main import main
sys.argv = ["convoy", *sys.argv[1:]]
sys.exit(main())
"""


def _agent_cli(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", BLOCKED, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def test_core_dependencies_are_the_agents() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split("==")[0].split("[")[0].lower() for d in project["dependencies"]}
    assert core == {"grpcio", "protobuf", "psutil", "tzdata", "python-json-logger", "cryptography"}
    extras = project["optional-dependencies"]
    assert extras["all"] == ["convoy[cli,coordinator]"]
    assert any(d.startswith("grpcio-tools") for d in extras["test"])


def test_agent_installs_and_runs_without_the_coordinator_stack(coordinator: InProcessCoordinator,
                                                               tmp_path: Path) -> None:
    from common.convoy.v1 import admin_pb2 as pb

    token = coordinator.admin().CreateEnrollmentToken(
        pb.CreateEnrollmentTokenRequest(client_id=coordinator.client_id)).token
    state = tmp_path / "agent"
    install = _agent_cli("agent", "install", "--server", coordinator.grpc_target, "--token", token,
                         "--state-dir", str(state), "--machine-id", "slim", "--no-service", "--insecure", "-o", "json")
    out, err = install.communicate(timeout=60)
    assert install.returncode == 0, err
    device_id = json.loads(out)["device_id"]
    run = _agent_cli("agent", "run", "--state-dir", str(state), "--log-format", "json")
    try:
        wait_for(lambda: coordinator.admin().GetDevice(pb.GetDeviceRequest(
            client_id=coordinator.client_id, device_id=device_id)).online, timeout=30, what="the slim agent online")
    finally:
        terminate(run)  # type: ignore[arg-type]
    _, err = run.communicate(timeout=10)
    assert "ModuleNotFoundError" not in err


def test_a_command_that_needs_an_extra_says_which() -> None:
    serve = _agent_cli("coordinator", "serve", "--data-dir", "/nonexistent")
    _, err = serve.communicate(timeout=60)
    assert serve.returncode == 1
    assert "needs convoy[coordinator]" in err and "pip install 'convoy[coordinator]'" in err
    assert err.count("\n") == 1
