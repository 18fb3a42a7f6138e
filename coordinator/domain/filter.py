"""Target filter expressions (`targetType: "filter"`), evaluated against devices at initialize.

Grammar (keywords and field names are case-insensitive):

    expr       := or_expr
    or_expr    := and_expr ( "or" and_expr )*
    and_expr   := not_expr ( "and" not_expr )*
    not_expr   := "not" not_expr | atom
    atom       := "(" expr ")" | condition
    condition  := value [ op value ]                      a bare value must be a field or boolean
    op         := "==" | "!=" | "=~" | "<" | "<=" | ">" | ">=" | "in" | "not" "in"
    value      := FIELD | STRING | VERSION | "true" | "false" | list
    list       := "[" [ scalar ( "," scalar )* [ "," ] ] "]"
    scalar     := STRING | VERSION | "true" | "false"
    FIELD      := os | os_version | arch | hostname | site | tags | groups | online
    STRING     := '…' or "…"      (backslash escapes the next character)
    VERSION    := a digit followed by letters, digits, ".", "-", "_", "+"   e.g. 22.04, 10.0.19045

Fields: os, os_version, arch, hostname, site are strings; tags and groups are lists (groups holds
both the ids and the names of the device's groups); online is a boolean.

Semantics:
- `==`, `!=`, `in`, `not in` and `=~` compare strings case-insensitively (`os == "Linux"`
  matches a device reporting `linux`).
- `x in y`: y is a list (a list field or a list literal), x a single value: `"web" in tags`,
  `os in ["linux", "darwin"]`, `"ops" not in groups`.
- `=~` is a glob (fnmatch: `*`, `?`, `[abc]`) with the pattern on the right:
  `hostname =~ "web-*"`. On a list field it matches if any element matches: `tags =~ "env-*"`.
- `<`, `<=`, `>`, `>=` compare `os_version` as dotted version numbers: `os_version >= 22.04`
  (numeric parts compare as numbers, so 10.2 < 10.10; missing parts count as 0, so 22.04 ==
  22.4.0). A device with an empty os_version never satisfies an ordering comparison.
- A bare field is truthy: `online`, `not online`, `tags` (has any tag), `site` (has a site).
- `true` and `false` on their own match every device / no device.

Errors are InvalidArgument("targetConfig.filter: syntax error at position N: …") with
`parameter="targetConfig.filter"` and `position=N`, N the 1-based character column. Unknown
fields and comparisons between mismatched types (a list with `==`, `<` on anything other than
os_version) are reported the same way, at the offending token.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from common.errors import InvalidArgument

__all__ = [
    "Expr", "Or", "And", "Not", "Const", "Truthy", "Compare", "Field", "Value", "ListValue",
    "FIELDS", "parse", "matches", "compare_versions",
]

PARAMETER = "targetConfig.filter"
MAX_LENGTH = 4096
MAX_DEPTH = 64

FieldType = Literal["string", "list", "bool"]
FIELDS: dict[str, FieldType] = {
    "os": "string",
    "os_version": "string",
    "arch": "string",
    "hostname": "string",
    "site": "string",
    "tags": "list",
    "groups": "list",
    "online": "bool",
}
_ORDERING = ("<", "<=", ">", ">=")


# --- the tree --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Value:
    value: str | bool


@dataclass(frozen=True)
class ListValue:
    items: tuple[str | bool, ...]


Operand = Field | Value | ListValue


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


@dataclass(frozen=True)
class Const:
    value: bool


@dataclass(frozen=True)
class Truthy:
    field: str


@dataclass(frozen=True)
class Compare:
    op: str
    """One of == != =~ < <= > >= in notin."""
    left: Operand
    right: Operand


Expr = Or | And | Not | Const | Truthy | Compare


# --- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # op, punct, string, version, word, end
    text: str
    value: str
    pos: int  # 1-based column


_OPERATORS = ("==", "!=", "=~", "<=", ">=", "<", ">")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VERSION = re.compile(r"[0-9][A-Za-z0-9._+-]*")


def _error(pos: int, what: str) -> NoReturn:
    raise InvalidArgument(f"{PARAMETER}: syntax error at position {pos}: {what}",
                          parameter=PARAMETER, position=pos)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        pos = i + 1
        if ch in "()[],":
            tokens.append(_Token("punct", ch, ch, pos))
            i += 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(_Token("op", op, op, pos))
            i += len(op)
            continue
        if ch in "'\"":
            chars: list[str] = []
            j = i + 1
            while True:
                if j >= n:
                    _error(pos, "unterminated string (missing closing " + ch + ")")
                c = text[j]
                if c == "\\" and j + 1 < n:
                    chars.append(text[j + 1])
                    j += 2
                    continue
                if c == ch:
                    break
                chars.append(c)
                j += 1
            tokens.append(_Token("string", text[i:j + 1], "".join(chars), pos))
            i = j + 1
            continue
        match = _WORD.match(text, i) if (ch.isascii() and (ch.isalpha() or ch == "_")) else None
        if match:
            tokens.append(_Token("word", match.group(), match.group().lower(), pos))
            i = match.end()
            continue
        match = _VERSION.match(text, i) if ch in "0123456789" else None
        if match:
            tokens.append(_Token("version", match.group(), match.group(), pos))
            i = match.end()
            continue
        if ch == "=":
            _error(pos, "unexpected '=' (use '==' to compare)")
        if ch == "!":
            _error(pos, "unexpected '!' (use 'not' or '!=')")
        if ch in "&|":
            _error(pos, f"unexpected {ch!r} (use 'and' / 'or')")
        _error(pos, f"unexpected character {ch!r}")
    tokens.append(_Token("end", "", "", n + 1))
    return tokens


# --- parser ----------------------------------------------------------------------------------


def _kind(operand: Operand) -> FieldType:
    if isinstance(operand, Field):
        return FIELDS[operand.name]
    if isinstance(operand, ListValue):
        return "list"
    return "bool" if isinstance(operand.value, bool) else "string"


def _describe(operand: Operand) -> str:
    if isinstance(operand, Field):
        return f"{operand.name} ({FIELDS[operand.name]})"
    if isinstance(operand, ListValue):
        return "a list"
    return "a boolean" if isinstance(operand.value, bool) else "a string"


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def at_word(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.value in words

    def expect_punct(self, ch: str, opened_at: int | None = None) -> None:
        if self.tok.kind == "punct" and self.tok.value == ch:
            self.advance()
            return
        hint = f" to close the one at position {opened_at}" if opened_at else ""
        _error(self.tok.pos, f"expected {ch!r}{hint}, found {self._found()}")

    def _found(self) -> str:
        return "end of filter" if self.tok.kind == "end" else repr(self.tok.text)

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            _error(self.tok.pos, f"nested more than {MAX_DEPTH} levels deep")

    def parse(self) -> Expr:
        if self.tok.kind == "end":
            _error(self.tok.pos, "empty filter (e.g. os == \"linux\" and \"web\" in tags)")
        expr = self.or_expr()
        if self.tok.kind != "end":
            _error(self.tok.pos, f"unexpected {self._found()} (expected 'and', 'or' or the end)")
        return expr

    def or_expr(self) -> Expr:
        items = [self.and_expr()]
        while self.at_word("or"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Expr:
        items = [self.not_expr()]
        while self.at_word("and"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Expr:
        if self.at_word("not"):
            self.advance()
            self._enter()
            inner = self.not_expr()
            self.depth -= 1
            return Not(inner)
        return self.atom()

    def atom(self) -> Expr:
        if self.tok.kind == "punct" and self.tok.value == "(":
            opened = self.advance().pos
            self._enter()
            expr = self.or_expr()
            self.depth -= 1
            self.expect_punct(")", opened)
            return expr
        return self.condition()

    def condition(self) -> Expr:
        start = self.tok
        left = self.value()
        op_tok = self.tok
        op = self._operator()
        if op is None:
            if isinstance(left, Field):
                return Truthy(left.name)
            if isinstance(left, Value) and isinstance(left.value, bool):
                return Const(left.value)
            _error(start.pos, f"{_describe(left)} on its own is not a condition "
                              f"(compare it, e.g. os == \"linux\" or \"web\" in tags)")
        right_tok = self.tok
        right = self.value()
        self._check(op, left, right, start, op_tok, right_tok)
        return Compare(op, left, right)

    def _operator(self) -> str | None:
        tok = self.tok
        if tok.kind == "op":
            self.advance()
            return tok.value
        if tok.kind == "word" and tok.value == "in":
            self.advance()
            return "in"
        if tok.kind == "word" and tok.value == "not":
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "word" and nxt.value == "in":
                self.advance()
                self.advance()
                return "notin"
        return None

    def value(self) -> Operand:
        tok = self.tok
        if tok.kind == "string" or tok.kind == "version":
            self.advance()
            return Value(tok.value)
        if tok.kind == "word":
            if tok.value in ("true", "false"):
                self.advance()
                return Value(tok.value == "true")
            if tok.value in FIELDS:
                self.advance()
                return Field(tok.value)
            if tok.value in ("and", "or", "not", "in"):
                _error(tok.pos, f"expected a field or value, found keyword {tok.text!r}")
            _error(tok.pos, f"unknown field {tok.text!r} (fields: {', '.join(FIELDS)}; "
                            f"quote string values)")
        if tok.kind == "punct" and tok.value == "[":
            return self.list_value()
        _error(tok.pos, f"expected a field or value, found {self._found()}")

    def list_value(self) -> ListValue:
        opened = self.advance().pos
        items: list[str | bool] = []
        while not (self.tok.kind == "punct" and self.tok.value == "]"):
            tok = self.tok
            if tok.kind in ("string", "version"):
                items.append(tok.value)
            elif tok.kind == "word" and tok.value in ("true", "false"):
                items.append(tok.value == "true")
            elif tok.kind == "end":
                self.expect_punct("]", opened)
            else:
                # Items are parsed flat (no nested lists), which also keeps "[[[[…" from
                # recursing without bound.
                _error(tok.pos, f"list items must be quoted strings, versions or true/false, "
                                f"found {self._found()}")
            self.advance()
            if self.tok.kind == "punct" and self.tok.value == ",":
                self.advance()
                continue
            if not (self.tok.kind == "punct" and self.tok.value == "]"):
                self.expect_punct("]", opened)
        self.advance()
        return ListValue(tuple(items))

    def _check(self, op: str, left: Operand, right: Operand, start: _Token, op_tok: _Token,
               right_tok: _Token) -> None:
        lk, rk = _kind(left), _kind(right)
        shown = "not in" if op == "notin" else op
        if op in ("in", "notin"):
            if rk != "list":
                _error(right_tok.pos, f"'{shown}' needs a list on the right (a list field such as "
                                      f"tags or a list such as [\"a\", \"b\"]), found {_describe(right)}")
            if lk == "list":
                _error(start.pos, f"'{shown}' needs a single value on the left, found {_describe(left)}")
        elif op == "=~":
            if not (isinstance(right, Value) and isinstance(right.value, str)):
                _error(right_tok.pos, f"'=~' needs a quoted glob pattern on the right, found {_describe(right)}")
            if lk == "bool":
                _error(start.pos, f"'=~' needs a string or list field on the left, found {_describe(left)}")
        elif op in _ORDERING:
            fields = [o for o in (left, right) if isinstance(o, Field)]
            if not fields or any(f.name != "os_version" for f in fields) or lk != "string" or rk != "string":
                _error(op_tok.pos, f"'{shown}' compares os_version with a version, e.g. os_version >= 22.04")
        else:  # == !=
            if lk == "list" or rk == "list":
                _error(op_tok.pos, f"'{shown}' cannot compare a list; use 'in' (e.g. \"web\" in tags)")
            if lk != rk:
                _error(op_tok.pos, f"cannot compare {_describe(left)} with {_describe(right)}")


def parse(text: str) -> Expr:
    """The expression in `text`; InvalidArgument naming targetConfig.filter and the position."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{PARAMETER}: must be a string", parameter=PARAMETER)
    if len(text) > MAX_LENGTH:
        _error(MAX_LENGTH + 1, f"filter longer than {MAX_LENGTH} characters")
    return _Parser(text).parse()


