"""Failed enrollments per source address (pure, time passed in)."""

from __future__ import annotations

from coordinator.domain.throttle import FailureThrottle, source_host


def test_sources_from_grpc_peers() -> None:
    assert source_host("ipv4:10.0.0.5:41234") == "10.0.0.5"
    assert source_host("ipv6:[::1]:5000") == "::1"
    assert source_host("unix:/tmp/sock") == "unix:/tmp/sock"


def test_a_source_is_refused_after_the_limit_until_failures_age_out() -> None:
    t = FailureThrottle(limit=3, window_s=60)
    for i in range(3):
        assert t.retry_after("a", 10.0 + i) == 0
        assert t.failed("a", 10.0 + i) == i + 1
    assert t.retry_after("a", 13.0) == 60 + 10 - 13
    assert t.retry_after("b", 13.0) == 0  # other sources are not affected
    assert t.retry_after("a", 70.5) == 0  # the first failure aged out
    assert t.failed("a", 70.5) == 3


def test_memory_is_bounded() -> None:
    t = FailureThrottle(limit=2, window_s=60, max_sources=100)
    for i in range(1000):
        t.failed(f"s{i}", 1.0)
    assert len(t._failures) == 100 and t.retry_after("s999", 1.0) == 0 and t.failed("s999", 1.0) == 2
