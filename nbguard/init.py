"""`nbguard init`: write `[tool.nbguard]` and GitHub workflows into a course repository."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from nbguard import discover, execute, settings
from nbguard.errors import ConfigError
from nbguard.model import Notebook

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# The workflows a course gets, shipped as package data in nbguard/templates/.
TEMPLATES = ("nbguard-pr.yml", "nbguard-nightly.yml", "nbguard-audit.yml")
WORKFLOWS_DIR = Path(".github") / "workflows"
_GLOB_SPECIALS = re.compile(r"[*?\[\]]")


@dataclass(frozen=True)
class Guess:
    """What init found in a course: notebook globs and requirement files (course-relative)."""

    notebooks: tuple[str, ...]
    folders: tuple[str, ...]  # top-level folders holding notebooks ("." for the root)
    count: int
    pinned: str | None
    loose: str | None
    pinned_is_pinned: bool  # every requirement of the pinned file is `==`
    # An example for the commented parameters table: a notebook with a cell tagged
    # "parameters", its first parameter and that one's default; or placeholders.
    parameters: tuple[str, str, str] = ("homework/simulation.ipynb", "n_steps", "1000")
    # The Python the locked env's file (or runtime.txt, .python-version) declares.
    python: discover.DeclaredPython | None = None


def template_text(name: str) -> str:
    """The text of one shipped workflow template."""
    return (resources.files("nbguard") / "templates" / name).read_text(encoding="utf-8")


def init(course: Path, *, force: bool = False) -> list[str]:
    """Write the course's nbguard configuration and workflows; never overwrite an existing
    file (or an existing `[tool.nbguard]`) unless `force` (workflows and nbguard.toml only).
    Returns one line per thing done or kept."""
    if not course.is_dir():
        raise ConfigError(f"course directory {course} does not exist")
    course = course.resolve()
    guess = guess_course(course)
    lines = [
        f"found {guess.count} notebook{'s' if guess.count != 1 else ''} in "
        + ", ".join("the course root" if f == "." else f + "/" for f in guess.folders)
    ]
    lines += _write_config(course, guess, force=force)
    for name in TEMPLATES:
        target = course / WORKFLOWS_DIR / name
        shown = (WORKFLOWS_DIR / name).as_posix()
        if target.exists() and not force:
            lines.append(f"kept existing {shown} (--force overwrites it)")
            continue
        existed = target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template_text(name), encoding="utf-8")
        lines.append(f"{'overwrote' if existed else 'wrote'} {shown}")
    return lines


def guess_course(course: Path) -> Guess:
    """The course's notebook folders and requirement files, by what is on disk."""
    found = discover.discover(course, ("**/*.ipynb",), (), settings.ALWAYS_EXCLUDED)
    if not found:
        raise ConfigError(f"no notebooks (.ipynb) in {course}; is this the course's root?")
    folders = sorted({nb.path.split("/")[0] if "/" in nb.path else "." for nb in found})
    if any(_GLOB_SPECIALS.search(folder) for folder in folders):
        globs: tuple[str, ...] = ("**/*.ipynb",)
    else:
        globs = tuple("*.ipynb" if f == "." else f"{f}/**/*.ipynb" for f in folders)
    pinned_path, loose_path = discover.requirement_files(course)
    if pinned_path is None and loose_path is None:
        raise ConfigError(
            f"no requirements.txt, requirements.in, environment.yml or [project] dependencies "
            f"in {course} (or its binder/); add the course's requirements, then run nbguard "
            "init again"
        )
    pinned = pinned_path.relative_to(course).as_posix() if pinned_path else None
    loose = loose_path.relative_to(course).as_posix() if loose_path else None
    return Guess(
        notebooks=globs,
        folders=tuple(folders),
        count=len(found),
        pinned=pinned,
        loose=loose,
        pinned_is_pinned=pinned_path is not None and _is_pinned(pinned_path),
        python=discover.declared_python(course, pinned_path or loose_path),
        parameters=_parameters_example(course, found) or Guess.parameters,
    )


def _parameters_example(course: Path, found: tuple[Notebook, ...]) -> tuple[str, str, str] | None:
    """The first notebook with a `parameters` cell that declares a name, that name and its
    default as written."""
    for notebook in found:
        if notebook.skip_reason is not None:
            continue
        try:
            names = execute.parameters.declared(course / notebook.path)
        except execute.UNREADABLE:
            continue
        if names:
            name, default = next(iter(names.items()))
            return notebook.path, name, default
    return None


def _is_pinned(path: Path) -> bool:
    """Every requirement line names one exact version (pip-compile / uv pip compile output),
    or the file is a conda lock."""
    if path.name == "conda-lock.yml":
        return True
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    requirements = [
        line.split("#", 1)[0].strip().rstrip("\\").strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-", "--"))
    ]
    requirements = [r for r in requirements if r]
    return bool(requirements) and all(re.search(r"===?\s*[^\s,;]+", r) for r in requirements)


