"""The test fixtures themselves: wheel builder, wobble's story, the demo course (fast tier)."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib
import importlib.util
import json
import math
import sys
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
PACKAGES = FIXTURES / "packages"
COURSE = FIXTURES / "demo-course"
EXPECTED = json.loads((COURSE / "EXPECTED.json").read_text(encoding="utf-8"))
VERDICTS = {"ok", "warnings", "changed", "broken", "already-broken", "fixed", "skipped"}
WARNING_CATEGORIES = {"DeprecationWarning", "PendingDeprecationWarning", "FutureWarning"}


def _load_script(name: str) -> ModuleType:
    """Import a script of fixtures/ (not a package) under a private module name."""
    module_name = f"_nbguard_fixtures_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, FIXTURES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


build_wheels_script = _load_script("build_wheels")
make_demo_course = _load_script("make_demo_course")


def _read_notebook(path: Path) -> Any:
    """The notebook as stored (nbformat's NotebookNode), without conversion."""
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)  # type: ignore[no-untyped-call]


def _course_notebooks() -> list[str]:
    return sorted(path.relative_to(COURSE).as_posix() for path in COURSE.rglob("*.ipynb"))


@pytest.mark.parametrize("name", ["build_wheels", "make_demo_course"])
def test_scripts_load_without_registering_a_module(name: str) -> None:
    # The way tests/conftest.py loads the builder: no sys.modules entry.
    spec = importlib.util.spec_from_file_location(f"_unregistered_{name}", FIXTURES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert f"_unregistered_{name}" not in sys.modules


# --- wheels -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    built: list[Path] = build_wheels_script.build_wheels(tmp_path_factory.mktemp("wheels"))
    return built


def _unpadded_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_wheels_are_built_for_every_package(wheels: list[Path]) -> None:
    packages = build_wheels_script.discover_packages()
    assert [wheel.name for wheel in wheels] == [package.wheel_name for package in packages]
    assert {
        "nbguard_demo_wobble-1.0-py3-none-any.whl",
        "nbguard_demo_wobble-2.0-py3-none-any.whl",
    } <= {wheel.name for wheel in wheels}


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    first = build_wheels_script.build_wheels(tmp_path / "a")
    second = build_wheels_script.build_wheels(tmp_path / "b")
    assert [path.name for path in first] == [path.name for path in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert sorted(path.name for path in (tmp_path / "a").iterdir()) == [p.name for p in first]


def test_the_shipped_demo_wheels_are_what_the_builder_makes(tmp_path: Path) -> None:
    # fixtures/wheels/ is committed, so `nbguard run fixtures/demo-course` works right after
    # `pip install .`; a change to packages/ must be followed by a rebuild.
    built = build_wheels_script.build_wheels(tmp_path)
    shipped = FIXTURES / "wheels"
    assert sorted(p.name for p in shipped.glob("*.whl")) == sorted(p.name for p in built)
    for wheel in built:
        assert (shipped / wheel.name).read_bytes() == wheel.read_bytes(), (
            f"{wheel.name} is stale: run python fixtures/build_wheels.py"
        )


def test_wheel_metadata_names_the_distribution(wheels: list[Path]) -> None:
    for wheel in wheels:
        name, version, _tag = wheel.name.removesuffix(".whl").split("-", 2)
        with zipfile.ZipFile(wheel) as archive:
            assert archive.testzip() is None
            metadata = archive.read(f"{name}-{version}.dist-info/METADATA").decode()
            wheel_file = archive.read(f"{name}-{version}.dist-info/WHEEL").decode()
        assert "Metadata-Version: 2.1" in metadata.splitlines()
        assert f"Name: {name.replace('_', '-')}" in metadata.splitlines()
        assert f"Version: {version}" in metadata.splitlines()
        assert "Root-Is-Purelib: true" in wheel_file.splitlines()
        assert "Tag: py3-none-any" in wheel_file.splitlines()
        [source] = [
            p.root for p in build_wheels_script.discover_packages() if p.wheel_name == wheel.name
        ]
        project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        assert (project["name"].replace("-", "_"), project["version"]) == (name, version)


def test_wheel_record_hashes_every_file(wheels: list[Path]) -> None:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
            assert names[-1] == record_name
            rows = list(csv.reader(archive.read(record_name).decode().splitlines()))
            assert sorted(row[0] for row in rows) == sorted(names)
            for path, digest, size in rows:
                if path == record_name:
                    assert (digest, size) == ("", "")
                    continue
                data = archive.read(path)
                assert digest == f"sha256={_unpadded_sha256(data)}", path
                assert size == str(len(data)), path
            for info in archive.infolist():
                assert info.date_time == (1980, 1, 1, 0, 0, 0)


def test_wobble_wheels_hold_the_package_sources(wheels: list[Path]) -> None:
    for wheel in wheels:
        name, version, _tag = wheel.name.split("-", 2)
        if name != "nbguard_demo_wobble":
            continue
        source = PACKAGES / f"wobble-{version}"
        expected = {
            path.relative_to(source).as_posix(): path.read_bytes()
            for path in (source / "wobble").rglob("*.py")
        }
        with zipfile.ZipFile(wheel) as archive:
            packaged = {n: archive.read(n) for n in archive.namelist() if ".dist-info/" not in n}
        assert packaged == expected
        modules = {"wobble/__init__.py", "wobble/curve.py"}
        if version == "2.0":
            modules.add("wobble/scalar.py")
        assert set(expected) == modules


def test_builder_discovers_added_packages(tmp_path: Path) -> None:
    package = tmp_path / "packages" / "Tiny.Dep-0.3"
    (package / "tiny_dep").mkdir(parents=True)
    (package / "tiny_dep" / "__init__.py").write_text("VALUE = 3\n")
    (package / "tiny_dep" / "__pycache__").mkdir()
    (package / "tiny_dep" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (package / "helper.py").write_text("")
    (package / "pyproject.toml").write_text(
        '[project]\nname = "Tiny.Dep"\nversion = "0.3"\ndependencies = ["wobble>=2"]\n'
    )
    (tmp_path / "packages" / "not-a-package").mkdir()
    [wheel] = build_wheels_script.build_wheels(tmp_path / "out", tmp_path / "packages")
    assert wheel.name == "tiny_dep-0.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        assert archive.namelist() == [
            "helper.py",
            "tiny_dep/__init__.py",
            "tiny_dep-0.3.dist-info/METADATA",
            "tiny_dep-0.3.dist-info/WHEEL",
            "tiny_dep-0.3.dist-info/RECORD",
        ]
        metadata = archive.read("tiny_dep-0.3.dist-info/METADATA").decode()
    assert "Name: Tiny.Dep" in metadata.splitlines()
    assert "Requires-Dist: wobble>=2" in metadata.splitlines()


def test_a_package_can_ask_for_a_wheel_of_one_python_only(tmp_path: Path) -> None:
    """A release with no wheel for a newer Python: the tag in the file name and in WHEEL."""
    package = tmp_path / "packages" / "old-1.0"
    (package / "old").mkdir(parents=True)
    (package / "old" / "__init__.py").write_text("")
    (package / "pyproject.toml").write_text(
        '[project]\nname = "old"\nversion = "1.0"\n\n[tool.build_wheels]\ntag = "cp311-none-any"\n'
    )
    [wheel] = build_wheels_script.build_wheels(tmp_path / "out", tmp_path / "packages")
    assert wheel.name == "old-1.0-cp311-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        assert "Tag: cp311-none-any" in archive.read("old-1.0.dist-info/WHEEL").decode()


def test_builder_rejects_a_package_without_version(tmp_path: Path) -> None:
    package = tmp_path / "broken-1"
    (package / "broken").mkdir(parents=True)
    (package / "broken" / "__init__.py").write_text("")
    (package / "pyproject.toml").write_text('[project]\nname = "broken"\n')
    with pytest.raises(build_wheels_script.FixtureBuildError, match="version"):
        build_wheels_script.build_wheels(tmp_path / "out", tmp_path)


def test_main_writes_and_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_wheels_script.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"wrote {tmp_path / 'nbguard_demo_wobble-1.0-py3-none-any.whl'}",
        f"wrote {tmp_path / 'nbguard_demo_wobble-2.0-py3-none-any.whl'}",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "nbguard_demo_wobble-1.0-py3-none-any.whl",
        "nbguard_demo_wobble-2.0-py3-none-any.whl",
    ]


# --- wobble's story -----------------------------------------------------------------------


@contextmanager
def _imported_from(source: Path, name: str) -> Iterator[ModuleType]:
    """Import top-level module `name` from folder `source`; forget it again afterwards."""

    def forget() -> None:
        for loaded in [n for n in sys.modules if n == name or n.startswith(f"{name}.")]:
            del sys.modules[loaded]

    forget()
    sys.path.insert(0, str(source))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(source))
        forget()


