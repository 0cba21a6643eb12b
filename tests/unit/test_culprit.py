"""Fast tier: naming the upgrade behind a broken or changed notebook from in-memory runs and
fake env prefixes (a RECORD file per distribution, no real venv)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from nbguard.blame.infer import imported_packages, infer
from nbguard.model import (
    CellError,
    CellResult,
    Change,
    Comparison,
    Culprit,
    EnvInfo,
    NotebookRun,
    Verdict,
    WarningRecord,
)

NOTEBOOK = "homework/hw01.ipynb"
# Distribution directory name (as installed) → top-level files its RECORD lists.
INSTALLED: dict[str, Sequence[str]] = {
    "scikit_learn": ("sklearn/__init__.py", "sklearn/utils/validation.py"),
    "numpy": ("numpy/__init__.py", "numpy/core/fromnumeric.py"),
    "nbguard_demo_wobble": ("wobble/__init__.py",),
    "ipykernel": ("ipykernel/__init__.py", "ipykernel_launcher.py"),
    "seaborn": ("seaborn/__init__.py",),
    "matplotlib": ("matplotlib/__init__.py", "pylab.py"),
    "pandas": ("pandas/__init__.py",),
}


def fake_env(
    root: Path, name: str, python: str, packages: Mapping[str, str], installed: bool = True
) -> EnvInfo:
    """An env whose prefix holds only the RECORD files culprit reads; `packages` maps
    canonical names to versions as the lock gives them."""
    prefix = root / name
    if installed:
        site = prefix / "lib" / f"python{python.rsplit('.', 1)[0]}" / "site-packages"
        for dist_dir, files in INSTALLED.items():
            version = packages.get(dist_dir.replace("_", "-"))
            if version is None:
                continue
            record = site / f"{dist_dir}-{version}.dist-info" / "RECORD"
            record.parent.mkdir(parents=True)
            lines = [f"{file},sha256=abc,123" for file in files]
            lines += [f"{dist_dir}-{version}.dist-info/RECORD,,", "../../../bin/tool,sha256=x,1"]
            record.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return EnvInfo(
        name, python, dict(packages), f"fp-{name}", interpreter=prefix / "bin" / "python"
    )


BEFORE = {
    "seaborn": "0.11.2",
    "matplotlib": "3.4.3",
    "pandas": "1.3.2",
    "scikit-learn": "1.4.2",
    "numpy": "1.26.4",
    "nbguard-demo-wobble": "1.0",
    "ipykernel": "6.29.0",
}
AFTER = {
    "seaborn": "0.13.2",
    "matplotlib": "3.9.0",
    "pandas": "3.0.0",
    "scikit-learn": "1.5.0",
    "numpy": "2.0.1",
    "nbguard-demo-wobble": "2.0",
    "ipykernel": "6.29.5",
}


@pytest.fixture
def envs(tmp_path: Path) -> tuple[EnvInfo, EnvInfo]:
    """locked → upcoming where several course packages moved at once, so only the evidence
    can say which one broke a notebook."""
    return (
        fake_env(tmp_path, "locked", "3.11.7", BEFORE),
        fake_env(tmp_path, "upcoming", "3.11.7", AFTER),
    )


def code(index: int, source: str) -> CellResult:
    return CellResult(index=index, status="ok", source=source)


def ran(env: str, *cells: CellResult, warnings: Sequence[WarningRecord] = ()) -> NotebookRun:
    return NotebookRun(NOTEBOOK, env, "ok", 1.0, cells=cells, warnings=tuple(warnings))


def failed(env: str, error: CellError, *cells: CellResult) -> NotebookRun:
    return NotebookRun(NOTEBOOK, env, "error", 1.0, cells=cells, error=error)


def comparison(verdict: Verdict, *changed_cells: int) -> Comparison:
    changes = tuple(Change("upcoming", cell, "output", "before", "after") for cell in changed_cells)
    return Comparison(NOTEBOOK, "locked", "upcoming", verdict, changes)


def blame(
    verdict: Verdict,
    before_run: NotebookRun,
    after_run: NotebookRun,
    envs: tuple[EnvInfo, EnvInfo],
    *changed_cells: int,
) -> Culprit | None:
    return infer(comparison(verdict, *changed_cells), before_run, after_run, *envs)


# --- evidence in the error ----------------------------------------------------------------------

SKLEARN_TRACEBACK = (
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
    "\x1b[0;31mTypeError\x1b[0m                                 Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[3], line 2\x1b[0m\n"
    "\x1b[1;32m      1\x1b[0m model \x1b[38;5;241m=\x1b[39m fit(X)",
    "File \x1b[0;32m/root/.cache/nbguard/envs/3f2a/lib/python3.11/site-packages/sklearn/utils/"
    "validation.py:1021\x1b[0m, in \x1b[0;36mcheck_array\x1b[0;34m(array)\x1b[0m",
    "\x1b[0;31mTypeError\x1b[0m: check_array() got an unexpected keyword argument "
    "'force_all_finite'",
)


def test_the_tracebacks_site_packages_frame_names_the_distribution(
    envs: tuple[EnvInfo, EnvInfo],
) -> None:
    error = CellError(3, "TypeError", "check_array() got an unexpected keyword", SKLEARN_TRACEBACK)

    culprit = blame(
        "broken",
        ran("locked", code(3, "fit(X)")),
        failed("upcoming", error, code(3, "fit(X)")),
        envs,
    )

    assert culprit == Culprit(
        "scikit-learn",
        "1.4.2",
        "1.5.0",
        "inferred",
        "scikit-learn: the traceback of cell 3 ends in sklearn",
    )


def test_frames_of_packages_that_did_not_move_are_passed_over(tmp_path: Path) -> None:
    before = fake_env(tmp_path, "locked", "3.11.7", BEFORE)
    after = fake_env(tmp_path, "upcoming", "3.11.7", {**AFTER, "numpy": "1.26.4"})
    traceback = (
        *SKLEARN_TRACEBACK[:-1],
        "File /env/lib/python3.11/site-packages/numpy/core/fromnumeric.py:59, in _wrapfunc",
        SKLEARN_TRACEBACK[-1],
    )
    error = CellError(3, "TypeError", "unexpected keyword", traceback)

    culprit = blame("broken", ran("locked"), failed("upcoming", error), (before, after))

    assert culprit is not None
    assert (culprit.package, culprit.from_version, culprit.to_version) == (
        "scikit-learn",
        "1.4.2",
        "1.5.0",
    )


def test_a_module_without_attribute_names_the_distribution_that_provides_it(
    envs: tuple[EnvInfo, EnvInfo],
) -> None:
    error = CellError(3, "AttributeError", "module 'wobble' has no attribute 'old_mean'")

    culprit = blame("broken", ran("locked"), failed("upcoming", error), envs)

    assert culprit == Culprit(
        "nbguard-demo-wobble",
        "1.0",
        "2.0",
        "inferred",
        "nbguard-demo-wobble: AttributeError names module wobble",
    )


@pytest.mark.parametrize(
    ("ename", "evalue"),
    [
        ("ImportError", "cannot import name 'old_mean' from 'wobble.stats' (/x/wobble/stats.py)"),
        ("ModuleNotFoundError", "No module named 'wobble.legacy'"),
    ],
)
def test_an_import_error_names_the_distribution_of_its_top_level_module(
    envs: tuple[EnvInfo, EnvInfo], ename: str, evalue: str
) -> None:
    culprit = blame("broken", ran("locked"), failed("upcoming", CellError(1, ename, evalue)), envs)

    assert culprit is not None
    assert (culprit.package, culprit.from_version, culprit.to_version) == (
        "nbguard-demo-wobble",
        "1.0",
        "2.0",
    )


def test_a_missing_module_after_a_python_upgrade_blames_python(tmp_path: Path) -> None:
    before = fake_env(tmp_path, "locked", "3.11.7", BEFORE)
    after = fake_env(tmp_path, "upcoming", "3.12.4", AFTER)
    error = CellError(0, "ModuleNotFoundError", "No module named 'distutils'")

    culprit = blame("broken", ran("locked"), failed("upcoming", error), (before, after))

    assert culprit is not None
    assert (culprit.package, culprit.from_version, culprit.to_version) == (
        "python",
        "3.11.7",
        "3.12.4",
    )


# --- what the failing line calls -----------------------------------------------------------------


def ipython_traceback(cell: int, lines: Sequence[str], failing: int, last: str) -> tuple[str, ...]:
    """A traceback as IPython 8+ prints a cell's frame: its lines, `---->` at the failing one."""
    shown = [
        f"\x1b[1;32m----> {n}\x1b[0m {line}" if n == failing else f"      {n} {line}"
        for n, line in enumerate(lines, start=1)
    ]
    return (
        "\x1b[0;31m" + "-" * 75 + "\x1b[0m",
        "\x1b[0;31mTypeError\x1b[0m" + " " * 33 + "Traceback (most recent call last)",
        f"Cell \x1b[0;32mIn[{cell}], line {failing}\x1b[0m\n" + "\n".join(shown),
        last,
    )


