"""Candidate fixes for one failure, in the order they are trusted: the library's own words,
ruff's numpy autofix, nbguard's table of migrations; each a rewrite of the notebook's code
cells and of the course modules in the failing frames."""

from __future__ import annotations

import builtins
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from nbguard import proc
from nbguard.blame.hints import fix_hint
from nbguard.fix import rules
from nbguard.model import CellError, EnvInfo

Source = Literal["library", "ruff", "rule"]


@dataclass(frozen=True)
class Code:
    """What a fix may edit: the notebook's code cells (by position among all cells) and the
    course modules its failure went through (by course-relative path)."""

    cells: Mapping[int, str]
    files: Mapping[str, str] = field(default_factory=dict)

    def all_text(self) -> str:
        return "\n".join([*self.cells.values(), *self.files.values()])

    def changed_from(self, other: Code) -> bool:
        return self.cells != other.cells or self.files != other.files


@dataclass(frozen=True)
class Candidate:
    source: Source
    description: str  # "np.product → np.prod (numpy 2.0 removed it)"
    code: Code  # the code with the candidate applied


def candidates(
    code: Code,
    error: CellError,
    messages: Sequence[str],
    baseline: EnvInfo | None,
    upcoming: EnvInfo,
) -> list[Candidate]:
    """Every distinct candidate that changes `code`, most trusted first.

    `messages` are what the libraries said around the failure (the error, and the warnings of
    both runs); `baseline` is None when there is no env to say which versions an upgrade
    crossed (then no rule of the table applies).
    """
    names = rules.aliases(code.all_text())
    found: list[Candidate] = []
    for description, rewrite in library_rewrites(error, messages, names):
        found.append(Candidate("library", description, _apply(code, rewrite, names, None)))
    if baseline is not None and _numpy_crossed(baseline, upcoming):
        fixed = ruff_fix(code)
        if fixed is not None:
            found.append(Candidate("ruff", "ruff's numpy autofix (NPY001, NPY201)", fixed))
    if baseline is not None:
        applicable = rules.applicable(_error_text(error), baseline, upcoming)
        if applicable:
            fixed = code
            for rule in applicable:
                only = None if rule.whole_notebook else error.cell
                fixed = _apply(fixed, rule.rewrite, names, only)
            description = "; ".join(rule.describe() for rule in applicable)
            found.append(Candidate("rule", description, fixed))
    unique: list[Candidate] = []
    for candidate in found:
        if candidate.code.changed_from(code) and all(
            candidate.code != seen.code for seen in unique
        ):
            unique.append(candidate)
    return unique


def _apply(code: Code, rewrite: rules.Rewrite, names: rules.Aliases, only: int | None) -> Code:
    cells = {
        index: source if only is not None and index != only else rewrite(source, names)
        for index, source in code.cells.items()
    }
    files = {path: rewrite(text, rules.aliases(text)) for path, text in code.files.items()}
    return Code(cells, files)


def _error_text(error: CellError) -> str:
    first = error.evalue.strip().splitlines()[0] if error.evalue.strip() else ""
    return f"{error.ename}: {first}"


def _numpy_crossed(baseline: EnvInfo, upcoming: EnvInfo) -> bool:
    # NPY001's aliases went in numpy 1.24, NPY201's names in 2.0.
    return any(rules.crosses("numpy", limit, baseline, upcoming) for limit in ("1.24", "2.0"))


# -- the library's own words -----------------------------------------------------------------

_MODULE_ATTRIBUTE = re.compile(r"module '(?P<module>[\w.]+)' has no attribute '(?P<old>\w+)'")
_OBJECT_ATTRIBUTE = re.compile(r"'(?P<type>\w+)' object has no attribute '(?P<old>\w+)'")
_IMPORT_NAME = re.compile(r"cannot import name '(?P<old>\w+)' from '(?P<module>[\w.]+)'")
_NO_MODULE = re.compile(r"No module named '(?P<module>[\w.]+)'")
# The replacement an advice names: "use `int` by itself", "use wobble.mean instead",
# "use .items instead", "use importlib instead".
_ADVICE = re.compile(
    r"^(?:use|call|import)\s+(?:the\s+)?(?:`(?P<tick>[^`\s]+)`|'(?P<quote>[^'\s]+)'|"
    r"(?P<bare>\.?[A-Za-z_][\w.]*(?:\(\))?))(?:\s+(?:instead|by itself|directly|module)\b.*)?$",
    re.IGNORECASE,
)


