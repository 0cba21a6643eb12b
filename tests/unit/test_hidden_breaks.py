"""A second break that blame's probes revealed behind the first: carried by the JSON report
and shown, one line, by the terminal table and the Markdown summary."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

from rich.console import Console

from nbguard.model import Culprit, HiddenBreak, Report
from nbguard.report import json_report, markdown, terminal
from tests.unit.test_report_json import broken_notebook

TRAPZ = HiddenBreak(
    "upcoming",
    48,
    "AttributeError",
    "module 'scipy.integrate' has no attribute 'trapz'",
    "revert scipy 1.17.0 → 1.11.2",
    Culprit("scipy", "1.7.1", "1.17.0", "inferred", "AttributeError names scipy.integrate"),
)


def _data() -> dict[str, Any]:
    nb = broken_notebook()
    comparison = replace(nb.comparisons[0], hidden=(TRAPZ,))
    report = Report("/c", "locked", {}, (replace(nb, comparisons=(comparison,)),), "now", 1.0)
    loaded: dict[str, Any] = json.loads(json.dumps(json_report.to_json(report)))
    return loaded


def test_the_json_report_carries_the_hidden_break_with_its_own_culprit() -> None:
    (hidden,) = _data()["notebooks"][0]["hidden_breaks"]

    assert hidden == {
        "env": "upcoming",
        "cell": 48,
        "ename": "AttributeError",
        "evalue": "module 'scipy.integrate' has no attribute 'trapz'",
        "probe": "revert scipy 1.17.0 → 1.11.2",
        "culprit": {
            "package": "scipy",
            "from": "1.7.1",
            "to": "1.17.0",
            "evidence": "inferred",
            "reason": "AttributeError names scipy.integrate",
        },
    }


def test_the_terminal_shows_the_hidden_break_in_one_line() -> None:
    out = io.StringIO()
    terminal.render(_data(), Console(file=out, width=300, color_system=None))

    assert (
        "hidden by it: cell 48: AttributeError: module 'scipy.integrate' has no attribute "
        "'trapz' (culprit scipy, inferred)"
    ) in out.getvalue()


def test_markdown_shows_the_hidden_break_in_one_line() -> None:
    shown = markdown.render(_data())

    assert (
        "hidden break (shown by revert scipy 1.17.0 → 1.11.2): cell 48: AttributeError: "
        "module 'scipy.integrate' has no attribute 'trapz'; culprit: scipy 1.7.1 → 1.17.0 "
        "(inferred)"
    ) in shown.replace("\\", "")
