"""Unit tier: the conda solvers nbguard drives without py-rattler's real solve. conda, mamba and
micromamba on PATH (none installs from PyPI or Debian here, so a fake executable stands in:
it checks the documented command line and answers as the tools' `--json` does), and the
requests blame's variants of a conda env make (a fake solver records them)."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from nbguard import envs, settings
from nbguard.envs import cache, conda, conda_build, conda_cli
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.resolvers import BuildOptions, Sources
from nbguard.errors import EnvironmentBuildError, ResolutionError
from nbguard.model import EnvInfo

INTERP = Interpreter(Path("/usr/bin/python3"), "3.10.13", "CPython", "Linux-x86_64")
NEW_INTERP = Interpreter(Path("/usr/bin/python3.12"), "3.12.4", "CPython", "Linux-x86_64")

# The fake tool: logs each call, solves `name ==version` specs against FAKE_CONDA_PACKAGES
# (name → versions), and "links" an @EXPLICIT list by writing conda-meta records.
FAKE_TOOL = """\
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["FAKE_CONDA_LOG"], "a") as log:
    seen = {k: os.environ.get(k) for k in ("CONDA_PKGS_DIRS", "CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY")}
    log.write(json.dumps({"argv": args, "env": seen}) + "\\n")
available = json.loads(os.environ["FAKE_CONDA_PACKAGES"])
valued = {"--prefix", "-c", "--root-prefix", "--file"}
value = lambda flag: args[args.index(flag) + 1]
channels = [args[i + 1] for i, a in enumerate(args) if a == "-c"]
operands = [
    a for i, a in enumerate(args[1:], 1) if not a.startswith("-") and args[i - 1] not in valued
]

def answer(success, **data):
    print(json.dumps({"success": success, **data}))
    sys.exit(0 if success else 1)

if args[0] == "create":
    if not {"--dry-run", "--json", "--override-channels", "--yes"} <= set(args):
        answer(False, message="unexpected command line")
    link = []
    for spec in operands:
        name, _, rest = spec.partition(" ")
        version = rest.lstrip("=>").split()[0] if rest else available[name][-1]
        if rest.startswith(">="):  # the newest at or above the floor
            floor = [int(part) for part in version.split(".")]
            fits = [v for v in available[name] if [int(p) for p in v.split(".")] >= floor]
            version = fits[-1] if fits else version
        build = rest.split()[1] if name == "python" else "pyh_0"
        if name != "python" and version not in available.get(name, []):
            answer(False, message=f"nothing provides requested {spec}")
        url = f"{channels[0 if name == 'python' else -1]}/noarch/{name}-{version}-{build}.tar.bz2"
        depends = [] if name == "python" else ["python >=3.8"]
        link.append({"name": name, "version": version, "build_string": build, "url": url,
                     "depends": depends})
    answer(True, dry_run=True, actions={"LINK": link, "FETCH": []})
if args[0] == "install":
    prefix = Path(value("--prefix"))
    if not (prefix / "conda-meta" / "history").is_file():
        answer(False, message=f"{prefix} is not a conda environment")
    lines = Path(value("--file")).read_text().splitlines()
    if lines[0] != "@EXPLICIT":
        answer(False, message="not an explicit list")
    for url in lines[1:]:
        stem = url.rsplit("/", 1)[1].removesuffix(".tar.bz2")
        (prefix / "conda-meta" / f"{stem}.json").write_text(json.dumps({"url": url}))
    answer(True)
