"""Conda envs built by a real conda solver (py-rattler): the declaration's channels solved against
the env's interpreter and linked into a venv of it, the pip section and ipykernel on top.

The prefix is a venv of an interpreter nbguard finds (the version `python=` asks for), never a
conda `python` package: the solver sees that interpreter as a stand-in `python` package of its
exact version (an empty package in a channel nbguard writes into its cache, first under strict
channel priority), so every conda package is solved for it and linked into the venv's
`lib/pythonX.Y/site-packages`. Where conda-forge is reachable its packages (compiled ones
included: they load into any CPython of the same minor version) install the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import tarfile
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from nbguard.envs import cache, conda, lockfiles, resolvers
from nbguard.envs.builds import Progress, failed
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.requirements import KERNEL_REQUIREMENTS, canonical, line_name, parse_pins
from nbguard.envs.resolvers import BuildOptions
from nbguard.errors import ResolutionError
from nbguard.model import EnvInfo
from nbguard.settings import EnvSpec

if TYPE_CHECKING:
    from rattler import RepoDataRecord

_STANDIN_BUILD = "nbguard_0"
# `defaults` is conda's own shorthand; rattler knows channels by name or URL only.
_DEFAULTS = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")
_SOLVE_TIMEOUT_S = 600


def build(spec: EnvSpec, options: BuildOptions, interp: Interpreter, progress: Progress) -> EnvInfo:
    """A ready env for a conda declaration, reused from the cache when its fingerprint (the
    solved packages, the pip layer, the interpreter) is there. A solve or install that fails
    comes back as an EnvInfo with `error`, like the pip path's."""
    started = time.monotonic()
    assert spec.requirements is not None
    declared = conda.read(spec.requirements)
    wanted = conda.relaxed(declared) if spec.upgrade else declared
    progress(f"solving {spec.name} (conda, py-rattler, Python {interp.version})")
    try:
        records = _solve(wanted, interp, options.cache_dir)
    except ResolutionError as exc:
        return failed(
            spec.name, interp, f"cannot solve the conda env {spec.name!r}: {exc}", started
        )
    packages = [r for r in records if str(r.build) != _STANDIN_BUILD]
    provided = {canonical(r.name.normalized): str(r.version) for r in packages}
    resolver = resolvers.for_options(options)
    try:
        pip_lock = _pip_layer(spec, wanted, _python_packages(packages), interp, resolver, options)
    except ResolutionError as exc:
        return failed(spec.name, interp, str(exc), started)
    conda_lines = sorted(
        f"conda::{r.name.normalized} {r.version} {r.build} {r.url}" for r in packages
    )
    fp = cache.fingerprint(interp, pip_lock + "".join(f"{line}\n" for line in conda_lines))
    target = cache.env_dir(options.cache_dir, fp)
    reused, error = cache.ensure(
        target,
        fp,
        interp.version,
        spec.name,
        lambda build: _install(spec.name, interp, build, pip_lock, records, resolver, options),
        progress,
        f"{len(packages)} conda packages",
    )
    if error:
        return failed(spec.name, interp, error, started)
    return EnvInfo(
        name=spec.name,
        python=interp.version,
        packages={**parse_pins(pip_lock), **provided},
        fingerprint=fp,
        interpreter=target / "bin" / "python",
        reused=reused,
        build_s=time.monotonic() - started,
    )


# A name and version pip can take as a constraint (conda also has `_libgcc_mutex`, `2024a`…).
_PIP_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_PIP_VERSION = re.compile(r"^\d+(?:\.\d+)*(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?$")


def _python_packages(records: list[RepoDataRecord]) -> dict[str, str]:
    """The conda packages that install a Python distribution (they depend on python or
    python_abi), by PyPI-style name: what pip must find installed, not install again. A C
    library or data package (conda's `tzdata`) is no such thing, whatever its name."""
    found: dict[str, str] = {}
    for record in records:
        depends = {dep.split()[0] for dep in record.depends if dep.strip()}
        name, version = record.name.normalized, str(record.version)
        if depends & {"python", "python_abi"} and _PIP_NAME.match(name):
            found[canonical(name)] = version
    return found


