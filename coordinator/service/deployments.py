"""The deployment API's rules (seed 004), shared by gRPC and REST.

Every function takes `(session, principal, …)` and runs inside the caller's transaction.
Deployment transitions lock the deployment row (`FOR UPDATE` on PostgreSQL; SQLite's
`BEGIN IMMEDIATE` already serializes writers) and apply a guarded update, so two doors racing
for the same deployment cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from common.errors import Conflict, InvalidArgument, NotFound
from common.ids import new_id, parse_uuid
from common.rollout_text import strategy_lines
from common.timefmt import iso
from coordinator.auth import Principal
from coordinator.domain import batch_plan
from coordinator.domain import filter as target_filter
from coordinator.domain.progress import progress_dict
from coordinator.domain.rollout_config import RolloutConfig
from coordinator.domain.spec import validate_spec
from coordinator.domain.states import DeploymentStatus as D
from coordinator.domain.states import RecordStatus as R
from coordinator.domain.states import check_action
from coordinator.engine.rollout import (
    cancel_records,
    create_records,
    create_rollback,
    manual_retry,
    rollback_devices,
)
from coordinator.service import approvals, audit_log, payloads, secret_params, signers
from coordinator.service.audit_log import action
from coordinator.store import models as m
from coordinator.store.inlist import id_in
from coordinator.store.transitions import add_event as _event
from coordinator.store.transitions import transition

LIST_LIMIT_MAX = 500
STATUSES = {s.value for s in D}
TYPES = {"script", "patch", "software", "policy"}


# --- reading --------------------------------------------------------------------------------

def deployment_dict(d: m.Deployment) -> dict[str, Any]:
    """The deployment as the REST API shows it (camelCase, as in the seed)."""
    return {
        "id": d.id,
        "clientId": d.client_id,
        "name": d.name,
        "type": d.type,
        "payload": secret_params.mask(d.payload),
        "targetType": d.target_type,
        "targetConfig": d.target_config,
        "rolloutConfig": d.rollout_config,
        "status": d.status,
        "statusReason": d.status_reason or None,
        "progress": progress_dict(
            total=d.total, pending=d.n_pending, running=d.n_running, completed=d.n_completed,
            failed=d.n_failed, skipped=d.n_skipped, current_batch=d.current_batch, total_batches=d.total_batches),
        "createdAt": iso(d.created_at),
        "updatedAt": iso(d.updated_at),
        "startedAt": iso(d.started_at),
        "completedAt": iso(d.completed_at),
        "nextBatchAt": iso(d.next_batch_at),
        "rollbackOf": d.rollback_of,
        "rolledBackBy": d.rolled_back_by,
        # verify, offlineDevices, windowPolicy in words (common/rollout_text.py), for the dashboard.
        "strategies": strategy_lines(d.rollout_config),
        "signedBy": (d.signature or {}).get("keyId"),
    }


def record_dict(r: m.DeploymentDevice, hostname: str = "") -> dict[str, Any]:
    return {
        "id": r.id,
        "deploymentId": r.deployment_id,
        "deviceId": r.device_id,
        "hostname": hostname,
        "batchNumber": r.batch_number,
        "status": r.status,
        "retryCount": r.retry_count,
        "attempts": r.attempts,
        "jobId": r.job_id,
        "exitCode": r.exit_code,
        "output": r.output,
        "error": r.error or None,
        "skipReason": r.skip_reason or None,
        # A device waiting for its automatic retry is `pending` (counted in progress.pending)
        # with the time of that retry here.
        "nextAttemptAt": iso(r.due_at) if r.status == R.PENDING and r.job_id and r.due_at else None,
        # A late arriver (offlineDevices "wait"): pending until its device connects, or until then.
        "waitingUntil": iso(r.wait_until) if r.status == R.PENDING and r.wait_until else None,
        "startedAt": iso(r.started_at),
        "finishedAt": iso(r.finished_at),
        "updatedAt": iso(r.updated_at),
    }


def load(s: Session, who: Principal, deployment_id: str, *, lock: bool = False) -> m.Deployment:
    """The deployment, if it exists in a client the caller may see; 404 otherwise."""
    dep_id = parse_uuid(deployment_id, "id")
    query = select(m.Deployment).where(m.Deployment.id == dep_id)
    if lock:
        query = query.with_for_update()
    d = s.scalar(query)
    if d is None or not who.can_see(d.client_id):
        raise NotFound("Deployment not found", deployment_id=dep_id)
    return d


def get(s: Session, who: Principal, deployment_id: str) -> dict[str, Any]:
    return with_approval(s, load(s, who, deployment_id))


def with_approval(s: Session, d: m.Deployment) -> dict[str, Any]:
    """The deployment with its `approval` object (docs/approvals.md): what every call on one
    deployment answers, and watch; lists leave it out (it costs two queries per row)."""
    return {**deployment_dict(d), "approval": approvals.approval_view(s, d)}


def _int_param(value: int | None, name: str, default: int, lo: int, hi: int) -> int:
    if value is None:
        return default
    if not lo <= value <= hi:
        raise InvalidArgument(f"{name} must be between {lo} and {hi}", parameter=name, value=value)
    return value


def list_deployments(s: Session, who: Principal, *, status: str | None, type_: str | None, limit: int | None,
                     offset: int | None, client_id: str | None) -> tuple[list[dict[str, Any]], int]:
    if status and status not in STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(sorted(STATUSES))}", parameter="status", value=status)
    if type_ and type_ not in TYPES:
        raise InvalidArgument(f"type must be one of {', '.join(sorted(TYPES))}", parameter="type", value=type_)
    lim = _int_param(limit, "limit", 50, 1, LIST_LIMIT_MAX)
    off = _int_param(offset, "offset", 0, 0, 10**9)
    if client_id:
        cid = parse_uuid(client_id, "clientId")
        who.require_client(s, cid)
        clients = [cid]
    else:
        clients = who.visible_clients(s)
    cond: list[Any] = [m.Deployment.client_id.in_(clients)]
    if status:
        cond.append(m.Deployment.status == status)
    if type_:
        cond.append(m.Deployment.type == type_)
    total = s.scalar(select(func.count()).select_from(m.Deployment).where(*cond)) or 0
    rows = s.scalars(select(m.Deployment).where(*cond)
                     .order_by(m.Deployment.created_at.desc(), m.Deployment.id.desc()).limit(lim).offset(off))
    return [deployment_dict(d) for d in rows], total


def list_records(s: Session, who: Principal, deployment_id: str, *, status: str | None, batch_number: int | None,
                 limit: int | None, offset: int | None) -> tuple[list[dict[str, Any]], int]:
    d = load(s, who, deployment_id)
    if status and status not in {r.value for r in R}:
        raise InvalidArgument(f"status must be one of {', '.join(r.value for r in R)}", parameter="status", value=status)
    if batch_number is not None and not 1 <= batch_number <= 10**9:
        raise InvalidArgument("batchNumber must be between 1 and 1000000000", parameter="batchNumber",
                              value=batch_number)
    lim = _int_param(limit, "limit", 50, 1, LIST_LIMIT_MAX)
    off = _int_param(offset, "offset", 0, 0, 10**9)
    cond: list[Any] = [m.DeploymentDevice.deployment_id == d.id]
    if status:
        cond.append(m.DeploymentDevice.status == status)
    if batch_number is not None:
        cond.append(m.DeploymentDevice.batch_number == batch_number)
    total = s.scalar(select(func.count()).select_from(m.DeploymentDevice).where(*cond)) or 0
    rows = s.execute(select(m.DeploymentDevice, m.Device.hostname).join(m.Device, m.Device.id == m.DeploymentDevice.device_id)
                     .where(*cond).order_by(m.DeploymentDevice.batch_number, m.DeploymentDevice.position)
                     .limit(lim).offset(off))
    return [record_dict(r, host) for r, host in rows], total


# --- writing --------------------------------------------------------------------------------

def _check_payload_refs(s: Session, client_id: str, spec: dict[str, Any],
                        current: dict[str, Any] | None = None) -> None:
    """Unknown payload ids are a 400 at create (and update). A script's secret parameters are
    sealed here (`current`: the stored parameters an update may keep, service/secret_params.py)."""
    payload = spec["payload"]
    if spec["type"] == "script":
        script = payloads.get_script(s, client_id, payload["scriptId"], field="payload.scriptId")
        payloads.validate_parameters(script.parameters_schema or {}, payload.get("parameters") or {})
        if payload.get("parameters"):
            payload["parameters"] = secret_params.seal(s, script.parameters_schema or {}, payload["parameters"],
                                                       current)
    elif spec["type"] == "software":
        payloads.get_artifact(s, client_id, payload["artifactId"], field="payload.artifactId")
    verify = spec["rolloutConfig"].get("verify")
    if verify:
        payloads.get_script(s, client_id, verify["scriptId"], field="rolloutConfig.verify.scriptId")


def _check_target_refs(s: Session, client_id: str, spec: dict[str, Any]) -> None:
    cfg = spec["targetConfig"]
    if spec["targetType"] == "devices":
        ids = cfg["deviceIds"]
        found = set(s.scalars(select(m.Device.id).where(m.Device.client_id == client_id, m.Device.id.in_(ids))))
        missing = [i for i in ids if i not in found]
        if missing:
            raise InvalidArgument(f"targetConfig.deviceIds: unknown device ids: {', '.join(missing[:10])}",
                                  parameter="targetConfig.deviceIds", missing=missing[:100])
    elif spec["targetType"] == "groups":
        found = set(s.scalars(select(m.Group.id).where(m.Group.client_id == client_id, m.Group.id.in_(cfg["groupIds"]))))
        missing = [i for i in cfg["groupIds"] if i not in found]
        if missing:
            raise InvalidArgument(f"targetConfig.groupIds: unknown group ids: {', '.join(missing)}",
                                  parameter="targetConfig.groupIds", missing=missing)


@action("deployment.create")
def create(s: Session, who: Principal, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    who.require_role("operator", "create deployments")
    spec = validate_spec(body)
    check_start_at(spec, now)
    client_id = who.default_client(s, spec.get("clientId"))
    _check_payload_refs(s, client_id, spec)
    _check_target_refs(s, client_id, spec)
    d = m.Deployment(
        id=new_id(), client_id=client_id, name=spec["name"], type=spec["type"], payload=spec["payload"],
        job_payload={}, target_type=spec["targetType"], target_config=spec["targetConfig"],
        rollout_config=spec["rolloutConfig"], status=D.DRAFT, status_reason="", version=0, total=0,
        total_batches=0, current_batch=0, n_pending=0, n_running=0, n_completed=0, n_failed=0, n_skipped=0,
        failure_baseline=0, finished_baseline=0, created_by=who.token_id, created_at=now, updated_at=now)
    s.add(d)
    s.flush()
    _event(s, d, who.token_id, "", D.DRAFT, "created", now)
    return with_approval(s, d)


@action("deployment.update")
def update_spec(s: Session, who: Principal, deployment_id: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    who.require_role("operator", "update deployments")
    d = load(s, who, deployment_id, lock=True)
    check_action("update", d.status)
    base = {"name": d.name, "type": d.type, "payload": d.payload, "targetType": d.target_type,
            "targetConfig": d.target_config, "rolloutConfig": d.rollout_config}
    if "targetType" in body and "targetConfig" not in body:
        base.pop("targetConfig")
    spec = validate_spec(body, partial_base=base)
    check_start_at(spec, now)
    if spec.get("clientId") and spec["clientId"] != d.client_id:
        raise InvalidArgument("clientId cannot be changed", parameter="clientId")
    # "***" keeps a stored secret only for the same script: a value entered for one script is never
    # handed to another one chosen by someone who never saw it.
    old = d.payload or {}
    same_script = d.type == spec["type"] and old.get("scriptId") == spec["payload"].get("scriptId")
    _check_payload_refs(s, d.client_id, spec, current=old.get("parameters") if same_script else None)
    _check_target_refs(s, d.client_id, spec)
    transition(s, d, "update", now, who.token_id, name=spec["name"], type=spec["type"], payload=spec["payload"],
               target_type=spec["targetType"], target_config=spec["targetConfig"], rollout_config=spec["rolloutConfig"])
    return with_approval(s, d)


@action("deployment.delete")
def delete(s: Session, who: Principal, deployment_id: str) -> dict[str, str]:
    who.require_role("operator", "delete deployments")
    d = load(s, who, deployment_id, lock=True)
    check_action("delete", d.status)
    s.delete(d)
    audit_log.note(s, client_ids=[d.client_id], summary=f"name={d.name}")
    return {"id": d.id}


def _resolve_targets(s: Session, d: m.Deployment) -> list[str]:
    """The target devices, without revoked ones (they can never take a job)."""
    revoked = set(s.scalars(select(m.Device.id).where(m.Device.client_id == d.client_id,
                                                      m.Device.revoked_at.is_not(None))))
    return [i for i in _target_ids(s, d) if i not in revoked]


def _target_ids(s: Session, d: m.Deployment) -> list[str]:
    cfg = d.target_config
    client_devices = select(m.Device.id).where(m.Device.client_id == d.client_id)
    if d.target_type == "devices":
        return list(s.scalars(client_devices.where(m.Device.id.in_(cfg["deviceIds"]))))
    if d.target_type == "groups":
        return sorted(payloads.group_device_ids(s, d.client_id, cfg["groupIds"]))
    if d.target_type == "all":
        return list(s.scalars(client_devices))
    expr = target_filter.parse(cfg["filter"])
    groups: dict[str, list[str]] = {}
    for device_id, group_id, name in s.execute(
            select(m.GroupMember.device_id, m.Group.id, m.Group.name).join(m.Group, m.Group.id == m.GroupMember.group_id)
            .where(m.Group.client_id == d.client_id)):
        groups.setdefault(device_id, []).extend((group_id, name))
    rows = s.execute(select(m.Device.id, m.Device.os, m.Device.os_version, m.Device.arch, m.Device.hostname,
                            m.Device.site, m.Device.tags, m.Device.online).where(m.Device.client_id == d.client_id))
    return [r.id for r in rows if target_filter.matches(expr, {
        "os": r.os, "os_version": r.os_version, "arch": r.arch, "hostname": r.hostname, "site": r.site,
        "tags": list(r.tags or []), "online": bool(r.online), "groups": groups.get(r.id, [])})]


def resolve_job_payload(s: Session, d: m.Deployment, *, rollback: bool = False) -> dict[str, Any]:
    """The payload agents receive, frozen at initialize (see docs/protocol.md).

    A rollback payload names the deployment it reverts (`revertsDeploymentId`, the id of `d`):
    the agent restores what its pre-state record of that deployment says was there before."""
    resolved = _resolve_change(s, d, rollback=rollback)
    check = None if rollback else _verify_payload(s, d)
    return {**resolved, "verify": check} if check else resolved


def _verify_payload(s: Session, d: m.Deployment) -> dict[str, Any] | None:
    """rolloutConfig.verify as the agent runs it: the check script's body, frozen with the change.
    A rollback runs no check (it restores what was there)."""
    verify = RolloutConfig.parse(d.rollout_config).verify
    if verify is None:
        return None
    script = payloads.get_script(s, d.client_id, verify.script_id, field="rolloutConfig.verify.scriptId")
    return {"scriptId": script.id, "interpreter": script.interpreter, "body": script.body,
            "timeoutSeconds": verify.timeout_minutes * 60}


def _resolve_change(s: Session, d: m.Deployment, *, rollback: bool) -> dict[str, Any]:
    p = d.payload
    reverts: dict[str, Any] = {"revertsDeploymentId": d.id} if rollback else {}
    if d.type == "script":
        script = payloads.get_script(s, d.client_id, p["scriptId"])
        body = script.body
        if rollback:
            if not script.rollback_body:
                raise InvalidArgument(f"script {script.name!r} has no rollback body, so this deployment cannot be rolled back",
                                      parameter="payload.scriptId")
            body = script.rollback_body
        return {"interpreter": script.interpreter, "body": body,
                "parameters": secret_params.job_parameters(p.get("parameters") or {}), "scriptId": script.id,
                **reverts}
    if d.type == "software":
        art = payloads.get_artifact(s, d.client_id, p["artifactId"])
        return {"artifact": {"sha256": art.sha256, "size": art.size, "name": art.name, "kind": art.kind},
                "action": "rollback" if rollback else "install", "packageName": p.get("packageName") or "", **reverts}
    if d.type == "patch":
        return {"packages": p["packages"], "action": "rollback" if rollback else "install", **reverts}
    return {"name": p["name"], "version": p["version"], "document": p["document"],
            "action": "restore" if rollback else "apply", **reverts}


@action("deployment.initialize")
def initialize(s: Session, who: Principal, deployment_id: str, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    who.require_role("operator", "initialize deployments")
    d = load(s, who, deployment_id, lock=True)
    check_action("initialize", d.status)
    device_ids = _resolve_targets(s, d)
    if not device_ids:
        raise InvalidArgument("the deployment's targets resolve to no devices", parameter="targetConfig")
    job_payload = resolve_job_payload(s, d)
    cfg = RolloutConfig.parse(d.rollout_config)
    rollback_payload = None
    if cfg.on_failure_threshold == "rollback":
        # Frozen now, so a crossed threshold can start the revert by itself (and a script with no
        # rollback body is refused before anything runs).
        try:
            rollback_payload = resolve_job_payload(s, d, rollback=True)
        except InvalidArgument as e:
            raise InvalidArgument(f"rolloutConfig.onFailureThreshold: 'rollback' needs a revertible payload: {e}",
                                  parameter="rolloutConfig.onFailureThreshold") from e
    plan = batch_plan.plan_batches(device_ids, d.rollout_config)
    create_records(s, d, plan, now)
    transition(s, d, "initialize", now, who.token_id, f"{len(device_ids)} devices in {len(plan)} batches",
               job_payload=job_payload, total=len(device_ids), total_batches=len(plan), n_pending=len(device_ids),
               batch_sizes=[len(b) for b in plan], initialized_at=now, rollback_job_payload=rollback_payload)
    dep = with_approval(s, d)
    preview = {"resolvedCount": len(device_ids), "totalBatches": len(plan),
               "batches": [{"batchNumber": i, "deviceCount": len(b)} for i, b in enumerate(plan, start=1)],
               **_strategy_preview(cfg)}
    if dep["approval"]["required"]:
        preview["approval"] = dep["approval"]  # named in the preview only when one is needed
    preview.update(_strategies_preview(s, d, device_ids))
    return dep, preview


def _strategies_preview(s: Session, d: m.Deployment, device_ids: Sequence[str]) -> dict[str, Any]:
    """verify, offlineDevices, windowPolicy in the preview: what each will do, and for late
    arrivers how many of the devices are offline right now (only when used)."""
    lines = strategy_lines(d.rollout_config)
    if not lines:
        return {}
    out: dict[str, Any] = {"strategies": lines}
    if RolloutConfig.parse(d.rollout_config).offline_devices.waits:
        online = 0
        for among in id_in(s, m.Device.id, device_ids):
            online += s.scalar(select(func.count()).select_from(m.Device).where(
                among, m.Device.online.is_(True))) or 0
        out["offlineNow"] = len(device_ids) - online
    return out


def _strategy_preview(cfg: RolloutConfig) -> dict[str, Any]:
    """The rollout strategies in use, beside the plan (docs/deployments-rules.md); a deployment
    that uses none previews exactly as seed 004 says."""
    th = cfg.thresholds
    shown = {"startAt": iso(cfg.start_at), "maxPerMinute": cfg.max_per_minute,
             "onFailureThreshold": None if cfg.on_failure_threshold == "pause" else cfg.on_failure_threshold,
             "successGatePercent": th.success_gate_percent,
             "failureBasis": None if th.failure_basis == "targets" else th.failure_basis,
             "minFinishedForPercent": th.min_finished_for_percent or None}
    return {k: v for k, v in shown.items() if v is not None}


def check_start_at(spec: dict[str, Any], now: datetime) -> None:
    """rolloutConfig.startAt must be in the future when a deployment is created or updated."""
    start_at = RolloutConfig.parse(spec["rolloutConfig"]).start_at
    if start_at is not None and start_at <= now:
        raise InvalidArgument(f"rolloutConfig.startAt: {iso(start_at)} is not in the future (now {iso(now)})",
                              parameter="rolloutConfig.startAt")


@action("deployment.start")
def start(s: Session, who: Principal, deployment_id: str, now: datetime, signature: Any = None) -> dict[str, Any]:
    """Start. With rolloutConfig.startAt still ahead, batch 1 is due then (`nextBatchAt`, and the
    status reason says so); a startAt that passed while the deployment waited starts it now.
    `signature` (optional) is an operator's signature over the deployment's manifest, checked and
    then sent with every job (docs/security.md, "Signed work")."""
    who.require_role("operator", "start deployments")
    d = load(s, who, deployment_id, lock=True)
    check_action("start", d.status)
    approvals.gate(s, d)
    signed = {} if signature is None else {
        "signature": signers.accept(s, d, signature, payload=d.job_payload, rollback=False, now=now)}
    by = f"signed by {signed['signature']['keyId']}" if signed else ""
    start_at = RolloutConfig.parse(d.rollout_config).start_at
    if start_at is not None and start_at > now:
        why = f"scheduled: the first batch starts at {iso(start_at)}"
        transition(s, d, "start", now, who.token_id, why + (f"; {by}" if by else ""), started_at=now,
                   next_batch_at=start_at, status_reason=why, **signed)
    elif start_at is not None:
        transition(s, d, "start", now, who.token_id, f"rolloutConfig.startAt {iso(start_at)} has passed: starting now"
                   + (f"; {by}" if by else ""), started_at=now, **signed)
    else:
        transition(s, d, "start", now, who.token_id, by, started_at=now, **signed)
    return with_approval(s, d)


def manifest(s: Session, who: Principal, deployment_id: str, now: datetime, rollback: bool = False) -> dict[str, Any]:
    """`{"manifest", "payload"}`: what an operator signs to start `deployment_id` (pending), or,
    with `rollback`, to roll it back (the rollback's jobs carry the revert payload)."""
    who.require_role("operator", "sign deployments")
    d = load(s, who, deployment_id)
    if rollback:
        check_action("rollback", d.status)
        return signers.proposed(d, resolve_job_payload(s, d, rollback=True), rollback=True, now=now)
    if d.status != D.PENDING:
        raise Conflict(f"only a pending (initialized, not started) deployment has a manifest to sign; this one is "
                       f"{d.status}", status=d.status)
    return signers.proposed(d, d.job_payload, rollback=False, now=now)


@action("deployment.approve")
def approve(s: Session, who: Principal, deployment_id: str, comment: Any, now: datetime) -> dict[str, Any]:
    """Another operator's sign-off on a pending deployment above the client's approval policy."""
    d = load(s, who, deployment_id, lock=True)
    approvals.approve(s, who, d, comment, now)
    return with_approval(s, d)


@action("deployment.pause")
def pause(s: Session, who: Principal, deployment_id: str, now: datetime) -> dict[str, Any]:
    who.require_role("operator", "pause deployments")
    d = load(s, who, deployment_id, lock=True)
    transition(s, d, "pause", now, who.token_id, "paused by operator", status_reason="paused by operator")
    return with_approval(s, d)


@action("deployment.resume")
def resume(s: Session, who: Principal, deployment_id: str, now: datetime) -> dict[str, Any]:
    """Resume: thresholds re-arm relative to the failures at this moment (docs/deployments-rules.md)."""
    who.require_role("operator", "resume deployments")
    d = load(s, who, deployment_id, lock=True)
    check_action("resume", d.status)
    fields: dict[str, Any] = {"failure_baseline": d.n_failed, "finished_baseline": d.n_completed + d.n_failed,
                              "status_reason": ""}
    if d.batch_finished_at is not None:
        due = RolloutConfig.parse(d.rollout_config).thresholds.next_batch_due(d.batch_finished_at)
        fields["next_batch_at"] = max(now, due)
        # The batch is done and the operator has seen it: its successGatePercent is passed.
        fields["gate_passed_batch"] = d.current_batch
    transition(s, d, "resume", now, who.token_id, "resumed by operator", **fields)
    return with_approval(s, d)


@action("deployment.cancel")
def cancel(s: Session, who: Principal, deployment_id: str, now: datetime) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Cancel (seed 004): pending records become skipped; records already running, completed,
    failed or skipped are not affected. A job the device never acknowledged is withdrawn (it has
    not reached the device: its record is treated as pending). Returns the deployment and the
    (device id, job id, reason) withdrawals to send; they are stored, so an agent that is away
    gets them when it connects."""
    who.require_role("operator", "cancel deployments")
    d = load(s, who, deployment_id, lock=True)
    check_action("cancel", d.status)
    withdraw = cancel_records(s, d, now, "cancelled")
    transition(s, d, "cancel", now, who.token_id, "cancelled by operator", status_reason="cancelled by operator",
               completed_at=now, next_batch_at=None)
    return with_approval(s, d), withdraw


@action("deployment.rollback")
def rollback(s: Session, who: Principal, deployment_id: str, now: datetime,
             signature: Any = None) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Create and start a deployment that reverts `deployment_id` where it completed. A
    `signature` is over the manifest of the rollback of `deployment_id` (its id, rollback true)."""
    who.require_role("operator", "roll back deployments")
    d = load(s, who, deployment_id, lock=True)
    check_action("rollback", d.status)
    if d.rollback_of is not None:
        raise Conflict("a rollback deployment cannot itself be rolled back: create a new deployment to "
                       "apply the change again", status=d.status, rollback_of=d.rollback_of)
    devices = rollback_devices(s, d)
    if not devices:
        raise Conflict("nothing to roll back: the change completed on no device", status=d.status)
    job_payload = resolve_job_payload(s, d, rollback=True)
    signed = None if signature is None else signers.accept(s, d, signature, payload=job_payload, rollback=True, now=now)
    withdraw = cancel_records(s, d, now, "rolled back") if d.status == D.PAUSED else []
    rb = create_rollback(s, d, job_payload, devices, now, who.token_id, created_by=who.token_id, signature=signed)
    transition(s, d, "rollback", now, who.token_id, f"rolled back by {rb.id}", rolled_back_by=rb.id, next_batch_at=None)
    audit_log.note(s, target_id=d.id, summary=f"rollback deployment {rb.id}")
    return with_approval(s, rb), withdraw


@action("deployment.retry_device")
def retry_device(s: Session, who: Principal, deployment_id: str, device_id: str, now: datetime) -> dict[str, Any]:
    """Manual retry (seed 004): one more attempt now, for a failed device with retries left (also
    one waiting for its automatic retry: that retry is brought forward) or a skipped one. It
    counts against maxRetries; an attempt that never ran (skipped) does not use one."""
    who.require_role("operator", "retry devices")
    d = load(s, who, deployment_id, lock=True)
    dev_id = parse_uuid(device_id, "deviceId")
    check_action("retry_device", d.status)
    r = s.scalar(select(m.DeploymentDevice).where(m.DeploymentDevice.deployment_id == d.id,
                                                  m.DeploymentDevice.device_id == dev_id))
    if r is None:
        raise NotFound("Device is not part of this deployment", deployment_id=d.id, device_id=dev_id)
    manual_retry(s, d, r, now)
    if d.status in (D.COMPLETED, D.FAILED):
        transition(s, d, "reopen", now, who.token_id, f"manual retry of device {dev_id}", completed_at=None,
                   status_reason="", batch_finished_at=None, next_batch_at=None)
    elif d.batch_finished_at is not None:
        # The batch is open again: the next one starts batchDelayMinutes after it finishes anew.
        s.execute(update(m.Deployment).where(m.Deployment.id == d.id)
                  .values(batch_finished_at=None, next_batch_at=None).execution_options(synchronize_session=False))
    s.refresh(r)
    host = s.scalar(select(m.Device.hostname).where(m.Device.id == r.device_id)) or ""
    audit_log.note(s, client_ids=[d.client_id], target_id=d.id, summary=f"device={dev_id}")
    return record_dict(r, host)
