"""Fast tier: what the terminal table says per notebook, from a JSON report made in memory —
every env's failure next to the verdict, warnings once per kind and library ones apart, rows
cut to what matters, the env summary led by the course's own requirements."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from nbguard.report import terminal


def _run(
    status: str = "ok",
    error: tuple[int, str, str] | None = None,
    warnings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "duration_s": 1.0,
        "error": dict(zip(("cell", "ename", "evalue"), error, strict=True)) if error else None,
        "later_errors": [],
        "reason": None,
        "warnings": warnings or [],
    }


def _notebook(path: str, verdict: str, **fields: Any) -> dict[str, Any]:
    return {
        "path": path,
        "verdict": verdict,
        "skip_reason": None,
        "runs": {"locked": _run(), "upcoming": _run()},
        "changes": [],
        "culprit": None,
        "foreshadowing": [],
        "hints": [],
        **fields,
    }


def _report(*notebooks: dict[str, Any], envs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "course": "/c",
        "baseline": "locked",
        "duration_s": 1.0,
        "envs": envs or {},
        "summary": {},
        "notebooks": list(notebooks),
        "settings": {},
    }


def _shown(data: dict[str, Any], width: int = 300) -> str:
    out = io.StringIO()
    terminal.render(data, Console(file=out, width=width, color_system=None), None)
    return out.getvalue()


def _lines(data: dict[str, Any]) -> list[str]:
    """The table's "what happened" cells, one per line (a wide console wraps none)."""
    found = []
    for line in _shown(data, width=600).splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) == 6 and cells[3]:
            found.append(cells[3])
    return found


def _warning(cell: int, message: str, origin: str = "course", **more: Any) -> dict[str, Any]:
    record = {"cell": cell, "category": "DeprecationWarning", "message": message}
    return record | {"package": None, "origin": origin} | more


MISSING = (1, "FileNotFoundError", "[Errno 2] No such file or directory: 'data/run_2022.csv'")


# --- failures next to the verdict -----------------------------------------------------------


def test_an_already_broken_notebook_shows_the_locked_failure_once_for_both_envs() -> None:
    runs = {"locked": _run("error", MISSING), "upcoming": _run("error", MISSING)}

    lines = _lines(_report(_notebook("hw2.ipynb", "already-broken", runs=runs)))

    assert lines == [
        "locked, upcoming: cell 1: FileNotFoundError: [Errno 2] No such file or directory: "
        "'data/run_2022.csv'"
    ]


def test_a_broken_notebook_that_failed_differently_before_shows_both_failures() -> None:
    runs = {
        "locked": _run("error", MISSING),
        "upcoming": _run("error", (0, "ImportError", "cannot import name 'cumtrapz'")),
    }

    lines = _lines(_report(_notebook("nb.ipynb", "broken", runs=runs)))

    assert lines == [
        "upcoming: cell 0: ImportError: cannot import name 'cumtrapz'",
        f"locked: cell 1: FileNotFoundError: {MISSING[2]}",
    ]


def test_a_fixed_notebook_shows_how_it_failed_before() -> None:
    runs = {"locked": _run("error", (3, "AttributeError", "no 'median'")), "upcoming": _run()}

    assert _lines(_report(_notebook("nb.ipynb", "fixed", runs=runs))) == [
        "locked: cell 3: AttributeError: no 'median' — runs now"
    ]


def test_a_locked_failure_is_shown_as_text_never_as_markup_or_escapes() -> None:
    hostile = "[bold red]boom[/bold red] \x1b[31mred\x1b[0m \x07"
    runs = {"locked": _run("error", (1, "ValueError", hostile)), "upcoming": _run()}

    shown = _shown(_report(_notebook("nb.ipynb", "fixed", runs=runs)))

    assert "locked: cell 1: ValueError: [bold red]boom[/bold red]" in shown
    assert "\x1b" not in shown and "\x07" not in shown


