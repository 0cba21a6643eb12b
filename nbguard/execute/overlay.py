"""A run's own layer over the cached env, where `%pip install` / `!pip install` go: what the
env has is already satisfied, what is missing lands here, and the env never changes."""

from __future__ import annotations

import os
from pathlib import Path

# `pip` on the kernel's PATH: the overlay's interpreter runs pip (a shell script, since a
# shebang naming a long workdir path may pass the kernel's limit).
_PIP_LAUNCHER = '#!/bin/sh\nexec "$(dirname -- "$0")/python" -m pip "$@"\n'


def make_overlay(python: Path, root: Path) -> Path | None:
    """A throwaway venv at `root` whose interpreter sees `python`'s env (as
    --system-site-packages would see a base Python) behind a site-packages of its own;
    its interpreter, or None when `python`'s env has no site-packages to layer over.

    pip run by this interpreter finds the env's packages on sys.path ("Requirement already
    satisfied"), installs the rest into the overlay, importable at once, and refuses to
    uninstall what lies outside it ("Not uninstalling …: outside environment").
    """
    prefix = python.parent.parent
    sites = sorted(prefix.glob("lib/python3*/site-packages"))
    if not sites:
        return None
    real = Path(os.path.realpath(python))
    config = _read_config(prefix / "pyvenv.cfg")
    layered = bool(config)  # a venv: its site-packages comes in through a .pth file
    home = config.get("home") or str(real.parent)
    system = config.get("include-system-site-packages", "false") if layered else "true"
    site = root / "lib" / sites[0].parent.name / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    lines = [f"home = {home}", f"include-system-site-packages = {system}"]
    if "version" in config or "version_info" in config:
        lines.append(f"version = {config.get('version') or config['version_info']}")
    (root / "pyvenv.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")
    interpreter = bin_dir / "python"
    for name in ("python", "python3", real.name):
        link = bin_dir / name
        if not link.is_symlink():
            link.symlink_to(real)
    if layered:
        # addsitedir, not a bare path line: the env's own .pth files (editable installs,
        # the course's package) are processed as in the env itself.
        (site / "_nbguard_env.pth").write_text(
            f"import site; site.addsitedir({str(sites[0])!r})\n", encoding="utf-8"
        )
    for name in ("pip", "pip3"):
        launcher = bin_dir / name
        launcher.write_text(_PIP_LAUNCHER, encoding="utf-8")
        launcher.chmod(0o755)
    return interpreter


def _read_config(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    config = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip().lower()] = value.strip()
    return config
