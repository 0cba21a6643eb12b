"""The scratch copy of the course a notebook runs in, so the course tree is only read."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import threading
from pathlib import Path

from nbguard.errors import NbguardError
from nbguard.execute.kernels import copying
from nbguard.execute.options import size_text

# A course is notebooks, code and a little data; more than this is a mistake (a dataset or a
# build folder not excluded), and a copy per run of it would fill the disk.
MAX_COPY = 2 * 1024**3


class _TooLarge(Exception):
    pass


def copy_course(
    course_root: Path,
    scratch: Path,
    ignore: tuple[str, ...],
    workdir: Path,
    max_bytes: int | None = MAX_COPY,
) -> None:
    """Copy the course into `scratch`, leaving out caches, VCS data and virtual envs.

    Symbolic links are copied as links, never followed, so a link cycle (`ln -s . a`) costs
    one entry. A link into the course points at the same place in the copy (a notebook
    writing through it changes the copy); a link out of the course keeps its target, which
    the kernel's sandbox holds read-only. Stops with a one-line error past `max_bytes`, and
    at once when nbguard is interrupted (kill_all_kernels).
    """
    remove_tree(scratch)
    real_root = Path(os.path.realpath(course_root))
    workdir_real = Path(os.path.realpath(workdir))
    with copying() as stop:
        try:
            _Copier(real_root, ignore, workdir_real, max_bytes, stop).copy_dir(real_root, scratch)
        except _TooLarge:
            remove_tree(scratch)
            assert max_bytes is not None
            raise NbguardError(
                f"the course {course_root} holds more than {size_text(max_bytes)} of files, "
                "and nbguard copies it for every run: keep large data and build folders "
                "outside the course folder"
            ) from None
        except KeyboardInterrupt:
            remove_tree(scratch)
            raise
        except OSError as exc:
            remove_tree(scratch)
            raise NbguardError(
                f"cannot copy the course {course_root} into the scratch directory {scratch}: {exc}"
            ) from exc


class _Copier:
    def __init__(
        self,
        root: Path,
        ignore: tuple[str, ...],
        workdir: Path,
        max_bytes: int | None,
        stop: threading.Event,
    ) -> None:
        self.root = root
        self.ignore = ignore
        self.workdir = workdir
        self.left = max_bytes
        self.stop = stop

    def copy_dir(self, source: Path, target: Path) -> None:
        target.mkdir(parents=True)
        with os.scandir(source) as entries:
            listed = sorted(entries, key=lambda entry: entry.name)
        for entry in listed:
            if self.stop.is_set():
                raise KeyboardInterrupt
            if any(fnmatch.fnmatch(entry.name, pattern) for pattern in self.ignore):
                continue
            path, copy = Path(entry.path), target / entry.name
            if entry.is_symlink():
                copy.symlink_to(self._link_target(path))
            elif entry.is_dir(follow_symlinks=False):
                # nbguard's own work tree inside the course would copy into itself forever.
                if (path / "pyvenv.cfg").is_file() or path == self.workdir:
                    continue
                if path in self.workdir.parents:
                    continue
                self.copy_dir(path, copy)
            elif entry.is_file(follow_symlinks=False):
                self._charge(entry.stat(follow_symlinks=False).st_size)
                shutil.copy2(path, copy, follow_symlinks=False)
            # Sockets, fifos and devices are no course material: left out.

    def _charge(self, size: int) -> None:
        if self.left is None:
            return
        self.left -= size
        if self.left < 0:
            raise _TooLarge

    def _link_target(self, link: Path) -> str:
        text = str(link.readlink())
        resolved = os.path.realpath(link)
        inside = resolved == str(self.root) or resolved.startswith(str(self.root) + os.sep)
        if inside:
            # The same place, relative, so it lands in the copy.
            return os.path.relpath(resolved, link.parent)
        if Path(resolved).exists():
            return resolved  # outside the course: read where it is, never copied
        return text  # dangling: reaches nothing here either


def remove_tree(path: Path) -> None:
    """Best effort: a notebook may have left read-only folders behind."""
    if not path.exists() and not path.is_symlink():
        return
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        for folder, _dirs, _files in os.walk(path):
            with contextlib.suppress(OSError):
                Path(folder).chmod(0o700)
        shutil.rmtree(path, ignore_errors=True)
