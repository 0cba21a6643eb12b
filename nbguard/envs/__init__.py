"""Environments: requirement sources → resolved lock → cached venv with a kernel, keyed by a
fingerprint of (Python, resolved pins). The only module that drives a resolver (uv/pip-tools)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbguard import proc
from nbguard.envs import interpreters
from nbguard.envs.interpreters import Interpreter
from nbguard.errors import ConfigError, EnvironmentBuildError, ResolutionError
from nbguard.model import EnvInfo
from nbguard.settings import EnvSpec

# Bump when the layout of a cached env or the way it is built changes.
# 2: envs carry pip (a notebook's `%pip install` goes to a per-run PIP_TARGET, not the env).
_ENV_FORMAT = "nbguard-env/2"
_MARKER = "nbguard-env.json"
# What every env needs on top of the course's requirements to run a kernel.
KERNEL_REQUIREMENTS = ("ipykernel",)
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;#\\]+)")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Sources:
    """Where packages come from, the same for every env of a run."""

    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_url: tuple[str, ...] = ()
    no_index: bool = False

    def args(self) -> list[str]:
        """Options understood alike by uv, pip-compile and pip."""
        argv: list[str] = []
        for link in self.find_links:
            argv += ["--find-links", link]
        if self.index_url:
            argv += ["--index-url", self.index_url]
        for url in self.extra_index_url:
            argv += ["--extra-index-url", url]
        if self.no_index:
            argv.append("--no-index")
        return argv

    def local_distributions(self) -> list[str]:
        """Distribution names of the wheels and sdists in local --find-links folders."""
        names: set[str] = set()
        for link in self.find_links:
            folder = Path(link)
            if "://" in link or not folder.is_dir():
                continue
            for archive in (*folder.glob("*.whl"), *folder.glob("*.tar.gz")):
                names.add(canonical(archive.name.split("-", 1)[0]))
        return sorted(names)


@dataclass(frozen=True)
class BuildOptions:
    """The settings every env build of a run shares: the resolver, where packages come
    from, where envs and locks are cached."""

    resolver: str  # "uv" or "pip-tools"
    sources: Sources
    cache_dir: Path


def canonical(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lock: str) -> dict[str, str]:
    """name → version for every `name==version` line of a lock file."""
    pins: dict[str, str] = {}
    for line in lock.splitlines():
        match = _PIN.match(line)
        if match and not line.lstrip().startswith(("#", "-")):
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def fingerprint(interpreter: Interpreter, lock: str) -> str:
    """Python + every resolved requirement: pins by name and version, and the normalized text
    of anything else a lock may hold (`pkg @ URL`, `-e path`), so a moved URL is a new env."""
    pins = parse_pins(lock)
    others = {
        " ".join(line.split("#", 1)[0].split())
        for line in lock.splitlines()
        if line.strip() and not line.lstrip().startswith("#") and not _PIN.match(line)
    }
    lines = sorted({f"{name}=={version}" for name, version in pins.items()} | others)
    key = "\n".join(
        [_ENV_FORMAT, interpreter.implementation, interpreter.version, interpreter.platform, *lines]
    )
    return hashlib.sha256(key.encode()).hexdigest()


# --- requirement sources -------------------------------------------------------------------


def requirement_lines(spec: EnvSpec) -> list[str]:
    """The requirements the resolver gets for an env (before ipykernel and pins are added).

    A file in an env that does not upgrade is passed as it is (`-r file`). In an env that
    upgrades, `==` pins are dropped and everything else stays: ranges the instructor wrote,
    extras, markers, URL requirements, index and editable options. An environment.yml is read
    as its pip-installable dependencies.
    """
    if spec.requirements is None:
        return []
    path = spec.requirements
    if path.suffix in {".yml", ".yaml"}:
        return _conda_requirements(path, keep_versions=not spec.upgrade)
    if not spec.upgrade:
        return [f"-r {path}"]
    return [_unpinned(line) for line in _read_requirements(path)]


# Options whose value is a path, relative to the file that holds them.
_PATH_OPTION = re.compile(r"^(-e|--editable|-c|--constraint|-f|--find-links)(\s*=?\s*)(\S+)(.*)$")


def _read_requirements(path: Path, seen: frozenset[Path] = frozenset()) -> list[str]:
    """Lines of a requirements file, `-r` includes followed, comments and `--hash` dropped,
    relative paths in options made absolute (the resolver reads a copy elsewhere)."""
    lines: list[str] = []
    try:
        joined = path.read_text(encoding="utf-8").replace("\\\n", " ")
    except OSError as exc:
        included = f" (included from {sorted(seen)[-1]})" if seen else ""
        raise ConfigError(
            f"cannot read requirements file {path}{included}: {exc.strerror}"
        ) from None
    for raw in joined.splitlines():
        line = re.sub(r"\s--hash[= ]\S+", "", raw.split(" #", 1)[0]).strip()
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


def _unpinned(line: str) -> str:
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


def _load_yaml(path: Path) -> dict[str, Any]:
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


_CONDA_SPEC = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$")


def _conda_requirements(path: Path, *, keep_versions: bool) -> list[str]:
    """pip requirements from an environment.yml: conda `name=1.2` means 1.2.*, `name=1.2.3=build`
    means exactly 1.2.3, comparisons pass through; `python` and `pip` are not packages to
    install (the env's Python is chosen from `python=`, see conda_python)."""
    lines: list[str] = []
    for dep in _load_yaml(path).get("dependencies", []) or []:
        if isinstance(dep, dict):
            pip_lines = [str(item) for item in dep.get("pip", []) or []]
            lines += pip_lines if keep_versions else [_unpinned(line) for line in pip_lines]
            continue
        match = _CONDA_SPEC.match(str(dep).strip())
        if match is None:
            continue
        name, spec = match.group(1), match.group(2).replace(" ", "")
        if canonical(name) in {"python", "pip"}:
            continue
        if spec.startswith(("<", ">", "!", "~", "==")):
            requirement = f"{name}{spec}"
        elif spec.startswith("="):
            version, _, build = spec[1:].partition("=")
            exact = bool(build) or version.endswith("*")
            requirement = f"{name}=={version}" if exact else f"{name}=={version}.*"
        else:
            requirement = name
        lines.append(requirement if keep_versions else _unpinned(requirement))
    return lines


def conda_python(path: Path) -> str | None:
    """The Python version an environment.yml asks for, if it names one."""
    if path.suffix not in {".yml", ".yaml"}:
        return None
    for dep in _load_yaml(path).get("dependencies", []) or []:
        match = re.match(r"^python\s*=+\s*(\d+\.\d+(?:\.\d+)?)", str(dep))
        if match:
            return match.group(1)
    return None


# --- resolvers ------------------------------------------------------------------------------


class _Uv:
    name = "uv"

    def __init__(self, sources: Sources) -> None:
        uv = interpreters.uv_executable()
        if uv is None:
            raise EnvironmentBuildError(
                "the uv resolver was asked for but uv is not installed; `pip install uv` "
                "or set resolver = 'pip-tools'"
            )
        self.uv = uv
        self.sources = sources

    def _args(self) -> list[str]:
        """Where packages come from, and: re-read the wheels of local --find-links folders.
        uv trusts a wheel of a given name and version forever; a course (or nbguard's own
        demo) that rebuilds its local package without bumping the version would otherwise
        get the old one from uv's cache."""
        refresh: list[str] = []
        for name in self.sources.local_distributions():
            refresh += ["--refresh-package", name]
        return [*self.sources.args(), *refresh]

    def compile(
        self, spec: EnvSpec, interp: Interpreter, infile: Path, outfile: Path
    ) -> proc.Completed:
        argv: list[str | Path] = [self.uv, "pip", "compile", infile, "--output-file", outfile]
        argv += ["--quiet", "--no-header", "--no-annotate", "--python", interp.executable]
        argv += ["--prerelease", "allow" if spec.prerelease else "if-necessary-or-explicit"]
        if spec.upgrade:
            argv.append("--upgrade")
        return proc.run([*argv, *self._args()], env=_quiet_uv())

    def create(self, interp: Interpreter, target: Path, lock: Path) -> proc.Completed:
        done = proc.run(
            [self.uv, "venv", "--quiet", "--python", interp.executable, target], env=_quiet_uv()
        )
        if not done.ok:
            return done
        argv: list[str | Path] = [self.uv, "pip", "sync", lock, "--quiet"]
        argv += ["--python", target / "bin" / "python"]
        # Kernels import the env's packages every run; without .pyc (uv writes none by
        # default, and PYTHONDONTWRITEBYTECODE is common) each import recompiles them.
        argv.append("--compile-bytecode")
        # Copies, not hard links into uv's cache: a notebook (or a disk) that damages a file
        # of the env would otherwise damage the cache, and every env rebuilt from it.
        argv += ["--link-mode", "copy"]
        done = proc.run([*argv, *self._args()], env=_quiet_uv())
        if done.ok:
            # uv venvs have no pip; a notebook's `%pip install` would fail with "No module
            # named pip" where a student's Jupyter works. Best effort: without a pip wheel
            # (an offline course that ships none) the env is built without it.
            seed: list[str | Path] = [self.uv, "pip", "install", "--quiet", "--no-deps"]
            seed += ["--link-mode", "copy", "pip"]
            proc.run([*seed, "--python", target / "bin" / "python", *self._args()], env=_quiet_uv())
        return done

    def install_into(self, python: Path, project: Path, target: Path) -> proc.Completed:
        argv: list[str | Path] = [self.uv, "pip", "install", "--quiet", "--no-deps"]
        argv += ["--python", python, "--target", target, project]
        return proc.run([*argv, *self._args()], env=_quiet_uv())


class _PipTools:
    name = "pip-tools"

    def __init__(self, sources: Sources, cache: Path) -> None:
        self.sources = sources
        self.cache = cache

    def _tools(self, interp: Interpreter) -> Path:
        """A venv with pip-tools per interpreter: pip-compile resolves for the Python it runs on."""
        key = hashlib.sha256(f"{interp.executable}|{interp.version}".encode()).hexdigest()[:12]
        tools = self.cache / "tools" / f"pip-tools-{interp.version}-{key}"
        if (tools / ".complete").exists():
            return tools
        with _locked(tools.with_suffix(".lock")):
            if (tools / ".complete").exists():
                return tools
            shutil.rmtree(tools, ignore_errors=True)
            steps: tuple[list[str | Path], ...] = (
                [interp.executable, "-m", "venv", tools],
                [
                    tools / "bin" / "python",
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "pip-tools",
                    *self.sources.args(),
                ],
            )
            for argv in steps:
                done = proc.run(argv)
                if not done.ok:
                    raise EnvironmentBuildError(
                        f"cannot set up pip-tools for Python {interp.version}: {done.last_lines(3)}"
                    )
            (tools / ".complete").write_text("ok\n")
        return tools

    def compile(
        self, spec: EnvSpec, interp: Interpreter, infile: Path, outfile: Path
    ) -> proc.Completed:
        argv: list[str | Path] = [self._tools(interp) / "bin" / "pip-compile", "--quiet"]
        argv += ["--no-header"]
        argv += ["--no-annotate", "--strip-extras", "--output-file", outfile]
        argv += ["--upgrade"] if spec.upgrade else []
        argv += ["--pre"] if spec.prerelease else []
        return proc.run([*argv, *self.sources.args(), infile])

    def create(self, interp: Interpreter, target: Path, lock: Path) -> proc.Completed:
        done = proc.run([interp.executable, "-m", "venv", target])
        if not done.ok:
            return done
        pip: list[str | Path] = [target / "bin" / "python", "-m", "pip", "install", "--quiet"]
        pip.append("--no-deps")
        return proc.run([*pip, "-r", lock, *self.sources.args()])

    def install_into(self, python: Path, project: Path, target: Path) -> proc.Completed:
        pip: list[str | Path] = [python, "-m", "pip", "install", "--quiet", "--no-deps"]
        return proc.run([*pip, "--target", target, project, *self.sources.args()])


def _resolver(options: BuildOptions) -> _Uv | _PipTools:
    if options.resolver == "uv":
        return _Uv(options.sources)
    return _PipTools(options.sources, options.cache_dir)


def _quiet_uv() -> dict[str, str]:
    # uv would otherwise ask (and fail on) interpreters it finds on PATH, such as pyenv shims.
    return {"UV_NO_PROGRESS": "1", "UV_PYTHON_PREFERENCE": "only-system"}


# --- building -------------------------------------------------------------------------------


def build(
    spec: EnvSpec,
    options: BuildOptions,
    interp: Interpreter,
    progress: Progress = lambda _: None,
) -> EnvInfo:
    """A ready env for the spec, reused from the cache when its fingerprint is there.

    A resolution or install that fails is returned as an EnvInfo with `error` (its notebooks
    become `env-failed`); only a broken nbguard setup (no resolver at all) raises.
    """
    started = time.monotonic()
    resolver = _resolver(options)
    progress(f"resolving {spec.name} ({resolver.name}, Python {interp.version})")
    try:
        lock = _resolve(spec, interp, resolver, options.cache_dir, options.sources)
    except ResolutionError as exc:
        return _failed(spec.name, interp, str(exc), started)
    return _materialize(spec.name, interp, lock, resolver, options.cache_dir, progress, started)


def _failed(name: str, interp: Interpreter, message: str, started: float) -> EnvInfo:
    return EnvInfo(
        name, interp.version, {}, None, error=message, build_s=time.monotonic() - started
    )


def _materialize(
    name: str,
    interp: Interpreter,
    lock: str,
    resolver: _Uv | _PipTools,
    cache_dir: Path,
    progress: Progress,
    started: float,
) -> EnvInfo:
    """The venv for a resolved lock: reused when its fingerprint is in the cache, else built
    under a lock shared with other nbguard processes."""
    fp = fingerprint(interp, lock)
    target = cache_dir / "envs" / fp[:16]
    target.parent.mkdir(parents=True, exist_ok=True)
    reused = _is_complete(target, fp)
    if not reused:
        if target.exists():
            progress(f"rebuilding {name}: its cached env is incomplete or damaged")
        progress(f"installing {name} ({len(parse_pins(lock))} packages)")
        with _locked(target.with_suffix(".lock")):
            if not _is_complete(target, fp):  # another nbguard may have built it meanwhile
                error = _install(resolver, interp, target, lock, fp, name)
                if error:
                    return _failed(name, interp, error, started)
    return EnvInfo(
        name=name,
        python=interp.version,
        packages=parse_pins(lock),
        fingerprint=fp,
        interpreter=target / "bin" / "python",
        reused=reused,
        build_s=time.monotonic() - started,
    )


def _resolve(
    spec: EnvSpec, interp: Interpreter, resolver: _Uv | _PipTools, cache: Path, sources: Sources
) -> str:
    """The full lock for the env: the course's requirements plus ipykernel, resolved under the
    course's pins (a pinned file's `==` lines stay exactly as they are)."""
    lines = [*requirement_lines(spec), *spec.pins, *KERNEL_REQUIREMENTS]
    request = "\n".join([*lines, ""])
    # A pinned env's resolution only changes when its inputs do: cache it, so the baseline
    # stays the baseline and a second run does not wait on the index. Upgrading envs are
    # re-resolved every run, since "the newest releases today" is the point of them.
    inputs = [request, interp.version, interp.platform, resolver.name, repr(sources), repr(spec)]
    if spec.requirements is not None:
        inputs.append(spec.requirements.read_text(encoding="utf-8", errors="replace"))
    key = hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:20]
    cached = cache / "locks" / f"{key}.txt"
    if not spec.upgrade and cached.is_file():
        return cached.read_text(encoding="utf-8")
    cached.parent.mkdir(parents=True, exist_ok=True)
    infile = cached.with_name(f"{key}.in")
    infile.write_text(request, encoding="utf-8")
    outfile = cached.with_name(f"{key}.{time.monotonic_ns()}.tmp")
    done = resolver.compile(spec, interp, infile, outfile)
    if not done.ok or not outfile.is_file():
        outfile.unlink(missing_ok=True)
        raise ResolutionError(
            f"cannot resolve the requirements of env {spec.name!r} for Python {interp.version} "
            f"({resolver.name}): {_reason(done)}"
        )
    outfile.replace(cached)  # atomic: a concurrent run reads the old or the new lock, whole
    return cached.read_text(encoding="utf-8")


