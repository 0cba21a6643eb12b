"""Fast tier: comparing two payloads of one mime type, numbers within tolerance, HTML as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbguard.compare.text import (
    Difference,
    TextKind,
    compare_html,
    compare_text,
    html_as_text,
    numbers_close,
)
from nbguard.model import Tolerance

PAIRS = Path(__file__).resolve().parents[2] / "fixtures" / "compare-pairs"
DEFAULT = Tolerance()
BOTH_WAYS = pytest.mark.parametrize("swap", [False, True], ids=["forward", "backward"])


def both(before: str, after: str, swap: bool) -> tuple[str, str]:
    return (after, before) if swap else (before, after)


def compared(before: str, after: str, tolerance: Tolerance = DEFAULT) -> Difference:
    difference = compare_text(before, after, tolerance)
    assert difference is not None
    return difference


# --- numbers ------------------------------------------------------------------------------


@BOTH_WAYS
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("0.30000000000000004", "0.3"),
        ("1e-05", "1.0000000000001e-05"),
        ("1.e-01", "0.1"),  # numpy's scientific notation with no digits after the point
        ("-0.", "0."),
        ("-0.e+00", "0.0"),
        ("2.220446049250313e-16", "0.0"),  # below the absolute tolerance
        ("nan", "NaN"),  # numpy prints nan, pandas NaN
        ("inf", "Infinity"),
        ("1,234,567.891", "1234567.891"),
        ("1,000", "1000"),
    ],
)
def test_numbers_equal_within_tolerance(before: str, after: str, swap: bool) -> None:
    assert numbers_close(*both(before, after, swap), DEFAULT)


@BOTH_WAYS
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("0.5", "0.5000006"),  # relative 1.2e-6
        ("1e-05", "2e-05"),
        ("1e-11", "0.0"),  # above the absolute tolerance
        ("nan", "0.0"),
        ("inf", "-inf"),
        ("1000000", "1000001"),  # integers carry no rounding noise: exact
        ("1,000,000", "1,000,001"),
    ],
)
def test_numbers_beyond_tolerance(before: str, after: str, swap: bool) -> None:
    assert not numbers_close(*both(before, after, swap), DEFAULT)


def test_integers_of_any_length_compare_exactly() -> None:
    # More digits than int() accepts (4,300), as print(math.factorial(2000)) shows.
    big = "4" * 5000

    assert numbers_close(big, big, DEFAULT)
    assert numbers_close("-0", "0", DEFAULT)
    assert not numbers_close(big, big[:-1] + "5", DEFAULT)
    assert compared(f"x = {big}", f"x = {big[:-1]}5").kind == "value"


def test_tolerance_is_configurable() -> None:
    assert numbers_close("0.5", "0.5004", Tolerance(rel=1e-3))
    assert numbers_close("0.0", "1e-9", Tolerance(abs=1e-8))
    assert not numbers_close("0.0", "1e-9", Tolerance(abs=1e-10))


@BOTH_WAYS
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("dtype: float64", "dtype: float32"),  # the digits of a name are not a number
        ("3 Line2D artists", "3 Line3D artists"),
        ("x1 + x2", "x1 + x3"),
        ("nano", "nanu"),  # nan and inf only as whole words
        ("information", "informative"),
    ],
)
def test_digits_inside_names_are_text(before: str, after: str, swap: bool) -> None:
    # If 64 were a number, float64 → float32 would be a `value` change within 100%.
    assert compared(*both(before, after, swap)).kind == "text"


# --- kinds --------------------------------------------------------------------------------


@BOTH_WAYS
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("array([ 1.5 ,  0.  , -0.25])", "array([ 1.5000000e+00,  4.4408921e-16, -2.5000000e-01])"),
        # pandas widens a column when one number gets longer: whitespace runs move.
        ("   a\n0  0.1\n1  2.0", "                     a\n0  0.10000000000000001\n1  2.0"),
        # numpy re-wraps an array at its line width.
        ("array([1., 2.,\n       3.])", "array([1., 2., 3.])"),
        ("hello  world\n", "hello world\n"),
    ],
)
def test_equal_in_substance(before: str, after: str, swap: bool) -> None:
    assert compare_text(*both(before, after, swap), DEFAULT) is None


@BOTH_WAYS
@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        ("3.0", "np.float64(3.0)", "repr"),
        ("3", "np.int64(3)", "repr"),
        ("0.1", "np.float32(0.1)", "repr"),
        ("'setosa'", "np.str_('setosa')", "repr"),
        ("(0.5, 1.5)", "(np.float64(0.5), np.float64(1.5))", "repr"),
        ("array([1., 2.])", "[1.0, 2.0]", "repr"),
        ("(1, 2)", "[1, 2]", "repr"),
        ("Int64Index([1, 2, 3], dtype='int64')", "Index([1, 2, 3], dtype='int64')", "repr"),
        ("Curve(n=3)", "<Curve n=3>", "repr"),
        ("False", "np.False_", "repr"),
        ("1", "1.0", "repr"),  # an int column became float
        ("mean = 3.14", "mean = 3.15", "value"),
        ("array([0.5 , 1.25])", "array([0.5 , 1.31])", "value"),
        ("3.0", "np.float64(3.1)", "value"),  # a value moved inside a new wrapper
        ("array([1, 2, 3])", "array([1, 2])", "value"),
        ("Name: count, dtype: int64", "Name: species, dtype: int64", "text"),
        ("'0xff'", "'0xfe'", "text"),
        ("Done.", "Done!", "text"),
        ("Curve(n=3)", "<Curve n=3 points>", "text"),  # a new word, not only a new wrapper
        ("numpy 1.26.4", "numpy 1.26.5", "text"),  # a version is not a number
        ("loss 0.5\n", "loss 0.5\nUserWarning: careful\n", "text"),
        ("shape (3, 4)", "size (3, 4)", "text"),
    ],
)
def test_the_kind_of_a_difference(before: str, after: str, kind: TextKind, swap: bool) -> None:
    assert compared(*both(before, after, swap)).kind == kind


# --- descriptions -------------------------------------------------------------------------


def test_a_difference_carries_the_texts_compared() -> None:
    difference = compared("0.5", "0.53")

    assert (difference.before, difference.after) == ("0.5", "0.53")
    assert difference.summary == "0.5 → 0.53 (rel 6%)"
    assert difference.applied == ("rel_tol=1e-06", "abs_tol=1e-12")


def test_a_value_summary_counts_what_moved() -> None:
    before = "\n".join(f"{i}  {i / 7:.6f}" for i in range(10))
    after = before.replace("0.142857", "0.15").replace("1.285714", "1.3")

    difference = compared(before, after)

    assert difference.summary == "0.142857 → 0.15 (rel 5%), line 2; 2 numbers beyond tolerance"


def test_a_change_from_zero_is_absolute() -> None:
    assert compared("resid 0.0", "resid 0.25").summary == "0.0 → 0.25 (abs 0.25)"


def test_a_lost_number_is_counted() -> None:
    assert compared("array([1, 2, 3])", "array([1, 2])").summary == "3 numbers → 2 numbers"


def test_repr_and_text_summaries_show_the_first_changed_line() -> None:
    # The kind (`repr`) says the value is the same; the summary shows the two prints.
    assert compared("3.0", "np.float64(3.0)").summary == "3.0 → np.float64(3.0)"
    lines = "species\nsetosa 50\nName: count, dtype: int64"
    assert compared(lines, lines.replace("count", "species")).summary == (
        "line 3: Name: count, dtype: int64 → Name: species, dtype: int64"
    )


def test_a_dropped_line_is_not_paired_with_a_later_one() -> None:
    before = "species\nsetosa        50\nvirginica     50\nName: count, dtype: int64"
    after = "setosa        50\nvirginica     50\nName: species, dtype: int64"

    assert compared(before, after).summary == "line 1 removed: species"
    assert compared(after, before).summary == "line 1 added: species"


def test_a_change_over_a_hundred_percent_is_not_written_as_an_exponent() -> None:
    assert compared("n = 1.5", "n = 3.0").summary == "1.5 → 3.0 (rel 100%)"
    assert compared("n = 0.5", "n = 62.5").summary == "0.5 → 62.5 (rel 12,400%)"


# --- HTML ---------------------------------------------------------------------------------


def fixture(name: str) -> str:
    return (PAIRS / name).read_text(encoding="utf-8")


def test_a_dataframe_reads_as_rows_of_cells() -> None:
    assert html_as_text(fixture("fit-noise.html")) == (
        " | term | coef | resid\n"
        "0 | intercept | 1.50 | 4.440892e-16\n"
        "1 | x1 | -0.25 | -2.220446e-16\n"
        "2 | x2 | 2.00 | 0.000000e+00"
    )


def test_styles_attributes_and_inline_markup_are_not_content() -> None:
    html = (
        '<div class="x"><style>p { color: red }</style>'
        '<p style="margin: 0">Total: <b>3</b>&nbsp;items</p>'
        "<!-- a comment --><br><pre>a  b\n  c</pre></div>"
    )

    assert html_as_text(html) == "Total: 3 items\na b\nc"


def test_an_image_in_html_is_compared_by_its_source() -> None:
    first = html_as_text('<img src="data:image/png;base64,AAAA" width="10">')
    moved = html_as_text('<img src="data:image/png;base64,AAAA" width="20">')
    other = html_as_text('<img src="data:image/png;base64,BBBB">')

    assert first == moved
    assert first != other
    assert first.startswith("[image sha")


@BOTH_WAYS
def test_a_reflowed_table_with_float_noise_is_equal(swap: bool) -> None:
    before, after = both(fixture("fit-noise.html"), fixture("fit-clean-reflowed.html"), swap)

    assert compare_html(before, after, DEFAULT) is None


@BOTH_WAYS
@pytest.mark.parametrize(
    ("other", "kind", "summary"),
    [
        ("fit-coef-moved.html", "value", "-0.25 → -0.31 (rel 24%), line 3"),
        ("fit-renamed.html", "text", "line 1: | term | coef | resid → | term | estimate | resid"),
    ],
)
def test_a_table_change_is_found_cell_by_cell(
    other: str, kind: TextKind, summary: str, swap: bool
) -> None:
    before, after = both(fixture("fit-clean-reflowed.html"), fixture(other), swap)

    difference = compare_html(before, after, DEFAULT)

    assert difference is not None
    assert difference.kind == kind
    assert difference.applied[0] == "html-as-text"
    if not swap:
        assert difference.summary == summary
