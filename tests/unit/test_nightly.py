"""Nightly mode: only what is new since an earlier report counts (fast tier)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbguard.errors import ConfigError
from nbguard.report.nightly import load_previous, since


def _nb(path: str, verdict: str, *, cell: int | None = None, ename: str | None = None,
        warnings: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    error = {"cell": cell, "ename": ename, "evalue": "x"} if ename else None
    return {
        "path": path,
        "verdict": verdict,
        "culprit": None,
        "runs": {
            "locked": {"status": "ok", "error": None, "warnings": []},
            "upcoming": {
                "status": "error" if error else "ok",
                "error": error,
                "warnings": warnings or [],
            },
        },
    }


def _report(*notebooks: dict[str, Any], numpy: str = "2.1.0") -> dict[str, Any]:
    return {
        "schema": "nbguard-report/2",
        "created": "2026-11-21T03:00:00+00:00",
        "envs": {"upcoming": {"packages": {"numpy": numpy, "pandas": "2.2.3"}}},
        "notebooks": list(notebooks),
    }


FUTURE = {"cell": 2, "category": "FutureWarning", "message": "will change", "package": "pandas"}


def test_a_breakage_already_known_last_night_is_not_new() -> None:
    previous = _report(_nb("a.ipynb", "broken", cell=3, ename="AttributeError"))
    current = _report(_nb("a.ipynb", "broken", cell=3, ename="AttributeError"))

    assert since(previous, current)["new_broken"] == []


def test_new_and_different_breakages_are_new() -> None:
    previous = _report(
        _nb("ok-before.ipynb", "ok"),
        _nb("moved.ipynb", "broken", cell=3, ename="AttributeError"),
    )
    current = _report(
        _nb("ok-before.ipynb", "broken", cell=1, ename="ImportError"),
        _nb("moved.ipynb", "broken", cell=5, ename="TypeError"),  # a new break behind the old
        _nb("added.ipynb", "broken", cell=1, ename="NameError"),
    )

    new = {item["path"]: item["was"] for item in since(previous, current)["new_broken"]}

    assert new == {"ok-before.ipynb": "ok", "moved.ipynb": "broken", "added.ipynb": None}


def test_new_warnings_and_new_releases_are_listed() -> None:
    previous = _report(_nb("a.ipynb", "ok"), numpy="2.1.0")
    current = _report(_nb("a.ipynb", "warnings", warnings=[FUTURE]), numpy="2.2.0")

    news = since(previous, current)

    assert news["new_warnings"] == [{"path": "a.ipynb", "env": "upcoming", **FUTURE}]
    assert news["new_versions"] == {"upcoming": {"numpy": ["2.1.0", "2.2.0"]}}
    assert news["previous"] == "2026-11-21T03:00:00+00:00"
    # The same warning the next night is not news any more.
    assert since(current, current)["new_warnings"] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "not JSON"), ('{"schema": "other/1"}', "not an nbguard report")],
)
def test_a_previous_report_that_is_not_one_is_a_clear_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "previous.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_previous(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_previous(tmp_path / "missing.json")


def test_a_real_report_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_report(_nb("a.ipynb", "ok"))))
    assert load_previous(path)["notebooks"][0]["path"] == "a.ipynb"


def test_a_report_of_the_earlier_schema_still_serves_as_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "last-night.json"
    previous = _report(_nb("a.ipynb", "broken", cell=3, ename="AttributeError"))
    path.write_text(json.dumps({**previous, "schema": "nbguard-report/1"}))
    current = _report(_nb("a.ipynb", "broken", cell=3, ename="AttributeError"))

    assert since(load_previous(path), current)["new_broken"] == []
