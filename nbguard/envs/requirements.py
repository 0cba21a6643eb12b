"""Requirement text: what an env asks the resolver for (requirements files and their `-r`
includes, a conda environment.yml read as pip lines), and what a lock file pins."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nbguard import discover
from nbguard.errors import ConfigError
from nbguard.model import EnvInfo
from nbguard.settings import EnvSpec

# What every env needs on top of the course's requirements to run a kernel.
KERNEL_REQUIREMENTS = ("ipykernel",)
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?")
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;#\\]+)")
# Options whose value is a path, relative to the file that holds them.
_PATH_OPTION = re.compile(r"^(-e|--editable|-c|--constraint|-f|--find-links)(\s*=?\s*)(\S+)(.*)$")
_HASH = re.compile(r"\s--hash[= ]\S+")


def canonical(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --- locks -----------------------------------------------------------------------------------


def parse_pins(lock: str) -> dict[str, str]:
    """name → version for every `name==version` line of a lock file."""
    pins: dict[str, str] = {}
    for line in lock.splitlines():
        match = PIN.match(line)
        if match and not line.lstrip().startswith(("#", "-")):
            pins[canonical(match.group(1))] = match.group(2)
    return pins


_HASH_VALUE = re.compile(r"--hash[= ](\S+)")


def pinned_hashes(path: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    """(name, version) → the `--hash` values a hash-pinned requirements file gives for it
    (pip-compile --generate-hashes, uv pip compile --generate-hashes); empty without any."""
    try:
        text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    except OSError:
        return {}
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for line in text.splitlines():
        match = PIN.match(line.split(" #", 1)[0])
        values = tuple(_HASH_VALUE.findall(line))
        if match and values:
            found[(canonical(match.group(1)), match.group(2))] = values
    return found


def with_hashes(lock: str, hashes: dict[tuple[str, str], tuple[str, ...]]) -> str:
    """`lock` with the course's own hashes back on the lines that pin the same version, so
    the installer checks every download against them (a resolved lock holds none)."""
    if not hashes:
        return lock
    lines = []
    for line in lock.splitlines():
        match = PIN.match(line)
        known = hashes.get((canonical(match.group(1)), match.group(2))) if match else None
        if known and not line.lstrip().startswith(("#", "-")) and "--hash" not in line:
            line = " ".join([line.split(" #", 1)[0].rstrip(), *(f"--hash={h}" for h in known)])
        lines.append(line)
    return "\n".join(lines) + "\n"


def lock_requirements(lock: str) -> list[str]:
    """The requirement lines of a lock, without comments, options and hashes."""
    text = lock.replace("\\\n", " ")
    lines = [_HASH.sub("", raw.split(" #", 1)[0]).strip() for raw in text.splitlines()]
    return [line for line in lines if line and not line.startswith(("#", "--"))]


def line_name(line: str) -> str | None:
    """The distribution a requirement line names (`pkg @ URL`, `pkg[x]>=1`), None for `-e`."""
    match = _REQUIREMENT_NAME.match(line)
    return canonical(match.group(1)) if match and not line.startswith("-") else None


def changed_packages(before: EnvInfo, after: EnvInfo) -> list[tuple[str, str | None, str | None]]:
    """(package, from, to) for every package whose version differs between two envs."""
    names: Sequence[str] = sorted(set(before.packages) | set(after.packages))
    return [
        (name, before.packages.get(name), after.packages.get(name))
        for name in names
        if before.packages.get(name) != after.packages.get(name)
    ]


# --- requirement sources ---------------------------------------------------------------------


def requirement_lines(spec: EnvSpec) -> list[str]:
    """The requirements the resolver gets for an env (before ipykernel and pins are added).

    A file in an env that does not upgrade is passed as it is (`-r file`). In an env that
    upgrades, `==` pins are dropped and everything else stays: ranges the instructor wrote,
    extras, markers, URL requirements, index and editable options. A pyproject.toml gives its
    `[project] dependencies`; a conda declaration its PyPI approximation (conda.approximate).
    """
    if spec.requirements is None:
        return []
    path = spec.requirements
    if path.name == "pyproject.toml":
        lines = expand_lines(discover.project_dependencies(path), path)
        return lines if not spec.upgrade else [unpinned(line) for line in lines]
    from nbguard.envs import conda  # builds on this module

    if conda.is_conda(path):
        return list(conda.approximate(conda.read(path), keep_versions=not spec.upgrade).lines)
    if not spec.upgrade:
        return [f"-r {path}"]
    return [unpinned(line) for line in _read_requirements(path)]


def direct_requirements(spec: EnvSpec) -> tuple[str, ...]:
    """The distributions an env's requirements input names itself (canonical, sorted): a
    loose file's or environment.yml's names; for a lock, those its `# via -r FILE`
    annotations (pip-compile, uv) mark as asked for, else the names of the `.in` file beside
    it, else every name it pins; and the env's extra pins. Reports list these first."""
    names = {name for name in map(line_name, spec.pins) if name}
    path = spec.requirements
    if path is None:
        return tuple(sorted(names))
    try:
        if path.suffix in {".yml", ".yaml"}:
            from nbguard.envs import conda  # builds on this module

            lines = list(conda.approximate(conda.read(path), keep_versions=True).lines)
        else:
            asked = _asked_for(path.read_text(encoding="utf-8", errors="replace"))
            source = path.with_suffix(".in")
            if asked:
                return tuple(sorted(names | asked))
            lines = _read_requirements(source if source.is_file() else path)
    except (OSError, ConfigError):
        return tuple(sorted(names))  # only the order of a report's lines depends on it
    return tuple(sorted(names | {name for name in map(line_name, lines) if name}))


