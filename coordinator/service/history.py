"""A device's enrollment deployment history (seed 000): List and Get, exactly as documented.

Paging is keyset paging: the opaque cursor is base64url JSON holding the last row's sort key
(and the id that breaks ties), so a page never repeats or skips a record, however many records
share an enrollment_date and however many are added while a client pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from common.errors import InvalidArgument, NotFound
from common.ids import parse_uuid
from common.timefmt import iso
from coordinator.auth import Principal
from coordinator.service.devices import enrollment_ref, require_device, resolve_client
from coordinator.store import models as m

STATUSES = ("success", "error", "pending")
SORT_ORDERS = ("asc", "desc")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

_D = m.DeviceEnrollment
# Each sort is a lexicographic key ending in the id, so the order is total. Sorting by status
# groups records as error < pending < success (alphabetical) and, within a status, by date.
SORT_KEYS: dict[str, tuple[InstrumentedAttribute[Any], ...]] = {
    "enrollment_date": (_D.enrollment_date, _D.id),
    "status": (_D.status, _D.enrollment_date, _D.id),
    "created_at": (_D.created_at, _D.id),
}
_DATE_FIELDS = {"enrollment_date", "created_at"}


def record_dict(r: m.DeviceEnrollment) -> dict[str, Any]:
    """The seed's full DeviceDeployment object."""
    return {
        "id": r.id,
        "status": r.status,
        "enrollment_date": iso(r.enrollment_date),
        "enrollment_token_id": r.enrollment_token_id,
        "user_id": r.user_id,
        "error_logs": list(r.error_logs) if r.error_logs is not None else None,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
    }


def parse_page_size(value: str | int | None) -> int:
    """`page_size` as given (query string or int; None/0 = default): 1..500, else 400."""
    if value is None or value == "" or value == 0:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"page_size must be an integer between 1 and {MAX_PAGE_SIZE}",
                              parameter="page_size", value=str(value)) from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE_SIZE}",
                              parameter="page_size", value=str(value))
    return size


def _key_values(r: m.DeviceEnrollment, sort_by: str) -> list[Any]:
    out: list[Any] = []
    for col in SORT_KEYS[sort_by]:
        v = getattr(r, col.key)
        out.append(v.isoformat() if isinstance(v, datetime) else v)
    return out


def encode_cursor(r: m.DeviceEnrollment, sort_by: str, sort_order: str, status: str | None) -> str:
    payload = {"s": sort_by, "o": sort_order, "f": status, "k": _key_values(r, sort_by)}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_cursor(reason: str) -> InvalidArgument:
    return InvalidArgument(f"cursor is invalid: {reason}", parameter="cursor")


def decode_cursor(cursor: str, sort_by: str, sort_order: str, status: str | None) -> list[Any]:
    """The key values in `cursor`, or a 400 naming `cursor` (garbage, or made for another query)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_cursor("not a cursor from a previous response") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("k"), list):
        raise _bad_cursor("not a cursor from a previous response")
    if (payload.get("s"), payload.get("o"), payload.get("f")) != (sort_by, sort_order, status):
        raise _bad_cursor("it belongs to a query with other sort_by, sort_order or status")
    cols = SORT_KEYS[sort_by]
    values: list[Any] = payload["k"]
    if len(values) != len(cols):
        raise _bad_cursor("not a cursor from a previous response")
    out: list[Any] = []
    for col, v in zip(cols, values, strict=True):
        if not isinstance(v, str):
            raise _bad_cursor("not a cursor from a previous response")
        if col.key in _DATE_FIELDS:
            try:
                ts = datetime.fromisoformat(v)
            except ValueError:
                raise _bad_cursor("not a cursor from a previous response") from None
            if ts.tzinfo is None:
                raise _bad_cursor("not a cursor from a previous response")
            out.append(ts)
        else:
            out.append(v)
    return out


def _after(cols: tuple[InstrumentedAttribute[Any], ...], values: list[Any], desc: bool) -> ColumnElement[bool]:
    """Rows strictly after `values` in the (cols…) order: (a, b, c) > (x, y, z), spelled out.

    Written as OR-of-ANDs rather than a row-value comparison so it means the same on SQLite and
    PostgreSQL and can use the (device_id, enrollment_date, id) index.
    """
    terms = []
    for i, col in enumerate(cols):
        beyond = col < values[i] if desc else col > values[i]
        terms.append(and_(*[c == v for c, v in zip(cols[:i], values[:i], strict=True)], beyond))
    return or_(*terms)


def _client(s: Session, who: Principal, client_id: str) -> str:
    """The path's client id; over gRPC an empty one means the token's only client."""
    return parse_uuid(client_id, "client_id") if client_id else resolve_client(s, who, "")


def list_deployments(s: Session, who: Principal, client_id: str, device_id: str, *,
                     status: str | None = None, sort_by: str | None = None, sort_order: str | None = None,
                     page_size: str | int | None = None, cursor: str | None = None) -> dict[str, Any]:
    """The seed's List Deployments: {"data": [ref…], "total_count", "next_cursor"}."""
    client = _client(s, who, client_id)
    dev = parse_uuid(device_id, "device_id")
    status = status or None
    if status is not None and status not in STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(STATUSES)}", parameter="status", value=status)
    sort_by = sort_by or "enrollment_date"
    if sort_by not in SORT_KEYS:
        raise InvalidArgument(f"sort_by must be one of {', '.join(SORT_KEYS)}", parameter="sort_by", value=sort_by)
    sort_order = sort_order or "desc"
    if sort_order not in SORT_ORDERS:
        raise InvalidArgument("sort_order must be asc or desc", parameter="sort_order", value=sort_order)
    size = parse_page_size(page_size)
    after = decode_cursor(cursor, sort_by, sort_order, status) if cursor else None

    device = require_device(s, who, client, dev)
    where = [_D.device_id == device.id]
    if status is not None:
        where.append(_D.status == status)
    total = s.scalar(select(func.count()).select_from(_D).where(*where)) or 0

    cols = SORT_KEYS[sort_by]
    desc = sort_order == "desc"
    q = select(_D).where(*where)
    if after is not None:
        q = q.where(_after(cols, after, desc))
    q = q.order_by(*[c.desc() if desc else c.asc() for c in cols]).limit(size + 1)
    rows = list(s.scalars(q))
    more = len(rows) > size
    rows = rows[:size]
    return {
        "data": [enrollment_ref(r) for r in rows],
        "total_count": total,
        "next_cursor": encode_cursor(rows[-1], sort_by, sort_order, status) if more else None,
    }


def get_deployment(s: Session, who: Principal, client_id: str, device_id: str, deployment_id: str) -> dict[str, Any]:
    """The seed's Get Deployment: the full record, `error_logs` null unless it failed."""
    client = _client(s, who, client_id)
    dev = parse_uuid(device_id, "device_id")
    rid = parse_uuid(deployment_id, "deployment_id")
    device = require_device(s, who, client, dev)
    record = s.get(_D, rid)
    if record is None or record.device_id != device.id:
        raise NotFound("Deployment not found", deployment_id=rid)
    return record_dict(record)
