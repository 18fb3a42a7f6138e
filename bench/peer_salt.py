"""The peer for `make bench-peer`: Salt (salt-master and N salt-minions) on loopback.

Salt is installed from PyPI into its own virtual environment in the scratch directory (pins in
bench/salt-requirements.txt), once; later runs reuse it. Every daemon runs as root in the
foreground (no systemd), in its own process group so that stopping it stops its workers. The
master listens on 127.0.0.1 only, on two free ports, and accepts every minion's key on sight
(`auto_accept`); each minion has its own config dir and `root_dir` (so its own pki, cache, sock
dir, pid file and log) and an id of its own. Everything else is Salt's default.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.common import ROOT

SALT_VERSION = "3007.8"
REQUIREMENTS = ROOT / "bench" / "salt-requirements.txt"
WAVE = 10  # minions started at once: each one's start costs a second or two of CPU


def install(scratch: Path) -> Path:
    """The bin dir of a virtual environment with Salt in it (made if missing)."""
    venv = scratch / f"salt-{SALT_VERSION}"
    salt = venv / "bin" / "salt"
    if salt.exists() and subprocess.run([str(salt), "--version"], capture_output=True).returncode == 0:
        return venv / "bin"
    print(f"(installing Salt {SALT_VERSION} from PyPI into {venv}; a minute or two)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    out = subprocess.run([str(salt), "--version"], capture_output=True, text=True, check=True)
    print(f"({out.stdout.strip()})", flush=True)
    return venv / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM the process group this benchmark started `proc` in; SIGKILL what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # workers that outlived their parent
    except ProcessLookupError:
        pass
    proc.wait(10)


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) summed over the process and its descendants, in bytes. RSS counts pages shared
    between a parent and its forked workers once per process; PSS splits them."""
    rss = pss = 0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for p in procs:
        try:
            info = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss, pss


def tree_cpu(pids: list[int]) -> float:
    """CPU-seconds (user + system) used so far by these processes and their descendants."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
    return total


@dataclass
class SaltFleet:
    """A salt-master and `n` salt-minions under `root`."""

    bin: Path
    root: Path
    n: int
    master: subprocess.Popen[bytes] | None = None
    minions: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def master_conf(self) -> Path:
        return self.root / "master-conf"

    @property
    def accepted_dir(self) -> Path:
        return self.root / "master-root" / "etc" / "salt" / "pki" / "master" / "minions"

    def minion_id(self, i: int) -> str:
        return f"minion-{i:03d}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        publish, ret = free_port(), free_port()
        self.master_conf.mkdir(exist_ok=True)
        (self.master_conf / "master").write_text(
            f"root_dir: {self.root / 'master-root'}\ninterface: 127.0.0.1\npublish_port: {publish}\n"
            f"ret_port: {ret}\nauto_accept: True\nuser: root\n")
        self.master = self._spawn("salt-master", self.master_conf, self.root / "master.log")
        time.sleep(3.0)  # the master's ports open a few seconds after its start
        for start in range(0, self.n, WAVE):
            ids = list(range(start, min(start + WAVE, self.n)))
            for i in ids:
                conf = self.root / self.minion_id(i)
                conf.mkdir(exist_ok=True)
                (conf / "minion").write_text(
                    f"id: {self.minion_id(i)}\nmaster: 127.0.0.1\nmaster_port: {ret}\npublish_port: {publish}\n"
                    f"root_dir: {conf / 'root'}\nuser: root\n")
                self.minions.append(self._spawn("salt-minion", conf, conf / "minion.out"))
            started = ids[-1] + 1
            self._wait(lambda: self._accepted() >= started, 120, f"{started} minion keys accepted")  # noqa: B023
        self._wait(lambda: self._pinged() >= self.n, 300, f"all {self.n} minions answering test.ping")

    def _spawn(self, program: str, conf: Path, log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            return subprocess.Popen([str(self.bin / program), "-c", str(conf), "-l", "warning"], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def _accepted(self) -> int:
        if self.master is not None and self.master.poll() is not None:
            raise RuntimeError(f"salt-master exited with {self.master.returncode}; see {self.root / 'master.log'}")
        return len(os.listdir(self.accepted_dir)) if self.accepted_dir.exists() else 0

    def _pinged(self) -> int:
        out = subprocess.run([str(self.bin / "salt"), "-c", str(self.master_conf), "-t", "10", "*", "test.ping",
                              "--out", "txt"], capture_output=True, text=True)
        return sum(1 for line in out.stdout.splitlines() if line.endswith(": True"))

    @staticmethod
    def _wait(ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Salt: no {what} within {timeout:.0f} s")
            time.sleep(0.5)

    def command(self, batch: str | None) -> list[str]:
        """What the operator types (output as one `id: result` line per minion)."""
        cmd = [str(self.bin / "salt"), "-c", str(self.master_conf), "*"]
        if batch:
            cmd += ["-b", batch]
        return [*cmd, "cmd.run", "echo ok", "--out", "txt"]

    def answered(self, stdout: str) -> int:
        """Minions whose result line says `ok`."""
        ids = {self.minion_id(i) for i in range(self.n)}
        return len({line.split(":", 1)[0] for line in stdout.splitlines()
                    if line.endswith(": ok") and line.split(":", 1)[0] in ids})

    def minion_memory(self) -> list[tuple[int, int]]:
        return [tree_memory(m.pid) for m in self.minions if m.poll() is None]

    def master_memory(self) -> tuple[int, int]:
        assert self.master is not None
        return tree_memory(self.master.pid)

    def stop(self) -> None:
        for m in self.minions:
            if m.poll() is None:
                os.killpg(m.pid, signal.SIGTERM)
        for m in self.minions:
            stop_group(m)
        if self.master is not None:
            stop_group(self.master)
