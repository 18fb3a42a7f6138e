"""Real `convoy agent install` + `convoy agent run` processes against a real coordinator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import wait_for
from tests.harness import CONVOY, ROOT, CoordinatorProcess, run_cli, terminate


class RealAgent:
    def __init__(self, coord: CoordinatorProcess, root: Path, name: str) -> None:
        self.coord = coord
        self.name = name
        self.state_dir = root / name
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.device_id = ""
        self.env: dict[str, str] = {}
        """Extra environment of `convoy agent run`."""

    def install(self, token: str, *extra: str) -> None:
        out = run_cli("agent", "install", "--server", self.coord.grpc_target, "--token", token, "--state-dir",
                      str(self.state_dir), "--machine-id", f"it-{self.name}", "--no-service", "-o", "json",
                      *self.coord.install_trust(), *extra)
        self.device_id = json.loads(out.stdout)["device_id"]

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen([*CONVOY, "agent", "run", "--state-dir", str(self.state_dir)], stdout=log,
                                     stderr=log, cwd=ROOT, env={**os.environ, **self.env} if self.env else None)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        terminate(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RealFleet:
    def __init__(self, coord: CoordinatorProcess, root: Path) -> None:
        self.coord = coord
        self.root = root
        self.agents: list[RealAgent] = []
        self.http = httpx.Client(base_url=coord.http_url + "/v2", timeout=30, verify=coord.verify,
                                 headers={"Authorization": f"Bearer {coord.token}"})

    def add(self, n: int, *extra: str) -> list[RealAgent]:
        token = self.coord.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=self.coord.client_id)).token
        new = [RealAgent(self.coord, self.root, f"agent-{len(self.agents) + i:02d}") for i in range(n)]
        for a in new:
            a.install(token, *extra)
            a.start()
        self.agents.extend(new)
        self.wait_online(new)
        return new

    def wait_online(self, agents: list[RealAgent], timeout: float = 30) -> None:
        ids = {a.device_id for a in agents}
        wait_for(lambda: ids <= {d["id"] for d in self.api("GET", f"/clients/{self.coord.client_id}/devices",
                                                          params={"limit": 500})["data"] if d["online"]},
                 timeout=timeout, what="agents online")

    def api(self, method: str, path: str, expect: int | tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        codes = (expect,) if isinstance(expect, int) else expect
        assert r.status_code in codes, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def deploy(self, spec: dict[str, Any]) -> str:
        dep = self.api("POST", "/deployments", json=spec)
        self.api("POST", f"/deployments/{dep['id']}/initialize")
        self.api("POST", f"/deployments/{dep['id']}/start")
        return str(dep["id"])

    def wait_finished(self, dep_id: str, timeout: float = 60) -> dict[str, Any]:
        done = {"completed", "failed", "cancelled"}
        result: dict[str, Any] = wait_for(lambda: (d := self.api("GET", f"/deployments/{dep_id}"))["status"] in done and d,
                                          timeout=timeout, what=f"deployment {dep_id} to finish")
        return result

    def records(self, dep_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/deployments/{dep_id}/devices", params={"limit": 500})["data"])

    def stop(self) -> None:
        for a in self.agents:
            a.stop()
