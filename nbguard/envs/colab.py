"""The Google Colab runtime as an env: the snapshot of its pip freeze and Python a course keeps
(`nbguard colab-snapshot` fetches what googlecolab/backend-info publishes), and the env the
`colab` preset builds from it, wheels only, saying which packages could not be installed."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from nbguard.envs import lockfiles, resolvers
from nbguard.envs.builds import Progress, failed, materialize
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.requirements import KERNEL_REQUIREMENTS, canonical, line_name
from nbguard.envs.resolvers import BuildOptions
from nbguard.errors import ConfigError, ResolutionError
from nbguard.model import EnvInfo
from nbguard.settings import EnvSpec

# Colab publishes its runtime's `pip freeze` and `python --version` in this repository.
SOURCE = "https://raw.githubusercontent.com/googlecolab/backend-info/main"
FREEZE, OS_INFO = "pip-freeze.txt", "os-info.txt"
_PYTHON = re.compile(r"^Python (\d+\.\d+(?:\.\d+)?)\s*$", re.M)
# Each resolution that fails on a package without a wheel drops it and tries again; a
# snapshot has a few such packages (system bindings built on Colab's image), not dozens.
_MAX_DROPS = 30

Fetch = Callable[[str], str]


def fetch_url(url: str) -> str:
    """The text at `url`; ConfigError (exit 2) in one line when it cannot be had."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            text: str = response.read().decode("utf-8")
            return text
    except (urllib.error.URLError, TimeoutError, OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"cannot fetch Colab's runtime from {url}: {why}; offline, save {FREEZE} and "
            f"{OS_INFO} of googlecolab/backend-info and pass their folder with --source DIR"
        ) from None


