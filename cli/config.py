"""The CLI's config file: named contexts, one of them current, as kubectl's kubeconfig.

Where it lives: `$CONVOY_CONFIG` if set, else `$XDG_CONFIG_HOME/convoy/config.toml`, else
`~/.config/convoy/config.toml`. What it holds (every key of a context is optional):

    current = "prod"

    [contexts.prod]
    server = "convoy.example.com:7443"        # the gRPC address, as --server
    rest = "https://convoy.example.com:7080"  # the dashboard and REST URL (for people and scripts)
    ca = "/etc/convoy/ca.pem"                 # as --ca
    ca_fingerprint = "sha256:..."             # as --ca-fingerprint
    insecure = false                          # as --insecure
    token_file = "/home/me/.config/convoy/prod.token"   # the API token; the file must be 0600
    client = "6f1c..."                        # the default --client

The token itself never goes in this file: only the path of a file that holds it, which the CLI
refuses to read unless only its owner can (as ssh refuses a loose private key).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from common.exits import CliError

EXIT_USAGE, EXIT_AUTH, EXIT_NOT_FOUND = 2, 3, 4


@dataclass(frozen=True)
class Context:
    """Connection settings under one name; an unset field falls through to the default."""

    server: str = ""
    """The coordinator's gRPC address, host:port."""
    rest: str = ""
    """The coordinator's HTTP URL (dashboard, REST under /v2); the CLI itself speaks gRPC."""
    ca: str = ""
    """An absolute path to the coordinator's CA file (PEM)."""
    ca_fingerprint: str = ""
    """The CA certificate's sha256:… fingerprint, when no CA file is kept."""
    insecure: bool = False
    """Plaintext, for a coordinator started with --insecure on loopback."""
    token_file: str = ""
    """An absolute path to a file holding the API token; readable by its owner only."""
    client: str = ""
    """The client id commands use when --client is not given."""

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", False)}


KEYS = tuple(f.name for f in fields(Context))


@dataclass(frozen=True)
class Config:
    """The whole file: the contexts by name and the current one's name."""

    contexts: dict[str, Context] = field(default_factory=dict)
    current: str = ""


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def check_name(name: str) -> None:
    """A context's name is also a file name (its token file): letters, digits, '.', '_', '-'."""
    if not _NAME.fullmatch(name):
        raise CliError(f"bad context name {name!r}: use letters, digits, '.', '_' and '-' "
                       "(at most 63, starting with a letter or digit)", EXIT_USAGE)


def config_path() -> Path:
    override = os.environ.get("CONVOY_CONFIG")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "convoy" / "config.toml"


def load(path: Path | None = None) -> Config:
    """The config file parsed and checked; a missing file is an empty config."""
    import tomllib

    path = path or config_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise CliError(f"cannot read the config file {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"the config file {path} is not valid TOML: {exc}", EXIT_USAGE) from None
    return _parse(raw, path)


def _parse(raw: dict[str, Any], path: Path) -> Config:
    unknown = set(raw) - {"current", "contexts"}
    if unknown:
        raise CliError(f"{path}: unknown key {sorted(unknown)[0]!r} (expected current, contexts)", EXIT_USAGE)
    current = raw.get("current", "")
    tables = raw.get("contexts", {})
    if not isinstance(current, str) or not isinstance(tables, dict):
        raise CliError(f"{path}: current must be a string and contexts a table", EXIT_USAGE)
    contexts = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise CliError(f"{path}: contexts.{name} must be a table", EXIT_USAGE)
        for key, value in table.items():
            if key not in KEYS:
                raise CliError(f"{path}: contexts.{name}: unknown key {key!r} (expected {', '.join(KEYS)})",
                               EXIT_USAGE)
            want = bool if key == "insecure" else str
            if not isinstance(value, want):
                raise CliError(f"{path}: contexts.{name}.{key} must be a {want.__name__}", EXIT_USAGE)
        contexts[name] = Context(**table)
    return Config(contexts=contexts, current=current)


def save(config: Config, path: Path | None = None) -> Path:
    """Write the whole file at once (a temporary file renamed over it), readable by its owner only."""
    import tempfile

    import tomli_w

    path = path or config_path()
    doc: dict[str, Any] = {}
    if config.current:
        doc["current"] = config.current
    doc["contexts"] = {name: ctx.public() for name, ctx in sorted(config.contexts.items())}
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config.", suffix=".toml")
    try:
        with os.fdopen(fd, "wb") as f:
            tomli_w.dump(doc, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def selected(name: str | None = None) -> tuple[str, Context]:
    """The context to use: `name` (--context or CONVOY_CONTEXT), else the file's current one,
    else none (an empty context: everything falls through to the defaults)."""
    name = name or os.environ.get("CONVOY_CONTEXT") or None
    config = load()
    if name is None:
        name = config.current
        if not name:
            return "", Context()
        if name not in config.contexts:
            raise CliError(f"{config_path()}: the current context {name!r} is not defined "
                           f"(convoy context use NAME)", EXIT_USAGE)
    return name, context_named(config, name)


def context_named(config: Config, name: str) -> Context:
    if name not in config.contexts:
        import difflib

        close = difflib.get_close_matches(name, list(config.contexts), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(config.contexts)) or 'none'})"
        raise CliError(f"no context named {name!r} in {config_path()}{hint}", EXIT_NOT_FOUND)
    return config.contexts[name]


def with_fields(ctx: Context, **values: Any) -> Context:
    """`ctx` with the given fields replaced (None: leave as is)."""
    return replace(ctx, **{k: v for k, v in values.items() if v is not None})


def read_token_file(path: str) -> str:
    """The API token in `path`, refused unless the file is a regular file only its owner can read
    or write: a token readable by others is a token anyone on the machine can use."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise CliError(f"cannot read the token file {path}: {exc.strerror or exc}", EXIT_AUTH) from None
    if not stat.S_ISREG(st.st_mode):
        raise CliError(f"the token file {path} is not a regular file", EXIT_AUTH)
    loose = stat.S_IMODE(st.st_mode) & 0o077
    if loose:
        raise CliError(f"the token file {path} is accessible by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                       f"refusing to use it: chmod 600 {path}", EXIT_AUTH)
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read the token file {path}: {exc}", EXIT_AUTH) from None
    if not token or len(token.split()) != 1:
        raise CliError(f"the token file {path} must hold one API token on one line", EXIT_AUTH)
    return token


def write_token_file(path: Path, token: str) -> None:
    """Write `token` to `path`, created 0600 (never briefly readable by others)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
