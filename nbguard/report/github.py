"""GitHub Actions workflow commands (annotations on the notebook), from the JSON report alone."""

# No `from __future__ import annotations`: that import binds the name `annotations`, which
# this module's public function needs (Python 3.10+ evaluates these hints fine at runtime).
import posixpath
from collections.abc import Mapping
from typing import Any

from nbguard.report.text import (
    change_line,
    error_line,
    first_line,
    internal_error,
    internal_line,
    worst_first,
)

MAX_LINES = 12  # one annotation's message; GitHub shows it folded, the report has the rest


def escape_data(value: str) -> str:
    """The message after `::`, as @actions/core escapes it."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """A `key=value` property: also `:` and `,`, which would end the value early."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _culprit(nb: Mapping[str, Any]) -> list[str]:
    culprit = nb.get("culprit")
    if not culprit:
        return []
    return [
        f"culprit: {culprit.get('package')} {culprit.get('from') or '—'} → "
        f"{culprit.get('to') or '—'} ({culprit.get('evidence')})"
    ]


def _new_warnings(nb: Mapping[str, Any], baseline: str) -> list[str]:
    """What the upcoming envs warn about that the baseline does not: the coming breakage."""
    runs: Mapping[str, Mapping[str, Any]] = nb.get("runs") or {}
    known = {(r["category"], r["message"]) for r in (runs.get(baseline) or {}).get("warnings", [])}
    lines: list[str] = []
    for name, run in runs.items():
        for record in run.get("warnings") or []:
            key = (record["category"], record["message"])
            if name == baseline or key in known:
                continue
            known.add(key)
            lines.append(f"{name} cell {record['cell']}: {key[0]}: {first_line(key[1])}")
    if not lines:  # only the baseline warns: still about the course's code, so say it
        lines = [
            f"{baseline} cell {r['cell']}: {r['category']}: {first_line(r['message'])}"
            for r in (runs.get(baseline) or {}).get("warnings", [])
        ]
    return lines


def _message(nb: Mapping[str, Any], baseline: str) -> list[str]:
    verdict = nb["verdict"]
    runs: Mapping[str, Mapping[str, Any]] = nb.get("runs") or {}
    lines: list[str] = []
    internal = internal_error(nb)
    if internal is not None:
        lines.append(
            f"{internal_line(internal)} (a bug in nbguard; the JSON report has its traceback)"
        )
    if verdict == "broken":
        lines += [
            f"{name}: {error_line(run)}"
            for name, run in runs.items()
            if name != baseline and run.get("status") not in {"ok", "skipped"}
        ]
        lines += [
            f"{baseline} already warned, cell {r['cell']}: {r['category']}: "
            f"{first_line(r['message'])}"
            for r in nb.get("foreshadowing") or []
        ]
    elif verdict == "already-broken":
        lines.append(f"fails in {baseline} too: {error_line(runs.get(baseline) or {})}")
    if verdict in {"broken", "changed"}:
        for change in nb.get("changes") or []:
            if verdict == "broken" and change.get("kind") == "error":
                continue  # the error line above says it
            lines.append(f"{change.get('env')} cell {change['cell']}: {change_line(change)}")
    if verdict == "warnings":
        lines += _new_warnings(nb, baseline)
    lines += [f"fix (cell {h['cell']}): {h['hint']}" for h in nb.get("hints") or []]
    lines += _culprit(nb)
    if len(lines) > MAX_LINES:
        lines = [*lines[: MAX_LINES - 1], f"… {len(lines) - MAX_LINES + 1} more in the report"]
    return lines


def _level(verdict: str, strict: bool) -> str | None:
    if verdict in {"internal-error", "broken"}:
        return "error"
    if verdict == "changed":
        return "warning"  # the diff needs a person's judgement; the exit code still fails
    if verdict == "warnings":
        return "error" if strict else "warning"
    if verdict == "already-broken":
        # Not a regression: a notice keeps it visible without crying wolf, unless --strict
        # makes it fail the run.
        return "error" if strict else "notice"
    return None  # ok, fixed, skipped: nothing to point at


def annotations(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """One workflow command per notebook worth a look, worst first (GitHub shows only the
    first 10 errors and 10 warnings of a step).

    `prefix` is the course's folder relative to the repository root: report paths are
    relative to the course, GitHub's `file=` to the repository.
    """
    baseline = str(data.get("baseline", ""))
    strict = bool((data.get("settings") or {}).get("strict"))
    commands: list[str] = []
    for nb in worst_first(data.get("notebooks") or []):
        level = _level(nb["verdict"], strict)
        if level is None:
            continue
        path = posixpath.normpath(posixpath.join(prefix, nb["path"])) if prefix else nb["path"]
        title = f"nbguard {nb['verdict']}"
        message = "\n".join(_message(nb, baseline)) or nb["verdict"]
        commands.append(
            f"::{level} file={escape_property(path)},title={escape_property(title)}"
            f"::{escape_data(message)}"
        )
    return commands
