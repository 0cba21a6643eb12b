"""Fast tier: the terminal, Markdown, JUnit and GitHub renderers against a frozen report and
payloads."""

from __future__ import annotations

import copy
import io
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from nbguard.report import github, json_report, junit, markdown, terminal

GOLDEN = Path(__file__).parent / "golden"
# Captured from the demo course, volatile values (created, durations, fingerprints, paths)
# frozen, plus crafted notebooks: HTML/JS payloads in outputs, a timeout, a table whose values
# moved (a multi-line change), and one nbguard's own code failed on.
REPORT: dict[str, Any] = json.loads((GOLDEN / "report.json").read_text(encoding="utf-8"))

XSS = "<img src=x onerror=alert(1)>"


def _annotations(data: dict[str, Any]) -> str:
    return "\n".join(github.annotations(data, prefix="courses/physics")) + "\n"


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "report.md": markdown.render,
    "junit.xml": junit.render,
    "annotations.txt": _annotations,
}


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_golden(name: str) -> None:
    """Regenerate with NBGUARD_UPDATE_GOLDEN=1, then review the diff before committing."""
    rendered = RENDERERS[name](copy.deepcopy(REPORT))
    path = GOLDEN / name
    if os.environ.get("NBGUARD_UPDATE_GOLDEN") == "1":
        path.write_text(rendered, encoding="utf-8", newline="\n")
    assert rendered == path.read_text(encoding="utf-8")


def _notebook(
    path: str,
    verdict: str,
    after: str = "",
    runs: dict[str, Any] | None = None,
    verdicts: dict[str, str] | None = None,
) -> dict[str, Any]:
    def run(status: str = "ok") -> dict[str, Any]:
        return {
            "status": status,
            "duration_s": 2.0,
            "error": None,
            "later_errors": [],
            "reason": None,
            "warnings": [],
        }

    changes = [
        {"env": "upcoming", "cell": 1, "kind": "text", "before": "x", "after": after, "applied": []}
    ]
    return {
        "path": path,
        "verdict": verdict,
        "verdicts": verdicts or {"upcoming": verdict},
        "skip_reason": None,
        "runs": runs or {"locked": run(), "upcoming": run()},
        "changes": changes if after else [],
        "culprit": None,
        "foreshadowing": [],
        "hints": [],
    }


def _report(*notebooks: dict[str, Any], **settings: Any) -> dict[str, Any]:
    envs = {
        name: {"python": "3.11.7", "packages": {"a": version}, "error": None}
        for name, version in (("locked", "1"), ("upcoming", "2"))
    }
    return {
        "schema": "nbguard-report/2",
        "course": "/c",
        "baseline": "locked",
        "duration_s": 1.0,
        "envs": envs,
        "summary": {},
        "notebooks": list(notebooks),
        "settings": settings,
    }


def test_junit_parses_with_the_counts() -> None:
    root = ET.fromstring(junit.render(REPORT).encode("utf-8"))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["nbguard [upcoming vs locked]"]
    cases = suites[0].findall("testcase")
    assert len(cases) == len(REPORT["notebooks"])
    # broken (2) and changed (4) fail; skipped (2) and already-broken (1) are skipped; nbguard's
    # own failure is an error.
    assert len(root.findall(".//failure")) == 6 == int(suites[0].get("failures", ""))
    assert len(root.findall(".//skipped")) == 3 == int(suites[0].get("skipped", ""))
    assert len(root.findall(".//error")) == 1 == int(suites[0].get("errors", ""))
    assert root.get("errors") == "1"
    hw01 = next(c for c in cases if c.get("name") == "homework/hw01_averages.ipynb [upcoming]")
    assert hw01.get("classname") == "homework"
    failure = hw01.find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "cell 3: AttributeError: module 'wobble' has no attribute 'old_mean'"
    )
    props = {p.get("name"): p.get("value") for p in hw01.iter("property")}
    assert props["culprit.package"] == "nbguard-demo-wobble"
    assert (props["culprit.from"], props["culprit.to"]) == ("1.0", "2.0")


def test_junit_follows_allow_changed_and_strict() -> None:
    allowed = copy.deepcopy(REPORT)
    allowed["settings"]["allow-changed"] = True
    root = ET.fromstring(junit.render(allowed))
    assert len(root.findall(".//failure")) == 2  # only the broken ones
    strict = copy.deepcopy(REPORT)
    strict["settings"]["strict"] = True
    root = ET.fromstring(junit.render(strict))
    # ...and now warnings and already-broken fail too, as the exit code does.
    assert len(root.findall(".//failure")) == 8


