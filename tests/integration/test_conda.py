"""Integration tier: a course whose only environment file is a conda environment.yml, with a
conda-only package from a local channel the test builds, solved and installed by py-rattler
for both envs, its `pip:` section (a `-r` include) installed offline on top; and the Colab
preset built from a saved snapshot."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbguard import cli
from nbguard.envs import cache, conda, conda_build, interpreters
from nbguard.envs.resolvers import BuildOptions, Sources
from nbguard.errors import ResolutionError
from nbguard.model import EnvInfo
from tests.support.conda_channel import build_channel
from tests.support.courses import FIXTURES, make_course, snapshot
from tests.support.procs import live_kernels
from tests.support.wheels import kernel_wheelhouse, offline_args

PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _notebook(path: Path, source: str) -> None:
    nb = new_notebook(cells=[new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
    nbformat.write(nb, path)


@pytest.fixture
def conda_course(tmp_path: Path) -> Path:
    channel = build_channel(tmp_path)
    course = tmp_path / "course"
    course.mkdir()
    # The channel by a path relative to the environment.yml, as a course keeps its own.
    (course / "environment.yml").write_text(
        "name: phys\n"
        f"channels:\n  - ../{channel.name}\n"
        "dependencies:\n"
        f"  - python={PYTHON}\n"
        "  - pip\n"
        "  - condaphys=1.0\n"
        "  - pip:\n"
        "      - -r pip-requirements.txt\n",
        encoding="utf-8",
    )
    (course / "pip-requirements.txt").write_text("nbguard-demo-wobble==1.0\n", encoding="utf-8")
    _notebook(course / "energy.ipynb", "import condaphys\nprint(condaphys.energy(2.0, 3.0))")
    _notebook(course / "mean.ipynb", "import wobble\nprint(wobble.mean([1.0, 2.0, 3.0]))")
    return course


def test_an_environment_yml_course_runs_end_to_end_in_conda_envs(
    conda_course: Path,
    fixture_wheels: Path,
    env_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = snapshot(conda_course)
    report = conda_course.parent / "report.json"
    args = ["run", str(conda_course), *offline_args(env_cache, fixture_wheels)]
    args += ["--conda-solver", "rattler", "--report", str(report)]

    assert cli.main(args) == 1

    out = capsys.readouterr().out
    assert f"env locked: Python {PYTHON}." in out
    assert "(from environment.yml python spec)" in out
    assert "env locked: environment.yml solved by conda (py-rattler), as declared" in out
    assert "env upcoming: environment.yml solved by conda (py-rattler), relaxed" in out
    data = json.loads(report.read_text())
    assert data["envs"]["locked"]["packages"]["condaphys"] == "1.0"
    assert data["envs"]["upcoming"]["packages"]["condaphys"] == "2.0"
    assert data["envs"]["locked"]["packages"]["nbguard-demo-wobble"] == "1.0"
    notebooks = {nb["path"]: nb for nb in data["notebooks"]}
    energy = notebooks["energy.ipynb"]
    assert energy["verdict"] == "broken"
    assert energy["runs"]["locked"]["status"] == "ok"
    assert energy["runs"]["upcoming"]["error"]["evalue"] == (
        "module 'condaphys' has no attribute 'energy'"
    )
    assert (energy["culprit"]["package"], energy["culprit"]["from"], energy["culprit"]["to"]) == (
        "condaphys",
        "1.0",
        "2.0",
    )
    assert notebooks["mean.ipynb"]["runs"]["locked"]["status"] == "ok"

    # The second run reuses both conda envs from the cache; blame confirms the conda-only
    # culprit with a probe env conda solves (upcoming with condaphys back at 1.0).
    assert cli.main([*args, "--blame"]) == 1
    again = json.loads(report.read_text())
    assert again["envs"]["locked"]["reused"] and again["envs"]["upcoming"]["reused"]
    assert again["envs"]["locked"]["fingerprint"] == data["envs"]["locked"]["fingerprint"]
    culprit = {nb["path"]: nb for nb in again["notebooks"]}["energy.ipynb"]["culprit"]
    assert (culprit["package"], culprit["evidence"]) == ("condaphys", "confirmed"), culprit

    # Blame's Python axis on a conda env: locked lifted to another Python swaps the stand-in
    # and keeps the lowest versions that fit (resolved only: this machine has one Python).
    locked = data["envs"]["locked"]
    home = cache.env_dir(env_cache, locked["fingerprint"])
    base = EnvInfo("locked", PYTHON, locked["packages"], locked["fingerprint"], home / "bin/python")
    python = interpreters.find(None)
    newer = interpreters.Interpreter(python.executable, f"{PYTHON}.99", "CPython", python.platform)
    links = (str(kernel_wheelhouse()), str(fixture_wheels))
    options = BuildOptions("uv", Sources(find_links=links, no_index=True), env_cache, "rattler")
    lifted = conda_build.build_variant(
        "upcoming-probe", newer, base, {}, options, lift=True, resolve_only=True
    )
    assert lifted.error is None, lifted.error
    assert lifted.python == f"{PYTHON}.99"
    assert (lifted.packages["condaphys"], lifted.packages["nbguard-demo-wobble"]) == ("1.0", "1.0")
    assert snapshot(conda_course) == before
    assert not live_kernels(marker=str(env_cache))  # none of this run's kernels survives


def test_the_colab_preset_builds_from_a_saved_snapshot(
    tmp_path: Path,
    fixture_wheels: Path,
    env_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    course = make_course(tmp_path, {"mean.ipynb": [MEAN]}, fixture_wheels)
    with (course / "nbguard.toml").open("a", encoding="utf-8") as config:
        config.write('\n[envs.colab]\npreset = "colab"\n')
    # Colab's published files, with this machine's Python in os-info.txt so the test needs
    # no second interpreter; the fixture's pip freeze as it is.
    source = tmp_path / "backend-info"
    source.mkdir()
    shutil.copy(FIXTURES / "colab" / "pip-freeze.txt", source)
    (source / "os-info.txt").write_text(f"Ubuntu 22.04.4 LTS\nPython {PYTHON}.99\n")
    # A package published as a source distribution only: no wheel for this machine.
    links = tmp_path / "sdists"
    _sdist(links, "nbguard_demo_sdist_only", "1.0")
    assert cli.main(["colab-snapshot", str(course), "--source", str(source)]) == 0
    report = tmp_path / "report.json"
    args = ["run", str(course), *offline_args(env_cache, links), "--report", str(report)]

    assert cli.main(args) == 0

    out = capsys.readouterr().out
    assert f"env colab: Python {PYTHON}." in out
    assert "(from .nbguard/colab-snapshot.txt header)" in out
    data = json.loads(report.read_text())
    colab = data["envs"]["colab"]
    assert colab["packages"]["nbguard-demo-wobble"] == "1.0"
    # What no index serves is left out before resolving (offline, a URL line would fail it).
    assert colab["notes"] == [
        "left out of the Colab runtime: colab-course-tools (an editable install on Colab), "
        "google-colab (installed from Colab's own disk), torch 2.5.1+cu124 (a direct URL on "
        "download.pytorch.org), nbguard-demo-sdist-only==1.0 (no wheel for this machine)"
    ]
    # Under the env's line in the terminal too (wrapped at the console's width).
    assert "nbguard-demo-sdist-only==1.0 (no wheel for this machine)" in " ".join(out.split())
    assert [nb["verdict"] for nb in data["notebooks"]] == ["ok"]


MEAN = "import wobble\nprint(wobble.mean([1.0, 2.0, 3.0]))"


def _sdist(folder: Path, name: str, version: str) -> None:
    """A source distribution of `name` (just its metadata: it is never built)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    with tarfile.open(folder / f"{name}-{version}.tar.gz", "w:gz") as archive:
        member = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))


