"""The well-known migrations nbguard keeps: each API a release removed, its replacement as a
source rewrite, and the version that made it necessary (pure functions over source text)."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from nbguard.envs import canonical
from nbguard.model import EnvInfo

PYTHON = "python"

# A dotted or subscripted receiver, as `.mad()` or `.append(...)` is called on it.
_RECEIVER = r"(?P<recv>\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\]\n]*\])*)"
_QUOTED = "['\"`]{}['\"`]"

Rewrite = Callable[[str, "Aliases"], str]


@dataclass(frozen=True)
class Aliases:
    """The names a piece of code binds modules to (`import numpy as np` → numpy: {np})."""

    modules: Mapping[str, frozenset[str]]

    def of(self, module: str) -> frozenset[str]:
        return self.modules.get(module, frozenset())


_IMPORT_AS = re.compile(
    r"^\s*import\s+(?P<names>[\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+(?:\s+as\s+\w+)?)*)",
    re.MULTILINE,
)
_FROM_IMPORT = re.compile(
    r"^\s*from\s+(?P<package>[\w.]+)\s+import\s+(?P<names>[^\n#;]+)", re.MULTILINE
)


def aliases(code: str) -> Aliases:
    """Every module name `code` imports, with the names it is bound to."""
    found: dict[str, set[str]] = {}
    for statement in _IMPORT_AS.finditer(code):
        for item in statement.group("names").split(","):
            module, _, alias = (part.strip() for part in item.partition(" as "))
            module = module.strip()
            # `import a.b` binds `a`, and a.b is reachable through it.
            found.setdefault(module, set()).add(alias or module)
    for statement in _FROM_IMPORT.finditer(code):
        package = statement.group("package")
        for item in statement.group("names").strip("() \\").split(","):
            name, _, alias = (part.strip() for part in item.partition(" as "))
            if re.fullmatch(r"\w+", name):
                found.setdefault(f"{package}.{name}", set()).add(alias or name)
    return Aliases({module: frozenset(names) for module, names in found.items()})


@dataclass(frozen=True)
class Rule:
    """One removal and its migration."""

    package: str  # the distribution whose release removed it, or "python"
    removed_in: str  # the release that removed it: the rule applies when an upgrade crosses it
    removed: str  # the API, as a person names it: "pandas.Series.iteritems"
    replacement: str  # "Series.items"
    evidence: re.Pattern[str]  # what a failure of that API says (matched against the error)
    rewrite: Rewrite
    whole_notebook: bool = True  # False: only the failing cell (e.g. `.append`, common on lists)

    def describe(self) -> str:
        return f"{self.removed} → {self.replacement} ({self.package} {self.removed_in} removed it)"


def crossed(rule: Rule, baseline: EnvInfo, upcoming: EnvInfo) -> bool:
    """Whether the upgrade from `baseline` to `upcoming` crosses the release that made the
    rule necessary."""
    return crosses(rule.package, rule.removed_in, baseline, upcoming)


def crosses(package: str, version: str, baseline: EnvInfo, upcoming: EnvInfo) -> bool:
    """Whether `upcoming` has `package` at `version` or later and `baseline` had it earlier
    (or not at all); `package` "python" is the interpreter."""
    if package == PYTHON:
        old, new = baseline.python, upcoming.python
    else:
        old = _version_of(baseline, package)
        new = _version_of(upcoming, package)
    if new is None:
        return False
    limit = release(version)
    return release(new) >= limit and (old is None or release(old) < limit)


def _version_of(env: EnvInfo, package: str) -> str | None:
    wanted = canonical(package)
    return next((v for name, v in env.packages.items() if canonical(name) == wanted), None)


def release(version: str) -> tuple[int, ...]:
    """The release numbers of a version ("2.0.0rc1" → (2, 0, 0)), for ordering."""
    found = re.match(r"\d+(?:\.\d+)*", version.strip().lstrip("v"))
    return tuple(int(part) for part in found.group().split(".")) if found else (0,)


def applicable(error_text: str, baseline: EnvInfo, upcoming: EnvInfo) -> tuple[Rule, ...]:
    """The rules whose removal the failure names and the upgrade crosses."""
    return tuple(
        rule
        for rule in RULES
        if rule.evidence.search(error_text) and crossed(rule, baseline, upcoming)
    )


# -- rewrites ---------------------------------------------------------------------------------


def _module_prefixes(module: str, names: Aliases) -> set[str]:
    """How code reaches `module`: its aliases, and `parent.module` through a parent's."""
    prefixes = set(names.of(module))
    parent = module.rpartition(".")[0]
    while parent:
        prefixes |= {f"{alias}.{module[len(parent) + 1 :]}" for alias in names.of(parent)}
        parent = parent.rpartition(".")[0]
    return prefixes


