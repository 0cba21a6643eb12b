"""Compares a notebook's baseline run with another env's run: the verdict and what changed."""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
from collections.abc import Callable, Sequence
from typing import TypeAlias

from nbguard.model import VERDICTS, Change, Comparison, NotebookRun, Output, Verdict
from nbguard.normalize import (
    is_binary_mime,
    mask_volatile_numbers,
    normalize_outputs,
    normalize_text,
)

# Decides whether two normalized payloads of the same mime type (or error field, "ename" /
# "evalue") are equal. This is the extension point for tolerance: a comparator that accepts
# close floats in text/plain, or similar images, replaces `exact_equal` without touching the
# alignment and reporting below.
ValueEqual: TypeAlias = Callable[[str, str, str], bool]

# Keeps a report readable when an output is a 10,000-row DataFrame.
_MAX_CHARS = 2000
# How much unchanged text to show before the first difference of a long output.
_CONTEXT_CHARS = 300


def exact_equal(mime: str, before: str, after: str) -> bool:
    """The default comparator: normalized text must be identical, images byte for byte."""
    return before == after


def compare_runs(
    baseline: NotebookRun, other: NotebookRun, *, equal: ValueEqual = exact_equal
) -> Comparison:
    """The verdict on `other` measured against `baseline`, with the cell-level changes."""

    def comparison(verdict: Verdict, changes: Sequence[Change] = ()) -> Comparison:
        return Comparison(
            notebook=baseline.notebook,
            baseline=baseline.env,
            env=other.env,
            verdict=verdict,
            changes=tuple(changes),
        )

    if baseline.status == "skipped" or other.status == "skipped":
        return comparison("skipped")
    if not baseline.failed and not other.failed:
        changes = _output_changes(baseline, other, equal)
        if changes:
            return comparison("changed", changes)
        if baseline.warnings or other.warnings:
            return comparison("warnings")
        return comparison("ok")
    if not other.failed:
        return comparison("fixed", [_fixed_change(baseline, other)])
    if baseline.failed and _failure_signature(baseline) == _failure_signature(other):
        return comparison("already-broken")
    # A new failure, possibly hiding behind an old one. Outputs that differ in cells both
    # runs completed come first: they are often the first sign of what went wrong.
    stop = _failure_cell(other)
    if baseline.failed:
        stop = min(stop, _failure_cell(baseline))
    return comparison(
        "broken",
        [*_output_changes(baseline, other, equal, stop=stop), _error_change(baseline, other)],
    )


def notebook_verdict(comparisons: Sequence[Comparison]) -> Verdict:
    """The worst verdict across envs; `skipped` only when every comparison is skipped."""
    if not comparisons:
        raise ValueError("a notebook verdict needs at least one comparison with the baseline")
    # VERDICTS runs from most to least severe, with skipped last, so the minimum rank wins.
    return min((c.verdict for c in comparisons), key=VERDICTS.index)


# --- outputs -------------------------------------------------------------------------------


def _output_changes(
    baseline: NotebookRun, other: NotebookRun, equal: ValueEqual, stop: int | None = None
) -> list[Change]:
    before_cells = {cell.index: cell for cell in baseline.cells}
    after_cells = {cell.index: cell for cell in other.cells}
    changes: list[Change] = []
    for index in sorted(before_cells.keys() | after_cells.keys()):
        if stop is not None and index >= stop:
            break
        before_cell, after_cell = before_cells.get(index), after_cells.get(index)
        before = normalize_outputs(before_cell.outputs if before_cell else (), baseline)
        after = normalize_outputs(after_cell.outputs if after_cell else (), other)
        changes.extend(_cell_changes(other.env, index, before, after, equal))
    return changes


def _cell_changes(
    env: str,
    cell: int,
    before: Sequence[Output],
    after: Sequence[Output],
    equal: ValueEqual,
) -> list[Change]:
    # Align on exact keys so one inserted or removed output is reported as such instead of
    # shifting every output after it; within a replaced stretch, outputs pair up in order and
    # `equal` gets the last word, so a tolerant comparator can still call a pair equal.
    matcher = difflib.SequenceMatcher(
        a=[_key(o) for o in before], b=[_key(o) for o in after], autojunk=False
    )
    changes: list[Change] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1)
        for old, new in zip(before[i1 : i1 + paired], after[j1 : j1 + paired], strict=True):
            if not _same_output(old, new, equal):
                shown_before, shown_after = _render_pair(old, new, equal)
                changes.append(Change(env, cell, "output", shown_before, shown_after))
        for old in before[i1 + paired : i2]:
            changes.append(Change(env, cell, "missing-output", _truncate(_render(old)), None))
        for new in after[j1 + paired : j2]:
            changes.append(Change(env, cell, "new-output", None, _truncate(_render(new))))
    return changes


def _comparable(output: Output) -> Output:
    # An expected error (raises-exception cell) is the same error when its name and its
    # message, with addresses and line numbers masked, are.
    if output.kind != "error":
        return output
    data = dict(output.data)
    data["evalue"] = mask_volatile_numbers(data.get("evalue", ""))
    return Output(kind="error", data=data)


def _key(output: Output) -> tuple[str, tuple[tuple[str, str], ...]]:
    comparable = _comparable(output)
    return comparable.kind, tuple(sorted(comparable.data.items()))


def _same_output(before: Output, after: Output, equal: ValueEqual) -> bool:
    old, new = _comparable(before), _comparable(after)
    if old.kind != new.kind or old.data.keys() != new.data.keys():
        return False
    return all(equal(mime, old.data[mime], new.data[mime]) for mime in old.data)


