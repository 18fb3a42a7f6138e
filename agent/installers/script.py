"""The script installer: run a script body with sh, bash, python or powershell.

The body is written to a file in the job's work directory and run as `[interpreter, file]`:
parameters never become part of a command line or a shell string. They reach the script as
environment variables `CONVOY_PARAM_<NAME>` (NAME upper-cased, anything but letters, digits
and `_` turned into `_`) and, with their original names and JSON types, in the JSON file named
by `CONVOY_PARAMS_FILE`. Exit code 0 is success.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from agent.installers.base import (
    InstallError,
    JobContext,
    Outcome,
    outcome_of,
    require,
    run_command,
    scalar_text,
)
from common import secret_params

_SUFFIX = {"sh": ".sh", "bash": ".sh", "python": ".py", "powershell": ".ps1"}


def interpreter_argv(interpreter: str) -> list[str]:
    """The interpreter's argv prefix on this device, or InstallError naming what is missing."""
    if interpreter == "sh":
        found = shutil.which("sh")
    elif interpreter == "bash":
        found = shutil.which("bash")
    elif interpreter == "python":
        found = shutil.which("python3") or sys.executable
    elif interpreter == "powershell":
        found = shutil.which("pwsh") or shutil.which("powershell")
        if found:
            return [found, "-NoProfile", "-NonInteractive", "-File"]
    else:
        raise InstallError(f"unknown interpreter {interpreter!r} (sh, bash, python, powershell)")
    if not found:
        raise InstallError(f"interpreter {interpreter} is not available on this device")
    return [found]


def param_env_name(name: str) -> str:
    return "CONVOY_PARAM_" + re.sub(r"[^A-Z0-9_]", "_", name.upper())


def param_env(parameters: Mapping[str, Any]) -> dict[str, str]:
    return {param_env_name(k): scalar_text(v) for k, v in parameters.items()}


def run(ctx: JobContext) -> Outcome:
    interpreter = ctx.payload.get("interpreter") or "sh"
    body = require(ctx.payload, "body", str)
    parameters = ctx.payload.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise InstallError("payload field 'parameters' must be an object")
    parameters = secret_params.plain(parameters)  # a secret parameter's value, delivered in the job
    if any(v is None for v in parameters.values()):
        raise InstallError("a secret parameter arrived without its value")
    argv = interpreter_argv(str(interpreter))
    job_dir = ctx.job_dir
    job_dir.mkdir(parents=True, exist_ok=True)
    try:
        script = job_dir / f"script{_SUFFIX.get(str(interpreter), '')}"
        script.write_text(body)
        script.chmod(0o700)
        params_file = job_dir / "params.json"
        params_file.write_text(json.dumps(dict(parameters)))
        params_file.chmod(0o600)
        env = {**ctx.env(), **param_env(parameters), "CONVOY_PARAMS_FILE": str(params_file)}
        result = run_command([*argv, str(script)], timeout=ctx.timeout, cwd=job_dir, env=env)
        return outcome_of(result, ctx.timeout)
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)
