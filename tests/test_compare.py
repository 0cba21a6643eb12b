"""Fast tier: comparing in-memory runs, no kernels."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nbguard.compare import compare_runs, notebook_verdict
from nbguard.model import (
    CellError,
    CellResult,
    CellStatus,
    Change,
    Comparison,
    NotebookRun,
    Output,
    RunStatus,
    Verdict,
    WarningRecord,
)
from nbguard.normalize import (
    NORMALIZERS,
    mask_volatile_numbers,
    normalize_output,
    normalize_text,
    normalizers_for,
)

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
    index: int, *outputs: Output, status: CellStatus = "ok", allowed_error: bool = False
) -> CellResult:
    return CellResult(
        index=index,
        status=status,
        source=f"# cell {index}",
        outputs=outputs,
        allowed_error=allowed_error,
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


def pair(before: CellResult, after: CellResult) -> Comparison:
    return compare_runs(locked(before), upcoming(after))


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


def test_equal_runs_are_ok_and_name_the_envs() -> None:
    comparison = pair(cell(1, result("42")), cell(1, result("42")))

    assert comparison == Comparison(
        notebook="lectures/01-intro.ipynb", baseline="locked", env="upcoming", verdict="ok"
    )
    assert comparison.culprit is None


# --- both ran: real differences --------------------------------------------------------------


def test_changed_repr_is_an_output_change_at_that_cell() -> None:
    comparison = pair(cell(3, result("Curve(n=3)")), cell(3, result("<Curve n=3>")))

    assert comparison.verdict == "changed"
    assert comparison.changes == (Change("upcoming", 3, "output", "Curve(n=3)", "<Curve n=3>"),)


def test_a_different_number_is_a_change() -> None:
    comparison = pair(cell(2, stdout("mean = 3.14\n")), cell(2, stdout("mean = 3.15\n")))

    assert comparison.verdict == "changed"
    assert [(c.cell, c.kind) for c in comparison.changes] == [(2, "output")]


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
    assert change.kind == "output"
    assert change.before is not None
    assert change.after is not None
    assert change.before.startswith(f"image/png, {len(PNG_BYTES)} bytes, sha256 ")
    assert change.before != change.after
    assert PNG_B64[:40] not in change.before


def test_only_the_differing_representation_is_shown() -> None:
    before = Output("execute_result", {"text/plain": "   a\n0  1", "text/html": "<td>1</td>"})
    after = Output("execute_result", {"text/plain": "   a\n0  1", "text/html": "<td>1.0</td>"})

    (change,) = pair(cell(0, before), cell(0, after)).changes

    assert change.before == "[text/html]\n<td>1</td>"
    assert change.after == "[text/html]\n<td>1.0</td>"


def test_long_output_change_shows_the_difference_within_the_limit() -> None:
    rows = [f"{i:5d}  {i * 0.5:10.4f}" for i in range(2000)]
    changed = list(rows)
    changed[1500] = " 1500    999.0000"

    (change,) = pair(cell(0, result("\n".join(rows))), cell(0, result("\n".join(changed)))).changes

    assert change.before is not None
    assert change.after is not None
    assert "750.0000" in change.before
    assert "999.0000" in change.after
    assert len(change.before) < 2100
    assert len(change.after) < 2100


def test_expected_error_with_a_different_exception_is_a_change() -> None:
    before = cell(2, error_output("KeyError", "'x'"), status="error", allowed_error=True)
    after = cell(2, error_output("AttributeError", "'x'"), status="error", allowed_error=True)

    comparison = pair(before, after)

    assert comparison.verdict == "changed"
    assert comparison.changes == (
        Change("upcoming", 2, "output", "KeyError: 'x'", "AttributeError: 'x'"),
    )


def test_a_tolerant_comparator_slots_in() -> None:
    def ignore_trailing_zeros(mime: str, before: str, after: str) -> bool:
        return before.rstrip("0") == after.rstrip("0")

    baseline = locked(cell(0, result("0.5")))
    other = upcoming(cell(0, result("0.500")))

    assert compare_runs(baseline, other).verdict == "changed"
    assert compare_runs(baseline, other, equal=ignore_trailing_zeros).verdict == "ok"


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
    assert [(c.cell, c.kind) for c in comparison.changes] == [(1, "output"), (2, "error")]


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
        "ipykernel-files",
        "timings",
        "timestamps",
        "addresses",
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
