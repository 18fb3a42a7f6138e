"""`convoy run`: run a command on devices now and print what each one answered.

The ad-hoc form of a deployment, for the operator who would type `salt '*' cmd.run …`: one
command line creates a script from COMMAND and a deployment of it to the target, initializes
and starts it, follows it on the WatchDeployment stream and prints every device's result. It is
an ordinary script deployment (audited, visible in `convoy deployments list`, retriable), with
the rollout `immediate` or, with `--batch-size`, staggered with no delay between batches.

Exit status: 0 when every targeted device completed with exit code 0; 1 when any failed or was
skipped; 2 cancelled or rolled back; 3 paused; the usual error codes otherwise (5 when the
client's approval policy needs another operator's approval first: the deployment stays pending);
130 on Ctrl-C (the deployment goes on: `convoy deployments watch ID`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from cli.cmd_keys import add_sign_args, warn_unsigned, work_signature
from cli.common import (
    CliError,
    admin_stub,
    command,
    print_table,
    rpc_failure,
    server_address,
    to_dict,
)

PAGE = 500  # the coordinator's largest page of device records
FINISHED = frozenset({"completed", "failed", "cancelled", "rollback"})
EXIT = {"completed": 0, "failed": 1, "cancelled": 2, "rollback": 2, "paused": 3}


class _Admin:
    """One channel for the whole command (a channel per call would cost a connection each)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stub, self.metadata = admin_stub(args)

    def __call__(self, method: str, request: Any, timeout: float = 60.0) -> Any:
        import grpc

        try:
            return getattr(self.stub, method)(request, metadata=self.metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise rpc_failure(exc, server_address(self.args)) from None

    def watch(self, deployment_id: str) -> tuple[Any, Iterator[Any]]:
        """The WatchDeployment call (to cancel) and its events."""
        import grpc

        from common.convoy.v1 import admin_pb2 as pb

        stream = self.stub.WatchDeployment(pb.DeploymentRef(id=deployment_id), metadata=self.metadata)

        def events() -> Iterator[Any]:
            try:
                yield from stream
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.CANCELLED:
                    return
                raise rpc_failure(exc, server_address(self.args)) from None

        return stream, events()


def _batch_size(text: str) -> int | str:
    text = text.strip()
    if text.endswith("%"):
        return text
    try:
        return int(text)
    except ValueError:
        raise CliError(f"--batch-size {text!r}: expected a number of devices or a percentage, e.g. 10%", 2) from None


def _spec(args: argparse.Namespace, client_id: str, script_id: str) -> Any:
    from google.protobuf import json_format

    from common.convoy.v1 import types_pb2 as tpb

    if args.target_devices:
        target: dict[str, Any] = {"targetType": "devices",
                                  "targetConfig": {"type": "devices", "deviceIds": args.target_devices}}
    elif args.target_groups:
        target = {"targetType": "groups", "targetConfig": {"type": "groups", "groupIds": args.target_groups}}
    elif args.target_filter is not None:
        target = {"targetType": "filter", "targetConfig": {"type": "filter", "filter": args.target_filter}}
    else:
        target = {"targetType": "all", "targetConfig": {"type": "all"}}
    rollout: dict[str, Any] = {"type": "immediate"}
    if args.batch_size is not None:
        rollout = {"type": "staggered", "staggered": {"batchSize": _batch_size(args.batch_size),
                                                      "batchDelayMinutes": args.batch_delay}}
    if args.install_timeout is not None:
        rollout["installTimeoutMinutes"] = args.install_timeout
    body = {"name": args.name or _default_name(args.command_text), "type": "script", "clientId": client_id,
            "payload": {"scriptId": script_id, "parameters": {}}, "rolloutConfig": rollout, **target}
    return json_format.ParseDict(body, tpb.DeploymentSpec())


def _default_name(text: str) -> str:
    line = " ".join(text.split())
    return "run: " + (line if len(line) <= 60 else line[:57] + "...")


def _records(admin: _Admin, deployment_id: str) -> list[Any]:
    from common.convoy.v1 import admin_pb2 as pb

    out: list[Any] = []
    while True:
        resp = admin("ListDeploymentDevices", pb.ListDeploymentDevicesRequest(id=deployment_id, limit=PAGE,
                                                                               offset=len(out)))
        out.extend(resp.data)
        if not resp.data or len(out) >= resp.total:
            return out


def _progress_line(d: Any) -> str:
    p = d.progress
    batch = f" batch {p.current_batch}/{p.total_batches}" if p.total_batches > 1 else ""
    return (f"{d.status}{batch}: {p.completed} completed, {p.failed} failed, {p.skipped} skipped, "
            f"{p.running} running, {p.pending} pending of {p.total}")


def _answer(r: Any) -> str:
    """What a device said: its output, else its error or skip reason."""
    text = (r.output or "").rstrip("\n")
    if not text:
        text = r.error or r.skip_reason or ""
    return text


def _print_results(records: list[Any]) -> None:
    multi = any("\n" in _answer(r) for r in records)
    if multi:  # salt's shape: the device, then its output indented
        for r in records:
            code = f" (exit {r.exit_code})" if r.HasField("exit_code") and r.exit_code != 0 else ""
            print(f"{r.hostname or r.device_id}: {r.status}{code}")
            for line in _answer(r).splitlines():
                print(f"    {line}")
    else:
        print_table(["device", "status", "exit", "output"],
                    [[r.hostname or r.device_id, r.status, r.exit_code if r.HasField("exit_code") else "",
                      _answer(r)] for r in records])


def _run(args: argparse.Namespace) -> int:
    from common.convoy.v1 import admin_pb2 as pb

    started = time.monotonic()
    if not args.command_text.strip():
        raise CliError("nothing to run: COMMAND is empty", 2)
    admin = _Admin(args)
    script = admin("CreateScript", pb.CreateScriptRequest(
        client_id=args.client or "", name=args.name or _default_name(args.command_text),
        interpreter=args.interpreter, body=args.command_text))
    dep = admin("CreateDeployment", pb.CreateDeploymentRequest(spec=_spec(args, script.client_id, script.id)))
    admin("InitializeDeployment", pb.DeploymentRef(id=dep.id))  # a target of no device is refused here
    live = not args.output == "json" and sys.stderr.isatty()
    # Subscribe before starting, so the watch sees every change from the first dispatch on.
    stream, events = admin.watch(dep.id)
    last: Any = None
    try:
        try:
            # Signed (docs/security.md): the body signed is checked to be COMMAND itself.
            sig = work_signature(args, dep.id, rollback=False, script=(args.interpreter, args.command_text))
            admin("StartDeployment", pb.StartDeploymentRequest(id=dep.id, signature=sig))
            if sig is None:
                warn_unsigned(args, script.client_id)
        except CliError as exc:
            if exc.exit_code == 5 and str(exc).startswith("needs approval"):  # docs/approvals.md
                raise CliError(f"{exc}; deployment {dep.id} waits, pending: another operator runs convoy deployments "
                               f"approve {dep.id}, then convoy deployments start {dep.id}", 5) from None
            raise
        for ev in events:
            last = ev.deployment
            if live:
                print(f"\r{_progress_line(last)}\033[K", end="", file=sys.stderr, flush=True)
            if last.status in FINISHED or last.status == "paused":
                break
    except KeyboardInterrupt:
        stream.cancel()
        print(f"\nstopped watching; deployment {dep.id} goes on: convoy deployments watch {dep.id}",
              file=sys.stderr)
        return 130
    finally:
        stream.cancel()  # a no-op once the stream has ended
        if live:
            print(file=sys.stderr)
    if last is None:
        raise CliError(f"the coordinator sent no progress for deployment {dep.id}", 1)
    if last.status not in FINISHED and last.status != "paused":
        raise CliError(f"the watch stream ended while deployment {dep.id} was {last.status}", 6)
    records = _records(admin, dep.id)
    elapsed = time.monotonic() - started
    ok = last.status == "completed" and all(r.status == "completed" and r.exit_code == 0 for r in records)
    if args.output == "json":
        print(json.dumps({"deployment": to_dict(last), "devices": [to_dict(r) for r in records],
                          "seconds": round(elapsed, 3)}, indent=2))
    else:
        _print_results(records)
        p = last.progress
        print(f"deployment {dep.id} {last.status}: {p.completed} completed, {p.failed} failed, "
              f"{p.skipped} skipped of {p.total} in {elapsed:.2f} s")
        if last.status == "paused":
            print(f"paused{': ' + last.status_reason if last.status_reason else ''}; "
                  f"resume or cancel: convoy deployments resume|cancel {dep.id}")
    code = EXIT[last.status]
    return 1 if code == 0 and not ok else code


def register(sub: Any) -> None:
    p = command(sub, "run", "run a command on devices now (a script deployment) and print each device's result",
                "  convoy run --target-all 'echo ok'\n"
                "  convoy run --target-all --batch-size 10% 'systemctl restart nginx'\n"
                "  convoy run --target-filter \"'web' in tags\" --interpreter bash 'df -h /'\n"
                "  convoy run --target-devices DEVICE_ID DEVICE_ID -o json -- uptime   (-- ends the list of ids)\n"
                "exit status: 0 every device completed with exit code 0, 1 any failed or was skipped,\n"
                "2 cancelled, 3 paused; 130 on Ctrl-C (the deployment goes on).", _run)
    p.add_argument("command_text", metavar="COMMAND", help="what to run (the script body)")
    p.add_argument("--interpreter", default="sh", metavar="sh|bash|python|powershell",
                   help="what runs COMMAND on the device (default sh)")
    t = p.add_argument_group("target (exactly one)").add_mutually_exclusive_group(required=True)
    t.add_argument("--target-all", action="store_true", help="every device of the client")
    t.add_argument("--target-devices", nargs="+", metavar="ID", help="explicit device ids")
    t.add_argument("--target-groups", nargs="+", metavar="ID", help="device group ids")
    t.add_argument("--target-filter", metavar="EXPR", help="a filter expression, e.g. \"os == 'linux'\"")
    p.add_argument("--batch-size", metavar="N|N%", help="staggered: devices per batch (default: all at once)")
    p.add_argument("--batch-delay", type=float, default=0, metavar="MIN",
                   help="staggered: minutes between batches (default 0)")
    p.add_argument("--install-timeout", type=float, metavar="MIN", help="fail a device silent for this long")
    p.add_argument("--name", help="the deployment's name (default: 'run: ' and the command)")
    p.add_argument("--client", metavar="ID", help="client id (needed when the API token spans several clients)")
    add_sign_args(p, expect=False)