def test_conda_locks_solve_to_their_exact_builds_and_relax_to_the_newest(
    tmp_path: Path, env_cache: Path
) -> None:
    channel = build_channel(tmp_path)
    package = f"{channel.as_uri()}/noarch/condaphys-1.0-pyh_0.tar.bz2"
    python = interpreters.find(None)
    explicit = tmp_path / "spec-file.txt"
    explicit.write_text(f"# platform: linux-64\n@EXPLICIT\n{package}#0123\n", encoding="utf-8")
    conda_lock = tmp_path / "conda-lock.yml"
    conda_lock.write_text(
        "version: 1\npackage:\n"
        f"- name: condaphys\n  version: '1.0'\n  manager: conda\n  platform: linux-64\n"
        f"  url: {package}\n",
        encoding="utf-8",
    )

    for lock in (explicit, conda_lock):
        declared = conda.read(lock)
        exact = _solve(declared, python, env_cache)
        newest = _solve(conda.relaxed(declared), python, env_cache)

        # The interpreter's stand-in, and the package the lock names, exactly.
        assert sorted((r.name, r.version, r.build) for r in exact) == [
            ("condaphys", "1.0", "pyh_0"),
            ("python", python.version, "nbguard_0"),
        ], lock.name
        assert {r.name: r.version for r in newest}["condaphys"] == "2.0"