answer(False, message=f"unknown command {args[0]}")
"""


@pytest.fixture
def fake_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake micromamba first on PATH; the calls it gets are logged to the returned file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "micromamba"
    tool.write_text(f"#!{sys.executable}\n{FAKE_TOOL}", encoding="utf-8")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_CONDA_LOG", str(log))
    monkeypatch.setenv("FAKE_CONDA_PACKAGES", json.dumps({"condaphys": ["1.0", "2.0"]}))
    monkeypatch.setattr(conda.importlib.util, "find_spec", lambda name: None)  # no py-rattler
    return log


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def options(cache_dir: Path, solver: str = "auto") -> BuildOptions:
    return BuildOptions("uv", Sources(), cache_dir, solver)


def test_auto_takes_a_conda_tool_on_path_when_py_rattler_is_missing(
    fake_tool: Path, tmp_path: Path
) -> None:
    assert conda.solver("auto") == "micromamba"
    assert conda.solver("micromamba") == "micromamba"
    with pytest.raises(EnvironmentBuildError, match="no conda on PATH"):
        conda.solver("conda")
    solver = conda_build.solver_for(options(tmp_path))
    assert solver.name == f"micromamba at {tmp_path / 'bin' / 'micromamba'}"
    # The terminal says which tool solves the declaration.
    environment = tmp_path / "environment.yml"
    environment.write_text("channels: [conda-forge]\ndependencies:\n  - root=6.30\n")
    spec = settings.EnvSpec("locked", requirements=environment)
    assert envs.notes(spec, INTERP, options(tmp_path)) == [
        f"env locked: environment.yml solved by conda ({solver.name}), as declared, "
        "channels conda-forge"
    ]
    # --pre cannot reach conda's packages: the line says where their pre-releases come from.
    upcoming = settings.EnvSpec("upcoming", requirements=environment, upgrade=True, prerelease=True)
    assert envs.notes(upcoming, INTERP, options(tmp_path))[1] == (
        "env upcoming: conda pre-releases come only from channels the file lists (a label "
        "such as conda-forge/label/numpy_rc); pre-releases apply to its pip: section"
    )


def test_a_tool_solves_with_a_dry_run_and_links_the_explicit_list_into_the_venv(
    fake_tool: Path, tmp_path: Path
) -> None:
    solver = conda_build.solver_for(options(tmp_path / "cache"))
    channel = "file:///courses/phys/channel"
    request = conda_build.SolveRequest(
        ("file:///standin", channel), ("condaphys =1.0", "python ==3.10.13 nbguard_0")
    )

    solved = solver.solve(request, tmp_path / "cache")

    assert [(p.name, p.version, p.build) for p in solved] == [
        ("condaphys", "1.0", "pyh_0"),
        ("python", "3.10.13", "nbguard_0"),
    ]
    (create,) = calls(fake_tool)
    argv = create["argv"]
    assert argv[:2] == ["create", "--prefix"] and "--dry-run" in argv and "--json" in argv
    # Only the given channels, the stand-in's first, strictly; nbguard's own root prefix.
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-c"] == ["file:///standin", channel]
    assert {"--override-channels", "--strict-channel-priority", "--no-rc"} <= set(argv)
    assert argv[argv.index("--root-prefix") + 1] == str(tmp_path / "cache" / "conda" / "micromamba")
    assert create["env"] == {
        "CONDA_PKGS_DIRS": str(tmp_path / "cache" / "conda" / "pkgs"),
        "CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY": "false",
    }
    assert not Path(argv[2]).exists()  # a dry run's prefix is never made

    venv = tmp_path / "env"
    (venv / "bin").mkdir(parents=True)
    assert solver.install(solved, venv, tmp_path / "cache") is None

    # Linked into the venv from the solution's URLs, without a second solve.
    assert sorted(p.name for p in (venv / "conda-meta").glob("*.json")) == [
        "condaphys-1.0-pyh_0.json",
        "python-3.10.13-nbguard_0.json",
    ]
    install = calls(fake_tool)[-1]["argv"]
    assert install[:3] == ["install", "--prefix", str(venv)] and "--file" in install
    assert not list(tmp_path.glob("*.explicit.txt"))  # the list is not left behind


def test_a_tools_own_words_explain_a_failed_solve(fake_tool: Path, tmp_path: Path) -> None:
    solver = conda_build.solver_for(options(tmp_path))
    request = conda_build.SolveRequest(("file:///standin",), ("condaphys ==9.9",))

    with pytest.raises(ResolutionError, match=r"nothing provides requested condaphys ==9\.9"):
        solver.solve(request, tmp_path)


def test_a_tool_keeps_preferred_versions_when_it_can_and_lets_them_move_when_not(
    fake_tool: Path, tmp_path: Path
) -> None:
    records = tmp_path / "conda-meta"
    records.mkdir()
    kept = records / "condaphys-1.0-pyh_0.json"
    kept.write_text(json.dumps({"name": "condaphys", "version": "1.0"}), encoding="utf-8")
    gone = records / "condaphys-0.5-pyh_0.json"
    gone.write_text(json.dumps({"name": "condaphys", "version": "0.5"}), encoding="utf-8")
    solver = conda_build.solver_for(options(tmp_path))

    solved = solver.solve(
        conda_build.SolveRequest(("file:///c",), ("condaphys",), (kept,)), tmp_path
    )
    assert [p.version for p in solved] == ["1.0"]  # not the newest, 2.0: the preference
    assert calls(fake_tool)[-1]["argv"][-1] == "condaphys ==1.0"

    # A spec that constrains the package wins over its preference.
    solved = solver.solve(
        conda_build.SolveRequest(("file:///c",), ("condaphys ==2.0",), (kept,)), tmp_path
    )
    assert [p.version for p in solved] == ["2.0"]

    # A preferred version that cannot be had is dropped: the solve is asked again without.
    solved = solver.solve(
        conda_build.SolveRequest(("file:///c",), ("condaphys",), (gone,)), tmp_path
    )
    assert [(p.name, p.version) for p in solved] == [("condaphys", "2.0")]
    assert [c["argv"][-1] for c in calls(fake_tool)[-2:]] == ["condaphys ==0.5", "condaphys"]

    # Lifted: the floor itself first (the tools have no "lowest" strategy), else the newest.
    lifted = conda_build.SolveRequest(("file:///c",), ("condaphys >=1.0",), lowest=True)
    assert [p.version for p in solver.solve(lifted, tmp_path)] == ["1.0"]
    lifted = conda_build.SolveRequest(("file:///c",), ("condaphys >=1.5",), lowest=True)
    assert [p.version for p in solver.solve(lifted, tmp_path)] == ["2.0"]
    assert [c["argv"][-1] for c in calls(fake_tool)[-2:]] == ["condaphys ==1.5", "condaphys >=1.5"]


def test_conda_style_answers_are_completed_from_their_fetch_actions(tmp_path: Path) -> None:
    """conda's LINK actions carry no URL or depends: the FETCH action of the package does."""
    link = {
        "name": "condaphys",
        "version": "1.0",
        "build_string": "pyh_0",
        "dist_name": "condaphys-1.0-pyh_0",
        "base_url": "https://conda.anaconda.org/conda-forge",
        "platform": "noarch",
        "channel": "conda-forge",
    }
    url = "https://conda.anaconda.org/conda-forge/noarch/condaphys-1.0-pyh_0.conda"
    fetch = {"condaphys": {"name": "condaphys", "url": url, "depends": ["python >=3.8"]}}

    solved = conda_cli._solved(link, fetch, tmp_path)
    assert (solved.url, solved.depends) == (url, ("python >=3.8",))

    # Already in the package cache: its repodata_record.json, as conda writes it.
    extracted = tmp_path / "condaphys-1.0-pyh_0" / "info"
    extracted.mkdir(parents=True)
    (extracted / "repodata_record.json").write_text(
        json.dumps({"url": url, "depends": ["python >=3.9"]}), encoding="utf-8"
    )
    assert conda_cli._solved(link, {}, tmp_path).depends == ("python >=3.9",)


