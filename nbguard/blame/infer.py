"""Naming the upgrade behind a broken or changed notebook, from the evidence the runs hold
(traceback frames, the failing name's module, warnings); `inferred`, never guessed. The same
evidence ranks the candidates blame probes first."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from nbguard.ansi import strip_ansi
from nbguard.blame.search import PYTHON
from nbguard.envs import canonical, changed_packages
from nbguard.model import Comparison, Culprit, EnvInfo, NotebookRun

# ipykernel's own dependency closure: they move with every kernel upgrade, so their version
# changes alone say nothing about a course notebook.
KERNEL_MACHINERY = frozenset(
    (
        "ipykernel",
        "ipython",
        "ipython-pygments-lexers",
        "jupyter-client",
        "jupyter-core",
        "traitlets",
        "tornado",
        "pyzmq",
        "comm",
        "debugpy",
        "matplotlib-inline",
        "nest-asyncio",
        "nest-asyncio2",
        "psutil",
        "prompt-toolkit",
        "pygments",
        "jedi",
        "parso",
        "pexpect",
        "ptyprocess",
        "stack-data",
        "executing",
        "asttokens",
        "pure-eval",
        "wcwidth",
        "decorator",
        "appnope",
        "typing-extensions",
        "exceptiongroup",
        "backcall",
        "pickleshare",
    )
)
_SITE_PACKAGES_FRAME = re.compile(r"site-packages/([A-Za-z0-9_]+)")
_MODULE_IN_MESSAGE = re.compile(
    r"(?:module '([\w.]+)' has no attribute|No module named '([\w.]+)'|"
    r"cannot import name '\w+' from '([\w.]+)')"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def infer(
    comparison: Comparison,
    before_run: NotebookRun,
    after_run: NotebookRun,
    before: EnvInfo,
    after: EnvInfo,
) -> Culprit | None:
    """The most likely upgrade behind a broken or changed verdict, with the reason; None when
    the evidence names nothing (or nothing changed between the envs)."""
    if comparison.verdict not in {"broken", "changed"}:
        return None
    moved = {name: (old, new) for name, old, new in changed_packages(before, after)}
    python_moved = before.python != after.python and None not in (before.python, after.python)
    modules = module_owners(after) | module_owners(before)

    def blame(name: str, reason: str) -> Culprit | None:
        dist = modules.get(name, canonical(name))
        if dist in moved:
            old, new = moved[dist]
            return Culprit(dist, old, new, "inferred", reason)
        return None

    error = after_run.error
    if error is not None:
        frames = _SITE_PACKAGES_FRAME.findall(strip_ansi("\n".join(error.traceback)))
        for module in reversed(frames):  # innermost frame first
            found = blame(module, f"the traceback of cell {error.cell} ends in {module}")
            if found:
                return found
        for groups in _MODULE_IN_MESSAGE.findall(error.evalue):
            module = next(g for g in groups if g).split(".")[0]
            found = blame(module, f"{error.ename} names module {module}")
            if found:
                return found
        if python_moved and error.ename in {"ModuleNotFoundError", "ImportError"}:
            return Culprit(PYTHON, before.python, after.python, "inferred", error.evalue)
    cells = {change.cell for change in comparison.changes}
    for record in (*before_run.warnings, *after_run.warnings):
        if record.package and record.cell in cells:
            found = blame(
                record.package, f"{record.category} from {record.package} in cell {record.cell}"
            )
            if found:
                return found
    aliases = _import_aliases(cell.source for cell in after_run.cells)
    for cell in after_run.cells:
        if cell.index not in cells:
            continue
        for name in re.findall(r"\b([A-Za-z_]\w*)\.", cell.source):
            module = aliases.get(name, name)
            found = blame(module, f"cell {cell.index} uses {module}")
            if found:
                return found
    course_moves = [name for name in moved if name not in KERNEL_MACHINERY]
    if len(course_moves) == 1 and not python_moved:
        old, new = moved[course_moves[0]]
        return Culprit(
            course_moves[0], old, new, "inferred", "the only course package that changed"
        )
    if python_moved and not course_moves:
        return Culprit(PYTHON, before.python, after.python, "inferred", "only Python changed")
    return None


def candidates(
    before: EnvInfo, after: EnvInfo, after_run: NotebookRun, inferred: Culprit | None
) -> tuple[str, ...]:
    """What may have broken the notebook, for blame to probe, most likely first: the inferred
    culprit, packages the failing run names (traceback, error, warnings), the other changed
    packages, Python (PYTHON).

    A package new in `after` is no candidate: "not installed" cannot be pinned, and it moves
    with whatever brought it in. ipykernel's machinery counts only when nothing else moved.
    """
    skipped = ignored(before, after)
    changed = [name for name, old, _ in changed_packages(before, after) if old is not None]
    packages = [name for name in changed if name not in skipped]
    python = [PYTHON] if before.python != after.python else []
    owners = module_owners(after)
    named = {owners.get(m, canonical(m)) for m in _mentioned_modules(after_run)}
    named |= {canonical(w.package) for w in after_run.warnings if w.package}
    ranked = sorted(packages, key=lambda name: (name not in named, name))
    ordered = [*ranked, *python]
    if inferred is not None and inferred.package in ordered:
        ordered.remove(inferred.package)
        ordered.insert(0, inferred.package)
    return tuple(ordered)


def ignored(before: EnvInfo, after: EnvInfo) -> frozenset[str]:
    """Packages whose versions blame does not tell envs apart by: ipykernel's machinery,
    unless it is all that changed (Python included), when it is what gets blamed."""
    changed = {name for name, _, _ in changed_packages(before, after)}
    if changed - KERNEL_MACHINERY or before.python != after.python:
        return KERNEL_MACHINERY
    return frozenset()


def _mentioned_modules(run: NotebookRun) -> set[str]:
    """Top-level module names in the failing run's traceback and error message."""
    if run.error is None:
        return set()
    text = "\n".join([*run.error.traceback, run.error.evalue])
    # Every identifier: ranking only decides which probe comes first, so a word that happens
    # to name a package costs one probe at worst.
    return set(_IDENTIFIER.findall(strip_ansi(text)))