def library_rewrites(
    error: CellError, messages: Sequence[str], names: rules.Aliases
) -> list[tuple[str, rules.Rewrite]]:
    """The rewrites the libraries' messages ask for: what failed (from the error) replaced by
    what a message about it says to use instead."""
    first = error.evalue.strip().splitlines()[0] if error.evalue.strip() else ""
    failed = _what_failed(first)
    if failed is None:
        return []
    kind, module, old = failed
    found: list[tuple[str, rules.Rewrite]] = []
    for message in [error.evalue, *messages]:
        if message is not error.evalue and not re.search(
            rf"(?<!\w){re.escape(old)}(?!\w)", message
        ):
            continue  # advice about something else
        advice = fix_hint(message)
        new = _replacement(advice) if advice else None
        if new is None:
            continue
        rewrite = _rewrite_for(kind, module, old, new, names)
        if rewrite is not None:
            shown = f"{module}.{old}" if kind == "module" else old
            found.append((f"{shown} → {new} (the library's advice: {advice})", rewrite))
    return found


def _what_failed(first_line: str) -> tuple[str, str, str] | None:
    found = _MODULE_ATTRIBUTE.search(first_line)
    if found:
        return "module", found["module"], found["old"]
    found = _OBJECT_ATTRIBUTE.search(first_line)
    if found:
        return "object", found["type"], found["old"]
    found = _IMPORT_NAME.search(first_line)
    if found:
        return "import", found["module"], found["old"]
    found = _NO_MODULE.search(first_line)
    if found:
        return "no-module", found["module"], found["module"]
    return None


def _replacement(advice: str) -> str | None:
    found = _ADVICE.match(advice.strip())
    if found is None:
        return None
    name = found["tick"] or found["quote"] or found["bare"]
    name = name.removesuffix("()")
    # "use a.item() instead": a placeholder, not a name (the table knows that one).
    if re.fullmatch(r"\.?[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*", name) is None:
        return None
    return name


def _rewrite_for(
    kind: str, module: str, old: str, new: str, names: rules.Aliases
) -> rules.Rewrite | None:
    if kind == "module":
        if new.startswith("."):
            return None
        head, _, rest = new.partition(".")
        if not rest:
            return rules.attribute(module, old, new)
        if head in {module, module.split(".")[0], module.rsplit(".", 1)[-1], *names.of(module)}:
            return rules.attribute(module, old, rest)
        return None
    if kind == "object":
        last = new.rsplit(".", 1)[-1]
        return lambda source, _names: re.sub(rf"\.{re.escape(old)}(?!\w)", f".{last}", source)
    if kind == "import":
        return rules.word(old, new.rsplit(".", 1)[-1])
    if kind == "no-module" and not new.startswith(".") and not hasattr(builtins, new):
        return rules.word(old, new)
    return None


# -- ruff --------------------------------------------------------------------------------------

_RUFF_RULES = "NPY001,NPY201"


def ruff_binary() -> Path | None:
    """ruff from nbguard's own environment, else from PATH."""
    beside = Path(sys.executable).parent / "ruff"
    if beside.is_file():
        return beside
    found = shutil.which("ruff")
    return Path(found) if found else None


def ruff_fix(code: Code) -> Code | None:
    """`code` as ruff's numpy-2 autofix leaves it (run on a scratch copy: the cells as a
    notebook, the modules as files); None when ruff is not installed or fails."""
    binary = ruff_binary()
    if binary is None:
        return None
    with tempfile.TemporaryDirectory(prefix="nbguard-ruff-") as folder:
        root = Path(folder)
        order = sorted(code.cells)
        notebook = {
            "cells": [
                {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
                 "outputs": [], "source": code.cells[i]}
                for i in order
            ],
            "metadata": {"language_info": {"name": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }  # fmt: skip
        (root / "cells.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
        modules = {path: root / "modules" / path for path in code.files}
        for path, target in modules.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(code.files[path].encode("utf-8"))
        done = proc.run(
            [binary, "check", "--isolated", "--no-cache", "--select", _RUFF_RULES, "--fix",
             "--unsafe-fixes", "--exit-zero", "--quiet", "."],
            cwd=root,
            timeout=60,
        )  # fmt: skip
        if not done.ok:
            return None
        fixed = json.loads((root / "cells.ipynb").read_text(encoding="utf-8"))["cells"]
        cells = {i: _joined(cell["source"]) for i, cell in zip(order, fixed, strict=True)}
        files = {path: target.read_bytes().decode("utf-8") for path, target in modules.items()}
    return replace(code, cells=cells, files=files)


def _joined(source: object) -> str:
    return "".join(source) if isinstance(source, list) else str(source)