# --- evaluation ------------------------------------------------------------------------------

_VERSION_PART = re.compile(r"\d+|[A-Za-z]+")


def _version_key(version: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p.lower()) for p in _VERSION_PART.findall(version)]


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 comparing dotted versions; numeric parts as numbers, missing parts as 0."""
    ka, kb = _version_key(a), _version_key(b)
    width = max(len(ka), len(kb))
    pad: tuple[int, int | str] = (0, 0)
    ka += [pad] * (width - len(ka))
    kb += [pad] * (width - len(kb))
    # Numbers sort before words at the same position (10.0 < 10.0rc1 is not meaningful, but
    # the order must be total so comparisons never raise).
    return (ka > kb) - (ka < kb)


def _field(device: Mapping[str, Any], name: str) -> Any:
    value = device.get(name)
    kind = FIELDS[name]
    if kind == "list":
        return [str(v) for v in value] if isinstance(value, list | tuple | set | frozenset) else []
    if kind == "bool":
        return bool(value)
    return "" if value is None else str(value)


def _resolve(operand: Operand, device: Mapping[str, Any]) -> Any:
    if isinstance(operand, Field):
        return _field(device, operand.name)
    if isinstance(operand, ListValue):
        return list(operand.items)
    return operand.value


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _compare(expr: Compare, device: Mapping[str, Any]) -> bool:
    left = _resolve(expr.left, device)
    right = _resolve(expr.right, device)
    op = expr.op
    if op in ("in", "notin"):
        found = _fold(left) in [_fold(v) for v in right]
        return found if op == "in" else not found
    if op == "=~":
        pattern = str(right).casefold()
        candidates = left if isinstance(left, list) else [left]
        return any(fnmatch.fnmatchcase(str(c).casefold(), pattern) for c in candidates)
    if op == "==":
        return bool(_fold(left) == _fold(right))
    if op == "!=":
        return bool(_fold(left) != _fold(right))
    if not left or not right:
        return False  # an unknown version is neither older nor newer than anything
    order = compare_versions(str(left), str(right))
    return {"<": order < 0, "<=": order <= 0, ">": order > 0, ">=": order >= 0}[op]


def matches(expr: Expr, device: Mapping[str, Any]) -> bool:
    """True if `device` (a mapping with the FIELDS keys; missing keys are empty) matches."""
    if isinstance(expr, Compare):
        return _compare(expr, device)
    if isinstance(expr, And):
        return all(matches(e, device) for e in expr.items)
    if isinstance(expr, Or):
        return any(matches(e, device) for e in expr.items)
    if isinstance(expr, Not):
        return not matches(expr.item, device)
    if isinstance(expr, Truthy):
        return bool(_field(device, expr.field))
    return expr.value