PLOT_IMPORTS = code(1, "import numpy as np\nimport matplotlib.pyplot as plt\nimport seaborn as sns")
PLOT_DATA = code(2, "x = np.random.normal(size=100)\ny = 2 * x")
PLOT_LINES = ("plt.figure(figsize=(4, 4))", "sns.jointplot(x, y, kind='hex')", "plt.show()")
JOINTPLOT = "jointplot() takes from 0 to 1 positional arguments but 2 were given"


def test_the_callee_on_the_failing_line_beats_a_warning_elsewhere_in_the_cell(
    envs: tuple[EnvInfo, EnvInfo],
) -> None:
    """seaborn's jointplot, called on the failing line, broke; matplotlib only warned about
    another line of the cell, and numpy is merely used there."""
    cell = code(4, "\n".join(PLOT_LINES))
    error = CellError(4, "TypeError", JOINTPLOT, ipython_traceback(4, PLOT_LINES, 2, JOINTPLOT))
    warning = WarningRecord(
        4,
        "MatplotlibDeprecationWarning",
        "Auto-removal of grids by pcolor() is deprecated since 3.5",
        "matplotlib",
    )
    after_run = NotebookRun(
        NOTEBOOK,
        "upcoming",
        "error",
        1.0,
        cells=(PLOT_IMPORTS, PLOT_DATA, cell),
        error=error,
        warnings=(warning,),
    )

    culprit = blame("broken", ran("locked", PLOT_IMPORTS, PLOT_DATA, cell), after_run, envs)

    assert culprit == Culprit(
        "seaborn",
        "0.11.2",
        "0.13.2",
        "inferred",
        "seaborn: `sns.jointplot` is called on the failing line (cell 4)",
    )


