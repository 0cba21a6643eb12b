"""conda, mamba or micromamba on PATH as the conda solver when py-rattler is not installed: a
dry-run `create --json` solves, an `@EXPLICIT` list of the solution links it into the venv."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbguard import proc
from nbguard.envs.conda_build import SOLVE_TIMEOUT_S, Solved, SolveRequest
from nbguard.errors import ResolutionError
from nbguard.secret_env import is_secret

# What the tools add to a `python` package by default: pip would come from the channels, and
# the stand-in python has none to offer (the venv brings its own pip).
_ENV = {
    "CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY": "false",
    "MAMBA_ADD_PIP_AS_PYTHON_DEPENDENCY": "false",
    "CONDA_AUTO_UPDATE_CONDA": "false",
    "CONDA_NOTIFY_OUTDATED_CONDA": "false",
}


class Tool:
    """A conda-like tool: the same command line for conda, mamba and micromamba, as they
    document it (`create --prefix P --override-channels -c URL --dry-run --json`,
    `install --prefix P --file EXPLICIT`)."""

    def __init__(self, kind: str, executable: Path | None) -> None:
        if executable is None:
            raise ResolutionError(f"there is no {kind} on PATH")
        self.kind, self.executable = kind, executable
        self.name = f"{kind} at {executable}"

    def solve(self, request: SolveRequest, cache_dir: Path) -> list[Solved]:
        """The solution, with the preferred records' versions kept: the tools take no
        preferences, so they are asked first as exact specs, then (when that cannot be
        solved) left free. Nor do they solve for the lowest versions: a lifted request asks
        for its floors exactly first, then for the newest above them."""
        attempts: list[list[str]] = []
        preferred = dict(_preferred(request.preferred))
        if preferred:
            # A spec that constrains a package wins over its preference; a bare name takes it.
            constrained = {
                _spec_name(spec) for spec in request.specs if spec.strip() != _spec_name(spec)
            }
            kept = [f"{n} =={v}" for n, v in preferred.items() if n not in constrained]
            free = [spec for spec in request.specs if spec.strip() not in preferred]
            attempts.append([*free, *kept])
        if request.lowest:
            attempts.append([spec.replace(" >=", " ==", 1) for spec in request.specs])
        for specs in attempts:
            try:
                return self._solve(request.channels, specs, cache_dir)
            except ResolutionError:
                continue  # a pin moves what it must: asked again with less held
        return self._solve(request.channels, request.specs, cache_dir)

    def _solve(
        self, channels: Sequence[str], specs: Sequence[str], cache_dir: Path
    ) -> list[Solved]:
        prefix = cache_dir / "conda" / f"solve-{secrets.token_hex(4)}"  # never created
        argv: list[str | Path] = [self.executable, "create", "--prefix", prefix, "--dry-run"]
        argv += ["--json", "--yes", *self._common(channels, cache_dir), *specs]
        done = proc.run(argv, env=self._env(cache_dir), timeout=SOLVE_TIMEOUT_S)
        data = _json(done)
        if not done.ok or data is None or data.get("success") is False:
            raise ResolutionError(_why(done, data))
        actions = data.get("actions") or {}
        fetched = {str(r.get("name")): r for r in actions.get("FETCH") or [] if isinstance(r, dict)}
        pkgs = cache_dir / "conda" / "pkgs"
        return [
            _solved(link, fetched, pkgs)
            for link in actions.get("LINK") or []
            if isinstance(link, dict)
        ]

    def install(self, packages: Sequence[Solved], target: Path, cache_dir: Path) -> str | None:
        """The packages linked into the venv at `target` from an `@EXPLICIT` list (no second
        solve): the tools install into a prefix only once it looks like a conda env, so
        `conda-meta/history` is made first, as conda itself makes it."""
        history = target / "conda-meta" / "history"
        history.parent.mkdir(parents=True, exist_ok=True)
        history.touch()
        explicit = target.with_name(f"{target.name}.explicit.txt")
        lines = ["@EXPLICIT", *(p.url for p in packages)]
        explicit.write_text("\n".join([*lines, ""]), encoding="utf-8")
        argv: list[str | Path] = [self.executable, "install", "--prefix", target, "--yes"]
        argv += ["--json", "--file", explicit, *self._common((), cache_dir)]
        # Linking compiles the env's bytecode with its python (and conda runs packages'
        # link scripts): the env's code runs, and gets no secret of nbguard's.
        done = proc.run(argv, env=self._env(cache_dir), timeout=SOLVE_TIMEOUT_S, withhold=is_secret)
        explicit.unlink(missing_ok=True)
        data = _json(done)
        if not done.ok or (data is not None and data.get("success") is False):
            return _why(done, data)
        return None

    def _common(self, channels: Sequence[str], cache_dir: Path) -> list[str | Path]:
        """Only the given channels, strictly in order, never the user's .condarc ones; a
        micromamba of its own root prefix in nbguard's cache (it has no base env to use)."""
        args: list[str | Path] = ["--override-channels", "--strict-channel-priority"]
        for channel in channels:
            args += ["-c", channel]
        if self.kind == "micromamba":
            args += ["--root-prefix", cache_dir / "conda" / "micromamba", "--no-rc"]
        return args

    def _env(self, cache_dir: Path) -> dict[str, str]:
        # The package cache is nbguard's, shared by every env it builds (and kept with them).
        return {**_ENV, "CONDA_PKGS_DIRS": str(cache_dir / "conda" / "pkgs")}