# --- blame's variants of a conda env ----------------------------------------------------------


class RecordingSolver:
    name = "fake"

    def __init__(self, versions: dict[str, str]) -> None:
        self.versions = versions
        self.requests: list[conda_build.SolveRequest] = []

    def solve(self, request: conda_build.SolveRequest, cache_dir: Path) -> list[conda_build.Solved]:
        self.requests.append(request)
        solved = []
        for spec in request.specs:
            name, _, rest = spec.partition(" ")
            version = rest.removeprefix("==").removeprefix(">=").split()[0] if rest else ""
            build = rest.split()[1] if name == "python" else "pyh_0"
            version = version or self.versions[name]
            solved.append(
                conda_build.Solved(name, version, build, f"file:///c/{name}", ("python",))
            )
        return solved

    def install(
        self, packages: Sequence[conda_build.Solved], target: Path, cache_dir: Path
    ) -> str | None:
        raise AssertionError("resolve_only never installs")


def conda_env(tmp_path: Path) -> EnvInfo:
    """A built conda env as conda_build leaves it: conda-meta records (stand-in included),
    the channels it was solved from, the pip layer's lock."""
    home = tmp_path / "envs" / "upcoming"
    (home / "bin").mkdir(parents=True)
    (home / "conda-meta").mkdir()
    for name, version, build in [
        ("condaphys", "2.0", "pyh_0"),
        ("condahelp", "1.3", "pyh_0"),
        ("python", "3.10.13", "nbguard_0"),
    ]:
        record = {"name": name, "version": version, "build": build}
        (home / "conda-meta" / f"{name}-{version}-{build}.json").write_text(json.dumps(record))
    (home / "nbguard-conda.json").write_text(json.dumps({"channels": ["file:///c"]}))
    cache.lock_path(home).write_text("nbguard-demo-wobble==2.0\nipykernel==6.29.5\n")
    packages = {"condaphys": "2.0", "condahelp": "1.3", "nbguard-demo-wobble": "2.0"}
    return EnvInfo("upcoming", "3.10.13", packages, "f" * 64, home / "bin" / "python")


