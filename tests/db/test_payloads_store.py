"""Payload storage on SQLite and PostgreSQL: content-addressed chunked blobs, groups, scripts."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from common.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from common.ids import new_id
from coordinator.auth import Principal
from coordinator.service import payloads
from coordinator.store import models as m
from coordinator.store.db import Store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MIB = 1024 * 1024


def _client(store: Store, name: str = "Acme") -> str:
    with store.tx() as s:
        c = m.Client(id=new_id(), name=name, created_at=NOW)
        s.add(c)
    return c.id


def _device(store: Store, client_id: str) -> str:
    with store.tx() as s:
        d = m.Device(id=new_id(), client_id=client_id, machine_id=new_id(), credential_hash=new_id(),
                     created_at=NOW, updated_at=NOW)
        s.add(d)
    return d.id


def _who(client_id: str, role: str = "operator") -> Principal:
    return Principal(token_id=new_id(), role=role, partner=False, client_ids=frozenset({client_id}))


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def _count(store: Store, model: Any) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# --- artifacts ------------------------------------------------------------------------------

def test_same_bytes_twice_share_one_blob(store: Store) -> None:
    cid = _client(store)
    data = os.urandom(MIB + 1000)
    a = payloads.store_artifact(store, _who(cid), "", "tool.deb", _pieces(data, 64 * 1024), NOW)
    b = payloads.store_artifact(store, _who(cid), cid, "tool-copy.tgz", _pieces(data, 300_000), NOW)
    assert a["sha256"] == b["sha256"] == hashlib.sha256(data).hexdigest()
    assert a["id"] != b["id"] and a["size"] == b["size"] == len(data)
    assert (a["kind"], b["kind"]) == ("deb", "tar.gz")
    assert _count(store, m.Blob) == 1
    assert _count(store, m.BlobChunk) == 2  # 1 MiB + the rest, stored once
    # The same bytes under the same name again is a repeated upload: the same artifact.
    again = payloads.store_artifact(store, _who(cid), cid, "tool.deb", [data], NOW)
    assert again["id"] == a["id"]
    with store.read() as s:
        assert len(payloads.list_artifacts(s, _who(cid, "viewer"))) == 2
        assert payloads.get_artifact(s, cid, a["id"]).sha256 == a["sha256"]


def test_chunked_round_trip_and_resume_from_offset(store: Store) -> None:
    cid = _client(store)
    data = os.urandom(3 * MIB + 12345)
    art = payloads.store_artifact(store, _who(cid), cid, "bundle.bin", _pieces(data, 100_000), NOW)
    assert art["kind"] == "file"
    with store.read() as s:
        assert payloads.blob_size(s, art["sha256"]) == len(data)
        pieces = list(payloads.read_blob(s, art["sha256"], 0))
        assert [o for o, _ in pieces] == [0, MIB, 2 * MIB, 3 * MIB]
        assert all(len(p) <= MIB for _, p in pieces)
        assert b"".join(p for _, p in pieces) == data
        for offset in (1, MIB - 1, MIB, 2 * MIB + 77, len(data) - 1):
            resumed = list(payloads.read_blob(s, art["sha256"], offset))
            assert resumed[0][0] == offset
            assert b"".join(p for _, p in resumed) == data[offset:]
        assert list(payloads.read_blob(s, art["sha256"], len(data))) == []
        with pytest.raises(InvalidArgument):
            list(payloads.read_blob(s, art["sha256"], len(data) + 1))
        with pytest.raises(NotFound):
            list(payloads.read_blob(s, "0" * 64, 0))
    # The per-chunk-session reader a download stream uses gives the same bytes.
    assert b"".join(p for _, p in payloads.stream_blob(store, art["sha256"], 5)) == data[5:]
    assert [o for o, _ in payloads.stream_blob(store, art["sha256"], MIB + 3)] == [MIB + 3, 2 * MIB, 3 * MIB]


def test_bad_uploads_leave_nothing_behind(store: Store) -> None:
    cid = _client(store)
    with pytest.raises(InvalidArgument, match="empty"):
        payloads.store_artifact(store, _who(cid), cid, "empty.bin", [b"", b""], NOW)
    with pytest.raises(InvalidArgument) as exc:
        payloads.store_artifact(store, _who(cid), cid, "  ", [b"x"], NOW)
    assert exc.value.details["parameter"] == "name"
    with pytest.raises(InvalidArgument):
        payloads.store_artifact(store, _who(cid), cid, "../etc/passwd", [b"x"], NOW)
    with pytest.raises(InvalidArgument, match="limit"):
        payloads.store_artifact(store, _who(cid), cid, "big.bin", _pieces(os.urandom(3 * MIB), MIB), NOW,
                                max_bytes=2 * MIB)

    def broken() -> Iterator[bytes]:
        yield os.urandom(2 * MIB)
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        payloads.store_artifact(store, _who(cid), cid, "cut.bin", broken(), NOW)
    with pytest.raises(PermissionDenied):
        payloads.store_artifact(store, _who(cid, "viewer"), cid, "v.bin", [b"x"], NOW)
    assert (_count(store, m.Blob), _count(store, m.BlobChunk), _count(store, m.Artifact)) == (0, 0, 0)


def test_stale_temporary_upload_is_swept(store: Store) -> None:
    cid = _client(store)
    with store.tx() as s:  # what a coordinator killed mid-upload leaves behind
        s.add(m.Blob(sha256="upload-deadbeef", size=0, created_at=NOW - timedelta(days=2)))
        s.flush()
        s.add(m.BlobChunk(sha256="upload-deadbeef", seq=0, offset=0, data=b"partial"))
    payloads.store_artifact(store, _who(cid), cid, "ok.txt", [b"hello"], NOW)
    with store.read() as s:
        assert list(s.scalars(select(m.Blob.sha256))) == [hashlib.sha256(b"hello").hexdigest()]
        assert s.scalar(select(func.count()).select_from(m.BlobChunk)) == 1


# --- groups ---------------------------------------------------------------------------------

def test_group_membership_rules(store: Store) -> None:
    cid, other = _client(store), _client(store, "Other")
    d1, d2 = _device(store, cid), _device(store, cid)
    foreign = _device(store, other)
    who = _who(cid)
    with store.tx() as s:
        g = payloads.create_group(s, who, "", "web", NOW)
    with store.tx() as s, pytest.raises(Conflict):
        payloads.create_group(s, who, cid, "web", NOW)
    with store.tx() as s:  # the same name in another client is fine
        payloads.create_group(s, _who(other), other, "web", NOW)
    with store.tx() as s:
        out = payloads.add_group_members(s, who, g["id"], [d1, d2, d1])
        assert out["device_ids"] == sorted([d1, d2])
    with store.tx() as s:  # adding again is idempotent
        assert payloads.add_group_members(s, who, g["id"], [d1])["device_ids"] == sorted([d1, d2])
    with store.tx() as s, pytest.raises(InvalidArgument) as bad:
        payloads.add_group_members(s, who, g["id"], [d1, "not-a-uuid"])
    assert bad.value.details["value"] == "not-a-uuid"
    with store.tx() as s, pytest.raises(NotFound) as missing:
        payloads.add_group_members(s, who, g["id"], [foreign])
    assert missing.value.details["device_id"] == foreign
    with store.tx() as s, pytest.raises(PermissionDenied):
        payloads.add_group_members(s, _who(cid, "viewer"), g["id"], [d1])
    with store.tx() as s, pytest.raises(NotFound):  # another client's token does not see the group
        payloads.add_group_members(s, _who(other), g["id"], [foreign])
    with store.tx() as s:
        assert payloads.remove_group_members(s, who, g["id"], [d2])["device_ids"] == [d1]
        assert payloads.remove_group_members(s, who, g["id"], [d2])["device_ids"] == [d1]
    with store.read() as s:
        listed = payloads.list_groups(s, _who(cid, "viewer"))
        assert [(x["name"], x["device_ids"]) for x in listed] == [("web", [d1])]
        assert payloads.show_group(s, who, g["id"])["device_ids"] == [d1]
        assert payloads.group_device_ids(s, cid, [g["id"]]) == {d1}
        with pytest.raises(NotFound) as nf:
            payloads.group_device_ids(s, other, [g["id"]])
        assert nf.value.details["group_id"] == g["id"]
        with pytest.raises(InvalidArgument) as ia:
            payloads.group_device_ids(s, other, [g["id"]], field="targetConfig.groupIds")
        assert ia.value.details["parameter"] == "targetConfig.groupIds"


# --- scripts --------------------------------------------------------------------------------

SCHEMA = ('{"type": "object", "properties": {"message": {"type": "string"}, "count": {"type": "integer"},'
          ' "ratio": {"type": "number"}, "force": {"type": "boolean", "default": false},'
          ' "level": {"type": "string", "enum": ["low", "high"]}}, "required": ["message"]}')


def test_script_create_and_schema_validation(store: Store) -> None:
    cid = _client(store)
    who = _who(cid)
    with store.tx() as s:
        sc = payloads.create_script(s, who, cid, "motd", "sh", "echo \"$message\"\n", SCHEMA, "rm -f /etc/motd", NOW)
    other = _client(store, "Other")
    with store.read() as s:
        row = payloads.get_script(s, cid, sc["id"])
        assert row.interpreter == "sh" and row.rollback_body == "rm -f /etc/motd"
        assert payloads.list_scripts(s, _who(cid, "viewer"))[0]["id"] == sc["id"]
        with pytest.raises(InvalidArgument) as ia:
            payloads.get_script(s, cid, new_id(), field="payload.scriptId")
        assert ia.value.details["parameter"] == "payload.scriptId"
        with pytest.raises(NotFound):
            payloads.get_script(s, other, sc["id"])
    schema = row.parameters_schema
    payloads.validate_parameters(schema, {"message": "hi", "count": 3, "ratio": 0.5, "force": True, "level": "low"})
    payloads.validate_parameters(schema, {"message": "hi", "count": 3.0, "ratio": 2})
    for params, name in (({}, "message"), ({"message": 1}, "message"), ({"message": "x", "count": True}, "count"),
                         ({"message": "x", "count": 1.5}, "count"), ({"message": "x", "ratio": "1"}, "ratio"),
                         ({"message": "x", "force": "yes"}, "force"), ({"message": "x", "level": "mid"}, "level"),
                         ({"message": "x", "colour": "red"}, "colour")):
        with pytest.raises(InvalidArgument) as exc:
            payloads.validate_parameters(schema, params)
        assert exc.value.details["parameter"] == f"payload.parameters.{name}", params
    payloads.validate_parameters({}, {})
    with pytest.raises(InvalidArgument):
        payloads.validate_parameters({}, {"anything": 1})


@pytest.mark.parametrize("name, interpreter, body, schema, parameter", [
    ("", "sh", "true", "", "name"),
    ("x", "zsh", "true", "", "interpreter"),
    ("x", "bash", "  \n", "", "body"),
    ("x", "sh", "true", "{not json", "parameters_schema"),
    ("x", "sh", "true", '{"type": "array"}', "parameters_schema"),
    ("x", "sh", "true", '{"properties": {"n": {"type": "date"}}}', "parameters_schema"),
    ("x", "sh", "true", '{"properties": {"n": {"type": "integer", "minimum": 1}}}', "parameters_schema"),
    ("x", "sh", "true", '{"properties": {"n": {"type": "string"}}, "required": ["m"]}', "parameters_schema"),
    ("x", "sh", "true", '{"properties": {"bad-name": {"type": "string"}}}', "parameters_schema"),
    ("x", "sh", "true", '{"properties": {"n": {"type": "integer", "default": "1"}}}', "parameters_schema"),
])
def test_script_create_rejects(store: Store, name: str, interpreter: str, body: str, schema: str,
                               parameter: str) -> None:
    cid = _client(store)
    with store.tx() as s, pytest.raises(InvalidArgument) as exc:
        payloads.create_script(s, _who(cid), cid, name, interpreter, body, schema, "", NOW)
    assert exc.value.details["parameter"] == parameter
    assert _count(store, m.Script) == 0
