"""Every benchmark runs at a small size (50 simulated agents, 5 real ones; `make bench-one` at 60). Not a timed test:
it proves `make bench` works end to end; the figures are for docs/BENCHMARKS.md."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.harness import ROOT

# `make bench` runs every benchmark of bench.run_all.ORDER in one process; the smoke test runs them
# in these groups (fan-out and footprint share their enrolled fleet), so the suite's two workers
# share the minute they take.
_GROUPS = {
    "fanout,footprint": ("fan-out", "footprint"),
    "ingestion,staggered,engine": ("ingestion", "staggered", "engine scale"),
    "realprocs": ("real processes",),
    "enrollment": ("enrollment",),
}


def test_the_smoke_groups_cover_every_benchmark() -> None:
    from bench.run_all import ORDER

    grouped = [name for group in _GROUPS for name in group.split(",")]
    assert sorted(grouped) == sorted(ORDER)


@pytest.mark.slow
@pytest.mark.parametrize("only", list(_GROUPS))
def test_every_benchmark_runs_at_a_small_size(only: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.run_all", "--size", "50", "--no-write", "--only", only],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for name in _GROUPS[only]:
        assert f"== {name} ==" in proc.stdout, proc.stdout[-4000:]
    if "fanout" in only:
        assert "ratio to baseline" in proc.stdout
    assert "all done" in proc.stdout


def test_simulator_runs_jobs_with_failures_and_windows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`convoy agent simulate` enrolls, connects and reports through the real protocol."""
    from bench.common import Admin, Coordinator, Simulator, wait_online

    coord = Coordinator(tmp_path / "coordinator")
    coord.bootstrap()
    coord.start()
    sim = None
    try:
        admin = Admin(coord.target, coord.token, coord.client_id)
        sim = Simulator(coord.target, admin.enrollment_token(), 20, tmp_path / "sim", "--failure-rate", "0.5",
                        "--seed", "7", "--install-time", "0.01", "--window", "daily 00:00-23:59 UTC")
        assert sim.wait("enrolled", 60)["count"] == 20
        assert sim.wait("connected", 60)["count"] == 20
        wait_online(coord.sqlite_path, 20, 30)
        dep = admin.create(admin.script("true"))
        admin.start(dep)
        d = admin.wait_done(dep, 60)
        assert d.progress.completed + d.progress.failed == 20
        assert 0 < d.progress.failed < 20
        admin.close()
    finally:
        if sim is not None:
            sim.stop()
        coord.stop()


def test_bench_peer_convoy_half_runs() -> None:
    """`make bench-peer` without Salt (which the suite never installs): 2 real agents, `convoy run`
    at once and in 10% batches, timed and measured, nothing written."""
    proc = subprocess.run([sys.executable, "-m", "bench.peer", "--no-salt", "--n", "2", "--runs", "1", "--no-write"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "2 devices, `echo ok`, at once: Convoy (`convoy run`)" in proc.stdout
    assert "batches of 10%: Convoy" in proc.stdout
    assert "`convoy agent run`, idle (per agent)" in proc.stdout


def test_bench_storm_runs_at_a_small_size() -> None:
    """`make bench-storm` at 40 agents: SIGKILL and restart under a rollout in flight; the rollout
    completes with every job run once, and nothing but the broken streams is an error."""
    proc = subprocess.run([sys.executable, "-m", "bench.storm", "--n", "40", "--sims", "2", "--install-time", "0.5",
                           "--no-write"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert "SIGKILL to every agent on a live stream again (40)" in out, out[-4000:]
    assert "rollout after the restart: completed, 40/40 completed (total 40, failed 0, skipped 0); 40 job runs, 0 repeated" \
        in out, out[-4000:]
    assert "errors on streams that reached the coordinator, other than the broken stream and the busy hint: none" in out, out[-4000:]
    assert "ERROR lines in the restarted coordinator's log: 0" in out, out[-4000:]


def test_bench_one_coordinator_runs_at_a_small_size() -> None:
    """`make bench-one` at 60 agents: ramped connection, idle, a deployment completed on all."""
    proc = subprocess.run([sys.executable, "-m", "bench.one_coordinator", "--n", "60", "--sims", "2", "--idle", "1",
                           "--no-write"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert "== one coordinator ==" in out, out[-4000:]
    assert "deployment: completed / failed / skipped: 60 / 0 / 0" in out, out[-4000:]
    assert "streams opened and online (ramped): " in out and "(target all 60: met)" in out, out[-4000:]
    assert "(target every device: met)" in out, out[-4000:]
