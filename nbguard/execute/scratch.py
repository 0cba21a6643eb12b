"""The scratch copy of the course a notebook runs in, so the course tree is only read."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
from pathlib import Path

from nbguard.errors import NbguardError


def copy_course(course_root: Path, scratch: Path, ignore: tuple[str, ...], workdir: Path) -> None:
    """Copy the course into `scratch`, leaving out caches, VCS data and virtual envs."""

    def ignored(directory: str, names: list[str]) -> set[str]:
        skip = {name for name in names if any(fnmatch.fnmatch(name, p) for p in ignore)}
        for name in set(names) - skip:
            path = Path(directory, name)
            if path.is_dir() and (
                (path / "pyvenv.cfg").is_file()
                # nbguard's own work tree inside the course would copy into itself forever.
                or workdir == path
                or path in workdir.parents
            ):
                skip.add(name)
        return skip

    remove_tree(scratch)
    try:
        # Symlinks are followed: a notebook writing through a copied link would reach the
        # original files.
        shutil.copytree(course_root, scratch, ignore=ignored, ignore_dangling_symlinks=True)
    except (OSError, shutil.Error) as exc:
        remove_tree(scratch)
        raise NbguardError(
            f"cannot copy the course {course_root} into the scratch directory {scratch}: {exc}"
        ) from exc


def remove_tree(path: Path) -> None:
    """Best effort: a notebook may have left read-only folders behind."""
    if not path.exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        for folder, _dirs, _files in os.walk(path):
            with contextlib.suppress(OSError):
                Path(folder).chmod(0o700)
        shutil.rmtree(path, ignore_errors=True)