def test_a_warning_from_another_line_of_the_failing_cell_is_no_evidence(
    envs: tuple[EnvInfo, EnvInfo],
) -> None:
    """The failing line calls the course's own function; matplotlib warned on another line."""
    lines = ("plt.figure(figsize=(4, 4))", "draw_orbit(x, y)")
    cell = code(4, "\n".join(lines))
    message = "draw_orbit() missing 1 required positional argument: 'z'"
    error = CellError(4, "TypeError", message, ipython_traceback(4, lines, 2, message))
    warning = WarningRecord(
        4, "MatplotlibDeprecationWarning", "figsize is deprecated", "matplotlib"
    )
    after_run = NotebookRun(
        NOTEBOOK,
        "upcoming",
        "error",
        1.0,
        cells=(PLOT_IMPORTS, PLOT_DATA, cell),
        error=error,
        warnings=(warning,),
    )

    assert blame("broken", ran("locked", PLOT_IMPORTS, PLOT_DATA, cell), after_run, envs) is None


ENCODER_IMPORTS = code(1, "import numpy as np\nfrom sklearn.preprocessing import OneHotEncoder")
ENCODER_LINES = (
    "colors = np.array([['red'], ['blue'], ['red']])",
    "encoder = OneHotEncoder(sparse=False)",
    "encoded = encoder.fit_transform(colors)",
)
SPARSE = "OneHotEncoder.__init__() got an unexpected keyword argument 'sparse'"


