"""`convoy audit`: the global audit log of admin writes (docs/security.md, "Audit log")."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import call, command, emit, print_table, printable, to_dict
from common.convoy.v1 import admin_pb2 as pb


def _entry(msg: Any) -> dict[str, Any]:
    """An entry as JSON, shaped like the REST body (the id a number, no client as null)."""
    out = to_dict(msg)
    out["id"] = int(out["id"])
    out["clientId"] = out["clientId"] or None
    return out


def _audit(args: argparse.Namespace) -> int:
    resp = call(args, "ListAuditLog", pb.ListAuditLogRequest(
        client_id=args.client or "", action=args.action or "", since=args.since or "", limit=args.limit or 0,
        offset=args.offset or 0))
    rows = [_entry(e) for e in resp.data]

    def table() -> None:
        print_table(["at", "actor", "action", "client", "target", "outcome", "replica", "summary"],
                    [[r["at"], f"{r['actorName']} ({r['actor']})" if r["actorName"] else r["actor"], r["action"],
                      r["clientId"] or "-", r["targetId"] or "-", r["outcome"], r["replica"] or "-",
                      printable(r["summary"])] for r in rows])
        if resp.total > len(rows):
            print(f"({len(rows)} of {resp.total}; use --offset to see more)")

    emit(args, {"data": rows, "total": resp.total}, table)
    return 0


def register(sub: Any) -> None:
    p = command(sub, "audit", "the audit log: every admin write (and refused one), newest first",
                "  convoy audit\n"
                "  convoy audit --client CLIENT_ID --action device.revoke -o json\n"
                "  convoy audit --action deployment --since 2026-01-29T09:00:00Z --limit 200", _audit)
    p.add_argument("--client", help="only this client's entries (default: every client the token sees)")
    p.add_argument("--action", help="only this action (device.revoke) or family (device)")
    p.add_argument("--since", help="only entries at or after this RFC 3339 time")
    p.add_argument("--limit", type=int, help="entries per page, 1..500 (default 50)")
    p.add_argument("--offset", type=int, help="entries to skip")
