"""Starting a kernel in a target env: its kernelspec, environment, transport, and why not."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path

from nbguard.execute.options import ExecOptions
from nbguard.secret_env import allowed, is_secret

KERNEL_NAME = "nbguard"
# Run by every kernel at startup; read by path, since the target env has no nbguard.
_CAPTURE_SOURCE = Path(__file__).with_name("_kernel_capture.py")
# Variables of nbguard's own process that would point the kernel at the wrong Python or make
# it behave unlike a student's Jupyter (MPLBACKEND=Agg in CI would swallow every figure,
# PYTHONWARNINGS=error meant for nbguard would break notebooks); kernel_env can set them.
_SCRUBBED_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONEXECUTABLE",
    "PYTHONWARNINGS",
    "VIRTUAL_ENV",
    "MPLBACKEND",
    # nbguard's own working directory (often the course itself): the kernel's is its copy.
    "PWD",
    "OLDPWD",
)
_KERNEL_NOISE = ("running over TCP without encryption",)
# Run before ipykernel: records the top-level names the kernel looks up from its first import
# on (found or not: an optional import that failed here may succeed in another env; the
# capture reports them, execute/alike.py), sets the memory limit when there is one (where the
# platform has RLIMIT_AS), then starts ipykernel_launcher as `python -m` would, with its own
# arguments and the same sys.path.
_PRELUDE = (
    "import os, runpy, sys\n"
    "class _NbguardLookups:\n"
    "    def __init__(self):\n"
    "        self.nbguard_names = set()\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if path is None:\n"
    "            self.nbguard_names.add(name)\n"
    "    def invalidate_caches(self):\n"
    "        pass\n"
    "sys.meta_path.insert(0, _NbguardLookups())\n"
    "limit = int(sys.argv.pop(1))\n"
    "try:\n"
    "    import resource\n"
    "except ImportError:\n"
    "    limit = 0\n"
    "if limit > 0:\n"
    "    hard = resource.getrlimit(resource.RLIMIT_AS)[1]\n"
    "    if hard != resource.RLIM_INFINITY:\n"
    "        limit = min(limit, hard)\n"
    "    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
    "if sys.path and sys.path[0] == '':\n"
    "    sys.path[0] = os.getcwd()\n"
    "sys.argv[0] = 'ipykernel_launcher'\n"
    "runpy.run_module('ipykernel_launcher', run_name='__main__', alter_sys=True)\n"
)


def interpreter_problem(python: Path) -> str | None:
    if not python.exists():
        return f"interpreter {python} does not exist"
    if not os.access(python, os.X_OK) or python.is_dir():
        return f"interpreter {python} is not an executable file"
    return None


def env_failed(env_name: str, cause: str) -> str:
    return f"the kernel of env {env_name!r} did not start: {cause}"


def write_kernelspec(
    workdir: Path,
    python: Path,
    memory_limit: int | None = None,
    prefix: tuple[str, ...] = (),
    capture_key: Path | None = None,
    reads_file: Path | None = None,
) -> Path:
    """A kernelspec naming the env's interpreter by absolute path, with warning capture and
    the memory limit, if any, started under `prefix` (the sandbox); the capture reads (and
    deletes) the key its records carry from `capture_key`, and appends the paths the notebook
    reads to `reads_file`."""
    kernels = workdir / "kernels"
    spec_dir = kernels / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    # runpy.run_path runs the capture code in a throwaway namespace: nothing reaches the
    # user's. A statement, not an expression, so IPython keeps the returned globals out of
    # Out/_ (a trailing semicolon does not help: exec_lines are not in the history).
    key = {"KEY_FILE": str(capture_key)} if capture_key is not None else {}
    if reads_file is not None:
        key["READS_FILE"] = str(reads_file)
    loader = f"if __import__('runpy').run_path({str(_CAPTURE_SOURCE)!r}, {key!r}): pass"
    spec = {
        "argv": [
            *prefix,
            str(python),
            "-c",
            _PRELUDE,
            str(memory_limit or 0),
            "-f",
            "{connection_file}",
            # Concurrent kernels must not share (and lock) one sqlite history file.
            "--HistoryManager.hist_file=:memory:",
            f"--IPKernelApp.exec_lines={json.dumps([loader])}",
        ],
        "display_name": "nbguard",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return kernels


def interpreter_paths(python: Path) -> tuple[Path, ...]:
    """What a kernel needs to read to start `python`: its env's prefix, the base interpreter
    a venv points at (pyvenv.cfg's home), and nbguard's capture code."""
    prefix = python.parent.parent
    paths = [prefix, Path(os.path.realpath(python)).parent.parent, _CAPTURE_SOURCE.parent]
    try:
        config = (prefix / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        config = ""
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            paths.append(Path(value.strip()).parent)
    return tuple(paths)


def capture_key(workdir: Path) -> tuple[str, Path]:
    """A fresh secret for this run's warning records, and the file the capture reads it from
    (and deletes) at kernel start, before any cell could."""
    key = secrets.token_hex(16)
    path = workdir / "capture.key"
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key)
    return key, path


def kernel_env(
    course_root: Path, scratch: Path, options: ExecOptions, workdir: Path
) -> dict[str, str]:
    # Nor do a CI job's secrets reach a notebook, unless the config allow-lists them.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED_ENV and (not is_secret(key) or allowed(key, options.pass_env))
    }
    env.update(options.kernel_env)
    # Only what the pipeline asks for (the course root in course-code "path" mode): with
    # "none", a notebook imports the course's modules only as a student without setup could.
    paths: list[str] = []
    for entry in options.python_path:
        try:
            paths.append(str(scratch / entry.resolve().relative_to(course_root)))
        except ValueError:
            paths.append(str(entry))  # outside the course: nothing to map
    if options.kernel_env.get("PYTHONPATH"):
        paths.append(options.kernel_env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # A private IPython profile: no user startup files, no shared state between kernels.
    env["IPYTHONDIR"] = str(workdir / "ipython")
    return env


def transport(stack: contextlib.ExitStack) -> dict[str, str]:
    """How the kernel and nbguard talk: Unix sockets where there are any.

    Over TCP, jupyter_client picks free ports by binding and releasing them; between two
    nbguard processes that races (measured: 3 of 288 kernels started together failed, with
    "Address already in use" or by talking to another run's kernel). Socket files in a
    private directory cannot collide. The directory is short because socket paths are
    limited to about 100 bytes.
    """
    if os.name != "posix":
        return {"transport": "tcp"}
    sockets = stack.enter_context(tempfile.TemporaryDirectory(prefix="nbguard-sock-"))
    return {"transport": "ipc", "ip": str(Path(sockets) / "k")}


def socket_dirs(connection: dict[str, str]) -> tuple[Path, ...]:
    """The directory of the kernel's Unix sockets, which a sandbox must leave writable."""
    if connection.get("transport") != "ipc":
        return ()
    return (Path(connection["ip"]).parent,)


def kernel_log_cause(path: Path) -> str | None:
    """The last thing the kernel said before it died: usually why it could not start."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not any(noise in line for noise in _KERNEL_NOISE)
    ]
    return lines[-1] if lines else None
