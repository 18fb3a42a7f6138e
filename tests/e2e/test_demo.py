"""`convoy demo` is the README's story; it must happen as told (exit 0) on this machine."""

from __future__ import annotations

import pytest

from tests.harness import run_cli


@pytest.mark.slow
def test_demo_tells_the_story() -> None:
    res = run_cli("demo", timeout=240, check=False)
    assert res.returncode == 0, f"demo failed:\n{res.stdout}\n{res.stderr}"
    out = res.stdout
    for line in ("auto-paused after batch 1", "No space left on device", "final: completed",
                 "outside_maintenance_window", '"status": "success"', "failed, reason signature",
                 "The story happened as told"):
        assert line in out
