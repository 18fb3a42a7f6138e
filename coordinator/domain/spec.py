"""The deployment create/update body (seed 004, "API — Create Deployment"): validation and defaults.

`validate_spec` takes the camelCase JSON body and returns it normalized:

    {"name", "type", "payload", "targetType", "targetConfig", "rolloutConfig"[, "clientId"]}

with every default filled in (see docs/deployments-rules.md). Every problem is an
`InvalidArgument("<path>: <what is wrong>", parameter="<path>")`; a problem with one item of a
list also carries `index`, and one with a script parameter carries `key`. Unknown keys are
rejected at every level, so a typo (`batchsize`) is a 400 instead of a silently ignored setting.
Ids must be UUIDs (canonicalized to lowercase); whether they exist is checked by the service.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from common.errors import InvalidArgument
from coordinator.domain import filter as target_filter
from coordinator.domain.batch_plan import parse_percent

DEPLOYMENT_TYPES = ("script", "patch", "software", "policy")
TARGET_TYPES = ("devices", "groups", "filter", "all")
ROLLOUT_TYPES = ("immediate", "staggered")

NAME_MAX = 300
MAX_RETRIES_LIMIT = 10
DEFAULT_BACKOFF_MINUTES: list[float] = [5]
MAX_MINUTES = 525_600
"""Upper bound for every duration in minutes (one year): beyond it, times overflow."""

_TOP_LEVEL = ("name", "type", "payload", "targetType", "targetConfig", "rolloutConfig", "clientId")


# --- small checkers --------------------------------------------------------------------------


def _fail(path: str, what: str, **details: Any) -> NoReturn:
    raise InvalidArgument(f"{path}: {what}", parameter=path, **details)


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path, f"must be an object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _no_unknown_keys(obj: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    for key in obj:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            _fail(where, f"unknown field (allowed: {', '.join(allowed)})")


def _string(value: Any, path: str, *, max_len: int | None = None) -> str:
    if not isinstance(value, str):
        _fail(path, f"must be a string, got {_json_type(value)}")
    text = value.strip()
    if not text:
        _fail(path, "must not be empty")
    if max_len is not None and len(text) > max_len:
        _fail(path, f"must be at most {max_len} characters, got {len(text)}")
    return text


def _uuid(value: Any, path: str, **details: Any) -> str:
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            pass
    _fail(path, f"{value!r} is not a UUID", **details)


def _integer(value: Any, path: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    # A bool is an int in Python but not in JSON: `"maxRetries": true` is a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"must be an integer, got {_json_type(value)}")
    if minimum is not None and value < minimum:
        _fail(path, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        _fail(path, f"must be at most {maximum}, got {value}")
    return value


def _number(value: Any, path: str, *, minimum: float | None = None, exclusive_minimum: bool = False,
            maximum: float | None = None, **details: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(path, f"must be a number, got {_json_type(value)}", **details)
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite:
        _fail(path, "must be a finite number", **details)
    if minimum is not None:
        if exclusive_minimum and value <= minimum:
            _fail(path, f"must be greater than {minimum:g}, got {value:g}", **details)
        if not exclusive_minimum and value < minimum:
            _fail(path, f"must be at least {minimum:g}, got {value:g}", **details)
    if maximum is not None and value > maximum:
        _fail(path, f"must be at most {maximum:g}, got {value:g}", **details)
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        _fail(path, f"must be true or false, got {_json_type(value)}")
    return value


def _list(value: Any, path: str, *, non_empty: bool) -> list[Any]:
    if not isinstance(value, list | tuple):
        _fail(path, f"must be a list, got {_json_type(value)}")
    if non_empty and not value:
        _fail(path, "must not be empty")
    return list(value)


def _uuid_list(value: Any, path: str) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(_list(value, path, non_empty=True)):
        canonical = _uuid(item, path, index=index)
        if canonical not in seen:  # duplicates collapse, first occurrence keeps its place
            seen.add(canonical)
            ids.append(canonical)
    return ids


# --- payloads --------------------------------------------------------------------------------


def _script_payload(p: Mapping[str, Any]) -> dict[str, Any]:
    _no_unknown_keys(p, ("scriptId", "parameters"), "payload")
    if "scriptId" not in p:
        _fail("payload.scriptId", "required for a script deployment")
    params = p.get("parameters")
    params = {} if params is None else _object(params, "payload.parameters")
    clean: dict[str, str | int | float | bool] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key.strip():
            _fail("payload.parameters", f"parameter names must be non-empty strings, got {key!r}", key=str(key))
        if isinstance(value, float) and not math.isfinite(value):
            _fail("payload.parameters", f"{key!r} must be a finite number", key=key)
        if not isinstance(value, str | int | float | bool):
            _fail("payload.parameters",
                  f"{key!r} must be a string, number or boolean, got {_json_type(value)}", key=key)
        clean[key] = value
    return {"scriptId": _uuid(p["scriptId"], "payload.scriptId"), "parameters": clean}


def _software_payload(p: Mapping[str, Any]) -> dict[str, Any]:
    _no_unknown_keys(p, ("artifactId", "packageName"), "payload")
    if "artifactId" not in p:
        _fail("payload.artifactId", "required for a software deployment")
    out: dict[str, Any] = {"artifactId": _uuid(p["artifactId"], "payload.artifactId")}
    if p.get("packageName") is not None:
        out["packageName"] = _string(p["packageName"], "payload.packageName", max_len=255)
    return out


def _patch_payload(p: Mapping[str, Any]) -> dict[str, Any]:
    _no_unknown_keys(p, ("packages",), "payload")
    if "packages" not in p:
        _fail("payload.packages", "required for a patch deployment")
    packages: list[dict[str, str]] = []
    for index, item in enumerate(_list(p["packages"], "payload.packages", non_empty=True)):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping):
            _fail("payload.packages", f"item {index} must be a package name or "
                                      f"{{\"name\", \"version\"}}, got {_json_type(item)}", index=index)
        for key in item:
            if key not in ("name", "version"):
                _fail("payload.packages", f"item {index}: unknown field {key!r} (allowed: name, version)",
                      index=index)
        name = item.get("name")
        version = item.get("version", "latest")
        if not isinstance(name, str) or not name.strip():
            _fail("payload.packages", f"item {index}: name must be a non-empty string", index=index)
        if not isinstance(version, str) or not version.strip():
            _fail("payload.packages", f"item {index}: version must be a non-empty string", index=index)
        packages.append({"name": name.strip(), "version": version.strip()})
    return {"packages": packages}


def _policy_payload(p: Mapping[str, Any]) -> dict[str, Any]:
    _no_unknown_keys(p, ("name", "version", "document"), "payload")
    for key in ("name", "version", "document"):
        if key not in p:
            _fail(f"payload.{key}", "required for a policy deployment")
    return {
        "name": _string(p["name"], "payload.name", max_len=NAME_MAX),
        "version": _integer(p["version"], "payload.version", minimum=1),
        "document": dict(_object(p["document"], "payload.document")),
    }


_PAYLOADS = {
    "script": _script_payload,
    "software": _software_payload,
    "patch": _patch_payload,
    "policy": _policy_payload,
}


# --- targets ---------------------------------------------------------------------------------


def _target_config(target_type: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        if target_type == "all":
            return {"type": "all"}
        _fail("targetConfig", f"required for targetType {target_type!r}")
    cfg = _object(raw, "targetConfig")
    if "type" in cfg and cfg["type"] != target_type:
        _fail("targetConfig.type", f"must equal targetType ({target_type!r}), got {cfg['type']!r}")
    field = {"devices": "deviceIds", "groups": "groupIds", "filter": "filter", "all": None}[target_type]
    allowed = ("type",) if field is None else ("type", field)
    for key in cfg:
        if key not in allowed:
            _fail(f"targetConfig.{key}", f"not allowed for targetType {target_type!r} "
                                         f"(allowed: {', '.join(allowed)})")
    if field is None:
        return {"type": "all"}
    if field not in cfg:
        _fail(f"targetConfig.{field}", f"required for targetType {target_type!r}")
    if target_type == "filter":
        # Parsed and kept as sent, so error positions point into the operator's own text.
        text = cfg["filter"]
        _string(text, "targetConfig.filter")
        target_filter.parse(text)
        return {"type": "filter", "filter": text}
    return {"type": target_type, field: _uuid_list(cfg[field], f"targetConfig.{field}")}


# --- rollout ---------------------------------------------------------------------------------


def _batch_size(value: Any, path: str = "rolloutConfig.staggered.batchSize", **details: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            _fail(path, f"must be at least 1, got {value}", **details)
        return value
    if isinstance(value, str):
        percent = parse_percent(value)
        if percent is not None:
            return "".join(value.split())
    _fail(path, f"must be an integer of at least 1 or a percentage such as \"10%\" "
                f"(0 < N <= 100), got {value!r}", **details)


# --- rollout strategies, part 1 (docs/deployments-rules.md, "Rollout strategies") ---------

STAGGERED_STRATEGY_FIELDS = ("batches", "ramp", "successGatePercent", "failureBasis", "minFinishedForPercent")
ROLLOUT_STRATEGY_FIELDS = ("maxPerMinute", "onFailureThreshold", "startAt")
FAILURE_BASES = ("targets", "finished")
THRESHOLD_ACTIONS = ("pause", "cancel", "rollback")
MAX_STEPS = 100
MAX_RAMP_FACTOR = 100


def _steps(value: Any) -> list[int | str]:
    path = "rolloutConfig.staggered.batches"
    items = _list(value, path, non_empty=True)
    if len(items) > MAX_STEPS:
        _fail(path, f"at most {MAX_STEPS} steps, got {len(items)}")
    return [_batch_size(item, f"{path}[{i}]", index=i) for i, item in enumerate(items)]


def _ramp(value: Any) -> dict[str, Any]:
    path = "rolloutConfig.staggered.ramp"
    r = _object(value, path)
    _no_unknown_keys(r, ("start", "factor", "max"), path)
    if r.get("start") is None:
        _fail(f"{path}.start", "required: the size of the first batch (an integer >= 1)")
    factor = r.get("factor")
    cap = r.get("max")
    return {
        "start": _integer(r["start"], f"{path}.start", minimum=1),
        "factor": 2 if factor is None else _number(factor, f"{path}.factor", minimum=1, maximum=MAX_RAMP_FACTOR),
        "max": None if cap is None else _batch_size(cap, f"{path}.max"),
    }


def _choice(value: Any, path: str, choices: Sequence[str]) -> str:
    if value not in choices:
        _fail(path, f"must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _staggered_strategies(s: Mapping[str, Any]) -> dict[str, Any]:
    """The staggered fields of the rollout strategies, normalized (absent: seed 004's behaviour)."""
    path = "rolloutConfig.staggered"
    out: dict[str, Any] = {}
    if s.get("batches") is not None:
        out["batches"] = _steps(s["batches"])
    if s.get("ramp") is not None:
        out["ramp"] = _ramp(s["ramp"])
    gate, basis, sample = s.get("successGatePercent"), s.get("failureBasis"), s.get("minFinishedForPercent")
    if gate is not None:
        out["successGatePercent"] = _number(gate, f"{path}.successGatePercent", minimum=0, exclusive_minimum=True,
                                            maximum=100)
    if basis is not None:
        out["failureBasis"] = _choice(basis, f"{path}.failureBasis", FAILURE_BASES)
    if sample is not None:
        out["minFinishedForPercent"] = _integer(sample, f"{path}.minFinishedForPercent", minimum=0)
    return out


def _start_at(value: Any) -> str:
    path = "rolloutConfig.startAt"
    if not isinstance(value, str):
        _fail(path, f"must be an ISO 8601 time with an offset such as \"2030-01-31T22:00:00+01:00\", "
                    f"got {_json_type(value)}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        _fail(path, f"{value!r} is not an ISO 8601 time such as \"2030-01-31T22:00:00+01:00\"")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        _fail(path, f"{value!r} has no UTC offset: add one (\"Z\", \"+01:00\") so the time is unambiguous")
    return parsed.isoformat()


def _rollout_strategies(r: Mapping[str, Any]) -> dict[str, Any]:
    """rolloutConfig's own strategy fields, normalized; absent ones stay absent (seed behaviour)."""
    out: dict[str, Any] = {}
    if r.get("maxPerMinute") is not None:
        out["maxPerMinute"] = _integer(r["maxPerMinute"], "rolloutConfig.maxPerMinute", minimum=1,
                                       maximum=1_000_000)
    if r.get("onFailureThreshold") is not None:
        out["onFailureThreshold"] = _choice(r["onFailureThreshold"], "rolloutConfig.onFailureThreshold",
                                            THRESHOLD_ACTIONS)
    if r.get("startAt") is not None:
        out["startAt"] = _start_at(r["startAt"])
    return out


def _staggered(raw: Any) -> dict[str, Any]:
    path = "rolloutConfig.staggered"
    s = _object(raw, path)
    allowed = ("batchSize", "batchDelayMinutes", "pauseOnFailureCount", "pauseOnFailurePercent",
               *STAGGERED_STRATEGY_FIELDS)
    _no_unknown_keys(s, allowed, path)
    sizing = [key for key in ("batchSize", "batches", "ramp") if s.get(key) is not None]
    if not sizing:
        _fail(f"{path}.batchSize", "required for a staggered rollout (or staggered.batches, or staggered.ramp)")
    if len(sizing) > 1:
        _fail(f"{path}.{sizing[1]}", f"cannot be combined with staggered.{sizing[0]}: give one of batchSize, "
                                     f"batches, ramp")
    delay = s.get("batchDelayMinutes")
    count = s.get("pauseOnFailureCount")
    percent = s.get("pauseOnFailurePercent")
    return {
        **({"batchSize": _batch_size(s["batchSize"])} if "batchSize" in sizing else {}),
        **_staggered_strategies(s),
        "batchDelayMinutes": 0 if delay is None else _number(delay, f"{path}.batchDelayMinutes", minimum=0,
                                                                           maximum=MAX_MINUTES),
        "pauseOnFailureCount": None if count is None else _integer(count, f"{path}.pauseOnFailureCount", minimum=1),
        "pauseOnFailurePercent": None if percent is None else _number(
            percent, f"{path}.pauseOnFailurePercent", minimum=0, exclusive_minimum=True, maximum=100),
    }


def _retry(raw: Any) -> dict[str, Any]:
    path = "rolloutConfig.retryConfig"
    r = {} if raw is None else _object(raw, path)
    _no_unknown_keys(r, ("maxRetries", "backoffMinutes"), path)
    max_retries = r.get("maxRetries")
    backoff = r.get("backoffMinutes")
    backoff_path = f"{path}.backoffMinutes"
    return {
        "maxRetries": 0 if max_retries is None else _integer(
            max_retries, f"{path}.maxRetries", minimum=0, maximum=MAX_RETRIES_LIMIT),
        "backoffMinutes": list(DEFAULT_BACKOFF_MINUTES) if backoff is None else [
            _number(v, backoff_path, minimum=0, maximum=MAX_MINUTES, index=i)
            for i, v in enumerate(_list(backoff, backoff_path, non_empty=True))
        ],
    }


def _rollout(raw: Any) -> dict[str, Any]:
    r = {} if raw is None else _object(raw, "rolloutConfig")
    allowed = ("type", "staggered", "respectMaintenanceWindows", "retryConfig", "installTimeoutMinutes",
               *DEVSTRAT_KEYS, *ROLLOUT_STRATEGY_FIELDS)
    _no_unknown_keys(r, allowed, "rolloutConfig")
    kind = r.get("type", "immediate")
    if kind not in ROLLOUT_TYPES:
        _fail("rolloutConfig.type", f"must be one of {', '.join(ROLLOUT_TYPES)}, got {kind!r}")
    out: dict[str, Any] = {"type": kind}
    if kind == "staggered":
        if r.get("staggered") is None:
            _fail("rolloutConfig.staggered", "required when rolloutConfig.type is 'staggered'")
        out["staggered"] = _staggered(r["staggered"])
    elif r.get("staggered") is not None:
        _fail("rolloutConfig.staggered", "only allowed when rolloutConfig.type is 'staggered'")
    respect = r.get("respectMaintenanceWindows")
    timeout = r.get("installTimeoutMinutes")
    out["respectMaintenanceWindows"] = False if respect is None else _bool(
        respect, "rolloutConfig.respectMaintenanceWindows")
    out["retryConfig"] = _retry(r.get("retryConfig"))
    # null stays null: "the coordinator's --install-timeout" (30 minutes unless set), so the
    # coordinator's setting applies to every deployment that does not choose its own.
    out["installTimeoutMinutes"] = None if timeout is None else _number(
        timeout, "rolloutConfig.installTimeoutMinutes", minimum=0, exclusive_minimum=True, maximum=MAX_MINUTES)
    out.update(_devstrat(r, out))
    out.update(_rollout_strategies(r))
    return out


# --- verify, offlineDevices, windowPolicy (docs/deployments-rules.md, "Health checks, late
# arrivers, waiting for the window"). Each is stored only when given, so a body that uses none
# of them is stored exactly as before.

DEVSTRAT_KEYS = ("verify", "offlineDevices", "windowPolicy", "windowWaitMaxHours")
WINDOW_POLICIES = ("skip", "wait")
OFFLINE_POLICIES = ("skip", "wait")
VERIFY_TIMEOUT_MAX_MINUTES = 1440
WINDOW_WAIT_MAX_HOURS_LIMIT = 24 * 31


def _verify(raw: Any) -> dict[str, Any]:
    path = "rolloutConfig.verify"
    v = _object(raw, path)
    _no_unknown_keys(v, ("scriptId", "timeoutMinutes"), path)
    if v.get("scriptId") is None:
        _fail(f"{path}.scriptId", "required: the id of the script that checks the device after the install")
    timeout = v.get("timeoutMinutes")
    return {"scriptId": _uuid(v["scriptId"], f"{path}.scriptId"),
            "timeoutMinutes": 10 if timeout is None else _number(
                timeout, f"{path}.timeoutMinutes", minimum=0, exclusive_minimum=True,
                maximum=VERIFY_TIMEOUT_MAX_MINUTES)}


def _offline_devices(raw: Any) -> dict[str, Any]:
    path = "rolloutConfig.offlineDevices"
    o = _object(raw, path)
    _no_unknown_keys(o, ("policy", "waitMinutes"), path)
    policy = o.get("policy", "skip")
    if policy not in OFFLINE_POLICIES:
        _fail(f"{path}.policy", f"must be one of {', '.join(OFFLINE_POLICIES)}, got {policy!r}")
    wait = o.get("waitMinutes")
    if policy == "skip":
        if wait is not None:
            _fail(f"{path}.waitMinutes", "only allowed with policy 'wait'")
        return {"policy": "skip"}
    if wait is None:
        _fail(f"{path}.waitMinutes", "required with policy 'wait': how long after its batch starts a device "
                                      "may still connect and get the job")
    return {"policy": "wait", "waitMinutes": _number(wait, f"{path}.waitMinutes", minimum=0,
                                                     exclusive_minimum=True, maximum=MAX_MINUTES)}


def _devstrat(r: Mapping[str, Any], out: Mapping[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if r.get("verify") is not None:
        extra["verify"] = _verify(r["verify"])
    if r.get("offlineDevices") is not None:
        extra["offlineDevices"] = _offline_devices(r["offlineDevices"])
    policy = r.get("windowPolicy")
    if policy is not None:
        if policy not in WINDOW_POLICIES:
            _fail("rolloutConfig.windowPolicy", f"must be one of {', '.join(WINDOW_POLICIES)}, got {policy!r}")
        if policy == "wait" and not out["respectMaintenanceWindows"]:
            _fail("rolloutConfig.windowPolicy", "'wait' needs rolloutConfig.respectMaintenanceWindows: true")
        extra["windowPolicy"] = policy
    max_hours = r.get("windowWaitMaxHours")
    if max_hours is not None:
        if extra.get("windowPolicy") != "wait":
            _fail("rolloutConfig.windowWaitMaxHours", "only allowed with rolloutConfig.windowPolicy 'wait'")
        extra["windowWaitMaxHours"] = _number(max_hours, "rolloutConfig.windowWaitMaxHours", minimum=0,
                                              exclusive_minimum=True, maximum=WINDOW_WAIT_MAX_HOURS_LIMIT)
    return extra


# --- the whole body --------------------------------------------------------------------------


def validate_spec(body: Mapping[str, Any], *, partial_base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The normalized deployment spec; with `partial_base`, `body` is a PUT merged over it.

    A partial update replaces whole top-level keys. Changing `targetType` without sending a
    `targetConfig` drops the old one (it described the other target type).
    """
    if not isinstance(body, Mapping):
        _fail("body", f"must be a JSON object, got {_json_type(body)}")
    _no_unknown_keys(body, _TOP_LEVEL, "")
    merged: dict[str, Any] = {}
    if partial_base is not None:
        merged.update(partial_base)
        if "targetType" in body and "targetConfig" not in body:
            merged.pop("targetConfig", None)
    merged.update(body)
    _no_unknown_keys(merged, _TOP_LEVEL, "")

    for key in ("name", "type", "payload", "targetType"):
        if merged.get(key) is None:
            _fail(key, "required")
    name = _string(merged["name"], "name", max_len=NAME_MAX)
    kind = merged["type"]
    if kind not in DEPLOYMENT_TYPES:
        _fail("type", f"must be one of {', '.join(DEPLOYMENT_TYPES)}, got {kind!r}")
    payload = _PAYLOADS[kind](_object(merged["payload"], "payload"))
    target_type = merged["targetType"]
    if target_type not in TARGET_TYPES:
        _fail("targetType", f"must be one of {', '.join(TARGET_TYPES)}, got {target_type!r}")

    spec: dict[str, Any] = {
        "name": name,
        "type": kind,
        "payload": payload,
        "targetType": target_type,
        "targetConfig": _target_config(target_type, merged.get("targetConfig")),
        "rolloutConfig": _rollout(merged.get("rolloutConfig")),
    }
    if merged.get("clientId") is not None:
        spec["clientId"] = _uuid(merged["clientId"], "clientId")
    return spec
