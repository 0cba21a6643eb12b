"""Shared fixtures, and the tiers: a test's folder is its tier.

tests/unit         in-memory notebooks and fakes, no kernel, no venv (seconds)
tests/kernel       executes tiny notebooks in real Jupyter kernels (tens of seconds)
tests/integration  builds real venvs offline from local wheels (minutes)

`-m "not integration"` (or `-m unit`, `-m kernel`) picks tiers; the markers are set from the
folder here, never by hand in a test file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.courses import DEMO_COURSE
from tests.support.wheels import build_wheels_module

_TIERS = ("unit", "kernel", "integration")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by the markers set here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(root).parts[0]
        if tier not in _TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/{{{','.join(_TIERS)}}}/")
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def fixture_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("wheels")
    build_wheels_module().build_wheels(dest)
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


@pytest.fixture
def no_ambient_pip(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Drop the machine's PIP_*/UV_* settings, as pip-tools' own tests do, so only the flags
    a test gives decide where packages come from."""
    for name in list(os.environ):
        if name.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(name)
    yield
