"""CLI contexts as an operator uses them: the real `convoy` command against a real TLS coordinator,
with HOME and XDG_CONFIG_HOME in a temporary directory. Precedence: flag > variable > context."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ROOT, CoordinatorProcess, run_cli


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """The environment of a fresh operator account: nothing but HOME and XDG_CONFIG_HOME."""
    (tmp_path / "home").mkdir()
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


@pytest.fixture
def acme(tmp_path: Path, home: dict[str, str]) -> Iterator[tuple[CoordinatorProcess, dict[str, Any]]]:
    """A TLS coordinator bootstrapped with `--save-context acme`, the context pointed at its port."""
    coord = CoordinatorProcess(tmp_path / "coord")
    coord.data_dir.mkdir(parents=True)
    out = json.loads(run_cli("admin", "bootstrap", "--data-dir", str(coord.data_dir), "--client-name", "Acme",
                             "--save-context", "acme", "-o", "json", env=home).stdout)
    coord.token, coord.client_id = out["token"], out["client_id"]
    coord.start()
    run_cli("context", "set", "acme", "--server", coord.grpc_target, env=home)
    try:
        yield coord, out
    finally:
        coord.stop()


def cli(home: dict[str, str], *args: str, check: bool = True, **env: str) -> Any:
    return run_cli(*args, check=check, env={**home, **env})


def test_bootstrap_saves_a_current_context_that_every_command_uses(acme: tuple[CoordinatorProcess, dict[str, Any]],
                                                                   home: dict[str, str]) -> None:
    coord, out = acme
    config = Path(home["XDG_CONFIG_HOME"]) / "convoy" / "config.toml"
    token_file = Path(out["token_file"])
    assert out["config_file"] == str(config) and token_file.parent == config.parent
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and token_file.read_text().strip() == coord.token
    assert coord.token not in config.read_text()  # the config holds the token file's path, never the token
    current = json.loads(cli(home, "context", "current", "-o", "json").stdout)
    assert current == {"name": "acme", "server": coord.grpc_target, "ca": out["ca_file"],
                       "token_file": str(token_file), "client": coord.client_id}
    # no flag, no variable: server, CA and token all come from the context
    assert cli(home, "clients", "list", "-q").stdout.split() == [coord.client_id]
    enroll = json.loads(cli(home, "tokens", "create", "--expires-in", "1h", "-o", "json").stdout)
    assert enroll["token"].startswith("cvy_enr_") and "install_command" in enroll
    assert cli(home, "deployments", "list", "-o", "json").returncode == 0


def test_flag_beats_variable_beats_context(acme: tuple[CoordinatorProcess, dict[str, Any]],
                                           home: dict[str, str]) -> None:
    coord, out = acme
    away = cli(home, "clients", "list", check=False, CONVOY_SERVER="127.0.0.1:1")
    assert away.returncode == 6 and "127.0.0.1:1" in away.stderr
    assert cli(home, "clients", "list", "--server", coord.grpc_target, "-q", CONVOY_SERVER="127.0.0.1:1").stdout.split() \
        == [coord.client_id]
    wrong = cli(home, "clients", "list", check=False, CONVOY_TOKEN="cvy_api_wrong")
    assert wrong.returncode == 3
    assert cli(home, "clients", "list", "--token", coord.token, CONVOY_TOKEN="cvy_api_wrong").returncode == 0
    # trust: a variable replaces the context's CA; here a fingerprint that is not the coordinator's
    untrusted = cli(home, "clients", "list", check=False, CONVOY_CA_FINGERPRINT="sha256:" + "0" * 64)
    assert untrusted.returncode == 7, untrusted.stderr
    # --context and CONVOY_CONTEXT pick another context than the current one
    cli(home, "context", "set", "nowhere", "--server", "127.0.0.1:1", "--insecure", "--token-file", out["token_file"])
    assert json.loads(cli(home, "context", "list", "-o", "json").stdout)["total"] == 2
    assert cli(home, "clients", "list", "--context", "nowhere", check=False).returncode == 6
    assert cli(home, "clients", "list", check=False, CONVOY_CONTEXT="nowhere").returncode == 6
    assert cli(home, "clients", "list", "--context", "nowhere", "--server", coord.grpc_target, "--ca",
               coord.ca_file, "--token", coord.token).returncode == 0
    typo = cli(home, "clients", "list", "--context", "acmee", check=False)
    assert typo.returncode == 4 and "did you mean 'acme'?" in typo.stderr
    cli(home, "context", "use", "nowhere")
    assert cli(home, "context", "current").stdout.strip() == "nowhere"
    assert cli(home, "clients", "list", check=False).returncode == 6
    cli(home, "context", "delete", "nowhere")
    gone = cli(home, "context", "current", check=False)
    assert gone.returncode == 4 and "no current context" in gone.stderr
    cli(home, "context", "use", "acme")
    assert cli(home, "clients", "list").returncode == 0


def test_a_token_file_others_can_read_is_refused(acme: tuple[CoordinatorProcess, dict[str, Any]],
                                                 home: dict[str, str], tmp_path: Path) -> None:
    coord, out = acme
    token_file = Path(out["token_file"])
    token_file.chmod(0o644)
    refused = cli(home, "clients", "list", check=False)
    assert refused.returncode == 3 and f"chmod 600 {token_file}" in refused.stderr
    assert coord.token not in refused.stderr + refused.stdout and "Traceback" not in refused.stderr
    loose = tmp_path / "loose.token"
    loose.write_text(coord.token)
    loose.chmod(0o640)
    set_loose = cli(home, "context", "set", "acme", "--token-file", str(loose), check=False)
    assert set_loose.returncode == 3 and "chmod 600" in set_loose.stderr  # refused when set, too
    token_file.chmod(0o600)
    assert cli(home, "clients", "list").returncode == 0


def test_default_client_and_lists_across_clients(acme: tuple[CoordinatorProcess, dict[str, Any]],
                                                  home: dict[str, str]) -> None:
    coord, _ = acme
    other = cli(home, "clients", "create", "--name", "Branch", "-q").stdout.strip()
    both = {coord.client_id, other}
    # the context's client is the default --client: a create lands there without the flag
    cli(home, "context", "set", "acme", "--client", other)
    group = cli(home, "groups", "create", "--name", "web", "-q").stdout.strip()
    assert group in cli(home, "groups", "list", "--client", other, "-q").stdout.split()
    assert group not in cli(home, "groups", "list", "--client", coord.client_id, "-q").stdout.split()
    assert group not in cli(home, "groups", "list", "-q", CONVOY_CLIENT=coord.client_id).stdout.split()
    # with no default client (cleared, or --client ''), lists span every client of the token
    assert group in cli(home, "groups", "list", "--client", "", "-q").stdout.split()
    cli(home, "context", "set", "acme", "--client", "")
    assert "client" not in json.loads(cli(home, "context", "current", "-o", "json").stdout)
    cli(home, "tokens", "create", "--client", coord.client_id, "--expires-in", "1h")
    cli(home, "tokens", "create", "--client", other, "--expires-in", "1h")
    for area in ("devices", "tokens", "groups", "scripts", "artifacts", "deployments"):
        listed = cli(home, area, "list", "-o", "json", check=False)
        assert listed.returncode == 0, (area, listed.stderr)
        assert json.loads(listed.stdout)["total"] == len(json.loads(listed.stdout)["data"])
    tokens = json.loads(cli(home, "tokens", "list", "-o", "json").stdout)["data"]
    assert {t["client_id"] for t in tokens} == both
    assert group in cli(home, "groups", "list", "-q").stdout.split()
    # a create still needs to know which client, and says so
    unsure = cli(home, "groups", "create", "--name", "db", check=False)
    assert unsure.returncode == 2 and "client" in unsure.stderr.lower() and "Traceback" not in unsure.stderr


def test_where_the_config_file_lives_and_bad_files(home: dict[str, str], tmp_path: Path) -> None:
    # no XDG_CONFIG_HOME: ~/.config/convoy/config.toml
    no_xdg = {**home, "XDG_CONFIG_HOME": ""}
    cli(no_xdg, "context", "set", "lab", "--server", "127.0.0.1:7443", "--insecure")
    assert (Path(home["HOME"]) / ".config" / "convoy" / "config.toml").is_file()
    assert not Path(home["XDG_CONFIG_HOME"]).exists()
    # CONVOY_CONFIG names the file outright
    override = tmp_path / "elsewhere.toml"
    cli(home, "context", "set", "ci", "--server", "ci.example:7443", CONVOY_CONFIG=str(override))
    assert 'server = "ci.example:7443"' in override.read_text()
    assert cli(home, "context", "current", CONVOY_CONFIG=str(override)).stdout.strip() == "ci"
    assert stat.S_IMODE(os.stat(override).st_mode) == 0o600
    cli(home, "context", "set", "ci", "--ca", "ca.pem", CONVOY_CONFIG=str(override))  # run in ROOT
    assert f'ca = "{ROOT / "ca.pem"}"' in override.read_text()  # stored absolute
    for body, why in (("current = [", "not valid TOML"), ("colour = 1", "unknown key 'colour'"),
                      ("[contexts.x]\nserver = 7443", "contexts.x.server must be a str"),
                      ("[contexts.x]\ntoken = 'cvy_api_x'", "unknown key 'token'"),
                      ("current = 'gone'", "the current context 'gone' is not defined")):
        override.write_text(body)
        bad = cli(home, "clients", "list", check=False, CONVOY_CONFIG=str(override))
        assert bad.returncode == 2 and why in bad.stderr and "Traceback" not in bad.stderr, (body, bad.stderr)
    for name in ("../up", "", "a b"):
        bad = cli(home, "context", "set", name, "--server", "x:1", check=False)
        assert bad.returncode == 2 and "bad context name" in bad.stderr
    url = cli(home, "context", "set", "lab", "--server", "https://x:7443", check=False)
    assert url.returncode == 2 and "--rest" in url.stderr