def _preferred(paths: Sequence[Path]) -> list[tuple[str, str]]:
    found = []
    for path in paths:
        record = json.loads(path.read_text(encoding="utf-8"))
        found.append((str(record["name"]), str(record["version"])))
    return found


def _spec_name(spec: str) -> str:
    head = spec.split("::")[-1].strip()
    for stop in " =<>!~[":
        head = head.split(stop, 1)[0]
    return head


def _solved(link: Mapping[str, Any], fetched: Mapping[str, Any], pkgs: Path) -> Solved:
    """A LINK action as a Solved: micromamba's carry the whole record; conda's carry the
    name, version, build and channel, the rest is in the FETCH action of the same package
    or, for one already in the package cache, in its repodata_record.json."""
    name = str(link.get("name", ""))
    record: Mapping[str, Any] = link
    if not link.get("url") or "depends" not in link:
        extracted = pkgs / str(link.get("dist_name", "")) / "info" / "repodata_record.json"
        if name in fetched:
            record = {**fetched[name], **link}
        elif link.get("dist_name") and extracted.is_file():
            record = {**json.loads(extracted.read_text(encoding="utf-8")), **link}
    build = str(record.get("build_string") or record.get("build") or "")
    url = str(record.get("url") or "")
    if not url:
        # Enough for an @EXPLICIT line: channel, subdir, the file name the tools write.
        base = str(record.get("base_url") or record.get("channel") or "").rstrip("/")
        subdir = str(record.get("platform") or record.get("subdir") or "noarch")
        filename = str(record.get("fn") or f"{record.get('dist_name', '')}.tar.bz2")
        url = f"{base}/{subdir}/{filename}"
    depends = tuple(str(dep) for dep in record.get("depends") or ())
    return Solved(name, str(record.get("version", "")), build, url, depends, dict(record))


def _json(done: proc.Completed) -> dict[str, Any] | None:
    """The JSON document a tool printed (micromamba may print a line before it)."""
    text = done.stdout.strip()
    start = text.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(text[start:])
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _why(done: proc.Completed, data: Mapping[str, Any] | None) -> str:
    """The tool's own explanation: its JSON `message` (conda's `error`), else its last words."""
    if data is not None:
        for key in ("message", "error", "solver_problems"):
            value = data.get(key)
            if value:
                text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
                return " ".join(text.split())
    tail = done.last_lines(15)
    return " ".join(line.strip() for line in tail.splitlines() if line.strip()) or (
        f"{done.argv[0]} exited with {done.returncode}"
    )