def _read(source: str, name: str, fetch: Fetch) -> str:
    if re.match(r"^[a-z][a-z0-9+.-]*://", source):
        return fetch(f"{source.rstrip('/')}/{name}")
    path = Path(source) / name
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def snapshot_text(source: str = SOURCE, fetch: Fetch = fetch_url, today: str | None = None) -> str:
    """The snapshot file: a header naming Colab's Python and where and when it was taken,
    then the pip freeze as published."""
    freeze = _read(source, FREEZE, fetch)
    found = _PYTHON.search(_read(source, OS_INFO, fetch))
    if found is None:
        raise ConfigError(f"{OS_INFO} from {source} names no Python version ('Python 3.x.y')")
    lines = [line.strip() for line in freeze.splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    if not requirements:
        raise ConfigError(f"{FREEZE} from {source} lists no packages")
    when = today or datetime.now(timezone.utc).date().isoformat()
    header = [
        f"# Google Colab runtime: Python {found.group(1)}, pip freeze of {source} on {when}",
        "# Written by `nbguard colab-snapshot`; the env preset 'colab' installs it. Refresh it",
        "# with the same command (the nightly workflow does).",
    ]
    return "\n".join([*header, *requirements, ""])


def save_snapshot(
    course: Path, target: Path, source: str = SOURCE, fetch: Fetch = fetch_url
) -> str:
    """Write the current snapshot to `target` (relative: to the course); one line saying
    what changed."""
    if not course.is_dir():
        raise ConfigError(f"course directory {course} does not exist")
    path = target if target.is_absolute() else course / target
    text = snapshot_text(source, fetch)
    old = path.read_text(encoding="utf-8") if path.is_file() else None
    python = text.splitlines()[0].split(",")[0].removeprefix("# Google Colab runtime: ")
    count = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    if old is not None and _body(old) == _body(text):
        return f"{path}: Colab's runtime is unchanged ({python}, {count} packages)"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return f"{'updated' if old is not None else 'wrote'} {path}: {python}, {count} packages"


def _body(text: str) -> list[str]:
    """A snapshot without the date of its header line."""
    lines = text.splitlines()
    return [re.sub(r" on \d{4}-\d\d-\d\d$", "", lines[0]), *lines[1:]] if lines else []


# --- the preset ------------------------------------------------------------------------------


def build(spec: EnvSpec, options: BuildOptions, interp: Interpreter, progress: Progress) -> EnvInfo:
    """The Colab runtime's packages on `interp` as a cached env. What no index serves (a
    file on Colab's disk, a direct URL, a VCS or editable install) and versions with no wheel
    for this machine are left out and named (the env's `error` stays None: the rest is what
    a notebook can use)."""
    started = time.monotonic()
    assert spec.requirements is not None
    resolver = resolvers.for_options(options)
    lines, left_out = installable(spec.requirements.read_text(encoding="utf-8"))
    lines += [r for r in KERNEL_REQUIREMENTS if canonical(r) not in {line_name(x) for x in lines}]
    progress(f"resolving {spec.name} (Colab snapshot, {len(lines)} packages, wheels only)")
    try:
        lock, no_wheel = resolve_wheels(spec.name, lines, interp, resolver, options)
    except ResolutionError as exc:
        return failed(spec.name, interp, str(exc), started)
    left_out += [f"{line} (no wheel for this machine)" for line in no_wheel]
    env = materialize(spec.name, interp, lock, resolver, options.cache_dir, progress, started)
    if not left_out:
        return env
    return replace(env, notes=(f"left out of the Colab runtime: {', '.join(left_out)}",))


def installable(snapshot: str) -> tuple[list[str], list[str]]:
    """The snapshot's requirement lines an index can serve, and the ones it cannot, named
    with why: a file on Colab's own disk, a direct URL (a wheel built for Colab's CUDA, say),
    a VCS checkout, an editable install. Such a line would make the whole resolution fail
    (offline, or where the URL is not reachable) for one package."""
    lines: list[str] = []
    left_out: list[str] = []
    for raw in snapshot.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        why = _not_from_an_index(line)
        if why is not None:
            left_out.append(f"{_name(line)} ({why})")
            continue
        lines.append(line)
    return lines, left_out


# `name @ URL`, or a bare URL or path in place of a requirement.
_DIRECT = re.compile(r"^(?:[A-Za-z0-9][\w.-]*(?:\[[^\]]*\])?\s*@\s*)?(?P<url>\S+)")
_VCS = ("git+", "hg+", "svn+", "bzr+")


def _not_from_an_index(line: str) -> str | None:
    """Why a snapshot line is not a requirement an index serves; None when it is."""
    if line.startswith(("-e ", "--editable")):
        return "an editable install on Colab"
    if line.startswith("-"):
        return "a pip option, not a package"
    if "@" not in line and not re.match(r"^(?:[a-z][a-z0-9+.-]*://|/|\.)", line):
        return None
    url = _DIRECT.match(line)
    target = url.group("url") if url else line
    if target.startswith("file:") or target.startswith(("/", ".")):
        return "installed from Colab's own disk"
    if target.startswith(_VCS):
        return "a VCS checkout"
    host = re.match(r"^[a-z][a-z0-9+.-]*://([^/@]+@)?([^/:]+)", target)
    return f"a direct URL on {host.group(2)}" if host else "a direct reference"


def _name(line: str) -> str:
    """What a left-out line installs, as the note names it: the name (and the version a wheel
    file name carries), an editable's `#egg=` name, or a pip option's flag (never its value:
    an index URL may hold a token)."""
    egg = re.search(r"[#&]egg=([A-Za-z0-9][\w.-]*)", line)
    if egg:
        return canonical(egg.group(1))
    if line.startswith("-") and not line.startswith(("-e ", "--editable")):
        return line.split()[0].split("=", 1)[0]
    named = line_name(line) if "://" not in line.split("@", 1)[0] else None
    filename = urllib.parse.unquote(line.rstrip("/").rsplit("/", 1)[-1].split("#", 1)[0])
    wheel = re.match(r"^([A-Za-z0-9][\w.]*)-([^-]+)-.*\.whl$", filename)
    if wheel:
        return f"{named or canonical(wheel.group(1))} {wheel.group(2)}"
    return named or filename or line


def resolve_wheels(
    name: str,
    lines: list[str],
    interp: Interpreter,
    resolver: resolvers.Resolver,
    options: BuildOptions,
) -> tuple[str, list[str]]:
    """A wheels-only lock of `lines` for `interp`: a pinned version with no wheel is left
    out and the rest resolved again; returns the lock and the versions left out."""
    dropped: list[str] = []
    wanted = list(lines)
    for _ in range(_MAX_DROPS):
        text = "\n".join([*wanted, ""])
        request = lockfiles.Request(
            what=f"the Colab snapshot of env {name!r}",
            stem=lockfiles.key(text, interp.version, interp.platform, resolver.name, "colab")
            + "-colab",
            text=text,
            wheels_only=True,
        )
        try:
            return lockfiles.resolve(request, interp, resolver, options.cache_dir), dropped
        except ResolutionError as exc:
            missing = set(lockfiles.no_wheel(str(exc)))
            kept = [line for line in wanted if line_name(line) not in missing]
            if not missing or len(kept) == len(wanted):
                raise
            dropped += sorted(line for line in wanted if line_name(line) in missing)
            wanted = kept
    raise ResolutionError(f"the Colab snapshot of env {name!r}: too many packages without wheels")