# The annotation naming the file (or project) a pin was asked for in, as opposed to the
# package that pulled it in: `-r requirements.in`, `my-course (pyproject.toml)`.
_ASKED = re.compile(
    r"(?:^|[\s,])(?:-r|--requirement)[\s=]|\((?:pyproject\.toml|setup\.(?:py|cfg))\)"
)


def _asked_for(lock: str) -> set[str]:
    """The names a compiled lock's `# via` annotations mark as asked for by a file; empty
    when it has no such annotations."""
    asked: set[str] = set()
    current: str | None = None
    for raw in lock.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("#"):
            requirement, _, comment = line.partition(" #")
            current = line_name(requirement.strip())
            line = "#" + comment if comment else ""
        if current and "#" in line and _ASKED.search(line.lstrip("# ")):
            asked.add(current)
    return asked


def _read_requirements(path: Path, seen: frozenset[Path] = frozenset()) -> list[str]:
    """Lines of a requirements file, `-r` includes followed, comments and `--hash` dropped,
    relative paths in options made absolute (the resolver reads a copy elsewhere)."""
    try:
        joined = path.read_text(encoding="utf-8").replace("\\\n", " ")
    except OSError as exc:
        included = f" (included from {sorted(seen)[-1]})" if seen else ""
        raise ConfigError(
            f"cannot read requirements file {path}{included}: {exc.strerror}"
        ) from None
    return expand_lines(joined.splitlines(), path, seen)


def expand_lines(
    raw_lines: Sequence[str], path: Path, seen: frozenset[Path] = frozenset()
) -> list[str]:
    """Requirement lines read from `path` (a requirements file, or an environment.yml's pip
    section): `-r` includes followed relative to it, comments and `--hash` dropped, relative
    paths in options made absolute."""
    lines: list[str] = []
    for raw in raw_lines:
        line = _HASH.sub("", raw.split(" #", 1)[0]).strip()
        if not line or line.startswith("#") or line.startswith("--hash"):
            continue
        include = re.match(r"^(?:-r|--requirement)\s*=?\s*(\S+)", line)
        if include:
            target = (path.parent / include.group(1)).resolve()
            if target not in seen:
                lines += _read_requirements(target, seen | {path})
            continue
        option = _PATH_OPTION.match(line)
        if option and not re.match(r"^[a-z][a-z0-9+.-]*://", option.group(3)):
            flag, _, value, rest = option.groups()
            line = f"{flag} {(path.parent / value).resolve()}{rest}"
        lines.append(line)
    return lines


def unpinned(line: str) -> str:
    """A requirement line without its `==`/`===` clauses: `numpy[x]==1.26.4 ; python_version
    < "3.13"` → `numpy[x] ; python_version < "3.13"`; `scipy>=1.10,<2` stays as it is, and so
    do options and URL requirements (`pkg @ https://…`)."""
    match = _REQUIREMENT_NAME.match(line)
    if line.startswith("-") or match is None or " @ " in line or "@" in line.split(";")[0]:
        return line
    requirement, _, marker = line.partition(";")
    rest = requirement[match.end() :]
    kept = [c.strip() for c in rest.split(",") if c.strip() and not c.strip().startswith("==")]
    head = match.group(1) + (match.group(2) or "")
    text = head + ",".join(kept)
    return f"{text} ; {marker.strip()}" if marker.strip() else text


# --- environment.yml -------------------------------------------------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    import yaml  # papermill depends on PyYAML; only environment.yml needs it

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot parse it"
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'dependencies' list")
    return data


def conda_python(path: Path) -> str | None:
    """The Python version an environment.yml (or conda lock) asks for, if it names one."""
    from nbguard.envs import conda  # builds on this module

    return conda.read(path).python if conda.is_conda(path) else None
