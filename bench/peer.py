"""`make bench-peer`: Convoy and Salt doing the same work on the same machine, in one run.

    python -m bench.peer                 # N=100 minions and 100 agents, 3 runs; writes docs/BENCHMARKS.md
    python -m bench.peer --n 20 --runs 1 # a quick look; prints only
    python -m bench.peer --no-salt --n 2 # Convoy's half alone (the smoke test)

Both fleets are up at once on loopback: a salt-master with N salt-minions (bench/peer_salt.py)
and a coordinator subprocess (SQLite) with N real `convoy agent run` processes. Each is asked
to run `echo ok` on every device, all at once and in batches of 10%, by the command line an
operator types:

    salt '*' cmd.run 'echo ok'               salt '*' -b 10% cmd.run 'echo ok'
    convoy run --target-all 'echo ok'        convoy run --target-all --batch-size 10% 'echo ok'

Each is timed the same way: the wall time of that command as a subprocess, from its start (the
interpreter loading) to its exit with every device's result printed; a run counts only if all N
devices answered `ok`. The runs alternate between the two, so both see the same machine load.
One untimed run of each first (Salt loads its execution modules on the first job). Memory: each
agent's process tree (salt-minion forks a worker; a Convoy agent is one process), idle before
the runs and after them, and the master's and the coordinator's process trees.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    CONVOY,
    ROOT,
    Admin,
    Coordinator,
    Result,
    machine,
    median,
    now_utc,
    stop_process,
    wait_online,
)
from bench.peer_salt import SALT_VERSION, SaltFleet, install, tree_cpu, tree_memory

MODES = (("at once", None), ("batches of 10%", "10%"))
FULL_N, FULL_RUNS = 100, 3
MB = 2**20


@dataclass
class ConvoyFleet:
    """A coordinator subprocess and `n` real `convoy agent run` processes under `root`."""

    root: Path
    n: int
    coord: Coordinator | None = None
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        self.coord = coord = Coordinator(self.root / "coordinator")
        coord.bootstrap()
        coord.start()
        admin = Admin(coord.target, coord.token, coord.client_id)
        token = admin.enrollment_token()
        admin.close()

        def enroll(i: int) -> None:
            subprocess.run([*CONVOY, "agent", "install", "--server", coord.target, "--token", token, "--state-dir",
                            str(self.root / f"agent-{i:03d}"), "--machine-id", f"peer-{i:03d}", "--no-service",
                            "--insecure"],
                           check=True, cwd=ROOT, capture_output=True, timeout=120)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(enroll, range(self.n)))
        for i in range(self.n):
            self.agents.append(subprocess.Popen(
                [*CONVOY, "agent", "run", "--state-dir", str(self.root / f"agent-{i:03d}"), "--log-level", "warning"],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_online(coord.sqlite_path, self.n, 300)

    def env(self) -> dict[str, str]:
        """The operator's shell: CONVOY_SERVER and CONVOY_TOKEN exported."""
        assert self.coord is not None
        # The benchmark's coordinator serves plaintext on loopback (bench/common.py), as Salt's master does.
        return {**os.environ, "CONVOY_SERVER": self.coord.target, "CONVOY_TOKEN": self.coord.token,
                "CONVOY_INSECURE": "1"}

    def command(self, batch: str | None) -> list[str]:
        convoy = Path(sys.executable).with_name("convoy")  # the console script an operator runs
        cmd = [str(convoy)] if convoy.exists() else list(CONVOY)
        cmd += ["run", "--target-all"]
        if batch:
            cmd += ["--batch-size", batch]
        return [*cmd, "echo ok"]

    def answered(self, stdout: str) -> int:
        """Device rows of `convoy run`'s table that completed with exit code 0 and said `ok`."""
        return sum(1 for line in stdout.splitlines() if line.split()[1:] == ["completed", "0", "ok"])

    def agent_memory(self) -> list[tuple[int, int]]:
        return [tree_memory(a.pid) for a in self.agents if a.poll() is None]

    def coordinator_memory(self) -> tuple[int, int]:
        assert self.coord is not None and self.coord.proc is not None
        return tree_memory(self.coord.proc.pid)

    def stop(self) -> None:
        for a in self.agents:
            a.terminate()
        for a in self.agents:
            stop_process(a, 20)
        if self.coord is not None:
            self.coord.stop()


