"""Conda declarations read: environment.yml (channels, specs, its `pip:` section), conda-lock.yml
and `@EXPLICIT` lists as one CondaEnv; specs relaxed for an upgrading env; and the PyPI
approximation of it all when no conda solver is at hand."""

from __future__ import annotations

import importlib.util
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbguard.envs.requirements import canonical, expand_lines, load_yaml, unpinned
from nbguard.errors import ConfigError, EnvironmentBuildError

DEFAULT_CHANNELS = ("conda-forge",)
# `channel::name rest`: the name, then whatever constrains it (version, build string).
_SPEC = re.compile(r"^(?:([\w./:-]+)::)?([A-Za-z0-9_][A-Za-z0-9._-]*)\s*(.*)$")
# A package URL of a lock: <channel>/<subdir>/<name>-<version>-<build>.conda|.tar.bz2
_PACKAGE_URL = re.compile(
    r"^(?P<channel>\S+)/(?P<subdir>[\w-]+)/(?P<name>[^/]+)-(?P<version>[^-/]+)-(?P<build>[^-/]+)"
    r"\.(?:conda|tar\.bz2)(?:#\S*)?$"
)
# Packages the env's interpreter stands for: nbguard's venv provides them, never conda.
INTERPRETER_PACKAGES = frozenset({"python", "pip"})


@dataclass(frozen=True)
class CondaEnv:
    """What a conda declaration asks for."""

    source: Path
    channels: tuple[str, ...]
    specs: tuple[str, ...]  # match specs, python and pip left out
    python: str | None  # the version `python=` asks for, if any
    pip: tuple[str, ...]  # the pip section's lines: -r includes followed, paths absolute
    locked: bool  # from a lock file: every spec names one exact build


def is_conda(path: Path | None) -> bool:
    """An environment.yml, a conda-lock.yml or an `@EXPLICIT` list."""
    if path is None:
        return False
    if path.suffix in {".yml", ".yaml"}:
        return True
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return "@EXPLICIT" in handle.read(1 << 16)
    except OSError:
        return False


# conda-like tools nbguard can drive from PATH when py-rattler is not installed, in the order
# `auto` prefers them (micromamba: one static binary, the quickest to start).
TOOLS = ("micromamba", "mamba", "conda")


def tool_path(name: str) -> Path | None:
    """Where the conda-like tool `name` is on PATH, if it is."""
    found = shutil.which(name)
    return Path(found) if found else None


def solver(setting: str) -> str:
    """The conda-solver setting made concrete: "rattler", a tool of TOOLS, or "pypi"; raises
    EnvironmentBuildError when a solver is asked for and not there."""
    available = importlib.util.find_spec("rattler") is not None
    if setting == "rattler" and not available:
        raise EnvironmentBuildError(
            "conda-solver = 'rattler' but py-rattler is not installed: "
            "pip install 'nbguard[conda]' (or conda-solver = 'pypi' for the PyPI approximation)"
        )
    if setting in TOOLS and tool_path(setting) is None:
        raise EnvironmentBuildError(
            f"conda-solver = {setting!r} but there is no {setting} on PATH "
            "(or conda-solver = 'pypi' for the PyPI approximation)"
        )
    if setting == "auto":
        if available:
            return "rattler"
        return next((tool for tool in TOOLS if tool_path(tool) is not None), "pypi")
    return setting


def solver_label(chosen: str) -> str:
    """How the terminal names a solver: "py-rattler", "micromamba at /usr/bin/micromamba"."""
    if chosen == "rattler":
        return "py-rattler"
    return f"{chosen} at {tool_path(chosen)}"


