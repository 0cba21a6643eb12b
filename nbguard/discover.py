"""Finding the course's notebooks and what each asks of nbguard (kernel, skip reasons), and
where the course declares its environment and the Python it was made for."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from nbguard.model import Notebook, Tolerance

_PYTHON_LANGUAGES = {"python", "python3", "ipython", "ipython3"}


def discover(
    course: Path, include: Sequence[str], exclude: Sequence[str], always_excluded: Sequence[str]
) -> tuple[Notebook, ...]:
    """The notebooks under `course` matching `include` and none of the excludes, by path."""
    excluded = [_glob_regex(pattern) for pattern in (*always_excluded, *exclude)]
    included = [_glob_regex(pattern) for pattern in include]
    found: list[Notebook] = []
    for path in _walk(course):
        relative = path.relative_to(course).as_posix()
        if any(rx.match(relative) for rx in included) and not any(
            rx.match(relative) for rx in excluded
        ):
            found.append(_undecodable(relative) or read_notebook(course, relative))
    return tuple(sorted(found, key=lambda nb: nb.path))


def _undecodable(relative: str) -> Notebook | None:
    """A file name that is not valid UTF-8 (os.walk hands its bytes over as surrogates)
    cannot be reported as it is: the notebook is skipped, named with its bad bytes written
    as escapes, so every report can show it and the audit goes on."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        shown = relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        reason = "its file name is not valid UTF-8: rename it to run it"
        return Notebook(shown, "", kernel_name="python3", language="python", skip_reason=reason)
    return None


def _walk(course: Path) -> Iterator[Path]:
    """Every .ipynb file, not descending into virtualenvs or hidden tool folders."""
    for directory, dirnames, filenames in os.walk(course):
        here = Path(directory)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not (here / d / "pyvenv.cfg").exists() and d not in {".git", ".nbguard"}
        )
        yield from (here / f for f in sorted(filenames) if f.endswith(".ipynb"))


def read_notebook(course: Path, relative: str) -> Notebook:
    """What discovery needs of one notebook; a notebook that cannot be parsed is still
    returned (its run will fail and say why), never dropped silently."""
    raw = (course / relative).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        content = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return Notebook(relative, digest, kernel_name="python3", language="python")
    # Hand-edited notebooks hold anything: only tables count, anything else means "absent".
    metadata = _table(content.get("metadata") if isinstance(content, dict) else None)
    kernelspec = _table(metadata.get("kernelspec"))
    language = str(
        kernelspec.get("language") or _table(metadata.get("language_info")).get("name") or "python"
    )
    kernel_name = str(kernelspec.get("name") or "python3")
    return Notebook(
        relative,
        digest,
        kernel_name=kernel_name,
        language=language,
        skip_reason=_skip_reason(metadata, language, kernel_name),
        tolerance=Tolerance.from_metadata(_table(metadata.get("nbguard")).get("tolerance")),
        volatile=_table(metadata.get("nbguard")).get("volatile") is True,
    )


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _skip_reason(metadata: dict[str, Any], language: str, kernel_name: str) -> str | None:
    skip = _table(metadata.get("nbguard")).get("skip")
    if isinstance(skip, str) and skip.strip():
        return f"notebook metadata: {skip.strip()}"
    if skip is True:
        return "notebook metadata nbguard.skip is true"
    if language.lower() not in _PYTHON_LANGUAGES:
        return f"non-Python kernel {kernel_name!r} ({language})"
    return None


def glob_matches(pattern: str, relative: str) -> bool:
    """Whether a course-relative POSIX path matches a glob of the config."""
    return _glob_regex(pattern).match(relative) is not None


@cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over POSIX relative paths: `**/` spans folders (or none), `*`, `?` and `[...]`
    stay within one name; a leading `./` is the course root."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    out = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "[" and "]" in pattern[i + 2 :]:
            close = pattern.index("]", i + 2)
            body = pattern[i + 1 : close]
            negate = body.startswith("!")
            out.append("[" + ("^" if negate else "") + re.escape(body[negate:]) + "]")
            i = close + 1
            continue
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


# --- where a course declares its environment -------------------------------------------------

# Where courses keep their environment files, root first: repo2docker (Binder) reads binder/
# and .binder/ in preference to the root.
ENV_DIRS = ("", "binder", ".binder")
PINNED_NAMES = ("requirements.txt", "requirements.lock", "requirements-lock.txt", "conda-lock.yml")
LOOSE_NAMES = ("requirements.in", "environment.yml", "environment.yaml")


def requirement_files(course: Path) -> tuple[Path | None, Path | None]:
    """The course's pinned file and its loose one, by the usual names, in the course root,
    binder/ or .binder/; a pyproject.toml's `[project] dependencies` is the loose file of a
    course that has no other."""
    pinned = _first_in(course, PINNED_NAMES)
    loose = _first_in(course, LOOSE_NAMES)
    pyproject = course / "pyproject.toml"
    if loose is None and project_dependencies(pyproject):
        loose = pyproject
    return pinned, loose


