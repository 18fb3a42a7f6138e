"""The target filter language: parsing, errors with positions, evaluation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import InvalidArgument
from coordinator.domain.filter import (
    FIELDS,
    And,
    Compare,
    Const,
    Field,
    ListValue,
    Not,
    Or,
    Truthy,
    Value,
    compare_versions,
    matches,
    parse,
)

WEB = {"os": "linux", "os_version": "22.04", "arch": "x86_64", "hostname": "web-01",
       "site": "berlin", "tags": ["web", "prod"], "groups": ["g-1", "Web Servers"], "online": True}
DB = {"os": "linux", "os_version": "20.04.6", "arch": "arm64", "hostname": "db-01",
      "site": "paris", "tags": ["db"], "groups": [], "online": False}
MAC = {"os": "darwin", "os_version": "14.2.1", "arch": "arm64", "hostname": "MacBook-Ann",
       "site": "", "tags": [], "groups": ["g-2"], "online": True}
WIN = {"os": "Windows", "os_version": "10.0.19045", "arch": "x86_64", "hostname": "WS-7",
       "site": "berlin", "tags": ["desk"], "groups": ["g-1"], "online": False}
DEVICES = {"web": WEB, "db": DB, "mac": MAC, "win": WIN}


def selected(text: str) -> set[str]:
    expr = parse(text)
    return {name for name, device in DEVICES.items() if matches(expr, device)}


# --- the documented examples -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('os == "linux"', {"web", "db"}),
        ("os == 'LINUX'", {"web", "db"}),  # case-insensitive
        ('os != "linux"', {"mac", "win"}),
        ('os == "windows"', {"win"}),
        ('"web" in tags', {"web"}),
        ('"WEB" in tags', {"web"}),
        ('"web" not in tags', {"db", "mac", "win"}),
        ('os in ["linux", "darwin"]', {"web", "db", "mac"}),
        ('os not in ["linux", "darwin"]', {"win"}),
        ('hostname =~ "web-*"', {"web"}),
        ('hostname =~ "*-0?"', {"web", "db"}),
        ('hostname =~ "macbook*"', {"mac"}),
        ('tags =~ "pr*"', {"web"}),
        ('"g-1" in groups', {"web", "win"}),
        ('"web servers" in groups', {"web"}),
        ("online", {"web", "mac"}),
        ("not online", {"db", "win"}),
        ("online == true", {"web", "mac"}),
        ("online != true", {"db", "win"}),
        ("tags", {"web", "db", "win"}),
        ("site", {"web", "db", "win"}),
        ('site == ""', {"mac"}),
        ("true", {"web", "db", "mac", "win"}),
        ("false", set()),
        ('os == "linux" and online', {"web"}),
        ('os == "linux" or os == "darwin"', {"web", "db", "mac"}),
        ('os == "linux" and not online or os == "darwin"', {"db", "mac"}),
        ('os == "linux" and (not online or os == "darwin")', {"db"}),
        ('not "db" in tags and os == "linux"', {"web"}),
        ('OS == "linux" AND Online', {"web"}),
        ('site == "berlin" and arch == "x86_64"', {"web", "win"}),
        ('"x" == "x"', {"web", "db", "mac", "win"}),
    ],
)
def test_selection(text: str, expected: set[str]) -> None:
    assert selected(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("os_version >= 22.04", {"web"}),
        ('os_version >= "22.4"', {"web"}),  # leading zeros are numbers
        ("os_version < 21", {"db", "mac", "win"}),
        ("os_version > 14.2", {"web", "db", "mac"}),  # 14.2.1 > 14.2 > 10.0.19045
        ("os_version <= 14.2.1", {"mac", "win"}),
        ("os_version > 10.0.9999", {"web", "db", "mac", "win"}),  # 19045 > 9999 numerically
        ("14.2.1 == os_version", {"mac"}),
        ('"20" <= os_version', {"web", "db"}),
    ],
)
def test_version_comparisons(text: str, expected: set[str]) -> None:
    assert selected(text) == expected


def test_empty_version_never_orders() -> None:
    unknown = {"os_version": ""}
    assert not matches(parse("os_version < 1"), unknown)
    assert not matches(parse("os_version >= 0"), unknown)


def test_missing_fields_are_empty() -> None:
    assert matches(parse('site == ""'), {})
    assert not matches(parse("online"), {})
    assert not matches(parse('"x" in tags'), {})
    assert matches(parse('"x" not in groups'), {"groups": None})


def test_compare_versions() -> None:
    assert compare_versions("10.2", "10.10") == -1
    assert compare_versions("22.04", "22.4.0") == 0
    assert compare_versions("5.15.0-91-generic", "5.15.0-100") == -1
    assert compare_versions("2", "1.99") == 1
    assert compare_versions("1.0a", "1.0") == 1  # never raises on mixed parts


def test_tree_shape_and_precedence() -> None:
    assert parse('not online and "a" in tags or os == "x"') == Or((
        And((Not(Truthy("online")), Compare("in", Value("a"), Field("tags")))),
        Compare("==", Field("os"), Value("x")),
    ))
    assert parse('os in ["a", "b",]') == Compare("in", Field("os"), ListValue(("a", "b")))
    assert parse("TRUE") == Const(True)


def test_escapes_in_strings() -> None:
    assert parse(r'hostname == "a\"b"') == Compare("==", Field("hostname"), Value('a"b'))
    assert parse(r"hostname == 'it\'s'") == Compare("==", Field("hostname"), Value("it's"))


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 1, "empty filter"),
        ("   ", 4, "empty filter"),
        ("foo == 'x'", 1, "unknown field 'foo'"),
        ("os == linux", 7, "unknown field 'linux'"),
        ("os ==", 6, "expected a field or value, found end of filter"),
        ("os = 'x'", 4, "use '=='"),
        ("os == 'x' && online", 11, "use 'and' / 'or'"),
        ("!online", 1, "use 'not'"),
        ("os == 'linux", 7, "unterminated string"),
        ("(os == 'x'", 11, "expected ')' to close the one at position 1"),
        ("os == 'x')", 10, "unexpected ')'"),
        ("os in ['a', 'b'", 16, "expected ']'"),
        ("os in ['a' 'b']", 12, "expected ']'"),
        ("os in [os]", 8, "list items must be"),
        ("os in 'linux'", 7, "needs a list on the right"),
        ("tags in ['a']", 1, "needs a single value on the left"),
        ("tags == 'web'", 6, "use 'in'"),
        ("hostname < 'm'", 10, "compares os_version"),
        ("os_version > online", 12, "compares os_version"),
        ("online =~ 'x'", 1, "needs a string or list field"),
        ("hostname =~ tags", 13, "quoted glob pattern"),
        ("online == 'yes'", 8, "cannot compare online (bool) with a string"),
        ("'linux'", 1, "on its own is not a condition"),
        ("os == 'a' online", 11, "expected 'and', 'or' or the end"),
        ("os == 'a' and", 14, "found end of filter"),
        ("not", 4, "found end of filter"),
        ("os == and", 7, "keyword 'and'"),
        ("os == 'a' § 1", 11, "unexpected character '§'"),
    ],
)
def test_errors_name_parameter_and_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse(text)
    err = info.value
    assert err.details == {"parameter": "targetConfig.filter", "position": position}
    assert err.message.startswith(f"targetConfig.filter: syntax error at position {position}: ")
    assert fragment in err.message


def test_non_string_filter() -> None:
    with pytest.raises(InvalidArgument, match="must be a string") as info:
        parse(42)  # type: ignore[arg-type]
    assert info.value.details["parameter"] == "targetConfig.filter"


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(InvalidArgument, match="nested more than"):
        parse("(" * 1000 + "online" + ")" * 1000)
    with pytest.raises(InvalidArgument, match="nested more than"):
        parse("not " * 1000 + "online")
    with pytest.raises(InvalidArgument):
        parse("os in " + "[" * 3000)
    assert matches(parse("(" * 20 + "online" + ")" * 20), WEB)


def test_too_long() -> None:
    with pytest.raises(InvalidArgument, match="longer than"):
        parse("online or " * 1000 + "online")


# --- properties ------------------------------------------------------------------------------

ALPHABET = st.sampled_from(list("()[],=!~<>'\"\\ \t") + list(FIELDS) +
                           ["and", "or", "not", "in", "true", "false", "1.2", "x", "'a'", "§"])


@settings(max_examples=500)
@given(st.text(max_size=60))
def test_random_text_raises_only_invalid_argument(text: str) -> None:
    try:
        expr = parse(text)
    except InvalidArgument as exc:
        assert exc.details["parameter"] == "targetConfig.filter"
        assert 1 <= exc.details["position"] <= len(text) + 1
    else:
        matches(expr, WEB)


@settings(max_examples=500)
@given(st.lists(ALPHABET, max_size=25).map(" ".join))
def test_random_token_soup_raises_only_invalid_argument(text: str) -> None:
    try:
        expr = parse(text)
    except InvalidArgument as exc:
        assert 1 <= exc.details["position"] <= len(text) + 1
    else:
        for device in DEVICES.values():
            assert isinstance(matches(expr, device), bool)


devices = st.fixed_dictionaries({
    "os": st.sampled_from(["linux", "darwin", "windows", ""]),
    "os_version": st.sampled_from(["", "1", "10.0", "22.04", "14.2.1"]),
    "hostname": st.text(max_size=8),
    "tags": st.lists(st.sampled_from(["web", "db", "prod"]), max_size=3),
    "online": st.booleans(),
})
conditions = st.sampled_from(['os == "linux"', '"web" in tags', "online", "os_version >= 10",
                              'hostname =~ "a*"', "tags", 'os in ["darwin", "windows"]'])


@given(conditions, conditions, devices)
def test_boolean_algebra(a: str, b: str, device: dict[str, Any]) -> None:
    va, vb = matches(parse(a), device), matches(parse(b), device)
    assert matches(parse(f"({a}) and ({b})"), device) == (va and vb)
    assert matches(parse(f"({a}) or ({b})"), device) == (va or vb)
    assert matches(parse(f"not ({a})"), device) == (not va)
    assert matches(parse(f"not {a} and {b}"), device) == ((not va) and vb)