def attribute(module: str, old: str, new: str) -> Rewrite:
    """`alias.old` → `alias.new` for every alias of `module`; a builtin `new` (`int`) replaces
    the whole access (`np.int` → `int`)."""

    def rewrite(source: str, names: Aliases) -> str:
        for prefix in sorted(_module_prefixes(module, names), key=len, reverse=True):
            target = new if _is_builtin(new) else f"{prefix}.{new}"
            source = re.sub(
                rf"(?<![\w.]){re.escape(prefix)}\.{re.escape(old)}(?!\w)", target, source
            )
        return source

    return rewrite


def word(old: str, new: str) -> Rewrite:
    """Every whole `old` (an imported name and its uses) → `new`."""

    def rewrite(source: str, names: Aliases) -> str:
        return re.sub(rf"(?<![\w]){re.escape(old)}(?!\w)", new, source)

    return rewrite


def method(old: str, new: str) -> Rewrite:
    """`.old(` → `.new(`."""

    def rewrite(source: str, names: Aliases) -> str:
        return re.sub(rf"\.{re.escape(old)}(?=\s*\()", f".{new}", source)

    return rewrite


def chain(*rewrites: Rewrite) -> Rewrite:
    def rewrite(source: str, names: Aliases) -> str:
        for each in rewrites:
            source = each(source, names)
        return source

    return rewrite


def _is_builtin(name: str) -> bool:
    return re.fullmatch(r"[a-z_]\w*", name) is not None and hasattr(builtins, name)


def calls(source: str, head: str) -> Iterator[tuple[re.Match[str], int, list[str]]]:
    """Each call whose text before the parenthesis matches `head`: the match, the index past
    its closing parenthesis, and its top-level arguments as written."""
    for found in re.finditer(head + r"\s*\(", source):
        end = _closing(source, found.end() - 1)
        if end is not None:
            yield found, end + 1, _split_args(source[found.end() : end])


