"""Naming the upgrade behind a broken or changed notebook, from the evidence the runs hold;
`inferred`, never guessed. Evidence is ranked by strength: what the failing line calls
(resolved through the notebook's imports and assignments) and the traceback's frames, the
module the error names, warnings from the failing line's cell, and for a changed output the
module of the object shown. The same evidence ranks the candidates blame probes first."""

from __future__ import annotations

import ast
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeGuard

from nbguard import installed
from nbguard.ansi import strip_ansi
from nbguard.blame.hints import first_sentence
from nbguard.blame.search import PYTHON
from nbguard.envs import canonical, changed_packages
from nbguard.model import CellError, CellResult, Comparison, Culprit, EnvInfo, NotebookRun

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
_SITE_PACKAGES_FRAME = re.compile(r"(?:site|dist)-packages/([A-Za-z0-9_]+)")
_MODULE_IN_MESSAGE = re.compile(
    r"(?:module '([\w.]+)' has no attribute|No module named '([\w.]+)'|"
    r"cannot import name '\w+' from '([\w.]+)')"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# IPython marks the line a cell failed on: "----> 4 sns.jointplot(x, y)".
_FAILING_LINE = re.compile(r"^-+>\s*(\d+)\s?(.*)$", re.M)
# A repr that names its type's module: `np.float64(3.0)`, `wobble.Scalar(12.0)`,
# `<matplotlib.figure.Figure object at 0x…>`.
_QUALIFIED_REPR = re.compile(r"(?<![\w.])<?([A-Za-z_]\w*)(?:\.\w+)+(?:\(| object\b)")
# Well-known reprs that name no module. Kept to the scientific stack's basic types; anything
# else is found through the cell's source.
_BARE_REPRS = (("array(", "numpy"), ("dtype(", "numpy"), ("<Figure size", "matplotlib"))
# IPython's help syntax, `np.trapz?`: no Python.
_HELP = re.compile(r"^\s*\??[\w.]+\?{1,2}\s*$")
# Calls whose arguments a cell shows.
_DISPLAY_CALLS = frozenset(("print", "display", "repr", "str"))
# How far an assignment chain is followed (`b = a.x`, `a = pd.read_csv(...)`).
_MAX_HOPS = 8


def infer(
    comparison: Comparison,
    before_run: NotebookRun,
    after_run: NotebookRun,
    before: EnvInfo,
    after: EnvInfo,
) -> Culprit | None:
    """The most likely upgrade behind a broken or changed verdict, with the evidence it rests
    on as a one-line reason; None when the evidence names nothing (or nothing changed)."""
    if comparison.verdict not in {"broken", "changed"}:
        return None
    return _Evidence(comparison, before_run, after_run, before, after).culprit()


def candidates(
    before: EnvInfo, after: EnvInfo, after_run: NotebookRun, inferred: Culprit | None
) -> tuple[str, ...]:
    """What may have broken the notebook, for blame to probe, most likely first: the inferred
    culprit, packages the failing run names (the failing line, traceback, error, warnings),
    the other changed packages, Python (PYTHON).

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
    if after_run.error is not None:
        names = _Names(after_run.cells, after_run.error.cell, owners)
        for call in _failing_calls(after_run.error, after_run.cells):
            module = names.origin(call.node)
            if module is not None:
                named.add(owners.get(module, canonical(module)))
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


class _Evidence:
    """One comparison's evidence, strongest first; the first that names a package that moved
    between the two envs is the culprit."""

    def __init__(
        self,
        comparison: Comparison,
        before_run: NotebookRun,
        after_run: NotebookRun,
        before: EnvInfo,
        after: EnvInfo,
    ) -> None:
        self.comparison = comparison
        self.runs = (before_run, after_run)
        self.before, self.after = before, after
        self.moved = {name: (old, new) for name, old, new in changed_packages(before, after)}
        self.python_moved = before.python != after.python and None not in (
            before.python,
            after.python,
        )
        self.owners = module_owners(after) | module_owners(before)
        # The cells as they ran where the notebook got furthest.
        self.cells = after_run.cells or before_run.cells

    def culprit(self) -> Culprit | None:
        error = self.runs[1].error
        found = self._from_error(error) if error is not None else None
        if found is None and self.comparison.verdict == "changed":
            found = self._from_changed_outputs()
        # Where the traceback marks the failing line, the rest of its cell is no evidence: a
        # warning or a module used on another line says nothing about the line that failed.
        line_known = error is not None and _failing_line(error) is not None
        if found is None:
            found = self._from_warnings(error, only_named=line_known)
        if found is None and not line_known:
            found = self._from_the_cells(error)
        if found is None:
            found = self._from_the_envs_alone()
        return found

    # -- naming a package ---------------------------------------------------------------------

    def _dist(self, module: str) -> str:
        top = module.split(".")[0]
        return self.owners.get(top, canonical(top))

    def _blame(self, module: str, reason: str) -> Culprit | None:
        """The culprit `module` names, if its distribution moved; `reason` follows its name."""
        dist = self._dist(module)
        if dist not in self.moved:
            return None
        old, new = self.moved[dist]
        return Culprit(dist, old, new, "inferred", f"{dist}: {reason}")

    # -- a broken notebook --------------------------------------------------------------------

    def _from_error(self, error: CellError) -> Culprit | None:
        frames = _frame_modules(error)
        names = _Names(self.cells, error.cell, self.owners)
        message = _first_line(error.evalue)
        calls = _failing_calls(error, self.cells)
        on_line = any(call.on_line for call in calls)
        # The callee the message names first ("jointplot() takes …"), then one whose package
        # the traceback passes through, then the outermost call.
        ranked = sorted(
            calls,
            key=lambda call: (
                not _mentions(message, call.last),
                names.origin(call.node) is None
                or self._dist(names.origin(call.node) or "") not in frames,
                call.order,
            ),
        )
        for call in ranked:
            if not on_line and not _mentions(message, call.last):
                continue  # a whole cell's calls count only when the error names them
            module = names.origin(call.node)
            if module is None:
                continue
            verb = "is called" if call.called else "is used"
            where = (
                f"on the failing line (cell {error.cell})"
                if on_line
                else f"in cell {error.cell} and named in the error"
            )
            found = self._blame(module, f"`{call.text}` {verb} {where}")
            if found:
                return found
        for module in reversed(frames):  # innermost frame first
            found = self._blame(module, f"the traceback of cell {error.cell} ends in {module}")
            if found:
                return found
        for groups in _MODULE_IN_MESSAGE.findall(error.evalue):
            module = next(g for g in groups if g).split(".")[0]
            found = self._blame(module, f"{error.ename} names module {module}")
            if found:
                return found
        if self.python_moved and error.ename in {"ModuleNotFoundError", "ImportError"}:
            return Culprit(
                PYTHON,
                self.before.python,
                self.after.python,
                "inferred",
                f"{PYTHON}: {error.ename}: {first_sentence(error.evalue)}",
            )
        return None

    # -- a changed notebook -------------------------------------------------------------------

    def _from_changed_outputs(self) -> Culprit | None:
        """The module of what a changed cell shows: a repr naming its type's module, else where
        the displayed object came from in the notebook's source."""
        changes = self.comparison.changes
        for change in changes:
            for module in _repr_modules(change.before, change.after, self._aliases(change.cell)):
                found = self._blame(
                    module, f"the changed output of cell {change.cell} is a {module} repr"
                )
                if found:
                    return found
        for cell in dict.fromkeys(change.cell for change in changes):
            names = _Names(self.cells, cell, self.owners)
            for node, text in names.displayed(cell):
                origin = names.origin(node)
                if origin is None:
                    continue
                made = names.provenance(node)
                shown = f"cell {cell} shows `{text}`" + (f", {made}" if made else "")
                found = self._blame(origin, shown)
                if found:
                    return found
        return None

    def _aliases(self, cell: int) -> dict[str, str]:
        return _Names(self.cells, cell, self.owners).modules

    # -- warnings, then the envs alone ---------------------------------------------------------

    def _from_warnings(self, error: CellError | None, only_named: bool) -> Culprit | None:
        """A warning from the failing (or changed) cell that names what failed there, or,
        unless `only_named`, the only package that warned in that cell."""
        if error is not None:
            cells = {error.cell}
            wanted = _error_names(error) | {
                call.last for call in _failing_calls(error, self.cells) if call.on_line
            }
        else:
            cells = {change.cell for change in self.comparison.changes}
            wanted = set()
        records = [
            record
            for run in self.runs
            for record in run.warnings
            if record.package and record.cell in cells
        ]
        for record in records:
            named = sorted(name for name in wanted if _mentions(record.message, name))
            if named:
                found = self._blame(
                    record.package or "",
                    f"a {record.category} from cell {record.cell} names `{named[0]}`",
                )
                if found:
                    return found
        packages = {canonical(record.package or "") for record in records}
        if len(packages) == 1 and not only_named:
            record = records[0]
            return self._blame(
                record.package or "",
                f"the only package that warned in cell {record.cell} ({record.category})",
            )
        return None

    def _from_the_cells(self, error: CellError | None) -> Culprit | None:
        """The one upgraded package the failing (or changed) cells use, if only one."""
        cells = {error.cell} if error else {change.cell for change in self.comparison.changes}
        used: dict[str, int] = {}
        for cell in sorted(cells):
            names = _Names(self.cells, cell, self.owners)
            tree = next((_parse(c.source) for c in self.cells if c.index == cell), None)
            for node in ast.walk(tree) if tree else ():
                if isinstance(node, ast.Name) and names.modules.get(node.id):
                    dist = self._dist(names.modules[node.id])
                    if dist in self.moved:
                        used.setdefault(dist, cell)
        if len(used) != 1:
            return None
        [(dist, cell)] = used.items()
        return self._blame(dist, f"the only upgraded package cell {cell} uses")

    def _from_the_envs_alone(self) -> Culprit | None:
        course_moves = [name for name in self.moved if name not in KERNEL_MACHINERY]
        if len(course_moves) == 1 and not self.python_moved:
            name = course_moves[0]
            old, new = self.moved[name]
            return Culprit(
                name, old, new, "inferred", f"{name}: the only course package that changed"
            )
        if self.python_moved and not course_moves:
            return Culprit(
                PYTHON,
                self.before.python,
                self.after.python,
                "inferred",
                f"{PYTHON}: only Python changed",
            )
        return None


# -- the notebook's source ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """A callee or attribute on the failing line (or in the failing cell)."""

    node: ast.expr
    text: str  # as written, e.g. "sns.jointplot"
    last: str  # its last name, e.g. "jointplot"
    called: bool
    on_line: bool  # on the failing line, not merely in the failing cell
    order: int  # outermost first


class _Names:
    """What the names of a notebook are bound to up to one cell: modules (through imports)
    and expressions (through assignments), the later binding winning."""

    def __init__(
        self, cells: Sequence[CellResult], upto: int, installed: Iterable[str] = ()
    ) -> None:
        # Importable names the notebook never binds still name their module (`%run`, a star
        # import, an import the kernel's startup made).
        self.installed = frozenset(installed)
        self.modules: dict[str, str] = {}  # name → dotted module it was imported from
        self.values: dict[str, tuple[ast.expr, int]] = {}  # name → assigned value, its cell
        self.cells = cells
        for cell in cells:
            if cell.index > upto:
                break
            tree = _parse(cell.source)
            if tree is None:
                self._regex_imports(cell.source)
                continue
            for node in sorted(_bindings(tree), key=lambda n: (n.lineno, n.col_offset)):
                self._bind(node, cell.index)

    def _bind(self, node: ast.stmt, cell: int) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                self.modules[bound] = alias.name if alias.asname else bound
                self.values.pop(bound, None)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                self.modules[alias.asname or alias.name] = node.module
                self.values.pop(alias.asname or alias.name, None)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in _target_names(target):
                    # `df = df.dropna()` keeps where `df` came from.
                    if _root_name(node.value) != name:
                        self.values[name] = (node.value, cell)
                        self.modules.pop(name, None)
        elif isinstance(node, ast.For | ast.With):
            pairs: list[tuple[ast.expr | None, ast.expr]] = (
                [(node.target, node.iter)]
                if isinstance(node, ast.For)
                else [(item.optional_vars, item.context_expr) for item in node.items]
            )
            for holder, value in pairs:
                for name in _target_names(holder) if holder is not None else ():
                    self.values[name] = (value, cell)
                    self.modules.pop(name, None)

    def _regex_imports(self, source: str) -> None:
        for module, alias in _IMPORT_AS.findall(source):
            self.modules[alias] = module
        for module, names in _FROM_IMPORT.findall(source):
            for item in names.strip("() ").split(","):
                bound = item.split(" as ")[-1].strip()
                if bound.isidentifier():
                    self.modules[bound] = module

    def origin(self, node: ast.expr, hops: int = 0) -> str | None:
        """The module an expression's value comes from: the one its leading name was imported
        from, or, for a name assigned earlier, the origin of what was assigned."""
        root = _root_name(node)
        if root is None or hops > _MAX_HOPS:
            return None
        if root in self.modules:
            return self.modules[root]
        if root in self.values:
            value, _cell = self.values[root]
            return self.origin(value, hops + 1)
        return root if root in self.installed else None

    def provenance(self, node: ast.expr) -> str | None:
        """Where an expression's leading name got its value, for a reason: "`log` made by
        `pd.DataFrame` (cell 1)"; None when the name is the module itself."""
        root = _root_name(node)
        first = root
        for _hop in range(_MAX_HOPS):
            if root is None or root not in self.values:
                return None
            value, cell = self.values[root]
            inner = _root_name(value)
            if inner is None or inner not in self.values:
                return f"`{first}` made by `{_short(value)}` (cell {cell})"
            root = inner
        return None

    def displayed(self, index: int) -> Iterator[tuple[ast.expr, str]]:
        """What a cell shows: its last expression, and what it prints or displays."""
        tree = next((_parse(cell.source) for cell in self.cells if cell.index == index), None)
        if tree is None:
            return
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            value = tree.body[-1].value
            if not _is_display_call(value):
                yield value, _short(value)
        for node in ast.walk(tree):
            if _is_display_call(node):
                for arg in node.args:
                    for part in _parts(arg):
                        yield part, _short(part)


def _failing_calls(error: CellError, cells: Sequence[CellResult]) -> list[_Call]:
    """The callees and attributes on the line the cell failed on (from the traceback's
    `---->` marker); without one, every call in the failing cell, marked as not on the line."""
    cell = next((c for c in cells if c.index == error.cell), None)
    tree = _parse(cell.source) if cell is not None else None
    if tree is None:
        return []
    line = _failing_line(error)
    found: list[_Call] = []
    callees = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute | ast.Name) or isinstance(
            getattr(node, "ctx", None), ast.Store
        ):
            continue
        called = id(node) in callees
        if isinstance(node, ast.Name) and not called:
            continue  # a bare name is no API; a called one is (`OneHotEncoder(...)`)
        end = node.end_lineno or node.lineno
        if line is not None and not node.lineno <= line <= end:
            continue
        last = node.attr if isinstance(node, ast.Attribute) else node.id
        found.append(_Call(node, _short(node), last, called, line is not None, len(found)))
    # An attribute inside a longer chain (`np` in `np.int`, `a.b` in `a.b.c()`) is its part.
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return [call for call in found if id(call.node) not in inner or call.called]


