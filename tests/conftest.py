"""Shared test fixtures: the offline wheelhouse, the demo course copy, tree snapshots."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
DEMO_COURSE = FIXTURES / "demo-course"
# Wheels of ipykernel's closure (and pip-tools', for that backend), fetched once (this is
# installing the project's own test dependencies); every env the tests build installs from
# here with --no-index afterwards.
WHEELHOUSE = Path(os.environ.get("NBGUARD_TEST_WHEELHOUSE", REPO / ".nbguard-test" / "wheelhouse"))


def _build_wheels_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_wheels", FIXTURES / "build_wheels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kernel_wheelhouse(python_version: str = f"{sys.version_info[0]}.{sys.version_info[1]}") -> Path:
    """A directory holding wheels for ipykernel and everything it needs on that Python."""
    target = WHEELHOUSE / f"py{python_version}"
    if (target / ".complete").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
         "--dest", str(target), "--python-version", python_version,
         "ipykernel", "pip", "pip-tools"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(
            f"cannot fetch ipykernel wheels for Python {python_version}: {done.stderr[-300:]}"
        )
    (target / ".complete").write_text("ok\n")
    return target


@pytest.fixture(scope="session")
def fixture_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("wheels")
    _build_wheels_module().build_wheels(dest)
    return dest


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One env cache for the whole session, so integration tests share built envs."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def demo_course(tmp_path: Path, fixture_wheels: Path) -> Path:
    """A copy of the demo course with its wheels where its config expects them (../wheels)."""
    course = tmp_path / "demo-course"
    shutil.copytree(DEMO_COURSE, course)
    shutil.copytree(fixture_wheels, tmp_path / "wheels")
    return course


def offline_args(cache: Path, *extra_links: Path) -> list[str]:
    """Command-line flags that keep an nbguard run off the network."""
    args = ["--no-index", "--find-links", str(kernel_wheelhouse()), "--cache-dir", str(cache)]
    for link in extra_links:
        args += ["--find-links", str(link)]
    return args


def snapshot(tree: Path) -> dict[str, str]:
    """Relative path → sha256 of every file (and every directory, as "dir")."""
    found: dict[str, str] = {}
    for path in sorted(tree.rglob("*")):
        key = path.relative_to(tree).as_posix()
        found[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def no_ambient_pip(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Drop the machine's PIP_*/UV_* settings, as pip-tools' own tests do, so only the flags
    a test gives decide where packages come from."""
    for name in list(os.environ):
        if name.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(name)
    yield
