"""The JSON report: the versioned contract other tools and CI read (DESIGN.md)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbguard import __version__
from nbguard.errors import ConfigError
from nbguard.model import NotebookReport, NotebookRun, Report
from nbguard.secret_env import REDACTED, redactor

# /2: a change's `before` and `after` are the two texts compared, with `summary` and
# `tolerance` beside them; notebooks and runs carry `internal_error`. /1 is still read.
SCHEMA = "nbguard-report/2"
_SCHEMA_1 = "nbguard-report/1"


def to_json(report: Report) -> dict[str, Any]:
    return redact(_report(report))


def redact(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with every value of a secret-looking variable of nbguard's environment
    replaced by ***: a last line of defence against a notebook that printed one."""
    pattern = redactor()
    if pattern is None:
        return dict(data)
    cleaned: dict[str, Any] = _redact(data, pattern)
    return cleaned


def _redact(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {_redact(key, pattern): _redact(item, pattern) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, pattern) for item in value]
    return value


def _report(report: Report) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "nbguard_version": __version__,
        "created": report.created,
        "course": report.course,
        "baseline": report.baseline,
        "interrupted": report.interrupted,
        "duration_s": round(report.duration_s, 3),
        "envs": {
            name: {
                "python": env.python,
                "packages": dict(sorted(env.packages.items())),
                "requirements": list(env.requirements),
                "fingerprint": env.fingerprint,
                "reused": env.reused,
                "build_s": round(env.build_s, 3),
                "error": env.error,
                # Only where there is something to say (a preset that left packages out).
                **({"notes": list(env.notes)} if env.notes else {}),
            }
            for name, env in report.envs.items()
        },
        "summary": report.summary,
        "notebooks": [_notebook(nb) for nb in report.notebooks],
        "settings": report.settings,
        "blame": report.blame.to_json() if report.blame else None,
    }


def _notebook(nb: NotebookReport) -> dict[str, Any]:
    culprit = nb.culprit
    return {
        "path": nb.path,
        "verdict": nb.verdict,
        "verdicts": {c.env: c.verdict for c in nb.comparisons},
        "skip_reason": nb.skip_reason,
        "runs": {name: _run(run) for name, run in nb.runs.items()},
        "changes": [change.to_json() for change in nb.changes],
        "culprit": culprit.to_json() if culprit else None,
        "hidden_breaks": [hidden.to_json() for hidden in nb.hidden_breaks],
        "foreshadowing": [record.to_json() for record in nb.foreshadowing],
        "hints": [hint.to_json() for hint in nb.hints],
        "internal_error": nb.internal.to_json() if nb.internal else None,
        "fix": nb.fix.to_json() if nb.fix else None,
        "parameters": dict(nb.parameters),
        "notes": [note.to_json() for note in nb.notes],
        # The first one (in the baseline env) also alone, as nbguard-report/2 had it.
        "volatile_rerun": _rerun(nb.reruns[0]) if nb.reruns else None,
        "volatile_reruns": [_rerun(run) for run in nb.reruns],
    }


def _rerun(run: NotebookRun) -> dict[str, Any]:
    return {"env": run.env, "status": run.status, "duration_s": round(run.duration_s, 3)}


def _run(run: NotebookRun) -> dict[str, Any]:
    return {
        "status": run.status,
        "duration_s": round(run.duration_s, 3),
        "error": run.error.to_json() if run.error else None,
        "later_errors": [error.to_json() for error in run.later_errors],
        "reason": run.reason,
        "warnings": [record.to_json() for record in run.warnings],
        "internal_error": run.internal.to_json() if run.internal else None,
        "isolation": run.isolation,
        "cached": run.cached,
        # The env whose run stands for this one: everything it used is the same here.
        "reused_from": run.reused_from,
    }


def write(report: Report | Mapping[str, Any], path: Path) -> None:
    """The report (or its JSON, as `nbguard run --since-report` extends it) as a file."""
    data = to_json(report) if isinstance(report, Report) else redact(report)
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write atomically: a reader (or a Ctrl-C) never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".nbguard-report-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        # mkstemp makes the file private (0600); a report is for CI artifacts and colleagues.
        umask = os.umask(0)
        os.umask(umask)
        Path(tmp).chmod(0o666 & ~umask)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> dict[str, Any]:
    """A report written by nbguard, for re-rendering; one clear line when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("nbguard-report/"):
        raise ConfigError(f"{path}: not an nbguard report (no nbguard-report schema)")
    if data["schema"] not in (SCHEMA, _SCHEMA_1):
        raise ConfigError(
            f"{path}: report schema {data['schema']}; this nbguard reads {SCHEMA} and {_SCHEMA_1}"
        )
    return upgrade(data)


def upgrade(data: Mapping[str, Any]) -> dict[str, Any]:
    """A report of an earlier schema in the current one, for the renderers; `upgraded_from`
    names the schema it was written in."""
    if data.get("schema") != _SCHEMA_1:
        return dict(data)
    notebooks = [
        {**nb, "changes": [_change_from_1(change) for change in nb.get("changes") or []]}
        for nb in data.get("notebooks") or []
    ]
    return {**data, "schema": SCHEMA, "upgraded_from": _SCHEMA_1, "notebooks": notebooks}


def _change_from_1(change: Mapping[str, Any]) -> dict[str, Any]:
    """/1 kept a long text change as an excerpt of the old text in `before` and, in `after`, a
    summary line above a unified diff: both texts are rebuilt from that diff, so the one diff
    draws it again. An image's description was the line under the new picture's."""
    upgraded: dict[str, Any] = {"summary": None, "tolerance": None, **change}
    after = change.get("after")
    lines = after.split("\n") if isinstance(after, str) else []
    if len(lines) > 1 and lines[1].startswith("@@ -"):
        old: list[str] = []
        new: list[str] = []
        for line in lines[1:]:
            if line.startswith("@@ "):
                if old or new:  # between two hunks: lines that did not change, left out
                    old.append("…")
                    new.append("…")
            elif line[:1] in ("-", "+", " "):
                if line[0] != "+":
                    old.append(line[1:])
                if line[0] != "-":
                    new.append(line[1:])
            else:  # "… 12 more lines" under a capped diff
                old.append(line)
                new.append(line)
        upgraded.update(summary=lines[0], before="\n".join(old), after="\n".join(new))
    elif change.get("kind") == "image" and len(lines) > 1:
        upgraded.update(after=lines[0], summary="\n".join(lines[1:]))
    return upgraded
