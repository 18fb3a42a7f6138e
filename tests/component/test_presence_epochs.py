"""(issue 10, item 3) Presence with connection epochs: two coordinators (replicas) on one store.

A device's row remembers which stream holds it (connection id, accepted at). A disconnect, a
missed-heartbeat close, or a heartbeat write on the replica the device left never touches the
row the device's newer stream (on the other replica) holds; and the sweep for devices whose
coordinator died leaves alone those another replica keeps alive. Both backends (`db_url`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from coordinator.store import models as m
from tests.agents import ScriptedAgent, wait_for
from tests.component.deploy_helpers import body, fleet, script
from tests.harness import InProcessCoordinator

# Sweeps every 0.5 s, offline after 3 s silent: fast, with room for a loaded machine. Every
# stream here heartbeats (`_beat`), so only what a test does ends one.
FAST = {"heartbeat_interval_s": 0.5, "offline_after_missed": 6}


@pytest.fixture
def beats() -> Iterator[list[Any]]:
    stops: list[Any] = []
    yield stops
    for stop in stops:
        stop.set()


def _beat(beats: list[Any], *agents: ScriptedAgent) -> None:
    for agent in agents:
        beats.append(agent.start_heartbeats(0.1))


@pytest.fixture
def replicas(db_url: str, tmp_path: Path) -> Iterator[tuple[InProcessCoordinator, InProcessCoordinator]]:
    a = InProcessCoordinator(db_url=db_url, data_dir=tmp_path / "a", **FAST)
    a.start()
    b = InProcessCoordinator(db_url=db_url, data_dir=tmp_path / "b", **FAST)
    b.start(bootstrap=False)
    b.token, b.client_id = a.token, a.client_id
    yield a, b
    b.stop()
    a.stop()


def _row(c: InProcessCoordinator, device_id: str) -> Any:
    with c.store.read() as s:
        return s.execute(select(m.Device.online, m.Device.connection_id, m.Device.connected_at)
                         .where(m.Device.id == device_id)).one()


def _flush(c: InProcessCoordinator) -> None:
    c.run(c.coordinator.app.hub._flush_once())


def _twin(agent: ScriptedAgent, target: str) -> ScriptedAgent:
    """The same device (same credential) opening a stream to another replica."""
    return ScriptedAgent(target, agent.name, agent.outcome, device_id=agent.device_id, credential=agent.credential)


def _online_via_api(c: InProcessCoordinator, device_id: str) -> bool:
    from common.convoy.v1 import admin_pb2 as pb

    resp = c.admin().ListDevices(pb.ListDevicesRequest(client_id=c.client_id, limit=500))
    return any(d.id == device_id and d.online for d in resp.data)


def test_late_disconnect_on_the_old_replica_leaves_the_device_online(
        replicas: tuple[InProcessCoordinator, InProcessCoordinator], beats: list[Any]) -> None:
    a, b = replicas
    [on_a] = fleet(a, 1)
    _beat(beats, on_a)
    held_by_a = _row(a, on_a.device_id).connection_id
    assert held_by_a
    # The device reconnects through B while A has not noticed its stream ended (half-open):
    on_b = _twin(on_a, b.grpc_target)
    on_b.connect()
    _beat(beats, on_b)
    wait_for(lambda: _row(b, on_a.device_id).connection_id not in (None, held_by_a), what="B's hello written")
    held_by_b = _row(b, on_a.device_id).connection_id
    # ... then A sees the old stream end and writes its disconnect, late.
    on_a.disconnect()
    wait_for(lambda: on_a.device_id not in a.coordinator.app.hub.connections, what="A unregistered the stream")
    _flush(a)
    time.sleep(0.3)
    row = _row(a, on_a.device_id)
    assert row.online is True and row.connection_id == held_by_b
    assert _online_via_api(a, on_a.device_id) and _online_via_api(b, on_a.device_id)
    # A's sweeps (every 0.5 s, offline after 3 s silent) run meanwhile: B's stream keeps the row
    # fresh (its heartbeats are written, the row is its), so no replica's sweep takes it offline.
    time.sleep(4.0)
    assert _row(a, on_a.device_id).online is True
    # The stream that holds the row ends: the device goes offline (the guard is not a blanket no).
    on_b.disconnect()
    wait_for(lambda: _row(b, on_a.device_id).online is False, what="offline after B's stream ended")
    assert _row(b, on_a.device_id).connection_id is None


def test_an_older_hello_flushed_late_does_not_take_the_row(
        replicas: tuple[InProcessCoordinator, InProcessCoordinator], beats: list[Any]) -> None:
    from coordinator.api.hub import Connection, _Hello

    a, b = replicas
    [dev] = fleet(b, 1)
    _beat(beats, dev)
    newer = _row(b, dev.device_id)
    hub_a = a.coordinator.app.hub
    # A accepted a stream from this device before B did; its hello is only written now.
    stale = Connection(dev.device_id, accepted_at=newer.connected_at - timedelta(seconds=5))
    hub_a.connections[dev.device_id] = stale
    try:
        a.run(a.coordinator.app.run(hub_a._write_presence, [_Hello(dev.device_id, {}, [], "old", stale)], {},
                                    a.coordinator.app.clock.now()))
        assert _row(a, dev.device_id).connection_id == newer.connection_id
        # ... and its end does not take the device offline either.
        del hub_a.connections[dev.device_id]
        a.run(a.coordinator.app.run(hub_a._write_presence, [], {dev.device_id: stale}, a.coordinator.app.clock.now()))
        assert _row(a, dev.device_id).online is True
    finally:
        hub_a.connections.pop(dev.device_id, None)
    dev.disconnect()


def test_a_deployment_reaches_a_device_that_moved_replicas(
        replicas: tuple[InProcessCoordinator, InProcessCoordinator], beats: list[Any]) -> None:
    """Through the public interface: the device moved from A to B, then A's late disconnect; it
    is online, so a deployment started through B (which holds its stream) runs on it."""
    import httpx

    a, b = replicas
    [on_a] = fleet(a, 1)
    _beat(beats, on_a)
    held_by_a = _row(a, on_a.device_id).connection_id
    on_b = _twin(on_a, b.grpc_target)
    on_b.connect()
    _beat(beats, on_b)
    wait_for(lambda: _row(b, on_a.device_id).connection_id not in (None, held_by_a), what="B's hello written")
    on_a.disconnect()
    wait_for(lambda: on_a.device_id not in a.coordinator.app.hub.connections, what="A unregistered the stream")
    _flush(a)
    http = httpx.Client(base_url=b.http_url + "/v2", headers={"Authorization": f"Bearer {b.token}"}, timeout=30)
    dep = http.post("/deployments", json=body(script(b), [on_a.device_id])).json()
    assert http.post(f"/deployments/{dep['id']}/initialize").status_code == 200
    assert http.post(f"/deployments/{dep['id']}/start").status_code == 200
    done = wait_for(lambda: (d := http.get(f"/deployments/{dep['id']}").json())["status"] == "completed" and d,
                    timeout=20, what="deployment completed")
    assert done["status"] == "completed"
    assert on_b.executions[dep["id"]] == 1 and on_a.executions[dep["id"]] == 0
    on_b.disconnect()


def test_a_device_swept_offline_by_another_replica_is_revived_by_its_live_stream(
        replicas: tuple[InProcessCoordinator, InProcessCoordinator], beats: list[Any]) -> None:
    """B could not write for longer than the offline limit (a store outage): A's sweep for
    devices whose coordinator died took B's device offline. B's stream is alive and heartbeating,
    so B's next heartbeat write (guarded by the stream's connection id) makes it online again."""
    a, b = replicas
    [dev] = fleet(b, 1)
    hub_a = a.coordinator.app.hub
    later = a.coordinator.app.clock.now() + timedelta(hours=1)

    def sweep() -> None:
        with a.store.tx() as s:
            hub_a._stale(s, later)  # everything looks silent to A: the real sweep, an hour on

    a.run(a.coordinator.app.run(sweep))
    assert _row(a, dev.device_id).online is False
    _beat(beats, dev)
    wait_for(lambda: _row(b, dev.device_id).online is True, timeout=5, what="revived by B's heartbeat write")
    dev.disconnect()
    wait_for(lambda: _row(b, dev.device_id).online is False, what="offline after its stream ended")
    # ... and once its stream has ended, no heartbeat write brings it back.
    time.sleep(1.0)
    assert _row(b, dev.device_id).online is False


def _devices_updates(c: InProcessCoordinator, fn: Any) -> list[tuple[str, Any]]:
    """The UPDATE statements on `devices` (SQL, parameters) the store runs while `fn` runs."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE DEVICES"):
            seen.append((statement, parameters))

    engine = c.store.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_the_heartbeat_write_is_one_statement_whatever_the_fleet(
        replicas: tuple[InProcessCoordinator, InProcessCoordinator], beats: list[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """(issue 14) One UPDATE by replica id per tick, not an IN-list of every connected device."""
    a, _b = replicas
    devs = fleet(a, 12)
    _beat(beats, *devs)
    app = a.coordinator.app
    # The hub's own ticks held still, so the one tick counted is the one this test runs.
    touch = app.hub._touch
    monkeypatch.setattr(app.hub, "_touch", lambda now: None)
    time.sleep(FAST["heartbeat_interval_s"] * 2)  # a tick already under way has ended
    before = {d.device_id: _seen_at(a, d.device_id) for d in devs}
    time.sleep(0.01)
    updates = _devices_updates(a, lambda: a.run(app.run(touch, app.clock.now())))
    assert len(updates) == 1, updates
    sql, params = updates[0]
    assert "replica_id" in sql and " IN " not in sql.upper()
    assert len(params) <= 4  # now, the replica id, the hub's start: no device ids
    assert all(_seen_at(a, d.device_id) > before[d.device_id] for d in devs)
    for d in devs:
        d.disconnect()


def _seen_at(c: InProcessCoordinator, device_id: str) -> Any:
    with c.store.read() as s:
        return s.scalar(select(m.Device.last_seen_at).where(m.Device.id == device_id))


def test_a_restarted_replica_does_not_mark_its_old_devices_online(
        replicas: tuple[InProcessCoordinator, InProcessCoordinator], beats: list[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica restarted under the same id (a new hub on the same store) finds rows its previous
    run's hellos wrote (its replica id): its heartbeat write leaves them offline; only streams it
    accepted itself count. The live hub that wrote them still revives them (not a blanket no)."""
    from coordinator.api.hub import Hub

    a, b = replicas
    [dev] = fleet(a, 1)
    app = a.coordinator.app
    with a.store.read() as s:
        assert s.scalar(select(m.Device.replica_id).where(m.Device.id == dev.device_id)) == app.replica_id
    # The live hub's own ticks held still while the restarted one is looked at (a tick of the
    # live hub between the offline write and the assertion would revive the row, rightly) ...
    live_touch = app.hub._touch
    monkeypatch.setattr(app.hub, "_touch", lambda now: None)
    time.sleep(FAST["heartbeat_interval_s"] * 2)  # a tick already under way has ended
    # ... another replica's sweep took it offline (its coordinator looked dead) ...
    with a.store.tx() as s:
        s.execute(m.Device.__table__.update().where(m.Device.id == dev.device_id).values(online=False))
    # ... and the same replica id comes back: a new hub, started after the device's hello.
    time.sleep(0.01)
    restarted = Hub(app)
    a.run(app.run(restarted._touch, app.clock.now()))
    assert _row(a, dev.device_id).online is False
    # The hub whose stream holds the row (it is alive here) writes it online with its next tick.
    monkeypatch.setattr(app.hub, "_touch", live_touch)
    _beat(beats, dev)
    wait_for(lambda: _row(b, dev.device_id).online is True, timeout=5, what="revived by the live hub")
    dev.disconnect()
    wait_for(lambda: _row(b, dev.device_id).online is False, what="offline after its stream ended")
    with a.store.read() as s:
        assert s.scalar(select(m.Device.replica_id).where(m.Device.id == dev.device_id)) is None
