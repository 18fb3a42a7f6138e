"""`convoy clients …` and `convoy api-tokens …`."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import call, command, emit, print_table, to_dict
from common.convoy.v1 import admin_pb2 as pb


def _clients_create(args: argparse.Namespace) -> int:
    out = to_dict(call(args, "CreateClient", pb.CreateClientRequest(name=args.name)), snake=True)
    emit(args, out, lambda: print(f"created client {out['id']} ({out['name']})"))
    return 0


def _clients_list(args: argparse.Namespace) -> int:
    rows = [to_dict(c, snake=True) for c in call(args, "ListClients", pb.ListClientsRequest()).data]
    emit(args, rows, lambda: print_table(["id", "name", "created_at"], [[r["id"], r["name"], r["created_at"]] for r in rows]))
    return 0


def _api_tokens_create(args: argparse.Namespace) -> int:
    req = pb.CreateApiTokenRequest(client_ids=args.client, role=args.role, name=args.name or "")
    out = to_dict(call(args, "CreateApiToken", req), snake=True)
    emit(args, out, lambda: print(f"api token {out['id']} ({args.role}); shown once:\n{out['token']}"))
    return 0


def register(sub: Any) -> None:
    clients = sub.add_parser("clients", help="client organizations (tenants)").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(clients, "create", "create a client organization (partner admin only)",
                "  convoy clients create --name 'Acme IT' -o json", _clients_create)
    p.add_argument("--name", required=True)
    command(clients, "list", "list the clients this token can see", "  convoy clients list", _clients_list)

    tokens = sub.add_parser("api-tokens", help="API tokens for operators and scripts").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(tokens, "create", "create an API token scoped to one or more clients",
                "  convoy api-tokens create --client CLIENT_ID --role operator -o json\n"
                "  convoy api-tokens create --client A --client B --role viewer\n"
                "  export CONVOY_TOKEN=$(convoy api-tokens create --client CLIENT_ID --role operator -q)",
                _api_tokens_create, quiet="token")
    p.add_argument("--client", action="append", required=True, help="client id (repeat for several)")
    p.add_argument("--role", choices=("admin", "operator", "viewer"), default="viewer")
    p.add_argument("--name", help="a label for the token")
