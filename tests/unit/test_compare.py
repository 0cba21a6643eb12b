"""Fast tier: comparing in-memory runs, no kernels."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from nbguard.compare import CompareOptions, compare_runs, notebook_verdict, options_for
from nbguard.compare.normalize import (
    NORMALIZERS,
    mask_volatile_numbers,
    normalize_output,
    normalize_outputs,
    normalize_text,
    normalizers_for,
)
from nbguard.errors import ConfigError
from nbguard.model import (
    CellError,
    CellResult,
    CellStatus,
    Change,
    ChangeKind,
    Comparison,
    Notebook,
    NotebookRun,
    Output,
    RunStatus,
    Tolerance,
    Verdict,
    WarningRecord,
)

PAIRS = Path(__file__).resolve().parents[2] / "fixtures" / "compare-pairs"

LOCKED_SCRATCH = "/tmp/nbguard-k3j2/course"
UPCOMING_SCRATCH = "/tmp/nbguard-x9q1/course"


def make_run(
    *cells: CellResult,
    env: str = "upcoming",
    status: RunStatus = "ok",
    error: CellError | None = None,
    warnings: tuple[WarningRecord, ...] = (),
    reason: str | None = None,
    scratch: str | None = None,
) -> NotebookRun:
    if scratch is None:
        scratch = LOCKED_SCRATCH if env == "locked" else UPCOMING_SCRATCH
    return NotebookRun(
        notebook="lectures/01-intro.ipynb",
        env=env,
        status=status,
        duration_s=1.0,
        cells=cells,
        error=error,
        warnings=warnings,
        reason=reason,
        volatile_paths=((scratch, "<COURSE>"),),
    )


def locked(*cells: CellResult, **kwargs: Any) -> NotebookRun:
    return make_run(*cells, env="locked", **kwargs)


def upcoming(*cells: CellResult, **kwargs: Any) -> NotebookRun:
    return make_run(*cells, env="upcoming", **kwargs)


def cell(
    index: int,
    *outputs: Output,
    status: CellStatus = "ok",
    allowed_error: bool = False,
    ignore_output: bool = False,
    tolerance: Tolerance | None = None,
) -> CellResult:
    return CellResult(
        index=index,
        status=status,
        source=f"# cell {index}",
        outputs=outputs,
        allowed_error=allowed_error,
        ignore_output=ignore_output,
        tolerance=tolerance,
    )


def result(text: str) -> Output:
    return Output("execute_result", {"text/plain": text})


def stdout(text: str) -> Output:
    return Output("stream", {"stdout": text})


def stderr(text: str) -> Output:
    return Output("stream", {"stderr": text})


def error_output(ename: str, evalue: str) -> Output:
    return Output("error", {"ename": ename, "evalue": evalue, "traceback": "frames..."})


def png(payload: bytes) -> Output:
    return Output("display_data", {"image/png": base64.b64encode(payload).decode()})


def failed_cell(index: int, ename: str, evalue: str) -> tuple[CellResult, CellError]:
    return (
        cell(index, error_output(ename, evalue), status="error"),
        CellError(cell=index, ename=ename, evalue=evalue, traceback=("...",)),
    )


def pair(
    before: CellResult, after: CellResult, options: CompareOptions | None = None
) -> Comparison:
    return compare_runs(locked(before), upcoming(after), options or CompareOptions())


def fixture(name: str) -> str:
    return (PAIRS / name).read_text(encoding="utf-8")


def html_table(plain: str, html_file: str) -> Output:
    """A DataFrame as Jupyter gets it: text/plain and text/html of the same frame."""
    return Output("execute_result", {"text/plain": plain, "text/html": fixture(html_file)})


# Real outputs of tqdm 4.67 (see fixtures/compare-pairs/make_pairs.py): a bar that ran fast
# or slow, and a training loop whose prints cut the bar's redraws into separate messages.
TQDM: dict[str, Any] = json.loads(fixture("tqdm.json"))


def messages(name: str) -> list[Output]:
    return [Output("stream", {stream: text}) for stream, text in TQDM[name]]


def widget(model_id: str) -> Output:
    """A tqdm.notebook bar as Jupyter stores it: an ipywidgets view and its text fallback."""
    view = json.dumps({"model_id": model_id, "version_major": 2, "version_minor": 0})
    return Output(
        "display_data",
        {
            "application/vnd.jupyter.widget-view+json": view,
            "text/plain": "  0%|          | 0/10 [00:00<?, ?it/s]",
        },
    )


# --- both ran: noise is not a change ---------------------------------------------------------

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PNG_B64 = base64.b64encode(PNG_BYTES).decode()

NOISE = {
    "address": (
        [result("<__main__.Foo object at 0x7f3a1b2c3d40>")],
        [result("<__main__.Foo object at 0x55d0e4a1f2b0>")],
    ),
    "matplotlib-artist-address": (
        [result("[<matplotlib.lines.Line2D at 0x7f0c2a3b4c50>]")],
        [result("[<matplotlib.lines.Line2D at 0x7fd1e2f3a4b0>]")],
    ),
    "percent-time": (
        [stdout("CPU times: user 1.2 ms, sys: 345 µs, total: 1.55 ms\nWall time: 3.4 s\n")],
        [stdout("CPU times: user 10 ms, sys: 0 ns, total: 10 ms\nWall time: 1min 3s\n")],
    ),
    "percent-time-compiler-line": (
        [stdout("CPU times: user 1 s, sys: 0 ns, total: 1 s\nWall time: 1 s\n")],
        [stdout("Compiler : 112 ms\nCPU times: user 2 s, sys: 0 ns, total: 2 s\nWall time: 2 s\n")],
    ),
    "percent-timeit": (
        [stdout("1.2 ms ± 3 µs per loop (mean ± std. dev. of 7 runs, 100 loops each)\n")],
        [stdout("15.7 µs ± 120 ns per loop (mean ± std. dev. of 7 runs, 100,000 loops each)\n")],
    ),
    "percent-timeit-slowest-run-line": (
        [stdout("8.26 ns ± 0.12 ns per loop (mean ± std. dev. of 7 runs, 100000000 loops each)\n")],
        [
            stdout(
                "The slowest run took 5.21 times longer than the fastest. This could mean "
                "that an intermediate result is being cached.\n"
                "9.1 ns ± 2.5 ns per loop (mean ± std. dev. of 7 runs, 100000000 loops each)\n"
            )
        ],
    ),
    "iso-timestamp": (
        [stdout("started at 2026-11-22T19:03:04.123456+00:00\n")],
        [stdout("started at 2026-11-23T08:00:00Z\n")],
    ),
    "datetime-repr": (
        [result("datetime.datetime(2026, 11, 22, 19, 3, 4, 123456)")],
        [result("datetime.datetime(2026, 11, 23, 1, 2, 3)")],
    ),
    "log-timestamp": (
        [stderr("2026-11-22 19:03:04,123 INFO loading data\n")],
        [stderr("2026-11-23 07:00:59,987 INFO loading data\n")],
    ),
    "scratch-path": (
        [result(f"PosixPath('{LOCKED_SCRATCH}/data/iris.csv')")],
        [result(f"PosixPath('{UPCOMING_SCRATCH}/data/iris.csv')")],
    ),
    "ipykernel-temp-file": (
        [stderr("/tmp/ipykernel_12345/1234567.py:3: UserWarning: careful\n")],
        [stderr("/tmp/ipykernel_987/1234567.py:3: UserWarning: careful\n")],
    ),
    "ansi-escapes": (
        [stdout("\x1b[1;31mFAILED\x1b[0m 3 tests\n")],
        [stdout("FAILED 3 tests\n")],
    ),
    "stream-split-by-flush": (
        [stdout("epoch 1\n"), stdout("epoch 2\n")],
        [stdout("epoch 1\nepoch 2\n")],
    ),
    "base64-line-wrapping": (
        [Output("display_data", {"image/png": PNG_B64})],
        [
            Output(
                "display_data",
                {"image/png": "\n".join(PNG_B64[i : i + 76] for i in range(0, len(PNG_B64), 76))},
            )
        ],
    ),
    "expected-error-address": (
        [error_output("TypeError", "bad operand <Foo object at 0x7f3a1b2c3d40>")],
        [error_output("TypeError", "bad operand <Foo object at 0x55d0e4a1f2b0>")],
    ),
}


@pytest.mark.parametrize("swap", [False, True], ids=["locked-first", "upcoming-first"])
@pytest.mark.parametrize("case", NOISE.keys())
def test_noise_compares_equal(case: str, swap: bool) -> None:
    before, after = NOISE[case]
    if swap:
        before, after = after, before
    # Scratch paths are per run, so a swapped case must swap which run holds which text.
    baseline = locked(cell(0, *before), scratch=UPCOMING_SCRATCH if swap else LOCKED_SCRATCH)
    other = upcoming(cell(0, *after), scratch=LOCKED_SCRATCH if swap else UPCOMING_SCRATCH)

    comparison = compare_runs(baseline, other)

    assert comparison.verdict == "ok", comparison.changes
    assert comparison.changes == ()


# What numpy 1.26/2.x and pandas 2.2 really print for results that differ only by rounding:
# a least-squares fit leaves 4.4e-16 where the other env's BLAS leaves 0.
FIT_NOISE = """\
        term  coef         resid
