"""`convoy clients …` (with `clients policy`, the approval policy) and `convoy api-tokens …`."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import CliError, call, command, emit, print_table, to_dict
from common.convoy.v1 import admin_pb2 as pb


def _clients_create(args: argparse.Namespace) -> int:
    out = to_dict(call(args, "CreateClient", pb.CreateClientRequest(name=args.name)), snake=True)
    emit(args, out, lambda: print(f"created client {out['id']} ({out['name']})"))
    return 0


def _clients_list(args: argparse.Namespace) -> int:
    rows = [to_dict(c, snake=True) for c in call(args, "ListClients", pb.ListClientsRequest()).data]
    emit(args, rows, lambda: print_table(["id", "name", "created_at"], [[r["id"], r["name"], r["created_at"]] for r in rows]))
    return 0


def _policy(msg: pb.ClientPolicy) -> dict[str, Any]:
    """The policy as the REST API shows it (camelCase, null for an unset rule)."""
    out = to_dict(msg)
    out["requireApprovalOver"] = msg.require_approval_over if msg.HasField("require_approval_over") else None
    for key in ("updatedAt", "updatedBy"):
        out[key] = out.get(key) or None
    return out


def _policy_text(p: dict[str, Any]) -> str:
    rules = []
    if p["requireApprovalOver"] is not None:
        rules.append("every deployment" if p["requireApprovalOver"] == 0 else
                     f"deployments targeting more than {p['requireApprovalOver']} device(s)")
    if p["requireApprovalForAll"]:
        rules.append("every targetType all deployment")
    if not rules:
        return f"client {p['clientId']}: no approval policy (any operator may start any deployment)"
    return (f"client {p['clientId']}: {' and '.join(rules)} need(s) approval by another operator before start"
            + (f" (set {p['updatedAt']} by token {p['updatedBy']})" if p["updatedBy"] else ""))


def _policy_get(args: argparse.Namespace) -> int:
    out = _policy(call(args, "GetClientPolicy", pb.ClientPolicyRef(client_id=args.client)))
    emit(args, out, lambda: print(_policy_text(out)))
    return 0


def _policy_set(args: argparse.Namespace) -> int:
    if args.no_require_approval and (args.require_approval_over is not None or args.require_approval_for_all):
        raise CliError("--no-require-approval clears the policy: do not combine it with --require-approval-*", 2)
    if not (args.no_require_approval or args.require_approval_over is not None or args.require_approval_for_all):
        raise CliError("nothing to set: pass --require-approval-over N, --require-approval-for-all, "
                       "or --no-require-approval", 2)
    if args.require_approval_over is not None and args.require_approval_over < 0:
        raise CliError("--require-approval-over must be 0 or more (0: every deployment needs approval)", 2)
    req = pb.ClientPolicy(client_id=args.client, require_approval_for_all=bool(args.require_approval_for_all))
    if args.require_approval_over is not None:
        req.require_approval_over = args.require_approval_over
    out = _policy(call(args, "SetClientPolicy", req))
    emit(args, out, lambda: print(_policy_text(out)))
    return 0


def _api_tokens_create(args: argparse.Namespace) -> int:
    from common.durations import parse_duration

    try:
        expires = parse_duration(args.expires_in) if args.expires_in else 0.0
    except ValueError as exc:
        raise CliError(f"--expires-in: {exc}", 2) from None
    req = pb.CreateApiTokenRequest(client_ids=args.client, role=args.role, name=args.name or "",
                                   expires_in_seconds=expires)
    out = to_dict(call(args, "CreateApiToken", req), snake=True)
    emit(args, out, lambda: print(f"api token {out['id']} ({args.role}); shown once:\n{out['token']}"))
    return 0


def _api_tokens_list(args: argparse.Namespace) -> int:
    resp = call(args, "ListApiTokens", pb.ListApiTokensRequest(client_id=args.client or ""))
    rows = [to_dict(t, snake=True) for t in resp.data]
    emit(args, rows, lambda: print_table(
        ["id", "name", "role", "clients", "expires_at", "revoked", "created_at"],
        [[r["id"], r["name"], "partner admin" if r["partner"] else r["role"],
          "all" if r["partner"] else ",".join(r["client_ids"]), r["expires_at"] or "never",
          "yes" if r["revoked"] else "no", r["created_at"]] for r in rows]))
    return 0


def _api_tokens_revoke(args: argparse.Namespace) -> int:
    out = to_dict(call(args, "RevokeApiToken", pb.RevokeApiTokenRequest(token_id=args.token_id)), snake=True)
    emit(args, out, lambda: print(f"revoked API token {out['id']}; it is refused from its next call"))
    return 0


def register(sub: Any) -> None:
    clients = sub.add_parser("clients", help="client organizations (tenants)").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(clients, "create", "create a client organization (partner admin only)",
                "  convoy clients create --name 'Acme IT' -o json", _clients_create)
    p.add_argument("--name", required=True)
    command(clients, "list", "list the clients this token can see", "  convoy clients list", _clients_list)
    policy = clients.add_parser("policy", help="a client's approval policy (admin role; docs/approvals.md)") \
        .add_subparsers(dest="policy_sub", required=True, metavar="COMMAND")
    p = command(policy, "get", "show the client's approval policy",
                "  convoy clients policy get CLIENT_ID\n  convoy clients policy get CLIENT_ID -o json", _policy_get)
    p.add_argument("client", metavar="CLIENT_ID")
    p = command(policy, "set", "replace the client's approval policy (a rule not given is cleared)",
                "  convoy clients policy set CLIENT_ID --require-approval-over 50\n"
                "  convoy clients policy set CLIENT_ID --require-approval-over 50 --require-approval-for-all\n"
                "  convoy clients policy set CLIENT_ID --require-approval-over 0     # every deployment\n"
                "  convoy clients policy set CLIENT_ID --no-require-approval         # no approvals needed", _policy_set)
    p.add_argument("client", metavar="CLIENT_ID")
    p.add_argument("--require-approval-over", type=int, metavar="N",
                   help="deployments targeting more than N devices need another operator's approval (0: all)")
    p.add_argument("--require-approval-for-all", action="store_true",
                   help="every deployment with targetType all needs approval, whatever its size")
    p.add_argument("--no-require-approval", action="store_true", help="clear the policy")

    tokens = sub.add_parser("api-tokens", help="API tokens for operators and scripts").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(tokens, "create", "create an API token scoped to one or more clients",
                "  convoy api-tokens create --client CLIENT_ID --role operator -o json\n"
                "  convoy api-tokens create --client A --client B --role viewer --expires-in 30d\n"
                "  export CONVOY_TOKEN=$(convoy api-tokens create --client CLIENT_ID --role operator -q)",
                _api_tokens_create, quiet="token")
    p.add_argument("--client", action="append", required=True, help="client id (repeat for several)")
    p.add_argument("--role", choices=("admin", "operator", "viewer"), default="viewer")
    p.add_argument("--name", help="a label for the token")
    p.add_argument("--expires-in", default="", help="lifetime, e.g. 30m, 24h, 90d (default: never expires)")

    p = command(tokens, "list", "list the API tokens you administer (never the secrets)",
                "  convoy api-tokens list\n  convoy api-tokens list --client CLIENT_ID -o json", _api_tokens_list)
    p.add_argument("--client", help="only tokens serving this client")

    p = command(tokens, "revoke", "revoke an API token; it is refused from its next call",
                "  convoy api-tokens revoke TOKEN_ID", _api_tokens_revoke)
    p.add_argument("token_id", metavar="TOKEN_ID")
