"""The approval rule (coordinator/domain/approval.py): who needs a second operator's sign-off."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import InvalidArgument
from coordinator.domain.approval import ApprovalPolicy, check_comment, view


def test_no_policy_needs_no_approval() -> None:
    p = ApprovalPolicy()
    assert not p.active
    assert p.requirement("all", 100_000) is None
    assert p.describe("all", 5) == "the client has no approval policy"


def test_count_rule_is_strictly_more_than_n() -> None:
    p = ApprovalPolicy(over=50)
    assert p.requirement("devices", 50) is None
    assert p.requirement("devices", 51) == ("needs approval by another operator: 51 targets over the client's "
                                            "limit of 50")
    assert p.requirement("all", 10) is None  # the count rule alone ignores the target type
    assert p.describe("groups", 7) == "7 targets are within the client's limit of 50"


def test_zero_means_every_deployment() -> None:
    p = ApprovalPolicy(over=0)
    assert p.requirement("devices", 1) == "needs approval by another operator: 1 target over the client's limit of 0"
    assert ApprovalPolicy(over=5).describe("devices", 1) == "1 target is within the client's limit of 5"
    assert p.requirement("filter", 1) is not None


def test_for_all_rule_needs_approval_for_target_type_all_of_any_size() -> None:
    p = ApprovalPolicy(for_all=True)
    assert p.requirement("all", 1) == "needs approval by another operator: it targets all of the client's devices"
    assert p.requirement("groups", 10_000) is None
    both = ApprovalPolicy(over=100, for_all=True)
    assert both.requirement("all", 3) is not None and both.requirement("filter", 101) is not None
    assert both.requirement("filter", 100) is None
    assert both.describe("filter", 100) == "100 targets are within the client's limit of 100 and targetType is filter, not all"


@pytest.mark.parametrize(("body", "field"), [
    ({"requireApprovalOver": -1}, "requireApprovalOver"),
    ({"requireApprovalOver": "10"}, "requireApprovalOver"),
    ({"requireApprovalOver": 1.5}, "requireApprovalOver"),
    ({"requireApprovalOver": True}, "requireApprovalOver"),
    ({"requireApprovalOver": 10**10}, "requireApprovalOver"),
    ({"requireApprovalForAll": "yes"}, "requireApprovalForAll"),
    ({"requireApprovalForAll": 1}, "requireApprovalForAll"),
    ({"requireApprovalOvr": 3}, "requireApprovalOvr"),
    ([1], "body"),
])
def test_bad_policy_bodies_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        ApprovalPolicy.parse(body)
    assert exc.value.details["parameter"] == field
    assert field in exc.value.message or field == "body"


def test_policy_body_replaces_the_whole_policy() -> None:
    assert ApprovalPolicy.parse({}) == ApprovalPolicy()
    assert ApprovalPolicy.parse({"requireApprovalOver": None, "requireApprovalForAll": False}) == ApprovalPolicy()
    assert ApprovalPolicy.parse({"requireApprovalOver": 25.0}) == ApprovalPolicy(over=25)
    assert ApprovalPolicy.parse({"requireApprovalForAll": True}) == ApprovalPolicy(for_all=True)


def _view(policy: ApprovalPolicy, status: str, count: int = 10, target: str = "devices", *,
          rollback: bool = False, approvals: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return view(policy, status=status, target_type=target, target_count=count, is_rollback=rollback,
                approvals=approvals or [])


def test_view_follows_the_lifecycle() -> None:
    p = ApprovalPolicy(over=5)
    assert _view(p, "draft")["status"] == "not_evaluated"
    pending = _view(p, "pending")
    assert pending == {"status": "required", "required": True, "approvals": [],
                       "reason": "needs approval by another operator: 10 targets over the client's limit of 5"}
    assert _view(p, "pending", count=5) == {"status": "not_required", "required": False, "reason": "", "approvals": []}
    approved = _view(p, "running", approvals=[{"tokenId": "t"}])
    assert approved["status"] == "approved" and approved["required"] and approved["reason"] == ""
    # past pending the gate was passed: a policy tightened later does not apply backwards
    assert _view(p, "running")["status"] == "not_required"
    assert _view(p, "pending", rollback=True)["status"] == "not_required"


def test_comment_validation() -> None:
    assert check_comment(None) == ""
    assert check_comment("  CHG-1234 reviewed\n") == "CHG-1234 reviewed"
    for bad in (5, "x" * 1001, "bell\x07"):
        with pytest.raises(InvalidArgument) as exc:
            check_comment(bad)
        assert exc.value.details["parameter"] == "comment"


@settings(max_examples=300, deadline=None)
@given(over=st.one_of(st.none(), st.integers(0, 200)), for_all=st.booleans(),
       target=st.sampled_from(["devices", "groups", "filter", "all"]), count=st.integers(0, 300),
       status=st.sampled_from(["draft", "pending", "downloading", "running", "paused", "completed", "cancelled"]),
       rollback=st.booleans(), approved=st.booleans())
def test_view_invariants(over: int | None, for_all: bool, target: str, count: int, status: str, rollback: bool,
                         approved: bool) -> None:
    policy = ApprovalPolicy(over=over, for_all=for_all)
    needs = (over is not None and count > over) or (for_all and target == "all")
    assert (policy.requirement(target, count) is not None) == needs
    v = _view(policy, status, count, target, rollback=rollback, approvals=[{"tokenId": "t"}] if approved else [])
    assert v["required"] == (v["status"] in ("required", "approved"))
    assert bool(v["reason"]) == (v["status"] == "required")
    if v["status"] == "required":  # only a pending, non-rollback deployment above the policy waits
        assert status == "pending" and needs and not rollback and not approved
    elif status == "pending" and needs and not rollback:
        assert v["status"] == "approved"
