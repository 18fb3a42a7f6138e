"""Approvals: the per-client policy, the sign-off of a deployment, and the gate on `start`.

The rule itself (who needs approval) is pure, in coordinator/domain/approval.py; this module
loads and stores. An approver is an API token: the token that created a deployment cannot
approve it (docs/approvals.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.errors import Conflict, InvalidArgument, PermissionDenied
from common.ids import new_id, parse_uuid
from common.timefmt import iso
from coordinator.auth import Principal
from coordinator.domain.approval import ApprovalPolicy, check_comment, view
from coordinator.domain.states import DeploymentStatus as D
from coordinator.service.audit_log import action
from coordinator.store import models as m
from coordinator.store.transitions import add_event

# --- the policy -----------------------------------------------------------------------------


def policy_for(s: Session, client_id: str) -> ApprovalPolicy:
    row = s.get(m.ClientPolicy, client_id)
    if row is None:
        return ApprovalPolicy()
    return ApprovalPolicy(over=row.require_approval_over, for_all=row.require_approval_for_all)


def _policy_dict(client_id: str, row: m.ClientPolicy | None) -> dict[str, Any]:
    return {"clientId": client_id,
            "requireApprovalOver": row.require_approval_over if row else None,
            "requireApprovalForAll": bool(row.require_approval_for_all) if row else False,
            "updatedAt": iso(row.updated_at) if row else None,
            "updatedBy": row.updated_by if row else None}


def _admin_client(s: Session, who: Principal, client_id: str, action: str) -> str:
    cid = parse_uuid(client_id, "clientId")
    who.require_client(s, cid)
    who.require_role("admin", action)
    return cid


def get_policy(s: Session, who: Principal, client_id: str) -> dict[str, Any]:
    cid = _admin_client(s, who, client_id, "read the approval policy")
    return _policy_dict(cid, s.get(m.ClientPolicy, cid))


@action("policy.set")
def set_policy(s: Session, who: Principal, client_id: str, body: Any, now: datetime) -> dict[str, Any]:
    """Replace the client's policy (a field left out means no such rule)."""
    cid = _admin_client(s, who, client_id, "set the approval policy")
    policy = ApprovalPolicy.parse(body)
    row = s.get(m.ClientPolicy, cid)
    if not policy.active:
        if row is not None:
            s.delete(row)
        return {**_policy_dict(cid, None), "updatedAt": iso(now), "updatedBy": who.token_id}
    if row is None:
        row = m.ClientPolicy(client_id=cid)
        s.add(row)
    row.require_approval_over = policy.over
    row.require_approval_for_all = policy.for_all
    row.updated_at = now
    row.updated_by = who.token_id
    s.flush()
    return _policy_dict(cid, row)


# --- a deployment's approvals ---------------------------------------------------------------


def _approvals(s: Session, deployment_id: str) -> list[dict[str, Any]]:
    rows = s.execute(select(m.DeploymentApproval, m.ApiToken.name)
                     .join(m.ApiToken, m.ApiToken.id == m.DeploymentApproval.token_id, isouter=True)
                     .where(m.DeploymentApproval.deployment_id == deployment_id)
                     .order_by(m.DeploymentApproval.at, m.DeploymentApproval.id))
    return [{"tokenId": a.token_id, "tokenName": name or "", "at": iso(a.at), "comment": a.comment}
            for a, name in rows]


def approval_view(s: Session, d: m.Deployment) -> dict[str, Any]:
    """The `approval` object GET deployment and watch show."""
    return view(policy_for(s, d.client_id), status=d.status, target_type=d.target_type, target_count=d.total,
                is_rollback=d.rollback_of is not None, approvals=_approvals(s, d.id))


def gate(s: Session, d: m.Deployment) -> None:
    """Conflict (409) with the reason if `d` may not start yet for want of an approval.

    Evaluated at start against the target count frozen at initialize and the client's policy
    now, so a policy tightened after initialize still holds. A rollback is not gated: it is
    started by the same call that asks for it and restores the state the fleet was in."""
    if d.rollback_of is not None:
        return
    why = policy_for(s, d.client_id).requirement(d.target_type, d.total)
    if why is None:
        return
    if s.scalar(select(m.DeploymentApproval.id).where(m.DeploymentApproval.deployment_id == d.id).limit(1)):
        return
    raise Conflict(why, status=d.status, approval="required", targets=d.total,
                   hint=f"another operator of this client runs: convoy deployments approve {d.id}")


def approve(s: Session, who: Principal, d: m.Deployment, comment: Any, now: datetime) -> bool:
    """Record `who`'s approval of `d` (locked by the caller). True if recorded, False if this
    token had already approved it (idempotent). Refusals: 403 for the creating token or a
    viewer, 409 for a deployment that is not pending or needs no approval."""
    text = check_comment(comment)
    who.require_role("operator", "approve deployments")
    if d.status == D.DRAFT:
        raise Conflict("deployment is draft and cannot be approved yet; initialize it first: its target count "
                       "decides whether it needs approval", status=d.status)
    if d.status != D.PENDING:
        raise Conflict(f"deployment is {d.status} and cannot be approved: only a pending deployment (initialized, "
                       "not started) can be", status=d.status)
    if d.created_by and d.created_by == who.token_id:
        raise PermissionDenied("the API token that created this deployment cannot approve it: another operator "
                               "of the client must, with their own token", created_by=d.created_by)
    existing = s.scalar(select(m.DeploymentApproval).where(m.DeploymentApproval.deployment_id == d.id,
                                                           m.DeploymentApproval.token_id == who.token_id))
    if existing is not None:
        return False
    policy = policy_for(s, d.client_id)
    if d.rollback_of is not None or policy.requirement(d.target_type, d.total) is None:
        why = "it is a rollback" if d.rollback_of is not None else policy.describe(d.target_type, d.total)
        raise Conflict(f"deployment needs no approval: {why}", status=d.status, approval="not_required")
    s.add(m.DeploymentApproval(id=new_id(), deployment_id=d.id, token_id=who.token_id, comment=text, at=now))
    add_event(s, d, who.token_id, d.status, d.status, "approved" + (f": {text}" if text else ""), now)
    s.flush()
    return True


def approve_body(body: Any) -> Any:
    """The comment of a REST approve body ({} or {"comment": "..."}; no body at all is fine)."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object", parameter="body")
    unknown = sorted(set(body) - {"comment"})
    if unknown:
        raise InvalidArgument(f"unknown field {unknown[0]}; an approval takes only a comment", parameter=unknown[0])
    return body.get("comment")