def _reason(done: proc.Completed) -> str:
    """The resolver's own explanation, without its ANSI colour and blank lines."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", done.last_lines(15))
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


# Envs this process has seen start a kernel: the check costs a Python start-up, once.
_VERIFIED: set[Path] = set()
_VERIFIED_LOCK = threading.Lock()


def _is_complete(target: Path, fp: str) -> bool:
    """The env at `target` was fully built for `fp` (its marker, written last, says so) and
    still works: its interpreter runs and imports ipykernel_launcher. A deleted bin/python, a
    damaged file in site-packages, a leftover of an install that was killed, or a marker of
    another fingerprint all make it incomplete, so it is rebuilt."""
    marker = target / _MARKER
    if not marker.is_file() or not (target / "bin" / "python").exists():
        return False
    try:
        if json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") != fp:
            return False
    except (json.JSONDecodeError, OSError, AttributeError):
        return False
    with _VERIFIED_LOCK:
        if target in _VERIFIED:
            return True
    if not _kernel_starts(target / "bin" / "python").ok:
        return False
    with _VERIFIED_LOCK:
        _VERIFIED.add(target)
    return True


# What `python -m ipykernel_launcher` needs, short of starting a kernel.
_KERNEL_CHECK = "import ipykernel_launcher\nfrom ipykernel.kernelapp import launch_new_instance"


def _kernel_starts(python: Path) -> proc.Completed:
    return proc.run([python, "-c", _KERNEL_CHECK], timeout=120)


def _install(
    resolver: _Uv | _PipTools, interp: Interpreter, target: Path, lock: str, fp: str, name: str
) -> str | None:
    """Build the venv; the marker is written last, so a half-built env is never reused."""
    with _VERIFIED_LOCK:
        _VERIFIED.discard(target)
    shutil.rmtree(target, ignore_errors=True)
    # The venv tool wants an absent target, so the lock waits beside it until the venv exists.
    lockfile = target.with_name(f"{target.name}.requirements.txt")
    lockfile.write_text(lock, encoding="utf-8")
    done = resolver.create(interp, target, lockfile)
    if not done.ok:
        return f"cannot install env {name!r}: {_reason(done)}"
    lockfile.replace(target / "nbguard-lock.txt")
    python = target / "bin" / "python"
    check = _kernel_starts(python)
    if not check.ok:
        return f"a kernel cannot start in env {name!r}: {_reason(check)}"
    marker = {"format": _ENV_FORMAT, "fingerprint": fp, "python": interp.version, "env": name}
    partial = target / f"{_MARKER}.tmp"
    partial.write_text(json.dumps(marker, indent=2), encoding="utf-8")
    partial.replace(target / _MARKER)  # atomic: a marker is whole or absent
    with _VERIFIED_LOCK:
        _VERIFIED.add(target)
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock shared with other nbguard processes using the same cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install_course(options: BuildOptions, env: EnvInfo, source: Path, target: Path) -> str | None:
    """Install the course's own package (from a scratch copy of the course: builds write
    into their source tree) into `target`, a folder put on that env's kernels' PYTHONPATH, so
    the cached env itself never changes. Returns why it failed, or None."""
    assert env.interpreter is not None
    done = _resolver(options).install_into(env.interpreter, source, target)
    if not done.ok:
        return f"cannot install the course's package into env {env.name!r}: {_reason(done)}"
    return None


def interpreter_for(spec: EnvSpec) -> Interpreter:
    """The interpreter an env asks for; an environment.yml's `python=3.x` counts when the env
    names none. Raises InterpreterNotFound (exit 2) when it is not installed."""
    request = spec.python
    if request is None and spec.requirements is not None:
        request = conda_python(spec.requirements)
    return interpreters.find(request)


def changed_packages(before: EnvInfo, after: EnvInfo) -> list[tuple[str, str | None, str | None]]:
    """(package, from, to) for every package whose version differs between two envs."""
    names: Sequence[str] = sorted(set(before.packages) | set(after.packages))
    return [
        (name, before.packages.get(name), after.packages.get(name))
        for name in names
        if before.packages.get(name) != after.packages.get(name)
    ]


# --- variants (blame) -----------------------------------------------------------------------


def build_variant(
    name: str,
    interp: Interpreter,
    base: EnvInfo,
    pins: Mapping[str, str],
    options: BuildOptions,
    *,
    prerelease: bool = False,
    progress: Progress = lambda _: None,
) -> EnvInfo:
    """`base`'s packages on `interp`, with `pins` (name → version) installed exactly and every
    other package kept at base's version where the pins allow it: the resolver gets base's
    lock as its previous output (preferences, no upgrade), so a dependent package moves only
    when it must (reverting wobble to 1.0 takes gadget back to 1.0 only if gadget 2.0 needs
    wobble>=2). Cached by fingerprint like `build`'s envs (the same pins are the same env); a
    resolution or install that fails comes back as an EnvInfo with `error`."""
    started = time.monotonic()
    resolver = _resolver(options)
    wanted = {canonical(package): version for package, version in pins.items()}
    shown = ", ".join(f"{package}=={version}" for package, version in sorted(wanted.items()))
    progress(f"resolving {name} ({resolver.name}, Python {interp.version}: {shown or 'as is'})")
    try:
        lock = _resolve_variant(name, interp, base, wanted, prerelease, resolver, options)
    except ResolutionError as exc:
        return _failed(name, interp, str(exc), started)
    return _materialize(name, interp, lock, resolver, options.cache_dir, progress, started)


def _resolve_variant(
    name: str,
    interp: Interpreter,
    base: EnvInfo,
    pins: Mapping[str, str],
    prerelease: bool,
    resolver: _Uv | _PipTools,
    options: BuildOptions,
) -> str:
    """The lock of a variant: every package of base by name (so nothing base has disappears
    unless the pins force it), the pins exactly, base's other lock lines (URL and editable
    requirements) as they are, ipykernel; base's pins as the preferred versions."""
    others = [line for line in _lock_lines(base) if not _PIN.match(line)]
    others = [line for line in others if _line_name(line) not in pins]
    names = sorted(set(base.packages) | set(pins))
    lines = [f"{n}=={pins[n]}" if n in pins else n for n in names]
    kernel = [r for r in KERNEL_REQUIREMENTS if canonical(r) not in names]
    request = "\n".join([*lines, *others, *kernel, ""])
    preferred = "".join(
        f"{package}=={version}\n"
        for package, version in sorted(base.packages.items())
        if package not in pins
    )
    inputs = [request, preferred, interp.version, interp.platform, resolver.name]
    inputs.append(repr(options.sources))
    inputs.append(f"prerelease={prerelease}")
    key = hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:20]
    # Keyed by the preferred versions too, so a variant lock is as stable as its base's: a
    # second blame of the same pair of envs resolves nothing.
    cached = options.cache_dir / "locks" / f"variant-{key}.txt"
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    cached.parent.mkdir(parents=True, exist_ok=True)
    infile = cached.with_suffix(".in")
    infile.write_text(request, encoding="utf-8")
    outfile = cached.with_name(f"{cached.stem}.{time.monotonic_ns()}.tmp")
    # uv pip compile and pip-compile both keep the pins of an existing output file when they
    # still fit (without --upgrade): that file is how the preferences reach the resolver.
    outfile.write_text(preferred, encoding="utf-8")
    spec = EnvSpec(name=name, upgrade=False, prerelease=prerelease)
    done = resolver.compile(spec, interp, infile, outfile)
    if not done.ok and preferred and isinstance(resolver, _PipTools):
        # pip-compile holds on to a previous pin that conflicts with the pins asked for
        # (ResolutionImpossible) where uv moves it. Without preferences the other packages
        # take their newest fitting releases; the caller sees in the lock what moved.
        outfile.write_text("", encoding="utf-8")
        done = resolver.compile(spec, interp, infile, outfile)
    if not done.ok:
        outfile.unlink(missing_ok=True)
        raise ResolutionError(
            f"cannot resolve {name} for Python {interp.version} ({resolver.name}): {_reason(done)}"
        )
    outfile.replace(cached)
    return cached.read_text(encoding="utf-8")


def _lock_lines(env: EnvInfo) -> list[str]:
    """The requirement lines of a built env's lock (without comments, options and hashes);
    its pins when the lock file is not there (an EnvInfo made elsewhere)."""
    lockfile = env.interpreter.parent.parent / "nbguard-lock.txt" if env.interpreter else None
    if lockfile is None or not lockfile.is_file():
        return [f"{package}=={version}" for package, version in env.packages.items()]
    text = lockfile.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [
        re.sub(r"\s--hash[= ]\S+", "", raw.split(" #", 1)[0]).strip() for raw in text.splitlines()
    ]
    return [line for line in lines if line and not line.startswith(("#", "--"))]


def _line_name(line: str) -> str | None:
    """The distribution a requirement line names (`pkg @ URL`, `pkg[x]>=1`), None for `-e`."""
    match = _REQUIREMENT_NAME.match(line)
    return canonical(match.group(1)) if match and not line.startswith("-") else None
