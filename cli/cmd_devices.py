"""`convoy devices …`: inventory and a device's enrollment history."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import CliError, call, command, emit, print_table, printable, to_dict
from common.convoy.v1 import admin_pb2 as pb


def _device(msg: Any) -> dict[str, Any]:
    """A Device as JSON, shaped like the REST body (int64s as numbers, null when unset)."""
    out = to_dict(msg, snake=True)
    facts = out["facts"]
    facts["memory_bytes"] = int(facts["memory_bytes"])
    for disk in facts["disks"]:
        disk["total_bytes"], disk["free_bytes"] = int(disk["total_bytes"]), int(disk["free_bytes"])
    out["last_seen_at"] = out["last_seen_at"] or None
    out["revoked_at"] = out.get("revoked_at") or None
    out.setdefault("latest_enrollment", None)
    return out


def _list(args: argparse.Namespace) -> int:
    resp = call(args, "ListDevices", pb.ListDevicesRequest(client_id=args.client or "", limit=args.limit,
                                                           offset=args.offset, filter=args.filter or ""))
    rows = [_device(d) for d in resp.data]
    out = {"data": rows, "total": resp.total}

    def table() -> None:
        print_table(["id", "hostname", "os", "online", "identity", "tags", "site", "last enrollment"],
                    [[r["id"], r["facts"]["hostname"], r["facts"]["os"], "yes" if r["online"] else "no",
                      r.get("identity") or "bearer", ",".join(r["tags"]), r["site"],
                      (r["latest_enrollment"] or {}).get("status", "")] for r in rows])
        if resp.total > len(rows):
            print(f"({len(rows)} of {resp.total}; use --offset to see more)")

    emit(args, out, table)
    return 0


def _get(args: argparse.Namespace) -> int:
    out = _device(call(args, "GetDevice", pb.GetDeviceRequest(client_id=args.client or "", device_id=args.device_id)))

    def table() -> None:
        f = out["facts"]
        latest = out["latest_enrollment"]
        for key, value in [
            ("id", out["id"]), ("machine id", out["machine_id"]), ("hostname", f["hostname"]),
            ("os", f"{f['os']} {f['os_version']} ({f['arch']})"), ("cpus", f["cpu_count"]),
            ("memory", f"{int(f['memory_bytes']) // (1024 * 1024)} MiB"), ("ips", ", ".join(f["ip_addresses"])),
            ("tags", ", ".join(out["tags"])), ("site", out["site"]), ("online", out["online"]),
            ("last seen", out["last_seen_at"] or "never"), ("agent", out["agent_version"]),
            ("revoked", out["revoked_at"] or "no"),
            ("groups", ", ".join(out["group_ids"])),
            ("identity", f"certificate, expires {out['certificate_expires_at']}" if out.get("identity") == "certificate"
             else "bearer only (compatibility mode: reinstall to get a device certificate)"),
            ("last enrollment", f"{latest['status']} at {latest['enrollment_date']} ({latest['id']})" if latest else "none"),
        ]:
            print(f"{key + ':':<17}{printable(value)}")

    emit(args, out, table)
    return 0


def _history(args: argparse.Namespace) -> int:
    def page(cursor: str) -> Any:
        return call(args, "ListDeviceDeployments", pb.ListDeviceDeploymentsRequest(
            client_id=args.client or "", device_id=args.device_id, status=args.status or "",
            sort_by=args.sort_by or "", sort_order=args.sort_order or "", page_size=args.page_size or 0,
            cursor=cursor))

    resp = page(args.cursor or "")
    data = [to_dict(r, snake=True) for r in resp.data]
    while args.all and resp.next_cursor:
        resp = page(resp.next_cursor)
        data += [to_dict(r, snake=True) for r in resp.data]
    out = {"data": data, "total_count": resp.total_count, "next_cursor": resp.next_cursor or None}

    def table() -> None:
        print_table(["id", "status", "enrollment_date"], [[r["id"], r["status"], r["enrollment_date"]] for r in data])
        if out["next_cursor"]:
            print(f"more: --cursor {out['next_cursor']}  (or --all)")

    emit(args, out, table)
    if args.show_logs:
        for r in data:
            rec = call(args, "GetDeviceDeployment", pb.GetDeviceDeploymentRequest(
                client_id=args.client or "", device_id=args.device_id, deployment_id=r["id"]))
            if rec.has_error_logs:
                print(f"\n{rec.id} ({rec.status}):")
                for line in rec.error_logs:
                    print(f"  {printable(line)}")
    return 0


def _deployment(args: argparse.Namespace) -> int:
    rec = call(args, "GetDeviceDeployment", pb.GetDeviceDeploymentRequest(
        client_id=args.client or "", device_id=args.device_id, deployment_id=args.deployment_id))
    out = to_dict(rec, snake=True)
    out.pop("has_error_logs", None)
    out["user_id"] = rec.user_id if rec.HasField("user_id") else None
    out["error_logs"] = list(rec.error_logs) if rec.has_error_logs else None

    def table() -> None:
        for key in ("id", "status", "enrollment_date", "enrollment_token_id", "user_id", "created_at", "updated_at"):
            print(f"{key + ':':<21}{out[key] if out[key] is not None else '-'}")
        for line in out["error_logs"] or []:
            print(f"  {printable(line)}")

    emit(args, out, table)
    return 0


def _tag(args: argparse.Namespace) -> int:
    if args.tag is None and args.site is None and not args.clear_tags:
        raise CliError("nothing to change: pass --tag, --clear-tags and/or --site", 2)
    tags = [] if args.clear_tags else args.tag
    req = pb.UpdateDeviceRequest(client_id=args.client or "", device_id=args.device_id, tags=tags or [],
                                 set_tags=tags is not None, site=args.site or "", set_site=args.site is not None)
    out = _device(call(args, "UpdateDevice", req))
    emit(args, out, lambda: print(printable(f"device {out['id']}: tags={','.join(out['tags']) or '-'} "
                                            f"site={out['site'] or '-'}")))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    out = _device(call(args, "RevokeDevice", pb.RevokeDeviceRequest(client_id=args.client or "",
                                                                     device_id=args.device_id)))
    emit(args, out, lambda: print(printable(f"device {out['id']} revoked at {out['revoked_at']}: its credential "
                                            "is refused and its stream closed; its unfinished deployment "
                                            "records ended")))
    return 0


def register(sub: Any) -> None:
    devices = sub.add_parser("devices", help="enrolled devices and their enrollment history").add_subparsers(
        dest="sub", required=True, metavar="COMMAND")
    client_help = "client id (default: the API token's only client)"

    p = command(devices, "list", "list a client's devices", "  convoy devices list --client CLIENT_ID\n"
                "  convoy devices list -o json --limit 500 --offset 500\n"
                "  convoy devices list --filter '\"canary\" in tags and os_version >= 22.04'", _list)
    p.add_argument("--client", help=client_help)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--filter", help="only devices matching a target filter, e.g. 'os == \"linux\" and site == \"berlin\"'")

    p = command(devices, "revoke", "revoke a device: its credential stops working at once (operator role)",
                "  convoy devices revoke DEVICE_ID --client CLIENT_ID\n"
                "  (its stream is closed and it is refused from then on; its unfinished deployment records end,\n"
                "   so no rollout waits for it; `convoy devices replace` can enroll it again)", _revoke)
    p.add_argument("--client", help=client_help)
    p.add_argument("device_id", metavar="DEVICE_ID")

    from cli.cmd_enrollment import register_replace

    register_replace(devices)

    p = command(devices, "get", "show one device, with its latest enrollment",
                "  convoy devices get --client CLIENT_ID DEVICE_ID -o json", _get)
    p.add_argument("--client", help=client_help)
    p.add_argument("device_id", metavar="DEVICE_ID")

    p = command(devices, "history", "a device's enrollment deployments, newest first",
                "  convoy devices history --client CLIENT_ID DEVICE_ID\n"
                "  convoy devices history DEVICE_ID --status error --show-logs\n"
                "  convoy devices history DEVICE_ID --sort-by status --sort-order asc --page-size 500 --all -o json",
                _history)
    p.add_argument("--client", help=client_help)
    p.add_argument("device_id", metavar="DEVICE_ID")
    p.add_argument("--status", choices=("success", "error", "pending"))
    p.add_argument("--sort-by", choices=("enrollment_date", "status", "created_at"))
    p.add_argument("--sort-order", choices=("asc", "desc"))
    p.add_argument("--page-size", type=int, help="records per page, 1..500 (default 50)")
    p.add_argument("--cursor", help="next_cursor from a previous page")
    p.add_argument("--all", action="store_true", help="follow next_cursor to the last page")
    p.add_argument("--show-logs", action="store_true", help="also print each failed record's error_logs")

    p = command(devices, "deployment", "one enrollment deployment record, with its error_logs",
                "  convoy devices deployment --client CLIENT_ID DEVICE_ID DEPLOYMENT_ID -o json", _deployment)
    p.add_argument("--client", help=client_help)
    p.add_argument("device_id", metavar="DEVICE_ID")
    p.add_argument("deployment_id", metavar="DEPLOYMENT_ID")

    p = command(devices, "tag", "set a device's tags and/or site (used by deployment filters)",
                "  convoy devices tag --client CLIENT_ID DEVICE_ID --tag linux --tag canary --site berlin\n"
                "  convoy devices tag DEVICE_ID --clear-tags", _tag)
    p.add_argument("--client", help=client_help)
    p.add_argument("device_id", metavar="DEVICE_ID")
    p.add_argument("--tag", action="append", default=None, help="a tag (repeatable); replaces the device's tags")
    p.add_argument("--clear-tags", action="store_true", help="remove every tag")
    p.add_argument("--site", default=None, help="the device's site ('' clears it)")
