"""Stalled artifact uploads hold upload slots, never the threads every store call shares; one
API token has at most two uploads in flight, the coordinator eight (coordinator/api/upload_stream.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import httpx

from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import admin_pb2_grpc
from tests.harness import InProcessCoordinator


def _stalled(c: InProcessCoordinator, token: str, name: str, release: threading.Event) -> grpc.Future:
    """An upload that sends one byte, then nothing until `release`."""
    def messages() -> Iterator[pb.UploadArtifactChunk]:
        yield pb.UploadArtifactChunk(client_id=c.client_id, name=name, data=b"x")
        release.wait(60)
        yield pb.UploadArtifactChunk(data=b"y")

    stub = admin_pb2_grpc.AdminServiceStub(c.admin(token=token).channel)
    return stub.UploadArtifact.future(messages(), metadata=(("authorization", f"Bearer {token}"),), timeout=90)


def test_stalled_uploads_leave_every_other_call_answering(coordinator: InProcessCoordinator) -> None:
    c = coordinator
    tokens = [c.admin().CreateApiToken(pb.CreateApiTokenRequest(client_ids=[c.client_id], role="operator",
                                                                 name=f"uploader {i}")).token for i in range(5)]
    release = threading.Event()
    uploads = [_stalled(c, tokens[i // 2], f"stall-{i}.bin", release) for i in range(8)]  # 2 per token, 8 in all
    try:
        time.sleep(1.0)  # every one has sent its byte and is waiting
        # a third upload of the same token is refused at once, on either door
        third = _stalled(c, tokens[0], "third.bin", release)
        assert third.exception(10).code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[union-attr]
        r = httpx.post(f"{c.http_url}/v2/artifacts", params={"name": "rest.bin"}, content=b"z",
                       headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=10, verify=c.verify)
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_uploads", r.text
        # a ninth, by another token: the coordinator's eight are taken
        ninth = _stalled(c, tokens[4], "ninth.bin", release)
        assert ninth.exception(10).code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[union-attr]
        # meanwhile every other call answers: more than the shared store workers (6 on 2 cores)
        for _ in range(20):
            t0 = time.monotonic()
            c.admin().ListDeployments(pb.ListDeploymentsRequest())
            assert time.monotonic() - t0 < 2.0
    finally:
        release.set()
    assert all(u.result(30).size == 2 for u in uploads)
    # the slots are free again
    assert _stalled(c, tokens[0], "after.bin", release).result(30).size == 2
