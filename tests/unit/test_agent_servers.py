"""(issue 10, item 4) The agent's coordinator addresses: parsing, DNS expansion, rotation, the
backoff over several addresses, and agent.json's back-compat (one `server`)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.daemon import EXIT_UNAUTHENTICATED, RECONNECT_MIN, RECONNECT_WINDOW, Daemon, Dialer
from agent.servers import Endpoint, Rotation, expand, parse_servers
from agent.state import AgentIdentity, StateDir
from common import transport
from tests.unit.test_reconnect_backoff import RecordingClock


def test_parse_servers_lists_addresses_in_order_without_duplicates() -> None:
    assert parse_servers("a:7443") == ["a:7443"]
    assert parse_servers(" a:7443, b.example:7444 ,a:7443,") == ["a:7443", "b.example:7444"]
    assert parse_servers(["a:1,b:2", "c:3"]) == ["a:1", "b:2", "c:3"]
    assert parse_servers("[::1]:7443,10.0.0.5:7443") == ["[::1]:7443", "10.0.0.5:7443"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "no coordinator address"),
    (" , ", "no coordinator address"),
    ("a", "'a': expected HOST:PORT"),
    ("a:7443,b", "'b': expected HOST:PORT"),
    ("a:http", "expected HOST:PORT"),
    ("a:0", "port 1-65535"),
    ("a:70000", "port 1-65535"),
    (":7443", "expected HOST:PORT"),
    ("::1:7443", "[ADDRESS]:PORT"),
])
def test_parse_servers_names_the_bad_entry(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=None) as exc:
        parse_servers(text)
    assert fragment in str(exc.value)


def test_a_name_resolving_to_several_addresses_is_one_endpoint_each_with_its_tls_name() -> None:
    def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("coord.example", 7443)
        return ["10.0.0.1", "10.0.0.2", "fd00::3"]

    eps = expand("coord.example:7443", resolver)
    assert [e.target for e in eps] == ["10.0.0.1:7443", "10.0.0.2:7443", "[fd00::3]:7443"]
    assert all(e.address == "coord.example:7443" and e.tls_name == "coord.example" for e in eps)
    # The certificate is checked for the name, whatever address is dialled.
    assert ("grpc.ssl_target_name_override", "coord.example") in eps[0].channel_options


def test_ip_literals_one_address_names_and_unresolvable_names_are_dialled_as_given() -> None:
    def boom(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    assert expand("10.0.0.9:7443", boom) == [Endpoint("10.0.0.9:7443", "10.0.0.9:7443")]
    assert expand("[::1]:7443", boom) == [Endpoint("[::1]:7443", "[::1]:7443")]
    assert expand("gone.example:7443", boom) == [Endpoint("gone.example:7443", "gone.example:7443")]
    assert expand("one.example:7443", lambda h, p: ["10.0.0.1"]) == [Endpoint("one.example:7443", "one.example:7443")]
    assert Endpoint("one.example:7443", "one.example:7443").channel_options == []


def test_rotation_cycles_and_resolves_names_again_each_round() -> None:
    answers = [["10.0.0.1", "10.0.0.2"], ["10.0.0.2", "10.0.0.3"]]
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    r = Rotation(["10.9.9.9:1", "dns.example:2"], resolver)
    seen = [r.current.target]
    for _ in range(4):
        seen.append(r.advance().target)
    assert seen == ["10.9.9.9:1", "10.0.0.1:2", "10.0.0.2:2", "10.9.9.9:1", "10.0.0.2:2"]
    assert calls == ["dns.example", "dns.example"]  # once at start, once per new round
    assert r.advance().target == "10.0.0.3:2"


def test_an_old_agent_json_with_one_server_still_loads(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.save(AgentIdentity(server="x", device_id="d", client_id="c", machine_id="m"), "cred")
    old = {"server": "coord:7443", "device_id": "d", "client_id": "c", "machine_id": "m",
           "agent_version": "0.0.9", "tags": [], "site": "", "insecure": True}
    state.identity_path.write_text(json.dumps(old))
    identity, cred = state.load()
    assert identity.addresses == ["coord:7443"] and cred == "cred"
    # A new one stores the list, and `server` (its first address) for older readers.
    state.save(AgentIdentity(server="a:1", servers=["a:1", "b:2"], device_id="d", client_id="c", machine_id="m"), "c2")
    data = json.loads(state.identity_path.read_text())
    assert data["servers"] == ["a:1", "b:2"] and data["server"] == "a:1"
    assert state.load()[0].addresses == ["a:1", "b:2"]


def _failover_daemon(tmp_path: Path, outcomes: dict[str, list[bool | None]]) -> tuple[Daemon, RecordingClock, list[str]]:
    """A daemon whose sessions are scripted per address: True welcomed then broke, False refused,
    None: stop the agent."""
    clock = RecordingClock()
    d = Daemon(StateDir(tmp_path), clock=clock, rng=random.Random(3))  # type: ignore[arg-type]
    d.identity = AgentIdentity(server="a:1", device_id="d", client_id="c", machine_id="m")
    tried: list[str] = []
    dialer = Dialer(Rotation(["10.0.0.1:1", "10.0.0.2:1"]), transport.PLAINTEXT)

    async def session(stub: Any, _md: Any) -> bool:
        target = dialer.endpoint.target
        tried.append(target)
        step = outcomes[target].pop(0) if outcomes[target] else None
        if step is None:
            d.stop()
            return False
        d._welcomed = step
        raise ConnectionError("refused" if not step else "stream broke")

    d._session = session  # type: ignore[method-assign]

    async def go() -> int:
        try:
            return await d.connect_loop(None, (), dialer)
        finally:
            await dialer.close()

    d.go = go  # type: ignore[attr-defined]
    return d, clock, tried


def test_a_dead_address_is_left_for_the_next_after_one_short_wait(tmp_path: Path) -> None:
    # A is down from the start; B welcomes, and breaks twice (each time: back to A, which is
    # down, then B again). The backoff grows per round over the two, and resets on B's welcome.
    d, clock, tried = _failover_daemon(tmp_path, {"10.0.0.1:1": [False, False, False],
                                                  "10.0.0.2:1": [True, True, None]})
    assert asyncio.run(d.go()) == 0  # type: ignore[attr-defined]
    assert tried == ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.1:1", "10.0.0.2:1", "10.0.0.1:1", "10.0.0.2:1"]
    # after A refused: attempt 1 of a round of 2 (round 0); after B broke: a welcomed stream's
    # first retry (round 0): every wait is within the first window (full jitter, 0-3 s)
    assert len(clock.waits) == 5 and all(RECONNECT_MIN <= w <= RECONNECT_WINDOW for w in clock.waits), clock.waits


def test_the_backoff_grows_per_round_when_every_address_is_down(tmp_path: Path) -> None:
    d, clock, tried = _failover_daemon(tmp_path, {"10.0.0.1:1": [False] * 4, "10.0.0.2:1": [False] * 4})
    asyncio.run(d.go())  # type: ignore[attr-defined]
    assert tried[:4] == ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.1:1", "10.0.0.2:1"]
    # waits after failures 1..7: rounds 0,1,1,2,2,3,3 -> full jitter in [0, 3], [0, 2], [0, 2],
    # [0, 4], [0, 4], [0, 8], [0, 8]: the ceiling grows per round over both addresses, not per try
    ceilings = [RECONNECT_WINDOW, 2.0, 2.0, 4.0, 4.0, 8.0, 8.0]
    assert len(clock.waits) >= 7, clock.waits
    assert all(RECONNECT_MIN <= w <= top for w, top in zip(clock.waits, ceilings, strict=False)), clock.waits



def test_agent_run_refuses_bad_addresses_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from agent.daemon import cli_run

    state = StateDir(tmp_path)
    state.save(AgentIdentity(server="coord", servers=["coord"], device_id="d", client_id="c", machine_id="m",
                             insecure=True), "cred")
    args = argparse.Namespace(state_dir=str(tmp_path), server=None, log_level="error", log_format="text")
    assert cli_run(args) == 1
    assert "agent.json: bad coordinator address 'coord'" in capsys.readouterr().err
    args.server = "a:1,b"
    assert cli_run(args) == 2
    assert "--server: bad coordinator address 'b'" in capsys.readouterr().err


class _Refused(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNAUTHENTICATED, grpc.aio.Metadata(), grpc.aio.Metadata(),
                         details="device certificate is not the one on record")


def _renewing_daemon(tmp_path: Path, renew: bool,
                     fail: type[BaseException] = _Refused) -> tuple[Daemon, list[str]]:
    """A stream opened with the old certificate is refused (or, `fail=asyncio.CancelledError`,
    its call cancelled as grpc.aio does when the channel closes) while a renewal replaces it."""
    d = Daemon(StateDir(tmp_path), clock=RecordingClock(), rng=random.Random(3))  # type: ignore[arg-type]
    d.identity = AgentIdentity(server="a:1", device_id="d", client_id="c", machine_id="m")
    dialer = Dialer(Rotation(["10.0.0.1:1"]), transport.PLAINTEXT)
    seen: list[str] = []

    async def finish_renewal() -> None:
        await asyncio.sleep(0.05)
        if renew:
            dialer.tls = transport.ClientTLS(ca_pem=None, client_cert_pem=b"new", client_key_pem=b"k")
        dialer.renewing.release()

    async def session(stub: Any, _md: Any) -> bool:
        seen.append("new" if dialer.tls.client_cert_pem else "old")
        if len(seen) == 1:
            await dialer.renewing.acquire()  # the renewal is under way as the refusal arrives
            asyncio.get_running_loop().create_task(finish_renewal())
            raise fail()
        d.stop()
        return False

    d._session = session  # type: ignore[method-assign]

    async def go() -> int:
        try:
            return await d.connect_loop(None, (), dialer)
        finally:
            await dialer.close()

    d.go = go  # type: ignore[attr-defined]
    return d, seen


def test_a_stream_refused_for_the_certificate_a_renewal_just_retired_connects_again(tmp_path: Path) -> None:
    d, seen = _renewing_daemon(tmp_path, renew=True)
    assert asyncio.run(d.go()) == 0  # type: ignore[attr-defined]
    assert seen == ["old", "new"]


def test_a_refusal_with_no_renewal_done_still_stops_the_agent(tmp_path: Path) -> None:
    d, seen = _renewing_daemon(tmp_path, renew=False)
    assert asyncio.run(d.go()) == EXIT_UNAUTHENTICATED  # type: ignore[attr-defined]
    assert seen == ["old"]


def test_a_stream_whose_call_the_renewal_cancelled_connects_again_with_the_new_certificate(tmp_path: Path) -> None:
    """The renewal closes the channel under a stream still waiting for its welcome: grpc.aio then
    raises CancelledError from the read. That ends the stream, not the agent."""
    d, seen = _renewing_daemon(tmp_path, renew=True, fail=asyncio.CancelledError)
    assert asyncio.run(d.go()) == 0  # type: ignore[attr-defined]
    assert seen == ["old", "new"]


def test_the_agent_cancelled_itself_is_still_cancelled(tmp_path: Path) -> None:
    d = Daemon(StateDir(tmp_path), clock=RecordingClock(), rng=random.Random(3))  # type: ignore[arg-type]
    d.identity = AgentIdentity(server="a:1", device_id="d", client_id="c", machine_id="m")
    started = asyncio.Event()

    async def session(stub: Any, _md: Any) -> bool:
        started.set()
        await asyncio.sleep(60)
        return True

    d._session = session  # type: ignore[method-assign]

    async def go() -> None:
        task = asyncio.create_task(d.connect_loop(None, ()))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


class _SilentCall:
    """A Connect call gRPC neither answers nor fails: the hello's write goes out, the read waits."""

    def __init__(self) -> None:
        self.written: list[Any] = []
        self.cancelled = False

    async def write(self, msg: Any) -> None:
        self.written.append(msg)

    async def read(self) -> Any:
        await asyncio.sleep(3600)

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class _SilentStub:
    def __init__(self) -> None:
        self.calls: list[_SilentCall] = []

    def Connect(self, metadata: Any = None) -> _SilentCall:  # noqa: N802 - the gRPC method's name
        self.calls.append(_SilentCall())
        return self.calls[-1]


