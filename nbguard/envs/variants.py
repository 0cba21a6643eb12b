"""Blame's variant envs: a built env's packages with a few pinned to other versions, everything
else kept where the pins allow it; resolved and cached like every env."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace

from nbguard.envs import cache, lockfiles, resolvers
from nbguard.envs.builds import Progress, failed, materialize
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.requirements import (
    KERNEL_REQUIREMENTS,
    PIN,
    canonical,
    line_name,
    lock_requirements,
    parse_pins,
)
from nbguard.envs.resolvers import BuildOptions, Resolver
from nbguard.errors import ResolutionError
from nbguard.model import EnvInfo


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
    """`base`'s packages on `interp`, with `pins` (name → version) installed exactly and every
    other package kept at base's version where the pins allow it: the resolver gets base's
    lock as its previous output (preferences, no upgrade), so a dependent package moves only
    when it must (reverting wobble to 1.0 takes gadget back to 1.0 only if gadget 2.0 needs
    wobble>=2). Cached by fingerprint like `build`'s envs (the same pins are the same env); a
    resolution or install that fails comes back as an EnvInfo with `error`.

    `lift`: base's packages at the lowest versions ≥ base's that install on `interp` (base's
    lock lifted to another Python with the smallest bumps). `wheels_only`: a version with no
    wheel for `interp` makes the resolution fail in seconds, naming it, instead of a build.
    Either makes a probe env: no bytecode compiled. `resolve_only`: the lock's packages
    without building the env (no fingerprint, no interpreter): what the env would hold, in
    the seconds a resolution takes, so blame builds only the probes that can answer.

    A variant of a conda env is solved by conda the same way (conda_build.build_variant)."""
    from nbguard.envs import conda_build  # lazily: a start-up never pays for conda's machinery

    if conda_build.is_conda_env(base):
        return conda_build.build_variant(
            name,
            interp,
            base,
            pins,
            options,
            prerelease=prerelease,
            progress=progress,
            wheels_only=wheels_only,
            lift=lift,
            resolve_only=resolve_only,
        )
    started = time.monotonic()
    resolver = resolvers.for_options(options)
    wanted = {canonical(package): version for package, version in pins.items()}
    shown = ", ".join(f"{package}=={version}" for package, version in sorted(wanted.items()))
    progress(f"resolving {name} ({resolver.name}, Python {interp.version}: {shown or 'as is'})")
    probe = wheels_only or lift
    request = _variant_request(name, interp, base, wanted, prerelease, resolver, options, lift)
    if probe:
        # A wheels-only resolution may pick other versions: its own lock.
        stem = lockfiles.key(request.stem, "wheels-only")
        request = replace(
            request, stem=f"variant-{stem}", wheels_only=True, lowest=lift, cached_first=True
        )
    try:
        lock = lockfiles.resolve(request, interp, resolver, options.cache_dir)
    except ResolutionError as exc:
        return failed(name, interp, str(exc), started)
    if resolve_only:
        return EnvInfo(name, interp.version, parse_pins(lock), None)
    return materialize(
        name, interp, lock, resolver, options.cache_dir, progress, started, probe=probe
    )


def _variant_request(
    name: str,
    interp: Interpreter,
    base: EnvInfo,
    pins: Mapping[str, str],
    prerelease: bool,
    resolver: Resolver,
    options: BuildOptions,
    lift: bool = False,
) -> lockfiles.Request:
    """Every package of base by name (so nothing base has disappears unless the pins force
    it), the pins exactly, base's other lock lines (URL and editable requirements) as they
    are, ipykernel; base's pins as the preferred versions.

    Keyed by the preferred versions too, so a variant lock is as stable as its base's: a
    second blame of the same pair of envs resolves nothing.
    """
    others = [line for line in _base_requirements(base) if not PIN.match(line)]
    others = [line for line in others if line_name(line) not in pins]
    names = sorted(set(base.packages) | set(pins))
    floor = ">=" if lift else ""
    lines = [
        f"{n}=={pins[n]}" if n in pins else f"{n}{floor}{base.packages[n]}" if floor else n
        for n in names
    ]
    kernel = [r for r in KERNEL_REQUIREMENTS if canonical(r) not in names]
    text = "\n".join([*lines, *others, *kernel, ""])
    preferred = "".join(
        f"{package}=={version}\n"
        for package, version in sorted(base.packages.items())
        if package not in pins and not lift
    )
    inputs = [text, preferred, interp.version, interp.platform, resolver.name]
    inputs += [repr(options.sources), f"prerelease={prerelease}", f"lift={lift}"]
    return lockfiles.Request(
        what=name,
        stem=f"variant-{lockfiles.key(*inputs)}",
        text=text,
        prerelease=prerelease,
        preferred=preferred,
    )


def _base_requirements(env: EnvInfo) -> list[str]:
    """The requirement lines of the lock `env` was installed from; its pins when that lock is
    not there (an EnvInfo made elsewhere)."""
    lock = cache.built_lock(env)
    if lock is None:
        return [f"{package}=={version}" for package, version in env.packages.items()]
    return lock_requirements(lock)
