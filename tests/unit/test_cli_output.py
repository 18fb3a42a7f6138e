"""Device-sent text never reaches an operator's terminal as escape sequences; JSON stays exact."""

from __future__ import annotations

import argparse
import json

import pytest

from cli.common import emit, print_table, printable

EVIL = "web-01\x1b[2J\x1b]0;pwned\x07\x9b31m\u202eevil\r\nnext"


def test_tables_strip_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["hostname", "reason"], [[EVIL, "exit\tcode 3"]])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "\u202e" not in out
    assert "web-01?[2J?]0;pwned??31m?evil  next" in out and "exit code 3" in out
    assert out.count("\n") == 2  # header and one row: a newline in a cell cannot add a row


def test_json_output_is_exact(capsys: pytest.CaptureFixture[str]) -> None:
    emit(argparse.Namespace(output="json"), {"hostname": EVIL}, lambda: None)
    assert json.loads(capsys.readouterr().out) == {"hostname": EVIL}


def test_printable_keeps_ordinary_text() -> None:
    assert printable("Zürich — ok ✓") == "Zürich — ok ✓"
    assert printable(None) == "" and printable(3) == "3"