def _pip_layer(
    spec: EnvSpec,
    wanted: conda.CondaEnv,
    provided: dict[str, str],
    interp: Interpreter,
    resolver: resolvers.Resolver,
    options: BuildOptions,
) -> str:
    """The pip section, the env's pins and ipykernel, resolved with the Python packages conda
    installs held at their versions (a constraint: a pip package that needs another numpy
    fails to resolve, as it would fail in a conda env) and without reinstalling them."""
    lines = [*wanted.pip, *spec.pins]
    lines += [r for r in KERNEL_REQUIREMENTS if canonical(r) not in provided]
    if not lines:
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
    text = "\n".join([*lines, f"-c {constraints}", ""])
    inputs = [text, held, interp.version, interp.platform, resolver.name, repr(options.sources)]
    request = lockfiles.Request(
        what=f"the pip section of env {spec.name!r}",
        stem=lockfiles.key(*inputs, repr(spec)),
        text=text,
        upgrade=spec.upgrade,
        prerelease=spec.prerelease,
    )
    lock = lockfiles.resolve(request, interp, resolver, options.cache_dir)
    return "".join(f"{line}\n" for line in lock.splitlines() if line_name(line) not in provided)


def _install(
    name: str,
    interp: Interpreter,
    target: Path,
    pip_lock: str,
    records: list[RepoDataRecord],
    resolver: resolvers.Resolver,
    options: BuildOptions,
) -> str | None:
    """The venv, its pip layer, then the conda packages linked into it; the caller writes the
    marker last."""
    import rattler
    import rattler.exceptions as rattler_errors

    pending = cache.pending_lock(target, pip_lock)
    done = resolver.create(interp, target, pending)
    if not done.ok:
        return f"cannot install env {name!r}: {resolvers.reason(done)}"
    pending.replace(cache.lock_path(target))
    try:
        asyncio.run(
            rattler.install(
                records,
                target_prefix=target,
                cache_dir=options.cache_dir / "conda" / "pkgs",
                show_progress=False,
                execute_link_scripts=False,
            )
        )
    except (rattler_errors.InstallerError, rattler_errors.LinkError, OSError) as exc:
        return f"cannot link the conda packages of env {name!r}: {_one_line(exc)}"
    check = cache.kernel_starts(target / "bin" / "python")
    if not check.ok:
        return f"a kernel cannot start in env {name!r}: {resolvers.reason(check)}"
    return None


def _solve(env: conda.CondaEnv, interp: Interpreter, cache_dir: Path) -> list[RepoDataRecord]:
    """The conda packages of `env` for `interp`, the stand-in python among them (linking a
    noarch python package needs it); raises ResolutionError with the solver's own words."""
    import rattler
    import rattler.exceptions as rattler_errors

    standin = _standin_channel(interp, cache_dir)
    channels = [standin, *_channel_urls(env)]
    version = interp.version
    specs = [*env.specs, f"python =={version} {_STANDIN_BUILD}"]
    try:
        records = asyncio.run(
            rattler.solve(
                sources=channels,
                specs=specs,
                platforms=[rattler.Subdir.current(), rattler.Subdir("noarch")],
                virtual_packages=rattler.VirtualPackage.detect(),
                timeout=timedelta(seconds=_SOLVE_TIMEOUT_S),
            )
        )
    except (
        rattler_errors.SolverError,
        rattler_errors.GatewayError,
        rattler_errors.FetchRepoDataError,
        rattler_errors.InvalidMatchSpecError,
        rattler_errors.InvalidChannelError,
    ) as exc:
        raise ResolutionError(_one_line(exc)) from None
    return records


def _channel_urls(env: conda.CondaEnv) -> list[str]:
    """The declaration's channels as rattler takes them: names (conda-forge), URLs, and
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


def _standin_channel(interp: Interpreter, cache_dir: Path) -> str:
    """A local channel holding one empty `python` package of the interpreter's version: what
    the solver installs in place of conda's python."""
    import rattler
    import rattler.index

    subdir = str(rattler.Subdir.current())
    root = cache_dir / "conda" / "interpreters" / f"python-{interp.version}-{subdir}"
    package = root / subdir / f"python-{interp.version}-{_STANDIN_BUILD}.tar.bz2"
    if not (root / subdir / "repodata.json").is_file():
        with cache.file_lock(root.with_suffix(".lock")):
            if not (root / subdir / "repodata.json").is_file():
                package.parent.mkdir(parents=True, exist_ok=True)
                (root / "noarch").mkdir(exist_ok=True)
                index = {
                    "name": "python",
                    "version": interp.version,
                    "build": _STANDIN_BUILD,
                    "build_number": 0,
                    "depends": [],
                    "subdir": subdir,
                    "license": "PSF-2.0",
                    "timestamp": 0,
                }
                write_package(package, index, {})
                asyncio.run(rattler.index.index_fs(root, write_zst=False, write_shards=False))
    return root.resolve().as_uri()


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
            archive.addfile(member, io.BytesIO(data))
    partial.replace(target)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
