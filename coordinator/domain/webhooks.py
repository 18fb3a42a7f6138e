"""Webhooks, the pure part: which deployment moves are events, the retry schedule, the signature,
and the checks on a receiver's URL (docs/webhooks.md). No store, no network, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from common.states import DeploymentStatus

D = DeploymentStatus


class WebhookEvent(StrEnum):
    """What a webhook can subscribe to: a deployment reaching one of these statuses."""

    STARTED = "deployment.started"
    """`start`: the first batch goes out (pending -> downloading)."""
    PAUSED = "deployment.paused"
    """By an operator or by a failure threshold; the body's `reason` says which and why."""
    COMPLETED = "deployment.completed"
    """Every device record is terminal and no threshold was exceeded."""
    FAILED = "deployment.failed"
    """Every device record is terminal and a threshold was exceeded (or every device failed)."""
    CANCELLED = "deployment.cancelled"
    """By an operator or by onFailureThreshold "cancel"."""
    ROLLED_BACK = "deployment.rolled_back"
    """A rollback deployment was created for it (by an operator or onFailureThreshold "rollback")."""


EVENTS = tuple(e.value for e in WebhookEvent)

_BY_STATUS = {D.PAUSED: WebhookEvent.PAUSED, D.COMPLETED: WebhookEvent.COMPLETED, D.FAILED: WebhookEvent.FAILED,
              D.CANCELLED: WebhookEvent.CANCELLED, D.ROLLBACK: WebhookEvent.ROLLED_BACK}


def event_for(action: str, before: str, after: str) -> WebhookEvent | None:
    """The event a deployment's move from `before` to `after` by `action` is, if any."""
    if before == after:
        return None
    if action == "start":
        return WebhookEvent.STARTED
    return _BY_STATUS.get(DeploymentStatus(after)) if after in _BY_STATUS else None


def parse_events(values: list[str]) -> list[str]:
    """A webhook's filter, checked and in canonical order; empty means every event."""
    bad = sorted({v for v in values if v not in EVENTS})
    if bad:
        raise ValueError(f"unknown event {', '.join(bad)}; events are {', '.join(EVENTS)}")
    return [e for e in EVENTS if e in set(values)]


def wants(events: list[str], event: str) -> bool:
    return not events or event in events


# --- retries -------------------------------------------------------------------------------------

MAX_ATTEMPTS = 10
"""A delivery is dead (never retried) after this many attempts without a 2xx answer."""
MAX_BACKOFF_S = 3600.0
LEASE_S = 60.0
"""A claimed delivery is due again this long after its claim: a replica that died mid-attempt
leaves it to the others. Longer than the request timeout, so a live attempt is never doubled."""
REQUEST_TIMEOUT_S = 15.0


def backoff_s(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 2, 4, 8, … capped at 1 h."""
    return min(MAX_BACKOFF_S, 2.0 ** max(1, attempts))


@dataclass(frozen=True)
class AttemptResult:
    status: str
    """"delivered", "pending" (tried again at `next_attempt_at`) or "dead"."""
    next_attempt_at: datetime | None


def after_attempt(attempts: int, delivered: bool, now: datetime) -> AttemptResult:
    """Where a delivery goes after its `attempts`-th try (counting this one)."""
    if delivered:
        return AttemptResult("delivered", None)
    if attempts >= MAX_ATTEMPTS:
        return AttemptResult("dead", None)
    return AttemptResult("pending", now + timedelta(seconds=backoff_s(attempts)))


def is_success(status_code: int) -> bool:
    return 200 <= status_code < 300


# --- the signature -------------------------------------------------------------------------------

SIGNATURE_PREFIX = "sha256="


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`X-Convoy-Signature`: HMAC-SHA256 with the webhook's secret over `timestamp "." body`."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """What a receiver does (docs/webhooks.md has the same in a few lines of its own)."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)


# --- receiver URLs -------------------------------------------------------------------------------

MAX_URL = 2048

_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                       ipaddress.ip_address("100.100.100.200")})
"""Cloud instance-metadata addresses (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba)."""


def check_url(url: str) -> str | None:
    """Why `url` cannot be a receiver, or None. http and https only, a host, no fragment."""
    if not url or len(url) > MAX_URL:
        return f"url must be 1 to {MAX_URL} characters"
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        return "url must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        return f"url is not a valid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"url must be http:// or https:// (not {parts.scheme or 'no scheme'})"
    if not parts.hostname:
        return "url must name a host"
    if parts.fragment:
        return "url must not have a #fragment"
    return None


def refused_address(address: str) -> str | None:
    """Why a receiver at `address` (an IP) is refused unless the coordinator allows it: link-local
    and cloud metadata addresses, where an operator-supplied URL could read the coordinator's own
    cloud credentials (SSRF). Loopback and private networks are allowed: receivers live there."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return f"{ip} is a cloud metadata address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_multicast or ip.is_unspecified:
        return f"{ip} is not a unicast address"
    return None


def url_host(url: str) -> str:
    return (urlsplit(url).hostname or "").strip("[]")
