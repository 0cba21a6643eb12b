"""Compares a notebook's baseline run with another env's run: the verdict and what changed."""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeAlias

from nbguard.compare import volatile
from nbguard.compare.images import RESCALED, compare_images
from nbguard.compare.normalize import (
    NormalizedOutput,
    is_binary_mime,
    mask_numbers,
    mask_volatile_numbers,
    normalize_outputs_traced,
    normalize_text,
    normalize_text_traced,
)
from nbguard.compare.text import (
    compare_text,
    excerpts,
    html_as_text,
    mask_upgrades,
    mask_varying,
)
from nbguard.compare.volatile import CellVolatility, Volatility
from nbguard.model import (
    VERDICTS,
    CellResult,
    Change,
    ChangeKind,
    Comparison,
    Note,
    Notebook,
    NotebookRun,
    Output,
    Tolerance,
    Verdict,
)

# Decides whether two images look the same: (mime, base64 before, base64 after, threshold) ->
# (same, description). nbguard.images.compare_images is the one nbguard uses.
ImageEqual: TypeAlias = Callable[[str, str, str, float], tuple[bool, str]]


@dataclass(frozen=True)
class CompareOptions:
    """How tolerant a comparison is. The pipeline builds one from the settings and puts a
    notebook's own tolerance in (options_for); a cell's tolerance overrides both."""

    tolerance: Tolerance = field(default_factory=Tolerance)
    # The user's regex -> replacement pairs, applied to both runs' text like nbval's sanitize
    # files; each change names the ones that changed its text ("replace:<regex>").
    replacements: tuple[tuple[str, str], ...] = ()
    # The fraction of an image's drawn pixels that may differ before it counts as changed.
    image_threshold: float = 0.01
    # None: nbguard.images' perceptual comparison. Tests and other callers may pass their own.
    image_equal: ImageEqual | None = None
    # Whether warnings raised inside libraries (not pointing at the course's code) count for
    # the `warnings` verdict and fix hints too (nbguard.judge applies it).
    library_warnings: bool = False
    # (package, baseline version, other version) of each package (and python) that moved:
    # a printed version of the upgrade itself is a note, not a change. Set per comparison.
    upgrades: tuple[tuple[str, str, str], ...] = ()


def options_for(notebook: Notebook, options: CompareOptions) -> CompareOptions:
    """`options` with the tolerance of the notebook's metadata (nbguard.tolerance) in force."""
    if notebook.tolerance is None:
        return options
    return replace(options, tolerance=notebook.tolerance)


# Characters of one side of a change the report keeps: a 10,000-row DataFrame is cut around
# its changes, and the report says how many lines it left out.
_MAX_CHARS = 4000
# Above this many output pairs in one stretch of a cell, outputs pair up in order instead of
# by the best match: a cell printing in a loop should not cost a quadratic search.
_MAX_MATCHING = 400


# The verdicts of comparisons that looked at outputs: only they have notes to show.
_OUTPUTS_COMPARED = frozenset({"ok", "warnings", "changed", "broken"})


def volatility(
    notebook: Notebook,
    baseline: NotebookRun,
    rerun: NotebookRun | None,
    options: CompareOptions = CompareOptions(),
    elsewhere: Sequence[tuple[NotebookRun, NotebookRun]] = (),
) -> Volatility:
    """The baseline's cells whose outputs vary: what differs between its run and `rerun` (a
    second run in the same env), between the two runs of another env in `elsewhere` (found
    in the baseline's outputs), and what the notebook's tags and metadata declare."""
    tolerances = {cell.index: _cell_tolerance(cell, None, options) for cell in baseline.cells}

    def tolerance(index: int) -> Tolerance:
        return tolerances.get(index, options.tolerance)

    def alike(mime: str, before: str, after: str) -> bool:
        return _images_equal(mime, before, after, options)[0]

    found: list[Mapping[int, CellVolatility]] = []
    if rerun is not None:
        found.append(volatile.learned(baseline, rerun, options.replacements, tolerance, alike))
    for first, second in elsewhere:
        found.append(
            volatile.learned_elsewhere(
                baseline, first, second, options.replacements, tolerance, alike
            )
        )
    return {**volatile.merged(*found), **volatile.declared(notebook, baseline.cells)}


