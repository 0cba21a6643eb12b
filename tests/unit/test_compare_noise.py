"""Fast tier: the comparison rules that keep run-to-run noise out of a teacher's report —
volatile outputs (learned from a second baseline run, or declared), a picture's text
fallback, versions as text, failures equal modulo numbers, changes by importance."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw

from nbguard.compare import CompareOptions, compare_runs, volatility
from nbguard.compare.text import compare_text, mask_varying, varying_tokens
from nbguard.model import CellResult, Comparison, Notebook, NotebookRun, Output, Tolerance
from tests.unit.test_compare import (
    cell,
    error_output,
    failed_cell,
    locked,
    result,
    stdout,
    upcoming,
)

NOTEBOOK = Notebook("lectures/01-intro.ipynb", "", "python3", "python")


def judged(
    baseline: NotebookRun,
    other: NotebookRun,
    rerun: NotebookRun | None = None,
    notebook: Notebook = NOTEBOOK,
) -> Comparison:
    """The comparison judge.judge makes: volatility from `rerun` and the notebook first."""
    return compare_runs(baseline, other, CompareOptions(), volatility(notebook, baseline, rerun))


# --- volatile: learned from a second baseline run --------------------------------------------


def test_a_timing_that_differs_between_two_locked_runs_is_volatile() -> None:
    first = locked(cell(1, stdout("total = 42\ntook 0.059 s\n")))
    again = locked(cell(1, stdout("total = 42\ntook 0.062 s\n")))
    other = upcoming(cell(1, stdout("total = 42\ntook 0.071 s\n")))

    comparison = judged(first, other, again)

    assert comparison.verdict == "ok"
    (note,) = comparison.notes
    assert (note.cell, note.kind) == (1, "volatile")
    assert note.text.startswith("differs between two locked runs (0.059 → 0.062")


def test_a_real_change_next_to_a_volatile_number_is_still_a_change() -> None:
    first = locked(cell(1, stdout("total = 42\ntook 0.059 s\n")))
    again = locked(cell(1, stdout("total = 42\ntook 0.062 s\n")))
    other = upcoming(cell(1, stdout("total = 43\ntook 0.071 s\n")))

    comparison = judged(first, other, again)

    assert comparison.verdict == "changed"
    (change,) = comparison.changes
    assert (change.kind, change.before, change.after) == (
        "value",
        "total = 42\ntook <volatile> s\n",
        "total = 43\ntook <volatile> s\n",
    )
    assert "volatile: differs between two locked runs" in change.applied


def test_unseeded_random_numbers_in_an_array_are_volatile_whatever_their_width() -> None:
    # np.random.rand(4) unseeded: other digits, and numpy re-wraps the line.
    first = locked(cell(2, result("array([0.5488135 , 0.71518937, 0.60276338, 0.54488318])")))
    again = locked(
        cell(2, result("array([0.4236548 , 0.64589411,\n       0.43758721, 0.891773  ])"))
    )
    other = upcoming(cell(2, result("array([0.96366276, 0.38344152, 0.79172504, 0.52889492])")))

    assert judged(first, other, again).verdict == "ok"


def test_random_numbers_that_two_locked_runs_drew_close_together_are_still_volatile() -> None:
    # Random bits read as doubles: two draws both near 0 are equal within the absolute
    # tolerance, the upcoming draw is not; printed otherwise, the number varies all the same.
    first = locked(cell(1, stdout("empty buffer: [-2.4e-36, 7.1e+212]\n")))
    again = locked(cell(1, stdout("empty buffer: [3.9e-207, 2.9e+178]\n")))
    other = upcoming(cell(1, stdout("empty buffer: [1.0e+120, -5.7e+67]\n")))

    comparison = judged(first, other, again)

    assert comparison.verdict == "ok"
    assert [(note.cell, note.kind) for note in comparison.notes] == [(1, "volatile")]


def test_a_volatile_value_shown_as_another_type_is_a_repr_change() -> None:
    first = locked(cell(1, result("0.5488135")))
    again = locked(cell(1, result("0.4236548")))
    other = upcoming(cell(1, result("np.float64(0.9636627)")))

    (change,) = judged(first, other, again).changes

    assert change.kind == "repr"
    assert (change.before, change.after) == ("<volatile>", "np.float64(<volatile>)")


def test_outputs_that_come_and_go_between_two_locked_runs_are_not_compared() -> None:
    first = locked(cell(1, stdout("converged\n")), cell(2, result("3")))
    again = locked(cell(1, stdout("retrying\n"), stdout("converged\n")), cell(2, result("3")))
    other = upcoming(cell(1, stdout("converged after 2\n")), cell(2, result("4")))

    comparison = judged(first, other, again)

    assert [(c.cell, c.kind) for c in comparison.changes] == [(2, "value")]
    assert [n.cell for n in comparison.notes] == [1]


def test_a_volatile_cell_still_compares_its_errors() -> None:
    first = locked(cell(1, stdout("took 0.059 s\n")))
    again = locked(cell(1, stdout("took 0.062 s\n"), stdout("more\n")))
    failing, error = failed_cell(1, "ValueError", "bad")
    other = upcoming(failing, status="error", error=error)

    assert judged(first, other, again).verdict == "broken"


def test_a_run_equal_to_the_baseline_learns_nothing_and_notes_nothing() -> None:
    first = locked(cell(1, stdout("total = 42\n")))
    other = upcoming(cell(1, stdout("total = 43\n")))

    comparison = judged(first, other, locked(cell(1, stdout("total = 42\n"))))

    assert comparison.verdict == "changed"
    assert comparison.notes == ()


def test_varying_tokens_and_their_masks() -> None:
    tolerance = Tolerance()

    assert varying_tokens("a 1.5 b 2", "a 1.7 b 2", tolerance) == frozenset({1})
    assert varying_tokens("a 1.5 b", "a 1.5 b\nc", tolerance) is None  # lines came and went
    assert varying_tokens("label A", "label B", tolerance) == frozenset({1})
    assert mask_varying("a 1.5 b 2", "x a 9 b 2", frozenset({1})) == (
        "a <volatile> b 2",
        "x a <volatile> b 2",
    )


# --- volatile: declared ----------------------------------------------------------------------


def tagged(index: int, *outputs: Output) -> CellResult:
    return CellResult(index, "ok", "x = rng.random()", outputs, volatile=True)


def test_a_cell_tagged_volatile_compares_words_not_numbers() -> None:
    first = locked(tagged(1, stdout("mean = 0.51\n")))
    same_words = upcoming(tagged(1, stdout("mean = 0.49\n")))
    other_words = upcoming(tagged(1, stdout("median = 0.49\n")))

    ok = judged(first, same_words)
    assert ok.verdict == "ok"
    assert [n.text for n in ok.notes] == [
        "tagged nbguard-volatile: numbers and images not compared"
    ]
    assert judged(first, other_words).verdict == "changed"


def test_notebook_metadata_makes_every_cell_volatile() -> None:
    notebook = Notebook("lectures/01-intro.ipynb", "", "python3", "python", volatile=True)
    first = locked(cell(1, stdout("seed 1234\n")), cell(2, result("0.1")))
    other = upcoming(cell(1, stdout("seed 9876\n")), cell(2, result("0.7")))

    comparison = judged(first, other, notebook=notebook)

    assert comparison.verdict == "ok"
    assert [n.cell for n in comparison.notes] == [1, 2]


# --- pictures ------------------------------------------------------------------------------


def _figure(size: tuple[int, int], amplitude: float = 0.4) -> str:
    """A line plot shown at `size`: one drawing, scaled as a figure is at another dpi."""
    width, height = 1000, 600
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([100, 60, 900, 540], outline="black", width=4)
    wave = [(100 + 8 * x, 300 + int(amplitude * 600 * ((x % 20) - 10) / 20)) for x in range(100)]
    draw.line(wave, fill=(31, 119, 180), width=6)
    buffer = io.BytesIO()
    image.resize(size, Image.Resampling.LANCZOS).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def figure(size: tuple[int, int], text: str, amplitude: float = 0.4) -> Output:
    return Output("display_data", {"image/png": _figure(size, amplitude), "text/plain": text})


def test_a_figure_at_another_dpi_is_a_cosmetic_note_not_a_change() -> None:
    first = locked(cell(3, figure((360, 216), "<Figure size 360x216 with 1 Axes>")))
    other = upcoming(cell(3, figure((500, 300), "<Figure size 500x300 with 1 Axes>")))

    comparison = judged(first, other)

    assert comparison.verdict == "ok"
    (note,) = comparison.notes
    assert note.kind == "cosmetic"
    assert note.text.startswith("the same picture at another size: image/png 360×216 → 500×300")
    assert "<Figure size 360x216 with 1 Axes> → <Figure size 500x300 with 1 Axes>" in note.text


def test_a_figure_whose_picture_changed_is_an_image_change_not_a_text_one() -> None:
    first = locked(cell(3, figure((360, 216), "<Figure size 360x216 with 1 Axes>")))
    other = upcoming(cell(3, figure((500, 300), "<Figure size 500x300 with 1 Axes>", 0.2)))

    (change,) = judged(first, other).changes

    assert change.kind == "image"


def test_text_plain_without_a_picture_is_still_compared() -> None:
    first = locked(cell(3, result("<Figure size 360x216 with 1 Axes>")))
    other = upcoming(cell(3, result("<Figure size 500x300 with 1 Axes>")))

    assert judged(first, other).verdict == "changed"


# --- versions and numbers ----------------------------------------------------------------------


def test_versions_are_compared_as_text() -> None:
    for old, new in [
        ("numpy 1.26.4", "numpy 2.5.5"),
        ("v2.0.1", "v2.0.2"),
        ("Python 3.5", "Python 3.11"),
        ("matplotlib version: 3.5", "matplotlib version: 3.11"),
        ("numpy==1.21", "numpy==1.26"),
    ]:
        difference = compare_text(old, new, Tolerance(rel=0.5))
        assert difference is not None, (old, new)  # within 50 %, but not the same version
        assert difference.kind == "text"
        assert difference.summary == f"{old} → {new}"
        assert "rel" not in difference.summary


def test_the_upgrade_printed_is_a_note_not_a_change() -> None:
    upgrades = (("nbguard-demo-wobble", "1.0", "2.0"), ("python", "3.9.18", "3.12.1"))
    options = CompareOptions(upgrades=upgrades)
    first = locked(cell(1, stdout("wobble version: 1.0\npython 3.9.18\n")), cell(2, result("1.0")))
    other = upcoming(
        cell(1, stdout("wobble version: 2.0\npython 3.12.1\n")), cell(2, result("2.0"))
    )

    comparison = compare_runs(first, other, options)

    # The same two numbers as a value, with no version in sight, are a change.
    assert [(c.cell, c.kind) for c in comparison.changes] == [(2, "value")]
    (note,) = comparison.notes
    assert (note.cell, note.kind) == (1, "cosmetic")
    assert note.text == (
        "prints the upgraded versions: nbguard-demo-wobble 1.0 → 2.0, python 3.9.18 → 3.12.1"
    )


def test_a_version_that_moved_elsewhere_than_the_upgrade_is_a_change() -> None:
    options = CompareOptions(upgrades=(("nbguard-demo-wobble", "1.0", "2.0"),))
    first = locked(cell(1, stdout("wobble version: 1.0\n")))
    other = upcoming(cell(1, stdout("wobble version: 3.0\n")))

    (change,) = compare_runs(first, other, options).changes

    assert (change.kind, change.summary) == ("text", "wobble version: 1.0 → wobble version: 3.0")


def test_numbers_next_to_ordinary_words_are_still_values() -> None:
    difference = compare_text("mean 3.5", "mean 3.11", Tolerance())

    assert difference is not None and difference.kind == "value"


def test_a_failure_whose_message_differs_only_by_a_number_is_already_broken() -> None:
    old, old_error = failed_cell(2, "ValueError", "tolerance 1e-08 not reached")
    new, new_error = failed_cell(2, "ValueError", "tolerance 1.4901161193847656e-08 not reached")

    comparison = judged(
        locked(old, status="error", error=old_error), upcoming(new, status="error", error=new_error)
    )

    assert comparison.verdict == "already-broken"


def test_a_failure_with_other_words_is_still_broken() -> None:
    old, old_error = failed_cell(2, "ValueError", "tolerance 1e-08 not reached")
    new, new_error = failed_cell(2, "ValueError", "tolerance 1e-08 exceeded")

    comparison = judged(
        locked(old, status="error", error=old_error), upcoming(new, status="error", error=new_error)
    )

    assert comparison.verdict == "broken"


# --- order ---------------------------------------------------------------------------------


def test_changes_are_ordered_errors_then_values_then_text_then_images() -> None:
    first = locked(
        cell(1, figure((100, 100), "<Figure>")),
        cell(2, stdout("hello\n")),
        cell(3, result("1.0")),
        cell(4, error_output("KeyError", "'a'")),
    )
    other = upcoming(
        cell(1, figure((100, 100), "<Figure>", 0.1)),
        cell(2, stdout("goodbye\n")),
        cell(3, result("np.float64(1.0)")),
        cell(4, error_output("KeyError", "'b'")),
    )

    comparison = judged(first, other)

    assert [(c.cell, c.kind) for c in comparison.changes] == [
        (4, "error"),
        (3, "repr"),
        (2, "text"),
        (1, "image"),
    ]