@pytest.mark.parametrize(
    ("traceback", "where"),
    [
        (ipython_traceback(2, ENCODER_LINES, 2, SPARSE), "is called on the failing line (cell 2)"),
        ((), "is called in cell 2 and named in the error"),
    ],
    ids=["with-traceback", "error-only"],
)
def test_a_class_imported_by_name_is_resolved_to_its_distribution(
    envs: tuple[EnvInfo, EnvInfo], traceback: tuple[str, ...], where: str
) -> None:
    """`from sklearn.preprocessing import OneHotEncoder`, then `OneHotEncoder(sparse=False)`:
    scikit-learn, not numpy, which the same cell also uses."""
    cell = code(2, "\n".join(ENCODER_LINES))
    error = CellError(2, "TypeError", SPARSE, traceback)

    culprit = blame(
        "broken",
        ran("locked", ENCODER_IMPORTS, cell),
        failed("upcoming", error, ENCODER_IMPORTS, cell),
        envs,
    )

    assert culprit is not None
    assert (culprit.package, culprit.reason) == (
        "scikit-learn",
        f"scikit-learn: `OneHotEncoder` {where}",
    )


def test_a_method_on_an_object_made_in_an_earlier_cell_names_the_maker(
    envs: tuple[EnvInfo, EnvInfo],
) -> None:
    made = code(1, "import pandas as pd\nlines = pd.Series({'H-alpha': 656.3})")
    loop = ("for name, nm in lines.iteritems():", "    print(name, nm)")
    message = "'Series' object has no attribute 'iteritems'"
    error = CellError(2, "AttributeError", message, ipython_traceback(2, loop, 1, message))
    cell = code(2, "\n".join(loop))

    culprit = blame(
        "broken", ran("locked", made, cell), failed("upcoming", error, made, cell), envs
    )

    assert culprit is not None
    assert (culprit.package, culprit.reason) == (
        "pandas",
        "pandas: `lines.iteritems` is called on the failing line (cell 2)",
    )


def test_a_course_helper_on_the_failing_line_defers_to_the_error(
    envs: tuple[EnvInfo, EnvInfo],
) -> None:
    """The course's own function is no upgraded package: the module the error names is."""
    cell = code(1, "from course_tools import mean_energy\nprint(mean_energy([1.0, 2.0]))")
    message = "module 'numpy' has no attribute 'asscalar'"
    lines = cell.source.splitlines()
    error = CellError(1, "AttributeError", message, ipython_traceback(1, lines, 2, message))

    culprit = blame("broken", ran("locked", cell), failed("upcoming", error, cell), envs)

    assert culprit is not None
    assert (culprit.package, culprit.reason) == (
        "numpy",
        "numpy: AttributeError names module numpy",
    )


# --- what a changed output shows -----------------------------------------------------------------


