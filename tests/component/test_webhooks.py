"""Webhooks through a real coordinator (gRPC, REST, the engine, the delivery worker) on both
stores, to a real HTTP receiver on loopback: signed events of real rollouts run by scripted
devices, retries with backoff on the coordinator's clock, dead-lettering, and the API's refusals."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from common.clock import FakeClock
from common.convoy.v1 import admin_pb2 as pb
from coordinator.store import models as m
from tests.agents import always, wait_for
from tests.component.deploy_helpers import Rest, body, fleet, script
from tests.harness import InProcessCoordinator, rpc_code
from tests.webhook_receiver import Received, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def fake_any(db_url: str, tmp_path: Path) -> Iterator[InProcessCoordinator]:
    c = InProcessCoordinator(db_url=db_url, data_dir=tmp_path, clock=FakeClock(datetime.now().astimezone()))
    c.start()
    yield c
    c.stop()


def verified(r: Received, secret: str) -> bool:
    """What a receiver does: recompute the HMAC over timestamp "." body and compare in constant time."""
    want = "sha256=" + hmac.new(secret.encode(), r.headers["x-convoy-timestamp"].encode() + b"." + r.body,
                                hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, r.headers["x-convoy-signature"])


def _hook(rest: Rest, c: InProcessCoordinator, url: str, events: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = rest("POST", f"/clients/{c.client_id}/webhooks", 201,
                               json={"url": url, **({"events": events} if events is not None else {})})
    return out


def test_a_rollout_sends_started_and_completed_signed(coordinator_any: InProcessCoordinator,
                                                      receiver: Receiver) -> None:
    c = coordinator_any
    rest = Rest(c)
    hook = _hook(rest, c, receiver.url)
    assert hook["secret"].startswith("whsec_") and hook["events"] == []
    listed = rest("GET", f"/clients/{c.client_id}/webhooks")
    assert listed["total"] == 1 and "secret" not in listed["data"][0]
    with c.store.read() as s:  # at rest the secret is ciphertext
        row = s.get(m.Webhook, hook["id"])
        assert hook["secret"] not in row.secret_encrypted and row.secret_key_id == c.coordinator.app.webhook_keys.key_id

    agents = fleet(c, 2)
    dep = rest.launch(body(script(c), [a.device_id for a in agents]))
    rest.wait_status(dep, "completed")
    (done,) = wait_for(lambda: receiver.events("deployment.completed"), what="completed delivered")
    (started,) = receiver.events("deployment.started")
    for r in (started, done):
        assert verified(r, hook["secret"]), r.headers
        assert r.headers["content-type"] == "application/json" and r.headers["x-convoy-attempt"] == "1"
        assert r.headers["x-convoy-event-id"] == r.json["id"]
    event = done.json
    assert event["type"] == "deployment.completed" and event["clientId"] == c.client_id
    assert event["deployment"]["id"] == dep and event["deployment"]["status"] == "completed"
    assert event["deployment"]["progress"]["completed"] == 2
    assert not verified(done, "whsec_wrong")

    deliveries = wait_for(lambda: (d := rest("GET", f"/clients/{c.client_id}/webhooks/{hook['id']}/deliveries"))
                          and all(x["status"] == "delivered" for x in d["data"]) and d, what="settled")
    assert deliveries["total"] == 2
    assert {(x["eventType"], x["attempts"], x["lastStatusCode"]) for x in deliveries["data"]} == {
        ("deployment.started", 1, 200), ("deployment.completed", 1, 200)}
    metrics = httpx.get(f"{c.http_url}/metrics").text
    assert 'convoy_webhook_attempts_total{outcome="delivered"} 2.0' in metrics
    # gRPC sees the same
    grpc_rows = c.admin().ListWebhookDeliveries(pb.ListWebhookDeliveriesRequest(client_id=c.client_id,
                                                                               webhook_id=hook["id"]))
    assert grpc_rows.total == 2 and {d.status for d in grpc_rows.data} == {"delivered"}


def test_paused_by_a_threshold_carries_its_reason_and_filters_apply(coordinator: InProcessCoordinator,
                                                                    receiver: Receiver) -> None:
    c = coordinator
    rest = Rest(c)
    hook = _hook(rest, c, receiver.url, ["deployment.paused", "deployment.cancelled"])
    assert hook["events"] == ["deployment.paused", "deployment.cancelled"]
    agents = fleet(c, 3, always("failed"))
    dep = rest.launch(body(script(c), [a.device_id for a in agents],
                           staggered={"batchSize": 1, "batchDelayMinutes": 0, "pauseOnFailureCount": 1}))
    rest.wait_status(dep, "paused")
    (paused,) = wait_for(lambda: receiver.events("deployment.paused"), what="paused delivered")
    reason = paused.json["deployment"]["statusReason"]
    assert reason and "fail" in reason and paused.json["reason"] == reason
    rest("POST", f"/deployments/{dep}/cancel")
    (cancelled,) = wait_for(lambda: receiver.events("deployment.cancelled"), what="cancelled delivered")
    assert cancelled.json["reason"] == "cancelled by operator" and verified(cancelled, hook["secret"])
    assert {r.headers["x-convoy-event"] for r in receiver.events()} == {"deployment.paused", "deployment.cancelled"}


def _cancelled_to(c: InProcessCoordinator, receiver: Receiver, status: int) -> tuple[Rest, dict[str, Any], str]:
    """A webhook for cancellations to a receiver answering `status`, a deployment cancelled, and
    the first attempt made: the caller's REST client, the webhook and its deliveries' path."""
    rest = Rest(c)
    receiver.status = status
    hook = _hook(rest, c, receiver.url, ["deployment.cancelled"])
    agents = fleet(c, 1, always("hang"))
    dep = rest.launch(body(script(c), [a.device_id for a in agents]))
    rest("POST", f"/deployments/{dep}/cancel")
    wait_for(lambda: len(receiver.events()) == 1, what="first attempt")
    return rest, hook, f"/clients/{c.client_id}/webhooks/{hook['id']}/deliveries"


def test_a_failing_receiver_is_retried_with_backoff_then_dead(fake_any: InProcessCoordinator,
                                                              receiver: Receiver) -> None:
    c = fake_any
    rest, _, path = _cancelled_to(c, receiver, 500)

    def row() -> dict[str, Any]:
        return dict(rest("GET", path)["data"][0])

    def settled(n: int) -> bool:  # attempt n answered and written (its lease released)
        with c.store.read() as s:
            d = s.get(m.WebhookDelivery, row()["id"])
            return d is not None and d.attempts == n and d.lease_until is None

    wait_for(lambda: settled(1), what="first attempt settled")
    first = row()
    assert first["status"] == "pending" and first["attempts"] == 1 and "HTTP 500" in first["lastError"]
    c.advance(1.5)  # not yet: the first retry waits 2 s
    c.advance(0)
    assert len(receiver.events()) == 1
    for n, wait in enumerate([2, 4, 8, 16, 32, 64, 128, 256, 512], start=2):
        c.advance(wait - 1.5 if n == 2 else wait)
        wait_for(lambda n=n: len(receiver.events()) == n and settled(n), what=f"attempt {n}")
    wait_for(lambda: row()["status"] == "dead", what="dead")
    dead = row()
    assert dead["attempts"] == 10 and dead["nextAttemptAt"] is None and dead["lastStatusCode"] == 500
    assert [r.headers["x-convoy-attempt"] for r in receiver.events()] == [str(i) for i in range(1, 11)]
    assert len({r.headers["x-convoy-event-id"] for r in receiver.events()}) == 1  # one event, ten tries
    assert len({r.body for r in receiver.events()}) == 1  # the same body every time
    c.advance(7200)
    c.advance(0)
    assert len(receiver.events()) == 10
    assert rest("GET", path + "?status=dead")["total"] == 1


def test_a_receiver_that_recovers_gets_the_event(fake_any: InProcessCoordinator, receiver: Receiver) -> None:
    c = fake_any
    rest, hook, path = _cancelled_to(c, receiver, 503)
    wait_for(lambda: rest("GET", path)["data"][0]["lastStatusCode"] == 503, what="settled")
    receiver.status = 204
    c.advance(2)
    wait_for(lambda: rest("GET", path)["data"][0]["status"] == "delivered", what="delivered on retry")
    got = rest("GET", path)["data"][0]
    assert got["attempts"] == 2 and got["lastStatusCode"] == 204 and got["lastError"] is None
    assert all(verified(r, hook["secret"]) for r in receiver.events())


def test_the_api_refuses_what_it_must(coordinator: InProcessCoordinator) -> None:
    c = coordinator
    rest = Rest(c)
    base = f"/clients/{c.client_id}/webhooks"

    def err(method: str, path: str, status: int, **kw: Any) -> str:
        return str(rest(method, path, status, **kw)["error"]["message"])

    assert "http:// or https://" in err("POST", base, 400, json={"url": "ftp://x.example/"})
    assert "metadata" in err("POST", base, 400, json={"url": "http://169.254.169.254/latest/meta-data/"})
    assert "link-local" in err("POST", base, 400, json={"url": "http://[fe80::1]:80/"})
    assert "unknown event deployment.exploded" in err("POST", base, 400,
                                                      json={"url": "https://h.example/", "events": ["deployment.exploded"]})
    assert err("POST", base, 400, json={"url": "https://h.example/", "extra": 1})
    assert err("POST", base, 400, json={"url": 5})
    assert err("POST", base, 400, content=b"not json", headers={"content-type": "application/json"})
    assert "UUID" in err("GET", "/clients/nope/webhooks", 400)
    hook = _hook(rest, c, "https://h.example/")
    assert "not found" in err("DELETE", f"{base}/{'0' * 8}-0000-0000-0000-{'0' * 12}", 404).lower()
    assert err("GET", f"{base}/{hook['id']}/deliveries?status=lost", 400)
    assert err("GET", f"{base}/{hook['id']}/deliveries?limit=0", 400)

    anon = Rest(c, token="")
    assert anon("GET", base, 401)["error"]["code"] == "unauthenticated"
    assert anon("POST", base, 401, json={"url": 5})["error"]["code"] == "unauthenticated"  # auth before the body
    viewer = c.admin().CreateApiToken(pb.CreateApiTokenRequest(client_ids=[c.client_id], role="viewer")).token
    operator = c.admin().CreateApiToken(pb.CreateApiTokenRequest(client_ids=[c.client_id], role="operator")).token
    assert Rest(c, viewer)("GET", base, 403)["error"]["code"] == "forbidden"
    assert Rest(c, operator)("GET", base)["total"] == 1
    assert Rest(c, operator)("POST", base, 403, json={"url": "https://h.example/"})["error"]["code"] == "forbidden"
    assert Rest(c, operator)("DELETE", f"{base}/{hook['id']}", 403)

    other = c.admin().CreateClient(pb.CreateClientRequest(name="other")).id
    outsider = c.admin().CreateApiToken(pb.CreateApiTokenRequest(client_ids=[other], role="admin")).token
    assert Rest(c, outsider)("GET", base, 403)
    assert Rest(c, outsider)("DELETE", f"/clients/{other}/webhooks/{hook['id']}", 404)  # not in that client

    bad = c.admin(outsider)
    assert rpc_code(bad.ListWebhooks, pb.ListWebhooksRequest(client_id=c.client_id)) == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_code(c.admin().CreateWebhook, pb.CreateWebhookRequest(client_id=c.client_id, url="gopher://x/")) == (
        grpc.StatusCode.INVALID_ARGUMENT)
    assert rest("DELETE", f"{base}/{hook['id']}")["id"] == hook["id"]
    assert rest("GET", base)["total"] == 0


def test_openapi_has_typed_webhook_bodies(coordinator: InProcessCoordinator) -> None:
    spec = httpx.get(f"{coordinator.http_url}/openapi.json").json()
    base = "/v2/clients/{client_id}/webhooks"
    assert set(spec["paths"][base]) == {"get", "post"}
    assert set(spec["paths"][base + "/{webhook_id}"]) == {"delete"}
    assert set(spec["paths"][base + "/{webhook_id}/deliveries"]) == {"get"}
    post = spec["paths"][base]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/WebhookCreate")
    assert post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/CreatedWebhook")
    assert "422" not in post["responses"] and "400" in post["responses"]
    schemas = spec["components"]["schemas"]
    assert "secret" in schemas["CreatedWebhook"]["properties"] and "secret" not in schemas["Webhook"]["properties"]
    assert set(schemas["WebhookDelivery"]["properties"]["status"]["enum"]) == {"pending", "delivered", "dead"}


def test_a_metadata_address_is_refused_at_delivery_too(coordinator: InProcessCoordinator) -> None:
    """A webhook made while --webhooks-allow-link-local was on (here: written to the store) is
    refused at every attempt once the coordinator runs without it: nothing is sent there."""
    c = coordinator
    rest = Rest(c)
    hook = _hook(rest, c, "http://127.0.0.1:9/hook", ["deployment.started"])
    with c.store.tx() as s:
        s.get(m.Webhook, hook["id"]).url = "http://169.254.169.254/latest/meta-data/"
    agents = fleet(c, 1)
    rest.launch(body(script(c), [a.device_id for a in agents]))
    path = f"/clients/{c.client_id}/webhooks/{hook['id']}/deliveries"
    got = wait_for(lambda: (d := rest("GET", path)["data"]) and d[0]["lastError"] and d[0], what="refused attempt")
    assert "refused: 169.254.169.254 is a cloud metadata address" in got["lastError"]
    assert got["status"] == "pending" and got["lastStatusCode"] is None
