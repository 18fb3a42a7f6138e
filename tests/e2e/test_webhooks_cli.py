"""Webhooks as an operator sets them up: `convoy webhooks …` subprocesses against a real
`convoy coordinator serve` (TLS), a rollout run by real `convoy agent run` processes, and real
HTTP receivers on loopback: one up, one down at first, and one that only comes up while the
coordinator is SIGKILLed with its delivery still pending."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from tests.agents import wait_for
from tests.harness import CoordinatorProcess
from tests.real_agents import RealFleet
from tests.webhook_receiver import Received, Receiver, free_port


def _json(coord: CoordinatorProcess, *args: str) -> Any:
    return json.loads(coord.cli(*args, "-o", "json").stdout)


def _valid(r: Received, secret: str) -> bool:
    mac = hmac.new(secret.encode(), r.headers["x-convoy-timestamp"].encode() + b"." + r.body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + mac.hexdigest(), r.headers["x-convoy-signature"])


def _deploy(coord: CoordinatorProcess, tmp: Path) -> str:
    (tmp / "hello.sh").write_text('echo "hello from $CONVOY_DEVICE_ID"\n')
    sid = coord.cli("scripts", "create", "--name", "hello", "--interpreter", "sh", "--file", str(tmp / "hello.sh"),
                    "-q").stdout.strip()
    dep = coord.cli("deployments", "create", "--name", "hooked", "--script", sid, "--target-all", "--immediate",
                    "-q").stdout.strip()
    coord.cli("deployments", "initialize", dep)
    coord.cli("deployments", "start", dep)
    assert coord.cli("deployments", "watch", dep, check=False, timeout=120).returncode == 0
    return dep


def _deliveries(coord: CoordinatorProcess, hook_id: str) -> list[dict[str, Any]]:
    return list(_json(coord, "webhooks", "deliveries", hook_id, "--client", coord.client_id)["data"])


def test_webhooks_cli_a_real_rollout_and_a_receiver_that_comes_up_late(
        env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    up = Receiver()
    late_port = free_port()
    late: Receiver | None = None
    try:
        hook = _json(coord, "webhooks", "create", "--client", coord.client_id, "--url", up.url,
                     "--events", "deployment.completed,deployment.failed")
        assert hook["secret"].startswith("whsec_") and hook["events"] == ["deployment.completed", "deployment.failed"]
        secret_late = coord.cli("webhooks", "create", "--client", coord.client_id, "--url",
                                f"http://127.0.0.1:{late_port}/hook", "-q").stdout.strip()
        assert secret_late.startswith("whsec_")  # -q prints the secret, the one thing shown once
        listed = _json(coord, "webhooks", "list", "--client", coord.client_id)
        assert listed["total"] == 2 and all("secret" not in h for h in listed["data"])
        late_id = next(h["id"] for h in listed["data"] if h["id"] != hook["id"])
        table = coord.cli("webhooks", "list", "--client", coord.client_id).stdout
        assert up.url in table and secret_late not in table and hook["secret"] not in table

        fleet.add(2)
        dep = _deploy(coord, tmp_path)
        (done,) = wait_for(lambda: up.events("deployment.completed"), timeout=30, what="completed delivered")
        assert _valid(done, hook["secret"]) and done.json["deployment"]["id"] == dep
        assert done.json["deployment"]["progress"]["completed"] == 2
        assert [r.headers["x-convoy-event"] for r in up.events()] == ["deployment.completed"]  # its filter

        # The other receiver is down: its deliveries wait, with the error, and are retried.
        pending = wait_for(lambda: [d for d in _deliveries(coord, late_id) if d["attempts"] >= 1
                                    and d["last_error"]], timeout=30, what="a failed attempt")
        assert {d["status"] for d in pending} == {"pending"}
        late = Receiver(port=late_port)
        wait_for(lambda: {d["event_type"] for d in _deliveries(coord, late_id) if d["status"] == "delivered"}
                 >= {"deployment.started", "deployment.completed"}, timeout=40, what="delivered once it came up")
        got = {r.headers["x-convoy-event"]: r for r in late.events()}
        assert set(got) == {"deployment.started", "deployment.completed"}
        assert all(_valid(r, secret_late) for r in got.values())
        assert all(int(r.headers["x-convoy-attempt"]) >= 2 for r in got.values())

        out = coord.cli("webhooks", "delete", hook["id"], "--client", coord.client_id)
        assert "deleted webhook" in out.stdout
        assert [h["id"] for h in _json(coord, "webhooks", "list", "--client", coord.client_id)["data"]] == [late_id]
        missing = coord.cli("webhooks", "delete", hook["id"], "--client", coord.client_id, check=False)
        assert missing.returncode == 4 and "not found" in missing.stderr.lower()
        bad = coord.cli("webhooks", "create", "--client", coord.client_id, "--url", "file:///etc/passwd", check=False)
        assert bad.returncode == 2 and "http:// or https://" in bad.stderr and "Traceback" not in bad.stderr
        assert (coord.data_dir / "webhooks.key").stat().st_mode & 0o777 == 0o600
    finally:
        up.close()
        if late is not None:
            late.close()


def test_a_pending_delivery_survives_a_sigkill(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    port = free_port()
    secret = coord.cli("webhooks", "create", "--client", coord.client_id, "--url", f"http://127.0.0.1:{port}/h",
                       "--events", "deployment.completed", "-q").stdout.strip()
    (hook,) = _json(coord, "webhooks", "list", "--client", coord.client_id)["data"]
    fleet.add(1)
    dep = _deploy(coord, tmp_path)
    wait_for(lambda: [d for d in _deliveries(coord, hook["id"]) if d["attempts"] >= 1 and d["last_error"]],
             timeout=30, what="a failed attempt")

    grpc_port, http_port = coord.grpc_port, coord.http_port
    coord.kill()  # SIGKILL: nothing is flushed, the outbox row is all there is
    receiver = Receiver(port=port)
    try:
        coord.start(grpc_port=grpc_port, http_port=http_port)
        (got,) = wait_for(lambda: receiver.events(), timeout=40, what="delivered after the restart")
        assert _valid(got, secret) and got.json["type"] == "deployment.completed"
        assert got.json["deployment"]["id"] == dep
        wait_for(lambda: _deliveries(coord, hook["id"])[0]["status"] == "delivered", what="settled as delivered")
        assert len(receiver.events()) == 1
    finally:
        receiver.close()
