"""Safe extraction of tar.gz archives: nothing is written outside the destination, whatever the
Python version, because nothing here relies on `os.path.realpath` or on tarfile's filters.

`os.path.realpath` gives up quietly on paths longer than PATH_MAX and returns them half
resolved; CVE-2025-4517 builds such a path from nested symlinks, so a check based on it (ours
before, and the standard library's `data` filter on Python 3.11.7) says "inside" for a member
that the kernel then writes outside. So the rules are checked on the member list itself, and
on disk one component at a time with `os.lstat` (an error, such as ENAMETOOLONG, is a refusal):

1. Before anything is written: every name is relative, has no `..`, is at most 4,095 bytes,
   and is a file, directory, symlink or hard link (no devices or FIFOs). No member lies *under*
   a symlink member (a tree archived by tar never does), and no symlink shares its name with
   another member. A hard link must name a regular file that comes earlier in the archive.
2. Files, directories and hard links are extracted first. No symlink exists yet, so no write
   can pass through one; each parent is still checked with `os.lstat` to be a real directory.
3. Symlinks are created last, and then every one is resolved strictly, component by component
   on disk (following links, at most 40 hops, `..` never above the destination): any that
   leads outside, is absolute, or cannot be resolved is refused.

Refusal raises UnsafeArchive naming the member; members before it may already be on disk, so
extract into a fresh staging directory and discard it on failure (the software installer does).
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path, PurePosixPath

MAX_NAME = 4095
MAX_HOPS = 40


class UnsafeArchive(Exception):
    """The archive holds a member that would escape or subvert the destination."""


def _parts(name: str) -> list[str]:
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def _check_name(member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"archive member {name!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise UnsafeArchive(f"archive member {name!r} contains a '..' component")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
        raise UnsafeArchive(f"archive member {name[:60]!r}… has a name longer than {MAX_NAME} bytes")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise UnsafeArchive(f"archive member {name!r} is a device file or FIFO")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeArchive(f"archive member {name!r} has an unsupported type {member.type!r}")
    if member.issym() and (member.linkname.startswith("/") or PurePosixPath(member.linkname).is_absolute()):
        raise UnsafeArchive(f"archive member {name!r} is a symlink to an absolute path {member.linkname!r}")


def _plan(members: list[tarfile.TarInfo]) -> None:
    """Rule 1: everything that can be decided from the member list alone."""
    symlinks = {tuple(_parts(m.name)) for m in members if m.issym()}
    files_so_far: set[tuple[str, ...]] = set()
    seen: dict[tuple[str, ...], tarfile.TarInfo] = {}
    for member in members:
        _check_name(member)
        key = tuple(_parts(member.name))
        for i in range(1, len(key)):
            if key[:i] in symlinks:
                raise UnsafeArchive(f"archive member {member.name!r} lies under the symlink member "
                                    f"{'/'.join(key[:i])!r}")
        if key in seen and (member.issym() or seen[key].issym()):
            raise UnsafeArchive(f"archive member {member.name!r} is a symlink sharing its name with another member")
        seen[key] = member
        if member.islnk():
            link = member.linkname
            if (PurePosixPath(link).is_absolute() or ".." in link.replace("\\", "/").split("/")
                    or tuple(_parts(link)) not in files_so_far):
                raise UnsafeArchive(f"archive member {member.name!r} is a hard link escaping the destination, or "
                                    f"to something that is not an earlier regular file of the archive ({link!r})")
        if member.isfile():
            files_so_far.add(key)


def _real_dirs(root: str, parts: list[str], name: str) -> None:
    """Every existing prefix of `parts` is a real directory (not a symlink); the leaf, if it
    exists, is not a symlink. Checked with lstat, one component at a time."""
    path = root
    for i, part in enumerate(parts):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise UnsafeArchive(f"archive member {name!r} cannot be checked: {exc.strerror or exc}") from exc
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeArchive(f"archive member {name!r} would be written through a symlink")
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            raise UnsafeArchive(f"archive member {name!r} has a parent that is not a directory")


def resolves_inside(root: str, parts: list[str]) -> bool:
    """Whether `root/parts…` resolves, link by link on disk, to a place inside `root`.
    Components that do not exist are taken as they are (nothing below them can be a link)."""
    resolved: list[str] = []
    todo = list(reversed(parts))
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return False
            resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        except OSError:  # ENAMETOOLONG, ENOTDIR, ELOOP…: cannot prove it stays inside
            return False
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_HOPS:
                return False
            target = os.readlink(candidate)
            if target.startswith("/"):
                return False
            todo.extend(reversed(target.split("/")))
            continue
        resolved.append(part)
    return True


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract `archive` (tar, optionally gzip-compressed) into `dest`; returns member names in
    archive order. Raises UnsafeArchive (see the module docstring for the rules)."""
    dest.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest)  # the destination itself is ours; only members are untrusted
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise UnsafeArchive(f"{archive.name} is not a readable tar archive: {exc}") from exc
    with tar:
        try:
            members = [m for m in tar.getmembers() if m.name not in ("", ".", "./")]
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UnsafeArchive(f"{archive.name} is not a readable tar archive: {exc}") from exc
        _plan(members)
        for member in members:
            if member.issym():
                continue
            _real_dirs(root, _parts(member.name), member.name)
            clean = member.replace(name="/".join(_parts(member.name)), deep=False)
            if member.islnk():
                clean = clean.replace(linkname="/".join(_parts(member.linkname)), deep=False)
            clean.mode = (clean.mode & 0o755) | (0o700 if clean.isdir() else 0o600)  # no setuid/setgid/sticky
            clean.uid = clean.gid = os.getuid()
            clean.uname = clean.gname = ""
            # The standard library's `data` filter, where it exists, is a second fence only.
            fence = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            try:
                tar.extract(clean, root, set_attrs=True, numeric_owner=True, **fence)  # type: ignore[arg-type]
            except (tarfile.TarError, OSError) as exc:
                raise UnsafeArchive(f"archive member {member.name!r} could not be extracted: {exc}") from exc
    for member in members:
        if not member.issym():
            continue
        parts = _parts(member.name)
        _real_dirs(root, parts, member.name)
        path = os.path.join(root, *parts)
        if os.path.lexists(path):
            raise UnsafeArchive(f"archive member {member.name!r} is a symlink over an existing entry")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(member.linkname, path)
    for member in members:
        if member.issym() and not resolves_inside(root, _parts(member.name)):
            raise UnsafeArchive(f"archive member {member.name!r} is a symlink escaping the destination "
                                f"({member.linkname!r})")
    return [m.name for m in members]