def compare_runs(
    baseline: NotebookRun,
    other: NotebookRun,
    options: CompareOptions = CompareOptions(),
    volatile: Volatility | None = None,
) -> Comparison:
    """The verdict on `other` measured against `baseline`, with the cell-level changes (the
    most important first) and the differences not counted (`volatile` outputs, cosmetic
    ones)."""
    varying = volatile or {}

    def comparison(
        verdict: Verdict, found: Sequence[Change | Note] = (), end: Sequence[Change] = ()
    ) -> Comparison:
        changes = [*(c for c in found if isinstance(c, Change)), *end]
        notes = [
            *(varying[cell].note(other.env, cell) for cell in sorted(varying)),
            *(n for n in found if isinstance(n, Note)),
        ]
        return Comparison(
            notebook=baseline.notebook,
            baseline=baseline.env,
            env=other.env,
            verdict=verdict,
            changes=tuple(sorted(changes, key=_importance)),
            notes=tuple(notes) if verdict in _OUTPUTS_COMPARED else (),
        )

    if "internal-error" in (baseline.status, other.status):
        return comparison("internal-error")
    if baseline.status == "skipped" or other.status == "skipped":
        return comparison("skipped")
    if not baseline.failed and not other.failed:
        found = _output_changes(baseline, other, options, varying)
        if any(isinstance(change, Change) for change in found):
            return comparison("changed", found)
        if baseline.warnings or other.warnings:
            return comparison("warnings", found)
        return comparison("ok", found)
    if not other.failed:
        return comparison("fixed", [_fixed_change(baseline, other, options)])
    if baseline.failed and _failure_signature(baseline, options) == _failure_signature(
        other, options
    ):
        return comparison("already-broken")
    # A new failure, possibly hiding behind an old one. Outputs that differ in cells both
    # runs completed are listed after it: they are often the first sign of what went wrong.
    stop = _failure_cell(other)
    if baseline.failed:
        stop = min(stop, _failure_cell(baseline))
    return comparison(
        "broken",
        _output_changes(baseline, other, options, varying, stop=stop),
        [_error_change(baseline, other, options)],
    )


def notebook_verdict(comparisons: Sequence[Comparison]) -> Verdict:
    """The worst verdict across envs; `skipped` only when every comparison is skipped."""
    if not comparisons:
        raise ValueError("a notebook verdict needs at least one comparison with the baseline")
    # VERDICTS runs from most to least severe, with skipped last, so the minimum rank wins.
    return min((c.verdict for c in comparisons), key=VERDICTS.index)


# --- outputs -------------------------------------------------------------------------------

# What a reader acts on first: an error, then a value or its printed form, then other text,
# outputs that came or went, and pictures last.
_IMPORTANCE: dict[str, int] = {
    "error": 0,
    "repr": 1,
    "value": 1,
    "text": 2,
    "missing-output": 3,
    "new-output": 3,
    "image": 4,
}


def _importance(change: Change) -> int:
    return _IMPORTANCE.get(change.kind, len(_IMPORTANCE))


def _output_changes(
    baseline: NotebookRun,
    other: NotebookRun,
    options: CompareOptions,
    varying: Volatility,
    stop: int | None = None,
) -> list[Change | Note]:
    before_cells = {cell.index: cell for cell in baseline.cells}
    after_cells = {cell.index: cell for cell in other.cells}
    found: list[Change | Note] = []
    for index in sorted(before_cells.keys() | after_cells.keys()):
        if stop is not None and index >= stop:
            break
        before_cell, after_cell = before_cells.get(index), after_cells.get(index)
        varies = varying.get(index)
        whole = varies is not None and varies.whole
        before = normalize_outputs_traced(
            _compared_outputs(before_cell, after_cell, whole), baseline, options.replacements
        )
        after = normalize_outputs_traced(
            _compared_outputs(after_cell, before_cell, whole), other, options.replacements
        )
        tolerance = _cell_tolerance(before_cell, after_cell, options)
        pair = _Pair(other.env, index, tolerance, options, varies)
        found.extend(_cell_changes(pair, before, after))
    return found