def _toml_str(value: str) -> str:
    # A JSON string is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=False)


def config_text(guess: Guess, *, prefix: str) -> str:
    """The nbguard table: `prefix` is "tool.nbguard." in pyproject.toml, "" in nbguard.toml."""
    locked = guess.pinned or guess.loose
    upcoming = guess.loose or guess.pinned
    assert locked is not None and upcoming is not None
    head = f"[{prefix[:-1]}]\n" if prefix else ""
    notebooks = ", ".join(_toml_str(g) for g in guess.notebooks)
    path, name, default = guess.parameters
    value = default if _valid_toml(f"value = {default}") else "..."
    example = f"{_toml_str(path)} = {{ {name} = {value} }}"
    lines = [
        "# Written by `nbguard init`; every key is in nbguard's README (Configuration).",
        f"notebooks = [{notebooks}]",
        '# exclude = ["**/scratch/**"]',
        "# timeout = 300            # seconds per cell",
    ]
    if any(name and name.endswith((".yml", ".yaml")) for name in (guess.pinned, guess.loose)):
        lines += [
            "# The conda environment is solved by conda (py-rattler) when nbguard[conda] is",
            "# installed, else by micromamba, mamba or conda on PATH, else approximated with",
            '# PyPI packages ("rattler", "micromamba", "mamba", "conda" or "pypi" forces one):',
            '# conda-solver = "auto"',
        ]
    lines += ["", f"[{prefix}envs.locked]"]
    if guess.pinned_is_pinned:
        lines.append(f"requirements = {_toml_str(locked)}  # pinned: installed as is")
    else:
        lines += [
            f"# {locked} pins nothing (or not everything): pin it with pip-compile or",
            "# `uv pip compile`, or compare with the notebooks' stored outputs",
            '# (baseline = "stored").',
            f"requirements = {_toml_str(locked)}",
        ]
    if guess.python is not None:
        lines.append(
            f"# python = {_toml_str(guess.python.version)}  # from {guess.python.origin}, "
            "which nbguard follows unless set here"
        )
    else:
        lines.append(
            "# python = \"3.11\"          # last semester's Python (default: nbguard's own)"
        )
    lines += [
        "",
        f"[{prefix}envs.upcoming]",
        f"requirements = {_toml_str(upcoming)}  # resolved to the newest releases today",
        "upgrade = true",
        '# python = "3.13"          # next semester\'s Python',
        "# prerelease = false",
        "",
        '# Papermill parameters of notebooks with a cell tagged "parameters", the same in',
        "# every env so outputs are still compared (README: Parameters). The PR workflow runs",
        "# with the `ci` set when there is one (fewer points, epochs…); --parameter-set NAME.",
        f"# [{prefix}parameters]",
        f"# {example}",
        "#",
        f"# [{prefix}parameter-sets.ci]",
        f"# {example}  # a smaller value, for pull requests",
    ]
    lines += [
        "",
        "# What students get on Google Colab: `nbguard colab-snapshot` saves its runtime.",
        f"# [{prefix}envs.colab]",
        '# preset = "colab"',
    ]
    return head + "\n".join(lines) + "\n"


def _write_config(course: Path, guess: Guess, *, force: bool) -> list[str]:
    existing = settings.find_config_file(course)
    pyproject = course / "pyproject.toml"
    standalone = course / "nbguard.toml"
    if existing is not None and not (force and existing[0] == standalone):
        path = existing[0]
        what = "[tool.nbguard] in" if path.name == "pyproject.toml" else "configuration"
        hint = " (--force overwrites it)" if path == standalone else ""
        return [f"kept existing {what} {path.name}{hint}"]
    envs = (
        f"envs locked ({guess.pinned or guess.loose}), "
        f"upcoming ({guess.loose or guess.pinned}, upgraded)"
    )
    summary = f"notebooks {', '.join(guess.notebooks)}; {envs}"
    if pyproject.is_file() and existing is None:
        original = pyproject.read_text(encoding="utf-8")
        if not original or original.endswith("\n\n"):
            separator = ""
        else:
            separator = "\n" if original.endswith("\n") else "\n\n"
        combined = original + separator + config_text(guess, prefix="tool.nbguard.")
        if _valid_toml(combined):  # not when the file holds an inline `tool = {...}` table
            # Appended only: the rest of the file stays byte for byte as it was.
            with pyproject.open("a", encoding="utf-8", newline="") as handle:
                handle.write(combined[len(original) :])
            return [f"added [tool.nbguard] to pyproject.toml: {summary}"]
    existed = standalone.exists()
    standalone.write_text(config_text(guess, prefix=""), encoding="utf-8")
    return [f"{'overwrote' if existed else 'wrote'} nbguard.toml: {summary}"]


def _valid_toml(text: str) -> bool:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return True
