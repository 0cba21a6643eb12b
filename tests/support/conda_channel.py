"""A local conda channel the conda tests build: small noarch packages, indexed by py-rattler."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nbguard.envs.conda_build import write_package
from tests.support.wheels import unavailable

# A conda-only package (no PyPI equivalent under its name) in two releases, so the locked and
# the upcoming env differ: `condaphys` 2.0 renamed `energy` to `kinetic_energy`.
CONDAPHYS = {
    "1.0": "def energy(m, v):\n    return 0.5 * m * v * v\n",
    "2.0": "def kinetic_energy(m, v):\n    return 0.5 * m * v * v\n",
}


def require_rattler() -> None:
    try:
        import rattler  # noqa: F401
    except ImportError:
        unavailable("py-rattler is not installed (pip install -e '.[dev]' installs it)")


def build_channel(root: Path) -> Path:
    """A channel with condaphys 1.0 and 2.0 (noarch: python), indexed like conda-forge's."""
    require_rattler()
    import rattler.index

    channel = root / "channel"
    (channel / "noarch").mkdir(parents=True)
    for version, code in CONDAPHYS.items():
        index = {
            "name": "condaphys", "version": version, "build": "pyh_0", "build_number": 0,
            "depends": ["python >=3.8"], "noarch": "python", "subdir": "noarch",
            "license": "MIT", "timestamp": 1_700_000_000_000,
        }  # fmt: skip
        files = {"site-packages/condaphys/__init__.py": code}
        write_package(channel / "noarch" / f"condaphys-{version}-pyh_0.tar.bz2", index, files)
    asyncio.run(rattler.index.index_fs(channel, write_zst=False, write_shards=False))
    if not (channel / "noarch" / "repodata.json").is_file():
        pytest.fail("py-rattler wrote no repodata.json for the test channel", pytrace=False)
    return channel
