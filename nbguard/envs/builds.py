"""Building envs: a course env from its EnvSpec, any resolved lock into a ready venv (taken from
the cache when whole, else installed under the cache's file lock with its marker last), and
the course's own package installed beside an env."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from nbguard.envs import cache, conda, lockfiles, resolvers
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.requirements import (
    KERNEL_REQUIREMENTS,
    direct_requirements,
    parse_pins,
    pinned_hashes,
    requirement_lines,
    with_hashes,
)
from nbguard.envs.resolvers import BuildOptions, Resolver
from nbguard.errors import ResolutionError
from nbguard.model import EnvInfo
from nbguard.settings import EnvSpec

Progress = Callable[[str], None]


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
    if spec.preset == "colab":
        from nbguard.envs import colab  # it builds on this module

        return colab.build(spec, options, interp, progress)
    if conda.is_conda(spec.requirements) and conda.solver(options.conda_solver) != "pypi":
        from nbguard.envs import conda_build  # it builds on this module

        return conda_build.build(spec, options, interp, progress)
    started = time.monotonic()
    resolver = resolvers.for_options(options)
    progress(f"resolving {spec.name} ({resolver.name}, Python {interp.version})")
    request = _course_request(spec, interp, resolver, options)
    try:
        lock = lockfiles.resolve(request, interp, resolver, options.cache_dir)
    except ResolutionError as exc:
        return failed(spec.name, interp, str(exc), started)
    if spec.requirements is not None and not spec.upgrade:
        # A hash-pinned lock is installed with its hashes checked on the lines that carry them.
        lock = with_hashes(lock, pinned_hashes(spec.requirements))
    info = materialize(
        spec.name, interp, lock, resolver, options.cache_dir, progress, started, defer=True
    )
    return replace(info, requirements=direct_requirements(spec))


def _course_request(
    spec: EnvSpec, interp: Interpreter, resolver: Resolver, options: BuildOptions
) -> lockfiles.Request:
    """The course's requirements plus ipykernel, resolved under the course's pins (a pinned
    file's `==` lines stay exactly as they are).

    A pinned env's resolution only changes when its inputs do: it is cached, so the baseline
    stays the baseline and a second run does not wait on the index. Upgrading envs are
    resolved again every run.
    """
    lines = [*requirement_lines(spec), *spec.pins, *KERNEL_REQUIREMENTS]
    text = "\n".join([*lines, ""])
    inputs = [text, interp.version, interp.platform, resolver.name]
    inputs += [repr(options.sources), repr(spec)]
    if spec.requirements is not None:
        inputs.append(spec.requirements.read_text(encoding="utf-8", errors="replace"))
    return lockfiles.Request(
        what=f"the requirements of env {spec.name!r}",
        stem=lockfiles.key(*inputs),
        text=text,
        upgrade=spec.upgrade,
        prerelease=spec.prerelease,
    )


def failed(name: str, interp: Interpreter, message: str, started: float) -> EnvInfo:
    return EnvInfo(
        name, interp.version, {}, None, error=message, build_s=time.monotonic() - started
    )


def materialize(
    name: str,
    interp: Interpreter,
    lock: str,
    resolver: Resolver,
    cache_dir: Path,
    progress: Progress,
    started: float,
    *,
    probe: bool = False,
    defer: bool = False,
) -> EnvInfo:
    """The venv for a resolved lock: reused when its fingerprint is in the cache, else built
    under a lock shared with other nbguard processes (so two threads or processes asking for
    one env build it once). A `probe` env installs wheels only, without bytecode. `defer`:
    a cached env's files are checked by `verify`, before the first Python starts in it."""
    fp = cache.fingerprint(interp, lock)
    target = cache.env_dir(cache_dir, fp)
    reused, error = cache.ensure(
        target,
        fp,
        interp.version,
        name,
        lambda build: _install_at(resolver, interp, build, lock, name, probe),
        progress,
        f"{len(parse_pins(lock))} packages",
        defer=defer,
    )
    if error:
        return failed(name, interp, error, started)
    return EnvInfo(
        name=name,
        python=interp.version,
        packages=parse_pins(lock),
        fingerprint=fp,
        interpreter=target / "bin" / "python",
        reused=reused,
        build_s=time.monotonic() - started,
    )


def verify(env: EnvInfo) -> EnvInfo:
    """`env` checked whole before a Python starts in it (cache.verify), rebuilt when damaged:
    with `error` when it cannot be, `reused` False when it was rebuilt."""
    if not env.ok or env.interpreter is None:
        return env
    reused, error = cache.verify(env.interpreter.parent.parent)
    if error:
        return replace(env, error=error)
    return env if reused else replace(env, reused=False)


def _install_at(
    resolver: Resolver, interp: Interpreter, build: Path, lock: str, name: str, probe: bool
) -> str | None:
    pending = cache.pending_lock(build, lock)
    done = resolver.create(interp, build, pending, probe=probe)
    if not done.ok:
        return f"cannot install env {name!r}: {resolvers.reason(done)}"
    pending.replace(cache.lock_path(build))
    # A probe's notebook run tells as much, at once (a kernel that cannot start is an answer).
    check = cache.kernel_starts(build / "bin" / "python") if not probe else None
    if check is not None and not check.ok:
        return f"a kernel cannot start in env {name!r}: {resolvers.reason(check)}"
    return None


def install_course(options: BuildOptions, env: EnvInfo, source: Path, target: Path) -> str | None:
    """Install the course's own package (from a scratch copy of the course: builds write
    into their source tree) into `target`, a folder put on that env's kernels' PYTHONPATH, so
    the cached env itself never changes. Returns why it failed, or None."""
    assert env.interpreter is not None
    done = resolvers.for_options(options).install_into(env.interpreter, source, target)
    if not done.ok:
        return (
            f"cannot install the course's package into env {env.name!r}: {resolvers.reason(done)}"
        )
    return None
