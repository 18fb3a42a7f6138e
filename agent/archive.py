"""Safe extraction of tar.gz archives.

Refused, naming the offending member: absolute paths, `..` components, symlinks and hard links
whose target leaves the destination, and device files or FIFOs. Members are checked one at a
time against what is already on disk (`os.path.realpath` follows links extracted earlier), so a
chain of individually harmless links cannot lead outside either. Extraction then goes through
the standard library's `data` filter as a second fence (it also drops setuid bits).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath


class UnsafeArchive(Exception):
    """The archive holds a member that would escape or subvert the destination."""


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _check(member: tarfile.TarInfo, root: str) -> None:
    name = member.name
    pure = PurePosixPath(name)
    if name.startswith(("/", "\\")) or pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"archive member {name!r} has an absolute path")
    if ".." in pure.parts or ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise UnsafeArchive(f"archive member {name!r} contains a '..' component")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise UnsafeArchive(f"archive member {name!r} is a device file or FIFO")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeArchive(f"archive member {name!r} has an unsupported type {member.type!r}")
    target = os.path.realpath(os.path.join(root, name))
    if not _inside(root, target):
        raise UnsafeArchive(f"archive member {name!r} would be written outside the destination")
    if member.issym():
        link = member.linkname
        if link.startswith("/") or PurePosixPath(link).is_absolute():
            raise UnsafeArchive(f"archive member {name!r} is a symlink to an absolute path {link!r}")
        resolved = os.path.realpath(os.path.join(os.path.dirname(os.path.join(root, name)), link))
        if not _inside(root, resolved):
            raise UnsafeArchive(f"archive member {name!r} is a symlink escaping the destination ({link!r})")
    if member.islnk():
        link = member.linkname
        resolved = os.path.realpath(os.path.join(root, link))
        if PurePosixPath(link).is_absolute() or ".." in PurePosixPath(link).parts or not _inside(root, resolved):
            raise UnsafeArchive(f"archive member {name!r} is a hard link escaping the destination ({link!r})")


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract `archive` (tar, optionally gzip-compressed) into `dest`; returns member names.

    Raises UnsafeArchive before writing the offending member; members before it may already
    be on disk, so extract into a fresh staging directory and discard it on failure.
    """
    dest.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest)
    names: list[str] = []
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise UnsafeArchive(f"{archive.name} is not a readable tar archive: {exc}") from exc
    with tar:
        for member in tar:
            if member.name in ("", ".", "./"):
                continue
            _check(member, root)
            try:
                tar.extract(member, root, filter="data")
            except tarfile.FilterError as exc:
                raise UnsafeArchive(f"archive member {member.name!r} refused: {exc}") from exc
            names.append(member.name)
    return names
