"""The offline wheelhouse every env the tests build installs from, and the fixture wheels."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.courses import FIXTURES, REPO

# Wheels of ipykernel's closure (and pip-tools', for that backend), fetched once (this is
# installing the project's own test dependencies); every env the tests build installs from
# here with --no-index afterwards.
WHEELHOUSE = Path(os.environ.get("NBGUARD_TEST_WHEELHOUSE", REPO / ".nbguard-test" / "wheelhouse"))


def unavailable(why: str) -> None:
    """A fixture the project's CI installs is missing: a skip on a developer's machine, a
    failure in CI, where a test that silently runs nothing must not go green. (A second
    Python interpreter is no such fixture: a machine may simply not have one, and the tests
    that need one say so as a skip.)"""
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI=true: a missing test fixture fails the run)", pytrace=False)
    pytest.skip(why)


def build_wheels_module() -> ModuleType:
    """fixtures/build_wheels.py, loaded without registering a module."""
    spec = importlib.util.spec_from_file_location("build_wheels", FIXTURES / "build_wheels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kernel_wheelhouse(python_version: str = f"{sys.version_info[0]}.{sys.version_info[1]}") -> Path:
    """A directory holding wheels for ipykernel and everything it needs on that Python.

    A download that fails is a failure, never a skip: the integration tier exists to build
    real envs, and one that quietly built none would pass without testing anything."""
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
        pytest.fail(
            f"cannot fetch ipykernel wheels for Python {python_version} (needed once, then "
            f"offline): {done.stderr[-300:]}",
            pytrace=False,
        )
    (target / ".complete").write_text("ok\n")
    return target


def offline_args(cache: Path, *extra_links: Path) -> list[str]:
    """Command-line flags that keep an nbguard run off the network."""
    args = ["--no-index", "--find-links", str(kernel_wheelhouse()), "--cache-dir", str(cache)]
    for link in extra_links:
        args += ["--find-links", str(link)]
    return args
