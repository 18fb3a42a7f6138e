"""A fake Debian package system for installer tests: `dpkg-query`, `dpkg`, `dpkg-deb`, `apt-get`
and `apt-cache` executables first on PATH, sharing one JSON state file.

The state: what is installed (`installed`: name → version), what the sources offer
(`available`: name → [versions], the last is the candidate), dependencies (`depends`: name →
{dependency: version}, installed with it when absent), reverse dependencies (`rdepends`:
removing a name also removes these), `locked` (dpkg fails that many times as if another dpkg
held its lock), and `log`, every command that ran. A fake .deb file is JSON
`{"Package", "Version"}`. Only the outside world is faked: the installers run the same argv as on
a real host.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

_COMMON = r'''
import json, os, sys
PATH = os.environ["FAKE_DEBIAN_STATE"]
with open(PATH) as fh:
    st = json.load(fh)
def save():
    with open(PATH, "w") as fh:
        json.dump(st, fh)
def strip_options(args):
    out, i = [], 0
    while i < len(args):
        if args[i] == "-o":
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out
def read_deb(path):
    with open(path) as fh:
        return json.load(fh)
args = strip_options(sys.argv[1:])
st["log"].append([os.path.basename(sys.argv[0]), *args])
save()
'''

SCRIPTS = {
    "dpkg-query": r'''
for name, version in sorted(st["installed"].items()):
    print(f"{name}\t{version}\tii ")
''',
    "apt-cache": r'''
assert args[0] == "madison", args
for version in st["available"].get(args[1], []):
    print(f"{args[1]:>10} | {version} | http://deb.example/debian bookworm/main amd64 Packages")
''',
    "dpkg-deb": r'''
assert args[0] == "-f", args
try:
    deb = read_deb(args[1])
except (OSError, ValueError):
    print("dpkg-deb: error: not a Debian format archive")
    sys.exit(2)
for field in args[2:]:
    print(f"{field}: {deb[field]}")
''',
    "dpkg": r'''
if st.get("locked"):
    st["locked"] -= 1
    save()
    print("dpkg: error: dpkg frontend lock was locked by another process with pid 4242")
    sys.exit(2)
if args[0] == "-i":
    deb = read_deb(args[1])
    st["installed"][deb["Package"]] = deb["Version"]
elif args[0] == "-r":
    st["installed"].pop(args[1], None)
save()
''',
    "apt-get": r'''
if args[0] == "update":
    print("Hit:1 http://deb.example/debian bookworm InRelease")
    sys.exit(0)
assert args[0] == "install", args
simulate = "-s" in args
targets = [a for a in args[1:] if not a.startswith("-") or a.startswith("/")]
only_upgrade = "--only-upgrade" in args
installs, removals = {}, []
for t in targets:
    if t.startswith("/"):
        deb = read_deb(t)
        installs[deb["Package"]] = deb["Version"]
    elif t.endswith("-"):
        name = t[:-1]
        removals.append(name)
        removals.extend(st.get("rdepends", {}).get(name, []))
    elif "=" in t:
        name, version = t.split("=", 1)
        if version not in st["available"].get(name, []):
            print(f"E: Version '{version}' for '{name}' was not found")
            sys.exit(100)
        installs[name] = version
    else:
        if only_upgrade and t not in st["installed"]:
            print(f"Skipping {t}, it is not installed and only upgrades are requested.")
            continue
        installs[t] = st["available"][t][-1]
for name in list(installs):
    for dep, version in st.get("depends", {}).get(name, {}).items():
        if dep not in st["installed"]:
            installs[dep] = version
for name, version in installs.items():
    print(f"Inst {name} [{st['installed'].get(name, '')}] ({version} bookworm)")
for name in removals:
    if name in st["installed"]:
        print(f"Remv {name} [{st['installed'][name]}]")
if simulate:
    sys.exit(0)
st["installed"].update(installs)
for name in removals:
    st["installed"].pop(name, None)
save()
''',
}


class FakeDebian:
    """The fake package system; `installed`, `available` and `log` read and write its state."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.state_path = root / "debian.json"
        self.bin.mkdir(parents=True, exist_ok=True)
        for name, body in SCRIPTS.items():
            path = self.bin / name
            path.write_text(f"#!{sys.executable} -S\n{_COMMON}\n{body}")  # -S: no site, a quick start
            path.chmod(path.stat().st_mode | stat.S_IXUSR)
        self._write({"installed": {}, "available": {}, "depends": {}, "rdepends": {}, "log": []})

    def env(self) -> dict[str, str]:
        return {"FAKE_DEBIAN_STATE": str(self.state_path), "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}"}

    def _read(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state_path.read_text())
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(data))

    def set(self, **fields: Any) -> None:
        data = self._read()
        data.update(fields)
        self._write(data)

    @property
    def installed(self) -> dict[str, str]:
        return dict(self._read()["installed"])

    @property
    def available(self) -> dict[str, list[str]]:
        return dict(self._read()["available"])

    @property
    def log(self) -> list[list[str]]:
        return [list(x) for x in self._read()["log"]]

    def changes(self) -> list[list[str]]:
        """The commands that could change something: no queries, no simulations."""
        return [c for c in self.log if c[0] in ("dpkg", "apt-get") and "-s" not in c and c[1:2] != ["update"]]

    def deb(self, path: Path, package: str, version: str) -> Path:
        path.write_text(json.dumps({"Package": package, "Version": version}))
        return path
