"""Verified fixes as a patch `git apply` accepts, and written into the course with --write
(only the files a fix names, and only when they still hold the text the fix was made from)."""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from nbguard.errors import NbguardError
from nbguard.model import FileFix

_NO_NEWLINE = "\\ No newline at end of file\n"


def repository_prefix(course: Path) -> str:
    """The course's folder relative to the top of the git work tree holding it ("" when the
    course is the top, or in no repository): `git apply` reads paths from the top."""
    course = course.resolve()
    for folder in (course, *course.parents):
        if (folder / ".git").exists():
            relative = course.relative_to(folder).as_posix()
            return "" if relative == "." else relative + "/"
    return ""


def git_patch(files: Sequence[FileFix], prefix: str = "") -> str:
    """One `diff --git` section per file, paths under `prefix`; the unchanged lines byte for
    byte, so the patch applies to the course as it was read."""
    parts: list[str] = []
    for file in files:
        path = prefix + PurePosixPath(file.path).as_posix()
        lines = difflib.unified_diff(
            file.before.splitlines(keepends=True),
            file.after.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
            n=3,
        )
        body = []
        for line in lines:
            if line.endswith("\n"):
                body.append(line)
            else:
                # The file's last line without a newline: said as git says it.
                body += [line + "\n", _NO_NEWLINE]
        if body:
            parts.append(f"diff --git a/{path} b/{path}\n")
            # unified_diff puts a tab-less "--- a/x" header; git accepts it as is.
            parts += body
    return "".join(parts)


def write_patch(text: str, target: Path) -> None:
    """`text` to `target`, replaced at once (a half-written patch never applies), readable
    as any new file is (mkstemp alone would make it private)."""
    umask = os.umask(0)
    os.umask(umask)
    _replace(target, text.encode("utf-8"), 0o666 & ~umask)


def apply_fixes(course: Path, files: Sequence[FileFix]) -> list[str]:
    """Each fix's new text written into the course; a file that changed since it was read is
    left alone. Returns one line per file, saying what was done."""
    said: list[str] = []
    for file in files:
        target = course / file.path
        try:
            current = target.read_bytes()
        except OSError as exc:
            said.append(f"not written: {file.path} ({exc.strerror})")
            continue
        if current != file.before.encode("utf-8"):
            said.append(f"not written: {file.path} changed since nbguard read it")
            continue
        try:
            _replace(target, file.after.encode("utf-8"), target.stat().st_mode)
        except OSError as exc:
            said.append(f"not written: {file.path} ({exc.strerror})")
            continue
        said.append(f"wrote {file.path}")
    return said


def _replace(target: Path, data: bytes, mode: int) -> None:
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    except OSError as exc:
        raise NbguardError(f"cannot write {target}: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        Path(temporary).chmod(mode & 0o7777)
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
