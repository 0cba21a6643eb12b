"""The env cache on disk: one venv per fingerprint of (Python, resolved pins), trusted only when
its marker, written last, names that fingerprint and its kernel still starts; file locks shared
with every nbguard process that uses the same cache."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from nbguard import proc
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.requirements import PIN, parse_pins
from nbguard.model import EnvInfo

# Bump when the layout of a cached env or the way it is built changes.
# 2: envs carry pip (a notebook's `%pip install` goes to a per-run PIP_TARGET, not the env).
_ENV_FORMAT = "nbguard-env/2"
_MARKER = "nbguard-env.json"
_LOCK_FILE = "nbguard-lock.txt"  # the lock an env was installed from, kept inside it

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
    lines = sorted({f"{name}=={version}" for name, version in pins.items()} | others)
    key = "\n".join(
        [_ENV_FORMAT, interpreter.implementation, interpreter.version, interpreter.platform, *lines]
    )
    return hashlib.sha256(key.encode()).hexdigest()


def env_dir(cache_dir: Path, fp: str) -> Path:
    return cache_dir / "envs" / fp[:16]


def is_complete(target: Path, fp: str) -> bool:
    """The env at `target` was fully built for `fp` (its marker, written last, says so) and
    still works: its interpreter runs and imports ipykernel_launcher. A deleted bin/python, a
    damaged file in site-packages, a leftover of an install that was killed, or a marker of
    another fingerprint all make it incomplete, so it is rebuilt."""
    marker = target / _MARKER
    if not marker.is_file() or not (target / "bin" / "python").exists():
        return False
    try:
        if json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") != fp:
            return False
    except (json.JSONDecodeError, OSError, AttributeError):
        return False
    with _VERIFIED_LOCK:
        if target in _VERIFIED:
            return True
    if not kernel_starts(target / "bin" / "python").ok:
        return False
    with _VERIFIED_LOCK:
        _VERIFIED.add(target)
    return True


def kernel_starts(python: Path) -> proc.Completed:
    return proc.run([python, "-c", _KERNEL_CHECK], timeout=120)


def clear(target: Path) -> None:
    """Remove whatever is at `target`, so an env is built there from nothing."""
    with _VERIFIED_LOCK:
        _VERIFIED.discard(target)
    shutil.rmtree(target, ignore_errors=True)


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