def _compared_outputs(
    cell: CellResult | None, counterpart: CellResult | None, volatile: bool = False
) -> list[Output]:
    if cell is None:
        return []
    if volatile or cell.ignore_output or (counterpart is not None and counterpart.ignore_output):
        # Tagged nbguard-ignore-output on either side (or outputs that come and go between
        # two runs of the baseline): what it prints is not compared, but an error it raises
        # (an expected one, in a raises-exception cell) still is.
        return [o for o in cell.outputs if o.kind == "error"]
    return list(cell.outputs)


def _cell_tolerance(
    before: CellResult | None, after: CellResult | None, options: CompareOptions
) -> Tolerance:
    # The baseline's cell metadata decides; the other run's copy of the notebook only when
    # the baseline has no such cell.
    for cell in (before, after):
        if cell is not None and cell.tolerance is not None:
            return cell.tolerance
    return options.tolerance


@dataclass(frozen=True)
class _Pair:
    """Where a pair of outputs is compared, and how tolerantly."""

    env: str
    cell: int
    tolerance: Tolerance
    options: CompareOptions
    volatile: CellVolatility | None = None  # what of this cell's baseline outputs varies


def _cell_changes(
    pair: _Pair, before: Sequence[NormalizedOutput], after: Sequence[NormalizedOutput]
) -> list[Change | Note]:
    # Align on exact keys so one inserted or removed output is reported as such instead of
    # shifting every output after it; within a stretch that differs, outputs equal in
    # substance are matched first, and what remains pairs up in order.
    matcher = difflib.SequenceMatcher(
        a=[_key(o.output) for o in before], b=[_key(o.output) for o in after], autojunk=False
    )
    changes: list[Change | Note] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            changes += _stretch_changes(pair, before[i1:i2], after[j1:j2])
    return changes


def _stretch_changes(
    pair: _Pair, before: Sequence[NormalizedOutput], after: Sequence[NormalizedOutput]
) -> list[Change | Note]:
    found: dict[tuple[int, int], Change | Note | None] = {}

    def compared(i: int, j: int) -> Change | Note | None:
        if (i, j) not in found:
            found[i, j] = _compare_pair(pair, before[i], after[j])
        return found[i, j]

    def alike(i: int, j: int) -> bool:
        return not isinstance(compared(i, j), Change)

    matches: list[tuple[int, int]] = []
    if len(before) * len(after) <= _MAX_MATCHING:
        matches = _longest_matching(len(before), len(after), alike)
    changes: list[Change | Note] = []
    i = j = 0
    for next_i, next_j in [*matches, (len(before), len(after))]:
        gap = min(next_i - i, next_j - j)
        for k in range(gap):
            change = compared(i + k, j + k)
            if change is not None:
                changes.append(change)
        for old in before[i + gap : next_i]:
            changes.append(
                Change(
                    pair.env,
                    pair.cell,
                    "missing-output",
                    _truncate(_render(old.output)),
                    None,
                    _all_applied(old),
                )
            )
        for new in after[j + gap : next_j]:
            changes.append(
                Change(
                    pair.env,
                    pair.cell,
                    "new-output",
                    None,
                    _truncate(_render(new.output)),
                    _all_applied(new),
                )
            )
        if next_i < len(before) and next_j < len(after):
            matched = compared(next_i, next_j)  # alike: None, or a cosmetic note
            if matched is not None:
                changes.append(matched)
        i, j = next_i + 1, next_j + 1
    return changes


def _longest_matching(
    rows: int, columns: int, equal: Callable[[int, int], bool]
) -> list[tuple[int, int]]:
    """Index pairs of the longest run of in-order matches (a longest common subsequence)."""
    lengths = [[0] * (columns + 1) for _ in range(rows + 1)]
    for i in range(rows - 1, -1, -1):
        for j in range(columns - 1, -1, -1):
            if equal(i, j):
                lengths[i][j] = lengths[i + 1][j + 1] + 1
            else:
                lengths[i][j] = max(lengths[i + 1][j], lengths[i][j + 1])
    matches: list[tuple[int, int]] = []
    i = j = 0
    while i < rows and j < columns:
        if lengths[i][j] == lengths[i + 1][j + 1] + 1 and equal(i, j):
            matches.append((i, j))
            i, j = i + 1, j + 1
        elif lengths[i + 1][j] >= lengths[i][j + 1]:
            i += 1
        else:
            j += 1
    return matches


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


