"""enrollment: enrollments/s. Each is what `convoy agent install --no-service` does on the wire
(one Enroll carrying its success report, `report_success`; docs/enrollment.md, "One call per
install"), from the simulator process, 64 in flight over 4 channels, against a fresh coordinator
subprocess.

In the same run, one after the other: SQLite and PostgreSQL; plaintext (`--insecure`) and TLS
(the default) with device certificates (each enrollment sends a certificate request and the
coordinator signs a certificate); batched (the default) and one transaction per call (`CONVOY_ENROLL_BATCH_MAX=1`,
the shape before batching) for the ratio. Coordinator CPU per enrollment is read from the
process between the first and the last enrollment.

TLS handshakes: the simulator's 4 channels handshake once each, so its TLS figure is the cost of
encryption. A real install is one process, one connection: `handshakes` enrolls the same number
with a fresh connection each (8 at a time, from this process), TLS and plaintext, and the
coordinator CPU per enrollment of the two is the handshake's share.

    python -m bench.enrollment --n 2000            # prints the table (docs: make bench)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Admin, Coordinator, Result, Simulator, median

TARGET = 1000.0


@dataclass
class Run:
    per_s: float
    cpu_ms: float
    """Coordinator CPU per enrollment, milliseconds."""


def _coordinator(work: Path, tag: str, db: str | None, tls: bool, batch: int) -> Coordinator:
    coord = Coordinator(work / f"enroll-{tag}" / "coordinator", db)
    coord.insecure = not tls
    coord.env = {"CONVOY_ENROLL_BATCH_MAX": str(batch)}
    coord.bootstrap()
    coord.start()
    return coord


def one_run(work: Path, n: int, tag: str, db: str | None = None, tls: bool = False, batch: int = 500) -> Run:
    coord = _coordinator(work, tag, db, tls, batch)
    sim = None
    try:
        admin = Admin(coord.target, coord.token, coord.client_id, ca=coord.ca_file)
        token = admin.enrollment_token()
        admin.close()
        cpu0 = coord.cpu_seconds()
        keys = ("--device-keys",) if tls else ()  # TLS runs enroll as a real install does: key, CSR, certificate
        sim = Simulator(coord.target, token, n, work / f"enroll-{tag}" / "sim", "--enroll-concurrency", "64", *keys,
                        ca=coord.ca_file)
        ev = sim.wait("enrolled", 900)
        return Run(float(ev["per_second"]), (coord.cpu_seconds() - cpu0) / n * 1000)
    finally:
        if sim is not None:
            sim.stop()
        coord.stop()


def handshakes(work: Path, n: int, tag: str, tls: bool) -> Run:
    """`n` enrollments, each over a connection of its own (as `convoy agent install` does)."""
    import grpc

    from common import transport
    from common.convoy.v1 import agent_pb2, agent_pb2_grpc
    from common.convoy.v1 import types_pb2 as tpb

    coord = _coordinator(work, tag, None, tls, 500)
    try:
        admin = Admin(coord.target, coord.token, coord.client_id, ca=coord.ca_file)
        token = admin.enrollment_token()
        admin.close()
        trust = transport.ClientTLS(ca_pem=Path(coord.ca_file).read_bytes()) if tls else transport.PLAINTEXT

        def install(i: int) -> None:
            # A channel of its own, not shared with the other threads' (a new TCP and TLS session).
            channel = transport.sync_channel(coord.target, trust, extra_options=[("grpc.use_local_subchannel_pool", 1)])
            try:
                stub = agent_pb2_grpc.AgentServiceStub(channel)
                resp = stub.Enroll(agent_pb2.EnrollRequest(token=token, machine_id=f"hs-{tag}-{i}",
                                                           facts=tpb.DeviceFacts(hostname="h", os="linux"),
                                                           report_success=True), timeout=60)
                if not resp.reported:
                    stub.ReportEnrollment(agent_pb2.ReportEnrollmentRequest(enrollment_id=resp.enrollment_id, success=True),
                                          metadata=(("authorization", f"Bearer {resp.credential}"),), timeout=60)
            finally:
                channel.close()

        cpu0, t0 = coord.cpu_seconds(), time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(install, range(n)))
        return Run(n / (time.monotonic() - t0), (coord.cpu_seconds() - cpu0) / n * 1000)
    except grpc.RpcError as exc:
        raise RuntimeError(f"handshake run failed: {exc}") from None
    finally:
        coord.stop()


def run(work: Path, n: int, runs: int, *, postgres: bool = True, compare: bool = True) -> Result:
    from bench.ingestion import pg_available
    from bench.scaleout import create_database, drop_database

    res = Result("enrollment", f"{n:,} enrollments (one Enroll carrying its report each, as `convoy agent install "
                 "--no-service`; 64 in flight from one simulator process over 4 channels) on a fresh coordinator subprocess each run; batched: concurrent calls "
                 "written a batch per transaction (at most 500); one per call: `CONVOY_ENROLL_BATCH_MAX=1`, "
                 f"measured in the same run. Median of {runs} run(s). Coordinator CPU per enrollment in brackets.")
    backends: list[tuple[str, bool]] = [("sqlite", False)]
    if postgres and pg_available():
        backends.append(("postgresql", True))
    for backend, pg in backends:
        for tls in (False, True):
            modes = [500, 1] if compare else [500]
            figures: dict[int, Run] = {}
            for batch in modes:
                got = []
                for i in range(runs):
                    tag = f"{backend}-{'tls' if tls else 'plain'}-{batch}-{i}"
                    db = create_database(f"convoy_bench_enroll_{tag.replace('-', '_')}") if pg else None
                    try:
                        got.append(one_run(work, n, tag, db, tls, batch))
                    finally:
                        if pg:
                            drop_database(f"convoy_bench_enroll_{tag.replace('-', '_')}")
                figures[batch] = Run(median([g.per_s for g in got]), median([g.cpu_ms for g in got]))
            name = f"{backend}, {'TLS' if tls else 'plaintext'}"
            b = figures[500]
            res.add(f"{name}: batched", f"{b.per_s:,.0f}/s ({b.cpu_ms:.2f} ms CPU)", f"≥ {TARGET:,.0f}/s",
                    b.per_s >= TARGET)
            if 1 in figures:
                one = figures[1]
                res.add(f"{name}: one transaction per call", f"{one.per_s:,.0f}/s ({one.cpu_ms:.2f} ms CPU)")
                res.add(f"{name}: batched ÷ one per call", f"{b.per_s / one.per_s:.1f}×")
    hs = max(50, n // 4)
    plain, tls_run = handshakes(work, hs, "hs-plain", False), handshakes(work, hs, "hs-tls", True)
    res.add(f"a connection per enrollment ({hs:,}, 8 at a time, SQLite): plaintext",
            f"{plain.per_s:,.0f}/s ({plain.cpu_ms:.2f} ms CPU)")
    res.add("a connection per enrollment: TLS", f"{tls_run.per_s:,.0f}/s ({tls_run.cpu_ms:.2f} ms CPU)")
    res.add("coordinator CPU of one TLS handshake (the difference)", f"{tls_run.cpu_ms - plain.cpu_ms:.2f} ms")
    return res


def main(argv: list[str] | None = None) -> int:
    import tempfile

    p = argparse.ArgumentParser(prog="python -m bench.enrollment")
    p.add_argument("--n", type=int, default=2000, help="enrollments per run (default 2000)")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--no-compare", action="store_true", help="batched only (no one-per-call runs)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="convoy-bench-enroll-") as work:
        res = run(Path(work), args.n, args.runs, postgres=not args.no_postgres, compare=not args.no_compare)
    res.print()
    print(res.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