def _failing_line(error: CellError) -> int | None:
    """The line of the cell the traceback marks, counted from 1; None without a marker."""
    text = strip_ansi("\n".join(error.traceback))
    found = _FAILING_LINE.search(text)
    return int(found.group(1)) if found else None


def _parse(source: str) -> ast.Module | None:
    """A cell's source as Python, IPython's magics and shell escapes blanked (line numbers
    kept); None when it is not Python."""
    if source.lstrip().startswith("%%"):
        return None
    lines = [
        "" if line.lstrip().startswith(("%", "!")) or _HELP.match(line) else line
        for line in source.splitlines()
    ]
    try:
        return ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return None


def _bindings(tree: ast.Module) -> Iterator[ast.stmt]:
    kinds = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.For, ast.With)
    for node in ast.walk(tree):
        if isinstance(node, kinds):
            yield node


def _target_names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _target_names(element)


def _root_name(node: ast.expr) -> str | None:
    """The name an expression starts from: `pd` in `pd.read_csv(path).dtypes`."""
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
            node = node.value
        elif isinstance(node, ast.BinOp):
            node = node.left
        elif isinstance(node, ast.UnaryOp):
            node = node.operand
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def _parts(node: ast.expr) -> Iterator[ast.expr]:
    """What an f-string or a plain expression shows."""
    if isinstance(node, ast.JoinedStr):
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                yield value.value
    elif not isinstance(node, ast.Constant):
        yield node


