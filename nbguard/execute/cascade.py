"""Which later errors of a run only follow from an earlier failed cell: pure AST analysis."""

from __future__ import annotations

import ast
import re

from nbguard.model import CellError

# The names a NameError / UnboundLocalError is about, and the attribute an AttributeError
# missed ("name 'x' is not defined", "cannot access local variable 'x' ...").
_MISSING_NAME = re.compile(r"\b(?:name|variable) '(\w+)'")
_MISSING_ATTRIBUTE = re.compile(r"has no attribute '(\w+)'")
# The line of the cell that raised: IPython marks it "----> 3" in the cell's frame, which
# comes first in the traceback.
_FAILING_LINE = re.compile(r"^-+>\s*(\d+)", re.MULTILINE)
# IPython syntax ast cannot read: line magics and shell escapes, alone or assigned.
_IPYTHON_LINE = re.compile(r"^([ \t]*)(?:([\w.\[\], ]+?)[ \t]*=[ \t]*)?[%!].*$", re.MULTILINE)


class Cascade:
    """The names the failed cells of a run would have defined, so a later error that only
    follows from an earlier failure (NameError: name 'x' is not defined) is not reported
    as a break of its own."""

    def __init__(self) -> None:
        self.undefined: set[str] = set()

    def failed(self, source: str, error: CellError) -> None:
        self.undefined |= _defined_names(source, _failing_line(error))

    def defined(self, source: str) -> None:
        # A name a later cell redefined has a proper value again: an error about it is the
        # later cell's own.
        self.undefined -= _defined_names(source)

    def explains(self, error: CellError, source: str) -> bool:
        """Whether `error`, raised by a cell of `source`, is about a name a failed cell never
        defined: a NameError, or an AttributeError on such a name (`x.mean` where `x` kept a
        placeholder value)."""
        if error.ename in ("NameError", "UnboundLocalError"):
            found = _MISSING_NAME.search(error.evalue)
            return found is not None and found.group(1) in self.undefined
        if error.ename == "AttributeError":
            found = _MISSING_ATTRIBUTE.search(error.evalue)
            tree = _parse(source)
            if found is None or tree is None:
                return False
            return any(
                isinstance(node, ast.Attribute)
                and node.attr == found.group(1)
                and _root_name(node.value) in self.undefined
                for node in ast.walk(tree)
            )
        return False


def _failing_line(error: CellError) -> int | None:
    found = _FAILING_LINE.search("\n".join(error.traceback))
    return int(found.group(1)) if found else None


def _root_name(node: ast.expr) -> str | None:
    """`df` for `df`, `df.a`, `df["a"].b` and `df.a()`: the variable an expression reads."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _parse(source: str) -> ast.Module | None:
    """The cell as Python, magics and shell escapes replaced by statements that keep the
    lines and the names they assign; None for a cell ast cannot read even then."""

    def plain(line: re.Match[str]) -> str:
        indent, target = line.group(1), line.group(2)
        return f"{indent}{target} = None" if target else f"{indent}pass"

    try:
        return ast.parse(_IPYTHON_LINE.sub(plain, source))
    except (SyntaxError, ValueError):  # ValueError: a null byte in the source
        return None


def _defined_names(source: str, from_line: int | None = None) -> set[str]:
    """The names the cell's top-level statements bind, from the one holding `from_line` on
    (the ones before it ran, so their names exist); every statement when it is None."""
    tree = _parse(source)
    if tree is None:
        return set()
    binder = _Binder()
    for statement in tree.body:
        end = statement.end_lineno or statement.lineno
        if from_line is None or end >= from_line:
            binder.visit(statement)
    return binder.names


class _Binder(ast.NodeVisitor):
    """Collects the module-level names a piece of code binds; function and class bodies
    and comprehensions bind their own, except what they declare `global` or assign with
    `:=` (which leaks out of a comprehension)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):  # assignments of every form, for, with-as, :=
            self.names.add(node.id)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.names.add(alias.asname or alias.name.partition(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":  # names unknown without importing the module
                self.names.add(alias.asname or alias.name)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.names.add(node.name)
        for expr in (*node.decorator_list, *node.args.defaults, *node.args.kw_defaults):
            if expr is not None:
                self.visit(expr)
        self._globals(node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.names.add(node.name)
        for expr in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
            self.visit(expr)
        self._globals(node.body)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        pass  # its parameters and any := inside stay local

    def visit_Global(self, node: ast.Global) -> None:
        self.names.update(node.names)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.names.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.names.add(node.rest)
        self.generic_visit(node)

    def _comprehension(self, node: ast.expr) -> None:
        self.names.update(
            sub.target.id
            for sub in ast.walk(node)
            if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name)
        )

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def _globals(self, body: list[ast.stmt]) -> None:
        for statement in body:
            for sub in ast.walk(statement):
                if isinstance(sub, ast.Global):
                    self.names.update(sub.names)