def _union(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for group in groups for name in group))


def _all_applied(output: NormalizedOutput) -> tuple[str, ...]:
    return _union(*output.applied.values())


def _compare_pair(
    pair: _Pair, old: NormalizedOutput, new: NormalizedOutput
) -> Change | Note | None:
    """None when two outputs are equal in substance (or a note, when they differ only in
    form); else the one change that says how not."""
    before, after = old.output, new.output

    def change(
        kind: ChangeKind,
        shown_before: str | None,
        shown_after: str | None,
        *applied: str,
        summary: str | None = None,
        tolerance: Tolerance | None = None,
        images: tuple[str, str, str] | None = None,
    ) -> Change:
        return Change(
            pair.env,
            pair.cell,
            kind,
            shown_before,
            shown_after,
            _union(applied),
            images=images,
            summary=summary,
            tolerance=tolerance,
        )

    if before.kind == "error" or after.kind == "error":
        if _comparable(before) == _comparable(after):
            return None
        masked = (
            ("volatile-numbers",)
            if before.kind == after.kind == "error" and _comparable(before) != before
            else ()
        )
        return change(
            "error",
            _truncate(_render(before)),
            _truncate(_render(after)),
            *_all_applied(old),
            *_all_applied(new),
            *masked,
        )
    if before.kind != after.kind:
        return change(
            "text",
            _truncate(_render(before)),
            _truncate(_render(after)),
            *_all_applied(old),
            *_all_applied(new),
        )
    # A display with a picture on both sides is the picture: its text fallback (`<Figure size
    # 360x216 with 1 Axes>`, which moves with the backend's dpi) is what no reader sees.
    pictures = _has_image(before) and _has_image(after)
    cosmetic: list[str] = []  # how the same picture is shown differently
    # The representation a reader looks at first is compared first: a DataFrame whose values
    # moved is reported from its text/plain, not once more from its HTML.
    for mime in sorted(before.data.keys() | after.data.keys(), key=_display_order):
        if (pictures and mime == "text/plain") or (pair.volatile and pair.volatile.skips(mime)):
            continue
        normalized = (*old.applied.get(mime, ()), *new.applied.get(mime, ()))
        if mime not in after.data:
            shown = _truncate(_render_value(mime, before.data[mime]))
            summary = f"no {mime} any more"
            return change("missing-output", shown, None, *normalized, summary=summary)
        if mime not in before.data:
            shown = _truncate(_render_value(mime, after.data[mime]))
            return change("new-output", None, shown, *normalized, summary=f"new {mime}")
        found = _compare_payload(pair, mime, before.data[mime], after.data[mime], cosmetic)
        if found is not None:
            return change(
                found.kind,
                found.before,
                found.after,
                *normalized,
                *found.applied,
                summary=_label(mime, found.summary),
                tolerance=found.tolerance,
                images=found.images,
            )
    return _cosmetic(pair, before, after, cosmetic, pictures)


def _has_image(output: Output) -> bool:
    return any(mime.startswith("image/") for mime in output.data)


def _cosmetic(
    pair: _Pair, before: Output, after: Output, said: list[str], pictures: bool
) -> Note | None:
    """The note for an output that shows the same thing differently: a picture at another
    size, or whose text fallback differs (`<Figure size 360x216 …>` → `<Figure size 500x300
    …>`), the upgraded versions printed."""
    old, new = before.data.get("text/plain"), after.data.get("text/plain")
    if pictures and old is not None and new is not None and compare_text(old, new, pair.tolerance):
        said = [*said, f"its text {_clip(old)} → {_clip(new)}"]
    if not said:
        return None
    return Note(pair.env, pair.cell, "cosmetic", "; ".join(said))


