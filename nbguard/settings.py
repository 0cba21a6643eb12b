"""Configuration: every setting defined once, read from `[tool.nbguard]` / `nbguard.toml`
and overridden from the command line, validated into one frozen `Config`."""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nbguard import discover, shard
from nbguard.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONFIG_FILES = ("nbguard.toml", "pyproject.toml")
DEFAULT_REPORT = "nbguard-report.json"
# Never notebooks of the course, whatever the globs say.
ALWAYS_EXCLUDED = (
    "**/.ipynb_checkpoints/**",
    "**/.git/**",
    "**/.nbguard/**",
    "**/_build/**",
    "**/node_modules/**",
    "**/site-packages/**",
    "**/.tox/**",
    "**/.nox/**",
)


def _as_str(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError("a non-empty string")
    return value


def _as_str_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise TypeError("a string or a list of strings")


def _as_int(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError("a whole number")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or value < 1:
        raise TypeError("a whole number of at least 1")
    return value


def _as_seconds(value: object) -> float | None:
    """Seconds; 0, "none" or "off" means no limit."""
    if isinstance(value, str) and value.strip().lower() in {"none", "off", "0"}:
        return None
    if isinstance(value, bool):
        raise TypeError("a number of seconds")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError("a number of seconds (0 for no limit)") from None
    if seconds < 0:
        raise TypeError("a number of seconds (0 for no limit)")
    return seconds or None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _as_size(value: object) -> int | None:
    """Bytes, from a number or a size like "512M", "2G", "1.5GB" (units of 1024); 0, "none"
    or "off" means no limit."""
    if isinstance(value, str) and value.strip().lower() in {"none", "off"}:
        return None
    if isinstance(value, bool):
        raise TypeError('a size such as "512M" or "2G" (0 for no limit)')
    if isinstance(value, int | float) and value >= 0:
        return int(value) or None
    found = _SIZE.match(value) if isinstance(value, str) else None
    if found is None:
        raise TypeError('a size such as "512M" or "2G" (0 for no limit)')
    return int(float(found.group(1)) * _SIZE_UNITS[found.group(2).lower()]) or None


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "yes", "1", "on"}:
        return True
    if isinstance(value, str) and value.lower() in {"false", "no", "0", "off"}:
        return False
    raise TypeError("true or false")


def _as_tolerance(value: object) -> float:
    if isinstance(value, bool):
        raise TypeError("a number of at least 0")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError("a number of at least 0") from None
    if number < 0 or number != number:
        raise TypeError("a number of at least 0")
    return number


def _as_fraction(value: object) -> float:
    number = _as_tolerance(value)
    if number > 1:
        raise TypeError("a fraction between 0 and 1")
    return number


def _as_replacements(value: object) -> tuple[tuple[str, str], ...]:
    """Regex → replacement pairs, like nbval's sanitize files: a TOML table
    {"regex" = "replacement"}, a list of [regex, replacement] pairs, or on the command line
    "REGEX=>REPLACEMENT"."""
    pairs: list[tuple[object, object]]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str):
        pattern, _, replacement = value.partition("=>")
        pairs = [(pattern, replacement)]
    elif isinstance(value, list | tuple):
        pairs = []
        for item in value:
            if isinstance(item, str):
                pairs += _as_replacements(item)
            elif isinstance(item, list | tuple) and len(item) == 2:
                pairs.append((item[0], item[1]))
            else:
                raise TypeError('a table {"regex" = "replacement"} or [regex, replacement] pairs')
    else:
        raise TypeError('a table {"regex" = "replacement"} or [regex, replacement] pairs')
    checked: list[tuple[str, str]] = []
    for regex, substitute in pairs:
        try:
            re.compile(str(regex))
        except re.error as exc:
            raise TypeError(f"valid regular expressions ({regex!r}: {exc})") from None
        checked.append((str(regex), str(substitute)))
    return tuple(checked)


# One parameter rule: the notebooks it is for (a course-relative glob, or a file-name glob when
# it has no "/"), the parameter's name and its value (a TOML value).
ParameterRule = tuple[str, str, object]
_PARAMETER_VALUE = (str, int, float, bool, list, dict)


