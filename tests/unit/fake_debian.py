"""A fake Debian package system for installer tests: small shell scripts named `dpkg-query`,
`dpkg`, `dpkg-deb`, `apt-get` and `apt-cache`, first on PATH, sharing one state directory.

The state (`$FAKE_DEBIAN`): `installed/<name>` holds the installed version; `available/<name>`
the versions the sources offer, one a line (the last is the candidate); `depends/<name>` lines
`dependency version`, installed with it when absent; `rdepends/<name>` names removed with it;
`locked` a count of dpkg runs that fail as if another dpkg held the lock; `log` one line per
command run (argv, tab-separated, apt's `-o` options left out). A fake .deb is a text file of
`Package: …` and `Version: …` lines. Only the outside world is faked: the installers run the same
argv as on a real host. Shell, not Python, so a command costs a millisecond even on a busy box.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

_PRELUDE = r'''#!/bin/sh
D="$FAKE_DEBIAN"
TAB=$(printf '\t')
args=""
skip=0
for a do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    if [ "$a" = "-o" ]; then skip=1; continue; fi
    args="$args$TAB$a"
done
printf '%s%s\n' "${0##*/}" "$args" >> "$D/log"
set -f
IFS=$TAB
set -- ${args#"$TAB"}
unset IFS
set +f
read_deb() {
    Package=; Version=
    while IFS= read -r line; do
        case $line in
            "Package: "*) Package=${line#Package: } ;;
            "Version: "*) Version=${line#Version: } ;;
        esac
    done < "$1"
}
'''

SCRIPTS = {
    "dpkg-query": r'''
for f in "$D"/installed/*; do
    [ -e "$f" ] || continue
    read -r v < "$f"
    printf '%s\t%s\tii \n' "${f##*/}" "$v"
done
''',
    "apt-cache": r'''
[ "$1" = madison ] || exit 64
if [ -f "$D/available/$2" ]; then
    while read -r v; do
        printf '%10s | %s | http://deb.example/debian bookworm/main amd64 Packages\n' "$2" "$v"
    done < "$D/available/$2"
fi
''',
    "dpkg-deb": r'''
[ "$1" = -f ] || exit 64
read_deb "$2" 2>/dev/null
if [ -z "$Package" ]; then echo "dpkg-deb: error: not a Debian format archive"; exit 2; fi
shift 2
for field do
    case $field in
        Package) echo "Package: $Package" ;;
        Version) echo "Version: $Version" ;;
    esac
done
''',
    "dpkg": r'''
if [ -s "$D/locked" ]; then
    read -r n < "$D/locked"
    if [ "$n" -gt 0 ]; then
        echo $((n - 1)) > "$D/locked"
        echo "dpkg: error: dpkg frontend lock was locked by another process with pid 4242"
        exit 2
    fi
fi
case $1 in
    -i) read_deb "$2"; echo "$Version" > "$D/installed/$Package" ;;
    -r) rm -f "$D/installed/$2" ;;
esac
''',
    "apt-get": r'''
if [ "$1" = update ]; then echo "Hit:1 http://deb.example/debian bookworm InRelease"; exit 0; fi
[ "$1" = install ] || exit 64
shift
inst="$D/.inst.$$"; rm_="$D/.rm.$$"; deps="$D/.deps.$$"
trap 'rm -f "$inst" "$rm_" "$deps"' EXIT
: > "$inst"; : > "$rm_"
sim=0; only=0
for a do
    case $a in
        -s) sim=1 ;;
        --only-upgrade) only=1 ;;
        /*) read_deb "$a"; echo "$Package $Version" >> "$inst" ;;
        -*) ;;
        *-) n=${a%-}; echo "$n" >> "$rm_"; [ -f "$D/rdepends/$n" ] && cat "$D/rdepends/$n" >> "$rm_" ;;
        *=*)
            n=${a%%=*}; v=${a#*=}
            if ! grep -qxF -- "$v" "$D/available/$n" 2>/dev/null; then
                echo "E: Version '$v' for '$n' was not found"; exit 100
            fi
            echo "$n $v" >> "$inst" ;;
        *)
            if [ "$only" = 1 ] && [ ! -f "$D/installed/$a" ]; then
                echo "Skipping $a, it is not installed and only upgrades are requested."; continue
            fi
            echo "$a $(tail -n 1 "$D/available/$a")" >> "$inst" ;;
    esac
done
while read -r n v; do
    [ -f "$D/depends/$n" ] || continue
    while read -r dn dv; do [ -f "$D/installed/$dn" ] || echo "$dn $dv"; done < "$D/depends/$n"
done < "$inst" > "$deps"
cat "$deps" >> "$inst"
while read -r n v; do
    old=; [ -f "$D/installed/$n" ] && read -r old < "$D/installed/$n"
    echo "Inst $n [$old] ($v bookworm)"
done < "$inst"
while read -r n; do
    [ -f "$D/installed/$n" ] || continue
    read -r old < "$D/installed/$n"
    echo "Remv $n [$old]"
done < "$rm_"
[ "$sim" = 1 ] && exit 0
while read -r n v; do echo "$v" > "$D/installed/$n"; done < "$inst"
while read -r n; do rm -f "$D/installed/$n"; done < "$rm_"
''',
}


class FakeDebian:
    """The fake package system; `set`, `installed`, `available` and `log` read and write its state."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for name, body in SCRIPTS.items():
            path = self.bin / name
            path.write_text(_PRELUDE + body)
            path.chmod(path.stat().st_mode | stat.S_IXUSR)
        (root / "log").touch()
        self.set(installed={}, available={}, depends={}, rdepends={}, locked=0)

    def env(self) -> dict[str, str]:
        return {"FAKE_DEBIAN": str(self.root), "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}"}

    def set(self, **fields: Any) -> None:
        """Replace parts of the state: installed={name: version}, available={name: [versions]},
        depends={name: {dependency: version}}, rdepends={name: [names]}, locked=N."""
        for key, value in fields.items():
            if key == "locked":
                (self.root / "locked").write_text(f"{value}\n")
                continue
            directory = self.root / key
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            for name, item in value.items():
                if key == "installed":
                    lines = [item]
                elif key == "depends":
                    lines = [f"{dep} {version}" for dep, version in item.items()]
                else:
                    lines = list(item)
                (directory / name).write_text("".join(f"{line}\n" for line in lines))

    def _lines(self, key: str) -> dict[str, list[str]]:
        return {p.name: p.read_text().split("\n")[:-1] for p in sorted((self.root / key).iterdir())}

    @property
    def installed(self) -> dict[str, str]:
        return {name: lines[0] for name, lines in self._lines("installed").items()}

    @property
    def available(self) -> dict[str, list[str]]:
        return self._lines("available")

    @property
    def log(self) -> list[list[str]]:
        return [line.split("\t") for line in (self.root / "log").read_text().splitlines()]

    def changes(self) -> list[list[str]]:
        """The commands that could change something: no queries, no simulations."""
        return [c for c in self.log if c[0] in ("dpkg", "apt-get") and "-s" not in c and c[1:2] != ["update"]]

    def deb(self, path: Path, package: str, version: str) -> Path:
        path.write_text(f"Package: {package}\nVersion: {version}\n")
        return path