def _clip(text: str, width: int = 60) -> str:
    line = text.strip().split("\n")[0]
    return line if len(line) <= width else line[: width - 1] + "…"


@dataclass(frozen=True)
class _Found:
    """How one representation of an output differs."""

    kind: ChangeKind
    before: str  # the texts compared (an HTML payload as the text it shows), cut alike
    after: str
    applied: tuple[str, ...]  # what the comparison allowed (tolerances, whitespace, ...)
    summary: str | None = None  # one line naming the difference
    tolerance: Tolerance | None = None  # what the texts were compared with, for the diff
    images: tuple[str, str, str] | None = None  # (mime, before, after) base64, for reports


def _label(mime: str, summary: str | None) -> str | None:
    # Plain text and streams go bare; other text is labelled with its mime type on the summary
    # line, the line a one-line report shows (binary descriptions name their mime already).
    if _display_rank(mime) != 1 or summary is None:
        return summary
    return f"[{mime}] {summary}"


def _compare_payload(
    pair: _Pair, mime: str, before: str, after: str, cosmetic: list[str]
) -> _Found | None:
    """How one payload differs; None when it does not (a picture drawn at another size only
    adds its sizes to `cosmetic`)."""
    if is_binary_mime(mime):
        if before == after:
            return None
        old, new = _binary_summary(mime, before), _binary_summary(mime, after)
        if not mime.startswith("image/"):
            return _Found("text", old, new, ())
        same, description = _images_equal(mime, before, after, pair.options)
        if same:
            if RESCALED in description:
                cosmetic.append(f"{RESCALED}: {description.split(': ', 1)[0]}")
            return None
        threshold = f"image_threshold={pair.options.image_threshold:g}"
        payloads = (mime, "".join(before.split()), "".join(after.split()))
        return _Found("image", old, new, (threshold,), description or None, images=payloads)
    html = mime == "text/html"
    old, new = (html_as_text(before), html_as_text(after)) if html else (before, after)
    applied: tuple[str, ...] = ("html-as-text",) if html else ()
    mask = pair.volatile.mask(mime, before) if pair.volatile is not None else None
    if mask is not None and pair.volatile is not None:
        # The tokens that differ between two baseline runs, and their counterparts in the
        # other run, stand as <volatile> on both sides; everything around them still counts.
        old, new = mask_varying(old, new, mask)
        applied += (f"volatile: {pair.volatile.reason}",)
    # The versions of the upgrade itself, printed ("numpy 1.21.2" → "numpy 2.5.5"): what
    # the upgrade is, not what it changed.
    old, new, printed = mask_upgrades(old, new, pair.options.upgrades)
    difference = compare_text(old, new, pair.tolerance)
    if difference is None:
        if printed:
            cosmetic.append(f"prints the upgraded versions: {', '.join(printed)}")
        return None
    applied += ("upgraded-versions",) if printed else ()
    difference = replace(difference, applied=(*applied, *difference.applied))
    old, new = excerpts(difference.before, difference.after, pair.tolerance, _MAX_CHARS)
    return _Found(difference.kind, old, new, difference.applied, difference.summary, pair.tolerance)


def _images_equal(mime: str, before: str, after: str, options: CompareOptions) -> tuple[bool, str]:
    """The one place images are compared: the caller's comparator, else nbguard.images'."""
    compare = options.image_equal or compare_images
    return compare(mime, before, after, options.image_threshold)


# --- what a report shows -------------------------------------------------------------------


def _display_rank(mime: str) -> int:
    # What a person reads first: the plain text, then other text, then binary payloads.
    if mime in ("stdout", "stderr", "text/plain"):
        return 0
    return 2 if is_binary_mime(mime) else 1


def _display_order(mime: str) -> tuple[int, str]:
    return _display_rank(mime), mime


def _binary_summary(mime: str, payload: str) -> str:
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raw = payload.encode()
    return f"{mime}, {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:16]}"


def _render_value(mime: str, value: str) -> str:
    if is_binary_mime(mime):
        return _binary_summary(mime, value)
    return html_as_text(value) if mime == "text/html" else value


