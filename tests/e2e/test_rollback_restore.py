"""Issue 9, item 8, through the real interface: a real coordinator and a real `convoy agent run`
with real dpkg. A .deb that upgraded a package that was there before is rolled back to that
package's version, never removed: from convoy's cache when convoy installed that version, and
otherwise the rollback fails saying why and leaves the package installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness import CoordinatorProcess, cli_json
from tests.real_agents import RealAgent, RealFleet

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dpkg-deb") or not shutil.which("dpkg"),
                                reason="needs dpkg and root")


def build_deb(tmp_path: Path, name: str, version: str) -> Path:
    root = tmp_path / f"debroot-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "opt" / name).mkdir(parents=True)
    (root / "opt" / name / "version.txt").write_text(f"{version}\n")
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Convoy Tests <t@example.com>\n"
        "Description: convoy rollback test package\n")
    deb = tmp_path / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    return deb


def installed_version(name: str) -> str | None:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version} ${db:Status-Abbrev}", name], capture_output=True,
                         text=True)
    version, _, status = out.stdout.partition(" ")
    return version if out.returncode == 0 and status.startswith("ii") else None


def dpkg_install(deb: Path) -> None:
    """`dpkg -i` by hand, as an operator did before convoy; waits out another dpkg user."""
    for _ in range(120):
        out = subprocess.run(["dpkg", "-i", str(deb)], capture_output=True, text=True)
        if out.returncode == 0:
            return
        assert "lock" in out.stderr + out.stdout, out
        time.sleep(1)
    raise AssertionError("dpkg stayed locked for 2 minutes")


def upload(coord: CoordinatorProcess, deb: Path) -> str:
    return str(cli_json("artifacts", "upload", str(deb), server=coord.grpc_target, token=coord.token,
                        env=coord.trust_env())["id"])


def deploy(fleet: RealFleet, agent: RealAgent, artifact_id: str) -> str:
    dep = fleet.deploy({"name": "install", "type": "software", "payload": {"artifactId": artifact_id},
                        "targetType": "devices", "targetConfig": {"type": "devices", "deviceIds": [agent.device_id]},
                        "rolloutConfig": {"type": "immediate"}})
    assert fleet.wait_finished(dep)["status"] == "completed", fleet.records(dep)
    return dep


def roll_back(fleet: RealFleet, dep: str) -> tuple[str, dict[str, str]]:
    rb = fleet.api("POST", f"/deployments/{dep}/rollback")
    status = fleet.wait_finished(rb["id"])["status"]
    [record] = fleet.records(rb["id"])
    return status, record


def test_a_deb_upgrade_is_rolled_back_to_the_version_before_never_removed(
        env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    [agent] = fleet.add(1)
    name = f"convoy-rb-{tmp_path.name[-8:].lower().replace('_', '-')}"
    v1, v2 = build_deb(tmp_path, name, "1.0"), build_deb(tmp_path, name, "2.0")
    art1, art2 = upload(coord, v1), upload(coord, v2)
    marker = Path(f"/opt/{name}/version.txt")
    try:
        # The device had 1.0, installed by hand: nobody kept that .deb.
        dpkg_install(v1)
        upgrade = deploy(fleet, agent, art2)
        assert installed_version(name) == "2.0"
        [forward] = fleet.records(upgrade)
        assert f"note: a rollback could not restore {name} 1.0" in forward["output"]
        status, record = roll_back(fleet, upgrade)
        assert status == "failed" and record["status"] == "failed", record
        assert record["error"] == (f"cannot restore {name} 1.0: that version is not in convoy's package cache, "
                                   "apt's archive or the package sources; left 2.0 installed")
        assert installed_version(name) == "2.0" and marker.read_text() == "2.0\n"  # not removed

        # Once convoy itself has installed 1.0, it keeps that .deb, and the rollback of the next
        # upgrade gives 1.0 back from its cache.
        deploy(fleet, agent, art1)
        assert installed_version(name) == "1.0"
        upgrade = deploy(fleet, agent, art2)
        assert installed_version(name) == "2.0"
        status, record = roll_back(fleet, upgrade)
        assert status == "completed", record
        assert installed_version(name) == "1.0" and marker.read_text() == "1.0\n"
        assert f"{name}: 2.0 -> 1.0" in record["output"]
        assert (agent.state_dir / "packages" / "debs" / f"{name}_1.0.deb").is_file()
    finally:
        subprocess.run(["dpkg", "--purge", name], capture_output=True)
