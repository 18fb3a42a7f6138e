"""Webhooks, the pure rules: which moves are events, retries and dead-lettering, signatures, URLs."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from coordinator.domain import webhooks as W

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("action", "before", "after", "event"), [
    ("start", "pending", "downloading", "deployment.started"),
    ("pause", "installing", "paused", "deployment.paused"),
    ("auto_pause", "running", "paused", "deployment.paused"),
    ("complete", "installing", "completed", "deployment.completed"),
    ("fail", "installing", "failed", "deployment.failed"),
    ("cancel", "paused", "cancelled", "deployment.cancelled"),
    ("auto_cancel", "running", "cancelled", "deployment.cancelled"),
    ("rollback", "completed", "rollback", "deployment.rolled_back"),
    ("dispatch_batch", "running", "downloading", None),
    ("installing", "downloading", "installing", None),
    ("between_batches", "installing", "running", None),
    ("resume", "paused", "running", None),
    ("initialize", "draft", "pending", None),
    ("update", "draft", "draft", None),
])
def test_event_for_each_move(action: str, before: str, after: str, event: str | None) -> None:
    assert W.event_for(action, before, after) == event


def test_event_filter() -> None:
    assert W.parse_events(["deployment.failed", "deployment.paused", "deployment.failed"]) == [
        "deployment.paused", "deployment.failed"]
    with pytest.raises(ValueError, match="unknown event deployment.exploded"):
        W.parse_events(["deployment.exploded"])
    assert W.wants([], "deployment.completed") and W.wants(["deployment.completed"], "deployment.completed")
    assert not W.wants(["deployment.failed"], "deployment.completed")


def test_backoff_doubles_from_two_seconds_and_caps_at_an_hour() -> None:
    assert [W.backoff_s(n) for n in range(1, 14)] == [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]


def test_after_attempt_retries_then_dead_letters_at_ten() -> None:
    assert W.after_attempt(1, True, NOW) == W.AttemptResult("delivered", None)
    assert W.after_attempt(1, False, NOW) == W.AttemptResult("pending", NOW + timedelta(seconds=2))
    assert W.after_attempt(9, False, NOW) == W.AttemptResult("pending", NOW + timedelta(seconds=512))
    assert W.after_attempt(10, False, NOW) == W.AttemptResult("dead", None)
    assert W.after_attempt(10, True, NOW).status == "delivered"  # the tenth try may still succeed


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"e1"}'
    want = "sha256=" + hmac.new(b"whsec_x", b"1764676800." + body, hashlib.sha256).hexdigest()
    assert W.signature("whsec_x", "1764676800", body) == want
    assert W.verify("whsec_x", "1764676800", body, want)
    assert not W.verify("whsec_y", "1764676800", body, want)
    assert not W.verify("whsec_x", "1764676801", body, want)
    assert not W.verify("whsec_x", "1764676800", body + b" ", want)


@pytest.mark.parametrize(("url", "why"), [
    ("https://hooks.example.com/convoy", None),
    ("http://10.0.0.5:8080/x?y=1", None),
    ("http://[::1]:9/h", None),
    ("ftp://example.com/", "must be http:// or https://"),
    ("example.com/hook", "must be http:// or https://"),
    ("https:///nohost", "must name a host"),
    ("https://example.com/#frag", "#fragment"),
    ("https://example.com:99999/", "not a valid URL"),
    ("https://exa mple.com/", "whitespace"),
    ("", "1 to 2048"),
    ("https://e.com/" + "a" * 2048, "1 to 2048"),
])
def test_check_url(url: str, why: str | None) -> None:
    got = W.check_url(url)
    assert (got is None) if why is None else (got is not None and why in got), got


@pytest.mark.parametrize(("address", "refused"), [
    ("169.254.169.254", True), ("169.254.10.1", True), ("fe80::1", True), ("fd00:ec2::254", True),
    ("::ffff:169.254.169.254", True), ("100.100.100.200", True), ("0.0.0.0", True), ("224.0.0.1", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.1.1", False), ("::1", False), ("8.8.8.8", False),
    ("hooks.example.com", False),
])
def test_refused_addresses(address: str, refused: bool) -> None:
    assert (W.refused_address(address) is not None) == refused