def timed(cmd: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600) -> tuple[float, str]:
    """(wall seconds from start to exit, stdout) of one command line; a non-zero exit raises."""
    t0 = time.monotonic()
    out = subprocess.run(list(cmd), capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    seconds = time.monotonic() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return seconds, out.stdout


def spread(values: Sequence[float]) -> str:
    return f"{median(values):.2f} s" + (f" ({min(values):.2f}–{max(values):.2f})" if len(values) > 1 else "")


def memory_rows(res: Result, label: str, trees: list[tuple[int, int]]) -> None:
    if trees:
        res.add(label, f"{median([r for r, _ in trees]) / MB:.1f} MB RSS, {median([p for _, p in trees]) / MB:.1f} MB PSS")


def run(work: Path, n: int, runs: int, salt: bool = True) -> Result:
    who = f"Salt {SALT_VERSION} and Convoy" if salt else "Convoy"
    res = Result("peer: Salt side by side", (
        f"{who} on this machine at once, on loopback: a salt-master with {n} salt-minions (root, no systemd, "
        f"each minion its own config, pki and cache dirs, keys auto-accepted, Salt's defaults otherwise) and a "
        f"coordinator subprocess (SQLite) with {n} real `convoy agent run` processes. The work: `echo ok` on every "
        f"device, timed as the operator sees it — the wall time of the one command line, from its start to its "
        f"exit with all {n} results printed: `salt '*' cmd.run 'echo ok'` (with `-b 10%`) against "
        f"`convoy run --target-all 'echo ok'` (with `--batch-size 10%`). Runs alternate between the two; one "
        f"untimed run of each first; median of {runs} (min–max). Memory: median per agent of its process tree "
        f"(a salt-minion is two processes, a Convoy agent one), idle before the runs and after them; RSS "
        f"counts pages shared after a fork once per process, PSS splits them. The machine is shared with other "
        f"engineers' test runs: single runs move by tens of percent."))
    salt_fleet: SaltFleet | None = None
    convoy = ConvoyFleet(work / "convoy", n)
    try:
        if salt:
            t = time.monotonic()
            salt_fleet = SaltFleet(install(work.parent), work / "salt", n)  # Salt's venv outlives the run
            salt_fleet.start()
            print(f"(Salt: master and {n} minions up in {time.monotonic() - t:.0f} s)", flush=True)
        t = time.monotonic()
        convoy.start()
        print(f"(Convoy: coordinator and {n} agents up in {time.monotonic() - t:.0f} s)", flush=True)
        settle = min(5.0, 1.0 + n / 25)  # both fleets idle a moment before the idle figures
        minion_pids = [m.pid for m in salt_fleet.minions] if salt_fleet else []
        agent_pids = [a.pid for a in convoy.agents]
        cpu0 = (tree_cpu(minion_pids), tree_cpu(agent_pids))
        time.sleep(settle)
        idle_cpu = ((tree_cpu(minion_pids) - cpu0[0]) / settle, (tree_cpu(agent_pids) - cpu0[1]) / settle)
        idle_minion = salt_fleet.minion_memory() if salt_fleet else []
        idle_agent = convoy.agent_memory()
        idle_master = salt_fleet.master_memory() if salt_fleet else None
        idle_coord = convoy.coordinator_memory()

        def one(system: str, batch: str | None) -> float:
            if system == "salt":
                assert salt_fleet is not None
                seconds, out = timed(salt_fleet.command(batch))
                got = salt_fleet.answered(out)
            else:
                seconds, out = timed(convoy.command(batch), convoy.env())
                got = convoy.answered(out)
            if got != n:
                raise RuntimeError(f"{system} {batch or 'at once'}: {got} of {n} devices answered ok:\n{out[-3000:]}")
            return seconds

        systems = ("salt", "convoy") if salt else ("convoy",)
        for system in systems:
            one(system, None)  # untimed: warms both up
        times: dict[tuple[str, str], list[float]] = {}
        for i in range(runs):
            for label, batch in MODES:
                for system in systems:
                    took = one(system, batch)
                    times.setdefault((system, label), []).append(took)
                    print(f"  run {i + 1}: {system} {label}: {took:.2f} s", flush=True)
        after_minion = salt_fleet.minion_memory() if salt_fleet else []
        after_agent = convoy.agent_memory()
        after_master = salt_fleet.master_memory() if salt_fleet else None
        after_coord = convoy.coordinator_memory()
    finally:
        convoy.stop()
        if salt_fleet is not None:
            salt_fleet.stop()

    for label, _batch in MODES:
        c = times[("convoy", label)]
        if salt:
            res.add(f"{n} devices, `echo ok`, {label}: Salt", spread(times[("salt", label)]))
        res.add(f"{n} devices, `echo ok`, {label}: Convoy (`convoy run`)", spread(c))
        if salt:
            ratio = median(times[("salt", label)]) / median(c)
            res.add(f"{label}: Salt's time ÷ Convoy's", f"{ratio:.1f}×")
            res.raw[f"ratio {label}"] = round(ratio, 2)
    if salt:
        res.add(f"idle CPU of the {n} salt-minions together", f"{100 * idle_cpu[0]:.1f}% of a core")
    res.add(f"idle CPU of the {n} Convoy agents together", f"{100 * idle_cpu[1]:.1f}% of a core")
    memory_rows(res, "salt-minion, idle (per minion)", idle_minion)
    memory_rows(res, "salt-minion, after the runs", after_minion)
    memory_rows(res, "`convoy agent run`, idle (per agent)", idle_agent)
    memory_rows(res, "`convoy agent run`, after the runs", after_agent)
    if salt and idle_minion and idle_agent:
        res.add("agent memory, salt-minion ÷ Convoy agent (idle PSS)",
                f"{median([p for _, p in idle_minion]) / median([p for _, p in idle_agent]):.1f}×")
    if idle_master is not None and after_master is not None:
        res.add("salt-master, all its processes (idle / after)",
                f"{idle_master[0] / MB:.0f} / {after_master[0] / MB:.0f} MB RSS, "
                f"{idle_master[1] / MB:.0f} / {after_master[1] / MB:.0f} MB PSS")
    res.add("coordinator (idle / after)", f"{idle_coord[0] / MB:.0f} / {after_coord[0] / MB:.0f} MB RSS, "
            f"{idle_coord[1] / MB:.0f} / {after_coord[1] / MB:.0f} MB PSS")
    return res


def main(argv: list[str] | None = None) -> int:
    from bench.run_all import save_section

    p = argparse.ArgumentParser(prog="python -m bench.peer")
    p.add_argument("--n", type=int, default=int(os.environ.get("N") or FULL_N), help="minions and agents (default 100)")
    p.add_argument("--runs", type=int, default=int(os.environ.get("RUNS") or FULL_RUNS), help="timed runs (default 3)")
    p.add_argument("--no-salt", action="store_true", help="Convoy's half only")
    p.add_argument("--scratch", default=os.environ.get("BENCH_PEER_DIR") or
                   os.path.join(tempfile.gettempdir(), "convoy-bench-peer"),
                   help="scratch directory, outside the repository (Salt's virtual environment stays there)")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    scratch = Path(args.scratch).resolve()
    if scratch.is_relative_to(ROOT):
        p.error(f"--scratch must be outside the repository ({ROOT})")
    work = scratch / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    write = not args.no_write and not args.no_salt and args.n >= FULL_N and args.runs >= FULL_RUNS
    mach = machine()
    print(f"machine: {mach}\ndate: {now_utc()}\nscratch: {scratch}", flush=True)
    started = time.monotonic()
    try:
        res = run(work, args.n, args.runs, salt=not args.no_salt)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.print()
    print(json.dumps({"event": "peer", **res.raw}))
    if write:
        save_section("peer", res, mach)
    print(f"\nall done in {time.monotonic() - started:.0f} s" + ("; wrote docs/BENCHMARKS.md" if write else
          f" (docs/BENCHMARKS.md is written by full runs only: N ≥ {FULL_N}, runs ≥ {FULL_RUNS}, with Salt)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
