"""Fast tier: a warning raised inside a library (pointing at no code of the course) is no
`warnings` verdict and no fix hint, unless the settings count library warnings; the
kernel's records carry the origin into the model and the JSON report."""

from __future__ import annotations

from nbguard import compare
from nbguard.execute.outputs import CAPTURE_MIME, convert_outputs
from nbguard.judge import judge
from nbguard.model import CellResult, EnvInfo, Notebook, NotebookRun, WarningRecord

NOTEBOOK = Notebook("lectures/plots.ipynb", "0" * 64, "python3", "python")
ENVS = {
    "locked": EnvInfo("locked", "3.11.7", {"setuptools": "69.0"}, "fp-1"),
    "upcoming": EnvInfo("upcoming", "3.11.7", {"setuptools": "80.0"}, "fp-2"),
}
CELLS = (CellResult(0, "ok", "import plotting_lib"),)
DISTUTILS = WarningRecord(
    0,
    "DeprecationWarning",
    "distutils Version classes are deprecated. Use packaging.version instead.",
    "setuptools",
    "library",
)
OLD_MEAN = WarningRecord(
    0, "DeprecationWarning", "old_mean is deprecated; use wobble.mean instead", "wobble"
)


def _judged(*warnings: WarningRecord, library_warnings: bool = False) -> tuple[str, list[str]]:
    runs = {
        "locked": NotebookRun(NOTEBOOK.path, "locked", "ok", 1.0, CELLS),
        "upcoming": NotebookRun(NOTEBOOK.path, "upcoming", "ok", 1.0, CELLS, warnings=warnings),
    }
    options = compare.CompareOptions(library_warnings=library_warnings)
    report = judge(NOTEBOOK, runs, "locked", ENVS, options)
    return report.verdict, [hint.hint for hint in report.hints]


def test_a_warning_raised_inside_a_library_is_ok_and_gets_no_fix_hint() -> None:
    assert _judged(DISTUTILS) == ("ok", [])


def test_a_warning_the_courses_code_triggers_is_warnings_with_its_fix() -> None:
    assert _judged(DISTUTILS, OLD_MEAN) == ("warnings", ["use wobble.mean instead"])


def test_the_setting_counts_library_warnings_again() -> None:
    verdict, found = _judged(DISTUTILS, library_warnings=True)

    assert (verdict, found) == ("warnings", ["use packaging.version instead"])


def test_the_kernels_records_carry_their_origin_and_an_unsaid_one_is_the_courses() -> None:
    payload = {
        "key": "k",
        "warnings": [
            {"category": "DeprecationWarning", "message": "a", "package": "x", "origin": "library"},
            {"category": "FutureWarning", "message": "b", "package": None, "origin": "course"},
            {"category": "FutureWarning", "message": "c", "package": None},
            {"category": "FutureWarning", "message": "d", "package": None, "origin": "elsewhere"},
        ],
    }
    output = {"output_type": "display_data", "data": {CAPTURE_MIME: payload}, "metadata": {}}

    _, records = convert_outputs(2, [output], "k")

    assert [(r.message, r.origin) for r in records] == [
        ("a", "library"),
        ("b", "course"),
        ("c", "course"),
        ("d", "course"),
    ]
    assert records[0].to_json()["origin"] == "library"
