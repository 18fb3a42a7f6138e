"""`make bench`: run every benchmark, print each workload and its figures, write docs/BENCHMARKS.md.

    python -m bench.run_all                  # full sizes (~10-15 minutes on 2 cores)
    python -m bench.run_all --quick          # small sizes, one run each; prints, writes nothing
    python -m bench.run_all --only fanout,footprint   # update those sections of the document
    python -m bench.run_all --size 50 --no-write      # the smoke test's size

Each benchmark's section is kept in bench/results.json, so `--only` rewrites just its sections
of docs/BENCHMARKS.md. The profile notes come from bench/PROFILE_NOTES.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import engine_scale, enrollment, fanout, footprint, ingestion, realprocs, staggered
from bench.common import ROOT, FleetTemplate, Result, machine, make_template, now_utc

ORDER = ("fanout", "footprint", "ingestion", "staggered", "engine", "realprocs", "enrollment")
DOC_ORDER = (*ORDER, "peer", "scaleout", "one", "storm", "storm-pg")  # `make bench-peer` (bench/peer.py), `make bench-scaleout` (bench/scaleout.py), `make bench-one` (bench/one_coordinator.py), `make bench-storm` (bench/storm.py)
RESULTS = ROOT / "bench" / "results.json"
NOTES = ROOT / "bench" / "PROFILE_NOTES.md"
DOC = ROOT / "docs" / "BENCHMARKS.md"


@dataclass
class Sizes:
    fleet: int
    footprint: list[int]
    idle_s: float
    reports_jobs: int
    rate: float
    staggered: tuple[int, int]
    real: int
    enroll: int
    runs: int


FULL = Sizes(fleet=10_000, footprint=[1_000, 10_000], idle_s=30, reports_jobs=10_000, rate=5_000,
             staggered=(10_000, 100), real=100, enroll=2_000, runs=3)
QUICK = Sizes(fleet=1_000, footprint=[1_000], idle_s=10, reports_jobs=2_000, rate=5_000, staggered=(2_000, 20),
              real=20, enroll=300, runs=1)


def smoke(n: int) -> Sizes:
    return Sizes(fleet=n, footprint=[n], idle_s=3, reports_jobs=n, rate=5_000, staggered=(n * 10, 10), real=max(2, n // 10),
                 enroll=n, runs=1)


def write_doc(sections: dict[str, dict[str, str]]) -> None:
    notes = NOTES.read_text() if NOTES.exists() else ""
    parts = ["# Benchmarks\n",
             "Produced by `make bench` (`python -m bench.run_all`); every figure below is printed by the "
             "benchmark that measured it. Client, agents and coordinator share the machine's cores on "
             "loopback, as the targets require. Benchmarks are not timed tests: "
             "`tests/e2e/test_bench_smoke.py` only checks that each one runs at a small size. The last section, "
             "Salt side by side, is produced by `make bench-peer` (`python -m bench.peer`), which is not part of "
             "`make bench`.\n"]
    for name in DOC_ORDER:
        sec = sections.get(name)
        if sec:
            parts.append(f"{sec['markdown']}\n_Machine: {sec['machine']}. Measured {sec['date']}._\n")
    parts.append(notes)
    DOC.write_text("\n".join(parts))


def save_section(name: str, r: Result, mach: str) -> None:
    """Keep `r` as section `name` in bench/results.json and rewrite docs/BENCHMARKS.md."""
    sections = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    sections[name] = {"markdown": r.markdown(), "machine": mach, "date": now_utc()}
    RESULTS.write_text(json.dumps(sections, indent=1) + "\n")
    write_doc(sections)


def run_standalone(prefix: str, measure: Callable[[Path], Result], section: str | None, keep: bool = False) -> int:
    """A benchmark outside `make bench` (storm, scale-out, one coordinator), run on its own: a
    scratch directory for `measure`, the figures printed, and written to section `section` of
    docs/BENCHMARKS.md unless it is None (print only)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    mach = machine()
    print(f"machine: {mach}\ndate: {now_utc()}\nscratch: {work}", flush=True)
    started = time.monotonic()
    try:
        res = measure(work)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    res.print()
    if section:
        save_section(section, res, mach)
    print(f"\nall done in {time.monotonic() - started:.0f} s" + (f"; wrote {DOC.relative_to(ROOT)}" if section else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run_all")
    p.add_argument("--quick", action="store_true", help="small sizes, one run each (prints, writes nothing)")
    p.add_argument("--size", type=int, help="every benchmark at about this many agents, one run (smoke)")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(ORDER)}")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    p.add_argument("--work", help="scratch directory (default: a fresh temporary one, removed after)")
    args = p.parse_args(argv)
    sizes = smoke(args.size) if args.size else QUICK if args.quick else FULL
    write = not (args.no_write or args.quick or args.size)
    only = [x.strip() for x in args.only.split(",")] if args.only else list(ORDER)
    unknown = set(only) - set(ORDER)
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="convoy-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    mach = machine()
    print(f"machine: {mach}\ndate: {now_utc()}\nscratch: {work}", flush=True)
    started = time.monotonic()
    results: list[Result] = []
    try:
        tpl: FleetTemplate | None = None
        if "fanout" in only or "footprint" in only:
            t = time.monotonic()
            tpl = make_template(work, max([sizes.fleet, *sizes.footprint]))
            print(f"(enrolled a fleet of {tpl.count:,} simulated devices in {time.monotonic() - t:.0f} s, "
                  f"{tpl.enroll_per_s:,.0f}/s)", flush=True)
        for name in only:
            t = time.monotonic()
            if name == "fanout":
                assert tpl is not None
                r = fanout.run(tpl, work, sizes.fleet, sizes.runs)
            elif name == "footprint":
                assert tpl is not None
                r = footprint.run(tpl, work, sizes.footprint, sizes.idle_s)
            elif name == "ingestion":
                r = ingestion.run(work, sizes.reports_jobs, sizes.rate, sizes.runs)
            elif name == "staggered":
                r = staggered.run(work, sizes.staggered[0], sizes.staggered[1], sizes.runs)
            elif name == "engine":
                big = sizes.fleet * 10 if sizes is FULL else sizes.fleet
                r = engine_scale.run(work / "engine", sizes.fleet, big)
            elif name == "realprocs":
                r = realprocs.run(work, sizes.real, sizes.runs)
            else:
                r = enrollment.run(work, sizes.enroll, sizes.runs, postgres=sizes is FULL, compare=sizes is FULL)
                if tpl is not None:
                    r.add(f"while enrolling the {tpl.count:,}-device fleet above", f"{tpl.enroll_per_s:,.0f}/s")
            r.raw["name"] = name
            r.print()
            print(f"  ({name} took {time.monotonic() - t:.0f} s)", flush=True)
            results.append(r)
            if write:
                save_section(name, r, mach)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nall done in {time.monotonic() - started:.0f} s" + (f"; wrote {DOC.relative_to(ROOT)}" if write else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
