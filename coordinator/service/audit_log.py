"""The global audit log: one `audit_log` row per admin write, in the write's own transaction.

Every unit of work an API door runs through `Api.call` (coordinator/api/base.py) is recorded:
who (the API token's id and name), what (`@action("device.revoke")` on the service function;
an undecorated write is still recorded, named `<module>.<function>`), on which client, which
target, when, from which replica, and the outcome. A write refused with a domain error (403, 404,
409, …) rolls back, so its row is written in a transaction of its own with the error's code as
the outcome. A service function that knows better than the defaults (taken from the id and
client id of what it returns) says so with `note()`.

Nothing secret is ever put in a row: the summary holds names and statuses, never a token, a
credential or a parameter value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from common.errors import ConvoyError, InvalidArgument
from common.ids import parse_uuid
from common.timefmt import iso
from coordinator.auth import Principal
from coordinator.store import models as m

F = TypeVar("F", bound=Callable[..., Any])
_NOTE = "convoy.audit_note"
SUMMARY_LIMIT = 500
LIMIT_MAX = 500


def action(name: str) -> Callable[[F], F]:
    """Name the audited action of a service write function (e.g. "deployment.start")."""
    def mark(fn: F) -> F:
        fn.audit_action = name  # type: ignore[attr-defined]
        return fn
    return mark


def action_of(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "audit_action", "")
    return name or f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"


def note(s: Session, *, action: str | None = None, client_ids: Iterable[str | None] | None = None,
         target_id: str | None = None, summary: str | None = None) -> None:
    """Override what the audit row of the current write says (None keeps the default)."""
    given = {"action": action, "client_ids": None if client_ids is None else list(client_ids),
             "target_id": target_id, "summary": summary}
    s.info.setdefault(_NOTE, {}).update({k: v for k, v in given.items() if v is not None})


def _defaults(out: Any) -> tuple[list[str | None], str, str]:
    first = out[0] if isinstance(out, tuple) and out else out
    if not isinstance(first, dict):
        return [None], "", ""
    client = first.get("client_id") or first.get("clientId")
    summary = ", ".join(f"{k}={first[k]}" for k in ("name", "status", "role") if first.get(k) not in (None, ""))
    return [str(client) if client else None], str(first.get("id") or first.get("keyId") or ""), summary


def _row(who: Principal, act: str, client_id: str | None, target: str, replica: str, outcome: str,
         summary: str, now: datetime) -> m.AuditEntry:
    return m.AuditEntry(at=now, actor=who.token_id, actor_name=who.name[:200], action=act[:64], client_id=client_id,
                        target_id=target[:200], replica=replica[:64], outcome=outcome[:32],
                        summary=summary.replace("\x00", "")[:SUMMARY_LIMIT])


def record(s: Session, who: Principal, fn: Callable[..., Any], out: Any, replica: str, now: datetime) -> None:
    """The row (one per client it concerns) of a write that succeeded, in its transaction."""
    clients, target, summary = _defaults(out)
    noted = s.info.pop(_NOTE, {})
    act = noted.get("action") or action_of(fn)
    for client_id in noted.get("client_ids", clients) or [None]:
        s.add(_row(who, act, client_id, noted.get("target_id", target), replica, "ok",
                   noted.get("summary", summary), now))


def record_refusal(s: Session, who: Principal, fn: Callable[..., Any], exc: ConvoyError, replica: str,
                   now: datetime) -> None:
    """The row of a write refused with a domain error (written in a transaction of its own). Its
    client is the one the error names, else the token's only client; otherwise (a partner token,
    or one of several clients) only partner tokens see it."""
    details = exc.details or {}
    only = next(iter(who.client_ids)) if not who.partner and len(who.client_ids) == 1 else None
    named = details.get("client_id")
    # The client the error names only when the caller may see it: a token of another client must
    # not be able to write rows (with a name of its choosing) into this client's log.
    client = named if named and who.can_see(str(named)) else only
    target = next((str(details[k]) for k in ("device_id", "token_id", "key_id", "id", "group_id") if details.get(k)), "")
    s.add(_row(who, action_of(fn), str(client) if client else None, target, replica, exc.code, exc.message, now))


def entry_dict(e: m.AuditEntry) -> dict[str, Any]:
    return {"id": e.id, "at": iso(e.at), "actor": e.actor, "actorName": e.actor_name, "action": e.action,
            "clientId": e.client_id, "targetId": e.target_id, "replica": e.replica, "outcome": e.outcome,
            "summary": e.summary}


def _since(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument("since must be an RFC 3339 time, e.g. 2026-01-29T09:00:00Z", parameter="since",
                              value=text[:100]) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def bounded(value: int | None, name: str, default: int, lo: int, hi: int) -> int:
    """An optional integer query parameter: its default when None, else checked against lo..hi."""
    if value is None:
        return default
    if not lo <= value <= hi:
        raise InvalidArgument(f"{name} must be between {lo} and {hi}", parameter=name, value=value)
    return value


def list_entries(s: Session, who: Principal, *, client_id: str = "", action_name: str = "", since: str = "",
                 limit: int | None = None, offset: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The entries the caller may see, newest first: its clients' (any role); a partner token
    also sees entries of no single client."""
    lim = bounded(limit, "limit", 50, 1, LIMIT_MAX)
    off = bounded(offset, "offset", 0, 0, 10**9)
    a = m.AuditEntry
    cond: list[Any] = []
    if client_id:
        cid = parse_uuid(client_id, "clientId")
        who.require_client(s, cid)
        cond.append(a.client_id == cid)
    elif not who.partner:
        cond.append(a.client_id.in_(sorted(who.client_ids)))
    if action_name:
        cond.append(or_(a.action == action_name, a.action.startswith(action_name.rstrip(".") + ".", autoescape=True)))
    if since:
        cond.append(a.at >= _since(since))
    total = s.scalar(select(func.count()).select_from(a).where(*cond)) or 0
    rows = s.scalars(select(a).where(*cond).order_by(a.id.desc()).limit(lim).offset(off))
    return [entry_dict(e) for e in rows], total
