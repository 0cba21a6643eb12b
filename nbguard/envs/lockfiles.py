"""A resolution request → a lock file: cached under a hash of everything it depends on,
compiled into a temporary file and renamed into place, so a concurrent nbguard reads the old
lock or the new one, whole."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from nbguard import proc
from nbguard.ansi import strip_ansi
from nbguard.envs.cache import file_lock
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.requirements import canonical
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
    wheels_only: bool = False  # never build an sdist: a version without a wheel does not exist
    lowest: bool = False  # the lowest versions the requirements allow (a lifted lock)
    # First from what the resolver cached of the index (a blame probe: versions the audit's
    # own resolutions have just read), and from the index only when that cannot answer.
    cached_first: bool = False


def key(*inputs: str) -> str:
    return hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:20]


def resolve(request: Request, interp: Interpreter, resolver: Resolver, cache_dir: Path) -> str:
    """The lock for `request`, from the cache when it may be; raises ResolutionError with the
    resolver's own explanation when it cannot be resolved."""
    cached = cache_dir / "locks" / f"{request.stem}.txt"
    if request.upgrade:
        return _compile(request, interp, resolver, cached)
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    # Two notebooks' probes (threads or processes) asking the same resolves it once.
    with file_lock(cached.with_suffix(".lock")):
        if cached.is_file():
            return cached.read_text(encoding="utf-8")
        return _compile(request, interp, resolver, cached)


def _compile(request: Request, interp: Interpreter, resolver: Resolver, cached: Path) -> str:
    cached.parent.mkdir(parents=True, exist_ok=True)
    infile = cached.with_name(f"{request.stem}.{time.monotonic_ns()}.in")
    infile.write_text(request.text, encoding="utf-8")
    outfile = cached.with_name(f"{request.stem}.{time.monotonic_ns()}.tmp")

    def ask(*, offline: bool = False) -> proc.Completed:
        # uv pip compile and pip-compile both keep the pins of an existing output file when
        # they still fit (without --upgrade): that file is how preferences reach the resolver,
        # written for each attempt (never what a failed one left in its place).
        if request.preferred:
            outfile.write_text(request.preferred, encoding="utf-8")
        else:
            outfile.unlink(missing_ok=True)
        return resolver.compile(
            interp,
            infile,
            outfile,
            upgrade=request.upgrade,
            prerelease=request.prerelease,
            wheels_only=request.wheels_only,
            lowest=request.lowest,
            offline=offline,
        )

    # A tenth of a second from the cache against seconds of index requests, many at once
    # while blames run side by side. An answer from the cache may miss a release newer than
    # the cache (a package the pins newly need then comes a little older), never install
    # what does not exist; anything it cannot answer (any failure) is asked of the index.
    done = ask(offline=True) if request.cached_first and resolver.caches_index else None
    if done is None or not done.ok:
        done = ask()
    infile.replace(cached.with_suffix(".in"))
    if not done.ok or not outfile.is_file():
        outfile.unlink(missing_ok=True)
        raise ResolutionError(
            f"cannot resolve {request.what} for Python {interp.version} ({resolver.name}): "
            f"{_why(done, interp) if request.wheels_only else reason(done)}"
        )
    outfile.replace(cached)  # atomic: a concurrent run reads the old or the new lock, whole
    return cached.read_text(encoding="utf-8")


# uv: "numpy==1.21.2 has no usable wheels", "… has no wheels with a matching Python ABI tag";
# pip: "No matching distribution found for numpy==1.21.2".
_NO_WHEEL = re.compile(
    r"(?:([A-Za-z0-9][\w.-]*)==([\w.+!-]+) has no (?:usable )?wheels"
    r"|No matching distribution found for ([A-Za-z0-9][\w.-]*)==([\w.+!-]+))"
)


_LISTED = re.compile(
    r"(?:^|: |, )([A-Za-z0-9][\w.-]*) [\w.+!-]+(?=(?:, [^,]+)* ha(?:s|ve) no wheel)"
)


def no_wheel(message: str) -> list[str]:
    """The packages a wheels-only resolution's failure (as `_why` words it) names as having
    no wheel, canonical names."""
    return [canonical(match.group(1)) for match in _LISTED.finditer(message)]


def _why(done: proc.Completed, interp: Interpreter) -> str:
    """A wheels-only resolution's failure in one line: the versions with no wheel for the
    interpreter, when the resolver names them; its own last words otherwise."""
    text = strip_ansi(done.last_lines(40))
    missing = dict.fromkeys(f"{m[1] or m[3]} {m[2] or m[4]}" for m in _NO_WHEEL.finditer(text))
    if not missing:
        return reason(done)
    python = ".".join(interp.version.split(".")[:2])
    have = "has" if len(missing) == 1 else "have"
    return f"{', '.join(missing)} {have} no wheel for Python {python}"
