"""/metrics (parsed as Prometheus text), /healthz, /readyz and gRPC health, against a running
coordinator with scripted devices on real streams; and a store outage seen by all of them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from common import transport
from common.convoy.v1 import admin_pb2 as pb
from tests.agents import always, wait_for
from tests.component.deploy_helpers import Rest, body, fleet, script, wait_reported
from tests.harness import InProcessCoordinator, rpc_code


def scrape(c: InProcessCoordinator) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{c.http_url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@contextmanager
def store_down(c: InProcessCoordinator) -> Iterator[None]:
    """Point the running coordinator's store at a path that cannot exist, then restore it."""
    from coordinator.store.db import make_engine

    store = c.store
    good_url = str(store.engine.url)
    broken = make_engine("sqlite:////nonexistent-dir/convoy.db")
    store.engine, store.read_engine = broken, broken
    store.sessions.configure(bind=broken)
    store.read_sessions.configure(bind=broken)
    try:
        yield
    finally:
        store.engine = make_engine(good_url)
        store.read_engine = make_engine(good_url, for_reads=True)
        store.sessions.configure(bind=store.engine)
        store.read_sessions.configure(bind=store.read_engine)


def grpc_health(c: InProcessCoordinator, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(transport.sync_channel(c.grpc_target, transport.PLAINTEXT))
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def test_metrics_follow_a_rollout(coordinator: InProcessCoordinator) -> None:
    agents = fleet(coordinator, 4)
    flaky = fleet(coordinator, 1, always("failed"), prefix="bad")
    rest = Rest(coordinator)
    dep_id = rest.launch(body(script(coordinator), [a.device_id for a in agents + flaky]))
    rest.wait_status(dep_id, "failed", "completed")
    rest("GET", f"/deployments/{dep_id}")
    httpx.get(f"{coordinator.http_url}/v2/deployments/{dep_id}")  # no token: a 401

    s = scrape(coordinator)
    assert value(s, "convoy_agents_connected") == 5
    assert value(s, "convoy_devices", online="true") == 5
    assert value(s, "convoy_deployments", status="completed") == 1
    assert value(s, "convoy_deployment_records", status="completed") == 4
    assert value(s, "convoy_deployment_records", status="failed") == 1
    assert value(s, "convoy_dispatches_total") == 5
    assert value(s, "convoy_install_timeouts_total") == 0
    assert value(s, "convoy_enrollments_total", outcome="success") == 5
    assert value(s, "convoy_enrollments_pending") == 0
    # each device sends downloading, installing and a final status
    assert value(s, "convoy_reports_received_total") == 20  # received, downloading, installing, completed x 5
    assert value(s, "convoy_reports_flushed_total") == 20
    assert value(s, "convoy_reports_queued") == 0
    assert value(s, "convoy_report_flush_duration_seconds_count") >= 1
    assert value(s, "convoy_store_up") == 1
    assert value(s, "convoy_signals_listening") == 1 and value(s, "convoy_engine_skipped_total") == 0
    route = "/v2/deployments/{dep_id}"
    assert value(s, "convoy_http_requests_total", route=route, method="GET", code="200") >= 2
    assert value(s, "convoy_http_requests_total", route=route, method="GET", code="401") == 1
    assert value(s, "convoy_http_request_duration_seconds_count", route=route, method="GET") >= 3
    assert value(s, "convoy_grpc_requests_total", method="/convoy.v1.AgentService/Enroll", code="OK") == 5
    assert value(s, "convoy_grpc_request_duration_seconds_count", method="/convoy.v1.AgentService/Enroll") == 5


def test_grafana_sample_uses_only_metrics_we_serve(coordinator: InProcessCoordinator) -> None:
    import re
    from pathlib import Path

    r = httpx.get(f"{coordinator.http_url}/metrics")
    served = {f.name for f in text_string_to_metric_families(r.text)}
    served |= {name + "_total" for name in served}  # counters are declared without the suffix
    dashboard = (Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text()
    used = {re.sub(r"_(bucket|count|sum)$", "", m) for m in re.findall(r"convoy_[a-z_]+", dashboard)}
    assert used and used <= served, used - served


def test_install_timeouts_are_counted(fake_clock_coordinator: InProcessCoordinator) -> None:
    c = fake_clock_coordinator
    [agent] = fleet(c, 1, always("hang"))
    rest = Rest(c)
    dep_id = rest.launch(body(script(c), [agent.device_id], timeout=10))
    wait_for(lambda: len(agent.jobs) == 1, what="dispatch")
    wait_reported(c, agent.device_id, "downloading")
    c.advance(10 * 60 + 1)
    rest.wait_status(dep_id, "failed")
    s = scrape(c)
    assert value(s, "convoy_install_timeouts_total") == 1 and value(s, "convoy_dispatches_total") == 1


def test_grpc_error_codes_are_counted(coordinator: InProcessCoordinator) -> None:
    assert rpc_code(coordinator.admin("cvy_api_wrong").ListClients, pb.ListClientsRequest()) == grpc.StatusCode.UNAUTHENTICATED
    rpc_code(coordinator.admin().GetDeployment, pb.DeploymentRef(id="00000000-0000-0000-0000-000000000000"))
    s = scrape(coordinator)
    assert value(s, "convoy_grpc_requests_total", method="/convoy.v1.AdminService/ListClients",
                 code="UNAUTHENTICATED") == 1
    assert value(s, "convoy_grpc_requests_total", method="/convoy.v1.AdminService/GetDeployment", code="NOT_FOUND") == 1


def test_health_readiness_and_a_store_outage(coordinator: InProcessCoordinator, caplog: pytest.LogCaptureFixture) -> None:
    replica = coordinator.coordinator.app.replica_id
    assert replica  # generated when not given (tests/e2e/test_replicas.py gives one)
    assert httpx.get(f"{coordinator.http_url}/healthz").json() == {"status": "ok", "replica": replica}
    ready = httpx.get(f"{coordinator.http_url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "replica": replica, "store": "ok",
                                                         "migrations": "current"}
    serving = health_pb2.HealthCheckResponse.SERVING
    assert grpc_health(coordinator) == serving
    assert grpc_health(coordinator, "convoy.v1.AgentService") == serving

    caplog.set_level(logging.INFO)
    with store_down(coordinator):
        r = httpx.get(f"{coordinator.http_url}/readyz")
        assert r.status_code == 503 and r.json()["status"] == "not ready"
        assert r.json()["store"].startswith("unreachable") and r.json()["migrations"] == "unknown"
        assert httpx.get(f"{coordinator.http_url}/healthz").status_code == 200  # alive, not ready
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        wait_for(lambda: grpc_health(coordinator) == not_serving, timeout=10, what="gRPC health NOT_SERVING")
        assert grpc_health(coordinator, "convoy.v1.AdminService") == not_serving
        rest = httpx.get(f"{coordinator.http_url}/v2/deployments", headers={"Authorization": f"Bearer {coordinator.token}"})
        assert rest.status_code == 503
        assert value(scrape(coordinator), "convoy_store_up") == 0
    # the 503 is answered cleanly and logged as one warning, never as an ASGI traceback
    assert "Exception in ASGI application" not in caplog.text
    assert not [rec for rec in caplog.records if rec.exc_info and rec.name.startswith("uvicorn")]
    wait_for(lambda: grpc_health(coordinator) == health_pb2.HealthCheckResponse.SERVING, timeout=10,
             what="gRPC health SERVING again")
    assert httpx.get(f"{coordinator.http_url}/readyz").status_code == 200
