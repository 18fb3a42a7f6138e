"""Second-person sign-off: when a deployment needs another operator's approval before `start`.

A client's approval policy has two independent rules (docs/approvals.md):

- `requireApprovalOver: N` — a deployment targeting more than N devices needs approval
  (N = 0: every deployment; unset: no count rule);
- `requireApprovalForAll: true` — every `targetType: all` deployment needs approval, whatever
  its size (a fleet-wide push by construction).

Pure: the store loads the policy and the approvals, this module decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from common.errors import InvalidArgument

MAX_OVER = 1_000_000_000
COMMENT_MAX = 1000
POLICY_FIELDS = ("requireApprovalOver", "requireApprovalForAll")


class ApprovalStatus(StrEnum):
    NOT_EVALUATED = "not_evaluated"
    """A draft: its target count is known only at initialize."""
    NOT_REQUIRED = "not_required"
    """Under the client's policy (or started without needing approval)."""
    REQUIRED = "required"
    """Pending and above the policy: `start` is refused until another operator approves."""
    APPROVED = "approved"
    """Another operator approved it."""


@dataclass(frozen=True)
class ApprovalPolicy:
    over: int | None = None
    """Deployments targeting more than this many devices need approval; None: no count rule."""
    for_all: bool = False
    """Every `targetType: all` deployment needs approval."""

    @classmethod
    def parse(cls, body: Any) -> ApprovalPolicy:
        """The policy from a REST/gRPC body; InvalidArgument naming the field otherwise. A field
        left out takes its default (no rule): the body replaces the whole policy."""
        if not isinstance(body, dict):
            raise InvalidArgument("request body must be a JSON object", parameter="body")
        unknown = sorted(set(body) - set(POLICY_FIELDS))
        if unknown:
            raise InvalidArgument(f"unknown field {unknown[0]}; the policy's fields are {', '.join(POLICY_FIELDS)}",
                                  parameter=unknown[0])
        over = body.get("requireApprovalOver")
        if over is not None:
            if isinstance(over, float) and math.isfinite(over) and over.is_integer():
                over = int(over)
            if isinstance(over, bool) or not isinstance(over, int) or not 0 <= over <= MAX_OVER:
                raise InvalidArgument(f"requireApprovalOver must be an integer between 0 and {MAX_OVER}, or null "
                                      "for no count rule", parameter="requireApprovalOver", value=repr(over)[:100])
        for_all = body.get("requireApprovalForAll", False)
        if not isinstance(for_all, bool):
            raise InvalidArgument("requireApprovalForAll must be true or false", parameter="requireApprovalForAll",
                                  value=repr(for_all)[:100])
        return cls(over=over, for_all=for_all)

    @property
    def active(self) -> bool:
        return self.over is not None or self.for_all

    def requirement(self, target_type: str, target_count: int) -> str | None:
        """Why a deployment of `target_count` devices of `target_type` needs approval, or None."""
        if self.over is not None and target_count > self.over:
            return (f"needs approval by another operator: {_targets(target_count)} over the client's limit "
                    f"of {self.over}")
        if self.for_all and target_type == "all":
            return "needs approval by another operator: it targets all of the client's devices"
        return None

    def describe(self, target_type: str, target_count: int) -> str:
        """Why no approval is needed (the 409 of an approval nobody asked for)."""
        if not self.active:
            return "the client has no approval policy"
        parts = []
        if self.over is not None:
            verb = "is" if target_count == 1 else "are"
            parts.append(f"{_targets(target_count)} {verb} within the client's limit of {self.over}")
        if self.for_all:
            parts.append(f"targetType is {target_type}, not all")
        return " and ".join(parts)


def _targets(n: int) -> str:
    return f"{n} target" if n == 1 else f"{n} targets"


def view(policy: ApprovalPolicy, *, status: str, target_type: str, target_count: int, is_rollback: bool,
         approvals: list[dict[str, Any]]) -> dict[str, Any]:
    """The `approval` object of a deployment as GET shows it."""
    reason = ""
    if approvals:
        state = ApprovalStatus.APPROVED
    elif status == "draft":
        state = ApprovalStatus.NOT_EVALUATED
    elif status == "pending" and not is_rollback and (why := policy.requirement(target_type, target_count)):
        state, reason = ApprovalStatus.REQUIRED, why
    else:
        # Past pending, the gate has been passed: a later policy change does not apply backwards.
        state = ApprovalStatus.NOT_REQUIRED
    return {"status": state.value, "required": state in (ApprovalStatus.REQUIRED, ApprovalStatus.APPROVED),
            "reason": reason, "approvals": approvals}


def check_comment(comment: Any) -> str:
    if comment is None:
        return ""
    if not isinstance(comment, str):
        raise InvalidArgument("comment must be a string", parameter="comment")
    if len(comment) > COMMENT_MAX:
        raise InvalidArgument(f"comment must be at most {COMMENT_MAX} characters", parameter="comment",
                              length=len(comment))
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in comment):
        raise InvalidArgument("comment must not contain control characters", parameter="comment")
    return comment.strip()
