"""Where the fan-out's time goes: py-spy on the coordinator and the simulator during one run.

    pip install py-spy                               # not a dependency of Convoy
    python -m bench.profile_fanout --count 10000     # prints the top frames of each process

The same run as the fan-out benchmark (bench/fanout.py): N enrolled simulated agents connected,
an immediate no-op deployment, StartDeployment to `completed`. py-spy samples both processes
(`record -f raw --nonblocking`, 100 Hz, idle threads left out) only between StartDeployment
and `completed`; the samples are folded by leaf frame (where the CPU was) and by every frame on
the stack (what the time was spent under), as a share of each process's samples.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import (
    Admin,
    Simulator,
    make_template,
    point_credentials,
    py_spy,
    py_spy_stop,
    wait_online,
)


def fold(raw: Path, top: int) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, top leaf frames, top inclusive frames) with their share of the samples."""
    leaf: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        leaf[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    share = [(f, 100 * n / total) for f, n in leaf.most_common(top)] if total else []
    under = [(f, 100 * n / total) for f, n in incl.most_common(top)] if total else []
    return total, share, under


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_fanout")
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="convoy-profile-"))
    try:
        tpl = make_template(work, args.count)
        coord, sim_dir = tpl.fresh(work / "run")
        coord.start()
        sim = None
        spies: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        try:
            point_credentials(sim_dir, coord.target)
            sim = Simulator(coord.target, tpl.token, args.count, sim_dir, "--channels", "8")
            sim.wait("connected", 600)
            wait_online(coord.sqlite_path, args.count)
            admin = Admin(coord.target, coord.token, coord.client_id)
            dep = admin.create(admin.script("true"))
            time.sleep(1.0)
            assert coord.proc is not None
            for name, pid in (("coordinator", coord.proc.pid), ("simulator", sim.proc.pid)):
                spies.append((name, py_spy(pid, work / f"{name}.txt"), work / f"{name}.txt"))
            time.sleep(1.0)  # py-spy attaches
            t0 = time.monotonic()
            admin.start(dep)
            d = admin.wait_done(dep, 600, interval=0.05)
            seconds = time.monotonic() - t0
            admin.close()
            print(f"fan-out of {args.count:,}: {d.status} in {seconds:.2f} s ({d.progress.completed} completed)")
        finally:
            for _name, spy, _out in spies:
                py_spy_stop(spy)
            if sim is not None:
                sim.stop()
            coord.stop()
        for name, _spy, out in spies:
            total, share, under = fold(out, args.top)
            print(f"\n== {name}: {total:,} samples ==\n-- leaf frames (self) --")
            for f, pct in share:
                print(f"  {pct:5.1f}%  {f}")
            print("-- under (inclusive) --")
            for f, pct in under:
                print(f"  {pct:5.1f}%  {f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