def test_a_path_into_an_env_is_cut_to_its_site_packages() -> None:
    evalue = (
        "cannot import name 'cumtrapz' from 'scipy.integrate' "
        "(/home/me/.cache/nbguard/envs/1b8c5141/lib/python3.12/site-packages/scipy/integrate/"
        "__init__.py)"
    )
    runs = {"locked": _run(), "upcoming": _run("error", (1, "ImportError", evalue))}

    assert _lines(_report(_notebook("nb.ipynb", "broken", runs=runs))) == [
        "upcoming: cell 1: ImportError: cannot import name 'cumtrapz' from 'scipy.integrate' "
        "(…/site-packages/scipy/integrate/__init__.py)"
    ]


# --- warnings -------------------------------------------------------------------------------


def test_one_mistake_warned_for_every_character_is_listed_once_with_a_count() -> None:
    escapes = [_warning(2, f"invalid escape sequence '\\{char}'") for char in "dswDSW.()[]+"]
    escapes += [_warning(5, "invalid escape sequence '\\d'")]
    runs = {"locked": _run(warnings=escapes), "upcoming": _run()}

    lines = _lines(_report(_notebook("nb.ipynb", "warnings", runs=runs)))

    assert lines == [
        "⚠ locked cells 2, 5: DeprecationWarning: invalid escape sequence '\\d', and 11 like it "
        "(×13)"
    ]


def test_the_same_warning_in_both_envs_and_several_cells_is_one_line() -> None:
    message = "`np.float` is a deprecated alias for `float`. To silence this warning, use float."
    runs = {
        "locked": _run(warnings=[_warning(1, message, package="numpy")]),
        "upcoming": _run(warnings=[_warning(1, message, package="numpy")]),
    }
    runs["upcoming"]["warnings"].append(_warning(4, message, package="numpy"))

    assert _lines(_report(_notebook("nb.ipynb", "warnings", runs=runs))) == [
        "⚠ locked and upcoming cells 1, 4: DeprecationWarning (numpy): `np.float` is a "
        "deprecated alias for `float`. (×3)"
    ]


def test_warnings_raised_inside_libraries_are_listed_apart_and_only_on_rows_that_matter() -> None:
    library = [
        _warning(1, "distutils Version classes are deprecated.", "library", package="setuptools"),
        _warning(2, "distutils Version classes are deprecated.", "library", package="setuptools"),
        _warning(2, "pkg_resources is deprecated as an API.", "library", package="setuptools"),
    ]
    mine = _warning(3, "old_mean is deprecated; use wobble.mean instead", package="wobble")
    runs = {"locked": _run(), "upcoming": _run(warnings=[*library, mine])}
    hint = {"cell": 3, "hint": "use wobble.mean instead", "source": "DeprecationWarning"}
    ok_runs = {"locked": _run(), "upcoming": _run(warnings=library)}

    data = _report(
        _notebook("warns.ipynb", "warnings", runs=runs, hints=[hint]),
        _notebook("quiet.ipynb", "ok", runs=ok_runs),
    )
    lines = _lines(data)

    assert lines == [
        "⚠ upcoming cell 3: DeprecationWarning (wobble): old_mean is deprecated; use wobble.mean "
        "instead",
        "⚠ inside libraries, not the course's code: upcoming cells 1, 2: DeprecationWarning "
        "(setuptools): distutils Version classes are deprecated. (×2); and 1 more",
        "→ fix (cell 3): use wobble.mean instead",
    ]
    assert "ok: quiet.ipynb" in _shown(data)


def test_with_library_warnings_counted_they_are_listed_like_the_courses() -> None:
    runs = {
        "locked": _run(),
        "upcoming": _run(warnings=[_warning(1, "x is deprecated", "library", package="lib")]),
    }
    data = _report(_notebook("nb.ipynb", "warnings", runs=runs))
    data["settings"] = {"library-warnings": True}

    assert _lines(data) == ["⚠ upcoming cell 1: DeprecationWarning (lib): x is deprecated"]