def test_junit_one_suite_per_env_with_its_own_verdict_and_time() -> None:
    ok = {"status": "ok", "duration_s": 3.5, "error": None, "warnings": []}
    error = {"cell": 2, "ename": "ImportError", "evalue": "no numpy.matrix"}
    broken = {**ok, "status": "error", "duration_s": 1.25, "error": error}
    nb = _notebook(
        "intro.ipynb",
        "broken",
        runs={"locked": ok, "upcoming": ok, "pre": broken},
        verdicts={"upcoming": "ok", "pre": "broken"},
    )
    data = _report(nb)
    data["envs"]["pre"] = {"python": "3.13", "packages": {}, "error": None}
    root = ET.fromstring(junit.render(data))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"nbguard [upcoming vs locked]", "nbguard [pre vs locked]"}
    up = suites["nbguard [upcoming vs locked]"].find("testcase")
    pre = suites["nbguard [pre vs locked]"].find("testcase")
    assert up is not None and pre is not None
    assert (up.get("name"), up.get("time"), up.find("failure")) == (
        "intro.ipynb [upcoming]",
        "3.500",
        None,
    )
    assert pre.get("classname") == "(course root)" and pre.get("time") == "1.250"
    failure = pre.find("failure")
    assert failure is not None and failure.get("message") == "cell 2: ImportError: no numpy.matrix"


def test_junit_strips_characters_invalid_in_xml() -> None:
    text = junit.render(_report(_notebook("a.ipynb", "changed", "nul\x00 vt\x0b esc\x1b[0m ok")))
    assert "\x00" not in text and "\x0b" not in text and "\x1b" not in text
    failure = ET.fromstring(text).find(".//failure")
    assert failure is not None and "nul vt esc ok" in (failure.text or "")


def test_markdown_escapes_pipes_and_script_from_outputs() -> None:
    md = markdown.render(_report(_notebook("a|b.ipynb", "changed", "<script>x()</script> | y")))
    row = next(line for line in md.splitlines() if line.startswith("| a"))
    assert row.startswith("| a\\|b.ipynb | changed |")
    assert "&lt;script&gt;x()&lt;/script&gt; \\| y" in row
    assert row.replace("\\|", "").count("|") == 5  # four columns, not five
    assert "<script" not in _prose(md)


def _prose(md: str) -> str:
    """The Markdown outside code blocks: where GitHub would interpret HTML."""
    outside: list[str] = []
    fence = ""
    for line in md.splitlines():
        if fence and line == fence:
            fence = ""
        elif not fence and line.startswith("```"):
            fence = line.removesuffix("diff")
        elif not fence:
            outside.append(line)
    return "\n".join(outside)


def test_markdown_never_emits_output_html_outside_code() -> None:
    md = markdown.render(REPORT)
    prose = _prose(md)
    assert XSS not in prose and "<script" not in prose and "<img" not in prose
    assert f"+{XSS}" in md  # shown, but only inside a diff block
    assert "@octocat" not in prose  # no mention pings in a PR comment


def test_markdown_fence_outlasts_backticks_in_outputs() -> None:
    md = markdown.render(_report(_notebook("a.ipynb", "changed", "````\n" + XSS)))
    assert "`````diff" in md  # five: longer than the four in the output


def test_markdown_stays_under_its_size_limit() -> None:
    many = [_notebook(f"nb{i:04d}.ipynb", "changed", "line\n" * 300) for i in range(300)]
    md = markdown.render(_report(*many), max_bytes=60_000)
    assert len(md.encode()) <= 60_000
    assert "left out to stay under the size limit" in md
    assert md.rstrip().endswith("|")  # the envs table still closes the summary


def test_annotations_escape_newlines_and_properties() -> None:
    error = {"cell": 1, "ename": "ValueError", "evalue": "50% done\r\nthen: fail"}
    broken = {"status": "error", "duration_s": 1.0, "error": error, "warnings": []}
    nb = _notebook(
        "dir,x/a:b.ipynb", "broken", runs={"locked": {"status": "ok"}, "upcoming": broken}
    )
    (line,) = github.annotations(_report(nb), prefix="course/")
    assert line == (
        "::error file=course/dir%2Cx/a%3Ab.ipynb,title=nbguard broken::"
        "upcoming: cell 1: ValueError: 50%25 done"
    )
    nb["runs"]["upcoming"]["error"]["evalue"] = "one"
    nb["hints"] = [{"cell": 1, "hint": "two\nthree"}]
    (line,) = github.annotations(_report(nb))
    assert "\n" not in line and "\r" not in line
    assert line.endswith("::upcoming: cell 1: ValueError: one%0Afix (cell 1): two%0Athree")