def test_a_conda_envs_variant_is_solved_by_conda_with_its_records_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = conda_env(tmp_path)
    solver = RecordingSolver({"condahelp": "1.3"})
    monkeypatch.setattr(conda_build, "solver_for", lambda options: solver)
    pip_layers: list[tuple[list[str], dict[str, str], str]] = []

    def pip_layer(
        what: str, lines: Sequence[str], provided: dict[str, str], *args: Any, **how: Any
    ) -> str:
        pip_layers.append((list(lines), provided, how["preferred"]))
        return "nbguard-demo-wobble==1.0\nipykernel==6.29.5\n"

    monkeypatch.setattr(conda_build, "_pip_layer", pip_layer)
    pins = {"condaphys": "1.0", "nbguard_demo_wobble": "1.0"}

    env = conda_build.build_variant(
        "upcoming-probe", INTERP, base, pins, options(tmp_path / "cache"), resolve_only=True
    )

    assert env.error is None
    assert env.packages == {
        "condaphys": "1.0",
        "condahelp": "1.3",
        "nbguard-demo-wobble": "1.0",
        "ipykernel": "6.29.5",
    }
    (request,) = solver.requests
    # The conda pin exact, the rest by name with the env's own records as preferences; the
    # stand-in python of the probe's interpreter; the env's channels after the stand-in's.
    assert request.specs == ("condaphys ==1.0", "condahelp", "python ==3.10.13 nbguard_0")
    assert [p.name for p in request.preferred] == ["condahelp-1.3-pyh_0.json"]
    assert request.channels[1:] == ("file:///c",) and not request.lowest
    # The pin on a package the env installed with pip goes to its pip layer.
    ((lines, provided, preferred),) = pip_layers
    assert "nbguard-demo-wobble==1.0" in lines and "condaphys" not in " ".join(lines)
    assert set(provided) == {"condaphys", "condahelp"}
    assert "ipykernel==6.29.5" in preferred


def test_a_conda_envs_lift_to_another_python_moves_the_stand_in_and_floors_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = conda_env(tmp_path)
    solver = RecordingSolver({})
    monkeypatch.setattr(conda_build, "solver_for", lambda options: solver)
    monkeypatch.setattr(conda_build, "_pip_layer", lambda *a, **k: "ipykernel==6.29.5\n")

    env = conda_build.build_variant(
        "upcoming-probe",
        NEW_INTERP,
        base,
        {},
        options(tmp_path / "cache"),
        lift=True,
        resolve_only=True,
    )

    assert env.python == "3.12.4"
    (request,) = solver.requests
    assert request.specs == ("condahelp >=1.3", "condaphys >=2.0", "python ==3.12.4 nbguard_0")
    assert request.lowest and not request.preferred
    assert "python-3.12.4" in request.channels[0]  # the stand-in channel of the new Python


def test_a_pin_on_a_package_conda_cannot_find_goes_to_the_pip_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package the other env has and this one lacks is asked of conda, then of pip."""
    base = conda_env(tmp_path)
    solver = RecordingSolver({"condahelp": "1.3", "condaphys": "2.0"})
    refuse = solver.solve

    def solve(request: conda_build.SolveRequest, cache_dir: Path) -> list[conda_build.Solved]:
        if any(spec.startswith("pipgone") for spec in request.specs):
            solver.requests.append(request)
            raise ResolutionError("nothing provides pipgone ==0.3")
        return refuse(request, cache_dir)

    monkeypatch.setattr(solver, "solve", solve)
    monkeypatch.setattr(conda_build, "solver_for", lambda options: solver)
    pip_lines: list[str] = []

    def pip_layer(what: str, lines: Sequence[str], *args: Any, **how: Any) -> str:
        pip_lines.extend(lines)
        return "pipgone==0.3\n"

    monkeypatch.setattr(conda_build, "_pip_layer", pip_layer)

    env = conda_build.build_variant(
        "upcoming-probe", INTERP, base, {"pipgone": "0.3"}, options(tmp_path), resolve_only=True
    )

    assert env.error is None and env.packages["pipgone"] == "0.3"
    assert [r.specs[0] for r in solver.requests] == ["pipgone ==0.3", "condahelp"]
    assert "pipgone==0.3" in pip_lines


def test_a_conda_env_built_before_its_channels_were_kept_is_still_probed_by_conda(
    tmp_path: Path,
) -> None:
    """An env an earlier nbguard built has conda's records but no channels file: blame's
    variants of it are solved by conda from the channels its packages came from."""
    home = tmp_path / "env"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "python").symlink_to(sys.executable)
    meta = home / "conda-meta"
    meta.mkdir()
    forge = "https://conda.anaconda.org/conda-forge"
    for name, channel in (
        ("root", f"{forge}/linux-64"),
        ("cfitsio", f"{forge}/linux-64"),
        ("condaphys", "file:///courses/phys/channel/noarch"),
    ):
        record = {"name": name, "version": "1.0", "build": "0", "channel": channel}
        (meta / f"{name}-1.0-0.json").write_text(json.dumps(record))
    env = EnvInfo("locked", "3.11.9", {}, "fp", interpreter=home / "bin" / "python")

    assert conda_build.is_conda_env(env)
    assert conda_build._stored_channels(home) == [forge, "file:///courses/phys/channel"]
    assert not conda_build.is_conda_env(replace(env, interpreter=tmp_path / "venv" / "bin" / "py"))
