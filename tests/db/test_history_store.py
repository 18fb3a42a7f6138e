"""The seed-000 history queries on the real store (SQLite and PostgreSQL): filters, sorts,
keyset paging with many records sharing one enrollment_date, and the documented errors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from common.errors import InvalidArgument, NotFound, PermissionDenied
from common.ids import new_id
from coordinator.auth import Principal
from coordinator.service import devices, history
from coordinator.store import models as m
from coordinator.store.db import Store

T0 = datetime(2026, 1, 29, 9, 0, 0, tzinfo=UTC)
PARTNER = Principal(token_id=new_id(), role="viewer", partner=True, client_ids=frozenset())


def _client_and_device(store: Store) -> tuple[str, str]:
    client_id, device_id = new_id(), new_id()
    with store.tx() as s:
        s.add(m.Client(id=client_id, name="Acme", created_at=T0))
        s.flush()
        s.add(m.Device(id=device_id, client_id=client_id, machine_id="m", credential_hash=new_id(),
                       created_at=T0, updated_at=T0))
    return client_id, device_id


def _insert(store: Store, client_id: str, device_id: str, rows: list[dict[str, Any]]) -> None:
    base = {"client_id": client_id, "device_id": device_id, "enrollment_token_id": new_id(), "user_id": None,
            "error_logs": None, "timeout_at": None}
    with store.tx() as s:
        s.execute(insert(m.DeviceEnrollment), [{**base, "id": new_id(), **r} for r in rows])


def _page_all(store: Store, client_id: str, device_id: str, **kw: Any) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        with store.read() as s:
            out = history.list_deployments(s, PARTNER, client_id, device_id, cursor=cursor, **kw)
        pages.append(out["data"])
        cursor = out["next_cursor"]
        if cursor is None:
            return pages


def test_1200_records_on_one_date_page_without_duplicates_or_gaps(store: Store) -> None:
    client_id, device_id = _client_and_device(store)
    # One enrollment_date for all; created_at and status vary so every sort has ties to break.
    rows = [{"status": ("success", "error", "pending")[i % 3], "enrollment_date": T0,
             "created_at": T0 + timedelta(seconds=i % 7), "updated_at": T0} for i in range(1200)]
    _insert(store, client_id, device_id, rows)

    with store.read() as s:
        by_id = {r.id: r for r in s.query(m.DeviceEnrollment)}
    keys = {"enrollment_date": lambda i: (by_id[i].enrollment_date, i),
            "status": lambda i: (by_id[i].status, by_id[i].enrollment_date, i),
            "created_at": lambda i: (by_id[i].created_at, i)}
    for sort_by in ("enrollment_date", "status", "created_at"):
        for order in ("asc", "desc"):
            pages = _page_all(store, client_id, device_id, sort_by=sort_by, sort_order=order, page_size=500)
            assert [len(p) for p in pages] == [500, 500, 200], (sort_by, order)
            flat = [r for p in pages for r in p]
            ids = [r["id"] for r in flat]
            assert len(set(ids)) == 1200, (sort_by, order)
            assert ids == sorted(ids, key=keys[sort_by], reverse=order == "desc"), (sort_by, order)

    with store.read() as s:
        first = history.list_deployments(s, PARTNER, client_id, device_id, page_size="500")
    assert first["total_count"] == 1200 and len(first["data"]) == 500 and first["next_cursor"]


def test_default_order_filters_and_shapes(store: Store) -> None:
    client_id, device_id = _client_and_device(store)
    _insert(store, client_id, device_id, [
        {"status": "error", "enrollment_date": T0, "created_at": T0, "updated_at": T0 + timedelta(seconds=15),
         "error_logs": ["2026-01-29T09:00:15Z: Deployment aborted"], "user_id": new_id()},
        {"status": "success", "enrollment_date": T0 + timedelta(days=1, hours=5, minutes=30),
         "created_at": T0 + timedelta(days=1), "updated_at": T0 + timedelta(days=1)},
        {"status": "pending", "enrollment_date": T0 - timedelta(days=3), "created_at": T0, "updated_at": T0},
    ])
    with store.read() as s:
        out = history.list_deployments(s, PARTNER, client_id, device_id)
        assert set(out) == {"data", "total_count", "next_cursor"}
        assert [r["status"] for r in out["data"]] == ["success", "error", "pending"]  # newest first
        assert out["total_count"] == 3 and out["next_cursor"] is None
        assert all(set(r) == {"id", "status", "enrollment_date"} for r in out["data"])
        assert out["data"][0]["enrollment_date"] == "2026-01-30T14:30:00.000Z"

        errors = history.list_deployments(s, PARTNER, client_id, device_id, status="error")
        assert [r["status"] for r in errors["data"]] == ["error"] and errors["total_count"] == 1

        err = history.get_deployment(s, PARTNER, client_id, device_id, errors["data"][0]["id"])
        assert set(err) == {"id", "status", "enrollment_date", "enrollment_token_id", "user_id", "error_logs",
                            "created_at", "updated_at"}
        assert err["error_logs"] == ["2026-01-29T09:00:15Z: Deployment aborted"]
        assert err["updated_at"] == "2026-01-29T09:00:15.000Z" and err["user_id"] is not None
        ok = history.get_deployment(s, PARTNER, client_id, device_id, out["data"][0]["id"])
        assert ok["error_logs"] is None and ok["user_id"] is None

        detail = devices.get_device(s, PARTNER, client_id, device_id)
        assert detail["latest_enrollment"] == out["data"][0]


def _cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize(("kw", "parameter"), [
    ({"sort_by": "hostname"}, "sort_by"),
    ({"sort_order": "up"}, "sort_order"),
    ({"status": "done"}, "status"),
    ({"page_size": "0"}, "page_size"),
    ({"page_size": "501"}, "page_size"),
    ({"page_size": "ten"}, "page_size"),
    ({"page_size": -1}, "page_size"),
    ({"cursor": "!!!not base64!!!"}, "cursor"),
    ({"cursor": _cursor({"s": "enrollment_date", "o": "desc", "f": None, "k": ["yesterday", "x"]})}, "cursor"),
    ({"cursor": _cursor([1, 2])}, "cursor"),
    ({"cursor": _cursor({"s": "status", "o": "desc", "f": None, "k": ["a", "b", "c"]})}, "cursor"),
])
def test_bad_parameters_are_400_naming_the_parameter(store: Store, kw: dict[str, Any], parameter: str) -> None:
    client_id, device_id = _client_and_device(store)
    with store.read() as s, pytest.raises(InvalidArgument) as info:
        history.list_deployments(s, PARTNER, client_id, device_id, **kw)
    assert info.value.details["parameter"] == parameter and parameter in info.value.message


def test_cursor_from_another_sort_is_rejected(store: Store) -> None:
    client_id, device_id = _client_and_device(store)
    _insert(store, client_id, device_id, [{"status": "success", "enrollment_date": T0 + timedelta(seconds=i),
                                           "created_at": T0, "updated_at": T0} for i in range(3)])
    with store.read() as s:
        cursor = history.list_deployments(s, PARTNER, client_id, device_id, page_size=1)["next_cursor"]
        assert cursor
        with pytest.raises(InvalidArgument):
            history.list_deployments(s, PARTNER, client_id, device_id, sort_order="asc", cursor=cursor)


def test_ids_scope_and_not_found(store: Store) -> None:
    client_id, device_id = _client_and_device(store)
    other_client, other_device = _client_and_device(store)
    scoped = Principal(token_id=new_id(), role="viewer", partner=False, client_ids=frozenset({client_id}))
    with store.read() as s:
        for args, parameter in [(("x", device_id), "client_id"), ((client_id, "y"), "device_id")]:
            with pytest.raises(InvalidArgument) as bad:
                history.list_deployments(s, scoped, *args)
            assert bad.value.details["parameter"] == parameter
        with pytest.raises(InvalidArgument) as bad:
            history.get_deployment(s, scoped, client_id, device_id, "z")
        assert bad.value.details["parameter"] == "deployment_id"
        with pytest.raises(PermissionDenied):
            history.list_deployments(s, scoped, other_client, other_device)
        with pytest.raises(NotFound) as nf:  # a device of another client is not found in this one
            history.list_deployments(s, scoped, client_id, other_device)
        assert nf.value.message == "Device not found" and nf.value.details == {"device_id": other_device}
        missing = new_id()
        with pytest.raises(NotFound) as nf:
            history.get_deployment(s, scoped, client_id, device_id, missing)
        assert nf.value.body() == {"error": {"code": "not_found", "message": "Deployment not found",
                                             "details": {"deployment_id": missing}}}
        with pytest.raises(NotFound) as nf:
            history.list_deployments(s, PARTNER, new_id(), device_id)
        assert nf.value.message == "Client not found"
