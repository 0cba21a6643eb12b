"""Integration tier: the env cache survives damage, a killed install, two nbguard processes
at once, and notebooks that `%pip install` into their env."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbguard import cli
from nbguard.envs import cache as env_cache_module
from tests.support.courses import make_course
from tests.support.wheels import offline_args

WOBBLE_VERSION = "from importlib.metadata import version\nprint(version('nbguard-demo-wobble'))"


def _version_is(expected: str) -> str:
    return (
        "from importlib.metadata import version\n"
        f"assert version('nbguard-demo-wobble') == {expected!r}, version('nbguard-demo-wobble')"
    )


def _one_env(course: Path, wheels: Path) -> Path:
    """Two envs of the same pins (one venv in the cache): these tests are about the cache,
    not about comparing envs."""
    (course / "nbguard.toml").write_text(
        f'find-links = ["{wheels}"]\nbaseline = "locked"\n'
        '[envs.locked]\nrequirements = "requirements.txt"\n'
        '[envs.again]\nrequirements = "requirements.txt"\n'
    )
    return course


def _built(report: dict[str, Any]) -> bool:
    """Whether the run built the one venv both envs share: the env that got there first did;
    the other, waiting on the cache's lock, finds it ready (which of the two is a race)."""
    return not all(env["reused"] for env in report["envs"].values())


def _run(course: Path, cache: Path, report: Path, *extra: str) -> dict[str, Any]:
    code = cli.main(["run", str(course), *offline_args(cache), "--report", str(report), *extra])
    data: dict[str, Any] = json.loads(report.read_text())
    assert code == 0, data
    return data


def _env_dir(cache: Path, report: dict[str, Any]) -> Path:
    env = cache / "envs" / str(report["envs"]["locked"]["fingerprint"])[:16]
    assert env.is_dir()
    return env


def _forget_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each nbguard run is a new process; so is each step of these tests."""
    monkeypatch.setattr(env_cache_module, "_VERIFIED", set())


def _truncate_ipykernel(env: Path) -> None:
    (kernelapp,) = env.glob("lib/python*/site-packages/ipykernel/kernelapp.py")
    text = kernelapp.read_text()
    kernelapp.write_text(text[: len(text) // 3])


def _other_fingerprint(env: Path) -> None:
    marker = env / "nbguard-env.json"
    data = json.loads(marker.read_text())
    marker.write_text(json.dumps({**data, "fingerprint": "0" * 64}))


def _site_packages(env: Path) -> Path:
    return next(env.glob("lib/python*/site-packages"))


def _plant_pth(env: Path) -> None:
    # What a notebook (or anyone) could leave behind: code that runs in every later kernel.
    (_site_packages(env) / "zz_planted.pth").write_text("import os; os.environ['PLANTED'] = '1'\n")


def _uninstall_a_file(env: Path) -> None:
    # What `pip uninstall -y tzdata` does to an env, in miniature: a module disappears.
    next(p for p in (_site_packages(env) / "wobble").glob("*.py")).unlink()


DAMAGE = {
    "pth-planted": _plant_pth,
    "module-removed": _uninstall_a_file,
    "python-deleted": lambda env: (env / "bin" / "python").unlink(),
    "ipykernel-truncated": _truncate_ipykernel,
    "killed-mid-install": lambda env: (env / "nbguard-env.json").unlink(),
    "marker-of-another-fingerprint": _other_fingerprint,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_or_half_built_env_is_rebuilt(
    damage: str,
    tmp_path: Path,
    fixture_wheels: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    course = _one_env(
        make_course(tmp_path, {"nb.ipynb": [WOBBLE_VERSION]}, fixture_wheels), fixture_wheels
    )
    cache = tmp_path / "cache"
    first = _run(course, cache, tmp_path / "1.json")
    assert _built(first)
    assert first["notebooks"][0]["runs"]["locked"]["cached"] is False
    _forget_verified(monkeypatch)
    second = _run(course, cache, tmp_path / "2.json")
    assert second["envs"]["locked"]["reused"] is True
    # Nothing changed: the notebook's run comes from the execution cache.
    assert second["notebooks"][0]["runs"]["locked"]["cached"] is True

    DAMAGE[damage](_env_dir(cache, first))
    _forget_verified(monkeypatch)
    # --no-cache: a real kernel in the rebuilt env, not the run from before the damage.
    third = _run(course, cache, tmp_path / "3.json", "--no-cache")
    assert third["notebooks"][0]["runs"]["locked"]["cached"] is False
    assert _built(third)
    assert _env_dir(cache, third) == _env_dir(cache, first)
    (nb,) = third["notebooks"]
    assert nb["runs"]["locked"]["status"] == "ok", nb["runs"]["locked"]
    assert nb["verdict"] == "ok"
    # And the rebuilt env is whole again: the next run takes it as it is.
    _forget_verified(monkeypatch)
    assert _run(course, cache, tmp_path / "4.json")["envs"]["locked"]["reused"] is True


def test_two_nbguard_processes_share_a_fresh_cache(tmp_path: Path, fixture_wheels: Path) -> None:
    course = make_course(
        tmp_path,
        {"a.ipynb": ["import wobble\nprint(wobble.mean([1, 2, 3]))"], "b.ipynb": ["print(1)"]},
        fixture_wheels,
    )
    cache = tmp_path / "cache"
    procs = []
    for n in (1, 2):
        argv = [sys.executable, "-m", "nbguard", "run", str(course), *offline_args(cache)]
        argv += ["--report", str(tmp_path / f"r{n}.json")]
        procs.append(
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    results = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes[0] == codes[1] == 0, results
    for (_, err), n in zip(results, (1, 2), strict=True):
        assert "Traceback" not in err
        report = json.loads((tmp_path / f"r{n}.json").read_text())
        assert {nb["path"]: nb["verdict"] for nb in report["notebooks"]} == {
            "a.ipynb": "ok",
            "b.ipynb": "ok",
        }
        assert all(env["error"] is None for env in report["envs"].values())
    # One env per fingerprint, each built once and whole.
    for env in (cache / "envs").iterdir():
        if env.is_dir():
            assert (env / "nbguard-env.json").is_file()


def test_pip_install_in_a_notebook_does_not_change_the_shared_env(
    tmp_path: Path, fixture_wheels: Path
) -> None:
    install = f"%pip install --no-index --find-links {fixture_wheels} nbguard-demo-wobble==2.0"
    course = _one_env(
        make_course(
            tmp_path,
            {
                "a_installs.ipynb": [install, _version_is("2.0")],
                "b_after.ipynb": [_version_is("1.0")],
            },
            fixture_wheels,
        ),
        fixture_wheels,
    )
    cache = tmp_path / "cache"
    report = _run(course, cache, tmp_path / "r.json", "--jobs", "1")
    runs = {nb["path"]: nb["runs"]["locked"] for nb in report["notebooks"]}
    # The installing notebook sees what it installed, as a student would ...
    assert runs["a_installs.ipynb"]["status"] == "ok", runs["a_installs.ipynb"]
    # ... and the notebook after it still gets the course's pinned version.
    assert runs["b_after.ipynb"]["status"] == "ok", runs["b_after.ipynb"]
    installed = [
        p.name for p in _env_dir(cache, report).glob("lib/python*/site-packages/*.dist-info")
    ]
    assert "nbguard_demo_wobble-1.0.dist-info" in installed
    assert "nbguard_demo_wobble-2.0.dist-info" not in installed
