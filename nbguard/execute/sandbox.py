"""The sandbox every kernel runs in (bubblewrap): the system and the env read-only, a private
home and temp dir, its own PID namespace, no network when offline; or why not on this machine."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nbguard import proc

BWRAP = "bwrap"
_TMP = "/tmp"


@dataclass(frozen=True)
class Isolation:
    """How one kernel is isolated: the command its argv starts with, and the report's words."""

    prefix: tuple[str, ...]
    description: str

    @property
    def sandboxed(self) -> bool:
        return bool(self.prefix) and self.prefix[0].endswith(BWRAP)


def isolation(
    *,
    enabled: bool,
    offline: bool,
    workdir: Path,
    writable: Iterable[Path],
    readable: Iterable[Path],
) -> Isolation:
    """The sandbox for a kernel whose run owns `workdir` (and `writable`, e.g. its socket
    directory); `readable` are the paths outside it the kernel needs (its interpreter, env,
    path entries), which stay visible read-only when the temp dir they live in is replaced.

    Without bubblewrap, or where the machine forbids namespaces, the kernel runs as before
    (with `unshare --net` when offline) and the description says why.
    """
    no_net = ("unshare", "--net", "--") if offline else ()
    net_words = ", no network" if offline else ""
    if not enabled:
        return Isolation(no_net, f"none: the sandbox is turned off{net_words}")
    problem, bwrap = _bwrap()
    if problem is not None:
        return Isolation(no_net, f"none: {problem}{net_words}")
    args = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc"]
    if offline:
        args.append("--unshare-net")
    # Everything read-only, then a fresh /dev, /proc (only the sandbox's own processes: not
    # nbguard's environ or cwd) and /tmp; what the kernel needs from the old /tmp back, read-only.
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", _TMP]
    # Both where a path leads and the path as given: a cached env is a symlink to its
    # current build, which the new /tmp would not have.
    binds = {(_real(p), where) for p in readable if _under_tmp(p) for where in _names(p)}
    for real, where in sorted(binds, key=lambda pair: len(pair[1])):
        if Path(real).exists():
            args += ["--ro-bind", real, where]
    for path in sorted({_real(p) for p in (workdir, *writable)}, key=len):
        args += ["--bind", path, path]
    # ipykernel exits when its parent is pid 1, unless told that pid 1 is its parent (the
    # sandbox's init is); --die-with-parent ends the sandbox with nbguard instead.
    args += ["--setenv", "JPY_PARENT_PID", "1"]
    words = f"bwrap: read-only system and env, private home/tmp, pid namespace{net_words}"
    return Isolation((*args, "--"), words)


def note(description: str) -> str | None:
    """The one line to tell the user when kernels run without a sandbox, else None."""
    if not description.startswith("none:") or "turned off" in description:
        return None
    return f"kernels run without a sandbox: {description.removeprefix('none: ')}"


@functools.cache
def _bwrap() -> tuple[str | None, str]:
    """(None, path) when bubblewrap can build a sandbox here, else (why not, "")."""
    path = shutil.which(BWRAP)
    if path is None:
        return "bubblewrap (bwrap) is not installed", ""
    probe = [path, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-net",
             "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", _TMP,
             "true"]  # fmt: skip
    done = proc.run(probe, timeout=20)
    if not done.ok:
        said = done.last_lines(1) or f"exit code {done.returncode}"
        return f"namespaces not allowed here ({said})", ""
    return None, path


def _real(path: Path) -> str:
    return os.path.realpath(path)


def _names(path: Path) -> set[str]:
    return {_real(path), str(path.absolute())}


def _under_tmp(path: Path) -> bool:
    tmp = os.path.realpath(_TMP)
    return any(
        candidate == tmp or candidate.startswith(tmp + os.sep)
        for candidate in (str(path.absolute()), _real(path))
    )


def private_dirs(workdir: Path) -> dict[str, str]:
    """HOME and the temp dir of a sandboxed kernel, inside its run's workdir."""
    home, tmp = workdir / "home", workdir / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "TMPDIR": str(tmp), "TMP": str(tmp), "TEMP": str(tmp)}
