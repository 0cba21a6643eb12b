"""Whether a notebook's run in one env stands for its run in another, without executing it.

A run depends on its interpreter, on the course, and on the part of its env it used. The
kernel records that part (execute/_kernel_capture.py): the top-level entries of
site-packages it imported from, opened or listed, every top-level module name it looked up
(found or not, from the kernel's first import), and the env's other files it read. When
the other env has the same interpreter and holds the same files for every one of those
(by the hashes its RECORD files list, or by reading the files a RECORD does not list), the
notebook would run the same code on the same data there: its run is taken as that env's.

So a notebook that imports only what both envs share (the kernel machinery, the standard
library) runs once, not once per env; one that imports a package the upgrade moved runs
in both. Never taken: a run that started a process (what the child imports is not seen),
one that enumerated the installed distributions, one with no whole record, one whose
outcome may be the machine's (a timeout, a dead kernel).
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from nbguard import installed
from nbguard.execute.memo import file_sha256
from nbguard.model import EnvInfo, NotebookRun

# Outcomes that are the notebook's own answer, whose record is whole.
_OWN_OUTCOMES = frozenset({"ok", "error"})
_EXTENSIONS = (".so", ".pyd")
_LOCK = threading.Lock()
_VENV_KEYS = frozenset({"include-system-site-packages", "version", "version_info"})


def differs(run: NotebookRun, source: EnvInfo, target: EnvInfo) -> str | None:
    """Why `run` (made in `source`) cannot stand for the same notebook's run in `target`;
    None when it can."""
    if run.status not in _OWN_OUTCOMES or run.touched is None or run.reads is None:
        return "its run left no whole record of what it used"
    touched = run.touched
    if touched.anything is not None:
        return touched.anything
    if source.interpreter is None or target.interpreter is None:
        return "an env was not built"
    here, there = _Env.of(source), _Env.of(target)
    if here.python != there.python:
        return "the envs run different interpreters"
    if here.conda or there.conda:
        return "a conda env's libraries outside site-packages are not compared"
    if here.config != there.config:
        return "the envs' etc/ (Jupyter and IPython configuration) differs"
    entries = set(touched.entries) | here.startup | there.startup
    for name in touched.names:
        entries |= here.provides(name) | there.provides(name)
    for entry in sorted(entries):
        if here.entry(entry) != there.entry(entry):
            return f"{entry} differs"
    for path in touched.env_files:
        if here.file(path) != there.file(path):
            return f"{path} differs"
    return None


class _Env:
    """One env's files as `differs` compares them; read lazily, once per process."""

    def __init__(self, interpreter: Path) -> None:
        self.prefix = prefix = interpreter.parent.parent
        self.site = installed.site_packages(prefix)
        self.python = (os.path.realpath(interpreter), _venv_config(prefix))
        self._digests: dict[str, str] = {}

    @staticmethod
    def of(env: EnvInfo) -> _Env:
        assert env.interpreter is not None
        return _env(env.interpreter, env.fingerprint)

    @functools.cached_property
    def conda(self) -> bool:
        return (self.prefix / "conda-meta").is_dir()

    @functools.cached_property
    def config(self) -> str:
        """What the kernel reads of the env's etc/ as it starts (Jupyter's and IPython's
        configuration), before the capture records anything."""
        folder = self.prefix / "etc"
        if not folder.is_dir():
            return "none"
        digest = hashlib.sha256()
        for relative in _files(self.prefix, "etc"):
            digest.update(f"{relative}\0sha256:{file_sha256(self.prefix / relative)}\n".encode())
        return digest.hexdigest()

    @functools.cached_property
    def listing(self) -> tuple[str, ...]:
        if self.site is None:
            return ()
        try:
            return tuple(sorted(item.name for item in self.site.iterdir()))
        except OSError:
            return ()

    @functools.cached_property
    def startup(self) -> frozenset[str]:
        """What every kernel reads before its first import: the `.pth` files."""
        return frozenset(name for name in self.listing if name.endswith(".pth"))

    def provides(self, name: str) -> frozenset[str]:
        """The site-packages entries an import of top-level `name` may find."""
        return self.importable.get(name, frozenset())

    @functools.cached_property
    def importable(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        for entry in self.listing:
            name = _module_name(entry)
            if name is not None:
                found.setdefault(name, set()).add(entry)
        return {name: frozenset(entries) for name, entries in found.items()}

    def entry(self, entry: str) -> str:
        """What a top-level entry of site-packages holds: its files' paths and hashes."""
        with _LOCK:  # one thread reads an env's files; the others take its answer
            known = self._digests.get(entry)
            if known is None:
                known = self._digests[entry] = self._entry(entry)
        return known

    def _entry(self, entry: str) -> str:
        """The hashes the RECORD files list for the entry's files (the env was checked
        against the manifest of what was installed before its kernels started), or, for an
        entry no RECORD lists (a venv tool's own file), its files read."""
        if self.site is None:
            return "no site-packages"
        path = self.site / entry
        if not path.exists():
            return "absent"
        digest = hashlib.sha256()
        recorded = self.recorded.get(entry)
        if recorded is not None:
            for relative, hashed in sorted(recorded.items()):
                digest.update(f"{relative}\0{hashed}\n".encode())
            return digest.hexdigest()
        for relative in _files(self.site, entry):
            digest.update(f"{relative}\0sha256:{file_sha256(self.site / relative)}\n".encode())
        return digest.hexdigest()

    @functools.cached_property
    def recorded(self) -> dict[str, dict[str, str]]:
        """Top-level entry → each of its files' path → the hash its RECORD lists."""
        found: dict[str, dict[str, str]] = {}
        if self.site is None:
            return found
        for _, files in installed.records(self.prefix):
            for path, hashed in files:
                if hashed and not path.startswith("../"):
                    found.setdefault(path.split("/", 1)[0], {})[path] = hashed
        return found

    def file(self, relative: str) -> str:
        path = self.prefix / relative
        try:
            if path.is_file():
                return "sha256:" + file_sha256(path)
            return "folder" if path.is_dir() else "absent"
        except OSError:
            return "unreadable"


@functools.lru_cache(maxsize=64)
def _env(interpreter: Path, fingerprint: str | None) -> _Env:
    """Keyed by fingerprint too: an env rebuilt at the same path is read afresh."""
    return _Env(interpreter)


def _module_name(entry: str) -> str | None:
    if entry.endswith(".py"):
        return entry[:-3]
    if entry.endswith(_EXTENSIONS):
        return entry.split(".", 1)[0]
    if "." in entry or entry == "__pycache__":
        return None  # dist-info, .pth, .libs: not importable by name
    return entry


def _files(folder: Path, entry: str) -> Iterator[str]:
    """`entry`'s files relative to `folder`, sorted; bytecode caches left out."""
    path = folder / entry
    if not path.is_dir():
        yield entry
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        base = Path(root).relative_to(folder).as_posix()
        yield from (f"{base}/{name}" for name in sorted(files))


def _venv_config(prefix: Path) -> tuple[str, ...]:
    """pyvenv.cfg's settings that change what the interpreter imports, paths left out."""
    try:
        text = (prefix / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return ("no pyvenv.cfg",)
    return tuple(
        sorted(
            line.strip().lower()
            for line in text.splitlines()
            if line.partition("=")[0].strip() in _VENV_KEYS
        )
    )
