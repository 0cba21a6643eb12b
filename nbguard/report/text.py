"""Short texts the report renderers share, read from the JSON report's dicts: a run's error, a
change's line and diff, nbguard's own failure, the order notebooks are listed in."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from nbguard.compare.text import unified_diff
from nbguard.model import VERDICTS, Tolerance


def first_line(value: object, limit: int = 200) -> str:
    """The first line of a text, cut to `limit` characters with an ellipsis."""
    stripped = str(value or "").strip()
    line = stripped.splitlines()[0] if stripped else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_line(run: Mapping[str, Any]) -> str:
    """`cell 3: AttributeError: …` for a failed run, else its reason or status."""
    error = run.get("error")
    if error:
        return f"cell {error['cell']}: {error['ename']}: {first_line(error['evalue'])}"
    return first_line(run.get("reason") or run.get("status") or "")


def worst_first(notebooks: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Notebooks from the most severe verdict (model.VERDICTS) to the least, then by path;
    a verdict this nbguard does not know comes last."""

    def rank(nb: Mapping[str, Any]) -> tuple[int, str]:
        verdict = nb.get("verdict")
        known = VERDICTS.index(verdict) if verdict in VERDICTS else len(VERDICTS)
        return known, str(nb.get("path", ""))

    return sorted(notebooks, key=rank)


def parameters_line(nb: Mapping[str, Any]) -> str | None:
    """`parameters: n_points=50, seed=1`: what the notebook ran with; None without any."""
    values = nb.get("parameters")
    if not isinstance(values, Mapping) or not values:
        return None
    shown = ", ".join(
        f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in values.items()
    )
    return f"parameters: {first_line(shown, 200)}"


# --- nbguard's own failure ----------------------------------------------------------------


def internal_error(nb: Mapping[str, Any], env: str | None = None) -> Mapping[str, Any] | None:
    """What nbguard's own code raised on a notebook: `env`'s run's when it has one, else the
    notebook's, else any run's; None when nbguard did not fail on it."""
    runs: Mapping[str, Mapping[str, Any]] = nb.get("runs") or {}
    found: Mapping[str, Any] | None = (runs.get(env) or {}).get("internal_error") if env else None
    found = found or nb.get("internal_error")
    return found or next(
        (r["internal_error"] for r in runs.values() if r.get("internal_error")), None
    )


def internal_line(error: Mapping[str, Any]) -> str:
    """`nbguard internal error while comparing: RuntimeError: boom`."""
    return (
        f"nbguard internal error while {error.get('stage') or 'checking it'}: "
        f"{error.get('ename')}: {first_line(error.get('message'))}"
    )


# --- changes ------------------------------------------------------------------------------


def change_line(change: Mapping[str, Any]) -> str:
    """One line for a change: its kind and summary, or `before → after` when both are short."""
    kind = change.get("kind")
    before, after = str(change.get("before") or ""), str(change.get("after") or "")
    if change.get("summary"):
        return f"{kind}: {first_line(change['summary'], 100)}"
    if kind == "missing-output":
        return f"output gone: {first_line(before, 60)}"
    if kind == "new-output":
        return f"new output: {first_line(after, 60)}"
    short = [t.strip() for t in (before, after) if "\n" not in t.strip() and len(t) < 60]
    if len(short) == 2 and all(short):
        return f"{kind}: {short[0]} → {short[1]}"
    return f"{kind}: {first_line(after or before, 80)}"


def note_lines(nb: Mapping[str, Any]) -> list[str]:
    """`cell 1: volatile — differs between two locked runs (…)`: each difference the
    comparison saw and did not count, and why."""
    notes = [note for note in nb.get("notes") or [] if isinstance(note, Mapping)]
    return [
        f"cell {n.get('cell')}: {n.get('kind')} — {first_line(n.get('text'), 160)}" for n in notes
    ]


def rerun_line(data: Mapping[str, Any]) -> str | None:
    """What telling volatile outputs from changes cost: the notebooks run once more."""
    notebooks = [nb for nb in data.get("notebooks") or [] if isinstance(nb, Mapping)]
    done: list[list[Mapping[str, Any]]] = []
    for nb in notebooks:
        runs = nb.get("volatile_reruns")
        if not isinstance(runs, list):  # a report from before there could be several
            runs = [nb.get("volatile_rerun")]
        runs = [run for run in runs if isinstance(run, Mapping)]
        if runs:
            done.append(runs)
    if not done:
        return None
    seconds = sum(float(run.get("duration_s") or 0) for runs in done for run in runs)
    firsts = sorted({str(runs[0].get("env")) for runs in done})
    line = (
        f"volatile outputs: {len(done)} notebooks whose outputs differed ran once more in "
        f"{', '.join(firsts)}"
    )
    again = [run for runs in done for run in runs[1:]]
    if again:
        where = ", ".join(sorted({str(run.get("env")) for run in again}))
        line += f", {len(again)} with only numbers still apart once more in {where}"
    return f"{line} ({seconds:.1f}s of kernel time)"


def tolerance(change: Mapping[str, Any]) -> Tolerance | None:
    """The tolerance a change's texts were compared with; None when compared as they are."""
    found = change.get("tolerance")
    if not isinstance(found, Mapping):
        return None
    return Tolerance.from_metadata(dict(found))


def change_diff(change: Mapping[str, Any], baseline: str) -> str:
    """A change as a unified diff from the baseline's text to the other env's, marking only the
    lines the comparison found changed (the one diff of nbguard.compare.text)."""
    return unified_diff(
        str(change.get("before") or ""),
        str(change.get("after") or ""),
        tolerance(change),
        labels=(baseline, str(change.get("env"))),
    )