def test_annotations_skip_quiet_verdicts() -> None:
    levels = [line.split(" ", 1)[0] for line in github.annotations(REPORT)]
    assert levels == ["::error"] * 3 + ["::warning"] * 4 + ["::notice", "::warning"]


# --- one diff, drawn alike by every renderer -----------------------------------------------------

FIT = "lectures/07_fit_table.ipynb"


def _diff_block(md: str, path: str) -> list[str]:
    section = md[md.index(f"<b>{path}</b>") :]
    block = section[section.index("```diff\n") + len("```diff\n") :]
    return block[: block.index("\n```")].split("\n")


def test_a_multi_line_change_is_one_diff_of_the_two_texts() -> None:
    lines = _diff_block(markdown.render(REPORT), FIT)

    # Not a diff of a diff: no summary or hunk header shown as an added line.
    assert not any(line.startswith(("+@@", "+-", "++ ", "+ ")) for line in lines)
    # Only the row that moved is marked; the others changed within tolerance (realigned,
    # float noise) and are context.
    assert [line for line in lines[3:] if line[:1] in "-+"] == [
        "-1         x1 -0.25 -2.220446e-16",
        "+1         x1 -0.31    0.0",
    ]


def test_junit_draws_the_same_diff_as_markdown() -> None:
    root = ET.fromstring(junit.render(REPORT))
    case = next(c for c in root.iter("testcase") if c.get("name", "").startswith(FIT))
    failure = case.find("failure")
    assert failure is not None
    assert "\n".join(_diff_block(markdown.render(REPORT), FIT)) in (failure.text or "")
    assert "cell 2: value: -0.25 → -0.31 (rel 24%), line 3" in (failure.text or "")


# --- nbguard's own failure --------------------------------------------------------------------

BOOM = "nbguard internal error while comparing: RuntimeError: boom"


def test_markdown_shows_nbguards_own_failure_with_its_traceback() -> None:
    md = markdown.render(REPORT)
    row = next(line for line in md.splitlines() if line.startswith("| labs/lab04"))
    assert f"| **internal-error** | {BOOM} &lt;script&gt;" in row
    # The traceback is in a code block: shown as it is, never interpreted.
    assert '```\nTraceback (most recent call last):\n  File "nbguard/pipeline.py"' in md
    assert "<script" not in _prose(md)


def test_junit_reports_nbguards_own_failure_as_an_error() -> None:
    root = ET.fromstring(junit.render(REPORT))
    case = next(c for c in root.iter("testcase") if c.get("name", "").startswith("labs/lab04"))
    error = case.find("error")
    assert error is not None and case.find("failure") is None
    assert (error.get("type"), error.get("message", "")[: len(BOOM)]) == ("internal-error", BOOM)
    assert (error.text or "").startswith("Traceback (most recent call last):")


def test_annotations_put_nbguards_own_failure_first_as_an_error() -> None:
    first = github.annotations(REPORT)[0]
    assert first.startswith("::error file=labs/lab04_fourier.ipynb,title=nbguard internal-error::")
    assert BOOM in first


# --- the terminal, from the JSON report -----------------------------------------------------


def _terminal(data: Any, width: int = 300) -> str:
    out = io.StringIO()
    terminal.render(data, Console(file=out, width=width, color_system=None), "report.json")
    return out.getvalue()


def test_terminal_renders_the_json_report_worst_first() -> None:
    shown = _terminal(copy.deepcopy(REPORT))

    rows = [nb["path"] for nb in REPORT["notebooks"]]
    order = sorted(rows, key=shown.index)
    assert order[:3] == [
        "labs/lab04_fourier.ipynb",
        "homework/hw01_averages.ipynb",
        "labs/lab03_slow|fit.ipynb",
    ]
    assert f"{BOOM} <script>alert(1)</script> — see the JSON report" in shown
    assert "cell 2: value: -0.25 → -0.31 (rel 24%), line 3" in shown
    assert "1 internal-error, 2 broken, 4 changed" in shown
    assert shown.rstrip().endswith("report: report.json")


def test_terminal_shows_rich_markup_from_outputs_as_text() -> None:
    data = _report(_notebook("[red]a[/red].ipynb", "changed", "[blink]x[/blink] [link=y]z[/link]"))

    shown = _terminal(data)

    assert "[red]a[/red].ipynb" in shown
    assert "[blink]x[/blink] [link=y]z[/link]" in shown


def test_terminal_re_renders_a_report_read_back(tmp_path: Path) -> None:
    path = tmp_path / "nbguard-report.json"
    json_report.write(REPORT, path)

    assert _terminal(json_report.read(path)) == _terminal(copy.deepcopy(REPORT))
