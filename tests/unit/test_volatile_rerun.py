"""Fast tier: the volatile re-run stage on a fake backend — which notebooks run twice, what the
second baseline run masks, what the reports say, and the setting that turns it off."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from nbguard import pipeline, settings
from nbguard.model import EnvInfo, Notebook, NotebookRun, Report
from nbguard.report import json_report, junit, markdown, terminal
from nbguard.report.html_page import render as render_html
from tests.support.fakes import FakeBackend, Script, printed, write_course

PACKAGES = {"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}}
NOTEBOOKS = ["timing.ipynb", "real.ipynb", "same.ipynb"]


def ticking(*lines: str, start: int = 21) -> Script:
    """A run that prints `lines` and a wall time that differs on every run, as a timing does."""
    clock: Iterator[int] = itertools.count(start)

    def run(notebook: Notebook, env: EnvInfo) -> NotebookRun:
        return printed(notebook.path, env.name, *lines, f"took 0.0{next(clock)} s")

    return run


SCRIPTS: dict[tuple[str, str], Script] = {
    # Only the timing differs: volatile, so ok.
    ("timing.ipynb", "locked"): ticking("total = 42"),
    ("timing.ipynb", "upcoming"): ticking("total = 42", start=51),
    # A real change next to the timing: still changed, the timing masked.
    ("real.ipynb", "locked"): ticking("total = 42"),
    ("real.ipynb", "upcoming"): ticking("total = 43", start=51),
}


@pytest.fixture
def course(tmp_path: Path) -> Path:
    return write_course(tmp_path, NOTEBOOKS)


def audit(course: Path, backend: FakeBackend, **overrides: object) -> Report:
    config = settings.load(course, {"cache-dir": str(course.parent / "cache"), **overrides})
    return pipeline.run(config, backend=backend)


def test_what_differs_between_two_baseline_runs_is_volatile_not_a_change(course: Path) -> None:
    backend = FakeBackend(PACKAGES, SCRIPTS)

    report = audit(course, backend)

    by_path = {nb.path: nb for nb in report.notebooks}
    assert by_path["timing.ipynb"].verdict == "ok"
    assert by_path["same.ipynb"].verdict == "ok"
    real = by_path["real.ipynb"]
    assert real.verdict == "changed"
    (change,) = real.changes
    assert change.kind == "value"
    assert change.summary is not None and change.summary.startswith("42 → 43")
    assert change.before == "total = 42\ntook <volatile> s\n"
    assert "volatile: differs between two locked runs" in change.applied
    (note,) = by_path["timing.ipynb"].notes
    assert (note.cell, note.kind) == (0, "volatile")
    assert note.text.startswith("differs between two locked runs (")
    # Only the notebooks whose outputs differed ran again in the baseline env; the one where
    # a number still differed after that, once more in upcoming too.
    again = [run for run in backend.executed if backend.executed.count(run) > 1]
    assert sorted(set(again)) == [
        ("real.ipynb", "locked"),
        ("real.ipynb", "upcoming"),
        ("timing.ipynb", "locked"),
    ]
    assert len(backend.executed) == 2 * len(NOTEBOOKS) + 3


def test_a_number_the_baseline_printed_alike_twice_is_volatile_when_upcoming_prints_it_apart(
    course: Path,
) -> None:
    # A 15 ms timing at three decimals: the two locked runs print it alike, upcoming another
    # value each time. Seen from the baseline alone it looks like a change.
    scripts: dict[tuple[str, str], Script] = {
        ("timing.ipynb", "locked"): lambda nb, env: printed(nb.path, env.name, "took 0.015 s"),
        ("timing.ipynb", "upcoming"): _upcoming_timing(),
    }
    backend = FakeBackend(PACKAGES, scripts)

    report = audit(course, backend)

    timing = next(nb for nb in report.notebooks if nb.path == "timing.ipynb")
    assert timing.verdict == "ok"
    (note,) = timing.notes
    assert note.text.startswith("differs between two upcoming runs (")
    assert [(run.env, run.status) for run in timing.reruns] == [
        ("locked", "ok"),
        ("upcoming", "ok"),
    ]
    data = json_report.to_json(report)
    (entry,) = [nb for nb in data["notebooks"] if nb["path"] == "timing.ipynb"]
    assert [run["env"] for run in entry["volatile_reruns"]] == ["locked", "upcoming"]
    assert entry["volatile_rerun"]["env"] == "locked"


def _upcoming_timing() -> Script:
    clock = itertools.count(14)

    def run(notebook: Notebook, env: EnvInfo) -> NotebookRun:
        return printed(notebook.path, env.name, f"took 0.0{next(clock)} s")

    return run


def test_a_real_numeric_change_stays_a_change_after_the_second_opinion(course: Path) -> None:
    # Upcoming prints the same new number twice: nothing varies, so it is a change.
    scripts: dict[tuple[str, str], Script] = {
        ("real.ipynb", "locked"): lambda nb, env: printed(nb.path, env.name, "g = 9.81"),
        ("real.ipynb", "upcoming"): lambda nb, env: printed(nb.path, env.name, "g = 9.79"),
    }
    backend = FakeBackend(PACKAGES, scripts)

    report = audit(course, backend)

    real = next(nb for nb in report.notebooks if nb.path == "real.ipynb")
    assert real.verdict == "changed"
    assert real.notes == ()
    assert [run.env for run in real.reruns] == ["locked", "upcoming"]


def test_every_report_lists_the_volatile_cells(course: Path) -> None:
    report = audit(course, FakeBackend(PACKAGES, SCRIPTS))
    data = json_report.to_json(report)

    timing = next(nb for nb in data["notebooks"] if nb["path"] == "timing.ipynb")
    assert timing["notes"][0]["kind"] == "volatile"
    assert timing["volatile_rerun"]["env"] == "locked"
    same = next(nb for nb in data["notebooks"] if nb["path"] == "same.ipynb")
    assert same["volatile_rerun"] is None and same["notes"] == []
    line = "cell 0: volatile — differs between two locked runs"
    assert line in markdown.render(data)
    assert line in render_html(data)
    assert line in junit.render(data)
    assert json.loads(json.dumps(data)) == data
    console = Console(file=io.StringIO(), width=200)
    terminal.render(data, console)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert line in shown
    assert "volatile outputs: 2 notebooks whose outputs differed ran once more in locked" in shown


def test_without_the_rerun_a_timing_is_a_change(course: Path) -> None:
    backend = FakeBackend(PACKAGES, SCRIPTS)

    report = audit(course, backend, **{"volatile-rerun": False})

    assert {nb.path: nb.verdict for nb in report.notebooks}["timing.ipynb"] == "changed"
    assert len(backend.executed) == 2 * len(NOTEBOOKS)


def test_a_rerun_that_fails_teaches_nothing(course: Path) -> None:
    runs = itertools.count()

    def flaky(notebook: Notebook, env: EnvInfo) -> NotebookRun:
        if next(runs):  # the second baseline run dies
            return NotebookRun(notebook.path, env.name, "dead-kernel", 0.1, reason="died")
        return printed(notebook.path, env.name, "took 0.021 s")

    scripts = {("timing.ipynb", "locked"): flaky, ("timing.ipynb", "upcoming"): ticking(start=51)}
    report = audit(course, FakeBackend(PACKAGES, scripts))

    timing = next(nb for nb in report.notebooks if nb.path == "timing.ipynb")
    assert timing.verdict == "changed"
    assert timing.notes == ()


def test_a_note_quoting_hostile_output_is_escaped(course: Path) -> None:
    data = json_report.to_json(audit(course, FakeBackend(PACKAGES, SCRIPTS)))
    timing = next(nb for nb in data["notebooks"] if nb["path"] == "timing.ipynb")
    timing["notes"][0]["text"] = "differs (<script>alert(1)</script> | `x` *y*)"

    assert "<script>alert(1)</script>" not in render_html(data)
    assert "<script>alert(1)</script>" not in markdown.render(data)
