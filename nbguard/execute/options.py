"""ExecOptions: the settings of one notebook's execution, and how its sizes read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ExecOptions:
    cell_timeout: float | None = 300.0  # seconds per cell; None = no limit
    notebook_timeout: float | None = None  # seconds for all cells of the notebook together
    startup_timeout: float = 60.0
    # Extra dirs (absolute, inside the course) prepended to PYTHONPATH, mapped into the copy.
    python_path: tuple[Path, ...] = ()
    kernel_env: Mapping[str, str] = field(default_factory=dict)
    # Names (fnmatch) not copied into the scratch tree.
    copy_ignore: tuple[str, ...] = (
        ".git",
        ".nbguard",
        ".ipynb_checkpoints",
        "_build",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "node_modules",
    )
    # Run the cells after a failing one too, to find the later independent errors; a
    # timeout or a dead kernel still ends the notebook.
    keep_going: bool = False
    # Secret-looking variables of nbguard's environment (secret_env.SECRET_PATTERNS) still
    # passed to kernels: exact names or fnmatch globs.
    pass_env: tuple[str, ...] = ()
    # The kernel's address-space limit (RLIMIT_AS) in bytes; None = no limit.
    memory_limit: int | None = None
    # No network for the kernel: it starts in a new, empty Linux network namespace (it talks
    # to nbguard over Unix sockets, which network namespaces leave alone).
    offline: bool = False
    # `%pip install` / `!pip install` go to a layer of the run's own over the env (overlay.py).
    pip_overlay: bool = False
    # Folders outside the course a kernel may read in its sandbox, where the temp dir they
    # live in is replaced (the --find-links folders a notebook's `%pip install` may name).
    readable: tuple[Path, ...] = ()
    # Run each kernel in a bubblewrap sandbox where the machine allows it (sandbox.py).
    sandbox: bool = True
    # Characters of outputs (text, base64) one notebook run keeps; None = no cap.
    max_output: int | None = 10 * 1024**2
    # Papermill parameters injected after the notebook's `parameters` cell (parameters.py);
    # part of what a run's outputs depend on.
    parameters: Mapping[str, object] = field(default_factory=dict)

    # XDG_CACHE_HOME of the sandboxed kernels of one env in one nbguard run: what libraries
    # cache in the home (matplotlib's font list: ~0.5 CPU-s a kernel) is built once per env,
    # not in every kernel's fresh home. It lives in the run's scratch, so nothing a notebook
    # leaves there reaches another audit or course. Not part of what a run's outputs depend on.
    home_cache: Path | None = None

    # Runs with these same options still to come after this one: while its cells run, the
    # next one's kernel starts (warm.py), unless as many wait already.
    ahead: int = 0


def size_text(size: int) -> str:
    """512 MB, 2 GB, 1.5 GB, 700 bytes: a size as the settings write it (units of 1024)."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} bytes"
