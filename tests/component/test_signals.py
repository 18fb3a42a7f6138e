"""Cross-replica signals (coordinator/store/signals.py) on both backends: what one replica
publishes another hears, nobody hears itself, big id sets are cut under PostgreSQL's payload
limit, and a listener whose PostgreSQL connection dies reconnects and asks for a resync."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from coordinator.store.signals import (
    PAYLOAD_LIMIT,
    PgSignals,
    Subscriber,
    open_signals,
    parse,
    payloads,
)


class Inbox:
    def __init__(self) -> None:
        self.devices: list[str] = []
        self.deployments: list[str] = []
        self.resyncs = 0

    def subscriber(self) -> Subscriber:
        def resync() -> None:
            self.resyncs += 1
        return Subscriber(devices=self.devices.extend, deployments=self.deployments.extend, resync=resync)


async def until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def run_pair(db_url: str, body: Callable[[Any, Any, Inbox, Inbox], Awaitable[None]]) -> None:
    async def main() -> None:
        a, b = open_signals(db_url, "replica-a"), open_signals(db_url, "replica-b")
        inbox_a, inbox_b = Inbox(), Inbox()
        a.subscribe(inbox_a.subscriber())
        b.subscribe(inbox_b.subscriber())
        await a.start()
        await b.start()
        try:
            await body(a, b, inbox_a, inbox_b)
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())


def test_payloads_are_cut_under_the_limit() -> None:
    ids = [str(uuid.uuid4()) for _ in range(1000)]
    out = payloads("replica-a", ids)
    assert len(out) > 1 and all(len(p.encode()) <= PAYLOAD_LIMIT for p in out)
    back: list[str] = []
    for p in out:
        origin, part = parse(p)
        assert origin == "replica-a"
        back.extend(part)
    assert sorted(back) == sorted(ids)
    assert payloads("x", []) == []


def test_a_replica_hears_the_others_and_not_itself(db_url: str) -> None:
    async def body(a: Any, b: Any, inbox_a: Inbox, inbox_b: Inbox) -> None:
        devices = [str(uuid.uuid4()) for _ in range(3)]
        dep = str(uuid.uuid4())
        a.publish_devices(devices)
        a.publish_deployments([dep])
        await until(lambda: sorted(inbox_b.devices) == sorted(devices) and inbox_b.deployments == [dep],
                    what="b hears a")
        b.publish_deployments(["other"])
        await until(lambda: inbox_a.deployments == ["other"], what="a hears b")
        await asyncio.sleep(0.3)
        assert inbox_a.devices == [] and inbox_b.deployments == [dep]  # nobody hears itself
    run_pair(db_url, body)


def test_many_ids_arrive_whole(db_url: str) -> None:
    async def body(a: Any, b: Any, _inbox_a: Inbox, inbox_b: Inbox) -> None:
        devices = [str(uuid.uuid4()) for _ in range(2000)]  # ~74 kB of ids: many payloads
        a.publish_devices(devices[:1000])
        a.publish_devices(devices[1000:])
        await until(lambda: len(inbox_b.devices) >= 2000, what="every id")
        assert sorted(inbox_b.devices) == sorted(devices)
        assert b.received >= 10
    run_pair(db_url, body)


def test_listener_reconnects_and_resyncs_after_its_connection_dies(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's LISTEN connection (SQLite signals are in memory)")
    from sqlalchemy import create_engine, text

    async def body(a: Any, b: Any, _inbox_a: Inbox, inbox_b: Inbox) -> None:
        assert isinstance(b, PgSignals)
        assert inbox_b.resyncs == 1  # the first LISTEN
        engine = create_engine(db_url)
        with engine.begin() as c:  # what a PostgreSQL restart does to every connection of b
            killed = c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE application_name LIKE 'convoy-signals replica-b%'")).all()
        engine.dispose()
        assert killed
        await until(lambda: inbox_b.resyncs >= 2 and b.listening.is_set(), timeout=10, what="reconnect + resync")
        assert b.reconnects >= 1
        dep = str(uuid.uuid4())
        a.publish_deployments([dep])
        await until(lambda: dep in inbox_b.deployments, what="signals after the reconnect")
    run_pair(db_url, body)


def test_a_signal_in_a_transaction_is_sent_at_commit_and_never_on_rollback(db_url: str) -> None:
    from coordinator.store.db import Store

    store = Store.open(db_url)

    async def body(a: Any, _b: Any, _inbox_a: Inbox, inbox_b: Inbox) -> None:
        heard_before_commit: list[int] = []

        def rolled_back() -> None:
            try:
                with store.tx() as s:
                    a.in_transaction(s, devices=["dev-rolled-back"])
                    raise RuntimeError("the change failed")
            except RuntimeError:
                pass

        def committed() -> None:
            with store.tx() as s:
                a.in_transaction(s, devices=["dev-committed"], deployments=["dep-committed"])
                time.sleep(0.3)
                heard_before_commit.append(len(inbox_b.devices))

        await asyncio.to_thread(rolled_back)
        await asyncio.to_thread(committed)
        await until(lambda: inbox_b.devices == ["dev-committed"] and inbox_b.deployments == ["dep-committed"],
                    what="the committed signal")
        assert heard_before_commit == [0]
        await asyncio.sleep(0.3)
        assert "dev-rolled-back" not in inbox_b.devices
    try:
        run_pair(db_url, body)
    finally:
        store.close()


def test_jobs_signalled_while_a_replica_was_not_listening_reach_its_agents_after_the_resync(
        db_url: str, tmp_path: Any) -> None:
    """Two coordinators on one PostgreSQL database (as two replicas); B's listener is stopped
    (what a lost connection does to it), A dispatches to B's device: nothing arrives. When B
    listens again its resync re-reads the device's desired state from the store and sends it."""
    if not db_url.startswith("postgresql"):
        pytest.skip("two coordinators on one store: PostgreSQL")
    from tests.agents import always, wait_for
    from tests.component.deploy_helpers import Rest, body, fleet, script
    from tests.harness import InProcessCoordinator

    a = InProcessCoordinator(db_url, tmp_path / "a", replica_id="replica-a")
    b = InProcessCoordinator(db_url, tmp_path / "b", replica_id="replica-b")
    a.start()
    b.start(bootstrap=False)
    b.token, b.client_id = a.token, a.client_id
    try:
        [agent] = fleet(b, 1, always("completed"))
        signals = b.coordinator.app.signals
        assert isinstance(signals, PgSignals)

        async def stop_listening() -> None:  # the listener task only: publishing still works
            listener = signals._tasks[0]
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            signals.listening.clear()
        b.run(stop_listening())
        rest = Rest(a)
        dep_id = rest.launch(body(script(a), [agent.device_id]))
        time.sleep(1.5)
        assert agent.jobs == []  # the signal went to nobody
        assert rest("GET", f"/deployments/{dep_id}")["status"] != "completed"

        async def listen_again() -> None:
            signals._tasks[0] = asyncio.create_task(signals._listen_loop())
        b.run(listen_again())
        wait_for(lambda: agent.jobs, timeout=10, what="the job, after B's resync")
        done = rest.wait_status(dep_id, "completed")
        assert done["progress"]["completed"] == 1 and agent.executions[dep_id] == 1
    finally:
        b.stop()
        a.stop()