def _is_display_call(node: ast.AST) -> TypeGuard[ast.Call]:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _DISPLAY_CALLS
    )


def _short(node: ast.expr) -> str:
    """An expression as a reason quotes it: a call without its arguments."""
    text = _short(node.func) + "(…)" if isinstance(node, ast.Call) else ast.unparse(node)
    return text if len(text) <= 40 else text[:39] + "…"


def _repr_modules(before: str | None, after: str | None, aliases: dict[str, str]) -> list[str]:
    """Modules a changed output's reprs name, the new side's first: `np.float64(3.0)` →
    numpy (through the notebook's `import numpy as np`), `wobble.Scalar(12.0)` → wobble."""
    found: list[str] = []
    for text in (after or "", before or ""):
        for name in _QUALIFIED_REPR.findall(text):
            found.append(aliases.get(name, name))
        found += [module for marker, module in _BARE_REPRS if marker in text]
    return list(dict.fromkeys(found))


def _frame_modules(error: CellError) -> list[str]:
    return _SITE_PACKAGES_FRAME.findall(strip_ansi("\n".join(error.traceback)))


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


def _error_names(error: CellError) -> set[str]:
    """Quoted names in the error's first line: `int` in "module 'numpy' has no attribute
    'int'" (the module itself says where, not what)."""
    names = set(
        re.findall(
            r"(?<!module )(?<!from )['`\"]([A-Za-z_][\w.]*)['`\"]", _first_line(error.evalue)
        )
    )
    return {name.rsplit(".", 1)[-1] for name in names if len(name) > 2}


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(name)}(?!\w)", text) is not None


