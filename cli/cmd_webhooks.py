"""`convoy webhooks …`: a client's receivers of deployment events (docs/webhooks.md)."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import call, command, emit, print_table, to_dict
from common.convoy.v1 import admin_pb2 as pb

EVENTS_HELP = ("deployment.started, deployment.paused, deployment.completed, deployment.failed, "
               "deployment.cancelled, deployment.rolled_back")


def _row(msg: Any) -> dict[str, Any]:
    out = to_dict(msg, snake=True)
    out["created_by"] = out.get("created_by") or None
    if not out.get("secret"):
        out.pop("secret", None)
    return out


def _create(args: argparse.Namespace) -> int:
    events = [e.strip() for value in args.events for e in value.split(",") if e.strip()]
    out = _row(call(args, "CreateWebhook", pb.CreateWebhookRequest(client_id=args.client or "", url=args.url,
                                                                   events=events)))
    emit(args, out, lambda: print(
        f"webhook {out['id']} -> {out['url']} ({', '.join(out['events']) or 'every event'})\n"
        f"signing secret (shown once, never again):\n{out['secret']}\n"
        "receivers check X-Convoy-Signature: sha256=HMAC-SHA256(secret, X-Convoy-Timestamp + '.' + body)"))
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = [_row(r) for r in call(args, "ListWebhooks", pb.ListWebhooksRequest(client_id=args.client or "")).data]
    emit(args, rows, lambda: print_table(
        ["id", "url", "events", "created_at"],
        [[r["id"], r["url"], ",".join(r["events"]) or "(all)", r["created_at"]] for r in rows]))
    return 0


def _delete(args: argparse.Namespace) -> int:
    out = _row(call(args, "DeleteWebhook", pb.WebhookRef(client_id=args.client or "", id=args.webhook_id)))
    emit(args, out, lambda: print(f"deleted webhook {out['id']} ({out['url']}); its pending deliveries are dropped"))
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    resp = call(args, "ListWebhookDeliveries", pb.ListWebhookDeliveriesRequest(
        client_id=args.client or "", webhook_id=args.webhook_id, status=args.status or "", limit=args.limit or 0))
    rows = []
    for r in resp.data:
        row = to_dict(r, snake=True)
        for key in ("next_attempt_at", "last_error", "delivered_at"):
            row[key] = row.get(key) or None
        row["last_status_code"] = row.get("last_status_code") or None
        rows.append(row)
    data = {"data": rows, "total": resp.total}
    emit(args, data, lambda: print_table(
        ["id", "event", "deployment_id", "status", "attempts", "code", "next_attempt_at", "last_error"],
        [[r["id"], r["event_type"], r["deployment_id"], r["status"], r["attempts"], r["last_status_code"] or "",
          r["next_attempt_at"] or "", (r["last_error"] or "")[:60]] for r in rows]))
    return 0


def register(sub: Any) -> None:
    hooks = sub.add_parser("webhooks", help="signed HTTP notifications of deployment events, per client"
                           ).add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(hooks, "create", "add a receiver of a client's deployment events (admin role); prints its secret once",
                "  convoy webhooks create --client CLIENT_ID --url https://hooks.example.com/convoy\n"
                "  convoy webhooks create --client CLIENT_ID --url https://… --events deployment.paused,deployment.failed\n"
                "  SECRET=$(convoy webhooks create --client CLIENT_ID --url https://… -q)   # just the secret\n"
                f"  (events: {EVENTS_HELP}; none given: every event)", _create, quiet="secret")
    p.add_argument("--client", help="client id (default: the API token's only client)")
    p.add_argument("--url", required=True, help="the receiver, http:// or https://")
    p.add_argument("--events", action="append", default=[], metavar="EVENT[,EVENT…]",
                   help="only these events (repeatable or comma-separated; default every event)")

    p = command(hooks, "list", "list a client's webhooks (operator role; secrets are never shown again)",
                "  convoy webhooks list --client CLIENT_ID", _list)
    p.add_argument("--client", help="client id (default: the API token's only client)")

    p = command(hooks, "delete", "remove a webhook and its deliveries (admin role)",
                "  convoy webhooks delete WEBHOOK_ID --client CLIENT_ID", _delete)
    p.add_argument("webhook_id", metavar="WEBHOOK_ID")
    p.add_argument("--client", help="client id (default: the API token's only client)")

    p = command(hooks, "deliveries", "a webhook's deliveries, newest first: status, attempts, last error",
                "  convoy webhooks deliveries WEBHOOK_ID --client CLIENT_ID\n"
                "  convoy webhooks deliveries WEBHOOK_ID --status dead -o json", _deliveries)
    p.add_argument("webhook_id", metavar="WEBHOOK_ID")
    p.add_argument("--client", help="client id (default: the API token's only client)")
    p.add_argument("--status", choices=("pending", "delivered", "dead"), help="only deliveries in this status")
    p.add_argument("--limit", type=int, help="at most this many (default 50, at most 500)")