0  intercept  1.50  4.440892e-16
1         x1 -0.25 -2.220446e-16
2         x2  2.00  0.000000e+00"""
FIT_CLEAN = """\
        term  coef  resid
0  intercept  1.50    0.0
1         x1 -0.25    0.0
2         x2  2.00    0.0"""
FIT_COEF_MOVED = FIT_CLEAN.replace("-0.25", "-0.31")

VALUE_COUNTS_PANDAS_1 = """\
setosa        50
versicolor    50
virginica     50
Name: species, dtype: int64"""
VALUE_COUNTS_PANDAS_2 = """\
species
setosa        50
versicolor    50
virginica     50
Name: count, dtype: int64"""

SAME_IN_SUBSTANCE = {
    "numpy-identity-with-rounding-noise": (
        [
            result(
                "array([[1.00000000e+00, 0.00000000e+00],\n"
                "       [2.22044605e-16, 1.00000000e+00]])"
            )
        ],
        [result("array([[1., 0.],\n       [0., 1.]])")],
    ),
    "numpy-residuals-realigned": (
        [result("array([ 1.5000000e+00,  4.4408921e-16, -2.5000000e-01])")],
        [result("array([ 1.5 ,  0.  , -0.25])")],
    ),
    "numpy-coefficients-last-digit": (
        [result("array([0.49999999999999994, 1.2500000000000002])")],
        [result("array([0.5 , 1.25])")],
    ),
    "printed-float-sum": (
        [stdout("total: 0.9999999999999999\n")],
        [stdout("total: 1.0\n")],
    ),
    "thousands-separators": (
        [stdout("mean income: 1,234.5678901234\n")],
        [stdout("mean income: 1,234.5678901233\n")],
    ),
    "negative-zero-and-nan": (
        [result("array([-0.,  1., nan, inf])")],
        [result("array([ 0.,  1., nan, inf])")],
    ),
    "pandas-frame-text": ([result(FIT_NOISE)], [result(FIT_CLEAN)]),
    "pandas-frame-html-reflowed": (
        [html_table(FIT_NOISE, "fit-noise.html")],
        [html_table(FIT_CLEAN, "fit-clean-reflowed.html")],
    ),
    "tqdm-bar-at-another-speed": (
        [stderr(TQDM["bar-200-fast"])],
        [stderr(TQDM["bar-200-slow"])],
    ),
    "tqdm-seconds-per-iteration": (
        [stderr(TQDM["bar-3-fast"])],
        [stderr(TQDM["bar-3-slow"])],
    ),
    "tqdm-redraws-cut-by-prints": (messages("train-slow"), messages("train-fast")),
    "tqdm-redraw-cut-by-a-plot": (
        [
            stderr("\r 50%|█████     | 1/2 [00:00<00:00,  4.98it/s]"),
            png(PNG_BYTES),
            stderr("\r100%|██████████| 2/2 [00:00<00:00,  4.97it/s]\n"),
        ],
        [png(PNG_BYTES), stderr("\r100%|██████████| 2/2 [00:00<00:00, 97.10it/s]\n")],
    ),
    "tqdm-notebook-widget": (
        [widget("3f2b9c1d0e8a4b7c9d6e5f4a3b2c1d0e")],
        [widget("a9e8d7c6b5a4938271605f4e3d2c1b0a")],
    ),
    "crlf-line-endings": ([stdout("a\r\nb\r\n")], [stdout("a\nb\n")]),
}


@pytest.mark.parametrize("swap", [False, True], ids=["locked-first", "upcoming-first"])
@pytest.mark.parametrize("case", SAME_IN_SUBSTANCE.keys())
def test_same_in_substance_compares_equal(case: str, swap: bool) -> None:
    before, after = SAME_IN_SUBSTANCE[case]
    if swap:
        before, after = after, before

    comparison = compare_runs(locked(cell(0, *before)), upcoming(cell(0, *after)))

    assert comparison.verdict == "ok", comparison.changes
    assert comparison.changes == ()


REALLY_DIFFERENT: dict[str, tuple[list[Output], list[Output], ChangeKind]] = {
    "numpy-2-scalar-repr": ([result("3.0")], [result("np.float64(3.0)")], "repr"),
    "numpy-2-scalars-in-a-dict": (
        [result("{'accuracy': 0.9333333333333333, 'n_test': 30}")],
        [result("{'accuracy': np.float64(0.9333333333333333), 'n_test': np.int64(30)}")],
        "repr",
    ),
    "numpy-2-bool-repr": ([result("True")], [result("np.True_")], "repr"),
    "array-printed-as-list": ([result("array([1., 2.])")], [result("[1.0, 2.0]")], "repr"),
    "int-column-became-float": (
        [result("   n\n0  1\n1  2")],
        [result("     n\n0  1.0\n1  2.0")],
        "repr",
    ),
    "renamed-series": (
        [result(VALUE_COUNTS_PANDAS_2)],
        [result(VALUE_COUNTS_PANDAS_2.replace("Name: count", "Name: species"))],
        "text",
    ),
    "value-counts-pandas-1-to-2": (
        [result(VALUE_COUNTS_PANDAS_1)],
        [result(VALUE_COUNTS_PANDAS_2)],
        "text",
    ),
    "coefficient-beyond-tolerance": (
        [result("array([0.5 , 1.25])")],
        [result("array([0.5 , 1.31])")],
        "value",
    ),
    "coefficient-in-a-frame": ([result(FIT_CLEAN)], [result(FIT_COEF_MOVED)], "value"),
    "coefficient-in-html-only": (
        [Output("display_data", {"text/html": fixture("fit-clean-reflowed.html")})],
        [Output("display_data", {"text/html": fixture("fit-coef-moved.html")})],
        "value",
    ),
    "renamed-html-column": (
        [Output("display_data", {"text/html": fixture("fit-noise.html")})],
        [Output("display_data", {"text/html": fixture("fit-renamed.html")})],
        "text",
    ),
    "a-count-off-by-one": ([stdout("rows: 1,000,000\n")], [stdout("rows: 1,000,001\n")], "value"),
    "array-lost-an-element": ([result("array([1, 2, 3])")], [result("array([1, 2])")], "value"),
    "nan-instead-of-a-number": ([result("0.5")], [result("nan")], "value"),
    "a-version-string": ([stdout("numpy 2.0.1\n")], [stdout("numpy 2.0.10\n")], "text"),
    "wobble-curve-repr-with-a-new-word": (
        [result("Curve(n=3)")],
        [result("<Curve n=3 points>")],
        "text",
    ),
    "tqdm-stopped-early": (
        [stderr(TQDM["bar-3-fast"])],
        [stderr(TQDM["bar-3-fast"].replace("100%|██████████| 3/3", " 67%|██████▋   | 2/3"))],
        "value",
    ),
    "a-new-warning-line": (
        [stdout("loss 0.5\n")],
        [stdout("loss 0.5\n"), stderr("UserWarning: X has feature names\n")],
        "new-output",
    ),
    "html-representation-dropped": (
        [html_table(FIT_CLEAN, "fit-clean-reflowed.html")],
        [result(FIT_CLEAN)],
        "missing-output",
    ),
}

_SWAPPED: dict[ChangeKind, ChangeKind] = {
    "missing-output": "new-output",
    "new-output": "missing-output",
}


@pytest.mark.parametrize("swap", [False, True], ids=["locked-first", "upcoming-first"])
@pytest.mark.parametrize("case", REALLY_DIFFERENT.keys())
def test_really_different_is_caught_with_its_kind(case: str, swap: bool) -> None:
    before, after, kind = REALLY_DIFFERENT[case]
    if swap:
        before, after, kind = after, before, _SWAPPED.get(kind, kind)

    comparison = compare_runs(locked(cell(4, *before)), upcoming(cell(4, *after)))

    assert comparison.verdict == "changed"
    assert [(c.cell, c.kind) for c in comparison.changes] == [(4, kind)]


def test_a_value_change_names_the_first_number_and_carries_both_texts() -> None:
    (change,) = pair(cell(1, result(FIT_CLEAN)), cell(1, result(FIT_COEF_MOVED))).changes

    assert change.kind == "value"
    assert change.summary == "-0.25 → -0.31 (rel 24%), line 3"
    # The texts compared, whole: a report draws the diff from them.
    assert (change.before, change.after) == (FIT_CLEAN, FIT_COEF_MOVED)
    assert change.applied == ("rel_tol=1e-06", "abs_tol=1e-12")
    assert change.tolerance == Tolerance()


def test_an_html_change_puts_its_label_on_the_summary_line() -> None:
    before = Output("display_data", {"text/html": fixture("fit-clean-reflowed.html")})
    after = Output("display_data", {"text/html": fixture("fit-coef-moved.html")})

    (change,) = pair(cell(1, before), cell(1, after)).changes

    assert change.summary == "[text/html] -0.25 → -0.31 (rel 24%), line 3"
    # HTML is carried as the text it shows, which is what was compared.
    assert change.before == (
        " | term | coef | resid\n"
        "0 | intercept | 1.50 | 0.0\n1 | x1 | -0.25 | 0.0\n2 | x2 | 2.00 | 0.0"
    )
    assert change.after == change.before.replace("-0.25", "-0.31")
    assert change.applied == ("html-as-text", "rel_tol=1e-06", "abs_tol=1e-12")


def test_a_renamed_series_shows_the_line_that_changed() -> None:
    before = result(VALUE_COUNTS_PANDAS_2)
    after = result(VALUE_COUNTS_PANDAS_2.replace("Name: count", "Name: species"))

    (change,) = pair(cell(1, before), cell(1, after)).changes

    assert change.summary == "line 5: Name: count, dtype: int64 → Name: species, dtype: int64"
    assert change.after == VALUE_COUNTS_PANDAS_2.replace("Name: count", "Name: species")


def test_a_change_lists_the_normalizers_that_touched_it() -> None:
    before = stdout("<Model at 0x7f3a1b2c3d40> fitted 2026-11-22 19:03:04, score 0.5\n")
    after = stdout("<Model at 0x55d0e4a1f2b0> fitted 2026-11-23 08:00:00, score 0.53\n")

    (change,) = pair(cell(0, before), cell(0, after)).changes

    assert change.kind == "value"
    assert change.applied == ("timestamps", "addresses", "rel_tol=1e-06", "abs_tol=1e-12")
    assert change.before == "<Model at 0xADDRESS> fitted <TIMESTAMP>, score 0.5\n"
    assert change.after == "<Model at 0xADDRESS> fitted <TIMESTAMP>, score 0.53\n"


def test_a_progress_bar_change_says_its_redraws_were_folded() -> None:
    stopped = TQDM["bar-3-fast"].replace("100%|██████████| 3/3", " 67%|██████▋   | 2/3")

    (change,) = pair(cell(0, stderr(TQDM["bar-3-fast"])), cell(0, stderr(stopped))).changes

    assert change.applied[:2] == ("carriage-returns", "progress-bars")
    assert change.before == "100%|██████████| 3/3 [<ELAPSED><<REMAINING>, <RATE>]\n"


# --- tolerance, replacements, ignored outputs -------------------------------------------------


def test_the_default_tolerance_is_relative_one_in_a_million() -> None:
    assert pair(cell(0, result("0.5")), cell(0, result("0.5000004"))).verdict == "ok"
    assert pair(cell(0, result("0.5")), cell(0, result("0.5004"))).verdict == "changed"


@pytest.mark.parametrize("swap", [False, True], ids=["locked-first", "upcoming-first"])
def test_a_notebook_tolerance_loosens_the_comparison(swap: bool) -> None:
    notebook = Notebook("nb.ipynb", "0" * 64, "python3", "python", tolerance=Tolerance(rel=1e-3))
    before, after = (result("0.5"), result("0.5004"))[:: -1 if swap else 1]

    options = options_for(notebook, CompareOptions())

    assert options.tolerance == Tolerance(rel=1e-3)
    assert pair(cell(0, before), cell(0, after), options).verdict == "ok"
    assert pair(cell(0, before), cell(0, after)).verdict == "changed"


@pytest.mark.parametrize("swap", [False, True], ids=["locked-first", "upcoming-first"])
def test_a_cell_tolerance_overrides_the_notebooks(swap: bool) -> None:
    before, after = (result("0.5"), result("0.5004"))[:: -1 if swap else 1]
    loose = CompareOptions(tolerance=Tolerance(rel=1e-3))
    strict_cell = Tolerance(rel=1e-6)

    comparison = pair(cell(0, before, tolerance=strict_cell), cell(0, after), loose)

    assert comparison.verdict == "changed"
    assert comparison.changes[0].applied == ("rel_tol=1e-06", "abs_tol=1e-12")
    loose_cell = Tolerance(rel=1e-2, abs=0.0)
    assert pair(cell(0, before, tolerance=loose_cell), cell(0, after)).verdict == "ok"


def test_options_for_a_notebook_without_tolerance_keep_the_settings() -> None:
    notebook = Notebook("nb.ipynb", "0" * 64, "python3", "python")
    options = CompareOptions(tolerance=Tolerance(rel=1e-4))

    assert options_for(notebook, options) is options


RUN_ID = (r"run [0-9a-f]{8}", "run <ID>")


@pytest.mark.parametrize("swap", [False, True], ids=["locked-first", "upcoming-first"])
def test_user_replacements_apply_to_both_sides(swap: bool) -> None:
    before, after = (stdout("run 3f9c2a1b done\n"), stdout("run 77ab10e4 done\n"))[
        :: -1 if swap else 1
    ]

    assert pair(cell(0, before), cell(0, after)).verdict == "changed"
    assert (
        pair(cell(0, before), cell(0, after), CompareOptions(replacements=(RUN_ID,))).verdict
        == "ok"
    )


def test_a_change_names_the_user_replacement_that_touched_it() -> None:
    options = CompareOptions(replacements=(RUN_ID,))
    before, after = stdout("run 3f9c2a1b: loss 0.5\n"), stdout("run 77ab10e4: loss 0.7\n")

    (change,) = pair(cell(0, before), cell(0, after), options).changes

    assert change.applied == (f"replace:{RUN_ID[0]}", "rel_tol=1e-06", "abs_tol=1e-12")
    assert change.before == "run <ID>: loss 0.5\n"


def test_a_replacement_with_a_bad_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a usable regular expression"):
        pair(cell(0, result("1")), cell(0, result("1")), CompareOptions(replacements=(("(", ""),)))


@pytest.mark.parametrize("ignored_side", ["locked", "upcoming", "both"])
def test_ignored_outputs_are_not_compared(ignored_side: str) -> None:
    before = cell(2, stdout("seed 1234\n"), ignore_output=ignored_side in ("locked", "both"))
    after = cell(2, stdout("seed 9876\n"), ignore_output=ignored_side in ("upcoming", "both"))

    comparison = pair(before, after)

    assert comparison.verdict == "ok"


def test_an_ignored_cell_still_compares_its_expected_error() -> None:
    before = cell(
        2,
        stdout("noise 1\n"),
        error_output("KeyError", "'x'"),
        status="error",
        allowed_error=True,
        ignore_output=True,
    )
    after = cell(
        2,
        stdout("noise 2\n"),
        error_output("ValueError", "'x'"),
        status="error",
        allowed_error=True,
        ignore_output=True,
    )

    assert pair(before, after).changes == (
        Change("upcoming", 2, "error", "KeyError: 'x'", "ValueError: 'x'"),
    )


def test_an_ignored_cell_that_fails_is_still_broken() -> None:
    failing, error = failed_cell(1, "ValueError", "bad")
    baseline = locked(cell(1, stdout("x\n"), ignore_output=True))
    other = upcoming(
        CellResult(1, "error", "#", failing.outputs, ignore_output=True),
        status="error",
        error=error,
    )

    assert compare_runs(baseline, other).verdict == "broken"


# --- images --------------------------------------------------------------------------------


def test_images_go_through_the_image_comparator_with_the_threshold() -> None:
    calls: list[tuple[str, str, str, float]] = []

    def looks_the_same(mime: str, before: str, after: str, threshold: float) -> tuple[bool, str]:
        calls.append((mime, before, after, threshold))
        return True, "same picture"

    options = CompareOptions(image_threshold=0.05, image_equal=looks_the_same)
    changed_bytes = png(PNG_BYTES[:-1] + b"\x00")

    comparison = pair(cell(5, png(PNG_BYTES)), cell(5, changed_bytes), options)

    assert comparison.verdict == "ok"
    assert calls == [("image/png", PNG_B64, changed_bytes.data["image/png"], 0.05)]


def test_an_image_change_carries_the_comparators_description() -> None:
    def differs(mime: str, before: str, after: str, threshold: float) -> tuple[bool, str]:
        return False, "3.2% of drawn pixels differ"

    options = CompareOptions(image_equal=differs)

    (change,) = pair(
        cell(5, png(PNG_BYTES)), cell(5, png(PNG_BYTES[:-1] + b"\x00")), options
    ).changes

    assert change.kind == "image"
    assert change.summary == "3.2% of drawn pixels differ"
    assert change.after is not None and change.after.startswith("image/png, ")
    assert change.applied == ("image_threshold=0.01",)
    # Both pictures travel with the change, so a report can show them side by side.
    assert change.images is not None
    mime, before, after = change.images
    assert mime == "image/png"
    assert base64.b64decode(before) == PNG_BYTES
    assert base64.b64decode(after) == PNG_BYTES[:-1] + b"\x00"


def test_identical_images_never_reach_the_comparator() -> None:
    def fails(mime: str, before: str, after: str, threshold: float) -> tuple[bool, str]:
        raise AssertionError("called")

    options = CompareOptions(image_equal=fails)

    assert pair(cell(5, png(PNG_BYTES)), cell(5, png(PNG_BYTES)), options).verdict == "ok"


def test_equal_runs_are_ok_and_name_the_envs() -> None:
    comparison = pair(cell(1, result("42")), cell(1, result("42")))

    assert comparison == Comparison(
        notebook="lectures/01-intro.ipynb", baseline="locked", env="upcoming", verdict="ok"
    )
    assert comparison.culprit is None


# --- both ran: real differences --------------------------------------------------------------


def test_a_changed_repr_is_a_repr_change_at_that_cell() -> None:
    comparison = pair(cell(3, result("3.0")), cell(3, result("np.float64(3.0)")))

    assert comparison.verdict == "changed"
    assert comparison.changes == (
        Change(
            "upcoming",
            3,
            "repr",
            "3.0",
            "np.float64(3.0)",
            ("rel_tol=1e-06", "abs_tol=1e-12"),
            summary="3.0 → np.float64(3.0)",
            tolerance=Tolerance(),
        ),
    )


def test_a_different_number_is_a_value_change() -> None:
    comparison = pair(cell(2, stdout("mean = 3.14\n")), cell(2, stdout("mean = 3.15\n")))

    assert comparison.verdict == "changed"
    assert [(c.cell, c.kind) for c in comparison.changes] == [(2, "value")]


def test_a_real_hex_value_is_not_masked_as_an_address() -> None:
    comparison = pair(cell(0, result("'0xff'")), cell(0, result("'0xfe'")))

    assert comparison.verdict == "changed"


def test_missing_output_is_reported_once_not_as_a_shift() -> None:
    before = cell(4, stdout("loading\n"), result("Figure(640x480)"), result("done"))
    after = cell(4, stdout("loading\n"), result("done"))

    comparison = pair(before, after)

    assert comparison.verdict == "changed"
    assert comparison.changes == (Change("upcoming", 4, "missing-output", "Figure(640x480)", None),)


def test_extra_output_is_a_new_output() -> None:
    comparison = pair(cell(1, result("1")), cell(1, result("1"), stderr("UserWarning: hm\n")))

    assert comparison.changes == (Change("upcoming", 1, "new-output", None, "UserWarning: hm\n"),)


def test_changed_image_is_described_not_dumped() -> None:
    comparison = pair(cell(5, png(PNG_BYTES)), cell(5, png(PNG_BYTES[:-1] + b"\x00")))

    (change,) = comparison.changes
    assert change.kind == "image"
    assert change.before is not None
    assert change.after is not None
    assert change.before.startswith(f"image/png, {len(PNG_BYTES)} bytes, sha256 ")
    assert change.before != change.after
    assert PNG_B64[:40] not in change.before


def test_only_the_differing_representation_is_shown() -> None:
    before = Output("execute_result", {"text/plain": "   a\n0  1", "text/html": "<td>1</td>"})
    after = Output("execute_result", {"text/plain": "   a\n0  1", "text/html": "<td>2</td>"})

    (change,) = pair(cell(0, before), cell(0, after)).changes

    # HTML is shown as the text it displays, which is what was compared.
    assert (change.before, change.after) == ("1", "2")
    assert change.summary == "[text/html] 1 → 2 (rel 100%)"
    assert change.applied == ("html-as-text", "rel_tol=1e-06", "abs_tol=1e-12")


def test_long_output_change_shows_the_difference_within_the_limit() -> None:
    rows = [f"{i:5d}  {i * 0.5:10.4f}" for i in range(2000)]
    changed = list(rows)
    changed[1500] = " 1500    999.0000"

    (change,) = pair(cell(0, result("\n".join(rows))), cell(0, result("\n".join(changed)))).changes

    assert change.before is not None
    assert change.after is not None
    assert "750.0000" in change.before
    assert "999.0000" in change.after
    # Both sides are cut alike around the change, and say what they left out.
    assert change.before.split("\n")[0] == change.after.split("\n")[0]
    assert change.before.split("\n")[0] == "… 1497 unchanged lines"
    assert len(change.before) < 600 and len(change.after) < 600


def test_expected_error_with_a_different_exception_is_a_change() -> None:
    before = cell(2, error_output("KeyError", "'x'"), status="error", allowed_error=True)
    after = cell(2, error_output("AttributeError", "'x'"), status="error", allowed_error=True)

    comparison = pair(before, after)

    assert comparison.verdict == "changed"
    assert comparison.changes == (
        Change("upcoming", 2, "error", "KeyError: 'x'", "AttributeError: 'x'"),
    )


# --- warnings -------------------------------------------------------------------------------

DEPRECATION = WarningRecord(
    cell=1, category="DeprecationWarning", message="np.float is gone", package="numpy"
)


@pytest.mark.parametrize("side", ["locked", "upcoming"])
def test_warnings_in_either_env_with_equal_outputs(side: str) -> None:
    baseline = locked(cell(1, result("1")), warnings=(DEPRECATION,) if side == "locked" else ())
    other = upcoming(cell(1, result("1")), warnings=(DEPRECATION,) if side == "upcoming" else ())

    assert compare_runs(baseline, other).verdict == "warnings"


def test_a_change_outranks_warnings() -> None:
    baseline = locked(cell(1, result("1")))
    other = upcoming(cell(1, result("2")), warnings=(DEPRECATION,))

    assert compare_runs(baseline, other).verdict == "changed"


# --- one side failed ------------------------------------------------------------------------


def test_error_in_upcoming_is_broken_at_the_failing_cell() -> None:
    failing, error = failed_cell(2, "AttributeError", "module 'numpy' has no attribute 'float'")
    baseline = locked(cell(1, result("1")), cell(2, result("3.0")))
    other = upcoming(cell(1, result("1")), failing, status="error", error=error)

    comparison = compare_runs(baseline, other)

    assert comparison.verdict == "broken"
    assert comparison.changes == (
        Change(
            "upcoming", 2, "error", "3.0", "AttributeError: module 'numpy' has no attribute 'float'"
        ),
    )


def test_broken_also_lists_earlier_output_changes() -> None:
    failing, error = failed_cell(2, "ValueError", "shapes differ")
    baseline = locked(cell(1, result("(3, 4)")), cell(2))
    other = upcoming(cell(1, result("(4, 3)")), failing, status="error", error=error)

    comparison = compare_runs(baseline, other)

    assert comparison.verdict == "broken"
    # The error first (what matters most), then what differed on the way to it.
    assert [(c.cell, c.kind) for c in comparison.changes] == [(2, "error"), (1, "value")]


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("timeout", "cell 2 ran longer than 300 s"),
        ("dead-kernel", "the kernel died (exit code -9)"),
    ],
)
def test_timeout_and_dead_kernel_are_broken_with_the_reason(status: RunStatus, reason: str) -> None:
    baseline = locked(cell(2, result("ok")))
    other = upcoming(
        cell(2, status="error"),
        status=status,
        reason=reason,
        error=CellError(cell=2, ename="CellTimeoutError", evalue="timed out"),
    )

    comparison = compare_runs(baseline, other)

    assert comparison.verdict == "broken"
    assert comparison.changes == (Change("upcoming", 2, "error", "ok", f"{status}: {reason}"),)


def test_env_that_cannot_be_built_is_broken_without_a_cell() -> None:
    baseline = locked(cell(0, result("1")))
    other = upcoming(status="env-failed", reason="no solution: numpy<2 requires python<3.13")

    comparison = compare_runs(baseline, other)

    assert comparison.verdict == "broken"
    assert comparison.changes == (
        Change(
            "upcoming",
            -1,
            "error",
            None,
            "env-failed: no solution: numpy<2 requires python<3.13",
        ),
    )


def test_error_only_in_locked_is_fixed() -> None:
    failing, error = failed_cell(1, "ImportError", "cannot import name 'x'")
    baseline = locked(failing, status="error", error=error)
    other = upcoming(cell(1, result("x")))

    comparison = compare_runs(baseline, other)

    assert comparison.verdict == "fixed"
    assert comparison.changes == (
        Change("upcoming", 1, "error", "ImportError: cannot import name 'x'", "x"),
    )


@pytest.mark.parametrize("skipped_side", ["locked", "upcoming", "both"])
def test_skipped_on_either_side_is_skipped(skipped_side: str) -> None:
    baseline = locked(status="skipped" if skipped_side in ("locked", "both") else "ok")
    failing, error = failed_cell(0, "NameError", "name 'x' is not defined")
    other = (
        upcoming(status="skipped")
        if skipped_side in ("upcoming", "both")
        else upcoming(failing, status="error", error=error)
    )

    comparison = compare_runs(baseline, other)

    assert comparison.verdict == "skipped"
    assert comparison.changes == ()


# --- both failed ----------------------------------------------------------------------------


def test_same_error_with_different_addresses_is_already_broken() -> None:
    old_cell, old_error = failed_cell(
        3, "TypeError", "unhashable: <Foo object at 0x7f3a1b2c3d40>, line 12, id 140234567890123"
    )
    new_cell, new_error = failed_cell(
        3, "TypeError", "unhashable: <Foo object at 0x55d0e4a1f2b0>, line 14, id 139876543210987"
    )
    baseline = locked(old_cell, status="error", error=old_error)
    other = upcoming(new_cell, status="error", error=new_error)

    comparison = compare_runs(baseline, other)

    assert comparison.verdict == "already-broken"
    assert comparison.changes == ()


def test_same_error_mentioning_each_scratch_copy_is_already_broken() -> None:
    old_cell, old_error = failed_cell(
        1, "FileNotFoundError", f"No such file: '{LOCKED_SCRATCH}/data.csv'"
    )
    new_cell, new_error = failed_cell(
        1, "FileNotFoundError", f"No such file: '{UPCOMING_SCRATCH}/data.csv'"
    )
    baseline = locked(old_cell, status="error", error=old_error)
    other = upcoming(new_cell, status="error", error=new_error)

    assert compare_runs(baseline, other).verdict == "already-broken"


def test_failing_earlier_than_the_old_failure_is_broken() -> None:
    old_cell, old_error = failed_cell(5, "NameError", "name 'data' is not defined")
    new_cell, new_error = failed_cell(2, "AttributeError", "'DataFrame' has no attribute 'append'")
    baseline = locked(cell(2, result("rows: 3")), old_cell, status="error", error=old_error)
    other = upcoming(new_cell, cell(5, status="not-run"), status="error", error=new_error)

    comparison = compare_runs(baseline, other)

    assert comparison.verdict == "broken"
    assert comparison.changes == (
        Change(
            "upcoming",
            2,
            "error",
            "rows: 3",
            "AttributeError: 'DataFrame' has no attribute 'append'",
        ),
    )


def test_failing_later_than_the_old_failure_is_broken() -> None:
    old_cell, old_error = failed_cell(1, "ImportError", "no module named 'old'")
    new_cell, new_error = failed_cell(4, "KeyError", "'col'")
    baseline = locked(old_cell, cell(4, status="not-run"), status="error", error=old_error)
    other = upcoming(cell(1), new_cell, status="error", error=new_error)

    (change,) = compare_runs(baseline, other).changes

    assert change.cell == 4
    assert change.before == "not run: cell 1 failed first (ImportError: no module named 'old')"
    assert change.after == "KeyError: 'col'"


@pytest.mark.parametrize(
    ("new_ename", "new_evalue"),
    [
        ("ValueError", "could not convert 'a'"),  # a different exception
        ("TypeError", "unsupported operand type(s) for +: 'int' and 'str'"),  # another message
    ],
)
def test_a_different_error_in_the_same_cell_is_broken(new_ename: str, new_evalue: str) -> None:
    old_cell, old_error = failed_cell(2, "TypeError", "could not convert 'a'")
    new_cell, new_error = failed_cell(2, new_ename, new_evalue)
    baseline = locked(old_cell, status="error", error=old_error)
    other = upcoming(new_cell, status="error", error=new_error)

    comparison = compare_runs(baseline, other)

    assert comparison.verdict == "broken"
    assert comparison.changes == (
        Change(
            "upcoming",
            2,
            "error",
            "TypeError: could not convert 'a'",
            f"{new_ename}: {new_evalue}",
        ),
    )


def test_same_cell_but_a_timeout_instead_of_an_error_is_broken() -> None:
    old_cell, old_error = failed_cell(2, "RuntimeError", "diverged")
    baseline = locked(old_cell, status="error", error=old_error)
    other = upcoming(cell(2, status="error"), status="timeout", reason="cell 2 ran over 300 s")

    assert compare_runs(baseline, other).verdict == "broken"


def test_both_envs_failing_to_build_the_same_way_is_already_broken() -> None:
    baseline = locked(status="env-failed", reason=f"cannot read {LOCKED_SCRATCH}/requirements.txt")
    other = upcoming(status="env-failed", reason=f"cannot read {UPCOMING_SCRATCH}/requirements.txt")

    assert compare_runs(baseline, other).verdict == "already-broken"


def test_both_envs_failing_to_build_differently_is_broken() -> None:
    baseline = locked(status="env-failed", reason="no interpreter for python 3.8")
    other = upcoming(status="env-failed", reason="no solution: scipy==1.5 needs python<3.10")

    comparison = compare_runs(baseline, other)

    assert comparison.verdict == "broken"
    assert comparison.changes == (
        Change(
            "upcoming",
            -1,
            "error",
            "env-failed: no interpreter for python 3.8",
            "env-failed: no solution: scipy==1.5 needs python<3.10",
        ),
    )


# --- the notebook's verdict -----------------------------------------------------------------


def _comparison(verdict: Verdict, env: str = "upcoming") -> Comparison:
    return Comparison(notebook="nb.ipynb", baseline="locked", env=env, verdict=verdict)


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["ok"], "ok"),
        (["ok", "broken"], "broken"),
        (["warnings", "changed"], "changed"),
        (["already-broken", "changed", "fixed"], "changed"),
        (["fixed", "warnings"], "warnings"),
        (["ok", "fixed"], "fixed"),
        (["skipped", "ok"], "ok"),
        (["skipped", "skipped"], "skipped"),
        (["broken", "skipped"], "broken"),
    ],
)
def test_notebook_verdict_is_the_worst(verdicts: list[Verdict], expected: Verdict) -> None:
    comparisons = [_comparison(v, env=f"env{i}") for i, v in enumerate(verdicts)]

    assert notebook_verdict(comparisons) == expected


def test_notebook_verdict_needs_a_comparison() -> None:
    with pytest.raises(ValueError, match="at least one comparison"):
        notebook_verdict([])


# --- normalizers ----------------------------------------------------------------------------


def test_normalizers_are_named_for_the_report() -> None:
    names = [n.name for n in normalizers_for(upcoming())]

    assert names == [
        "ansi-escapes",
        "volatile-paths",
        "carriage-returns",
        "progress-bars",
        "ipykernel-files",
        "timings",
        "timestamps",
        "addresses",
        "widget-ids",
    ]
    assert {n.name for n in NORMALIZERS} < set(names)


def test_longest_volatile_path_wins() -> None:
    run = NotebookRun(
        notebook="nb.ipynb",
        env="upcoming",
        status="ok",
        duration_s=0.0,
        volatile_paths=(("/tmp/s", "<SCRATCH>"), ("/tmp/s/envs/upcoming", "<ENV>")),
    )

    text = normalize_text("/tmp/s/envs/upcoming/lib/x.py and /tmp/s/data.csv", run)

    assert text == "<ENV>/lib/x.py and <SCRATCH>/data.csv"


@pytest.mark.parametrize(
    "text",
    [
        "mean 3.14159, std 0.001",
        "hex(255) = '0xff'",
        "2026-11-22",  # a bare date is data
        "Index([1, 2, 3], dtype='int64')",
        "the loop took 3 s",
    ],
)
def test_real_values_survive_normalization(text: str) -> None:
    assert normalize_text(text, upcoming()) == text


def test_normalize_output_drops_the_traceback_and_keeps_the_message() -> None:
    output = Output(
        "error",
        {"ename": "ValueError", "evalue": f"{UPCOMING_SCRATCH}/x", "traceback": "\x1b[31m..."},
    )

    assert normalize_output(output, upcoming()) == Output(
        "error", {"ename": "ValueError", "evalue": "<COURSE>/x"}
    )


def test_mask_volatile_numbers() -> None:
    masked = mask_volatile_numbers(
        'File "x.py", line 12: <Foo at 0x7F3A>, id=140234567890123, got 3 not 4'
    )

    assert masked == 'File "x.py", line N: <Foo at 0xHEX>, id=<ID>, got 3 not 4'


def test_progress_bar_redraws_fold_to_the_last_state_with_timings_masked() -> None:
    text = normalize_text(TQDM["bar-3-slow"], upcoming())

    assert text == "100%|██████████| 3/3 [<ELAPSED><<REMAINING>, <RATE>]\n"


def test_a_shorter_redraw_leaves_the_rest_of_the_line_visible() -> None:
    # As in a terminal and in Jupyter: a carriage return goes back to the line's start, it
    # does not erase what a shorter redraw leaves uncovered.
    assert normalize_text("downloading....\rdone\n", upcoming()) == "doneloading....\n"


@pytest.mark.parametrize(
    "rate", ["95.30it/s", "?it/s", " 1.10s/it", "1.2MB/s", "3.50kB/s"], ids=str.strip
)
def test_progress_rates_and_clocks_are_masked_in_any_unit(rate: str) -> None:
    text = normalize_text(f"100%|##| 3/3 [01:02:03<00:00,{rate}, loss=0.5]\n", upcoming())

    assert text == "100%|##| 3/3 [<ELAPSED><<REMAINING>, <RATE>, loss=0.5]\n"


def test_interleaved_progress_states_are_dropped_and_prints_merged() -> None:
    outputs = normalize_outputs(messages("train-slow"), upcoming())

    assert outputs == (
        stdout(
            "epoch 0: loss 1.000\nepoch 1: loss 0.500\nepoch 2: loss 0.333\nepoch 3: loss 0.250\n"
        ),
        stderr("epochs: 100%|██████████| 4/4 [<ELAPSED><<REMAINING>, <RATE>]\n"),
    )


def test_the_last_state_of_an_unfinished_bar_is_kept() -> None:
    bar = stderr("\r 50%|█████     | 1/2 [00:00<00:00,  4.98it/s]")

    outputs = normalize_outputs([bar, stdout("interrupted\n")], upcoming())

    assert outputs == (
        stderr(" 50%|█████     | 1/2 [<ELAPSED><<REMAINING>, <RATE>]"),
        stdout("interrupted\n"),
    )


def test_a_real_progress_figure_outside_a_bar_is_kept() -> None:
    assert normalize_text("[12:30, 3 talks]", upcoming()) == "[12:30, 3 talks]"