def read(path: Path) -> CondaEnv:
    """The CondaEnv a file declares; ConfigError (exit 2) naming the file when it cannot."""
    if path.suffix not in {".yml", ".yaml"}:
        return _explicit(path)
    data = load_yaml(path)
    if "package" in data and "dependencies" not in data:
        return _conda_lock(path, data)
    channels = tuple(str(c) for c in data.get("channels") or []) or DEFAULT_CHANNELS
    specs: list[str] = []
    pip: list[str] = []
    python = None
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict):
            pip += expand_lines([str(line) for line in dep.get("pip") or []], path)
            continue
        text = " ".join(str(dep).split())
        match = _SPEC.match(text)
        if match is None:
            raise ConfigError(f"{path}: {text!r} is not a conda package spec")
        if canonical(match.group(2)) in INTERPRETER_PACKAGES:
            version = re.match(r"^={0,2}\s*(\d+(?:\.\d+){0,2})", match.group(3))
            python = version.group(1) if version and match.group(2) == "python" else python
            continue
        specs.append(text)
    return CondaEnv(path, channels, tuple(specs), python, tuple(pip), locked=False)


def _conda_lock(path: Path, data: dict[str, Any]) -> CondaEnv:
    """A conda-lock.yml (v1): the linux-64 conda packages by exact URL, the pip ones pinned."""
    specs: list[str] = []
    pip: list[str] = []
    channels: list[str] = []
    python = None
    for package in data.get("package") or []:
        if not isinstance(package, dict) or package.get("platform") not in {"linux-64", None}:
            continue
        name, version = str(package.get("name", "")), str(package.get("version", ""))
        if package.get("manager") == "pip":
            pip.append(f"{name}=={version}")
            continue
        parsed = _PACKAGE_URL.match(str(package.get("url", "")))
        if name == "python":
            python = version
        if parsed is None or canonical(name) in INTERPRETER_PACKAGES:
            continue
        channels.append(parsed["channel"])
        specs.append(f"{parsed['name']} =={parsed['version']} {parsed['build']}")
    if not specs and not pip:
        raise ConfigError(f"{path}: a conda-lock file without linux-64 packages")
    return CondaEnv(
        path, tuple(dict.fromkeys(channels)), tuple(specs), python, tuple(pip), locked=True
    )