def _closing(source: str, opening: int) -> int | None:
    depth, quote, index = 0, "", opening
    while index < len(source):
        char = source[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index
        elif char == "#":
            newline = source.find("\n", index)
            index = len(source) if newline < 0 else newline
            continue
        index += 1
    return None


def _split_args(text: str) -> list[str]:
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for index, char in enumerate(text):
        if quote:
            if char == quote and text[index - 1] != "\\":
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    last = text[start:].strip()
    if last:
        parts.append(last)
    return parts


def _replace_calls(
    source: str, head: str, build: Callable[[re.Match[str], list[str]], str | None]
) -> str:
    out, position = [], 0
    for found, end, args in calls(source, head):
        if found.start() < position:
            continue  # nested in a call already rewritten
        new = build(found, args)
        if new is None:
            continue
        out += [source[position : found.start()], new]
        position = end
    return "".join(out) + source[position:]


def _atom(expression: str) -> str:
    """`expression`, parenthesized unless a method call on it already binds to all of it."""
    depth = 0
    for char in expression:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and not (char.isalnum() or char in "_.'\""):
            return f"({expression})"
    return expression


def _asscalar(source: str, names: Aliases) -> str:
    for prefix in _module_prefixes("numpy", names):
        head = rf"(?<![\w.]){re.escape(prefix)}\.asscalar"
        source = _replace_calls(
            source, head, lambda _m, args: f"{_atom(args[0])}.item()" if len(args) == 1 else None
        )
    return source


def _get_cmap(source: str, names: Aliases) -> str:
    registry = "matplotlib.colormaps"

    def build(_found: re.Match[str], args: list[str]) -> str | None:
        if not args:
            return f'{registry}[matplotlib.rcParams["image.cmap"]]'
        if len(args) == 1 and "=" not in args[0]:
            return f"{registry}[{args[0]}]"
        if len(args) == 2 and "=" not in args[0]:
            lut = args[1].partition("=")[2] if args[1].startswith("lut") else args[1]
            return f"{registry}[{args[0]}].resampled({lut.strip()})"
        return None

    rewritten = _replace_calls(source, r"(?<![\w.])(?:[\w.]+\.)?cm\.get_cmap", build)
    if rewritten != source and "matplotlib" not in names.of("matplotlib"):
        rewritten = "import matplotlib\n" + rewritten
    return rewritten


def _mad(source: str, names: Aliases) -> str:
    return re.sub(
        _RECEIVER + r"\.mad\(\s*\)",
        lambda m: f"({m['recv']} - {m['recv']}.mean()).abs().mean()",
        source,
    )


def _append(source: str, names: Aliases) -> str:
    pandas = sorted(names.of("pandas"))
    if not pandas:
        return source

    def build(found: re.Match[str], args: list[str]) -> str | None:
        if not args or re.match(r"\w+\s*=(?!=)", args[0]):
            return None
        options = "".join(f", {arg}" for arg in args[1:])
        return f"{pandas[0]}.concat([{found['recv']}, {args[0]}]{options})"

    return _replace_calls(source, _RECEIVER + r"\.append", build)


def _display(old: str, display: str) -> Rewrite:
    """scikit-learn's plot_* functions → `XDisplay.from_estimator`, imports renamed too."""
    return chain(
        word(old, f"{display}.from_estimator"), _unimport(f"{display}.from_estimator", display)
    )


def _unimport(dotted: str, name: str) -> Rewrite:
    """In import statements, `dotted` (not importable) → `name`."""

    def rewrite(source: str, names: Aliases) -> str:
        return re.sub(
            rf"^(\s*from\s+[\w.]+\s+import\s+[^\n]*?)(?<![\w.]){re.escape(dotted)}(?!\w)",
            rf"\g<1>{name}",
            source,
            flags=re.MULTILINE,
        )

    return rewrite


# The standard library's imp, the way imp itself built get_suffixes from importlib.
_SUFFIXES = (
    "([(s, 'rb', 3) for s in importlib.machinery.EXTENSION_SUFFIXES]"
    " + [(s, 'r', 1) for s in importlib.machinery.SOURCE_SUFFIXES]"
    " + [(s, 'rb', 2) for s in importlib.machinery.BYTECODE_SUFFIXES])"
)


def _imp(source: str, names: Aliases) -> str:
    if "imp" not in names.of("imp"):
        return source
    source = re.sub(
        r"^(\s*import\s+(?:[\w.]+\s*,\s*)*)imp(?=\s*(?:,|$|#|;))",
        r"\g<1>importlib.machinery",
        source,
        flags=re.MULTILINE,
    )
    source = re.sub(r"(?<![\w.])imp\.get_suffixes\(\s*\)", _SUFFIXES, source)
    return re.sub(r"(?<![\w.])imp\.reload(?!\w)", "importlib.reload", source)


_ABCS = (
    "Awaitable|Coroutine|AsyncIterable|AsyncIterator|AsyncGenerator|Hashable|Iterable|Iterator|"
    "Generator|Reversible|Sized|Container|Callable|Collection|Set|MutableSet|Mapping|"
    "MutableMapping|MappingView|KeysView|ItemsView|ValuesView|Sequence|MutableSequence|ByteString"
)


def _collections_abc(source: str, names: Aliases) -> str:
    source = re.sub(rf"(?<![\w.])collections\.(?={_ABCS}\b)", "collections.abc.", source)

    def from_line(found: re.Match[str]) -> str:
        items = [item.strip() for item in found["names"].split(",")]
        if all(re.fullmatch(rf"(?:{_ABCS})(?:\s+as\s+\w+)?", item) for item in items):
            return f"{found['indent']}from collections.abc import {found['names']}"
        return found.group()

    return re.sub(
        r"^(?P<indent>\s*)from\s+collections\s+import\s+(?P<names>[\w ,]+?)\s*$",
        from_line,
        source,
        flags=re.MULTILINE,
    )


def _seaborn_styles(source: str, names: Aliases) -> str:
    def restyle(found: re.Match[str]) -> str:
        return f"{found['q']}seaborn-v0_8{found['rest'] or ''}{found['q']}"

    return re.sub(r"(?P<q>['\"])seaborn(?P<rest>(?:-(?!v0_8)[\w]+)*)(?P=q)", restyle, source)


def _evidence(*names: str) -> re.Pattern[str]:
    return re.compile("|".join(_QUOTED.format(re.escape(name)) for name in names))


def _numpy_alias(old: str, new: str, removed_in: str) -> Rule:
    return Rule("numpy", removed_in, f"np.{old}", new if _is_builtin(new) else f"np.{new}",
                _evidence(old), attribute("numpy", old, new))  # fmt: skip


def _scipy(old: str, new: str) -> Rule:
    return Rule("scipy", "1.14", f"scipy.integrate.{old}", f"scipy.integrate.{new}",
                _evidence(old), word(old, new))  # fmt: skip


def _sklearn(old: str, display: str) -> Rule:
    return Rule("scikit-learn", "1.2", f"sklearn.metrics.{old}", f"{display}.from_estimator",
                _evidence(old), _display(old, display))  # fmt: skip


RULES: tuple[Rule, ...] = (
    _numpy_alias("int", "int", "1.24"),
    _numpy_alias("float", "float", "1.24"),
    _numpy_alias("bool", "bool", "1.24"),
    _numpy_alias("object", "object", "1.24"),
    _numpy_alias("str", "str", "1.24"),
    _numpy_alias("complex", "complex", "1.24"),
    Rule("numpy", "1.23", "np.asscalar(a)", "a.item()", _evidence("asscalar"), _asscalar),
    _numpy_alias("product", "prod", "2.0"),
    _numpy_alias("cumproduct", "cumprod", "2.0"),
    _numpy_alias("sometrue", "any", "2.0"),
    _numpy_alias("alltrue", "all", "2.0"),
    _numpy_alias("NaN", "nan", "2.0"),
    _numpy_alias("Inf", "inf", "2.0"),
    _numpy_alias("Infinity", "inf", "2.0"),
    _numpy_alias("infty", "inf", "2.0"),
    _numpy_alias("float_", "float64", "2.0"),
    _numpy_alias("complex_", "complex128", "2.0"),
    _numpy_alias("string_", "bytes_", "2.0"),
    _numpy_alias("unicode_", "str_", "2.0"),
    _numpy_alias("round_", "round", "2.0"),
    Rule("pandas", "2.0", "Series/DataFrame.iteritems", ".items", _evidence("iteritems"), method("iteritems", "items")),
    Rule("pandas", "2.0", "DataFrame/Series.append", "pandas.concat", _evidence("append"), _append, whole_notebook=False),
    Rule("pandas", "2.0", "DataFrame/Series.mad()", "(x - x.mean()).abs().mean()", _evidence("mad"), _mad),
    Rule("pandas", "3.0", "DataFrame.applymap", "DataFrame.map", _evidence("applymap"), method("applymap", "map")),
    Rule("matplotlib", "3.9", "matplotlib.cm.get_cmap(name)", "matplotlib.colormaps[name]", _evidence("get_cmap"), _get_cmap),
    Rule("matplotlib", "3.8", "the seaborn* styles", "seaborn-v0_8*", re.compile(r"['\"]seaborn[\w-]*['\"] is not a valid"), _seaborn_styles),
    _scipy("simps", "simpson"),
    _scipy("cumtrapz", "cumulative_trapezoid"),
    _scipy("trapz", "trapezoid"),
    _sklearn("plot_confusion_matrix", "ConfusionMatrixDisplay"),
    _sklearn("plot_roc_curve", "RocCurveDisplay"),
    _sklearn("plot_precision_recall_curve", "PrecisionRecallDisplay"),
    Rule(PYTHON, "3.12", "the imp module", "importlib", _evidence("imp"), _imp),
    Rule(PYTHON, "3.10", "collections' ABC aliases", "collections.abc", re.compile(rf"['\"](?:{_ABCS})['\"] from ['\"]collections['\"]|module 'collections' has no attribute"), _collections_abc),
)  # fmt: skip
