"""Replica ids: generated ones are valid and distinct; given ones are checked with a reason."""

from __future__ import annotations

from coordinator.config import REPLICA_ID_MAX, check_replica_id, generated_replica_id


def test_generated_ids_are_valid_distinct_and_fit_the_audit_actor() -> None:
    ids = {generated_replica_id() for _ in range(50)}
    assert len(ids) == 50
    for rid in ids:
        assert check_replica_id(rid) is None, rid
        assert len(f"engine@{rid}") <= 64  # deployment_events.actor


def test_bad_ids_are_refused_with_the_reason() -> None:
    assert check_replica_id("convoy-a.eu_1") is None
    assert check_replica_id("") == "must not be empty"
    assert "at most 48" in (check_replica_id("x" * (REPLICA_ID_MAX + 1)) or "")
    assert "'/'" in (check_replica_id("a/b") or "") and "may contain only" in (check_replica_id("a b") or "")
