"""The env cache on disk: one venv per fingerprint of (Python, resolved pins), trusted only when
its marker, written last, names that fingerprint, its files are still the ones it was built
with (a manifest) and its kernel still starts; file locks shared with every nbguard process
that uses the same cache."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from nbguard import proc
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.requirements import PIN, parse_pins
from nbguard.model import EnvInfo
from nbguard.secret_env import is_secret

# Bump when the layout of a cached env or the way it is built changes.
# 2: envs carry pip (a notebook's `%pip install` goes to a run's own overlay, not the env).
_ENV_FORMAT = "nbguard-env/2"
_MARKER = "nbguard-env.json"
_LOCK_FILE = "nbguard-lock.txt"  # the lock an env was installed from, kept inside it
# Every file of the env as built (size, mtime), written just before the marker: a file
# added, removed or changed since (a planted .pth, a pip uninstall) shows as a difference.
# Bytecode caches are left out: Python writes them on import wherever it may.
_MANIFEST = "nbguard-manifest.json"
# Beside the env (not in it, where it would be a file the manifest does not know): the
# interpreter a kernel last started from while the files were the manifest's. With both
# unchanged, that check's answer stands and the next run need not start a Python to ask again.
_STARTED = ".started.json"
_UNLISTED = frozenset({_MARKER, f"{_MARKER}.tmp", _MANIFEST, f"{_MANIFEST}.tmp"})

# Envs this process has seen start a kernel: the check costs a Python start-up, once.
_VERIFIED: set[Path] = set()
_VERIFIED_LOCK = threading.Lock()
# What `python -m ipykernel_launcher` needs, short of starting a kernel.
_KERNEL_CHECK = "import ipykernel_launcher\nfrom ipykernel.kernelapp import launch_new_instance"


def fingerprint(interpreter: Interpreter, lock: str) -> str:
    """Python + every resolved requirement: pins by name and version, and the normalized text
    of anything else a lock may hold (`pkg @ URL`, `-e path`), so a moved URL is a new env."""
    pins = parse_pins(lock)
    others = {
        " ".join(line.split("#", 1)[0].split())
        for line in lock.splitlines()
        if line.strip() and not line.lstrip().startswith("#") and not PIN.match(line)
    }
    # The hashes a lock pins are part of what the env is: a hash-pinned lock gets an env of
    # its own, installed (and checked) from it, never one built earlier without them.
    hashed = {
        " ".join([line.split()[0], *sorted(re.findall(r"--hash[= ](\S+)", line))])
        for line in lock.replace("\\\n", " ").splitlines()
        if "--hash" in line and PIN.match(line)
    }
    lines = sorted({f"{name}=={version}" for name, version in pins.items()} | others | hashed)
    key = "\n".join(
        [_ENV_FORMAT, interpreter.implementation, interpreter.version, interpreter.platform, *lines]
    )
    return hashlib.sha256(key.encode()).hexdigest()


def env_dir(cache_dir: Path, fp: str) -> Path:
    return cache_dir / "envs" / fp[:16]


def is_complete(target: Path, fp: str) -> bool:
    return problem(target, fp) is None


def problem(target: Path, fp: str) -> str | None:
    """Why the env at `target` cannot be reused for `fp`, or None when it can: its marker,
    written last, says it was built whole for `fp`; its files are the ones it was built with;
    its interpreter runs and imports ipykernel_launcher. Checked once per process per env
    (a walk of its files: about 0.5 s for the 15,000 files of a scientific stack)."""
    marked = _marker_problem(target, fp)
    if marked is not None:
        return marked
    with _VERIFIED_LOCK:
        if target in _VERIFIED:
            return None
    changed = _changed_files(target)
    if changed:
        return changed
    started = _started_stamp(target)
    if not _stamp_matches(target, started):
        if not kernel_starts(target / "bin" / "python").ok:
            return "a kernel no longer starts in it"
        _write_stamp(target, started)
    with _VERIFIED_LOCK:
        _VERIFIED.add(target)
    return None


def _marker_problem(target: Path, fp: str) -> str | None:
    """Why the env at `target` was not built whole for `fp`, by its marker alone."""
    marker = target / _MARKER
    if not marker.is_file():
        return "its build did not finish"
    if not (target / "bin" / "python").exists():
        return "its interpreter is gone"
    try:
        if json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") != fp:
            return "it was built for other requirements"
    except (json.JSONDecodeError, OSError, AttributeError):
        return "its marker is damaged"
    return None


def _started_stamp(target: Path) -> list[object]:
    """What a kernel check's answer depends on besides the env's own files (which the
    manifest holds): the base interpreter the venv runs, and the manifest itself."""
    python = os.path.realpath(target / "bin" / "python")
    try:
        info = Path(python).stat()
        manifest = hashlib.sha256((target / _MANIFEST).read_bytes()).hexdigest()
    except OSError:
        return []
    return [python, info.st_size, info.st_mtime_ns, manifest]


def _write_stamp(target: Path, started: list[object]) -> None:
    with contextlib.suppress(OSError):
        stamp = target.with_suffix(f"{_STARTED}.tmp")
        stamp.write_text(json.dumps(started), encoding="utf-8")
        stamp.replace(target.with_suffix(_STARTED))


def _stamp_matches(target: Path, started: list[object]) -> bool:
    try:
        known = json.loads(target.with_suffix(_STARTED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(started) and known == started


def _files(target: Path) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    root = str(target)
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        # String work per folder, not per file (no relpath): a walk stats thousands of files.
        prefix = directory[len(root) + 1 :] + os.sep if directory != root else ""
        for name in filenames:
            relative = prefix + name
            if relative in _UNLISTED:
                continue
            info = os.lstat(f"{directory}{os.sep}{name}")
            found[relative] = [info.st_size, info.st_mtime_ns]
    return found


def _changed_files(target: Path) -> str | None:
    """What differs from the env's manifest, in one line; None when nothing does."""
    try:
        built = json.loads((target / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "it has no manifest of its files"
    now = _files(target)
    added = sorted(set(now) - set(built))
    removed = sorted(set(built) - set(now))
    changed = sorted(name for name in set(now) & set(built) if now[name] != built[name])
    parts = [
        f"{len(names)} {what} ({', '.join(names[:2])}{', …' if len(names) > 2 else ''})"
        for names, what in ((added, "added"), (removed, "removed"), (changed, "changed"))
        if names
    ]
    return "files changed since it was built: " + "; ".join(parts) if parts else None


def kernel_starts(python: Path) -> proc.Completed:
    # The env's code runs here (a .pth of any package): it gets no secret of nbguard's.
    return proc.run([python, "-c", _KERNEL_CHECK], timeout=120, withhold=is_secret)


def ensure(
    target: Path,
    fp: str,
    python: str,
    name: str,
    install: Callable[[Path], str | None],
    progress: Callable[[str], None],
    what: str,
    *,
    defer: bool = False,
) -> tuple[bool, str | None]:
    """(reused, error) for the env at `target`: reused when it is complete and whole; else
    built under a lock shared with other nbguard processes (two asking for one env build it
    once) by `install`, into a folder beside `target`, marked last (a half-built env is never
    reused), then put in `target`'s place, so the env there until then stays whole for the
    kernels other processes run in it.

    `defer`: an env whose marker names `fp` is reused on the marker alone, and the rest of
    the check (its files against the manifest, its kernel) waits for `verify(target)`, which
    whoever starts a Python in it calls first: a run served from the execution cache starts
    none, and a nightly run where nothing changed then walks no env's files.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if defer and _marker_problem(target, fp) is None:
        again = functools.partial(ensure, target, fp, python, name, install, progress, what)
        with _VERIFIED_LOCK:
            if target in _VERIFIED:
                _DEFERRED.pop(target, None)  # checked already in this process
            else:
                _DEFERRED[target] = _Deferred(again)  # this run's progress, no old answer
        return True, None
    if is_complete(target, fp):
        return True, None
    with file_lock(target.with_suffix(".lock")):
        # Under the lock: another nbguard (or thread) may have built it meanwhile.
        why = problem(target, fp)
        if why is None:
            return True, None
        if target.exists():
            progress(f"rebuilding {name}: {why}")
        progress(f"installing {name} ({what})")
        build = new_build(target)
        error = install(build)
        if error:
            discard(build)
            return False, error
        mark_complete(build, fp, python, name)
        publish(build, target)
    return False, None


@dataclasses.dataclass
class _Deferred:
    """An env reused on its marker alone: the full check (and rebuild) `ensure` left for the
    first Python started in it, and that check's answer once made."""

    check: Callable[[], tuple[bool, str | None]]
    answer: tuple[bool, str | None] | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


# Envs `ensure(defer=True)` reused on their marker alone, by folder.
_DEFERRED: dict[Path, _Deferred] = {}


def verify(target: Path) -> tuple[bool, str | None]:
    """(reused, error) for an env `ensure` reused on its marker alone: now checked whole, and
    rebuilt when damaged, before a Python starts in it; once per process (other threads
    wait for the answer). (True, None) for any other env: `ensure` checked it already."""
    with _VERIFIED_LOCK:
        deferred = _DEFERRED.get(target)
    if deferred is None:
        return True, None
    with deferred.lock:
        if deferred.answer is None:
            deferred.answer = deferred.check()
        return deferred.answer


def new_build(target: Path) -> Path:
    """An absent folder beside `target` to build its env in, under `target`'s file lock.

    An env is never built (or rebuilt) in place: other nbguard processes may be running
    kernels in the one at `target` (or in its overlay, whose `.pth` points into it), and a
    kernel started while it is cleared or half-installed finds no ipykernel_launcher. The
    finished build replaces it in one rename (`publish`). Builds a killed process left
    behind are removed here: under the lock nobody else is building one.
    """
    current = os.path.realpath(target)
    for stale in target.parent.glob(f"{target.name}.*"):
        if stale.is_dir() and not stale.is_symlink() and str(stale) != current:
            shutil.rmtree(stale, ignore_errors=True)
    return target.with_name(f"{target.name}.{secrets.token_hex(4)}")


def publish(build: Path, target: Path) -> None:
    """Make the finished env at `build` the one at `target`: `target` is a symlink to it,
    replaced atomically, so a kernel sees the old env whole or the new one whole. The env
    it replaces is removed; a kernel running in it keeps the files it has open, and finds
    what it imports later through `target`, in the new one."""
    link = build.with_name(f"{build.name}.link")
    link.unlink(missing_ok=True)
    link.symlink_to(build.name)  # relative: the cache folder may be moved or bound elsewhere
    old: Path | None = None
    if target.is_symlink():
        old = Path(os.path.realpath(target))
    elif target.exists():
        # An env of the layout before builds were published: moved aside first (a rename).
        old = target.with_name(f"{build.name}.replaced")
        target.rename(old)
    link.replace(target)
    with _VERIFIED_LOCK:
        _VERIFIED.add(target)
    if old is not None and old != build:
        shutil.rmtree(old, ignore_errors=True)


def discard(build: Path) -> None:
    """Remove a build that failed, and the lock file written beside it."""
    shutil.rmtree(build, ignore_errors=True)
    build.with_name(f"{build.name}.requirements.txt").unlink(missing_ok=True)


def pending_lock(target: Path, lock: str) -> Path:
    """The lock an env is installed from, written beside `target` until the venv exists there
    (the venv tools want an absent target)."""
    path = target.with_name(f"{target.name}.requirements.txt")
    path.write_text(lock, encoding="utf-8")
    return path


def lock_path(target: Path) -> Path:
    """Where a cached env keeps the lock it was installed from."""
    return target / _LOCK_FILE


def mark_complete(target: Path, fp: str, python: str, name: str) -> None:
    """Record, last of all, that the env at `target` was built whole for `fp`."""
    manifest = target / f"{_MANIFEST}.tmp"
    manifest.write_text(json.dumps(_files(target)), encoding="utf-8")
    manifest.replace(target / _MANIFEST)
    _write_stamp(target, _started_stamp(target))  # its kernel started just now (builds.py)
    marker = {"format": _ENV_FORMAT, "fingerprint": fp, "python": python, "env": name}
    partial = target / f"{_MARKER}.tmp"
    partial.write_text(json.dumps(marker, indent=2), encoding="utf-8")
    partial.replace(target / _MARKER)  # atomic: a marker is whole or absent
    with _VERIFIED_LOCK:
        _VERIFIED.add(target)


def built_lock(env: EnvInfo) -> str | None:
    """The lock a cached env was installed from; None for an env made elsewhere."""
    if env.interpreter is None:
        return None
    lockfile = lock_path(env.interpreter.parent.parent)
    return lockfile.read_text(encoding="utf-8") if lockfile.is_file() else None


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock shared with other nbguard processes using the same cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
