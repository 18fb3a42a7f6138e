"""The README's five-minute tour, run as a reader pastes it: the ```sh block, line by line, into
one bash at the top of the repository, every variable captured by the tour itself.

Only what a shared test machine forces is changed, textually: the fixed ports 7443 and 7080
become free ones (with CONVOY_GRPC_LISTEN/CONVOY_HTTP_LISTEN, which `serve` reads, so the serve
line itself is as printed) and /tmp/convoy-tour a fresh directory. Then: every line succeeded,
the rollout completed, and nothing is left behind (no file in the repository, no directory, no
process on the ports).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from tests.harness import ROOT

README = ROOT / "README.md"


def tour_block() -> str:
    text = README.read_text()
    return text.split("## A five-minute tour", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _untracked() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True,
                          cwd=ROOT, check=True).stdout


def test_the_readme_tour_runs_as_pasted(tmp_path: Path) -> None:
    grpc_port, http_port = _free_port(), _free_port()
    tour_dir = tmp_path / "convoy-tour"
    script = (tour_block().replace("/tmp/convoy-tour", str(tour_dir))
              .replace("7443", str(grpc_port)).replace("7080", str(http_port)))
    assert str(grpc_port) in script and str(tour_dir) in script
    before = _untracked()
    # A fresh shell: none of the test run's CONVOY_* settings, no context file of the user's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVOY_", "VIRTUAL_ENV"))}
    env.update({"CONVOY_GRPC_LISTEN": f"127.0.0.1:{grpc_port}", "CONVOY_HTTP_LISTEN": f"127.0.0.1:{http_port}",
                "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    (tmp_path / "home").mkdir()
    # -e: a line that fails stops the tour, as a reader would stop; -x: the transcript names it.
    shell = subprocess.Popen(["bash", "-e", "-x"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env, start_new_session=True)
    try:
        transcript, _ = shell.communicate(script, timeout=240)
    finally:
        if shell.poll() is None or shell.returncode != 0:
            try:
                os.killpg(shell.pid, signal.SIGKILL)  # whatever the tour started and did not stop
            except ProcessLookupError:
                pass
            shell.wait(10)
    assert shell.returncode == 0, transcript[-6000:]
    # -e: watch exited 0, i.e. the rollout completed (10 failed, 13 paused would have stopped it)
    assert "+ convoy deployments watch" in transcript and f"+ rm -rf {tour_dir}" in transcript
    assert "Traceback" not in transcript, transcript[-6000:]
    assert not tour_dir.exists()  # step 5 removed it
    assert _untracked() == before  # nothing left in the repository
    for port in (grpc_port, http_port):  # the coordinator is gone: its ports are free again
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT; a listener still refuses
            s.bind(("127.0.0.1", port))