def _explicit(path: Path) -> CondaEnv:
    """An `@EXPLICIT` list (`conda list --explicit`): one package URL a line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    specs: list[str] = []
    channels: list[str] = []
    python = None
    for line in lines:
        parsed = _PACKAGE_URL.match(line.strip())
        if parsed is None:
            continue
        if parsed["name"] == "python":
            python = parsed["version"]
        if canonical(parsed["name"]) in INTERPRETER_PACKAGES:
            continue
        channels.append(parsed["channel"])
        specs.append(f"{parsed['name']} =={parsed['version']} {parsed['build']}")
    if not specs:
        raise ConfigError(f"{path}: an @EXPLICIT list that names no package URL")
    return CondaEnv(path, tuple(dict.fromkeys(channels)), tuple(specs), python, (), locked=True)


def relaxed(env: CondaEnv) -> CondaEnv:
    """The upgrading env's request: exact versions and build strings dropped, ranges the
    instructor wrote kept (as the pip path drops `==` and keeps `>=`); pip lines unpinned."""
    return CondaEnv(
        env.source,
        env.channels,
        tuple(_relaxed_spec(spec) for spec in env.specs),
        None,
        tuple(unpinned(line) for line in env.pip),
        locked=False,
    )


def _relaxed_spec(spec: str) -> str:
    match = _SPEC.match(spec)
    if match is None:
        return spec
    channel, name, rest = match.groups()
    head = f"{channel}::{name}" if channel else name
    rest = rest.strip()
    if not rest.startswith(("<", ">", "!", "~")):
        return head  # `=1.2`, `==1.2=build`, `1.2.*`, `1.2 build`: one release, dropped
    version = rest.split()[0]  # a build string after a range goes too
    kept = [c for c in version.split(",") if c and not c.startswith(("==", "="))]
    return f"{head} {','.join(kept)}" if kept else head


# --- the PyPI approximation ------------------------------------------------------------------

# conda packages published on PyPI under another name.
PYPI_NAMES = {
    "pytables": "tables",
    "matplotlib-base": "matplotlib",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "py-xgboost": "xgboost",
    "python-graphviz": "graphviz",
    "pyqt": "PyQt5",
    "tensorflow-base": "tensorflow",
    "msgpack-python": "msgpack",
    "prompt_toolkit": "prompt-toolkit",
    "pywavelets": "PyWavelets",
    "python-kaleido": "kaleido",
    "jupyter_contrib_nbextensions": "jupyter-contrib-nbextensions",
}
# conda packages with no Python distribution on PyPI: C/C++ libraries and tools, R, ROOT.
_NO_PYPI = frozenset(
    {
        "root", "graphviz", "gdal", "libgdal", "proj", "geos", "hdf5", "netcdf-c", "nodejs",
        "openjdk", "ffmpeg", "imagemagick", "poppler", "pandoc", "git", "make", "gcc",
        "gxx", "gfortran", "compilers", "c-compiler", "cxx-compiler", "fortran-compiler",
        "cudatoolkit", "cudnn", "nccl", "blas", "openblas", "mkl-service", "tk", "openssl",
        "zlib", "xz", "qt", "eccodes", "cairo", "pango", "texlive-core", "xeus-cling",
        "mamba", "conda", "nb_conda_kernels", "nb_conda",
    }
)  # fmt: skip
_NO_PYPI_PREFIXES = ("lib", "r-", "_")


@dataclass(frozen=True)
class Approximation:
    """A conda declaration as PyPI requirements, and what that took."""

    lines: tuple[str, ...]
    mapped: tuple[tuple[str, str], ...]  # (conda name, PyPI name) where they differ
    missing: tuple[str, ...]  # conda packages with no PyPI equivalent, left out

    def summary(self) -> str:
        parts = []
        if self.mapped:
            parts.append("mapped " + ", ".join(f"{a} → {b}" for a, b in self.mapped))
        if self.missing:
            parts.append("no PyPI equivalent, left out: " + ", ".join(self.missing))
        return "; ".join(parts) or "every package has the same name on PyPI"


def pypi_name(conda_name: str) -> str | None:
    """The PyPI distribution of a conda package; None when PyPI has none."""
    name = conda_name.lower()
    if name in PYPI_NAMES:
        return PYPI_NAMES[name] or None
    if name in _NO_PYPI or name.startswith(_NO_PYPI_PREFIXES) or name.endswith("-cpp"):
        return None
    return conda_name


def approximate(env: CondaEnv, *, keep_versions: bool) -> Approximation:
    """pip requirements for a conda declaration: conda `name=1.2` means 1.2.*, `name=1.2.3=build`
    exactly 1.2.3, comparisons pass through; names mapped to PyPI's."""
    lines: list[str] = []
    mapped: list[tuple[str, str]] = []
    missing: list[str] = []
    for spec in env.specs:
        match = _SPEC.match(spec)
        if match is None:
            continue
        name, rest = match.group(2), match.group(3).strip()
        target = pypi_name(name)
        if target is None:
            missing.append(name)
            continue
        if canonical(target) != canonical(name):
            mapped.append((name, target))
        requirement = target + _pip_version(rest)
        lines.append(requirement if keep_versions else unpinned(requirement))
    pip = env.pip if keep_versions else tuple(unpinned(line) for line in env.pip)
    return Approximation(
        (*lines, *pip), tuple(dict.fromkeys(mapped)), tuple(dict.fromkeys(missing))
    )


def _pip_version(rest: str) -> str:
    """A conda version constraint as a pip one: `=1.2` any 1.2.x, `==1.2`, `1.2` (the
    space-separated form) and anything with a build string exactly that release."""
    parts = rest.split()
    if not parts:
        return ""
    if parts[0].startswith(("<", ">", "!", "~")):
        return parts[0]
    fuzzy = parts[0].startswith("=") and not parts[0].startswith("==")
    version, _, build = parts[0].lstrip("=").partition("=")
    if fuzzy and not build and len(parts) == 1 and not version.endswith("*"):
        return f"=={version}.*"
    return f"=={version}"
