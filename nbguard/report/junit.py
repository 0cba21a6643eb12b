"""JUnit XML for CI test reporters (GitHub, GitLab, Jenkins), from the JSON report alone."""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from nbguard.ansi import strip_ansi
from nbguard.report.text import (
    change_diff,
    change_line,
    error_line,
    first_line,
    internal_error,
    internal_line,
    note_lines,
)

# XML 1.0 allows only tab, LF, CR and these ranges; one NUL in a notebook's output would
# otherwise make the whole file unparsable for the reporter.
_INVALID_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MAX_TEXT = 20_000  # per failure body: reporters show it inline, the JSON report has it all


def clean(value: object) -> str:
    """Text safe in an XML 1.0 document (ElementTree escapes markup, not these)."""
    return _INVALID_XML.sub("", strip_ansi("" if value is None else str(value)))


def _classname(path: str) -> str:
    """The notebook's folder, dotted as reporters group classnames into packages."""
    folder = posixpath.dirname(path)
    return folder.replace("/", ".") if folder else "(course root)"


def _culprit_text(culprit: Mapping[str, Any]) -> str:
    return (
        f"culprit: {culprit.get('package')} {culprit.get('from') or '—'} → "
        f"{culprit.get('to') or '—'} ({culprit.get('evidence')}): {culprit.get('reason') or ''}"
    )


def _body(nb: Mapping[str, Any], env: str, baseline: str) -> str:
    """The failure's text: what a reporter's expanded row should tell the reader."""
    runs: Mapping[str, Mapping[str, Any]] = nb.get("runs") or {}
    lines: list[str] = []
    for name in (baseline, env):
        run = runs.get(name) or {}
        error = run.get("error")
        if run.get("status") not in {None, "ok", "skipped"}:
            lines.append(f"{name}: {run.get('status')}: {error_line(run)}")
            if error and "\n" in str(error.get("evalue", "")).strip():
                lines.append(str(error["evalue"]))
            if run.get("reason") and error:
                lines.append(f"{name}: {run['reason']}")
            lines += [
                f"{name}: later, cell {e['cell']}: {e['ename']}: {first_line(e['evalue'])}"
                for e in run.get("later_errors") or []
            ]
    for change in nb.get("changes") or []:
        if change.get("env") != env:
            continue
        lines.append(f"cell {change['cell']}: {change_line(change)}")
        if change.get("kind") != "image":  # base64 pictures help no one in a test report
            lines.append(change_diff(change, baseline))
    lines += note_lines(nb)
    for record in nb.get("foreshadowing") or []:
        lines.append(
            f"{baseline} already warned, cell {record['cell']}: "
            f"{record['category']}: {record['message']}"
        )
    for name in (env, baseline):
        for record in (runs.get(name) or {}).get("warnings") or []:
            if record in (nb.get("foreshadowing") or []):
                continue
            lines.append(
                f"{name} warns, cell {record['cell']}: {record['category']}: {record['message']}"
            )
    lines += [f"fix (cell {h['cell']}): {h['hint']}" for h in nb.get("hints") or []]
    if nb.get("culprit"):
        lines.append(_culprit_text(nb["culprit"]))
    text = clean("\n".join(lines))
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n… truncated"


def _message(nb: Mapping[str, Any], verdict: str, env: str, baseline: str) -> str:
    runs: Mapping[str, Mapping[str, Any]] = nb.get("runs") or {}
    if verdict == "broken" and (runs.get(env) or {}).get("status") != "ok":
        return error_line(runs[env])
    if verdict in {"already-broken", "fixed"}:
        return f"{verdict}: {baseline} {error_line(runs.get(baseline) or {})}"
    changes = [c for c in nb.get("changes") or [] if c.get("env") == env]
    if verdict in {"broken", "changed"} and changes:
        first = changes[0]
        more = f" (+{len(changes) - 1} more)" if len(changes) > 1 else ""
        return f"{verdict}: cell {first['cell']}: {first['kind']}{more}"
    return verdict