def _mentioned_modules(run: NotebookRun) -> set[str]:
    """Top-level module names in the failing run's traceback and error message."""
    if run.error is None:
        return set()
    text = "\n".join([*run.error.traceback, run.error.evalue])
    # Every identifier: ranking only decides which probe comes first, so a word that happens
    # to name a package costs one probe at worst.
    return set(_IDENTIFIER.findall(strip_ansi(text)))


_RECORDS = threading.Lock()
_IMPORT_AS = re.compile(r"^\s*import\s+([\w.]+)\s+as\s+(\w+)", re.M)
_FROM_IMPORT = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+(.+)$", re.M)


def module_owners(env: EnvInfo) -> dict[str, str]:
    if env.interpreter is None:
        return {}
    # Notebooks are judged side by side: the first reads the env's RECORD files, the others
    # wait for its answer instead of all reading them at once.
    with _RECORDS:
        return _owners(env.interpreter.parent.parent)


@cache
def _records(prefix: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each distribution installed in the env (canonical name) with the paths its RECORD
    file lists, relative to site-packages."""
    return tuple(
        (canonical(folder.split("-")[0]), tuple(path for path, _ in files))
        for folder, files in installed.records(prefix)
    )


@cache
def _owners(prefix: Path) -> dict[str, str]:
    """Top-level importable name → distribution, from the env's installed RECORD files."""
    owners: dict[str, str] = {}
    for dist, paths in _records(prefix):
        for path in paths:
            top = path.split("/", 1)[0]
            if top.endswith(".py"):
                top = top[:-3]
            if top and not top.endswith((".dist-info", ".data")) and top != "..":
                owners.setdefault(top, dist)
    return owners


def imported_packages(env: EnvInfo, run: NotebookRun | None) -> frozenset[str] | None:
    """The distributions of `env` whose modules `run` imported, by the module files its
    kernel recorded; None when the run left no record (no kernel, or the record was lost).
    What the record cannot show counts as imported: a distribution with a top-level
    extension module (the record holds `.py` files only), and one without a RECORD file
    naming its files (a conda package's)."""
    if run is None or run.reads is None or env.interpreter is None:
        return None
    with _RECORDS:
        files, unseen, listed = _recorded(env.interpreter.parent.parent)
    unknown = {name for name in env.packages if canonical(name) not in listed}
    return frozenset({files[path] for path in run.imports if path in files} | unseen | unknown)


@cache
def _recorded(prefix: Path) -> tuple[dict[str, str], frozenset[str], frozenset[str]]:
    """Each `.py` file of the env (relative to site-packages) → its distribution, from the
    RECORD files; the distributions importable through a top-level extension module or
    with no `.py` file at all, whose import the record cannot show; and every distribution
    a RECORD file names."""
    files: dict[str, str] = {}
    unseen: set[str] = set()
    listed: set[str] = set()
    for dist, paths in _records(prefix):
        listed.add(dist)
        has_source = False
        for path in paths:
            if path.endswith(".py"):
                files[path] = dist
                has_source = True
            elif "/" not in path and path.endswith((".so", ".pyd")):
                unseen.add(dist)
        if not has_source:
            unseen.add(dist)
    return files, frozenset(unseen), frozenset(listed)