def _first_in(course: Path, names: Sequence[str]) -> Path | None:
    for folder in ENV_DIRS:
        for name in names:
            path = course / folder / name if folder else course / name
            if path.is_file():
                return path
    return None


def project_dependencies(pyproject: Path) -> list[str]:
    """The `[project] dependencies` of a pyproject.toml (PEP 621); empty without any (or when
    the file cannot be read: the config loader reports a broken pyproject.toml itself)."""
    if pyproject.name != "pyproject.toml" or not pyproject.is_file():
        return []
    try:
        with pyproject.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    project = data.get("project")
    dependencies = project.get("dependencies") if isinstance(project, dict) else None
    if not isinstance(dependencies, list):
        return []
    return [str(item) for item in dependencies if isinstance(item, str) and item.strip()]


@dataclass(frozen=True)
class DeclaredPython:
    """The Python a course's files say its env was made for, and which file said it."""

    version: str  # major.minor, "3.10": patch releases are interchangeable
    origin: str  # "requirements.txt header", "binder/runtime.txt"


# pip-compile: "# This file is autogenerated by pip-compile with Python 3.10" (also "with
# python 3.10"); uv: "#    uv pip compile requirements.in --python-version 3.10".
_PIP_COMPILE_HEADER = re.compile(r"^#.*autogenerated by pip-compile with python (\d+\.\d+)", re.I)
_UV_HEADER = re.compile(
    r"^#.*\buv pip compile\b.*?(?:--python-version|-p|--python)[= ]\s*"
    r"(?:python|cpython)?-?(\d+\.\d+(?:\.\d+)?)\b"
)
# `nbguard colab-snapshot`: "# Google Colab runtime: Python 3.12.11, pip freeze of …".
_SNAPSHOT_HEADER = re.compile(r"^# Google Colab runtime: Python (\d+\.\d+(?:\.\d+)?)\b")
_RUNTIME = re.compile(r"^\s*python-(\d+\.\d+(?:\.\d+)?)\s*$")
_PYTHON_VERSION = re.compile(r"^\s*(?:cpython-|python)?(\d+\.\d+(?:\.\d+)?)\s*$")
# A conda spec or lock entry for python: `python=3.10`, `python==3.10.12=h…`, `python 3.10.*`.
_CONDA_PYTHON = re.compile(r"^\s*(?:[\w.-]+::)?python\s*(?:={1,2}|\s)\s*(\d+\.\d+(?:\.\d+)?)")
# An @EXPLICIT list names python by its package URL: …/python-3.10.12-h…_cpython.conda
_EXPLICIT_PYTHON = re.compile(r"/python-(\d+\.\d+(?:\.\d+)?)-[^/]*\.(?:conda|tar\.bz2)")


_HEADERS = (_PIP_COMPILE_HEADER, _UV_HEADER, _SNAPSHOT_HEADER)


def declared_python(course: Path, requirements: Path | None) -> DeclaredPython | None:
    """The Python the env's own file declares (a pip-compile or uv header, a conda `python=`
    spec, a conda lock's python), else a `runtime.txt` (`python-3.10`, as Binder reads it)
    or `.python-version` beside that file or in the course root; None when nothing does."""
    if requirements is not None:
        found = _python_in(requirements)
        if found is not None:
            return DeclaredPython(_minor(found[0]), f"{_shown(course, requirements)} {found[1]}")
    folders = [requirements.parent] if requirements is not None else []
    folders += [course / folder if folder else course for folder in ENV_DIRS]
    for name, pattern in (("runtime.txt", _RUNTIME), (".python-version", _PYTHON_VERSION)):
        for folder in dict.fromkeys(folders):
            path = folder / name
            text = _head(path)
            match = next(filter(None, map(pattern.match, text.splitlines()[:1])), None)
            if match:
                return DeclaredPython(_minor(match.group(1)), _shown(course, path))
    return None


def _minor(version: str) -> str:
    """3.10.12 → 3.10: a course's env is made for a minor version; patch releases of it are
    interchangeable, and the machine may hold any one of them."""
    return ".".join(version.split(".")[:2])


def _python_in(requirements: Path) -> tuple[str, str] | None:
    """(version, which part of the file says so) from the env's own file."""
    text = _head(requirements, 1 << 20)
    lines = text.splitlines()
    for line in lines[:40]:
        match = next((m for rx in _HEADERS if (m := rx.match(line))), None)
        if match:
            return match.group(1), "header"
    if "@EXPLICIT" in text:
        match = _EXPLICIT_PYTHON.search(text)
        return (match.group(1), "python package") if match else None
    if requirements.name == "conda-lock.yml":
        match = re.search(r"- name: python\n\s+version: '?(\d+\.\d+(?:\.\d+)?)", text)
        return (match.group(1), "python package") if match else None
    if requirements.suffix in {".yml", ".yaml"}:
        for line in lines:
            match = _CONDA_PYTHON.match(line.strip().lstrip("-").strip().strip("'\""))
            if match:
                return match.group(1), "python spec"
    return None


def _head(path: Path, limit: int = 4096) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.read(limit)
    except OSError:
        return ""


def _shown(course: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(course.resolve()).as_posix()
    except ValueError:
        return path.name