# --- how much a row and the run say ---------------------------------------------------------


def test_a_long_row_keeps_the_most_important_lines_and_says_how_many_more() -> None:
    changes = [
        {"env": "upcoming", "cell": n, "kind": "text", "before": f"a{n}", "after": f"b{n}"}
        for n in range(8)
    ]
    hint = {"cell": 0, "hint": "use b instead", "source": "DeprecationWarning"}

    lines = _lines(_report(_notebook("nb.ipynb", "changed", changes=changes, hints=[hint])))

    assert lines == [
        "cell 0: text: a0 → b0",
        "cell 1: text: a1 → b1",
        "cell 2: text: a2 → b2",
        "cell 3: text: a3 → b3",
        "… 5 more in the JSON report",
    ]


def test_ok_notebooks_with_nothing_to_say_share_one_line_after_the_table() -> None:
    data = _report(
        _notebook("b.ipynb", "ok"),
        _notebook("a.ipynb", "ok"),
        _notebook("c.ipynb", "changed", changes=[{"cell": 1, "kind": "text", "before": "x"}]),
    )

    shown = _shown(data)

    assert "ok: a.ipynb, b.ipynb\n" in shown
    assert shown.index("c.ipynb") < shown.index("ok: a.ipynb")
    assert "│ a.ipynb" not in shown


def test_a_course_that_is_all_ok_prints_no_empty_table() -> None:
    shown = _shown(_report(_notebook("a.ipynb", "ok")))

    assert shown.splitlines()[0] == "ok: a.ipynb"
    assert "┏" not in shown


def _env(python: str, packages: dict[str, str], requirements: list[str]) -> dict[str, Any]:
    return {"python": python, "packages": packages, "requirements": requirements, "error": None}


def test_the_env_summary_names_the_courses_requirements_and_folds_the_rest() -> None:
    locked = {"numpy": "1.21.2", "pandas": "1.3.2", "six": "1.16.0", "pytz": "2021.1"}
    locked |= {f"dep{n}": "1.0" for n in range(140)}
    upcoming = {"numpy": "2.5.5", "pandas": "3.1.1", "tzdata": "2026.6"}
    upcoming |= {f"dep{n}": "2.0" for n in range(140)}
    envs = {
        "locked": _env("3.9.18", locked, ["numpy", "pandas"]),
        "upcoming": _env("3.12.1", upcoming, ["numpy", "pandas"]),
    }

    shown = _shown(_report(envs=envs))

    assert (
        "upcoming: Python 3.12.1, 143 packages; vs locked: python 3.9.18 → 3.12.1, "
        "numpy 1.21.2 → 2.5.5, pandas 1.3.2 → 3.1.1 and 143 transitive\n"
    ) in shown


def test_without_known_requirements_the_env_summary_still_fits_a_line() -> None:
    envs = {
        "locked": _env("3.11.7", {f"p{n:02}": "1" for n in range(30)}, []),
        "upcoming": _env("3.11.7", {f"p{n:02}": "2" for n in range(30)}, []),
    }

    shown = _shown(_report(envs=envs))

    assert "vs locked: p00 1 → 2, p01 1 → 2, p02 1 → 2, p03 1 → 2, p04 1 → 2, p05 1 → 2" in shown
    assert "p05 1 → 2 and 24 more\n" in shown


def test_a_course_asking_for_many_packages_names_a_dozen_of_them() -> None:
    asked = [f"req{n:02}" for n in range(15)]
    envs = {
        "locked": _env("3.11.7", dict.fromkeys([*asked, "dep"], "1"), asked),
        "upcoming": _env("3.11.7", dict.fromkeys([*asked, "dep"], "2"), asked),
    }

    shown = _shown(_report(envs=envs))

    assert "req10 1 → 2, req11 1 → 2 and 3 more, 1 transitive\n" in shown