def test_a_stream_never_welcomed_is_given_up_and_retried(tmp_path: Path) -> None:
    """The two runs of a 10,000-agent restart storm where one to three agents never came back:
    a stream that is neither welcomed nor failed now ends after `welcome_timeout`, and the agent
    connects again with its usual backoff, instead of waiting on it forever."""
    from agent.runner import Runner

    clock = RecordingClock()
    d = Daemon(StateDir(tmp_path), clock=clock, rng=random.Random(3), facts=lambda: None)  # type: ignore[arg-type]
    d.identity = AgentIdentity(server="a:1", device_id="d", client_id="c", machine_id="m")
    d.runner = Runner.__new__(Runner)  # the session only checks that there is one
    d.welcome_timeout = 0.05
    stub = _SilentStub()

    async def go() -> int:
        async def stop_after_three() -> None:
            while len(stub.calls) < 3:
                await asyncio.sleep(0.01)
            d.stop()

        stopper = asyncio.create_task(stop_after_three())
        code = await asyncio.wait_for(d.connect_loop(stub, ()), 10)
        await stopper
        return code

    assert asyncio.run(go()) == 0
    assert len(stub.calls) >= 3
    assert all(c.written and c.written[0].HasField("hello") for c in stub.calls)
    assert all(c.cancelled for c in stub.calls[:2])  # each given-up call is cancelled, not left open
    assert len(clock.waits) >= 2  # and retried after the backoff, like any lost stream