def test_a_changed_repr_with_no_import_in_its_cell_names_where_the_object_was_made(
    envs: tuple[EnvInfo, EnvInfo],
) -> None:
    """`log.dtypes` printing `str` for `object` (pandas 3): `log` came from pandas a cell
    earlier."""
    made = code(
        1,
        "import numpy as np\nimport pandas as pd\n"
        "log = pd.read_csv('run.csv')\nlog = log.dropna()\nhits = np.asarray(log['hits'])",
    )
    shown = code(2, "log.dtypes")
    change = Change("upcoming", 2, "text", "detector    object", "detector      str")
    verdict = Comparison(NOTEBOOK, "locked", "upcoming", "changed", (change,))

    culprit = infer(verdict, ran("locked", made, shown), ran("upcoming", made, shown), *envs)

    assert culprit == Culprit(
        "pandas",
        "1.3.2",
        "3.0.0",
        "inferred",
        "pandas: cell 2 shows `log.dtypes`, `log` made by `pd.read_csv(…)` (cell 1)",
    )


def test_a_repr_naming_its_module_beats_where_the_value_was_computed(
    envs: tuple[EnvInfo, EnvInfo],
) -> None:
    """A pandas sum printed as `np.int64(3)`: numpy 2's scalar repr changed it."""
    made = code(1, "import numpy as np\nimport pandas as pd\ndf = pd.DataFrame({'x': [1, 2]})")
    shown = code(2, "df['x'].sum()")
    change = Change("upcoming", 2, "repr", "3", "np.int64(3)")
    verdict = Comparison(NOTEBOOK, "locked", "upcoming", "changed", (change,))

    culprit = infer(verdict, ran("locked", made, shown), ran("upcoming", made, shown), *envs)

    assert culprit is not None
    assert (culprit.package, culprit.reason) == (
        "numpy",
        "numpy: the changed output of cell 2 is a numpy repr",
    )


def test_a_reason_quoting_a_multi_line_message_is_one_line(tmp_path: Path) -> None:
    before = fake_env(tmp_path, "locked", "3.11.7", BEFORE)
    after = fake_env(tmp_path, "upcoming", "3.12.4", AFTER)
    message = "No module named 'distutils'.\n\nDistutils was removed in Python 3.12;\nsee PEP 632."
    error = CellError(0, "ModuleNotFoundError", message)

    culprit = blame("broken", ran("locked"), failed("upcoming", error), (before, after))

    assert culprit is not None
    assert culprit.reason == "python: ModuleNotFoundError: No module named 'distutils'."


# --- evidence in warnings and cells -------------------------------------------------------------


def test_a_warning_in_the_changed_cell_names_its_package(envs: tuple[EnvInfo, EnvInfo]) -> None:
    warning = WarningRecord(
        2, "DeprecationWarning", "old_mean is deprecated", "nbguard-demo-wobble"
    )

    culprit = blame("changed", ran("locked", warnings=[warning]), ran("upcoming"), envs, 2)

    assert culprit == Culprit(
        "nbguard-demo-wobble",
        "1.0",
        "2.0",
        "inferred",
        "nbguard-demo-wobble: the only package that warned in cell 2 (DeprecationWarning)",
    )


def test_a_warning_in_another_cell_is_not_evidence(envs: tuple[EnvInfo, EnvInfo]) -> None:
    warning = WarningRecord(5, "FutureWarning", "will change", "nbguard-demo-wobble")

    assert blame("changed", ran("locked", warnings=[warning]), ran("upcoming"), envs, 2) is None


def test_a_changed_cell_that_uses_a_module_names_its_distribution(
    envs: tuple[EnvInfo, EnvInfo],
) -> None:
    cell = code(4, "print(wobble.mean([1, 2, 3]))")

    culprit = blame("changed", ran("locked", cell), ran("upcoming", cell), envs, 4)

    assert culprit is not None
    assert (culprit.package, culprit.reason) == (
        "nbguard-demo-wobble",
        "nbguard-demo-wobble: cell 4 shows `wobble.mean(…)`",
    )


# --- when the evidence is only the envs ---------------------------------------------------------