@pytest.fixture(params=["1.0", "2.0"])
def wobble(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """Either version of wobble, imported from fixtures/packages."""
    with _imported_from(PACKAGES / f"wobble-{request.param}", "wobble") as module:
        assert module.__version__ == request.param
        yield module


@pytest.fixture
def wobble1() -> Iterator[ModuleType]:
    with _imported_from(PACKAGES / "wobble-1.0", "wobble") as module:
        assert module.__version__ == "1.0"
        yield module


@pytest.fixture
def wobble2() -> Iterator[ModuleType]:
    with _imported_from(PACKAGES / "wobble-2.0", "wobble") as module:
        assert module.__version__ == "2.0"
        yield module


def test_stable_api_gives_the_same_results(wobble: ModuleType) -> None:
    assert wobble.mean([1, 2, 3, 4]) == 2.5
    assert wobble.scale([1, 2.5], 2) == [2, 5.0]
    with pytest.raises(ValueError, match="empty"):
        wobble.mean([])
    curve = wobble.Curve([(0.2, 0.9), (0.4, 1.27), (0.6, 1.55)])
    assert (curve.n, len(curve), curve.xs, curve.ys) == (3, 3, [0.2, 0.4, 0.6], [0.9, 1.27, 1.55])
    # std's ddof is the same computation in both; only its default moved.
    assert wobble.std([1, 2, 3, 4], ddof=0) == pytest.approx(math.sqrt(1.25))
    assert wobble.std([1, 2, 3, 4], ddof=1) == pytest.approx(math.sqrt(5 / 3))
    with pytest.raises(ValueError, match="ddof"):
        wobble.std([2.0], ddof=1)
    # peak is the same number in both; only its type (and so its repr) changed.
    assert wobble.peak([0.9, 12.0, 6.2]) == 12.0
    assert isinstance(wobble.peak([3, 1, 2]), float)
    assert str(wobble.peak([0.9, 1.73])) == "1.73"
    assert f"{wobble.peak([0.9, 1.73]):.1f}" == "1.7"
    with pytest.raises(ValueError, match="empty"):
        wobble.peak([])


def test_wobble_1_0(wobble1: ModuleType) -> None:
    wobble = wobble1
    with pytest.warns(DeprecationWarning) as record:
        assert wobble.old_mean([1, 2, 3]) == 2.0
    [warning] = record.list
    assert str(warning.message) == "old_mean is deprecated; use wobble.mean instead"
    assert warning.filename == __file__  # stacklevel=2: it points at the caller
    assert repr(wobble.Curve([(1, 1), (2, 4), (3, 9)])) == "Curve(n=3)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wobble.legacy_total([1, 2, 3]) == 6
    assert not hasattr(wobble, "median")
    # std: the population standard deviation by default (numpy's np.std default).
    assert wobble.std([1, 2, 3, 4]) == pytest.approx(math.sqrt(1.25))
    # peak: a plain float, displayed as one.
    peak = wobble.peak([0.9, 1.73, 1.2])
    assert type(peak) is float
    assert repr(peak) == "1.73"
    assert not hasattr(wobble, "Scalar")


def test_wobble_2_0(wobble2: ModuleType) -> None:
    wobble = wobble2
    with pytest.raises(AttributeError, match=r"^module 'wobble' has no attribute 'old_mean'$"):
        wobble.old_mean([1, 2, 3])
    assert repr(wobble.Curve([(1, 1), (2, 4), (3, 9)])) == "<Curve n=3 points>"
    with pytest.warns(FutureWarning) as record:
        assert wobble.legacy_total([1, 2, 3]) == 6
    [warning] = record.list
    assert str(warning.message) == (
        "legacy_total will return a float in wobble 3.0; use sum() instead"
    )
    assert warning.filename == __file__
    assert wobble.median([3, 1, 2]) == 2
    assert wobble.median([4, 1, 3, 2]) == 2.5
    # std: the sample standard deviation by default (pandas' Series.std default).
    assert wobble.std([1, 2, 3, 4]) == pytest.approx(math.sqrt(5 / 3))
    # peak: a wobble.Scalar, whose repr names its type as numpy 2's np.float64(1.73) does.
    peak = wobble.peak([0.9, 1.73, 1.2])
    assert type(peak) is wobble.Scalar
    assert isinstance(peak, float)
    assert peak == 1.73
    assert repr(peak) == "wobble.Scalar(1.73)"
    assert str(peak) == "1.73"
    assert f"{peak}" == "1.73"
    assert repr([peak]) == "[wobble.Scalar(1.73)]"
    assert type(peak + 1) is float  # arithmetic gives plain floats
    assert "Scalar" in wobble.__all__
    assert wobble.Scalar.__module__ == "wobble.scalar"


# --- the demo course ----------------------------------------------------------------------


def test_expected_covers_exactly_the_notebooks() -> None:
    assert sorted(EXPECTED["notebooks"]) == _course_notebooks()
    assert set(EXPECTED["notebooks"].values()) == VERDICTS  # every verdict is exercised
    for key in ("warnings", "errors", "changes"):
        assert set(EXPECTED[key]) <= set(EXPECTED["notebooks"]), key


def test_generated_files_are_up_to_date() -> None:
    assert make_demo_course.stale_files() == []


@pytest.mark.parametrize("path", _course_notebooks())
def test_demo_notebook_is_valid_and_clean(path: str) -> None:
    notebook = _read_notebook(COURSE / path)
    nbformat.validate(notebook)
    assert (notebook.nbformat, notebook.nbformat_minor) == (4, 5)
    assert notebook.cells[0].cell_type == "markdown"
    assert notebook.cells[0].source.startswith("# ")
    ids = [cell.id for cell in notebook.cells]
    assert len(set(ids)) == len(ids)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == []
            assert cell.execution_count is None
    kernel = notebook.metadata.kernelspec
    if path == "labs/lab02_plots_in_r.ipynb":
        assert (kernel.name, kernel.language) == ("ir", "R")
        assert notebook.metadata.language_info.name == "R"
    else:
        assert (kernel.name, kernel.language) == ("python3", "python")
    skip = notebook.metadata.get("nbguard", {}).get("skip")
    assert (skip is not None) == (path == "lectures/04_spectra_draft.ipynb")


def test_expected_records_point_at_the_right_cells() -> None:
    calls = {"DeprecationWarning": "wobble.old_mean(", "FutureWarning": "wobble.legacy_total("}
    assert set(EXPECTED["warnings"]) == {
        path for path, verdict in EXPECTED["notebooks"].items() if verdict in {"broken", "warnings"}
    }
    for path, records in EXPECTED["warnings"].items():
        cells = _read_notebook(COURSE / path).cells
        for record in records:
            assert set(record) == {"env", "cell", "category", "package"}
            assert record["env"] in {"locked", "upcoming"}
            assert record["category"] in WARNING_CATEGORIES
            assert record["package"] == "nbguard-demo-wobble"
            assert calls[record["category"]] in cells[record["cell"]].source
    for path, by_env in EXPECTED["errors"].items():
        cells = _read_notebook(COURSE / path).cells
        for error in by_env.values():
            assert cells[error["cell"]].cell_type == "code"
    assert EXPECTED["errors"]["homework/hw01_averages.ipynb"] == {
        "upcoming": {"cell": 3, "ename": "AttributeError"}
    }
    assert set(EXPECTED["changes"]) == {
        path for path, verdict in EXPECTED["notebooks"].items() if verdict == "changed"
    }
    for path, indices in EXPECTED["changes"].items():
        cells = _read_notebook(COURSE / path).cells
        assert all(cells[index].cell_type == "code" for index in indices), path
    # The damping lecture changes twice: a repr (peak's Scalar) and a value (std's ddof).
    damping = _read_notebook(COURSE / "lectures/05_damping.ipynb").cells
    assert EXPECTED["changes"]["lectures/05_damping.ipynb"] == [4, 8]
    assert damping[4].source.splitlines()[-1] == "wobble.peak(amplitudes_cm)"
    assert damping[8].source.splitlines()[-1] == "wobble.std(periods_s)"


def test_course_environment_files() -> None:
    pins = [
        line
        for line in (COURSE / "requirements.txt").read_text().splitlines()
        if line and not line.lstrip().startswith("#")
    ]
    assert pins == ["nbguard-demo-wobble==1.0"]
    assert "autogenerated by pip-compile" in (COURSE / "requirements.txt").read_text()
    loose = [
        line
        for line in (COURSE / "requirements.in").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert loose == ["nbguard-demo-wobble"]
    config = tomllib.loads((COURSE / "pyproject.toml").read_text(encoding="utf-8"))
    [links] = config["tool"]["nbguard"]["find-links"]
    assert (COURSE / links).resolve() == build_wheels_script.DEFAULT_DEST


def test_course_tools() -> None:
    with _imported_from(COURSE, "course_tools") as course_tools:
        rows = course_tools.load_measurements()
        assert len(rows) == 6
        assert course_tools.column(rows, "length_m")[:2] == [0.2, 0.4]
        assert course_tools.fmt(9.8034, "m/s²") == "9.80 m/s²"
        with pytest.raises(FileNotFoundError):
            course_tools.load_measurements(COURSE / "data" / "pendulum_2023.csv")
    assert (COURSE / "labs" / "raw_export.csv").is_file()
    assert not (COURSE / "labs" / "clean_export.csv").exists()
