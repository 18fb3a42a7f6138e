"""`convoy demo`: the whole story on this machine (see cli/demo.py)."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import command


def _demo(args: argparse.Namespace) -> int:
    from cli.demo import main

    return main(keep=args.keep)


def register(sub: Any) -> None:
    p = command(sub, "demo", "run the whole Convoy story locally: coordinator, 20 real agents, a staggered rollout",
                "  convoy demo\n  convoy demo --keep   # keep the logs and state in the temporary directory",
                _demo, connection=False, output=False)
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, state) afterwards")