def _as_parameters(value: object) -> tuple[ParameterRule, ...]:
    """Papermill parameters per notebook: a TOML table {"glob" = {name = value}}, or on the
    command line NOTEBOOK:NAME=VALUE (VALUE read as a TOML value, else as text)."""
    rules: list[ParameterRule] = []
    if isinstance(value, dict):
        for pattern, table in value.items():
            if not isinstance(table, dict) or not table:
                raise TypeError(
                    'a table of notebook globs, each a table of parameters: "hw1.ipynb" = { n = 50 }'
                )
            rules += [
                _parameter_rule(str(pattern), str(name), item) for name, item in table.items()
            ]
    elif isinstance(value, str | list | tuple):
        for text in [value] if isinstance(value, str) else value:
            if not isinstance(text, str):
                raise TypeError("NOTEBOOK:NAME=VALUE")
            target, equals, raw = text.partition("=")
            pattern, colon, name = target.rpartition(":")
            if not equals or not colon:
                raise TypeError("NOTEBOOK:NAME=VALUE, e.g. hw1_fit.ipynb:n_points=50")
            rules.append(_parameter_rule(pattern.strip(), name.strip(), _toml_value(raw)))
    else:
        raise TypeError('a table {"notebook glob" = {name = value}}')
    return tuple(rules)


def _parameter_rule(pattern: str, name: str, value: object) -> ParameterRule:
    if not pattern:
        raise TypeError("NOTEBOOK:NAME=VALUE with a notebook path or glob")
    if not name.isidentifier():
        raise TypeError(f"parameter names that are Python identifiers ({name!r} is not)")
    if not _plain(value):
        raise TypeError(
            f"parameter values that are text, numbers, booleans, lists or tables ({name})"
        )
    return (pattern, name, value)


def _plain(value: object) -> bool:
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(_plain(item) for item in value.values())
    return isinstance(value, _PARAMETER_VALUE)