def test_the_only_course_package_that_moved_is_named(tmp_path: Path) -> None:
    before = fake_env(tmp_path, "locked", "3.11.7", {"numpy": "1.26.4", "ipykernel": "6.29.0"})
    after = fake_env(
        tmp_path,
        "upcoming",
        "3.11.7",
        {"numpy": "2.0.1", "ipykernel": "6.29.5", "tornado": "6.4.1"},
    )
    error = CellError(2, "ValueError", "setting an array element with a sequence")

    culprit = blame("broken", ran("locked"), failed("upcoming", error), (before, after))

    assert culprit == Culprit(
        "numpy", "1.26.4", "2.0.1", "inferred", "numpy: the only course package that changed"
    )


def test_a_python_only_upgrade_blames_python(tmp_path: Path) -> None:
    packages = {"numpy": "1.26.4"}
    before = fake_env(tmp_path, "locked", "3.11.7", {**packages, "ipykernel": "6.29.0"})
    after = fake_env(tmp_path, "upcoming", "3.12.4", {**packages, "ipykernel": "6.29.5"})

    culprit = blame("changed", ran("locked"), ran("upcoming"), (before, after), 1)

    assert culprit == Culprit(
        "python", "3.11.7", "3.12.4", "inferred", "python: only Python changed"
    )


def test_envs_without_a_prefix_still_get_a_culprit_from_package_names(tmp_path: Path) -> None:
    """A failed build has no interpreter: the module name is taken as the distribution's."""
    before = fake_env(tmp_path, "locked", "3.11.7", BEFORE, installed=False)
    after = fake_env(tmp_path, "upcoming", "3.11.7", AFTER, installed=False)
    error = CellError(1, "AttributeError", "module 'numpy' has no attribute 'float_'")

    culprit = blame("broken", ran("locked"), failed("upcoming", error), (before, after))

    assert culprit is not None
    assert (culprit.package, culprit.to_version) == ("numpy", "2.0.1")


# --- no culprit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("verdict", ["ok", "warnings", "already-broken", "fixed", "skipped"])
def test_no_culprit_unless_broken_or_changed(
    envs: tuple[EnvInfo, EnvInfo], verdict: Verdict
) -> None:
    error = CellError(3, "AttributeError", "module 'wobble' has no attribute 'old_mean'")

    assert blame(verdict, failed("locked", error), failed("upcoming", error), envs, 3) is None


def test_no_culprit_when_only_the_kernel_moved_and_the_error_is_the_users(
    tmp_path: Path,
) -> None:
    packages = {"numpy": "1.26.4"}
    before = fake_env(tmp_path, "locked", "3.11.7", {**packages, "ipykernel": "6.29.0"})
    after = fake_env(
        tmp_path, "upcoming", "3.11.7", {**packages, "ipykernel": "6.29.5", "pyzmq": "26.0"}
    )
    error = CellError(4, "NameError", "name 'resutl' is not defined")

    assert blame("broken", ran("locked"), failed("upcoming", error), (before, after)) is None


def test_no_culprit_when_several_packages_moved_and_nothing_names_one(
    envs: tuple[EnvInfo, EnvInfo],
) -> None:
    error = CellError(4, "NameError", "name 'resutl' is not defined")

    assert blame("broken", ran("locked"), failed("upcoming", error), envs) is None


def test_what_a_run_imported_is_read_from_its_record_and_what_it_cannot_show_counts(
    tmp_path: Path,
) -> None:
    """Blame leaves out a package neither run of a pair imported: the kernel's record of
    imported module files, mapped through the env's RECORD files. A package the record
    cannot show (no RECORD naming its files: a conda package's) counts as imported."""
    env = fake_env(tmp_path, "upcoming", "3.12.1", {**AFTER, "condaphys": "2.0"})
    run = NotebookRun(
        NOTEBOOK,
        "upcoming",
        "ok",
        1.0,
        reads=(),
        imports=("numpy/__init__.py", "numpy/core/fromnumeric.py", "wobble/__init__.py"),
    )

    imported = imported_packages(env, run)

    assert imported == {"numpy", "nbguard-demo-wobble", "condaphys"}
    assert imported_packages(env, replace(run, reads=None)) is None  # no record: not known