def _render(output: Output) -> str:
    if output.kind == "error":
        return f"{output.data.get('ename', '')}: {output.data.get('evalue', '')}"
    mimes = sorted(output.data, key=_display_order)
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


def _truncate(text: str) -> str:
    if len(text) <= _MAX_CHARS:
        return text
    return f"{text[:_MAX_CHARS]}[… {len(text) - _MAX_CHARS} more chars]"


# --- failures ------------------------------------------------------------------------------


def _failure_cell(run: NotebookRun) -> int:
    # -1 stands for "no cell": an env that could not be built, or a failure nobody placed.
    if run.status == "env-failed":
        return -1
    if run.error is not None:
        return run.error.cell
    return next((c.index for c in run.cells if c.status == "error" and not c.allowed_error), -1)


def _failure_text(run: NotebookRun, options: CompareOptions) -> tuple[str, tuple[str, ...]]:
    """What the failure says, normalized, with the names of the normalizers that changed it."""
    error = run.error
    if run.status == "error" and error is not None:
        text = f"{error.ename}: {error.evalue}"
    else:
        detail = run.reason or (f"{error.ename}: {error.evalue}" if error else "no reason given")
        text = f"{run.status}: {detail}"
    normalized, applied = normalize_text_traced(text, run, options.replacements)
    return _truncate(normalized), applied


def _failure_signature(run: NotebookRun, options: CompareOptions) -> tuple[str, int, str, str]:
    """What makes two failures the same failure (see compare_runs)."""

    def masked(text: str) -> str:
        # Every number: the same exception in the same cell whose message differs only by one
        # (a tolerance printed as 1e-08 or 1.4901161193847656e-08) is the same failure.
        return mask_numbers(mask_volatile_numbers(normalize_text(text, run, options.replacements)))

    if run.status == "env-failed":
        # Two envs that cannot be built fail the same way only if they say the same thing;
        # otherwise the upcoming env's failure is new and shown as broken.
        return run.status, -1, "", masked(run.reason or "")
    # Timeouts and dead kernels are the same when they hit the same cell; their reasons carry
    # durations and pids, so only the error (when the executor recorded one) is compared.
    error = run.error
    if error is None:
        return run.status, _failure_cell(run), "", ""
    return run.status, _failure_cell(run), error.ename, masked(error.evalue)


def _outputs_text(
    run: NotebookRun, index: int, options: CompareOptions
) -> tuple[str | None, tuple[str, ...]]:
    cell = next((c for c in run.cells if c.index == index), None)
    if cell is None or not cell.outputs:
        return None, ()
    outputs = normalize_outputs_traced(cell.outputs, run, options.replacements)
    text = _truncate("\n".join(_render(o.output) for o in outputs))
    return text, _union(*(_all_applied(o) for o in outputs))


def _baseline_side(
    baseline: NotebookRun, index: int, options: CompareOptions
) -> tuple[str | None, tuple[str, ...]]:
    """What the baseline showed at the cell where the other run failed."""
    if not baseline.failed:
        return _outputs_text(baseline, index, options)
    failed_at = _failure_cell(baseline)
    text, applied = _failure_text(baseline, options)
    if failed_at < 0 or index == failed_at:
        return text, applied
    if index < 0:
        return f"cell {failed_at}: {text}", applied
    if index < failed_at:
        return _outputs_text(baseline, index, options)
    return _truncate(f"not run: cell {failed_at} failed first ({text})"), applied


def _error_change(baseline: NotebookRun, other: NotebookRun, options: CompareOptions) -> Change:
    cell = _failure_cell(other)
    before, before_applied = _baseline_side(baseline, cell, options)
    after, after_applied = _failure_text(other, options)
    return Change(other.env, cell, "error", before, after, _union(before_applied, after_applied))


def _fixed_change(baseline: NotebookRun, other: NotebookRun, options: CompareOptions) -> Change:
    # Recorded so the report says what got fixed, not only that something did.
    cell = _failure_cell(baseline)
    before, before_applied = _failure_text(baseline, options)
    after, after_applied = _outputs_text(other, cell, options) if cell >= 0 else (None, ())
    return Change(other.env, cell, "error", before, after, _union(before_applied, after_applied))
