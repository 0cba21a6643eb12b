"""Fast tier: the one diff every report draws (nbguard.compare.text.diff_lines and its
unified drawing), and the excerpts a change keeps of long texts."""

from __future__ import annotations

from nbguard.compare.text import MAX_DIFF_LINES, diff_lines, excerpts, unified_diff
from nbguard.model import Tolerance
from nbguard.report.text import change_diff

DEFAULT = Tolerance()


def marked(diff: str) -> list[str]:
    """The lines a diff shows as removed or added (not its ---/+++ header)."""
    return [
        line for line in diff.split("\n") if line[:1] in "-+" and line[:3] not in ("---", "+++")
    ]


def test_lines_equal_in_substance_are_not_shown_as_changed() -> None:
    # Every row is realigned and carries float noise; only row 3 really changed.
    before = "\n".join(f"{i}  {i / 3:.17f}" for i in range(6))
    after = "\n".join(f"{i}     {i / 3:.6f}" for i in range(6)).replace("1.000000", "1.500000")

    assert unified_diff(before, after, DEFAULT).split("\n") == [
        "@@ -2,5 +2,5 @@",
        " 1  0.33333333333333331",
        " 2  0.66666666666666663",
        "-3  1.00000000000000000",
        "+3     1.500000",
        " 4  1.33333333333333326",
        " 5  1.66666666666666674",
    ]


def test_without_a_tolerance_only_identical_lines_match() -> None:
    assert marked(unified_diff("a  b\nx = 0.1", "a b\nx = 0.1000000001")) == [
        "-a  b",
        "+a b",
        "-x = 0.1",
        "+x = 0.1000000001",
    ]
    assert unified_diff("a  b\nx = 0.1", "a b\nx = 0.1000000001", DEFAULT) == ""


def test_a_looser_tolerance_marks_fewer_lines() -> None:
    before, after = "mean 0.5\nstd 0.25", "mean 0.5004\nstd 0.31"

    assert marked(unified_diff(before, after, DEFAULT)) == [
        "-mean 0.5",
        "+mean 0.5004",
        "-std 0.25",
        "+std 0.31",
    ]
    assert marked(unified_diff(before, after, Tolerance(rel=1e-3))) == ["-std 0.25", "+std 0.31"]


def test_edited_rows_pair_up_and_unrelated_lines_stay_in_blocks() -> None:
    rows = unified_diff("a 1\nb 2\nc 3", "a 1\nb 20\nc 30", DEFAULT)
    assert marked(rows) == ["-b 2", "+b 20", "-c 3", "+c 30"]

    replaced = unified_diff("<table>\nx = 1", "Traceback (most recent call last)\nKeyError")
    assert marked(replaced) == [
        "-<table>",
        "-x = 1",
        "+Traceback (most recent call last)",
        "+KeyError",
    ]


def test_hunks_keep_two_lines_of_context_and_say_where_they_are() -> None:
    before = "\n".join(f"line {i}" for i in range(1, 21))
    after = before.replace("line 5\n", "line five\n").replace("line 18", "line eighteen")

    assert unified_diff(before, after).split("\n") == [
        "@@ -3,5 +3,5 @@",
        " line 3",
        " line 4",
        "-line 5",
        "+line five",
        " line 6",
        " line 7",
        "@@ -16,5 +16,5 @@",
        " line 16",
        " line 17",
        "-line 18",
        "+line eighteen",
        " line 19",
        " line 20",
    ]


def test_a_missing_side_is_all_added_or_removed() -> None:
    assert unified_diff("", "x\ny") == "@@ -0,0 +1,2 @@\n+x\n+y"
    assert unified_diff("x\n", "") == "@@ -1 +0,0 @@\n-x"


def test_a_long_diff_is_capped() -> None:
    before = "\n".join(f"row {i}: {i}" for i in range(500))
    after = "\n".join(f"row {i}: {i + 1}" for i in range(500))

    lines = unified_diff(before, after, DEFAULT).split("\n")

    assert len(lines) == MAX_DIFF_LINES
    assert lines[-1].startswith("… ") and lines[-1].endswith(" more lines")


def test_a_very_long_line_is_cut_in_the_diff() -> None:
    before = "x\n" + "a " * 500 + "1"
    after = "x\n" + "a " * 500 + "2"

    assert max(len(line) for line in unified_diff(before, after, DEFAULT).split("\n")) <= 201


def test_every_line_of_both_texts_is_in_the_diff_once() -> None:
    before, after = "a\nb\nc 1.0\nd", "a\nc 1.0000000001\nd\ne"

    lines = diff_lines(before, after, DEFAULT)

    assert [line.old for line in lines if line.old is not None] == [0, 1, 2, 3]
    assert [line.new for line in lines if line.new is not None] == [0, 1, 2, 3]
    assert [(line.tag, line.text) for line in lines] == [
        (" ", "a"),
        ("-", "b"),
        (" ", "c 1.0"),
        (" ", "d"),
        ("+", "e"),
    ]


def test_long_texts_are_cut_alike_around_their_changes() -> None:
    rows = [f"{i:5d}  {i * 0.5:10.4f}" for i in range(2000)]
    changed = list(rows)
    changed[1500] = " 1500    999.0000"
    before, after = "\n".join(rows), "\n".join(changed)

    old, new = excerpts(before, after, DEFAULT, limit=4000)

    assert old.split("\n")[0] == new.split("\n")[0] == "… 1497 unchanged lines"
    assert old.split("\n")[-1] == new.split("\n")[-1] == "… 496 unchanged lines"
    # The diff of the excerpts shows what the diff of the whole texts shows.
    assert marked(unified_diff(old, new, DEFAULT)) == marked(unified_diff(before, after, DEFAULT))
    assert excerpts("short", "texts", DEFAULT, limit=4000) == ("short", "texts")


def test_a_long_run_of_changes_is_cut_at_the_limit() -> None:
    before = "\n".join(f"{i} a" for i in range(3000))
    after = "\n".join(f"{i} b" for i in range(3000))

    old, new = excerpts(before, after, None, limit=1000)

    assert len(old) <= 1100 and len(new) <= 1100
    assert old.endswith(" more lines") and old.startswith("0 a\n1 a")


def test_a_reports_change_diff_uses_the_tolerance_it_was_compared_with() -> None:
    change = {
        "env": "upcoming",
        "before": "mean 0.5\nstd 0.25",
        "after": "mean 0.5004\nstd 0.31",
        "tolerance": {"rel": 1e-3, "abs": 0.0},
    }

    assert change_diff(change, "locked").split("\n") == [
        "--- locked",
        "+++ upcoming",
        "@@ -1,2 +1,2 @@",
        " mean 0.5",
        "-std 0.25",
        "+std 0.31",
    ]
    # Without one (an error, or a report written by nbguard-report/1), lines compare as they are.
    assert len(marked(change_diff({**change, "tolerance": None}, "locked"))) == 4
