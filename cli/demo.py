"""`convoy demo` / `make demo`: the whole story on this machine, with real processes.

A coordinator on SQLite in a temporary directory, ~20 real agents (each its own
`convoy agent install` and `convoy agent run` process), a staggered script rollout that fails
on a few devices, auto-pauses, is inspected, resumed and finishes; then a device's enrollment
history. Every step prints one line saying what it does. The demo checks that each part of the
story really happened and exits non-zero (saying what went wrong) if not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

N_AGENTS = 20
FAILING = 3          # devices the demo script fails on (2 land in batch 1, 1 later)
CLOSED_WINDOW = 2    # devices whose maintenance window is closed right now
OFFLINE = 1          # an agent that is stopped before the rollout


class DemoFailed(Exception):
    pass


def say(step: str) -> None:
    print(f"\033[1m▶ {step}\033[0m" if sys.stdout.isatty() else f"> {step}", flush=True)


def detail(text: str) -> None:
    print(f"    {text}", flush=True)


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


class Demo:
    def __init__(self, workdir: Path, keep: bool) -> None:
        self.dir = workdir
        self.keep = keep
        self.procs: list[subprocess.Popen[bytes]] = []
        self.convoy = [sys.executable, "-m", "cli.main"]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.env.pop("CONVOY_SERVER", None)
        self.env.pop("CONVOY_TOKEN", None)
        self.cwd = Path(__file__).resolve().parent.parent

    # --- plumbing ----------------------------------------------------------------------

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.convoy, *args], capture_output=True, text=True, env=self.env, cwd=self.cwd,
                              timeout=120)
        if check and proc.returncode != 0:
            raise DemoFailed(f"`convoy {' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        fh = open(log, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([*self.convoy, *args], stdout=fh, stderr=fh, env=self.env, cwd=self.cwd,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()

    # --- the story ---------------------------------------------------------------------

    def story(self) -> None:
        started = time.monotonic()
        data = self.dir / "coordinator"
        say(f"Bootstrapping a coordinator store (SQLite) in {data}")
        boot = self.json("admin", "bootstrap", "--data-dir", str(data), "--client-name", "Demo MSP")
        client = boot["client_id"]
        self.env["CONVOY_TOKEN"] = boot["token"]
        self.env["CONVOY_CA"] = boot["ca_file"]
        detail(f"client {client}; a partner admin token was printed once and is kept only as a hash")
        detail(f"the coordinator made its own CA {boot['ca_fingerprint']}; the CLI trusts it via CONVOY_CA")

        say("Starting the coordinator over TLS: gRPC for agents and the CLI, REST under /v2")
        coord = self.spawn(["coordinator", "serve", "--data-dir", str(data), "--grpc-listen", "127.0.0.1:0",
                            "--http-listen", "127.0.0.1:0"], self.dir / "coordinator.log")
        ports = self._listening(coord)
        server = f"127.0.0.1:{ports['grpc_port']}"
        self.env["CONVOY_SERVER"] = server
        expect(ports.get("tls") is True and ports.get("ca_fingerprint") == boot["ca_fingerprint"],
               f"the coordinator should serve TLS with the CA bootstrap printed: {ports}")
        detail(f"gRPC {server}, REST https://127.0.0.1:{ports['http_port']}/v2 (OpenAPI at /openapi.json), "
               "both TLS")

        say("Making an operator's Ed25519 signing key on this machine and registering its public half")
        key = self.json("keys", "create", "--name", "demo-operator", "--out", str(self.dir / "keys"))
        self.run("keys", "register", key["public_key_file"], "--client", client, "--name", "demo operator")
        detail(f"key {key['key_id']}; the private key stays in {key['private_key_file']} (0600), never uploaded")

        say("Creating an enrollment token (expires in 1h); it comes with the whole install command")
        created = self.json("tokens", "create", "--client", client, "--expires-in", "1h")
        token = created["token"]
        detail(created["install_command"].replace(token, "cvy_enr_…"))
        expect(created.get("trust_keys") == [key["public_key"]], "the install command pins the signer key")

        say(f"Installing {N_AGENTS} agents, each a separate `convoy agent install` process")
        now = datetime.now(UTC)
        closed = (now + timedelta(hours=3)).strftime("%a %H:00") + "-" + (now + timedelta(hours=4)).strftime("%H:00") + " UTC"
        installs = []
        for i in range(N_AGENTS):
            args = ["agent", "install", "--server", server, "--token", token, "--state-dir",
                    str(self.dir / "agents" / f"agent-{i:02d}"), "--machine-id", f"demo-machine-{i:02d}",
                    "--no-service", "-o", "json", "--tag", "demo", "--ca-fingerprint", created["ca_fingerprint"],
                    "--trust-key", key["public_key"]]
            installs.append(subprocess.Popen([*self.convoy, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             env=self.env, cwd=self.cwd, text=True))
        devices = []
        for p in installs:
            out, err = p.communicate(timeout=120)
            expect(p.returncode == 0, f"agent install failed: {err.strip()}")
            devices.append(json.loads(out)["device_id"])
        # Batches are planned in device-id order, so the demo can choose who lands where.
        order = sorted(devices)
        failing = [order[0], order[1], order[len(order) // 2]]
        windowed = order[-1 - CLOSED_WINDOW:-1]
        offline = order[-1]
        detail(f"{len(devices)} devices enrolled, each pinning the coordinator's CA and the signer key; each "
               "enrollment is a `success` record in its history")

        say(f"Giving {CLOSED_WINDOW} agents a maintenance window that is closed now ({closed})")
        for i, dev in enumerate(devices):
            if dev in windowed:
                (self.dir / "agents" / f"agent-{i:02d}" / "windows.conf").write_text(closed + "\n")

        say(f"Tagging {FAILING} devices 'flaky': the demo script fails on them (disk full)")
        for dev in failing:
            self.run("devices", "tag", "--client", client, dev, "--tag", "demo", "--tag", "flaky")

        say(f"Starting {N_AGENTS} `convoy agent run` daemons")
        agent_procs = {}
        for i, dev in enumerate(devices):
            agent_procs[dev] = self.spawn(["agent", "run", "--state-dir", str(self.dir / "agents" / f"agent-{i:02d}")],
                                          self.dir / f"agent-{i:02d}.log")
        self.wait(lambda: self._online(client) >= N_AGENTS, 60, "every agent to come online")
        say("Stopping one agent, so it is offline when its batch comes")
        agent_procs[offline].send_signal(signal.SIGTERM)
        agent_procs[offline].wait(15)
        self.wait(lambda: self._online(client) == N_AGENTS - OFFLINE, 30, "the stopped agent to go offline")
        detail(f"{self._online(client)} of {N_AGENTS} devices online")

        say("Creating the script 'disk-cleanup' (fails on the flaky devices)")
        script_path = self.dir / "cleanup.sh"
        cases = "|".join(failing)
        script_path.write_text(
            "#!/bin/sh\n"
            f'case "$CONVOY_DEVICE_ID" in {cases})\n'
            '  echo "cleanup: cannot write /var/tmp: No space left on device" >&2; exit 28;;\n'
            "esac\n"
            'echo "cleaned 142 MB on $CONVOY_DEVICE_ID"\n')
        script = self.json("scripts", "create", "--client", client, "--name", "disk-cleanup", "--interpreter", "sh",
                           "--file", str(script_path))["id"]

        say("Creating a staggered deployment: 25% batches, 3 s apart, pause after 2 failures, maintenance windows respected")
        body = {"name": "Disk cleanup — demo fleet", "type": "script", "payload": {"scriptId": script, "parameters": {}},
                "targetType": "filter", "targetConfig": {"type": "filter", "filter": '"demo" in tags'},
                "rolloutConfig": {"type": "staggered",
                                  "staggered": {"batchSize": "25%", "batchDelayMinutes": 0.05, "pauseOnFailureCount": 2},
                                  "respectMaintenanceWindows": True,
                                  "retryConfig": {"maxRetries": 0, "backoffMinutes": [1]}}}
        (self.dir / "deployment.json").write_text(json.dumps(body, indent=2))
        dep = self.json("deployments", "create", "--file", str(self.dir / "deployment.json"))["id"]
        init = self.json("deployments", "initialize", dep)
        preview = init.get("preview", init)
        detail(f"initialize resolved {preview['resolvedCount']} devices into {preview['totalBatches']} batches of "
               f"{[b['deviceCount'] for b in preview['batches']]}; nothing runs until start")
        expect(preview["resolvedCount"] == N_AGENTS and preview["totalBatches"] == 4, "the plan is 4 batches of 5")

        say("Starting it signed, and watching: batch 1 holds two flaky devices, so it should auto-pause")
        self.run("deployments", "start", dep, "--sign-key", key["private_key_file"])
        expect(self.json("deployments", "get", dep).get("signedBy") == key["key_id"], "the deployment is signed")
        watch = self.run("deployments", "watch", dep, check=False)
        print(watch.stdout.rstrip())
        got = self.json("deployments", "get", dep)
        expect(got["status"] == "paused", f"expected an auto-pause, deployment is {got['status']}")
        expect("pauseOnFailureCount" in (got.get("statusReason") or ""), "the pause says why")
        expect(got["progress"]["failed"] == 2 and got["progress"]["currentBatch"] == 1, "paused after batch 1 with 2 failures")
        detail(f"auto-paused: {got['statusReason']}")

        say("Inspecting the failed devices and their output before deciding")
        failed = self.json("deployments", "devices", dep, "--status", "failed")
        for rec in failed["data"]:
            detail(f"{rec['deviceId']}: exit {rec.get('exitCode')} — {rec.get('output', '').strip()}")
        expect(len(failed["data"]) == 2, "two failed devices listed")

        say("Resuming: thresholds re-arm from here, the remaining batches run")
        self.run("deployments", "resume", dep)
        watch = self.run("deployments", "watch", dep, check=False)
        print(watch.stdout.rstrip())
        final = self.json("deployments", "get", dep)
        prog = final["progress"]
        detail(f"final: {final['status']}; completed {prog['completed']}, failed {prog['failed']}, "
               f"skipped {prog['skipped']}, {prog['percentComplete']}% complete")
        expect(final["status"] == "completed", f"expected completed, got {final['status']}")
        expect(prog["failed"] == FAILING and prog["skipped"] == CLOSED_WINDOW + OFFLINE, "3 failed and 3 skipped")
        skipped = self.json("deployments", "devices", dep, "--status", "skipped")["data"]
        reasons = sorted(r.get("skipReason") or "" for r in skipped)
        detail(f"skipped: {', '.join(reasons)}")
        expect(reasons == sorted(["offline"] + ["outside_maintenance_window"] * CLOSED_WINDOW), "skip reasons")

        say("A device's enrollment history (seed 000): GET /v2/clients/{client}/devices/{device}/deployments")
        history = self.json("devices", "history", "--client", client, devices[0])
        print(json.dumps(history, indent=2))
        expect(history["total_count"] >= 1 and history["data"][0]["status"] == "success", "history shows the enrollment")
        say("Starting an unsigned deployment: agents that pin a signer key refuse it, and nothing runs")
        unsigned = {**body, "name": "Unsigned — refused", "targetType": "devices",
                    "targetConfig": {"type": "devices", "deviceIds": [order[2]]}, "rolloutConfig": {"type": "immediate"}}
        (self.dir / "unsigned.json").write_text(json.dumps(unsigned))
        dep2 = self.json("deployments", "create", "--file", str(self.dir / "unsigned.json"))["id"]
        self.run("deployments", "initialize", dep2)
        self.run("deployments", "start", dep2)
        self.run("deployments", "watch", dep2, check=False)
        [rec] = self.json("deployments", "devices", dep2)["data"]
        expect(rec["status"] == "failed" and rec.get("error") == "signature", f"refused for its signature: {rec}")
        detail(f"{rec['deviceId']}: failed, reason {rec['error']}: {rec.get('output', '').strip()}")

        say(f"The story happened as told in {time.monotonic() - started:.0f}s. Stopping every process the demo started.")

    def _listening(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        log = self.dir / "coordinator.log"

        def ready() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise DemoFailed(f"the coordinator exited; see {log}")
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"listening"' in line:
                    return dict(json.loads(line))
            return None
        return dict(self.wait(ready, 30, "the coordinator to listen"))

    def _online(self, client: str) -> int:
        out = self.run("devices", "list", "--client", client, "-o", "json", check=False)
        if out.returncode != 0:
            return 0
        data = json.loads(out.stdout)
        rows = data["data"] if isinstance(data, dict) else data
        return sum(1 for d in rows if d.get("online"))


def main(keep: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="convoy-demo-"))
    demo = Demo(workdir, keep)
    try:
        demo.story()
        return 0
    except DemoFailed as exc:
        print(f"demo failed: {exc} (logs in {workdir})", file=sys.stderr)
        keep = True
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        demo.stop_all()
        if keep:
            print(f"(files kept in {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
