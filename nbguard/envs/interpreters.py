"""Finding Python interpreters by version on this machine (PATH, pyenv, uv-managed ones), and
the one an env asks for."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from nbguard import proc
from nbguard.errors import InterpreterNotFound
from nbguard.settings import EnvSpec

_PROBE = (
    "import json, platform, sys; print(json.dumps({'executable': sys.executable, "
    "'version': platform.python_version(), 'implementation': platform.python_implementation(), "
    "'machine': platform.machine(), 'system': platform.system()}))"
)
_VERSION_REQUEST = re.compile(r"^(?:python|py|cpython)?-?(\d+)(?:\.(\d+))?(?:\.(\d+))?$", re.I)


@dataclass(frozen=True)
class Interpreter:
    executable: Path  # absolute, as the interpreter reports it
    version: str  # e.g. "3.12.1"
    implementation: str  # e.g. "CPython"
    platform: str  # e.g. "Linux-x86_64": part of every env fingerprint

    def matches(self, wanted: tuple[int, ...]) -> bool:
        parts = tuple(int(p) for p in self.version.split(".")[: len(wanted)] if p.isdigit())
        return parts == wanted


# Each executable is asked once per process, even by two envs' lookups at the same moment
# (both try the same generic `python3` and `python` on PATH).
_PROBED: dict[str, Interpreter | None] = {}
_PROBING: dict[str, threading.Lock] = {}
_PROBING_LOCK = threading.Lock()


def probe(executable: str) -> Interpreter | None:
    """Ask an executable what it is; None when it is not a working Python (e.g. a pyenv shim
    for a version that is not selected, which exits 127)."""
    with _PROBING_LOCK:
        asking = _PROBING.setdefault(executable, threading.Lock())
    with asking:
        if executable not in _PROBED:
            _PROBED[executable] = _ask(executable)
        return _PROBED[executable]


def _ask(executable: str) -> Interpreter | None:
    done = proc.run([executable, "-I", "-c", _PROBE], timeout=30)
    if not done.ok:
        return None
    try:
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return None
    return Interpreter(
        executable=Path(info["executable"]),
        version=info["version"],
        implementation=info["implementation"],
        platform=f"{info['system']}-{info['machine']}",
    )


def interpreter_for(spec: EnvSpec) -> Interpreter:
    """The interpreter an env asks for: the config's, or the one the course's files declare
    for an env that installs them as they are (`spec.python_from` says which file). Raises
    InterpreterNotFound (exit 2) when it is not installed."""
    try:
        return find(spec.python)
    except InterpreterNotFound as exc:
        if spec.python_from is None:
            raise
        raise InterpreterNotFound(
            f"env {spec.name!r} asks for Python {spec.python} ({spec.python_from}): {exc}; "
            f"or set [tool.nbguard.envs.{spec.name}] python to run it on another"
        ) from None


def find(request: str | None) -> Interpreter:
    """The interpreter for a request: None (nbguard's own Python), a version ("3.12",
    "3.12.1", "python3.12"), or a path to an executable."""
    if request is None or request in {"current", "self"}:
        own = probe(sys.executable)
        if own is None:  # pragma: no cover - we are running in it
            raise InterpreterNotFound(f"cannot query the running interpreter {sys.executable}")
        return own
    match = _VERSION_REQUEST.match(request.strip())
    if match is None:
        return _from_path(request)
    wanted = tuple(int(part) for part in match.groups() if part is not None)
    tried: list[str] = []
    for batch in _candidates(wanted):
        tried += batch
        for found in _probed(batch):
            if found is not None and found.matches(wanted):
                return found
    shown = ".".join(str(part) for part in wanted)
    raise InterpreterNotFound(
        f"no Python {shown} interpreter found on PATH, in pyenv or among uv's Pythons "
        f"({len(tried)} candidates tried); install one (e.g. `uv python install {shown}` or "
        f"`pyenv install {shown}`) or give the interpreter's path as the env's python"
    )


def _from_path(request: str) -> Interpreter:
    path = Path(request).expanduser()
    executable = str(path) if path.exists() else shutil.which(request)
    found = probe(executable) if executable else None
    if found is None:
        raise InterpreterNotFound(
            f"python {request!r} is neither a version like 3.12 nor a working interpreter path"
        )
    return found


def _probed(batch: list[str]) -> Iterator[Interpreter | None]:
    """Each executable's probe, in order; all of them asked at once (a pyenv shim takes a
    few hundred milliseconds to answer, often that it is not the version selected)."""
    if len(batch) < 2:
        yield from map(probe, batch)
        return
    pool = ThreadPoolExecutor(max_workers=min(8, len(batch)), thread_name_prefix="probe")
    try:
        yield from (future.result() for future in [pool.submit(probe, e) for e in batch])
    finally:
        # Found: the probes after the hit are not waited for.
        pool.shutdown(wait=False, cancel_futures=True)


def _candidates(wanted: tuple[int, ...]) -> Iterator[list[str]]:
    """Executables that may be the wanted version, most specific first, without duplicates,
    a source at a time (PATH, pyenv, uv); lazily, so a hit on PATH or in pyenv costs no
    `uv python find` (seconds, every run)."""
    major_minor = ".".join(str(part) for part in wanted[:2])
    seen: set[str] = set()
    names = [f"python{major_minor}"] if len(wanted) >= 2 else []
    sources: tuple[Callable[[], list[str]], ...] = (
        lambda: _on_path([*names, f"python{wanted[0]}", "python"]),
        lambda: _pyenv_pythons(wanted),
        lambda: _uv_pythons(major_minor),
    )
    for source in sources:
        batch = [executable for executable in dict.fromkeys(source()) if executable not in seen]
        seen.update(batch)
        if batch:
            yield batch


def _on_path(names: list[str]) -> list[str]:
    found: list[str] = []
    for name in names:
        for directory in os.environ.get("PATH", "").split(os.pathsep):
            executable = Path(directory) / name
            if directory and executable.is_file() and os.access(executable, os.X_OK):
                found.append(str(executable))
    return found


def _pyenv_pythons(wanted: tuple[int, ...]) -> list[str]:
    root = os.environ.get("PYENV_ROOT")
    if root is None:
        pyenv = shutil.which("pyenv")
        if pyenv is None:
            return []
        done = proc.run([pyenv, "root"], timeout=30)
        if not done.ok:
            return []
        root = done.stdout.strip()
    prefix = ".".join(str(part) for part in wanted)
    versions = Path(root) / "versions"
    if not versions.is_dir():
        return []
    # Newest patch release first: "3.12.10" sorts after "3.12.9" by numeric parts.
    dirs = sorted(
        (d for d in versions.iterdir() if d.name == prefix or d.name.startswith(prefix + ".")),
        key=lambda d: [int(p) if p.isdigit() else -1 for p in d.name.split(".")],
        reverse=True,
    )
    return [str(d / "bin" / "python") for d in dirs if (d / "bin" / "python").exists()]


def _uv_pythons(major_minor: str) -> list[str]:
    uv = uv_executable()
    if uv is None or not major_minor:
        return []
    done = proc.run([uv, "python", "find", "--no-project", major_minor], timeout=60)
    return [done.stdout.strip()] if done.ok and done.stdout.strip() else []


_UV_LOCK = threading.Lock()


def uv_executable() -> str | None:
    """uv as shipped by the `uv` PyPI package, else one on PATH."""
    # One thread at a time: find_uv_bin reads sysconfig, whose first read is not thread-safe
    # (two env builds asking at once got None for a config variable).
    with _UV_LOCK:
        return _uv_executable()


@cache
def _uv_executable() -> str | None:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")
