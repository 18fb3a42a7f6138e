"""`convoy tokens …`: enrollment tokens (create, list, revoke)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from cli.cmd_keys import trusted_keys
from cli.common import (
    CliError,
    call,
    client_trust,
    command,
    emit,
    print_table,
    server_address,
    to_dict,
)
from common.convoy.v1 import admin_pb2 as pb

DEFAULT_MAX_USES = 100
"""A token copied into the wrong place enrolls at most this many devices unless asked for more
(like its 24 h default lifetime); an install wave of thousands says `--max-uses N` or 0."""


def _create(args: argparse.Namespace) -> int:
    from common.durations import parse_duration

    try:
        # "0" means never; any other lifetime needs its unit (a bare 90 is not 90 seconds)
        expires = 0.0 if args.expires_in.strip() in ("0", "") else parse_duration(args.expires_in)
    except ValueError as exc:
        raise CliError(f"--expires-in: {exc}", 2) from None
    if args.max_uses < 0:
        raise CliError("--max-uses must be at least 1 (0 = unlimited)", 2)
    req = pb.CreateEnrollmentTokenRequest(client_id=args.client or "", expires_in_seconds=expires,
                                          max_uses=args.max_uses or 0, group_ids=args.group, name=args.name or "")
    out = to_dict(call(args, "CreateEnrollmentToken", req), snake=True)
    out.update(install_command(args, out["token"], trusted_keys(args, args.client or "")))
    emit(args, out, lambda: print(f"enrollment token {out['id']}; shown once:\n{out['token']}\n"
                                  f"install a device with:\n  {out['install_command']}"))
    return 0


def _replace(args: argparse.Namespace) -> int:
    from common.durations import parse_duration

    try:
        expires = parse_duration(args.expires_in)
    except ValueError as exc:
        raise CliError(f"--expires-in: {exc}", 2) from None
    if expires <= 0:
        raise CliError("--expires-in: a replacement token must expire", 2)
    req = pb.CreateEnrollmentTokenRequest(client_id=args.client or "", expires_in_seconds=expires, max_uses=1,
                                          device_id=args.device_id, name=f"replace {args.device_id}")
    out = to_dict(call(args, "CreateEnrollmentToken", req), snake=True)
    out["device_id"] = args.device_id
    out.update(install_command(args, out["token"], trusted_keys(args, args.client or "")))
    emit(args, out, lambda: print(
        f"replacement token {out['id']} for device {args.device_id} (one use); shown once:\n{out['token']}\n"
        f"on the replacement machine run:\n  {out['install_command']}"))
    return 0


def register_replace(devices: Any) -> None:
    """`convoy devices replace`, registered under `convoy devices`."""
    p = command(devices, "replace", "issue a single-use token that re-enrolls exactly this device (admin role)",
                "  convoy devices replace DEVICE_ID --client CLIENT_ID\n"
                "  (for a machine that was rebuilt and cannot prove it is the device: no state dir, or a new\n"
                "   machine id; the device keeps its id and history, its old credential stops working)", _replace)
    p.add_argument("--client", help="client id (default: the API token's only client)")
    p.add_argument("--expires-in", default="24h", help="lifetime, e.g. 30m, 24h (default 24h)")
    p.add_argument("device_id", metavar="DEVICE_ID")


def install_command(args: argparse.Namespace, token: str, trust_keys: list[str] | None = None) -> dict[str, Any]:
    """`{"ca_fingerprint", "install_command"[, "trust_keys"]}`: the whole `convoy agent install` line,
    pinning the CA this command itself verified the coordinator with (kubeadm's join line, for
    Convoy), and the client's registered signer keys (docs/security.md, "Signed work")."""
    tls, fingerprint = client_trust(args)
    if not tls.secure:
        trust = ["--insecure"]
    elif fingerprint:
        trust = ["--ca-fingerprint", fingerprint]
    else:  # verified by the system roots: the agent needs the CA file the operator trusts
        trust = ["--ca", "CA_FILE"]
    cmd = ["convoy", "agent", "install", "--server", server_address(args), "--token", token, *trust]
    for key in trust_keys or []:
        cmd += ["--trust-key", key]
    out: dict[str, Any] = {"ca_fingerprint": fingerprint, "install_command": shlex.join(cmd)}
    if trust_keys:  # only when the client has signers: the output is otherwise unchanged
        out["trust_keys"] = list(trust_keys)
    return out


def _list(args: argparse.Namespace) -> int:
    resp = call(args, "ListEnrollmentTokens", pb.ListEnrollmentTokensRequest(client_id=args.client or ""))
    rows = [to_dict(t, snake=True) for t in resp.data]
    emit(args, rows, lambda: print_table(
        ["id", "name", "uses", "max_uses", "expires_at", "revoked", "created_at"],
        [[r["id"], r["name"], r["uses"], r["max_uses"] or "unlimited", r["expires_at"] or "never",
          "yes" if r["revoked"] else "no", r["created_at"]] for r in rows]))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    out = to_dict(call(args, "RevokeEnrollmentToken",
                       pb.RevokeEnrollmentTokenRequest(client_id=args.client or "", token_id=args.token_id)), snake=True)
    emit(args, out, lambda: print(f"revoked enrollment token {out['id']}"))
    return 0


def register(sub: Any) -> None:
    tokens = sub.add_parser("tokens", help="enrollment tokens: what `convoy agent install` needs").add_subparsers(
        dest="sub", required=True, metavar="COMMAND")
    p = command(tokens, "create", "create an enrollment token (admin role); the token is shown once",
                "  convoy tokens create --client CLIENT_ID --expires-in 24h --max-uses 50 -o json\n"
                "  convoy tokens create --client CLIENT_ID --group GROUP_ID --name 'berlin office'\n"
                "  ENROLL=$(convoy tokens create --client CLIENT_ID -q)   # just the token, for agent install\n"
                "  (--client may be omitted when the API token has exactly one client)", _create, quiet="token")
    p.add_argument("--client", help="client id (default: the API token's only client)")
    p.add_argument("--expires-in", default="24h", help="lifetime with a unit, e.g. 30m, 24h, 7d, 1h30m; 0 = never (default 24h)")
    p.add_argument("--max-uses", type=int, default=DEFAULT_MAX_USES,
                   help=f"how many devices may enroll with it (default {DEFAULT_MAX_USES}; 0 = unlimited)")
    p.add_argument("--group", action="append", default=[], help="add enrolled devices to this group (repeatable)")
    p.add_argument("--name", help="a label for the token")

    p = command(tokens, "list", "list a client's enrollment tokens (never the secrets)",
                "  convoy tokens list --client CLIENT_ID\n  convoy tokens list -o json", _list)
    p.add_argument("--client", help="client id (default: the API token's only client)")

    p = command(tokens, "revoke", "revoke an enrollment token; enrolled devices are unaffected",
                "  convoy tokens revoke --client CLIENT_ID TOKEN_ID", _revoke)
    p.add_argument("--client", help="client id (default: the API token's only client)")
    p.add_argument("token_id", metavar="TOKEN_ID")