def _solve(
    declared: conda.CondaEnv, python: interpreters.Interpreter, cache: Path
) -> list[conda_build.Solved]:
    channels = (conda_build.standin_channel(python, cache), *conda_build.channel_urls(declared))
    request = conda_build.SolveRequest(channels, declared.specs)
    return conda_build._solve(conda_build.Rattler(), request, python, cache)


def test_an_unsolvable_environment_yml_names_the_spec(tmp_path: Path, env_cache: Path) -> None:
    channel = build_channel(tmp_path)
    environment = tmp_path / "environment.yml"
    environment.write_text(
        f"channels: [{channel.as_uri()}]\ndependencies:\n  - condaphys=9.9\n", encoding="utf-8"
    )

    with pytest.raises(ResolutionError, match="condaphys"):
        _solve(conda.read(environment), interpreters.find(None), env_cache)


def test_py_rattler_keeps_an_envs_linked_versions_and_lifts_to_the_lowest_that_fit(
    tmp_path: Path, env_cache: Path
) -> None:
    """What blame's conda variants stand on: the records an env's conda-meta holds are the
    solver's preferences (condaphys stays 1.0 though 2.0 is newer), and a lift to another
    Python swaps the stand-in and takes the lowest versions at or above the env's."""
    channel = build_channel(tmp_path)
    python = interpreters.find(None)
    solver = conda_build.Rattler()
    standin = conda_build.standin_channel(python, env_cache)
    locked = _solve(conda.read(_environment(tmp_path, "condaphys=1.0", channel)), python, env_cache)
    prefix = tmp_path / "prefix"
    assert solver.install(locked, prefix, env_cache) is None
    (record,) = (prefix / "conda-meta").glob("condaphys-*.json")

    kept = conda_build.SolveRequest((standin, channel.as_uri()), ("condaphys",), (record,))
    solved = conda_build._solve(solver, kept, python, env_cache)
    assert {r.name: r.version for r in solved}["condaphys"] == "1.0"

    newer = interpreters.Interpreter(python.executable, f"{PYTHON}.99", "CPython", python.platform)
    lifted = conda_build.SolveRequest(
        (conda_build.standin_channel(newer, env_cache), channel.as_uri()),
        ("condaphys >=1.0",),
        lowest=True,
    )
    solved = conda_build._solve(solver, lifted, newer, env_cache)
    assert sorted((r.name, r.version, r.build) for r in solved) == [
        ("condaphys", "1.0", "pyh_0"),
        ("python", f"{PYTHON}.99", "nbguard_0"),
    ]


def _environment(folder: Path, spec: str, channel: Path) -> Path:
    path = folder / "environment.yml"
    path.write_text(f"channels: [{channel.as_uri()}]\ndependencies:\n  - {spec}\n", "utf-8")
    return path
