"""The deployment and device-record state machines: every legal move, in one table each.

Whichever door a transition comes in by (CLI, gRPC, REST, the engine, an agent report), it is
checked here, and the store applies it as a guarded update (`WHERE status IN <allowed from>`),
so a stale or duplicate request can never move anything backwards.

Deployments::

    draft ──initialize──▶ pending ──start──▶ downloading ⇄ installing ⇄ running
                                                   │  ▲ pause / resume  │
                                                   ▼  │                 ▼
                                                  paused        completed | failed
    pending/downloading/installing/running/paused ──cancel──▶ cancelled
    completed/failed/paused/cancelled ──rollback──▶ rollback

Device records (the rules that choose a move are in domain/records.py)::

    pending ──dispatch──▶ downloading ──▶ installing ──▶ completed | failed
       │  ▲                    │              │
       │  └──retry (backoff)───┴──────────────┘   (failed attempt with retries left)
       ├──skip (offline, outside window, cancelled)──▶ skipped      (no attempt ran before)
       └──undeliverable retry (offline, outside window, cancelled)──▶ failed
    downloading ──never delivered (cancelled, or the device went silent)──▶ skipped | failed
    pending | failed | skipped ──late result of the record's current job──▶ completed | failed
    failed | skipped ──manual retry──▶ pending;  pending (waiting for a retry) ──retry now──▶ pending
"""

from __future__ import annotations

from common.errors import Conflict
from common.states import DeploymentStatus, RecordStatus

D = DeploymentStatus
R = RecordStatus

ACTIVE = frozenset({D.DOWNLOADING, D.INSTALLING, D.RUNNING})
"""Statuses in which the engine dispatches work."""
LIVE = ACTIVE | {D.PAUSED}
"""Statuses in which the engine still looks after the deployment."""
FINISHED = frozenset({D.COMPLETED, D.FAILED, D.CANCELLED, D.ROLLBACK})

RECORD_TERMINAL = frozenset({R.COMPLETED, R.FAILED, R.SKIPPED})
RECORD_RUNNING = frozenset({R.DOWNLOADING, R.INSTALLING})

# action -> (statuses it is allowed from, status it leads to; None = decided by the engine)
DEPLOYMENT_ACTIONS: dict[str, tuple[frozenset[DeploymentStatus], DeploymentStatus | None]] = {
    "update": (frozenset({D.DRAFT}), D.DRAFT),
    "delete": (frozenset({D.DRAFT}), None),
    "initialize": (frozenset({D.DRAFT}), D.PENDING),
    "start": (frozenset({D.PENDING}), D.DOWNLOADING),
    "pause": (ACTIVE, D.PAUSED),
    "resume": (frozenset({D.PAUSED}), D.RUNNING),
    "cancel": (frozenset({D.PENDING}) | LIVE, D.CANCELLED),
    "rollback": (frozenset({D.COMPLETED, D.FAILED, D.PAUSED, D.CANCELLED}), D.ROLLBACK),
    "retry_device": (LIVE | {D.COMPLETED, D.FAILED}, None),
    # engine moves
    "dispatch_batch": (ACTIVE, D.DOWNLOADING),
    "installing": (ACTIVE, D.INSTALLING),
    "between_batches": (ACTIVE, D.RUNNING),
    "auto_pause": (ACTIVE, D.PAUSED),
    "complete": (ACTIVE, D.COMPLETED),
    "fail": (ACTIVE, D.FAILED),
    "reopen": (frozenset({D.COMPLETED, D.FAILED}), D.RUNNING),
    # onFailureThreshold "cancel" / "rollback" (also when paused by hand: the threshold decides)
    "auto_cancel": (LIVE, D.CANCELLED),
    "auto_rollback": (LIVE, D.ROLLBACK),
}

RECORD_MOVES: dict[str, tuple[frozenset[RecordStatus], RecordStatus]] = {
    "dispatch": (frozenset({R.PENDING}), R.DOWNLOADING),
    "skip": (frozenset({R.PENDING}), R.SKIPPED),
    "undeliverable": (frozenset({R.PENDING}), R.FAILED),
    "installing": (frozenset({R.DOWNLOADING}), R.INSTALLING),
    "complete": (RECORD_RUNNING, R.COMPLETED),
    "fail": (RECORD_RUNNING, R.FAILED),
    "retry_later": (RECORD_RUNNING, R.PENDING),
    "agent_skip": (RECORD_RUNNING, R.SKIPPED),
    "withdraw_skip": (frozenset({R.DOWNLOADING}), R.SKIPPED),
    "withdraw_fail": (frozenset({R.DOWNLOADING}), R.FAILED),
    "late_complete": (frozenset({R.PENDING, R.FAILED, R.SKIPPED}), R.COMPLETED),
    "late_fail": (frozenset({R.SKIPPED}), R.FAILED),
    "manual_retry": (frozenset({R.FAILED, R.SKIPPED}), R.PENDING),
    "retry_now": (frozenset({R.PENDING}), R.PENDING),
}

_ACTION_WORDS = {
    "update": "updated", "delete": "deleted", "initialize": "initialized", "start": "started",
    "pause": "paused", "resume": "resumed", "cancel": "cancelled", "rollback": "rolled back",
    "retry_device": "retried",
}


def check_action(action: str, current: str) -> DeploymentStatus | None:
    """The status `action` leads to from `current`, or Conflict (409) naming the current status."""
    allowed, to = DEPLOYMENT_ACTIONS[action]
    if current not in allowed:
        word = _ACTION_WORDS.get(action, action)
        hint = ""
        if action in ("update", "delete"):
            hint = "; only draft deployments can be changed: cancel it and create a new one"
        elif action == "start" and current == D.DRAFT:
            hint = "; initialize it first"
        elif action == "resume":
            hint = "; only a paused deployment can be resumed"
        raise Conflict(f"deployment is {current} and cannot be {word}{hint}",
                       status=current, allowed_from=sorted(allowed))
    return to


def allowed_from(action: str) -> list[str]:
    return sorted(DEPLOYMENT_ACTIONS[action][0])


def record_allowed(move: str, current: str) -> bool:
    """Whether a record in status `current` may make `move`."""
    return current in RECORD_MOVES[move][0]


def record_move(move: str) -> tuple[list[str], str]:
    """(statuses allowed from, status after) for a record move, for guarded SQL updates."""
    froms, to = RECORD_MOVES[move]
    return sorted(froms), to.value
