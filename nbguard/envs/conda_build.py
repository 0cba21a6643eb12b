"""Conda envs built by a real conda solver (py-rattler, or conda/mamba/micromamba on PATH): the
declaration's channels solved against the env's interpreter and linked into a venv of it, the
pip section and ipykernel on top; blame's variants of such an env solved the same way.

The prefix is a venv of an interpreter nbguard finds (the version `python=` asks for), never a
conda `python` package: the solver sees that interpreter as a stand-in `python` package of its
exact version (an empty package in a channel nbguard writes into its cache, first under strict
channel priority), so every conda package is solved for it and linked into the venv's
`lib/pythonX.Y/site-packages`. Where conda-forge is reachable its packages (compiled ones
included: they load into any CPython of the same minor version) install the same way.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import json
import re
import tarfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from nbguard.envs import cache, conda, lockfiles, resolvers
from nbguard.envs.builds import Progress, failed
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.requirements import (
    KERNEL_REQUIREMENTS,
    PIN,
    canonical,
    line_name,
    lock_requirements,
    parse_pins,
)
from nbguard.envs.resolvers import BuildOptions
from nbguard.errors import EnvironmentBuildError, ResolutionError
from nbguard.model import EnvInfo
from nbguard.settings import EnvSpec

STANDIN_BUILD = "nbguard_0"
# `defaults` is conda's own shorthand; rattler knows channels by name or URL only.
_DEFAULTS = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")
SOLVE_TIMEOUT_S = 600
# Kept in every conda env nbguard builds (so in its manifest): the channels it was solved
# from, in the declaration's order; blame's variants of the env are solved from them again.
_CHANNELS_FILE = "nbguard-conda.json"
_SUBDIRS = frozenset({"noarch", "linux-64", "linux-aarch64", "osx-64", "osx-arm64", "win-64"})


@dataclass(frozen=True)
class Solved:
    """One package of a conda solution, whichever solver found it."""

    name: str  # conda's name for it (`matplotlib-base`, `_libgcc_mutex`)
    version: str
    build: str
    url: str
    depends: tuple[str, ...]
    record: object = field(default=None, compare=False, repr=False)  # what the solver installs


@dataclass(frozen=True)
class SolveRequest:
    """What a solver is asked: match specs against channels (the stand-in's first)."""

    channels: tuple[str, ...]
    specs: tuple[str, ...]
    # conda-meta/*.json records of an env whose versions are kept where the specs allow them.
    preferred: tuple[Path, ...] = ()
    lowest: bool = False  # the lowest versions the specs allow (a lock lifted to a new Python)


class Solver(Protocol):
    """A conda solver and installer: py-rattler in process, or a conda-like tool on PATH."""

    name: str  # as the terminal shows it: "py-rattler", "micromamba (/usr/bin/micromamba)"

    def solve(self, request: SolveRequest, cache_dir: Path) -> list[Solved]:
        """The packages of the solution; ResolutionError with the solver's own words."""
        ...

    def install(self, packages: Sequence[Solved], target: Path, cache_dir: Path) -> str | None:
        """Link `packages` into the prefix `target`; why it failed, or None."""
        ...


def solver_for(options: BuildOptions) -> Solver:
    """The solver the conda-solver setting names (conda.solver made concrete)."""
    chosen = conda.solver(options.conda_solver)
    if chosen == "rattler":
        return Rattler()
    if chosen == "pypi":
        raise EnvironmentBuildError(
            "a conda env needs a conda solver: pip install 'nbguard[conda]', or put micromamba, "
            "mamba or conda on PATH"
        )
    from nbguard.envs import conda_cli  # builds on this module

    return conda_cli.Tool(chosen, conda.tool_path(chosen))


def build(spec: EnvSpec, options: BuildOptions, interp: Interpreter, progress: Progress) -> EnvInfo:
    """A ready env for a conda declaration, reused from the cache when its fingerprint (the
    solved packages, the pip layer, the interpreter) is there. A solve or install that fails
    comes back as an EnvInfo with `error`, like the pip path's."""
    started = time.monotonic()
    assert spec.requirements is not None
    declared = conda.read(spec.requirements)
    wanted = conda.relaxed(declared) if spec.upgrade else declared
    solver = solver_for(options)
    progress(f"solving {spec.name} (conda, {solver.name}, Python {interp.version})")
    channels = channel_urls(wanted)
    request = SolveRequest((standin_channel(interp, options.cache_dir), *channels), wanted.specs)
    try:
        records = _solve(solver, request, interp, options.cache_dir)
    except ResolutionError as exc:
        return failed(
            spec.name, interp, f"cannot solve the conda env {spec.name!r}: {exc}", started
        )
    try:
        pip_lock = _pip_layer(
            f"the pip section of env {spec.name!r}",
            [*wanted.pip, *spec.pins],
            _python_packages(records),
            interp,
            options,
            key=repr(spec),
            upgrade=spec.upgrade,
            prerelease=spec.prerelease,
        )
    except ResolutionError as exc:
        return failed(spec.name, interp, str(exc), started)
    return _materialize(
        spec.name, interp, pip_lock, records, channels, solver, options, progress, started
    )


def is_conda_env(env: EnvInfo) -> bool:
    """Whether `env` was built by this module (its variants are then solved by conda too):
    it keeps its channels, or (built by an nbguard before they were kept) conda's records."""
    home = _home(env)
    if home is None:
        return False
    return (home / _CHANNELS_FILE).is_file() or any((home / "conda-meta").glob("*.json"))


def build_variant(
    name: str,
    interp: Interpreter,
    base: EnvInfo,
    pins: Mapping[str, str],
    options: BuildOptions,
    *,
    prerelease: bool = False,
    progress: Progress = lambda _: None,
    wheels_only: bool = False,
    lift: bool = False,
    resolve_only: bool = False,
) -> EnvInfo:
    """Blame's variant of a conda env (variants.build_variant's contract): base's conda
    packages solved again from its channels on `interp` (its stand-in python), the pins
    exact (`name ==version`) and every other package at base's version where the pins allow
    it (base's records as the solver's preferences); base's pip layer resolved again on top
    the way the pip path's variants are. A pin goes to the pip layer when base installed that
    package with pip, to conda when conda did; one base has neither way (a package the other
    env has) is asked of conda first, then of pip. `lift`: base's packages at the lowest
    versions ≥ base's that fit `interp`."""
    started = time.monotonic()
    home = _home(base)
    assert home is not None
    installed = _installed(home)
    wanted = {canonical(package): version for package, version in pins.items()}
    base_lock = cache.built_lock(base) or ""
    pip_names = {line_name(line) for line in lock_requirements(base_lock)}
    conda_pins = {n: v for n, v in wanted.items() if n not in pip_names}
    solver = solver_for(options)
    shown = ", ".join(f"{n}=={v}" for n, v in sorted(wanted.items())) or "as is"
    progress(f"solving {name} (conda, {solver.name}, Python {interp.version}: {shown})")
    solve = functools.partial(_solve_variant, solver, interp, home, installed, lift, options)
    try:
        records = solve(conda_pins)
    except ResolutionError as exc:
        why = f"cannot solve the conda env {name!r}: {exc}"
        linked = {canonical(record.name) for record in installed}
        known = {n: v for n, v in conda_pins.items() if n in linked}
        if known == conda_pins:
            return failed(name, interp, why, started)
        try:
            records = solve(known)
        except ResolutionError:
            return failed(name, interp, why, started)
        conda_pins = known
    pip_pins = {n: v for n, v in wanted.items() if n not in conda_pins}
    channels = _stored_channels(home)
    provided = _provided(records)
    base_pip = {n: v for n, v in parse_pins(base_lock).items() if n not in provided}
    others = [
        line
        for line in lock_requirements(base_lock)
        if not PIN.match(line) and line_name(line) not in wanted
    ]
    names = sorted((set(base_pip) | set(pip_pins)) - set(provided))
    lines = [
        f"{n}=={pip_pins[n]}" if n in pip_pins else f"{n}>={base_pip[n]}" if lift else n
        for n in names
    ]
    preference = "" if lift else "".join(f"{n}=={v}\n" for n, v in sorted(base_pip.items()))
    probe = wheels_only or lift
    try:
        pip_lock = _pip_layer(
            f"the pip layer of {name}",
            [*lines, *others],
            _python_packages(records),
            interp,
            options,
            key=f"variant {probe} {lift}",
            prerelease=prerelease,
            preferred=preference,
            wheels_only=probe,
            lowest=lift,
        )
    except ResolutionError as exc:
        return failed(name, interp, str(exc), started)
    if resolve_only:
        packages = {**parse_pins(pip_lock), **provided}
        return EnvInfo(name, interp.version, packages, None)
    return _materialize(
        name, interp, pip_lock, records, channels, solver, options, progress, started, probe=probe
    )


def _solve_variant(
    solver: Solver,
    interp: Interpreter,
    home: Path,
    installed: Sequence[_Linked],
    lift: bool,
    options: BuildOptions,
    conda_pins: Mapping[str, str],
) -> list[Solved]:
    """The conda packages of a variant: the pins exact, the rest of base's by name with its
    records preferred (or, lifted, at least base's versions, the lowest that fit)."""
    conda_name = {canonical(record.name): record.name for record in installed}
    specs = [f"{conda_name.get(n, n)} =={v}" for n, v in sorted(conda_pins.items())]
    kept = [record for record in installed if canonical(record.name) not in conda_pins]
    specs += [f"{r.name} >={r.version}" if lift else r.name for r in kept]
    request = SolveRequest(
        (standin_channel(interp, options.cache_dir), *_stored_channels(home)),
        tuple(specs),
        preferred=() if lift else tuple(record.path for record in kept),
        lowest=lift,
    )
    return _solve(solver, request, interp, options.cache_dir)


def _materialize(
    name: str,
    interp: Interpreter,
    pip_lock: str,
    records: list[Solved],
    channels: Sequence[str],
    solver: Solver,
    options: BuildOptions,
    progress: Progress,
    started: float,
    *,
    probe: bool = False,
) -> EnvInfo:
    """The hybrid env for a solution and its pip layer: reused when its fingerprint is in
    the cache, else built under the cache's lock with its marker last."""
    packages = [r for r in records if r.build != STANDIN_BUILD]
    conda_lines = sorted(f"conda::{r.name} {r.version} {r.build} {r.url}" for r in packages)
    fp = cache.fingerprint(interp, pip_lock + "".join(f"{line}\n" for line in conda_lines))
    target = cache.env_dir(options.cache_dir, fp)
    resolver = resolvers.for_options(options)

    def install(build: Path) -> str | None:
        return _install(
            name, interp, build, pip_lock, records, channels, solver, resolver, options, probe
        )

    reused, error = cache.ensure(
        target,
        fp,
        interp.version,
        name,
        install,
        progress,
        f"{len(packages)} conda packages",
    )
    if error:
        return failed(name, interp, error, started)
    return EnvInfo(
        name=name,
        python=interp.version,
        packages={**parse_pins(pip_lock), **_provided(records)},
        fingerprint=fp,
        interpreter=target / "bin" / "python",
        reused=reused,
        build_s=time.monotonic() - started,
    )


def _solve(
    solver: Solver, request: SolveRequest, interp: Interpreter, cache_dir: Path
) -> list[Solved]:
    """The conda packages of `request` for `interp`, the stand-in python among them (linking
    a noarch python package needs it)."""
    specs = (*request.specs, f"python =={interp.version} {STANDIN_BUILD}")
    return solver.solve(
        SolveRequest(request.channels, specs, request.preferred, request.lowest), cache_dir
    )


def _provided(records: Sequence[Solved]) -> dict[str, str]:
    """Every conda package of a solution by canonical name, the stand-in python aside."""
    return {canonical(r.name): r.version for r in records if r.build != STANDIN_BUILD}


# A name and version pip can take as a constraint (conda also has `_libgcc_mutex`, `2024a`…).
_PIP_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_PIP_VERSION = re.compile(r"^\d+(?:\.\d+)*(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?$")


def _python_packages(records: Sequence[Solved]) -> dict[str, str]:
    """The conda packages that install a Python distribution (they depend on python or
    python_abi), by PyPI-style name: what pip must find installed, not install again. A C
    library or data package (conda's `tzdata`) is no such thing, whatever its name."""
    found: dict[str, str] = {}
    for record in records:
        if record.build == STANDIN_BUILD:
            continue
        depends = {dep.split()[0] for dep in record.depends if dep.strip()}
        if depends & {"python", "python_abi"} and _PIP_NAME.match(record.name):
            found[canonical(record.name)] = record.version
    return found


def _pip_layer(
    what: str,
    lines: Sequence[str],
    provided: dict[str, str],
    interp: Interpreter,
    options: BuildOptions,
    *,
    key: str,
    upgrade: bool = False,
    prerelease: bool = False,
    preferred: str = "",
    wheels_only: bool = False,
    lowest: bool = False,
) -> str:
    """`lines` and ipykernel, resolved with the Python packages conda installs held at their
    versions (a constraint: a pip package that needs another numpy fails to resolve, as it
    would fail in a conda env) and without reinstalling them; the rest as lockfiles.Request
    has it. `key`: what else the cached lock depends on."""
    named = {line_name(line) for line in lines}
    wanted = [*lines, *(r for r in KERNEL_REQUIREMENTS if canonical(r) not in {*provided, *named})]
    if not wanted:
        return ""
    held = "".join(
        f"{name}=={version}\n"
        for name, version in sorted(provided.items())
        if _PIP_VERSION.match(version)
    )
    constraints = options.cache_dir / "locks" / f"conda-{lockfiles.key(held)}.constraints.txt"
    constraints.parent.mkdir(parents=True, exist_ok=True)
    partial = constraints.with_name(f"{constraints.name}.{time.monotonic_ns()}.tmp")
    partial.write_text(held, encoding="utf-8")
    partial.replace(constraints)  # a concurrent run reads the whole file, never half of it
    text = "\n".join([*wanted, f"-c {constraints}", ""])
    resolver = resolvers.for_options(options)
    inputs = [text, held, interp.version, interp.platform, resolver.name, repr(options.sources)]
    inputs += [key, preferred, f"prerelease={prerelease} wheels={wheels_only} lowest={lowest}"]
    request = lockfiles.Request(
        what=what,
        stem=lockfiles.key(*inputs),
        text=text,
        upgrade=upgrade,
        prerelease=prerelease,
        preferred=preferred,
        wheels_only=wheels_only,
        lowest=lowest,
    )
    lock = lockfiles.resolve(request, interp, resolver, options.cache_dir)
    return "".join(f"{line}\n" for line in lock.splitlines() if line_name(line) not in provided)


def _install(
    name: str,
    interp: Interpreter,
    target: Path,
    pip_lock: str,
    records: Sequence[Solved],
    channels: Sequence[str],
    solver: Solver,
    resolver: resolvers.Resolver,
    options: BuildOptions,
    probe: bool,
) -> str | None:
    """The venv, its pip layer, then the conda packages linked into it; the caller writes the
    marker last. A probe env (blame's) installs wheels only, and its notebook run tells at
    once whether a kernel starts."""
    pending = cache.pending_lock(target, pip_lock)
    done = resolver.create(interp, target, pending, probe=probe)
    if not done.ok:
        return f"cannot install env {name!r}: {resolvers.reason(done)}"
    pending.replace(cache.lock_path(target))
    error = solver.install(records, target, options.cache_dir)
    if error is not None:
        return f"cannot link the conda packages of env {name!r}: {error}"
    stored = json.dumps({"channels": list(channels)}, indent=2)
    (target / _CHANNELS_FILE).write_text(stored, encoding="utf-8")
    check = cache.kernel_starts(target / "bin" / "python") if not probe else None
    if check is not None and not check.ok:
        return f"a kernel cannot start in env {name!r}: {resolvers.reason(check)}"
    return None


def _home(env: EnvInfo) -> Path | None:
    return env.interpreter.parent.parent if env.interpreter is not None else None


def _stored_channels(home: Path) -> list[str]:
    """The channels the env was solved from, in the declaration's order; for an env built
    before nbguard kept them, the channels its packages came from, most packages first."""
    try:
        data = json.loads((home / _CHANNELS_FILE).read_text(encoding="utf-8"))
        return [str(channel) for channel in data.get("channels", [])]
    except (OSError, ValueError, AttributeError):
        pass
    counts: Counter[str] = Counter()
    for path in (home / "conda-meta").glob("*.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        channel = str(record.get("channel") or "").rstrip("/")
        if channel and record.get("build") != STANDIN_BUILD:
            # Records name a channel with its platform folder: the channel is its parent.
            head, _, tail = channel.rpartition("/")
            counts[head if tail in _SUBDIRS and head else channel] += 1
    return [channel for channel, _ in counts.most_common()]


@dataclass(frozen=True)
class _Linked:
    """A conda package linked into an env, as its conda-meta record says."""

    name: str
    version: str
    path: Path  # the record (conda, mamba and py-rattler write the same format)


def _installed(home: Path) -> list[_Linked]:
    """The conda packages linked into an env, the stand-in python aside."""
    found = []
    for path in sorted((home / "conda-meta").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("build") != STANDIN_BUILD:
            found.append(_Linked(str(record["name"]), str(record["version"]), path))
    return found


def channel_urls(env: conda.CondaEnv) -> list[str]:
    """The declaration's channels as solvers take them: names (conda-forge), URLs, and
    folders (relative to the file that names them) as file:// URLs."""
    urls: list[str] = []
    for channel in env.channels:
        if channel == "defaults":
            urls += _DEFAULTS
            continue
        folder = (env.source.parent / channel).expanduser()
        looks_local = channel.startswith((".", "/", "~"))
        urls.append(folder.resolve().as_uri() if looks_local else channel)
    return urls


class Rattler:
    """py-rattler in process: solved with resolvo, linked by rattler's installer."""

    name = "py-rattler"

    def solve(self, request: SolveRequest, cache_dir: Path) -> list[Solved]:
        import rattler
        import rattler.exceptions as rattler_errors

        try:
            locked = [rattler.PrefixRecord.from_path(path) for path in request.preferred]
            records = asyncio.run(
                rattler.solve(
                    sources=list(request.channels),
                    specs=list(request.specs),
                    platforms=[rattler.Subdir.current(), rattler.Subdir("noarch")],
                    locked_packages=locked,
                    virtual_packages=rattler.VirtualPackage.detect(),
                    timeout=timedelta(seconds=SOLVE_TIMEOUT_S),
                    strategy="lowest" if request.lowest else "highest",
                )
            )
        except (
            rattler_errors.SolverError,
            rattler_errors.GatewayError,
            rattler_errors.FetchRepoDataError,
            rattler_errors.InvalidMatchSpecError,
            rattler_errors.InvalidChannelError,
            rattler_errors.IoError,
        ) as exc:
            raise ResolutionError(one_line(exc)) from None
        return [
            Solved(r.name.normalized, str(r.version), str(r.build), str(r.url), tuple(r.depends), r)
            for r in records
        ]

    def install(self, packages: Sequence[Solved], target: Path, cache_dir: Path) -> str | None:
        import rattler
        import rattler.exceptions as rattler_errors

        records = [p.record for p in packages if isinstance(p.record, rattler.RepoDataRecord)]
        try:
            asyncio.run(
                rattler.install(
                    records,
                    target_prefix=target,
                    cache_dir=cache_dir / "conda" / "pkgs",
                    show_progress=False,
                    execute_link_scripts=False,
                )
            )
        except (rattler_errors.InstallerError, rattler_errors.LinkError, OSError) as exc:
            return one_line(exc)
        return None


def standin_channel(interp: Interpreter, cache_dir: Path) -> str:
    """A local channel holding one empty `python` package of the interpreter's version: what
    the solver installs in place of conda's python. Indexed by hand (repodata.json as
    conda-index writes it), so a conda tool on PATH reads it as py-rattler does."""
    subdir = current_subdir()
    root = cache_dir / "conda" / "interpreters" / f"python-{interp.version}-{subdir}"
    filename = f"python-{interp.version}-{STANDIN_BUILD}.tar.bz2"
    if not (root / "noarch" / "repodata.json").is_file():
        with cache.file_lock(root.with_suffix(".lock")):
            if not (root / "noarch" / "repodata.json").is_file():
                (root / subdir).mkdir(parents=True, exist_ok=True)
                (root / "noarch").mkdir(exist_ok=True)
                index: dict[str, object] = {
                    "name": "python",
                    "version": interp.version,
                    "build": STANDIN_BUILD,
                    "build_number": 0,
                    "depends": [],
                    "subdir": subdir,
                    "license": "PSF-2.0",
                    "timestamp": 0,
                }
                write_package(root / subdir / filename, index, {})
                write_repodata(root / subdir, {filename: index})
                write_repodata(root / "noarch", {})
    return root.resolve().as_uri()


def current_subdir() -> str:
    """conda's name for this platform (`linux-64`, `linux-aarch64`, `osx-arm64`)."""
    import platform
    import sys

    machine = platform.machine().lower()
    arch = {"x86_64": "64", "amd64": "64", "arm64": "arm64", "i686": "32"}.get(machine, machine)
    system = {"darwin": "osx", "win32": "win"}.get(sys.platform, sys.platform)
    if system == "osx" and arch == "aarch64":
        arch = "arm64"
    return f"{system}-{arch}"


def write_repodata(subdir: Path, packages: Mapping[str, Mapping[str, object]]) -> None:
    """A channel subdir's repodata.json for the `.tar.bz2` packages in it (file name → its
    info/index.json), with the sizes and hashes solvers check."""
    entries: dict[str, dict[str, object]] = {}
    for filename, index in packages.items():
        data = (subdir / filename).read_bytes()
        entries[filename] = {
            **index,
            "md5": hashlib.md5(data).hexdigest(),  # conda's own checksum field, not a security one
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
    repodata = {"info": {"subdir": subdir.name}, "packages": entries, "packages.conda": {}}
    partial = subdir / "repodata.json.tmp"
    partial.write_text(json.dumps(repodata, indent=1, sort_keys=True), encoding="utf-8")
    partial.replace(subdir / "repodata.json")


def write_package(target: Path, index: dict[str, object], files: dict[str, str]) -> None:
    """A conda package (.tar.bz2) holding `files` (path → text) with its info/ metadata."""
    paths = [
        {
            "_path": path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "size_in_bytes": len(text.encode()),
        }
        for path, text in files.items()
    ]
    entries = {
        "info/index.json": json.dumps(index),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}),
        "info/files": "".join(f"{path}\n" for path in files),
        **files,
    }
    partial = target.with_name(target.name + ".tmp")
    with tarfile.open(partial, "w:bz2") as archive:
        for path, text in entries.items():
            data = text.encode()
            member = tarfile.TarInfo(path)
            member.size = len(data)
            member.mtime = 0  # the same package bytes (and hashes) every time it is written
            archive.addfile(member, io.BytesIO(data))
    partial.replace(target)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
