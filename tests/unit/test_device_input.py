"""Every field a device sends is bounded and cleaned before it is stored."""

from __future__ import annotations

from common.convoy.v1 import agent_pb2, types_pb2
from coordinator.domain import device_input as di


def test_hello_is_bounded_and_copied() -> None:
    evil = "\x1b[2J\x1b[31mowned\x07" + "h" * 300
    hello = agent_pb2.Hello(agent_version="v" * 80 + "\x00", maintenance_windows=["Sat 01:00-05:00 UTC\n"] * 40,
                            facts=types_pb2.DeviceFacts(hostname=evil, os="linux" * 10, cpu_count=-4,
                                                        memory_bytes=-1, ip_addresses=["10.0.0.1"] * 100,
                                                        disks=[types_pb2.Disk(mountpoint="/" * 600, fstype="ext4",
                                                                              total_bytes=-1)] * 70))
    out = di.hello(hello)
    assert hello.facts.hostname == evil  # the original is untouched
    f = out.facts
    assert len(f.hostname) == 255 and "\x1b" not in f.hostname and "\x07" not in f.hostname
    assert f.hostname.startswith("[2J[31mowned")
    assert len(f.os) == 32 and f.cpu_count == 0 and f.memory_bytes == 0
    assert len(f.ip_addresses) == 64 and len(f.disks) == 64 and len(f.disks[0].mountpoint) == 512
    assert f.disks[0].total_bytes == 0
    assert len(out.agent_version) == 50 and "\x00" not in out.agent_version
    assert out.maintenance_windows == ["Sat 01:00-05:00 UTC"] * 32


def test_job_status_output_keeps_the_tail_and_reason_is_bounded() -> None:
    st = agent_pb2.JobStatus(job_id="j", state="failed", output="a\x00" * 100_000 + "THE END",
                             reason="\x1b[1m" + "r" * 2_000_000)
    job_id, state, exit_code, output, reason = di.job_status(st)
    assert (job_id, state, exit_code) == ("j", "failed", None)
    assert len(output) == di.OUTPUT and output.endswith("THE END") and "\x00" not in output
    assert len(reason) == di.REASON and "\x1b" not in reason


def test_job_status_ids_are_one_bounded_line_and_a_zero_exit_code_is_kept() -> None:
    st = agent_pb2.JobStatus(job_id="j\n" + "x" * 100, state="completed\x1b", exit_code=0)
    job_id, state, exit_code, _output, _reason = di.job_status(st)
    assert job_id == "j" + "x" * 63 and state == "completed" and exit_code == 0


def test_tags_site_and_log_lines() -> None:
    assert di.tags(["a", "", "a", "b\nc", "x" * 100] + [f"t{i}" for i in range(100)])[:3] == ["a", "bc", "x" * 64]
    assert len(di.tags([f"t{i}" for i in range(500)])) == di.MAX_TAGS
    assert di.site("\x1b]0;title\x07berlin") == "]0;titleberlin"
    lines = di.log_lines(["ok\x1b[0m"] * 5000)
    assert len(lines) == di.MAX_LOG_LINES and lines[0] == "ok[0m" and "…" in lines
    assert di.clamp("nope", 10) == 0 and di.clamp(2**80, di.INT64_MAX) == di.INT64_MAX
