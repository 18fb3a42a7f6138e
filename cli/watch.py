"""`convoy deployments watch ID`: live progress from the WatchDeployment stream (no polling).

On a terminal: rich bars (overall, per batch), the current batch, the latest failures, and a
clear line when the deployment pauses or ends. Piped: one plain line per event; `-o json`: JSON
lines. Exit status: 0 completed, 10 failed, 11 cancelled, 12 rolled back, 13 paused; errors keep
the usual codes (cli/common.py), which never overlap these.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from cli.cmd_deployments import (
    FINISHED,
    PENDING_STYLE,
    WATCH_EXIT,
    _deployment,
    _progress_text,
    _record,
    approval_text,
)
from cli.common import CliError, admin_stub, printable, rpc_failure, server_address, to_dict
from common.convoy.v1 import admin_pb2 as pb
from common.rollout_text import strategy_lines


def _events(args: argparse.Namespace) -> tuple[Any, Iterator[dict[str, Any]]]:
    """The WatchDeployment call (to cancel) and its events as the seed's JSON."""
    import grpc

    stub, metadata = admin_stub(args)
    stream = stub.WatchDeployment(pb.DeploymentRef(id=args.id), metadata=metadata)

    def gen() -> Iterator[dict[str, Any]]:
        try:
            for ev in stream:
                yield {"deployment": _deployment(ev.deployment), "batches": [to_dict(b) for b in ev.batches],
                       "recentFailures": [_record(r) for r in ev.recent_failures]}
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return
            raise rpc_failure(exc, server_address(args)) from None

    return stream, gen()


def _plain_line(ev: dict[str, Any]) -> str:
    d, p = ev["deployment"], ev["deployment"]["progress"]
    batch = f" batch {p['currentBatch']}/{p['totalBatches']}" if p["totalBatches"] else ""
    reason = f" reason={printable(d['statusReason'])!r}" if d["statusReason"] else ""
    if (text := approval_text(d.get("approval") or {})):
        reason += f" approval={printable(text)!r}"
    late = " waiting-for-late-arrivers" if late_arrivers_line(d) else ""
    due = ""
    if d.get("nextBatchAt") and d["status"] == "running":  # between batches, or a scheduled start
        due = f" {'first' if p['currentBatch'] == 0 else 'next'}_batch_at={d['nextBatchAt']}"
    return (f"{time.strftime('%H:%M:%S')} {d['status']}{batch} completed={p['completed']} failed={p['failed']} "
            f"skipped={p['skipped']} running={p['running']} pending={p['pending']} total={p['total']} "
            f"{p['percentComplete']}%{due}{reason}{late}")


def _ending(d: dict[str, Any]) -> str:
    p, status = d["progress"], d["status"]
    reason = f": {d['statusReason']}" if d["statusReason"] else ""
    if status == "paused":
        return (f"deployment paused{reason}. Inspect `convoy deployments devices {d['id']} --status failed`, "
                f"then `convoy deployments resume {d['id']}` or `convoy deployments cancel {d['id']}`")
    if status == "rollback":
        return f"deployment rolled back by {d['rolledBackBy'] or 'a rollback deployment'}"
    return f"deployment {status}{reason} ({_progress_text(p)})"


def _bar(counts: list[tuple[int, str]], total: int, width: int) -> Any:
    """A bar of `width` cells split in proportion to the (count, style) segments."""
    from rich.text import Text

    bar = Text()
    used = 0
    for i, (n, style) in enumerate(counts):
        cells = width - used if i == len(counts) - 1 else (round(n * width / total) if total else 0)
        cells = max(0, min(cells, width - used))
        bar.append(("─" if style == PENDING_STYLE else "━") * cells, style=style)  # readable without colour
        used += cells
    return bar


