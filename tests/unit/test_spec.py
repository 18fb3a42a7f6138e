"""Deployment body validation: the seed's example, defaults, and one 400 per kind of mistake."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import InvalidArgument
from coordinator.domain.spec import validate_spec

SCRIPT = "0b5c2f2e-8a61-4d0b-9c3e-6f2f4c1a7d10"
G1 = "11111111-1111-4111-8111-111111111111"
G2 = "22222222-2222-4222-8222-222222222222"
D1 = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
D2 = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"


def seed_example() -> dict[str, Any]:
    """The body from seed 004, "API — Create Deployment", with real UUIDs."""
    return {
        "name": "Monthly Cleanup — Windows Fleet",
        "type": "script",
        "payload": {"scriptId": SCRIPT, "parameters": {}},
        "targetType": "groups",
        "targetConfig": {"type": "groups", "groupIds": [G1, G2]},
        "rolloutConfig": {
            "type": "staggered",
            "staggered": {"batchSize": "10%", "batchDelayMinutes": 30, "pauseOnFailurePercent": 20},
            "respectMaintenanceWindows": True,
            "retryConfig": {"maxRetries": 3, "backoffMinutes": [5, 15, 60]},
        },
    }


def minimal(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "x", "type": "script", "payload": {"scriptId": SCRIPT},
                            "targetType": "all"}
    body.update(overrides)
    return body


def error(body: Any, **kwargs: Any) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        validate_spec(body, **kwargs)
    return info.value


def assert_400(body: Any, parameter: str, fragment: str = "", **kwargs: Any) -> InvalidArgument:
    err = error(body, **kwargs)
    assert err.details["parameter"] == parameter, err.message
    assert err.message.startswith(f"{parameter}: "), err.message
    assert fragment in err.message
    return err


# --- the seed example and defaults -----------------------------------------------------------


def test_seed_example_normalized() -> None:
    assert validate_spec(seed_example()) == {
        "name": "Monthly Cleanup — Windows Fleet",
        "type": "script",
        "payload": {"scriptId": SCRIPT, "parameters": {}},
        "targetType": "groups",
        "targetConfig": {"type": "groups", "groupIds": [G1, G2]},
        "rolloutConfig": {
            "type": "staggered",
            "staggered": {"batchSize": "10%", "batchDelayMinutes": 30,
                          "pauseOnFailureCount": None, "pauseOnFailurePercent": 20},
            "respectMaintenanceWindows": True,
            "retryConfig": {"maxRetries": 3, "backoffMinutes": [5, 15, 60]},
            "installTimeoutMinutes": None,
        },
    }


def test_input_not_mutated() -> None:
    body = seed_example()
    before = copy.deepcopy(body)
    validate_spec(body)
    assert body == before


def test_defaults_for_minimal_body() -> None:
    assert validate_spec(minimal()) == {
        "name": "x", "type": "script",
        "payload": {"scriptId": SCRIPT, "parameters": {}},
        "targetType": "all", "targetConfig": {"type": "all"},
        "rolloutConfig": {"type": "immediate", "respectMaintenanceWindows": False,
                          "retryConfig": {"maxRetries": 0, "backoffMinutes": [5]},
                          "installTimeoutMinutes": None},
    }


def test_staggered_defaults() -> None:
    spec = validate_spec(minimal(rolloutConfig={"type": "staggered", "staggered": {"batchSize": 50}}))
    assert spec["rolloutConfig"]["staggered"] == {
        "batchSize": 50, "batchDelayMinutes": 0, "pauseOnFailureCount": None,
        "pauseOnFailurePercent": None}


def test_rollout_type_defaults_to_immediate() -> None:
    spec = validate_spec(minimal(rolloutConfig={"retryConfig": {"maxRetries": 2}}))
    assert spec["rolloutConfig"]["type"] == "immediate"
    assert spec["rolloutConfig"]["retryConfig"] == {"maxRetries": 2, "backoffMinutes": [5]}


def test_client_id_kept_and_canonicalized() -> None:
    assert validate_spec(minimal(clientId=G1.upper()))["clientId"] == G1
    assert "clientId" not in validate_spec(minimal())
    assert_400(minimal(clientId="acme"), "clientId", "is not a UUID")


def test_name_trimmed_and_bounded() -> None:
    assert validate_spec(minimal(name="  Patch Tuesday  "))["name"] == "Patch Tuesday"
    assert validate_spec(minimal(name="n" * 300))["name"] == "n" * 300
    assert_400(minimal(name="n" * 301), "name", "at most 300")
    assert_400(minimal(name="   "), "name", "must not be empty")
    assert_400(minimal(name=5), "name", "must be a string")


# --- required fields and types ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["name", "type", "payload", "targetType"])
def test_required_top_level(key: str) -> None:
    body = minimal()
    del body[key]
    assert_400(body, key, "required")


def test_body_must_be_object() -> None:
    assert_400([1, 2], "body", "JSON object")


def test_unknown_top_level_key() -> None:
    assert_400(minimal(descripton="typo"), "descripton", "unknown field")


def test_unknown_type() -> None:
    assert_400(minimal(type="reboot"), "type", "one of script, patch, software, policy")


def test_unknown_target_type() -> None:
    assert_400(minimal(targetType="site"), "targetType", "one of devices, groups, filter, all")


# --- payloads --------------------------------------------------------------------------------


def test_script_payload() -> None:
    spec = validate_spec(minimal(payload={"scriptId": SCRIPT.upper(),
                                          "parameters": {"days": 30, "dry": True, "path": "/tmp", "r": 0.5}}))
    assert spec["payload"] == {"scriptId": SCRIPT,
                               "parameters": {"days": 30, "dry": True, "path": "/tmp", "r": 0.5}}


@pytest.mark.parametrize(
    ("payload", "parameter", "fragment"),
    [
        ({}, "payload.scriptId", "required"),
        ({"scriptId": "nope"}, "payload.scriptId", "is not a UUID"),
        ({"scriptId": 7}, "payload.scriptId", "is not a UUID"),
        ({"scriptId": SCRIPT, "parameters": []}, "payload.parameters", "must be an object"),
        ({"scriptId": SCRIPT, "parameters": {"a": {"b": 1}}}, "payload.parameters",
         "'a' must be a string, number or boolean"),
        ({"scriptId": SCRIPT, "parameters": {"a": None}}, "payload.parameters", "'a' must be"),
        ({"scriptId": SCRIPT, "parameters": {"": 1}}, "payload.parameters", "non-empty"),
        ({"scriptId": SCRIPT, "parameters": {"a": float("nan")}}, "payload.parameters", "finite"),
        ({"scriptId": SCRIPT, "artifactId": SCRIPT}, "payload.artifactId", "unknown field"),
        ("script", "payload", "must be an object"),
    ],
)
def test_script_payload_errors(payload: Any, parameter: str, fragment: str) -> None:
    assert_400(minimal(payload=payload), parameter, fragment)


def test_software_payload() -> None:
    base = minimal(type="software")
    assert validate_spec({**base, "payload": {"artifactId": SCRIPT}})["payload"] == {"artifactId": SCRIPT}
    assert validate_spec({**base, "payload": {"artifactId": SCRIPT, "packageName": " htop "}})["payload"] == {
        "artifactId": SCRIPT, "packageName": "htop"}
    assert_400({**base, "payload": {}}, "payload.artifactId", "required")
    assert_400({**base, "payload": {"artifactId": SCRIPT, "packageName": 3}}, "payload.packageName")
    assert_400({**base, "payload": {"scriptId": SCRIPT}}, "payload.scriptId", "unknown field")


def test_patch_payload_normalizes_strings() -> None:
    spec = validate_spec(minimal(type="patch", payload={"packages": [
        "openssl", {"name": "curl"}, {"name": "bash", "version": "5.2-1"}]}))
    assert spec["payload"] == {"packages": [
        {"name": "openssl", "version": "latest"},
        {"name": "curl", "version": "latest"},
        {"name": "bash", "version": "5.2-1"},
    ]}


@pytest.mark.parametrize(
    ("payload", "fragment", "index"),
    [
        ({}, "required", None),
        ({"packages": []}, "must not be empty", None),
        ({"packages": "openssl"}, "must be a list", None),
        ({"packages": ["ok", ""]}, "item 1: name", 1),
        ({"packages": [{"version": "1"}]}, "item 0: name", 0),
        ({"packages": [{"name": "a", "version": 2}]}, "item 0: version", 0),
        ({"packages": [{"name": "a", "arch": "x"}]}, "unknown field 'arch'", 0),
        ({"packages": [5]}, "item 0 must be a package name", 0),
    ],
)
def test_patch_payload_errors(payload: Any, fragment: str, index: int | None) -> None:
    err = assert_400(minimal(type="patch", payload=payload), "payload.packages", fragment)
    assert err.details.get("index") == index


def test_policy_payload() -> None:
    doc = {"firewall": {"enabled": True}}
    spec = validate_spec(minimal(type="policy", payload={"name": "baseline", "version": 2, "document": doc}))
    assert spec["payload"] == {"name": "baseline", "version": 2, "document": doc}
    body = minimal(type="policy", payload={"name": "b", "version": 1, "document": doc})
    for key, bad, fragment in [("version", 0, "at least 1"), ("version", True, "must be an integer"),
                               ("version", 1.5, "must be an integer"), ("document", [], "must be an object"),
                               ("name", "", "must not be empty")]:
        assert_400({**body, "payload": {**body["payload"], key: bad}}, f"payload.{key}", fragment)
    assert_400({**body, "payload": {"name": "b", "version": 1}}, "payload.document", "required")


def test_payload_shape_follows_type() -> None:
    # A script payload sent with type=patch is a 400 about the patch shape.
    assert_400(minimal(type="patch"), "payload.scriptId", "unknown field")


# --- targets ---------------------------------------------------------------------------------


def test_devices_dedupe_keep_order_canonicalize() -> None:
    spec = validate_spec(minimal(targetType="devices", targetConfig={"deviceIds": [D2, D1.upper(), D2]}))
    assert spec["targetConfig"] == {"type": "devices", "deviceIds": [D2, D1]}


def test_target_config_type_filled_and_must_match() -> None:
    assert validate_spec(minimal(targetType="groups", targetConfig={"groupIds": [G1]}))["targetConfig"] == {
        "type": "groups", "groupIds": [G1]}
    assert_400(minimal(targetType="groups", targetConfig={"type": "devices", "groupIds": [G1]}),
               "targetConfig.type", "must equal targetType")


def test_all_without_or_with_config() -> None:
    assert validate_spec(minimal(targetType="all", targetConfig={"type": "all"}))["targetConfig"] == {"type": "all"}
    assert_400(minimal(targetType="all", targetConfig={"deviceIds": [D1]}),
               "targetConfig.deviceIds", "not allowed for targetType 'all'")


@pytest.mark.parametrize(
    ("target_type", "config", "parameter", "fragment"),
    [
        ("devices", None, "targetConfig", "required for targetType 'devices'"),
        ("devices", {}, "targetConfig.deviceIds", "required"),
        ("devices", {"deviceIds": []}, "targetConfig.deviceIds", "must not be empty"),
        ("devices", {"deviceIds": D1}, "targetConfig.deviceIds", "must be a list"),
        ("devices", {"deviceIds": [D1, "web-01"]}, "targetConfig.deviceIds", "'web-01' is not a UUID"),
        ("devices", {"deviceIds": [D1], "groupIds": [G1]}, "targetConfig.groupIds", "not allowed"),
        ("groups", {"groupIds": []}, "targetConfig.groupIds", "must not be empty"),
        ("groups", {"groupIds": ["ops"]}, "targetConfig.groupIds", "is not a UUID"),
        ("groups", [G1], "targetConfig", "must be an object"),
        ("filter", {}, "targetConfig.filter", "required"),
        ("filter", {"filter": ""}, "targetConfig.filter", "must not be empty"),
        ("filter", {"filter": ["os"]}, "targetConfig.filter", "must be a string"),
        ("filter", {"filter": "os == linux"}, "targetConfig.filter", "syntax error at position 7"),
    ],
)
def test_target_errors(target_type: str, config: Any, parameter: str, fragment: str) -> None:
    body = minimal(targetType=target_type)
    if config is not None:
        body["targetConfig"] = config
    assert_400(body, parameter, fragment)


def test_bad_uuid_in_list_carries_index() -> None:
    err = assert_400(minimal(targetType="devices", targetConfig={"deviceIds": [D1, D2, "x"]}),
                     "targetConfig.deviceIds")
    assert err.details["index"] == 2


def test_filter_kept_and_error_has_position() -> None:
    text = 'os == "linux" and "web" in tags'
    assert validate_spec(minimal(targetType="filter", targetConfig={"type": "filter", "filter": text}))[
        "targetConfig"] == {"type": "filter", "filter": text}
    err = error(minimal(targetType="filter", targetConfig={"filter": "os === 'x'"}))
    assert err.details == {"parameter": "targetConfig.filter", "position": 6}


# --- rollout ---------------------------------------------------------------------------------


def staggered(**fields: Any) -> dict[str, Any]:
    return minimal(rolloutConfig={"type": "staggered", "staggered": {"batchSize": 10, **fields}})


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (50, 50), ("10%", "10%"), ("100%", "100%"),
                                                 ("0.5%", "0.5%"), (" 12.5 % ", "12.5%")])
def test_batch_size_valid(value: Any, expected: Any) -> None:
    spec = validate_spec(staggered(batchSize=value))
    assert spec["rolloutConfig"]["staggered"]["batchSize"] == expected


@pytest.mark.parametrize("value", [0, -5, True, 2.5, "10", "0%", "101%", "%", "ten%", None, [10]])
def test_batch_size_invalid(value: Any) -> None:
    body = minimal(rolloutConfig={"type": "staggered", "staggered": {"batchSize": value}})
    fragment = "required" if value is None else "integer of at least 1 or a percentage"
    if value in (0, -5) and not isinstance(value, bool):
        fragment = "must be at least 1"
    assert_400(body, "rolloutConfig.staggered.batchSize", fragment)


@pytest.mark.parametrize(
    ("fields", "parameter", "fragment"),
    [
        ({"batchDelayMinutes": -1}, "rolloutConfig.staggered.batchDelayMinutes", "at least 0"),
        ({"batchDelayMinutes": "30"}, "rolloutConfig.staggered.batchDelayMinutes", "must be a number"),
        ({"batchDelayMinutes": float("inf")}, "rolloutConfig.staggered.batchDelayMinutes", "finite"),
        ({"pauseOnFailureCount": 0}, "rolloutConfig.staggered.pauseOnFailureCount", "at least 1"),
        ({"pauseOnFailureCount": 2.0}, "rolloutConfig.staggered.pauseOnFailureCount", "integer"),
        ({"pauseOnFailureCount": True}, "rolloutConfig.staggered.pauseOnFailureCount", "integer"),
        ({"pauseOnFailurePercent": 0}, "rolloutConfig.staggered.pauseOnFailurePercent", "greater than 0"),
        ({"pauseOnFailurePercent": 100.5}, "rolloutConfig.staggered.pauseOnFailurePercent", "at most 100"),
        ({"pauseOnFailurePercent": "20%"}, "rolloutConfig.staggered.pauseOnFailurePercent", "number"),
        ({"batchsize": 5}, "rolloutConfig.staggered.batchsize", "unknown field"),
    ],
)
def test_staggered_errors(fields: dict[str, Any], parameter: str, fragment: str) -> None:
    assert_400(staggered(**fields), parameter, fragment)


def test_staggered_accepts_fractions_and_bounds() -> None:
    s = validate_spec(staggered(batchDelayMinutes=0.5, pauseOnFailureCount=3,
                                pauseOnFailurePercent=100))["rolloutConfig"]["staggered"]
    assert s == {"batchSize": 10, "batchDelayMinutes": 0.5, "pauseOnFailureCount": 3,
                 "pauseOnFailurePercent": 100}
    s = validate_spec(staggered(pauseOnFailurePercent=0.1))["rolloutConfig"]["staggered"]
    assert s["pauseOnFailurePercent"] == 0.1


def test_staggered_config_requirements() -> None:
    assert_400(minimal(rolloutConfig={"type": "staggered"}), "rolloutConfig.staggered",
               "required when rolloutConfig.type is 'staggered'")
    assert_400(minimal(rolloutConfig={"type": "immediate", "staggered": {"batchSize": 5}}),
               "rolloutConfig.staggered", "only allowed")
    assert_400(minimal(rolloutConfig={"type": "canary"}), "rolloutConfig.type", "one of immediate, staggered")
    assert_400(minimal(rolloutConfig="fast"), "rolloutConfig", "must be an object")
    assert_400(minimal(rolloutConfig={"retries": 1}), "rolloutConfig.retries", "unknown field")


@pytest.mark.parametrize(
    ("retry", "parameter", "fragment"),
    [
        ({"maxRetries": -1}, "rolloutConfig.retryConfig.maxRetries", "at least 0"),
        ({"maxRetries": 11}, "rolloutConfig.retryConfig.maxRetries", "at most 10"),
        ({"maxRetries": True}, "rolloutConfig.retryConfig.maxRetries", "integer"),
        ({"maxRetries": "3"}, "rolloutConfig.retryConfig.maxRetries", "integer"),
        ({"backoffMinutes": []}, "rolloutConfig.retryConfig.backoffMinutes", "must not be empty"),
        ({"backoffMinutes": 5}, "rolloutConfig.retryConfig.backoffMinutes", "must be a list"),
        ({"backoffMinutes": [5, -1]}, "rolloutConfig.retryConfig.backoffMinutes", "at least 0"),
        ({"backoffMinutes": [5, False]}, "rolloutConfig.retryConfig.backoffMinutes", "number"),
        ({"backof": [5]}, "rolloutConfig.retryConfig.backof", "unknown field"),
        ([], "rolloutConfig.retryConfig", "must be an object"),
    ],
)
def test_retry_errors(retry: Any, parameter: str, fragment: str) -> None:
    assert_400(minimal(rolloutConfig={"retryConfig": retry}), parameter, fragment)


def test_retry_bounds_and_index() -> None:
    r = validate_spec(minimal(rolloutConfig={"retryConfig": {"maxRetries": 10, "backoffMinutes": [0, 0.5]}}))
    assert r["rolloutConfig"]["retryConfig"] == {"maxRetries": 10, "backoffMinutes": [0, 0.5]}
    err = error(minimal(rolloutConfig={"retryConfig": {"backoffMinutes": [1, 2, "x"]}}))
    assert err.details == {"parameter": "rolloutConfig.retryConfig.backoffMinutes", "index": 2}


def test_maintenance_and_timeout() -> None:
    r = validate_spec(minimal(rolloutConfig={"respectMaintenanceWindows": True,
                                             "installTimeoutMinutes": 2.5}))["rolloutConfig"]
    assert r["respectMaintenanceWindows"] is True and r["installTimeoutMinutes"] == 2.5
    assert_400(minimal(rolloutConfig={"respectMaintenanceWindows": "yes"}),
               "rolloutConfig.respectMaintenanceWindows", "true or false")
    assert_400(minimal(rolloutConfig={"installTimeoutMinutes": 0}),
               "rolloutConfig.installTimeoutMinutes", "greater than 0")


# --- partial updates (PUT) -------------------------------------------------------------------


def test_partial_update_replaces_top_level_keys() -> None:
    base = validate_spec(seed_example())
    spec = validate_spec({"name": "Renamed"}, partial_base=base)
    assert spec == {**base, "name": "Renamed"}
    spec = validate_spec({"rolloutConfig": {"type": "immediate"}}, partial_base=base)
    assert spec["rolloutConfig"]["retryConfig"] == {"maxRetries": 0, "backoffMinutes": [5]}
    assert spec["targetConfig"] == base["targetConfig"]


def test_partial_update_empty_body_revalidates_base() -> None:
    base = validate_spec(seed_example())
    assert validate_spec({}, partial_base=base) == base


def test_partial_update_changing_target_type_drops_old_config() -> None:
    base = validate_spec(seed_example())
    assert validate_spec({"targetType": "all"}, partial_base=base)["targetConfig"] == {"type": "all"}
    assert_400({"targetType": "devices"}, "targetConfig", "required for targetType 'devices'",
               partial_base=base)
    spec = validate_spec({"targetType": "devices", "targetConfig": {"deviceIds": [D1]}}, partial_base=base)
    assert spec["targetConfig"] == {"type": "devices", "deviceIds": [D1]}


def test_partial_update_is_validated() -> None:
    base = validate_spec(seed_example())
    assert_400({"type": "patch"}, "payload.scriptId", "unknown field", partial_base=base)
    assert_400({"name": ""}, "name", partial_base=base)
    assert_400({"nmae": "x"}, "nmae", "unknown field", partial_base=base)


# --- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["name", "type", "payload", "targetType", "targetConfig", "rolloutConfig",
                        "clientId", "extra"])


@given(st.dictionaries(keys, json_values, max_size=8))
def test_random_bodies_raise_only_invalid_argument_with_parameter(body: dict[str, Any]) -> None:
    try:
        validate_spec(body)
    except InvalidArgument as exc:
        assert exc.message.startswith(f"{exc.details['parameter']}: ")


paths = st.sampled_from([("rolloutConfig", "staggered", "batchSize"),
                         ("rolloutConfig", "staggered", "batchDelayMinutes"),
                         ("rolloutConfig", "staggered", "pauseOnFailureCount"),
                         ("rolloutConfig", "staggered", "pauseOnFailurePercent"),
                         ("rolloutConfig", "retryConfig", "maxRetries"),
                         ("rolloutConfig", "retryConfig", "backoffMinutes"),
                         ("targetConfig", "groupIds"), ("payload", "parameters"), ("payload", "scriptId")])


@given(paths, json_values)
def test_mutating_one_field_either_validates_or_names_that_field(path: tuple[str, ...], value: Any) -> None:
    body = seed_example()
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        spec = validate_spec(body)
    except InvalidArgument as exc:
        assert exc.details["parameter"] == ".".join(path)
    else:
        assert validate_spec(spec) == spec  # normalized output is a fixed point
