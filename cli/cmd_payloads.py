"""`convoy groups …`, `convoy scripts …` and `convoy artifacts …`."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cli.common import CliError, call, command, emit, print_table, to_dict
from common.convoy.v1 import admin_pb2 as pb

UPLOAD_CHUNK = 1024 * 1024  # well under the 16 MiB gRPC message limit
UPLOAD_TIMEOUT = 6 * 3600.0  # a 2 GiB artifact over a slow link


def _read_text(path: str, flag: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{flag}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}", 2) from None


def _add_client_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--client", help="client id (needed when the token spans several clients)")


# --- groups ---------------------------------------------------------------------------------

def _group(message: Any) -> dict[str, Any]:
    return to_dict(message, snake=True)


def _groups_create(args: argparse.Namespace) -> int:
    out = _group(call(args, "CreateGroup", pb.CreateGroupRequest(client_id=args.client, name=args.name)))
    emit(args, out, lambda: print(f"created group {out['id']} ({out['name']})"))
    return 0


def _groups_list(args: argparse.Namespace) -> int:
    rows = [_group(g) for g in call(args, "ListGroups", pb.ListGroupsRequest(client_id=args.client)).data]
    emit(args, rows, lambda: print_table(
        ["id", "name", "devices", "client_id", "created_at"],
        [[r["id"], r["name"], len(r["device_ids"]), r["client_id"], r["created_at"]] for r in rows]))
    return 0


def _groups_members(method: str, verb: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        req = pb.GroupMembersRequest(client_id=args.client, group_id=args.group_id, device_ids=args.device_ids)
        out = _group(call(args, method, req))
        emit(args, out, lambda: print(f"{verb} {len(args.device_ids)} device(s); group {out['name']} "
                                      f"now has {len(out['device_ids'])}"))
        return 0
    return handler


# --- scripts --------------------------------------------------------------------------------

def _script(message: Any) -> dict[str, Any]:
    return to_dict(message, snake=True)


def _scripts_create(args: argparse.Namespace) -> int:
    req = pb.CreateScriptRequest(
        client_id=args.client, name=args.name, interpreter=args.interpreter,
        body=_read_text(args.file, "--file"),
        rollback_body=_read_text(args.rollback_file, "--rollback-file") if args.rollback_file else "",
        parameters_schema=_read_text(args.parameters_schema, "--parameters-schema") if args.parameters_schema else "",
    )
    out = _script(call(args, "CreateScript", req))
    emit(args, out, lambda: print(f"created script {out['id']} ({out['name']}, {out['interpreter']})"))
    return 0


def _schema_params(text: str) -> str:
    if not text:
        return ""
    schema = json.loads(text)
    required = set(schema.get("required", []))
    return ", ".join(n + ("" if n in required else "?") for n in schema.get("properties", {}))


def _scripts_list(args: argparse.Namespace) -> int:
    rows = [_script(s) for s in call(args, "ListScripts", pb.ListScriptsRequest(client_id=args.client)).data]
    emit(args, rows, lambda: print_table(
        ["id", "name", "interpreter", "parameters", "rollback", "created_at"],
        [[r["id"], r["name"], r["interpreter"], _schema_params(r["parameters_schema"]),
          "yes" if r["rollback_body"] else "no", r["created_at"]] for r in rows]))
    return 0


# --- artifacts ------------------------------------------------------------------------------

def _artifact(message: Any) -> dict[str, Any]:
    out = to_dict(message, snake=True)
    out["size"] = int(out["size"])  # int64 is a string in proto JSON; a number reads better here
    return out


def _upload_messages(f: BinaryIO, client_id: str, name: str) -> Iterator[pb.UploadArtifactChunk]:
    """The file as a stream of messages, read one chunk at a time (never whole)."""
    yield pb.UploadArtifactChunk(client_id=client_id, name=name, data=f.read(UPLOAD_CHUNK))
    while chunk := f.read(UPLOAD_CHUNK):
        yield pb.UploadArtifactChunk(data=chunk)


def _artifacts_upload(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.is_dir():
        raise CliError(f"{path} is a directory; upload a file (e.g. a .tar.gz of it)", 2)
    try:
        f = path.open("rb")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", 2) from None
    with f:
        name = args.name or os.path.basename(path)
        out = _artifact(call(args, "UploadArtifact", _upload_messages(f, args.client, name), timeout=UPLOAD_TIMEOUT))
    emit(args, out, lambda: print(f"uploaded artifact {out['id']} ({out['name']}, {out['kind']}, "
                                  f"{out['size']} bytes, sha256 {out['sha256']})"))
    return 0


def _artifacts_list(args: argparse.Namespace) -> int:
    rows = [_artifact(a) for a in call(args, "ListArtifacts", pb.ListArtifactsRequest(client_id=args.client)).data]
    emit(args, rows, lambda: print_table(
        ["id", "name", "kind", "size", "sha256", "created_at"],
        [[r["id"], r["name"], r["kind"], r["size"], r["sha256"][:12], r["created_at"]] for r in rows]))
    return 0


def register(sub: Any) -> None:
    groups = sub.add_parser("groups", help="device groups (deployment targets)").add_subparsers(
        dest="sub", required=True, metavar="COMMAND")
    p = command(groups, "create", "create a device group (name unique within the client)",
                "  convoy groups create --name web-servers -o json\n"
                "  convoy groups create --name canary --client CLIENT_ID", _groups_create)
    p.add_argument("--name", required=True)
    _add_client_arg(p)
    p = command(groups, "list", "list groups with their member counts",
                "  convoy groups list\n  convoy groups list --client CLIENT_ID -o json", _groups_list)
    _add_client_arg(p)
    for name, method, verb, what in (("add", "AddGroupMembers", "added", "add devices to a group (idempotent)"),
                                     ("remove", "RemoveGroupMembers", "removed", "remove devices from a group")):
        p = command(groups, name, what, f"  convoy groups {name} GROUP_ID DEVICE_ID [DEVICE_ID ...]\n"
                    f"  convoy groups {name} GROUP_ID DEVICE_ID -o json", _groups_members(method, verb))
        p.add_argument("group_id", metavar="GROUP_ID")
        p.add_argument("device_ids", metavar="DEVICE_ID", nargs="+")
        _add_client_arg(p)

    scripts = sub.add_parser("scripts", help="script payloads").add_subparsers(dest="sub", required=True, metavar="COMMAND")
    p = command(scripts, "create", "create a script payload from a file",
                "  convoy scripts create --name restart-nginx --interpreter bash --file restart.sh -o json\n"
                "  convoy scripts create --name set-motd --interpreter sh --file motd.sh \\\n"
                "      --rollback-file motd-undo.sh --parameters-schema motd.schema.json\n"
                "where motd.schema.json is e.g.\n"
                '  {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}',
                _scripts_create)
    p.add_argument("--name", required=True)
    p.add_argument("--interpreter", required=True, metavar="sh|bash|python|powershell",
                   help="what runs the script on the device")
    p.add_argument("--file", required=True, metavar="PATH", help="the script body")
    p.add_argument("--rollback-file", metavar="PATH", help="the script that reverts it (used by rollback)")
    p.add_argument("--parameters-schema", metavar="JSON_FILE", help="JSON Schema (subset) of its parameters")
    _add_client_arg(p)
    p = command(scripts, "list", "list scripts", "  convoy scripts list\n  convoy scripts list -o json", _scripts_list)
    _add_client_arg(p)

    artifacts = sub.add_parser("artifacts", help="uploaded files: packages, archives").add_subparsers(
        dest="sub", required=True, metavar="COMMAND")
    p = command(artifacts, "upload", "upload a file, streamed in chunks; stored by its sha256",
                "  convoy artifacts upload ./agent-tools_1.4.2_amd64.deb -o json\n"
                "  convoy artifacts upload build/site.tgz --name site-2024-06.tar.gz", _artifacts_upload)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--name", help="name to store it under (default: the file's name); .deb, .tar.gz/.tgz set the kind")
    _add_client_arg(p)
    p = command(artifacts, "list", "list artifacts", "  convoy artifacts list\n  convoy artifacts list -o json",
                _artifacts_list)
    _add_client_arg(p)