def _testcase(
    nb: Mapping[str, Any], env: str, baseline: str, settings: Mapping[str, Any]
) -> tuple[ET.Element, str]:
    """One notebook in one env; returns the element and its outcome (passed, failure, error
    or skipped)."""
    runs: Mapping[str, Mapping[str, Any]] = nb.get("runs") or {}
    run = runs.get(env) or {}
    # A notebook's overall verdict is its worst env; the per-env one belongs in that env's suite.
    verdict = (nb.get("verdicts") or {}).get(env) or nb["verdict"]
    case = ET.Element(
        "testcase",
        {
            # The env is in the name too: GitLab merges all suites into one list and would
            # fold same-named cases of two envs together.
            "name": clean(f"{nb['path']} [{env}]"),
            "classname": clean(_classname(nb["path"])),
            "time": f"{float(run.get('duration_s') or 0):.3f}",
        },
    )
    culprit = nb.get("culprit")
    if culprit and verdict in {"broken", "changed"}:
        props = ET.SubElement(case, "properties")
        for key in ("package", "from", "to", "evidence", "reason"):
            ET.SubElement(
                props,
                "property",
                {"name": f"culprit.{key}", "value": clean(culprit.get(key) or "")},
            )
    if verdict == "internal-error":
        # nbguard's own failure, not the notebook's: an <error>, as a test that could not run.
        error = internal_error(nb, env) or {}
        message = f"{internal_line(error)} (a bug in nbguard, not in the notebook)"
        element = ET.SubElement(case, "error", {"message": clean(message), "type": verdict})
        element.text = clean(error.get("traceback"))
        return case, "error"
    strict = bool(settings.get("strict"))
    # JUnit failures mirror nbguard's exit code, so the reporter's red check and the job's
    # status never disagree: changed fails unless allow-changed; warnings and
    # already-broken fail only with strict.
    fails = (
        verdict == "broken"
        or (verdict == "changed" and not settings.get("allow-changed"))
        or (verdict in {"warnings", "already-broken"} and strict)
    )
    message = clean(_message(nb, verdict, env, baseline))
    if fails:
        failure = ET.SubElement(case, "failure", {"message": message, "type": verdict})
        failure.text = _body(nb, env, baseline)
        return case, "failure"
    if verdict in {"skipped", "already-broken"}:
        # already-broken is not a regression and does not fail the run; as skipped with its
        # error as the message, reporters still list it (a pass would hide it entirely).
        reason = nb.get("skip_reason") or run.get("reason") or "skipped"
        shown = message if verdict == "already-broken" else clean(reason)
        ET.SubElement(case, "skipped", {"message": shown})
        return case, "skipped"
    body = _body(nb, env, baseline)
    if body:  # warnings, fixed, allowed changes: passing, with what to know in the output
        out = ET.SubElement(case, "system-out")
        out.text = f"{verdict}\n{body}"
    return case, "passed"


# A test case's outcome → the <testsuite> attribute that counts it.
_COUNTED = {"failure": "failures", "error": "errors", "skipped": "skipped"}


def render(data: Mapping[str, Any]) -> str:
    """One <testsuite> per env compared with the baseline, one <testcase> per notebook."""
    baseline = str(data.get("baseline", ""))
    settings: Mapping[str, Any] = data.get("settings") or {}
    envs = [name for name in data.get("envs") or {} if name != baseline]
    root = ET.Element("testsuites", {"name": "nbguard"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for env in envs:
        suite = ET.SubElement(root, "testsuite", {"name": clean(f"nbguard [{env} vs {baseline}]")})
        if data.get("created"):
            suite.set("timestamp", clean(data["created"]))
        props = ET.SubElement(suite, "properties")
        for name in (baseline, env):
            info = (data.get("envs") or {}).get(name) or {}
            ET.SubElement(
                props, "property", {"name": f"{name}.python", "value": clean(info.get("python"))}
            )
        counts = dict.fromkeys(totals, 0)
        time = 0.0
        for nb in data.get("notebooks") or []:
            case, outcome = _testcase(nb, env, baseline, settings)
            suite.append(case)
            counts["tests"] += 1
            time += float(case.get("time") or 0)
            if outcome != "passed":
                counts[_COUNTED[outcome]] += 1
        for key, count in counts.items():
            suite.set(key, str(count))
            totals[key] += count
        suite.set("time", f"{time:.3f}")
        total_time += time
    for key, count in totals.items():
        root.set(key, str(count))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
