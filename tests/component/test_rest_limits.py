"""Limits at the REST door, over real sockets to a real coordinator: the token is checked before
the body is read, bodies are capped, deep JSON is a 400, a connection that never finishes its
request head is closed, and connections beyond the cap are refused at accept."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coordinator.api.rest_limits import MAX_JSON_DEPTH, json_depth_exceeds
from tests.harness import InProcessCoordinator


@pytest.fixture
def small(tmp_path: Path) -> Iterator[InProcessCoordinator]:
    c = InProcessCoordinator(db_url=f"sqlite:///{tmp_path / 'convoy.db'}", data_dir=tmp_path,
                             max_body_bytes=64 * 1024, max_connections=6, header_timeout_s=1.0)
    c.start()
    yield c
    c.stop()


def _raw(c: InProcessCoordinator, head: str, body: bytes = b"", timeout: float = 3.0) -> tuple[int, dict[str, object]]:
    """Send a request head (and maybe part of a body), return the status and JSON body; fails
    with socket.timeout if the server waits for the rest of the body instead of answering."""
    with socket.create_connection(("127.0.0.1", c.coordinator.http_port), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def _head(path: str, token: str, length: int | None = None, chunked: bool = False) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json", f"Authorization: Bearer {token}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return "\r\n".join(lines) + "\r\n"


def test_a_huge_body_is_refused_before_it_is_read(small: InProcessCoordinator) -> None:
    # 200 MiB announced, 10 bytes sent: an answer at all proves the body was not waited for
    status, body = _raw(small, _head("/v2/deployments", "cvy_api_wrong", 200 << 20), b'{"name": 1')
    assert status == 401 and body["error"]["code"] == "unauthenticated"  # type: ignore[index]
    status, body = _raw(small, _head("/v2/deployments", "", 200 << 20).replace("Bearer ", ""), b"{")
    assert status == 401
    status, body = _raw(small, _head("/v2/deployments", small.token, 200 << 20), b'{"name": 1')
    assert status == 413 and body["error"]["code"] == "payload_too_large"  # type: ignore[index]
    # chunked: counted as it arrives, refused once past the cap
    chunk = b"x" * 40_000
    framed = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(2))
    status, body = _raw(small, _head("/v2/deployments", small.token, chunked=True), framed)
    assert status == 413


def test_deep_json_is_a_400_never_a_500(small: InProcessCoordinator) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    url = f"{small.http_url}/v2/deployments"
    r = httpx.post(url, content=b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
                   headers={"Authorization": f"Bearer {small.token}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["details"] == {"parameter": "body"}
    assert f"deeper than {MAX_JSON_DEPTH}" in r.json()["error"]["message"]
    r = httpx.post(url, content=deep[:60_000], headers={"Authorization": "Bearer cvy_api_wrong"})
    assert r.status_code == 401
    # a normal body still reaches the route (and its own validation)
    r = httpx.post(url, json={"name": "x"}, headers={"Authorization": f"Bearer {small.token}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_argument"


def test_json_depth_scanner() -> None:
    assert not json_depth_exceeds(b'{"a": [1, {"b": "[[[[[[[["}]}', limit=3)
    assert json_depth_exceeds(b'{"a": [1, {"b": [[]]}]}', limit=3)
    assert not json_depth_exceeds(b'{"a": "\\"[[[[["}', limit=1)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_heads_are_closed_and_connections_are_capped(small: InProcessCoordinator) -> None:
    port = small.coordinator.http_port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(6)]
    try:
        for s in idle:
            s.sendall(b"GET /v2/deployments HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        extra = socket.create_connection(("127.0.0.1", port))
        assert _closed_within(extra, 0.8), "a 7th connection should be refused at accept"
        extra.close()
        started = time.monotonic()
        assert all(_closed_within(s, 3.0) for s in idle), "unfinished heads should be closed"
        assert time.monotonic() - started < 3.0
    finally:
        for s in idle:
            s.close()
    r = httpx.get(f"{small.http_url}/v2/deployments", headers={"Authorization": f"Bearer {small.token}"})
    assert r.status_code == 200