def _render(ev: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    d, p = ev["deployment"], ev["deployment"]["progress"]
    colour = {"completed": "green", "failed": "red", "paused": "yellow", "cancelled": "magenta"}.get(d["status"], "cyan")
    head = Text.assemble((d["name"], "bold"), f"  {d['id']}  ", (d["status"], f"bold {colour}"))
    if p["totalBatches"]:
        head.append(f"  batch {p['currentBatch']} of {p['totalBatches']}")
    if d["nextBatchAt"] and d["status"] == "running":
        which = "first" if p["currentBatch"] == 0 else "next"  # a scheduled start (startAt) shows its time
        head.append(f"  {which} batch at {d['nextBatchAt']}", style="dim")
    segments = [(p["completed"], "green"), (p["failed"], "red"), (p["skipped"], "yellow"), (p["running"], "cyan"),
                (p["pending"], PENDING_STYLE)]
    overall = Text.assemble(_bar(segments, p["total"], 40), f" {p['percentComplete']:>3}%  ",
                            (f"✓ {p['completed']} ", "green"), (f"✗ {p['failed']} ", "red"),
                            (f"skipped {p['skipped']} ", "yellow"), (f"running {p['running']} ", "cyan"),
                            f"pending {p['pending']}  of {p['total']}")
    parts: list[Any] = [head, overall]
    if (text := approval_text(d.get("approval") or {})):
        style = "bold yellow" if d["approval"]["status"] == "required" else "green"
        parts.append(Text(printable(text), style=style))
    batches = ev["batches"]
    if len(batches) > 1:
        current = max(p["currentBatch"], 1)
        shown = [b for b in batches if current - 5 < b["batchNumber"] <= current + 4]
        if len(shown) < len(batches):
            parts.append(Text(f"batches {shown[0]['batchNumber']}–{shown[-1]['batchNumber']} of {len(batches)}",
                              style="dim"))
        for b in shown:
            done = b["completed"] + b["failed"] + b["skipped"]
            parts.append(Text.assemble(f"  batch {b['batchNumber']:>3} ", _bar(
                [(b["completed"], "green"), (b["failed"], "red"), (b["skipped"], "yellow"), (b["running"], "cyan"),
                 (b["pending"], PENDING_STYLE)], b["total"], 24), f" {done}/{b['total']}",
                (f"  ✗ {b['failed']}" if b["failed"] else "", "red")))
    if ev["recentFailures"]:
        table = Table(title="latest failures", title_justify="left", show_edge=False, pad_edge=False)
        for col in ("hostname", "batch", "exit", "reason", "output (tail)"):
            table.add_column(col, overflow="fold" if col == "output (tail)" else "ellipsis")
        for r in ev["recentFailures"]:
            tail = (r.get("output") or "").strip().splitlines()[-1:] or [""]
            # Device-sent text: control characters stripped, and Text() so rich reads no markup in it.
            table.add_row(Text(printable(r["hostname"] or r["deviceId"])), str(r["batchNumber"]),
                          "" if r["exitCode"] is None else str(r["exitCode"]),
                          Text(printable(r.get("error") or "")), Text(printable(tail[0][-80:])))
        parts.append(table)
    parts.extend(Text(f"  {line}", style="dim") for line in strategy_lines(d.get("rolloutConfig")))
    late = late_arrivers_line(d)
    if late:
        parts.append(Text(late, style="yellow"))
    if d["status"] == "paused":
        parts.append(Text(f"⏸ paused: {printable(d['statusReason']) or 'by an operator'}", style="bold yellow"))
    return Group(*parts)


def late_arrivers_line(d: dict[str, Any]) -> str:
    """Every batch dispatched, devices still pending, offlineDevices "wait": the deployment is
    waiting for late arrivers (not stuck)."""
    p, offline = d["progress"], (d.get("rolloutConfig") or {}).get("offlineDevices") or {}
    if offline.get("policy") != "wait" or d["status"] != "running" or not p["pending"] \
            or p["currentBatch"] < p["totalBatches"]:
        return ""
    return (f"waiting for {p['pending']} late arriver(s): each gets the job if it connects within "
            f"{float(offline.get('waitMinutes') or 0):g} min of its batch's start, else it is skipped")


def watch(args: argparse.Namespace) -> int:
    as_json = args.output == "json"
    live_ui = not as_json and sys.stdout.isatty()
    stream, events = _events(args)
    last: dict[str, Any] | None = None
    live: Any = None
    try:
        if live_ui:
            from rich.console import Console
            from rich.live import Live

            live = Live(console=Console(), auto_refresh=False, transient=False)
            live.start()
        for ev in events:
            last = ev
            if live is not None:
                live.update(_render(ev), refresh=True)
            elif as_json:
                print(json.dumps(ev, separators=(",", ":")), flush=True)
            else:
                print(_plain_line(ev), flush=True)
            status = ev["deployment"]["status"]
            if status in FINISHED or (status == "paused" and not args.no_exit_on_pause):
                break
    except KeyboardInterrupt:
        stream.cancel()
        if live is not None:
            live.stop()
        where = f" (deployment still {last['deployment']['status']})" if last else ""
        print(f"stopped watching{where}", file=sys.stderr)
        return 130
    finally:
        stream.cancel()  # a no-op once the stream has ended
        if live is not None:
            live.stop()
    if last is None:
        raise CliError("the coordinator sent no progress", 1)
    dep = last["deployment"]
    status = dep["status"]
    if status not in FINISHED and status != "paused":
        raise CliError(f"the watch stream ended while the deployment was {status}", 6)
    if not as_json:
        if live_ui:
            from rich.console import Console

            Console().print(_ending(dep), style="bold", highlight=False)
        else:
            print(_ending(dep), flush=True)
    return WATCH_EXIT[status]
