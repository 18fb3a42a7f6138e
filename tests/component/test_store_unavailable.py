"""A store that cannot be reached answers 503 / UNAVAILABLE with a clear message, never a 500."""

from __future__ import annotations

import grpc
import httpx

from common.convoy.v1 import admin_pb2 as pb
from tests.harness import InProcessCoordinator, rpc_code


def test_store_down_is_503_and_unavailable(coordinator: InProcessCoordinator) -> None:
    admin = coordinator.admin()
    assert admin.ListClients(pb.ListClientsRequest()).data
    store = coordinator.store
    good_url = store.engine.url
    from coordinator.store.db import make_engine

    broken = make_engine("sqlite:////nonexistent-dir/convoy.db")
    store.engine, store.read_engine = broken, broken
    store.sessions.configure(bind=broken)
    store.read_sessions.configure(bind=broken)
    try:
        assert rpc_code(admin.ListClients, pb.ListClientsRequest()) == grpc.StatusCode.UNAVAILABLE
        r = httpx.get(f"{coordinator.http_url}/v2/deployments", headers={"Authorization": f"Bearer {coordinator.token}"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "unavailable" and "try again" in r.json()["error"]["message"]
    finally:
        restored = make_engine(str(good_url))
        store.engine = restored
        store.read_engine = make_engine(str(good_url), for_reads=True)
        store.sessions.configure(bind=restored)
        store.read_sessions.configure(bind=store.read_engine)