_IMPORT_AS = re.compile(r"^\s*import\s+([\w.]+)\s+as\s+(\w+)", re.M)
_FROM_IMPORT = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+(.+)$", re.M)


def _import_aliases(sources: Iterable[str]) -> dict[str, str]:
    """Name bound in the notebook → top-level module: `np` → numpy, `integrate` → scipy."""
    aliases: dict[str, str] = {}
    for source in sources:
        for module, alias in _IMPORT_AS.findall(source):
            aliases[alias] = module.split(".")[0]
        for module, names in _FROM_IMPORT.findall(source):
            for item in names.strip("() ").split(","):
                bound = item.split(" as ")[-1].strip()
                if bound.isidentifier():
                    aliases[bound] = module.split(".")[0]
    return aliases


def module_owners(env: EnvInfo) -> dict[str, str]:
    if env.interpreter is None:
        return {}
    return _owners(env.interpreter.parent.parent)


@cache
def _owners(prefix: Path) -> dict[str, str]:
    """Top-level importable name → distribution, from the env's installed RECORD files."""
    owners: dict[str, str] = {}
    for record in prefix.glob("lib/python*/site-packages/*.dist-info/RECORD"):
        dist = canonical(record.parent.name.split("-")[0])
        for line in record.read_text(encoding="utf-8", errors="replace").splitlines():
            top = line.split(",", 1)[0].split("/", 1)[0]
            if top.endswith(".py"):
                top = top[:-3]
            if top and not top.endswith((".dist-info", ".data")) and top != "..":
                owners.setdefault(top, dist)
    return owners
