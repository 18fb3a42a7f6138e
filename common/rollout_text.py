"""One-line descriptions of the rollout strategies a deployment uses, for people: the initialize
preview (REST `preview.strategies`), `convoy deployments get`, `initialize` and `watch`.

Pure, over the stored (validated) rolloutConfig JSON; a config that uses none of them gives no
lines. Shared by the coordinator and the CLI so both say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_WINDOW_WAIT_MAX_HOURS = 168


def _num(value: Any) -> str:
    return f"{float(value):g}"


def strategy_lines(rollout: Mapping[str, Any] | None) -> list[str]:
    """verify, offlineDevices and windowPolicy, as sentences (empty: the seed's behaviour)."""
    r = rollout or {}
    lines: list[str] = []
    verify = r.get("verify")
    if verify:
        lines.append(f"verify: script {verify.get('scriptId')} runs after each successful install "
                     f"(timeout {_num(verify.get('timeoutMinutes') or 10)} min); a failing check fails the device "
                     f"with reason 'verification'")
    offline = r.get("offlineDevices") or {}
    if offline.get("policy") == "wait":
        lines.append(f"offline devices: wait up to {_num(offline.get('waitMinutes'))} min after their batch starts "
                     f"and get the job when they connect (batches do not wait for them; the deployment does)")
    if r.get("respectMaintenanceWindows") and r.get("windowPolicy") == "wait":
        hours = r.get("windowWaitMaxHours") or DEFAULT_WINDOW_WAIT_MAX_HOURS
        lines.append(f"maintenance windows: a device outside its windows gets the job now and installs when its "
                     f"next window opens (skipped if none opens within {_num(hours)} h)")
    return lines + plan_lines(r)


def plan_lines(r: Mapping[str, Any]) -> list[str]:
    """Step lists, ramps, the rate cap, the success gate, the threshold basis, sample and action,
    and a scheduled start, as sentences (docs/deployments-rules.md, "Rollout strategies")."""
    lines: list[str] = []
    s = (r.get("staggered") or {}) if r.get("type") == "staggered" else {}
    if s.get("batches"):
        lines.append("batches: " + ", ".join(str(v) for v in s["batches"]) + " (the last size repeats)")
    ramp = s.get("ramp")
    if ramp:
        cap = f", at most {ramp['max']}" if ramp.get("max") is not None else ""
        lines.append(f"ramp: {ramp.get('start')} device(s) first, each batch x{_num(ramp.get('factor') or 2)}{cap}")
    if r.get("maxPerMinute"):
        lines.append(f"rate: at most {r['maxPerMinute']} dispatches a minute")
    if s.get("successGatePercent") is not None:
        lines.append(f"success gate: the next batch starts only if {_num(s['successGatePercent'])}% of the last "
                     f"one completed (checked after the batch delay), else the deployment pauses")
    if s.get("failureBasis") == "finished":
        lines.append("failure percent: over the devices finished (since the last resume), not all targets")
    if s.get("minFinishedForPercent"):
        lines.append(f"failure percent: not applied before {s['minFinishedForPercent']} devices finished")
    if r.get("onFailureThreshold") in ("cancel", "rollback"):
        lines.append(f"a crossed threshold: {r['onFailureThreshold']} (not pause)")
    if r.get("startAt"):
        lines.append(f"scheduled: the first batch starts at {r['startAt']}")
    return lines