# --- what a report shows -------------------------------------------------------------------


def _display_rank(mime: str) -> int:
    # What a person reads first: the plain text, then other text, then binary payloads.
    if mime in ("stdout", "stderr", "text/plain"):
        return 0
    return 2 if is_binary_mime(mime) else 1


def _binary_summary(mime: str, payload: str) -> str:
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raw = payload.encode()
    return f"{mime}, {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:16]}"


def _render_value(mime: str, value: str) -> str:
    return _binary_summary(mime, value) if is_binary_mime(mime) else value


def _render(output: Output) -> str:
    if output.kind == "error":
        return f"{output.data.get('ename', '')}: {output.data.get('evalue', '')}"
    mimes = sorted(output.data, key=_display_rank)
    if not mimes:
        return f"({output.kind} without data)"
    main, *others = mimes
    lines = [_render_value(main, output.data[main])]
    for mime in others:
        value = output.data[mime]
        extra = (
            _binary_summary(mime, value) if is_binary_mime(mime) else f"{mime}, {len(value)} chars"
        )
        lines.append(f"[+ {extra}]")
    return "\n".join(lines)


def _render_pair(before: Output, after: Output, equal: ValueEqual) -> tuple[str, str]:
    if before.kind == after.kind != "error" and before.data.keys() == after.data.keys():
        # Show the representation that differs: the HTML of a DataFrame may change while its
        # text/plain stays the same.
        for mime in sorted(before.data, key=_display_rank):
            if not equal(mime, before.data[mime], after.data[mime]):
                label = f"[{mime}]\n" if _display_rank(mime) == 1 else ""
                old, new = _excerpt_pair(
                    _render_value(mime, before.data[mime]), _render_value(mime, after.data[mime])
                )
                return label + old, label + new
    return _excerpt_pair(_render(before), _render(after))


def _excerpt_pair(before: str, after: str) -> tuple[str, str]:
    if len(before) <= _MAX_CHARS and len(after) <= _MAX_CHARS:
        return before, after
    # Both long: start both excerpts shortly before the first difference, at a line start,
    # so a number changed on row 200 of a table is in view.
    first = next(
        (i for i, (old, new) in enumerate(zip(before, after, strict=False)) if old != new),
        min(len(before), len(after)),
    )
    start = max(0, first - _CONTEXT_CHARS)
    if start:
        newline = before.find("\n", start, first)
        start = newline + 1 if newline != -1 else start
    return _clip(before, start), _clip(after, start)


def _clip(text: str, start: int) -> str:
    head = f"[… {start} chars]" if start else ""
    end = start + _MAX_CHARS
    tail = f"[… {len(text) - end} more chars]" if end < len(text) else ""
    return head + text[start:end] + tail


def _truncate(text: str) -> str:
    return _clip(text, 0)


# --- failures ------------------------------------------------------------------------------


def _failure_cell(run: NotebookRun) -> int:
    # -1 stands for "no cell": an env that could not be built, or a failure nobody placed.
    if run.status == "env-failed":
        return -1
    if run.error is not None:
        return run.error.cell
    return next((c.index for c in run.cells if c.status == "error" and not c.allowed_error), -1)


def _failure_text(run: NotebookRun) -> str:
    error = run.error
    if run.status == "error" and error is not None:
        text = f"{error.ename}: {error.evalue}"
    else:
        detail = run.reason or (f"{error.ename}: {error.evalue}" if error else "no reason given")
        text = f"{run.status}: {detail}"
    return _truncate(normalize_text(text, run))


def _failure_signature(run: NotebookRun) -> tuple[str, int, str, str]:
    """What makes two failures the same failure (see compare_runs)."""
    if run.status == "env-failed":
        # Two envs that cannot be built fail the same way only if they say the same thing;
        # otherwise the upcoming env's failure is new and shown as broken.
        return run.status, -1, "", mask_volatile_numbers(normalize_text(run.reason or "", run))
    # Timeouts and dead kernels are the same when they hit the same cell; their reasons carry
    # durations and pids, so only the error (when the executor recorded one) is compared.
    error = run.error
    if error is None:
        return run.status, _failure_cell(run), "", ""
    evalue = mask_volatile_numbers(normalize_text(error.evalue, run))
    return run.status, _failure_cell(run), error.ename, evalue


def _outputs_text(run: NotebookRun, index: int) -> str | None:
    cell = next((c for c in run.cells if c.index == index), None)
    if cell is None or not cell.outputs:
        return None
    return _truncate("\n".join(_render(o) for o in normalize_outputs(cell.outputs, run)))


def _baseline_side(baseline: NotebookRun, index: int) -> str | None:
    """What the baseline showed at the cell where the other run failed."""
    if not baseline.failed:
        return _outputs_text(baseline, index)
    failed_at = _failure_cell(baseline)
    text = _failure_text(baseline)
    if failed_at < 0 or index == failed_at:
        return text
    if index < 0:
        return f"cell {failed_at}: {text}"
    if index < failed_at:
        return _outputs_text(baseline, index)
    return _truncate(f"not run: cell {failed_at} failed first ({text})")


def _error_change(baseline: NotebookRun, other: NotebookRun) -> Change:
    cell = _failure_cell(other)
    return Change(other.env, cell, "error", _baseline_side(baseline, cell), _failure_text(other))


def _fixed_change(baseline: NotebookRun, other: NotebookRun) -> Change:
    # Recorded so the report says what got fixed, not only that something did.
    cell = _failure_cell(baseline)
    after = _outputs_text(other, cell) if cell >= 0 else None
    return Change(other.env, cell, "error", _failure_text(baseline), after)
