"""A resolution request → a lock file: cached under a hash of everything it depends on,
compiled into a temporary file and renamed into place, so a concurrent nbguard reads the old
lock or the new one, whole."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from nbguard.envs.interpreters import Interpreter
from nbguard.envs.resolvers import Resolver, reason
from nbguard.errors import ResolutionError


@dataclass(frozen=True)
class Request:
    """What to ask a resolver, and under which name the answer is cached."""

    what: str  # how a failure names it: "the requirements of env 'upcoming'"
    stem: str  # the cached lock's file name without suffix: a `key` of every input
    text: str  # the requirement lines the resolver reads
    # The newest releases: resolved again every run (never answered from the cache), since
    # "what students get if they install today" is the point.
    upgrade: bool = False
    prerelease: bool = False
    # A previous output: versions the resolver keeps where the requirements still allow them.
    preferred: str = ""


def key(*inputs: str) -> str:
    return hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:20]


def resolve(request: Request, interp: Interpreter, resolver: Resolver, cache_dir: Path) -> str:
    """The lock for `request`, from the cache when it may be; raises ResolutionError with the
    resolver's own explanation when it cannot be resolved."""
    cached = cache_dir / "locks" / f"{request.stem}.txt"
    if not request.upgrade and cached.is_file():
        return cached.read_text(encoding="utf-8")
    cached.parent.mkdir(parents=True, exist_ok=True)
    infile = cached.with_suffix(".in")
    infile.write_text(request.text, encoding="utf-8")
    outfile = cached.with_name(f"{request.stem}.{time.monotonic_ns()}.tmp")
    if request.preferred:
        # uv pip compile and pip-compile both keep the pins of an existing output file when
        # they still fit (without --upgrade): that file is how preferences reach the resolver.
        outfile.write_text(request.preferred, encoding="utf-8")
    done = resolver.compile(
        interp, infile, outfile, upgrade=request.upgrade, prerelease=request.prerelease
    )
    if not done.ok or not outfile.is_file():
        outfile.unlink(missing_ok=True)
        raise ResolutionError(
            f"cannot resolve {request.what} for Python {interp.version} ({resolver.name}): "
            f"{reason(done)}"
        )
    outfile.replace(cached)  # atomic: a concurrent run reads the old or the new lock, whole
    return cached.read_text(encoding="utf-8")
