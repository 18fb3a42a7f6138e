"""What a running agent has loaded, on request: for the test that keeps the idle agent small.

With `CONVOY_AGENT_MODULES_FILE=PATH` in its environment, `convoy agent run` writes, on SIGUSR1,
the names of every module it has imported (one a line, sorted) and its VmRSS to PATH
(atomically). Without the variable nothing is installed.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType

ENV = "CONVOY_AGENT_MODULES_FILE"


def _rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def write_modules(path: Path) -> None:
    names = sorted(name for name, mod in list(sys.modules.items()) if mod is not None)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"# VmRSS {_rss_kb()} kB\n" + "\n".join(names) + "\n")
    os.replace(tmp, path)


def install_from_env() -> None:
    """Dump the modules on SIGUSR1 when the environment asks for it (POSIX only)."""
    where = os.environ.get(ENV)
    if not where or not hasattr(signal, "SIGUSR1"):
        return

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        write_modules(Path(where))

    signal.signal(signal.SIGUSR1, on_signal)
