"""`convoy deployments …`: the deployment API (seed 004) and `watch`, live progress.

`-o json` prints the seed's camelCase JSON (MessageToDict of the proto, the same shape as the
REST API). A body is sent as a DeploymentSpec, so a `--file` is exactly the seed's create body.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cli.cmd_keys import add_sign_args, warn_unsigned, work_signature
from cli.common import (
    CliError,
    call,
    command,
    emit,
    print_table,
    printable,
    to_dict,
)
from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import types_pb2 as tpb
from common.durations import minutes_arg
from common.rollout_text import strategy_lines

STATUSES = ("draft", "pending", "downloading", "installing", "running", "paused", "completed", "failed",
            "cancelled", "rollback")
RECORD_STATUSES = ("pending", "downloading", "installing", "completed", "failed", "skipped")
TYPES = ("script", "patch", "software", "policy")

# `watch` exit statuses (documented in docs/cli.md): scripts branch on them.
# They sit apart from the error codes (1-6, 130), so a bad token or an unreachable coordinator
# can never be read as "paused" or "failed".
WATCH_EXIT = {"completed": 0, "failed": 10, "cancelled": 11, "rollback": 12, "paused": 13}
FINISHED = frozenset({"completed", "failed", "cancelled", "rollback"})
PENDING_STYLE = "grey50"


# --- proto -> the seed's JSON -----------------------------------------------------------------

# Fields the REST API shows as null when unset; proto3 strings print them as "".
NULLABLE_DEPLOYMENT = ("statusReason", "startedAt", "completedAt", "nextBatchAt", "rollbackOf", "rolledBackBy",
                       "signedBy")
NULLABLE_RECORD = ("jobId", "error", "skipReason", "nextAttemptAt", "startedAt", "finishedAt")


def _integral(value: Any) -> Any:
    """Struct/Value numbers are doubles: whole numbers are written as the REST API writes them
    (`"backoffMinutes": [5]`, not `[5.0]`)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def _nulls(out: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    for key in keys:
        if out.get(key) == "":
            out[key] = None
    return out


def _deployment(msg: tpb.Deployment) -> dict[str, Any]:
    out = to_dict(msg)
    # only the list its target type uses, as in the seed's body ({"type": "groups", "groupIds": […]})
    out["targetConfig"] = {k: v for k, v in out["targetConfig"].items() if k == "type" or v}
    for key in ("rolloutConfig", "payload"):
        if key in out:
            out[key] = _integral(out[key])
    if "rolloutConfig" in out:
        out["rolloutConfig"] = _unset_strategies(out["rolloutConfig"])
    return _nulls(out, NULLABLE_DEPLOYMENT)


STRATEGY_KEYS = ("batches", "failureBasis", "onFailureThreshold", "startAt")
"""Rollout-strategy fields proto3 prints empty when unset ([] or ""): left out, as REST leaves them."""


def _unset_strategies(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if not (k in STRATEGY_KEYS and v in ("", []))}
    if isinstance(out.get("staggered"), dict):
        out["staggered"] = _unset_strategies(out["staggered"])
    return out


def _record(msg: tpb.DeploymentDevice) -> dict[str, Any]:
    out = to_dict(msg)
    out["exitCode"] = msg.exit_code if msg.HasField("exit_code") else None
    return _nulls(out, NULLABLE_RECORD)


# --- the create/update body -------------------------------------------------------------------

def _read_body(path: str) -> dict[str, Any]:
    """The JSON object in `path` ('-' = stdin), or a one-line CliError naming the file."""
    name = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{name}: cannot read: {getattr(exc, 'strerror', None) or exc}", 2) from None
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{name}: not valid JSON: {exc}", 2) from None
    if not isinstance(body, dict):
        raise CliError(f"{name}: must hold a JSON object (the create body), not {type(body).__name__}", 2)
    return body


def _spec(body: dict[str, Any], origin: str) -> tpb.DeploymentSpec:
    from google.protobuf import json_format

    try:
        return json_format.ParseDict(body, tpb.DeploymentSpec())
    except Exception as exc:  # noqa: BLE001 - ParseError, or TypeError/AttributeError on odd shapes
        raise CliError(f"{origin}: {' '.join(str(exc).split())}", 2) from None


def _file_body(path: str) -> dict[str, Any]:
    """A create/update body from a file, checked against DeploymentSpec so errors name the file."""
    body = _read_body(path)
    _spec(body, "stdin" if path == "-" else path)
    return body


def _param_value(text: str, kind: str | None) -> Any:
    """A `--param` value typed by the script's parameters schema (strings when it has none)."""
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            pass
    elif kind == "number":
        try:
            return float(text)
        except ValueError:
            pass
    elif kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text  # the server names the parameter if the type is wrong


def _params(args: argparse.Namespace, script_id: str) -> dict[str, Any]:
    pairs = []
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--param {item!r}: expected KEY=VALUE", 2)
        pairs.append((key, value))
    types: dict[str, str] = {}
    if pairs:
        try:
            scripts = call(args, "ListScripts", pb.ListScriptsRequest(client_id=args.client or ""), timeout=10).data
        except CliError:
            scripts = []  # typed by the server's error message instead
        for s in scripts:
            if s.id == script_id and s.parameters_schema:
                props = json.loads(s.parameters_schema).get("properties", {})
                types = {k: v.get("type", "string") for k, v in props.items()}
    return {k: _param_value(v, types.get(k)) for k, v in pairs}


def _whole(value: float) -> int | float:
    """5.0 minutes is written 5, as the seed's bodies write it."""
    return int(value) if float(value).is_integer() else value


def _backoff(text: str) -> list[int | float]:
    from common.durations import parse_minutes

    try:
        values = [parse_minutes(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"--backoff {text!r}: expected waits separated by commas, minutes or durations, "
                       "e.g. 5,15,60 or 30s,5m,1h", 2) from None
    if not values:
        raise CliError("--backoff: give at least one wait", 2)
    return [_whole(v) for v in values]


def _batch_size(text: str) -> int | str:
    text = text.strip()
    if text.endswith("%"):
        return text
    try:
        return int(text)
    except ValueError:
        return text  # the server's 400 says what a batch size may be


def _apply_strategy_flags(args: argparse.Namespace, rollout: dict[str, Any],
                          staggered: dict[str, Any]) -> tuple[bool, bool]:
    """The rollout-strategy flags (docs/deployments-rules.md, "Rollout strategies") into `rollout`
    and `staggered`; returns (rolloutConfig touched, staggered touched)."""
    touched = staggered_touched = False
    sizing: dict[str, Any] | None = None
    if args.batches is not None:
        sizing = {"batches": [_batch_size(v) for v in args.batches.split(",") if v.strip()]}
    if args.ramp_start is not None:
        if sizing:
            raise CliError("--batches and --ramp-start are two ways to size batches: give one", 2)
        ramp: dict[str, Any] = {"start": args.ramp_start}
        if args.ramp_factor is not None:
            ramp["factor"] = _whole(args.ramp_factor)
        if args.ramp_max is not None:
            ramp["max"] = _batch_size(args.ramp_max)
        sizing = {"ramp": ramp}
    elif args.ramp_factor is not None or args.ramp_max is not None:
        raise CliError("--ramp-factor and --ramp-max go with --ramp-start", 2)
    if sizing and args.batch_size is None:  # these replace a stored batchSize (PUT replaces rolloutConfig)
        for key in ("batchSize", "batches", "ramp"):
            staggered.pop(key, None)
    if sizing:
        staggered.update(sizing)
        staggered_touched = True
    for flag, key, value in (("--success-gate-percent", "successGatePercent", args.success_gate_percent),
                             ("--failure-basis", "failureBasis", args.failure_basis),
                             ("--min-finished-for-percent", "minFinishedForPercent", args.min_finished_for_percent)):
        if value is None:
            continue
        if args.immediate:
            raise CliError(f"{flag} is for a staggered rollout; it cannot go with --immediate", 2)
        staggered[key] = _whole(value) if isinstance(value, float) else value
        staggered_touched = True
    for key, value in (("maxPerMinute", args.max_per_minute), ("onFailureThreshold", args.on_failure_threshold),
                       ("startAt", args.start_at)):
        if value is not None:
            rollout[key], touched = value, True
    return touched or staggered_touched, staggered_touched


def _apply_flags(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    """The top-level keys the flags set, each merged over the same key of `base`."""
    out: dict[str, Any] = {}
    if args.name is not None:
        out["name"] = args.name
    if args.client:
        out["clientId"] = args.client

    payload: dict[str, Any] | None = None
    kind = args.type
    old_payload = dict(base.get("payload") or {})
    if args.script or args.param:
        script_id = args.script or old_payload.get("scriptId", "")
        params = dict(old_payload.get("parameters") or {}) if not args.script else {}
        params.update(_params(args, script_id))
        payload, kind = {"scriptId": script_id, "parameters": params}, kind or "script"
    elif args.artifact:
        payload, kind = {"artifactId": args.artifact}, kind or "software"
        if args.package_name:
            payload["packageName"] = args.package_name
    elif args.package:
        packages = [dict(zip(("name", "version"), p.split("=", 1), strict=False)) for p in args.package]
        payload, kind = {"packages": packages}, kind or "patch"
    elif args.policy_document:
        document = _read_body(args.policy_document)
        payload = {"name": args.policy or Path(args.policy_document).stem, "version": args.policy_version,
                   "document": document}
        kind = kind or "policy"
    if payload is not None:
        out["payload"] = payload
    if kind is not None:
        out["type"] = kind

    if args.target_devices:
        out["targetType"], out["targetConfig"] = "devices", {"type": "devices", "deviceIds": args.target_devices}
    elif args.target_groups:
        out["targetType"], out["targetConfig"] = "groups", {"type": "groups", "groupIds": args.target_groups}
    elif args.target_filter is not None:
        out["targetType"], out["targetConfig"] = "filter", {"type": "filter", "filter": args.target_filter}
    elif args.target_all:
        out["targetType"], out["targetConfig"] = "all", {"type": "all"}

    rollout = json.loads(json.dumps(base.get("rolloutConfig") or {}))  # a deep copy
    touched = staggered_touched = False
    staggered = dict(rollout.get("staggered") or {})
    if args.immediate:
        rollout["type"], touched = "immediate", True
        rollout.pop("staggered", None)
    for flag, key, value in (("--batch-size", "batchSize", args.batch_size),
                             ("--batch-delay", "batchDelayMinutes", args.batch_delay),
                             ("--pause-on-failure-count", "pauseOnFailureCount", args.pause_on_failure_count),
                             ("--pause-on-failure-percent", "pauseOnFailurePercent", args.pause_on_failure_percent)):
        if value is None:
            continue
        if args.immediate:
            raise CliError(f"{flag} is for a staggered rollout; it cannot go with --immediate", 2)
        staggered[key] = _batch_size(value) if key == "batchSize" else _whole(value)
        touched = staggered_touched = True
    strategy_touched, strategy_staggered = _apply_strategy_flags(args, rollout, staggered)
    touched = touched or strategy_touched
    staggered_touched = staggered_touched or strategy_staggered
    if staggered_touched:
        if not any(k in staggered for k in ("batchSize", "batches", "ramp")):
            raise CliError("a staggered rollout needs --batch-size (N devices or N%), --batches or --ramp-start", 2)
        rollout["type"], rollout["staggered"] = "staggered", staggered
    if args.respect_maintenance_windows is not None:
        rollout["respectMaintenanceWindows"], touched = args.respect_maintenance_windows, True
    retry = dict(rollout.get("retryConfig") or {})
    if args.max_retries is not None:
        retry["maxRetries"] = args.max_retries
    if args.backoff is not None:
        retry["backoffMinutes"] = _backoff(args.backoff)
    if retry != (rollout.get("retryConfig") or {}):
        rollout["retryConfig"], touched = retry, True
    if args.install_timeout is not None:
        rollout["installTimeoutMinutes"], touched = _whole(args.install_timeout), True
    touched = _apply_devstrat_flags(args, rollout) or touched
    if touched:
        out["rolloutConfig"] = rollout
    return out


def _apply_devstrat_flags(args: argparse.Namespace, rollout: dict[str, Any]) -> bool:
    """--verify-script/--verify-timeout, --offline-devices/--offline-wait, --window-policy/--window-wait-max
    into `rollout` (rolloutConfig.verify, offlineDevices, windowPolicy, windowWaitMaxHours)."""
    touched = False
    if args.verify_script is not None or args.verify_timeout is not None:
        verify = dict(rollout.get("verify") or {})
        if args.verify_script is not None:
            verify["scriptId"] = args.verify_script
        if args.verify_timeout is not None:
            verify["timeoutMinutes"] = _whole(args.verify_timeout)
        if "scriptId" not in verify:
            raise CliError("--verify-timeout needs --verify-script ID (the health check to run)", 2)
        rollout["verify"], touched = verify, True
    if args.offline_devices is not None or args.offline_wait is not None:
        policy = args.offline_devices or "wait"
        if policy == "skip":
            if args.offline_wait is not None:
                raise CliError("--offline-wait is for --offline-devices wait", 2)
            rollout["offlineDevices"] = {"policy": "skip"}
        else:
            wait = args.offline_wait if args.offline_wait is not None else \
                (rollout.get("offlineDevices") or {}).get("waitMinutes")
            if wait is None:
                raise CliError("--offline-devices wait needs --offline-wait DURATION (e.g. 2h)", 2)
            rollout["offlineDevices"] = {"policy": "wait", "waitMinutes": _whole(wait)}
        touched = True
    if args.window_policy is not None:
        rollout["windowPolicy"], touched = args.window_policy, True
        if args.window_policy == "skip":
            rollout.pop("windowWaitMaxHours", None)
    if args.window_wait_max is not None:
        rollout["windowWaitMaxHours"], touched = _whole(round(args.window_wait_max / 60, 6)), True
    return touched


# --- printing ---------------------------------------------------------------------------------

def _progress_text(p: dict[str, Any]) -> str:
    return (f"{p['completed']} completed, {p['failed']} failed, {p['skipped']} skipped, {p['running']} running, "
            f"{p['pending']} pending of {p['total']} ({p['percentComplete']}%)")


def _sizing_text(s: dict[str, Any]) -> str:
    if s.get("batches"):
        return "batches " + ", ".join(str(v) for v in s["batches"])
    if s.get("ramp"):
        ramp = s["ramp"]
        cap = f", max {ramp['max']}" if ramp.get("max") is not None else ""
        return f"ramp from {ramp.get('start')} x{ramp.get('factor', 2)}{cap}"
    return f"batch size {s.get('batchSize')}"


def _staggered_strategy_text(s: dict[str, Any]) -> str:
    out = ""
    if s.get("successGatePercent") is not None:
        out += f", next batch only if {s['successGatePercent']}% completed"
    if s.get("failureBasis") == "finished":
        out += ", percent of finished devices"
    if s.get("minFinishedForPercent"):
        out += f", no percent pause before {s['minFinishedForPercent']} finished"
    return out


def _rollout_strategy_text(r: dict[str, Any]) -> str:
    out = ""
    if r.get("maxPerMinute"):
        out += f"; at most {r['maxPerMinute']} dispatches a minute"
    if r.get("onFailureThreshold") and r["onFailureThreshold"] != "pause":
        out += f"; a crossed threshold: {r['onFailureThreshold']}"
    if r.get("startAt"):
        out += f"; starts at {r['startAt']}"
    return out


def _show(d: dict[str, Any]) -> None:
    p, r = d["progress"], d["rolloutConfig"]
    target = d["targetConfig"]
    what = {"devices": target.get("deviceIds"), "groups": target.get("groupIds"), "filter": target.get("filter")}
    rollout = r.get("type", "immediate")
    if rollout == "staggered":
        s = r.get("staggered", {})
        rollout += f" ({_sizing_text(s)}, delay {s.get('batchDelayMinutes', 0)} min"
        if "pauseOnFailureCount" in s:
            rollout += f", pause at {s['pauseOnFailureCount']} failures"
        if "pauseOnFailurePercent" in s:
            rollout += f", pause at {s['pauseOnFailurePercent']}% failed"
        rollout += _staggered_strategy_text(s) + ")"
    rollout += _rollout_strategy_text(r)
    retry = r.get("retryConfig", {})
    rows = [
        ("id", d["id"]), ("name", d["name"]), ("type", d["type"]), ("status", d["status"]),
        ("reason", d["statusReason"] or "-"), ("payload", json.dumps(d.get("payload", {}))),
        ("target", f"{d['targetType']} {json.dumps(what.get(d['targetType'])) if d['targetType'] in what else ''}".strip()),
        ("rollout", rollout),
        ("maintenance", "respected" if r.get("respectMaintenanceWindows") else "ignored"),
        ("retries", f"max {retry.get('maxRetries', 0)}, backoff {retry.get('backoffMinutes', [])} min"),
        ("progress", _progress_text(p)),
        ("batch", f"{p['currentBatch']} of {p['totalBatches']}" if p["totalBatches"] else "-"),
        ("next batch", d["nextBatchAt"] or "-"), ("created", d["createdAt"]), ("started", d["startedAt"] or "-"),
        ("finished", d["completedAt"] or "-"),
    ]
    if d.get("approval") and (text := approval_text(d["approval"])):
        rows.append(("approval", text))
    rows.extend(("strategy", line) for line in strategy_lines(r))
    if d["rollbackOf"]:
        rows.append(("rollback of", d["rollbackOf"]))
    if d["rolledBackBy"]:
        rows.append(("rolled back by", d["rolledBackBy"]))
    if d.get("signedBy"):
        rows.append(("signed by", d["signedBy"]))
    for key, value in rows:
        print(f"{key + ':':<16}{printable(value)}")


def approval_text(a: dict[str, Any]) -> str:
    """One line on a deployment's approval (docs/approvals.md), "" when there is nothing to say."""
    who = [f"{x['tokenName'] or x['tokenId']} ({x['tokenId']}) at {x['at']}" + (f": {x['comment']}" if x["comment"] else "")
           for x in a.get("approvals", [])]
    if a.get("status") == "approved":
        return "approved by " + "; ".join(who)
    if a.get("status") == "required":
        return f"{a['reason']} (convoy deployments approve ID)"
    return ""


def _reason(rec: dict[str, Any]) -> str:
    text = rec.get("error") or rec.get("skipReason") or ""
    if not text and rec["status"] == "failed" and rec.get("output"):
        text = rec["output"].strip().splitlines()[-1] if rec["output"].strip() else ""
    return text if len(text) <= 60 else text[:57] + "..."


# --- commands ---------------------------------------------------------------------------------

def _create(args: argparse.Namespace) -> int:
    body = _file_body(args.file) if args.file else {}
    body.update(_apply_flags(args, body))
    if not body:
        raise CliError("nothing to create: pass --file BODY.json or the flags (--name, --script, --target-…)", 2)
    out = _deployment(call(args, "CreateDeployment", pb.CreateDeploymentRequest(spec=_spec(body, args.file or "flags"))))
    emit(args, out, lambda: print(f"created deployment {out['id']} ({out['name']}, {out['status']}); "
                                  f"next: convoy deployments initialize {out['id']}"))
    return 0


def _update(args: argparse.Namespace) -> int:
    if args.file:
        body = _file_body(args.file)
        body.update(_apply_flags(args, body))
    else:
        from google.protobuf.json_format import MessageToDict

        current = call(args, "GetDeployment", pb.DeploymentRef(id=args.id))
        body = _apply_flags(args, MessageToDict(current))  # only what the flags change
    if not body:
        raise CliError("nothing to change: pass --file BODY.json or flags such as --name, --batch-size", 2)
    req = pb.UpdateDeploymentRequest(id=args.id, spec=_spec(body, args.file or "flags"))
    out = _deployment(call(args, "UpdateDeployment", req))
    emit(args, out, lambda: print(f"updated deployment {out['id']} ({out['name']})"))
    return 0


def _list(args: argparse.Namespace) -> int:
    resp = call(args, "ListDeployments", pb.ListDeploymentsRequest(
        status=args.status or "", type=args.type or "", limit=args.limit or 0, offset=args.offset or 0,
        client_id=args.client or ""))
    rows = [_deployment(d) for d in resp.data]

    def table() -> None:
        print_table(["id", "name", "type", "status", "done", "progress", "batch", "created"],
                    [[r["id"], r["name"], r["type"], r["status"],
                      f"{r['progress']['completed'] + r['progress']['failed']}/{r['progress']['total']}",
                      f"{r['progress']['percentComplete']}%",
                      f"{r['progress']['currentBatch']}/{r['progress']['totalBatches']}" if r["progress"]["totalBatches"] else "-",
                      r["createdAt"]] for r in rows])
        if resp.total > len(rows):
            print(f"({len(rows)} of {resp.total}; use --offset to see more)")

    emit(args, {"data": rows, "total": resp.total}, table)
    return 0


def _get(args: argparse.Namespace) -> int:
    out = _deployment(call(args, "GetDeployment", pb.DeploymentRef(id=args.id)))
    emit(args, out, lambda: _show(out))
    return 0


def _delete(args: argparse.Namespace) -> int:
    out = to_dict(call(args, "DeleteDeployment", pb.DeploymentRef(id=args.id)))
    emit(args, out, lambda: print(f"deleted deployment {out['id']}"))
    return 0


def _initialize(args: argparse.Namespace) -> int:
    resp = call(args, "InitializeDeployment", pb.DeploymentRef(id=args.id))
    out = {"deployment": _deployment(resp.deployment), "preview": _unset_strategies(to_dict(resp.preview))}

    def table() -> None:
        pv = out["preview"]
        print(f"initialized deployment {args.id}: {pv['resolvedCount']} device(s) in {pv['totalBatches']} batch(es); "
              f"status {out['deployment']['status']}")
        print_table(["batch", "devices"], [[b["batchNumber"], b["deviceCount"]] for b in pv["batches"]])
        for line in strategy_lines(out["deployment"]["rolloutConfig"]):
            print(f"  {line}")
        for key, label in (("startAt", "first batch at"), ("maxPerMinute", "dispatches a minute at most"),
                           ("successGatePercent", "success gate (%)"), ("failureBasis", "failure percent over"),
                           ("minFinishedForPercent", "finished before a percent pause"),
                           ("onFailureThreshold", "a crossed threshold")):
            if pv.get(key) not in (None, ""):
                print(f"{label}: {pv[key]}")
        if pv.get("approval", {}).get("status") == "required":
            print(f"{pv['approval']['reason']}: another operator runs convoy deployments approve {args.id}, "
                  f"then convoy deployments start {args.id}")
            return
        print(f"nothing has been sent to devices; next: convoy deployments start {args.id}")

    emit(args, out, table)
    return 0


SIGNED = {"StartDeployment": pb.StartDeploymentRequest, "RollbackDeployment": pb.RollbackDeploymentRequest}


def _action(method: str, verb: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        request: Any = pb.DeploymentRef(id=args.id)
        if method in SIGNED:  # an optional operator signature (docs/security.md, "Signed work")
            sig = work_signature(args, args.id, rollback=method == "RollbackDeployment")
            request = SIGNED[method](id=args.id, signature=sig)
        out = _deployment(call(args, method, request))
        if method in SIGNED and not out.get("signedBy"):
            warn_unsigned(args, out["clientId"])

        def line() -> None:
            if method == "RollbackDeployment":
                print(f"started rollback deployment {out['id']} ({out['status']}) reverting {args.id}; "
                      f"follow it: convoy deployments watch {out['id']}")
                return
            print(f"{verb} deployment {out['id']}: now {out['status']}" +
                  (f" ({out['statusReason']})" if out["statusReason"] else "") + f"; {_progress_text(out['progress'])}")

        emit(args, out, line)
        return 0
    return handler


def _approve(args: argparse.Namespace) -> int:
    out = _deployment(call(args, "ApproveDeployment", pb.ApproveDeploymentRequest(id=args.id, comment=args.comment or "")))
    emit(args, out, lambda: print(f"deployment {out['id']} ({out['status']}): {approval_text(out['approval'])}; "
                                  f"next: convoy deployments start {out['id']}"))
    return 0


def _audit(args: argparse.Namespace) -> int:
    resp = call(args, "ListDeploymentAudit", pb.ListDeploymentAuditRequest(id=args.id, limit=args.limit or 0,
                                                                            offset=args.offset or 0))
    rows = [to_dict(e) for e in resp.data]

    def table() -> None:
        print_table(["at", "actor", "from", "to", "reason"],
                    [[r["at"], f"{r['actorName']} ({r['actor']})" if r["actorName"] else r["actor"], r["fromStatus"] or "-",
                      r["toStatus"], printable(r["reason"])] for r in rows])
        if resp.total > len(rows):
            print(f"({len(rows)} of {resp.total}; use --offset to see more)")

    emit(args, {"data": rows, "total": resp.total}, table)
    return 0


def _devices(args: argparse.Namespace) -> int:
    req = pb.ListDeploymentDevicesRequest(id=args.id, status=args.status or "", limit=args.limit or 0,
                                          offset=args.offset or 0)
    if args.batch is not None:
        req.batch_number = args.batch
    resp = call(args, "ListDeploymentDevices", req)
    rows = [_record(r) for r in resp.data]

    def table() -> None:
        print_table(["device", "hostname", "batch", "status", "retries", "exit code", "error / skip reason"],
                    [[r["deviceId"], r["hostname"], r["batchNumber"], r["status"], r["retryCount"],
                      "" if r["exitCode"] is None else r["exitCode"], _reason(r)] for r in rows])
        if resp.total > len(rows):
            print(f"({len(rows)} of {resp.total}; use --offset to see more)")

    emit(args, {"data": rows, "total": resp.total}, table)
    return 0


def _retry(args: argparse.Namespace) -> int:
    out = _record(call(args, "RetryDeploymentDevice", pb.RetryDeploymentDeviceRequest(id=args.id, device_id=args.device_id)))
    emit(args, out, lambda: print(f"device {out['deviceId']}: record {out['status']} again "
                                  f"(retry count {out['retryCount']})"))
    return 0


# --- watch (cli/watch.py) ---------------------------------------------------------------------

def _watch(args: argparse.Namespace) -> int:
    from cli.watch import watch

    return watch(args)


# --- registration -----------------------------------------------------------------------------

def _deployment_ids(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Shell completion for ID: the newest deployments' ids (nothing if the server is away)."""
    try:
        resp = call(parsed_args, "ListDeployments", pb.ListDeploymentsRequest(limit=50), timeout=2)
    except Exception:  # noqa: BLE001 - completion must never print an error
        return []
    return [d.id for d in resp.data if d.id.startswith(prefix)]


def _id_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID", help="deployment id").completer = _deployment_ids  # type: ignore[attr-defined]


def _spec_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--file", metavar="BODY.json",
                   help="the seed's create body as JSON ('-' reads stdin); flags given too override it")
    p.add_argument("--name", help="a descriptive name")
    p.add_argument("--type", choices=TYPES, help="payload type (default: from --script/--artifact/--package/--policy-document)")
    g = p.add_argument_group("payload")
    g.add_argument("--script", metavar="ID", help="script id (type script)")
    g.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="script parameter (repeatable); typed by the script's parameters schema")
    g.add_argument("--artifact", metavar="ID", help="artifact id (type software)")
    g.add_argument("--package-name", metavar="NAME", help="the software package's name (type software)")
    g.add_argument("--package", action="append", metavar="NAME[=VERSION]",
                   help="a package to patch (type patch; repeatable; version default latest)")
    g.add_argument("--policy-document", metavar="FILE.json", help="the policy document (type policy)")
    g.add_argument("--policy", metavar="NAME", help="policy name (default: the document's file name)")
    g.add_argument("--policy-version", type=int, default=1, metavar="N", help="policy version (default 1)")
    t = p.add_argument_group("target (one of)").add_mutually_exclusive_group()
    t.add_argument("--target-devices", nargs="+", metavar="ID", help="explicit device ids")
    t.add_argument("--target-groups", nargs="+", metavar="ID", help="device group ids")
    t.add_argument("--target-filter", metavar="EXPR", help="a filter expression, e.g. \"os == 'linux' and 'web' in tags\"")
    t.add_argument("--target-all", action="store_true", help="every device of the client")
    r = p.add_argument_group("rollout")
    r.add_argument("--immediate", action="store_true", help="one batch: every device at once")
    r.add_argument("--batch-size", metavar="N|N%", help="staggered: devices per batch, a number or a percentage")
    r.add_argument("--batch-delay", type=minutes_arg, metavar="DURATION",
                   help="staggered: wait between batches, e.g. 30s, 5m, 1h30m (a bare number is minutes)")
    r.add_argument("--pause-on-failure-count", type=int, metavar="N", help="auto-pause once N devices have failed")
    r.add_argument("--pause-on-failure-percent", type=float, metavar="P", help="auto-pause once P%% of devices have failed")
    r.add_argument("--respect-maintenance-windows", action=argparse.BooleanOptionalAction, default=None,
                   help="only install inside each device's maintenance window")
    r.add_argument("--max-retries", type=int, metavar="N", help="automatic retries per device, 0..10")
    r.add_argument("--backoff", metavar="5m,15m,1h", help="wait before each retry (bare numbers are minutes); the last is reused")
    r.add_argument("--install-timeout", type=minutes_arg, metavar="DURATION",
                   help="fail a device silent for this long, e.g. 45m, 2h (a bare number is minutes; default 30m)")
    v = p.add_argument_group("health check, late arrivers, maintenance-window wait")
    v.add_argument("--verify-script", metavar="ID",
                   help="script run on each device right after a successful install; only a passing check completes it")
    v.add_argument("--verify-timeout", type=minutes_arg, metavar="DURATION", help="bound on the check (default 10m)")
    v.add_argument("--offline-devices", choices=("skip", "wait"),
                   help="a device offline when its batch starts: skipped (default) or waited for")
    v.add_argument("--offline-wait", type=minutes_arg, metavar="DURATION",
                   help="with wait: how long after its batch starts an offline device still gets the job, e.g. 2h")
    v.add_argument("--window-policy", choices=("skip", "wait"),
                   help="with --respect-maintenance-windows, a device outside its window: skipped (default) or "
                        "sent the job now, installing when its next window opens")
    v.add_argument("--window-wait-max", type=minutes_arg, metavar="DURATION",
                   help="with --window-policy wait: skip the device if no window opens within this (default 7d)")
    _strategy_arguments(p)
    p.add_argument("--client", metavar="ID", help="client id (needed when the API token spans several clients)")


def _strategy_arguments(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("rollout strategies (docs/deployments-rules.md)")
    s.add_argument("--batches", metavar="1,5%,25%,100%",
                   help="staggered: batch sizes step by step (numbers or percentages); the last repeats")
    s.add_argument("--ramp-start", type=int, metavar="N", help="staggered: a ramp whose first batch has N devices")
    s.add_argument("--ramp-factor", type=float, metavar="F", help="ramp: each batch the previous x F (default 2)")
    s.add_argument("--ramp-max", metavar="N|N%", help="ramp: no batch larger than this")
    s.add_argument("--success-gate-percent", type=float, metavar="P",
                   help="staggered: start the next batch only if P%% of the last one completed (else pause)")
    s.add_argument("--failure-basis", choices=("targets", "finished"),
                   help="what --pause-on-failure-percent counts over (default targets)")
    s.add_argument("--min-finished-for-percent", type=int, metavar="N",
                   help="no percentage pause before N devices finished")
    s.add_argument("--max-per-minute", type=int, metavar="N", help="dispatch at most N jobs a minute")
    s.add_argument("--on-failure-threshold", choices=("pause", "cancel", "rollback"),
                   help="what a crossed threshold does (default pause)")
    s.add_argument("--start-at", metavar="ISO8601",
                   help="dispatch the first batch at this time, with an offset: 2030-01-31T22:00:00+01:00")


SEED_BODY_EXAMPLE = """  convoy deployments create --file cleanup.json -o json
    where cleanup.json is the seed's create body:
    {"name": "Monthly Cleanup", "type": "script",
     "payload": {"scriptId": "SCRIPT_ID", "parameters": {}},
     "targetType": "groups", "targetConfig": {"type": "groups", "groupIds": ["GROUP_ID"]},
     "rolloutConfig": {"type": "staggered",
                       "staggered": {"batchSize": "10%", "batchDelayMinutes": 30, "pauseOnFailurePercent": 20},
                       "respectMaintenanceWindows": true,
                       "retryConfig": {"maxRetries": 3, "backoffMinutes": [5, 15, 60]}}}
"""


def register(sub: Any) -> None:
    deps = sub.add_parser("deployments", help="roll a change out to devices (create, initialize, start, watch …)")
    cmds = deps.add_subparsers(dest="sub", required=True, metavar="COMMAND")

    p = command(cmds, "create", "create a deployment in draft status, from a JSON body or from flags",
                SEED_BODY_EXAMPLE +
                "  convoy deployments create --name 'motd' --script SCRIPT_ID --param message=hello \\\n"
                "      --target-groups GROUP_ID --batch-size 10% --batch-delay 30m --pause-on-failure-percent 20 \\\n"
                "      --respect-maintenance-windows --max-retries 3 --backoff 5m,15m,1h\n"
                "  convoy deployments create --name 'openssl' --package openssl=3.0.13 --target-filter \"os == 'linux'\" --immediate\n"
                "  convoy deployments create --name 'agent tool' --artifact ARTIFACT_ID --target-all --batch-size 50",
                _create)
    _spec_flags(p)

    p = command(cmds, "list", "list deployments, newest first",
                "  convoy deployments list\n  convoy deployments list --status paused -o json\n"
                "  convoy deployments list --type script --limit 20 --offset 20", _list)
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--type", choices=TYPES)
    p.add_argument("--limit", type=int, help="at most this many (server default 50)")
    p.add_argument("--offset", type=int, help="skip this many")
    p.add_argument("--client", metavar="ID", help="only this client's deployments")

    p = command(cmds, "get", "show a deployment with its real-time progress",
                "  convoy deployments get ID\n  convoy deployments get ID -o json | jq .progress", _get)
    _id_arg(p)

    p = command(cmds, "update", "change a draft deployment (whole body from --file, or just the flags given)",
                "  convoy deployments update ID --name 'Monthly Cleanup (v2)'\n"
                "  convoy deployments update ID --batch-size 5% --pause-on-failure-count 3\n"
                "  convoy deployments update ID --file cleanup.json -o json", _update)
    _id_arg(p)
    _spec_flags(p)

    p = command(cmds, "delete", "delete a draft deployment", "  convoy deployments delete ID", _delete)
    _id_arg(p)

    p = command(cmds, "initialize", "resolve targets and plan batches (draft → pending); prints the preview",
                "  convoy deployments initialize ID\n  convoy deployments initialize ID -o json | jq .preview", _initialize)
    _id_arg(p)

    for name, method, verb, what in (
            ("start", "StartDeployment", "started", "begin execution (pending → downloading)"),
            ("pause", "PauseDeployment", "paused", "stop dispatching new devices; dispatched ones finish"),
            ("resume", "ResumeDeployment", "resumed", "resume a paused deployment (thresholds re-arm)"),
            ("cancel", "CancelDeployment", "cancelled", "cancel: pending devices are skipped; irreversible"),
            ("rollback", "RollbackDeployment", "rolled back",
             "revert the change where it completed, with a new deployment (completed/failed/paused/cancelled)")):
        signed = method in SIGNED
        p = command(cmds, name, what, f"  convoy deployments {name} ID\n  convoy deployments {name} ID -o json"
                    + (f"\n  convoy deployments {name} ID --sign-key ~/.config/convoy/keys/alice.key" if signed else ""),
                    _action(method, verb))
        _id_arg(p)
        if signed:
            add_sign_args(p)

    p = command(cmds, "approve", "approve a pending deployment that needs another operator's sign-off before start",
                "  convoy deployments approve ID --comment 'reviewed the change ticket CHG-1234'\n"
                "  convoy deployments approve ID -o json | jq .approval\n"
                "the token that created the deployment cannot approve it (docs/approvals.md)", _approve)
    _id_arg(p)
    p.add_argument("--comment", help="why you approve (kept in the audit trail; at most 1000 characters)")

    p = command(cmds, "audit", "the audit trail: every transition and approval, who or what caused it, and why",
                "  convoy deployments audit ID\n  convoy deployments audit ID -o json | jq '.data[] | select(.reason | startswith(\"approved\"))'",
                _audit)
    _id_arg(p)
    p.add_argument("--limit", type=int, help="at most this many (server default 100)")
    p.add_argument("--offset", type=int, help="skip this many")

    p = command(cmds, "devices", "per-device records: status, retries, exit code, error or skip reason",
                "  convoy deployments devices ID\n  convoy deployments devices ID --status failed --batch 2\n"
                "  convoy deployments devices ID --status failed -o json | jq -r '.data[].output'", _devices)
    _id_arg(p)
    p.add_argument("--status", choices=RECORD_STATUSES)
    p.add_argument("--batch", type=int, metavar="N", help="only batch N")
    p.add_argument("--limit", type=int, help="at most this many (server default 50)")
    p.add_argument("--offset", type=int, help="skip this many")

    p = command(cmds, "retry", "retry one failed or skipped device (counts against maxRetries)",
                "  convoy deployments retry ID DEVICE_ID", _retry)
    _id_arg(p)
    p.add_argument("device_id", metavar="DEVICE_ID")

    p = command(cmds, "watch", "follow a rollout live until it ends or pauses",
                "  convoy deployments watch ID            # progress bars on a terminal\n"
                "  convoy deployments watch ID | cat      # one plain line per progress event\n"
                "  convoy deployments watch ID -o json    # one JSON object per event (JSON lines)\n"
                "  convoy deployments watch ID --no-exit-on-pause\n"
                "exit status: 0 completed, 10 failed, 11 cancelled, 12 rolled back, 13 paused (the\n"
                "operator must act: inspect failures, then resume or cancel); errors keep the usual codes,\n"
                "which never overlap these: 2 bad usage, 3 authentication or permission, 4 unknown id,\n"
                "6 coordinator unreachable or the stream cut, 1 anything else; 130 on Ctrl-C.", _watch)
    _id_arg(p)
    p.add_argument("--no-exit-on-pause", action="store_true",
                   help="keep watching through pauses (until completed, failed, cancelled or rolled back)")