def _toml_value(text: str) -> object:
    """`50` → 50, `0.5`, `true`, `"a b"`, `[1, 2]` as TOML reads them; anything else is text."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _as_shard(value: object) -> str:
    """ "K/N", checked and written the one way."""
    if not isinstance(value, str):
        raise TypeError("K/N, shard K of N, e.g. 1/2")
    try:
        index, count = shard.parse(value)
    except ValueError as exc:
        raise TypeError(str(exc)) from None
    return f"{index}/{count}"


def _one_of(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if value not in choices:
            raise TypeError("one of " + ", ".join(repr(c) for c in choices))
        return str(value)

    return parse


# Memory one job may count on: a kernel with the scientific stack loaded and a warm one
# starting beside it (kernels start ahead of need, execute/warm.py).
_JOB_MEMORY = 512 * 1024**2


def default_jobs() -> int:
    """Four kernels per CPU this process may use, at most one per 512 MB of available memory.

    A kernel spends most of its ~0.8 s start-up and any `sleep`, I/O or network wait idle,
    and kernels start ahead of need, so more kernels than cores keep the cores busy.
    Measured with benchmarks/corpus.py on 2 cores (30 notebooks x 2 envs, a third of them
    sleeping): --jobs 2, 4, 6, 8 took 165, 87, 67, 53 s for the same ~60 CPU seconds.
    Memory is what many kernels can run out of, hence the cap.
    """
    try:
        cpus = len(os.sched_getaffinity(0))  # a container's CPU set, not the host's
    except AttributeError:  # pragma: no cover - macOS, Windows
        cpus = os.cpu_count() or 1
    jobs = 4 * max(1, cpus)
    available = _available_memory()
    if available is not None:
        jobs = min(jobs, max(1, available // _JOB_MEMORY))
    return jobs


def _available_memory() -> int | None:
    """Bytes of memory available for new processes (Linux's MemAvailable), when known."""
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(frozen=True)
class Setting:
    """One setting: its `[tool.nbguard]` key, command-line flag and help derive from here."""

    key: str  # as written in TOML, dashes between words
    parse: Callable[[object], Any]
    default: object
    help: str
    metavar: str = "VALUE"
    repeatable: bool = False  # a list on the command line: the flag may be given many times
    # Command-line values add to the config file's list instead of replacing it (as pip's
    # --find-links does), for places to look rather than choices.
    extends: bool = False
    flag_name: str | None = None  # the flag, when not the key (--param for `parameters`)

    @property
    def attr(self) -> str:
        return self.key.replace("-", "_")

    @property
    def flag(self) -> str:
        return "--" + (self.flag_name or self.key)

    @property
    def is_bool(self) -> bool:
        return self.parse is _as_bool


SETTINGS: tuple[Setting, ...] = (
    Setting("notebooks", _as_str_list, ("**/*.ipynb",), "glob of notebooks to run, relative to the course", "GLOB", True),
    Setting("exclude", _as_str_list, (), "glob of notebooks to leave out (checkpoints, venvs, _build and .nbguard always are)", "GLOB", True),
    Setting("timeout", _as_seconds, 300.0, "seconds one cell may run (0: no limit)", "SECONDS"),
    Setting("notebook-timeout", _as_seconds, 1800.0, "seconds one notebook may run in all (0: no limit)", "SECONDS"),
    Setting("jobs", _as_int, default_jobs(), "notebooks executed at once (default: four per CPU, at most one per 512 MB of available memory)", "N"),
    Setting("baseline", _as_str, "locked", "the env every other env is compared with; 'stored': the outputs saved in the notebooks", "ENV"),
    Setting("resolver", _one_of("uv", "pip-tools"), "uv", "resolver and installer: uv (fast) or pip-tools (pip-compile + pip)", "NAME"),
    Setting("find-links", _as_str_list, (), "extra directory or URL of wheels for every env (relative paths: to the config file)", "DIR", True, True),
    Setting("index-url", _as_str, None, "package index for every env (default: the resolver's own)", "URL"),
    Setting("extra-index-url", _as_str_list, (), "additional package index", "URL", True, True),
    Setting("no-index", _as_bool, False, "use only --find-links, never a package index (offline)"),
    Setting("course-code", _one_of("path", "install", "none"), "path", "how notebooks import the course's own modules: 'path' puts the course root (and src/) on the kernel's PYTHONPATH; 'install' installs the course's package (its pyproject.toml/setup.py) for the kernels, outside the cached env", "MODE"),
    Setting("python-path", _as_str_list, (), "more course directories to put on the kernel's PYTHONPATH", "DIR", True, True),
    Setting("cache-dir", _as_str, None, "where environments and cached runs are kept (default: $NBGUARD_CACHE_DIR or ~/.cache/nbguard)", "DIR"),
    Setting("cache", _as_bool, True, "reuse a notebook's earlier run in an env while its code cells, the env, the run settings and the course files it read are unchanged (--no-cache: execute every notebook again; the fresh runs are still stored)"),
    Setting("exec-cache-size", _as_size, 2 * 1024**3, "disk space the execution cache (CACHE/runs) may take, e.g. 2G (0: no limit); the least recently used runs go first", "SIZE"),
    Setting("report", _as_str, DEFAULT_REPORT, "where to write the JSON report (relative: to the current directory)", "FILE"),
    Setting("html", _as_str, None, "also write the report as one self-contained HTML page", "FILE"),
    Setting("markdown", _as_str, None, "also write a Markdown summary (e.g. \"$GITHUB_STEP_SUMMARY\")", "FILE"),
    Setting("junit", _as_str, None, "also write JUnit XML, one test case per notebook and env", "FILE"),
    Setting("since-report", _as_str, None, "nightly mode: report what is new since this earlier JSON report, fail only on new breakage", "FILE"),
    Setting("shard", _as_shard, None, "run only shard K of N of the notebooks (a stable split; balanced by --shard-durations); `nbguard merge` joins the shards' reports", "K/N"),
    Setting("shard-durations", _as_str, None, "an earlier JSON report whose durations balance the shards (default: --since-report's, if given)", "FILE"),
    Setting("strict", _as_bool, False, "also fail (exit 1) on warnings and already-broken notebooks"),
    Setting("library-warnings", _as_bool, False, "also count deprecation warnings raised inside libraries (pointing at no code of the course) toward the warnings verdict and fix hints"),
    Setting("allow-changed", _as_bool, False, "do not fail (exit 1) on changed outputs, only on broken notebooks"),
    Setting("pass-env", _as_str_list, (), "secret-looking environment variable (*TOKEN*, *SECRET*, *_KEY, AWS_*, ...) still passed to kernels: a name or glob", "NAME", True, True),
    Setting("memory-limit", _as_size, None, "address-space limit of each kernel, e.g. 2G or 512M (0: none); a notebook over it gets a MemoryError or a dead kernel", "SIZE"),
    Setting("max-output", _as_size, 10 * 1024**2, "outputs kept per notebook run, e.g. 10M (0: no cap); the rest is cut off with a note", "SIZE"),
    Setting("startup-timeout", _as_seconds, 60.0, "seconds a kernel may take to start", "SECONDS"),
    Setting("blame", _as_bool, False, "confirm the culprit of each broken or changed notebook by rebuilding envs that revert (or upgrade) single packages; slower, cached"),
    Setting("blame-budget", _as_seconds, 600.0, "seconds confirming culprits may take in all (0: no limit); what is not confirmed by then stays inferred, saying so", "SECONDS"),
    Setting("blame-sdists", _as_bool, False, "let blame's probe envs build packages from source; by default probes install wheels only, and a version without a wheel for the probe's Python is an answer, not a build"),
    Setting("offline", _as_bool, False, "run kernels without network (a network namespace, in the kernel sandbox), so a nightly check is deterministic and network use is reported as such"),
    Setting("sandbox", _as_bool, True, "run each kernel in a bubblewrap sandbox where the machine allows it: the env and everything outside the run's scratch copy read-only, private home and tmp, its own process namespace (--no-sandbox: kernels run as plain processes)"),
    Setting("fix", _as_bool, False, "for each broken notebook, look for the smallest source edit that makes it run in the env it broke in (the library's advice, ruff's numpy autofix, known migrations), verified by running it from a scratch copy; the verified ones go to --patch (the course is written only with `nbguard fix --write`)"),
    Setting("patch", _as_str, "nbguard-fixes.patch", "where --fix writes the verified fixes as a patch for `git apply` (relative: to the current directory)", "FILE"),
    Setting("keep-going", _as_bool, False, "after a failing cell, run the rest of the notebook and report the later independent errors too (not the NameErrors of names the failed cell never defined)"),
    Setting("tolerance", _as_tolerance, 1e-6, "relative difference numbers in outputs may show and still be equal (a notebook's or cell's metadata nbguard.tolerance overrides it)", "REL"),
    Setting("abs-tolerance", _as_tolerance, 1e-12, "absolute difference numbers near zero may show and still be equal", "ABS"),
    Setting("image-threshold", _as_fraction, 0.01, "fraction of an image's drawn (non-background) pixels that may differ visibly before it counts as changed", "FRACTION"),
    Setting("parameters", _as_parameters, (), "papermill parameter for the notebooks matching a glob (a file name, or a path relative to the course), injected after the cell tagged 'parameters' in every env alike: NOTEBOOK:NAME=VALUE (TOML: a table)", "NOTEBOOK:NAME=VALUE", True, True, "param"),
    Setting("parameter-set", _as_str, None, "run with the named parameter set [tool.nbguard.parameter-sets.NAME] over the parameters table, e.g. a fast 'ci' set", "NAME"),
    Setting("conda-solver", _one_of("auto", "rattler", "micromamba", "mamba", "conda", "pypi"), "auto", "how an environment.yml or conda lock becomes an env: 'rattler' solves and installs it with conda's packages (py-rattler, `pip install 'nbguard[conda]'`), 'micromamba', 'mamba' or 'conda' with that tool on PATH, 'pypi' approximates it with PyPI packages; 'auto' takes py-rattler when installed, else the first of micromamba, mamba, conda on PATH, else pypi", "MODE"),
    Setting("volatile-rerun", _as_bool, True, "run each notebook whose outputs differ once more in the baseline env: what differs between the two baseline runs is volatile, masked and listed as such (--no-volatile-rerun: compare once)"),
    Setting("replace", _as_replacements, (), "regex replacement applied to both runs' outputs before comparing, REGEX=>REPLACEMENT (TOML: a table)", "REGEX=>REPL", True, True),
)  # fmt: skip

ENV_SETTINGS: tuple[Setting, ...] = (
    Setting("python", _as_str, None, "Python version (3.12) or interpreter path for ENV", "ENV=VERSION"),
    Setting("requirements", _as_str, None, "requirements file for ENV (pinned: installed as is; loose: resolved)", "ENV=FILE"),
    Setting("upgrade", _as_bool, False, "resolve ENV's requirements to the newest releases, ignoring pins", "ENV=BOOL"),
    Setting("prerelease", _as_bool, False, "let ENV take pre-releases", "ENV=BOOL"),
    Setting("pins", _as_str_list, (), "extra requirement or pin for ENV, e.g. upcoming='numpy<3'", "ENV=REQ", True),
    Setting("preset", _one_of("colab"), None, "build ENV as a known platform: 'colab' installs the Google Colab runtime saved by `nbguard colab-snapshot` (its Python and pip freeze)", "ENV=NAME"),
)  # fmt: skip
_SETTING_BY_KEY = {setting.key: setting for setting in SETTINGS}
_ENV_SETTING_BY_KEY = {setting.key: setting for setting in ENV_SETTINGS}


@dataclass(frozen=True)
class EnvSpec:
    """What an environment should be; `envs.build` turns it into a real venv."""

    name: str
    python: str | None = None  # version request or interpreter path; None: nbguard's own
    requirements: Path | None = None  # absolute
    upgrade: bool = False
    prerelease: bool = False
    pins: tuple[str, ...] = ()
    preset: str | None = None  # "colab": the saved Colab runtime is the requirements
    # Where `python` came from when the course's files declared it rather than the config
    # ("requirements.txt header", "binder/runtime.txt"); None when configured or not set.
    python_from: str | None = None


@dataclass(frozen=True)
class Config:
    """Everything a run needs. One field per Setting, of the type its parser returns (paths
    anchored); defaults live in SETTINGS only, and `load` is the one way to make a Config
    (tests/unit/test_settings.py holds the two in step)."""

    course: Path  # absolute course root
    config_file: Path | None
    envs: tuple[EnvSpec, ...]
    notebooks: tuple[str, ...]
    exclude: tuple[str, ...]
    timeout: float | None
    notebook_timeout: float | None
    jobs: int
    baseline: str
    resolver: str
    find_links: tuple[str, ...]
    index_url: str | None
    extra_index_url: tuple[str, ...]
    no_index: bool
    course_code: str
    python_path: tuple[str, ...]
    cache_dir: Path
    cache: bool
    exec_cache_size: int | None
    report: Path
    html: Path | None
    markdown: Path | None
    junit: Path | None
    since_report: Path | None
    shard: str | None  # "K/N"
    shard_durations: Path | None
    strict: bool
    library_warnings: bool
    allow_changed: bool
    pass_env: tuple[str, ...]
    memory_limit: int | None
    max_output: int | None
    startup_timeout: float | None
    blame: bool
    blame_budget: float | None
    blame_sdists: bool
    fix: bool
    patch: Path
    keep_going: bool
    offline: bool
    sandbox: bool
    tolerance: float
    abs_tolerance: float
    image_threshold: float
    conda_solver: str
    replace: tuple[tuple[str, str], ...]
    parameters: tuple[ParameterRule, ...]
    parameter_set: str | None
    volatile_rerun: bool

    def env(self, name: str) -> EnvSpec:
        return next(spec for spec in self.envs if spec.name == name)

    def public(self) -> dict[str, object]:
        """The settings as the report shows them (paths as text)."""
        shown: dict[str, object] = {s.key: getattr(self, s.attr) for s in SETTINGS}
        shown["cache-dir"] = str(self.cache_dir)
        for key in _OUTPUT_FILES:
            value = getattr(self, key.replace("-", "_"))
            shown[key] = str(value) if value is not None else None
        shown["parameters"] = [list(rule) for rule in self.parameters]
        return shown


def default_cache_dir() -> Path:
    if "NBGUARD_CACHE_DIR" in os.environ:
        return Path(os.environ["NBGUARD_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nbguard"


def find_config_file(course: Path) -> tuple[Path, dict[str, Any]] | None:
    """The course's nbguard table and the file it came from, if it has one."""
    for name in CONFIG_FILES:
        path = course / name
        if path.is_file():
            table = _nbguard_table(path, required=False)
            if table is not None:
                return path, table
    return None


def _nbguard_table(path: Path, *, required: bool) -> dict[str, Any] | None:
    """`[tool.nbguard]` of a pyproject.toml; of an nbguard.toml (or any other file named
    with --config), that table if present, else the whole file."""
    data = _read_toml(path)
    tool = data.get("tool", {})
    table = tool.get("nbguard") if isinstance(tool, dict) else None
    if table is None and path.name == "pyproject.toml":
        if required:
            raise ConfigError(f"{path} has no [tool.nbguard] table; add one or name another file")
        return None
    table = data if table is None else table
    if not isinstance(table, dict):
        raise ConfigError(f"tool.nbguard in {path} must be a table, got {table!r}")
    return table


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None


def load(
    course: Path,
    overrides: Mapping[str, object] | None = None,
    env_overrides: Mapping[str, Mapping[str, object]] | None = None,
    config_file: Path | None = None,
) -> Config:
    """Build the Config: each Setting's default, then the course's config file, then the
    command line. `overrides` maps setting keys to raw values; `env_overrides` maps an env
    name to env keys."""
    course = course.resolve()
    if not course.is_dir():
        raise ConfigError(f"course directory {course} does not exist")
    if config_file is not None:
        config_file = config_file.resolve()
        found: tuple[Path, dict[str, Any]] | None = (
            config_file,
            _nbguard_table(config_file, required=True) or {},
        )
    else:
        found = find_config_file(course)
    where = f"[tool.nbguard] of {found[0]}" if found else "the defaults"
    file_table: dict[str, Any] = dict(found[1]) if found else {}
    base = found[0].parent if found else course

    raw_envs = file_table.pop("envs", {})
    if not isinstance(raw_envs, dict) or not all(isinstance(t, dict) for t in raw_envs.values()):
        raise ConfigError(
            f"envs in {where} must be a table of env tables ([tool.nbguard.envs.NAME])"
        )
    raw_sets = file_table.pop("parameter-sets", {})
    values: dict[str, object] = {s.attr: _anchor(s, s.default, Path.cwd()) for s in SETTINGS}
    for key, value in file_table.items():
        setting = _known(key, _SETTING_BY_KEY, where)
        values[setting.attr] = _anchor(setting, _parse(key, value, where), base)
    in_file: tuple[ParameterRule, ...] = values["parameters"]  # type: ignore[assignment]
    for key, value in (overrides or {}).items():
        setting = _known(key, _SETTING_BY_KEY, "the command line")
        parsed = _anchor(setting, _parse(key, value, "the command line"), Path.cwd())
        if setting.extends:
            parsed = (*values.get(setting.attr, ()), *parsed)  # type: ignore[misc]
        values[setting.attr] = parsed
    values["parameters"] = _with_parameter_set(values, in_file, raw_sets, where)

    specs = _env_specs(course, raw_envs, base, where, env_overrides or {}, str(values["baseline"]))
    # Each value was checked by its Setting's parser above, so the keyword types hold.
    config = Config(course, found[0] if found else None, specs, **values)  # type: ignore[arg-type]
    # "stored": the outputs saved in the notebooks are the baseline, every env is compared.
    if config.baseline != "stored" and len(specs) < 2:
        raise ConfigError(
            f"only one env ({specs[0].name}) to run: configure a second one to compare with, "
            "or compare with the outputs saved in the notebooks (--baseline stored)"
        )
    if config.baseline == "stored" and config.parameters:
        # The saved outputs were made with the notebook's own values: every output the
        # parameters move would look changed by the upgrade.
        raise ConfigError(
            "parameters cannot be used with --baseline stored: the outputs saved in the "
            "notebooks were made without them; compare two envs, or drop the parameters"
        )
    if config.baseline != "stored" and config.baseline not in {spec.name for spec in specs}:
        raise ConfigError(
            f"baseline env {config.baseline!r} is not defined; envs are "
            + ", ".join(spec.name for spec in specs)
        )
    return config


def _with_parameter_set(
    values: Mapping[str, object],
    in_file: tuple[ParameterRule, ...],
    raw_sets: object,
    where: str,
) -> tuple[ParameterRule, ...]:
    """The parameters table, then the chosen set's rules over it, then the command line's:
    a later rule for the same notebook and name wins."""
    if not isinstance(raw_sets, dict) or not all(isinstance(t, dict) for t in raw_sets.values()):
        raise ConfigError(
            f"parameter-sets in {where} must be a table of tables "
            "([tool.nbguard.parameter-sets.NAME])"
        )
    every: tuple[ParameterRule, ...] = values["parameters"]  # type: ignore[assignment]
    chosen = values["parameter_set"]
    if chosen is None:
        return every
    if chosen not in raw_sets:
        known = ", ".join(sorted(raw_sets)) or "none are defined"
        raise ConfigError(
            f"parameter set {chosen!r} is not defined in {where} (sets: {known}); "
            f"define it as [tool.nbguard.parameter-sets.{chosen}]"
        )
    rules = _parse("parameters", raw_sets[chosen], f"parameter-sets.{chosen} of {where}")
    return (*in_file, *rules, *every[len(in_file) :])  # type: ignore[misc]


# Files nbguard writes or reads besides the course: relative to the current directory.
_OUTPUT_FILES = frozenset(
    {"report", "html", "markdown", "junit", "since-report", "patch", "shard-durations"}
)


def _anchor(setting: Setting, value: object, base: Path) -> object:
    """Paths are relative to the file that names them; on the command line, to the cwd. The
    report is always relative to the current directory, like pytest's --junitxml."""
    if setting.key == "find-links":
        return tuple(
            link if re.match(r"^[a-z][a-z0-9+.-]*://", link) else str((base / link).resolve())
            for link in value  # type: ignore[attr-defined]
        )
    if value is None:
        return default_cache_dir() if setting.key == "cache-dir" else None
    if setting.key == "cache-dir":
        return (base / Path(str(value)).expanduser()).resolve()
    if setting.key in _OUTPUT_FILES:
        return Path(str(value))
    return value


def _known(key: str, known: Mapping[str, Setting], where: str) -> Setting:
    setting = known.get(key.replace("_", "-"))
    if setting is None:
        close = difflib.get_close_matches(key.replace("_", "-"), list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown key {key!r} in {where}{hint} (known: {', '.join(sorted(known))})"
        )
    return setting


def _parse(key: str, value: object, where: str) -> object:
    name = key.replace("_", "-")
    setting = _SETTING_BY_KEY.get(name) or _ENV_SETTING_BY_KEY[name]
    try:
        return setting.parse(value)
    except TypeError as exc:
        raise ConfigError(f"{key} in {where} must be {exc}, got {value!r}") from None


def _env_specs(
    course: Path,
    file_tables: Mapping[str, dict[str, Any]],
    base: Path,
    where: str,
    cli_tables: Mapping[str, Mapping[str, object]],
    baseline: str,
) -> tuple[EnvSpec, ...]:
    """The default envs (when the course has requirement files), updated by the config
    file's env tables (which may add envs), then by the command line's (which may not)."""
    defaults = {spec.name: spec for spec in default_envs(course)}
    # Configured envs are the envs, each filled in from the default of the same name; only
    # the baseline, when left out, stays the default (configuring just `upcoming` on a newer
    # Python still compares it with `locked`).
    if file_tables:
        keep = ([baseline] if baseline not in file_tables else []) + list(file_tables)
    elif baseline == "stored":
        # Single-environment mode: a fresh run with today's releases against the outputs
        # saved in the notebooks (courses without a lock file).
        keep = ["upcoming"]
    else:
        keep = list(defaults)
    specs: dict[str, EnvSpec | None] = {name: defaults.get(name) for name in keep}
    layers = ((file_tables, base, where, True), (cli_tables, Path.cwd(), "the command line", False))
    for tables, anchor, source, may_add in layers:
        for name, table in tables.items():
            if name not in specs and not may_add:
                raise ConfigError(
                    f"unknown env {name!r} on the command line; envs are {', '.join(specs)} "
                    f"(define more in [tool.nbguard.envs.{name}])"
                )
            specs[name] = _env_spec(course, specs.get(name), name, table, anchor, source)
    built = tuple(_declared(course, spec) for spec in specs.values() if spec is not None)
    if not built:
        raise ConfigError(
            f"no requirements.txt, requirements.in or environment.yml in {course}; "
            "add one or configure [tool.nbguard.envs.NAME] with a requirements file"
        )
    return built


def _declared(course: Path, spec: EnvSpec) -> EnvSpec:
    """An env that installs its file as it is runs on the Python that file (or the course's
    runtime.txt / .python-version) was made for, unless the config names one; so does a
    preset's (Colab's Python). An upgrading env is today's, on nbguard's own Python unless
    configured."""
    if spec.python is not None or (spec.upgrade and spec.preset is None):
        return spec
    found = discover.declared_python(course, spec.requirements)
    if found is None:
        return spec
    return replace(spec, python=found.version, python_from=found.origin)


def _env_spec(
    course: Path,
    spec: EnvSpec | None,
    name: str,
    table: Mapping[str, object],
    anchor: Path,
    source: str,
) -> EnvSpec:
    """`spec` updated with the keys of one env table (a new spec when `spec` is None)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"env name {name!r} in {source}: use letters, digits, '-', '_', '.'")
    where = f"envs.{name} of {source}"
    values: dict[str, Any] = {
        _known(key, _ENV_SETTING_BY_KEY, where).attr: _parse(key, value, where)
        for key, value in table.items()
    }
    if "requirements" in values:
        path = (anchor / str(values["requirements"])).resolve()
        if not path.is_file():
            raise ConfigError(
                f"envs.{name}.requirements in {source}: {path} does not exist; name an "
                "existing requirements.txt, requirements.in or environment.yml"
            )
        values["requirements"] = path
    if values.get("preset") is not None and "requirements" not in values:
        values["requirements"] = preset_requirements(course, values["preset"])
    if spec is None:
        if "requirements" not in values:
            raise ConfigError(f"envs.{name} in {source} needs a requirements file")
        return EnvSpec(name=name, **values)
    if "pins" in values:  # pins add up across layers: each one names one more constraint
        values["pins"] = (*spec.pins, *values["pins"])
    return replace(spec, **values)


def _requirement_files(course: Path) -> tuple[Path | None, Path | None]:
    """The course's pinned file and its loose one, by the usual names and places."""
    return discover.requirement_files(course)


COLAB_SNAPSHOT = Path(".nbguard") / "colab-snapshot.txt"


def preset_requirements(course: Path, preset: str) -> Path:
    """The requirements file a preset env installs: the Colab runtime saved in the course."""
    path = course / COLAB_SNAPSHOT
    if not path.is_file():
        raise ConfigError(
            f"the colab preset needs the Colab runtime saved in {path}: run "
            "`nbguard colab-snapshot` (online) and commit the file"
        )
    return path


def default_envs(course: Path) -> tuple[EnvSpec, ...]:
    """`locked` from the pinned file as is, `upcoming` from the loose file (or the pinned one
    with its pins dropped), upgraded, both on nbguard's own Python; none without files."""
    pinned, loose = _requirement_files(course)
    if pinned is None and loose is None:
        return ()
    return (
        EnvSpec(name="locked", python=None, requirements=pinned or loose),
        EnvSpec(name="upcoming", python=None, requirements=loose or pinned, upgrade=True),
    )


def parse_env_assignment(setting_key: str, text: str) -> tuple[str, object]:
    """`upcoming=3.12` from the command line → ("upcoming", "3.12"); a bare `upcoming` sets a
    boolean env setting to true."""
    name, sep, value = text.partition("=")
    if not name:
        raise ConfigError(f"--env-{setting_key} needs ENV=VALUE, got {text!r}")
    if not sep:
        if _ENV_SETTING_BY_KEY[setting_key].is_bool:
            return name, True
        raise ConfigError(f"--env-{setting_key} needs ENV=VALUE, got {text!r}")
    return name, value


def flag_options(
    flag_prefix: str = "--", dest_prefix: str = ""
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every setting's flag and the argparse keywords that declare it (pytest's `addoption`
    takes the same): `--KEY` for `nbguard run`, `--nbguard-KEY` for the pytest plugin, and
    `--env-KEY` per env; the values come back through `flag_values`."""
    for setting in SETTINGS:
        options: dict[str, Any] = {"dest": dest_prefix + setting.attr, "default": None}
        if setting.is_bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["action"] = "append" if setting.repeatable else "store"
            options["metavar"] = setting.metavar
        yield flag_prefix + setting.flag[2:], {**options, "help": setting.help}
    for setting in ENV_SETTINGS:
        yield (
            f"{flag_prefix}env-{setting.key}",
            {
                "dest": f"{dest_prefix}env__{setting.attr}",
                "action": "append",
                "metavar": setting.metavar,
                "default": None,
                "help": setting.help + " (repeatable)",
            },
        )


def flag_values(
    flag: Callable[[str], Any],
) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    """The settings given as flags (`nbguard run`'s, or the pytest plugin's --nbguard-*), by
    key, and the per-env ones by env name, for `load`; `flag(attr)` is one flag's value
    (None when not given), a per-env one's attr prefixed with `env__`."""
    overrides: dict[str, object] = {}
    for setting in SETTINGS:
        value = flag(setting.attr)
        if value is not None:
            overrides[setting.key] = value
    env_overrides: dict[str, dict[str, object]] = {}
    for setting in ENV_SETTINGS:
        for text in flag(f"env__{setting.attr}") or []:
            name, value = parse_env_assignment(setting.key, text)
            table = env_overrides.setdefault(name, {})
            if setting.repeatable:
                table.setdefault(setting.key, [])
                table[setting.key].append(value)  # type: ignore[attr-defined]
            else:
                table[setting.key] = value
    return overrides, env_overrides
