"""The script installer with real subprocesses: exit codes, context, parameters, timeouts, output."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.installers import InstallError, JobContext, script
from agent.state import StateDir


def ctx(tmp_path: Path, body: str, interpreter: str = "sh", parameters: dict[str, Any] | None = None,
        timeout: float = 30) -> JobContext:
    return JobContext(job_id="job-1", deployment_id="dep-1", device_id="dev-1", attempt=2,
                      payload={"interpreter": interpreter, "body": body, "parameters": parameters or {}},
                      state=StateDir(tmp_path / "state"), timeout_seconds=timeout)


def test_exit_zero_is_success_and_output_is_captured(tmp_path: Path) -> None:
    out = script.run(ctx(tmp_path, "echo hello; echo oops >&2"))
    assert out.success and out.exit_code == 0 and out.reason == ""
    assert "hello" in out.output and "oops" in out.output


def test_non_zero_exit_fails_with_the_code(tmp_path: Path) -> None:
    out = script.run(ctx(tmp_path, "echo partial; exit 3"))
    assert not out.success and out.exit_code == 3 and out.reason == "exit code 3" and "partial" in out.output


@pytest.mark.parametrize("interpreter,body", [
    ("sh", 'echo "$CONVOY_DEVICE_ID $CONVOY_DEPLOYMENT_ID $CONVOY_JOB_ID $CONVOY_ATTEMPT"'),
    ("bash", 'echo "${CONVOY_DEVICE_ID} ${CONVOY_DEPLOYMENT_ID} ${CONVOY_JOB_ID} ${CONVOY_ATTEMPT}"'),
    ("python", "import os\nprint(*(os.environ[k] for k in ('CONVOY_DEVICE_ID', 'CONVOY_DEPLOYMENT_ID', 'CONVOY_JOB_ID', 'CONVOY_ATTEMPT')))"),
])
def test_context_variables_in_each_interpreter(tmp_path: Path, interpreter: str, body: str) -> None:
    out = script.run(ctx(tmp_path, body, interpreter))
    assert out.success, out
    assert out.output.strip() == "dev-1 dep-1 job-1 2"


def test_parameters_with_shell_metacharacters_are_not_interpreted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    nasty = f"$(touch {marker}); `touch {marker}` && touch {marker} | ; '\" \n*"
    env_out = tmp_path / "env.out"
    body = f'printf "%s" "$CONVOY_PARAM_TARGET_HOST" > {env_out}; cat "$CONVOY_PARAMS_FILE"'
    out = script.run(ctx(tmp_path, body, parameters={"target-host": nasty, "count": 3.0, "on": True}))
    assert out.success, out
    assert not marker.exists()
    assert env_out.read_text() == nasty
    assert json.loads(out.output) == {"target-host": nasty, "count": 3.0, "on": True}


def test_parameter_env_names_and_scalar_rendering() -> None:
    env = script.param_env({"target-host": "a", "count": 3.0, "ratio": 0.5, "on": True, "x.y": None})
    assert env == {"CONVOY_PARAM_TARGET_HOST": "a", "CONVOY_PARAM_COUNT": "3", "CONVOY_PARAM_RATIO": "0.5",
                   "CONVOY_PARAM_ON": "true", "CONVOY_PARAM_X_Y": ""}


def test_parameter_value_reaches_a_python_script_verbatim(tmp_path: Path) -> None:
    body = "import os, sys\nsys.stdout.write(os.environ['CONVOY_PARAM_MSG'])"
    out = script.run(ctx(tmp_path, body, "python", parameters={"msg": "; rm -rf / #"}))
    assert out.success and out.output == "; rm -rf / #"


def test_timeout_kills_the_whole_process_group_including_a_grandchild(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    body = f"sh -c 'echo $$ > {pidfile}; sleep 300' &\nsleep 300\n"
    started = time.monotonic()
    out = script.run(ctx(tmp_path, body, timeout=1))
    assert time.monotonic() - started < 10
    assert not out.success and out.exit_code is None and out.reason == "timed out after 1s"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"grandchild {pid} survived the timeout"
        time.sleep(0.05)


def test_output_is_bounded_to_the_last_64_kib(tmp_path: Path) -> None:
    body = "i=0; while [ $i -lt 4000 ]; do echo line-$i-padding-padding-padding-padding; i=$((i+1)); done; echo LAST"
    out = script.run(ctx(tmp_path, body))
    assert out.success
    assert len(out.output.encode()) <= 64 * 1024 and out.output.endswith("LAST\n")
    assert "line-0-" not in out.output


def test_a_background_child_holding_stdout_does_not_hang_the_job(tmp_path: Path) -> None:
    started = time.monotonic()
    out = script.run(ctx(tmp_path, "sleep 30 &\necho done"))
    assert out.success and "done" in out.output
    assert time.monotonic() - started < 10


def test_script_file_is_removed_afterwards_and_runs_in_its_job_dir(tmp_path: Path) -> None:
    out = script.run(ctx(tmp_path, 'pwd; ls'))
    assert out.success and "script.sh" in out.output and "params.json" in out.output
    assert not (tmp_path / "state" / "work" / "jobs" / "job-1").exists()


def test_unknown_or_missing_interpreter(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="unknown interpreter 'cmd'"):
        script.run(ctx(tmp_path, "dir", "cmd"))
    with pytest.raises(InstallError, match="'body' is missing"):
        script.run(ctx(tmp_path, ""))
    if not any(os.path.exists(os.path.join(p, "pwsh")) for p in os.environ.get("PATH", "").split(os.pathsep)):
        with pytest.raises(InstallError, match="powershell is not available"):
            script.run(ctx(tmp_path, "Write-Output hi", "powershell"))
