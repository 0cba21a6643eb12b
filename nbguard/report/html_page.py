"""The HTML report: one self-contained, script-safe page rendered from the JSON report alone."""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from nbguard.compare.text import DiffLine, diff_lines, hunks, text_lines
from nbguard.model import VERDICTS
from nbguard.report.text import (
    internal_error,
    internal_line,
    note_lines,
    parameters_line,
    tolerance,
    worst_first,
)

# Images embedded as <img>, each with the leading bytes its payload must start with. SVG is
# never embedded (it can carry script); anything not listed is shown as text.
_IMAGE_MAGIC: dict[str, Callable[[bytes], bool]] = {
    "image/png": lambda raw: raw.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda raw: raw.startswith(b"\xff\xd8\xff"),
    "image/gif": lambda raw: raw.startswith((b"GIF87a", b"GIF89a")),
    "image/webp": lambda raw: raw[:4] == b"RIFF" and raw[8:12] == b"WEBP",
}
ALLOWED_IMAGE_MIMES: frozenset[str] = frozenset(_IMAGE_MAGIC)
_MAX_IMAGE_BYTES = 16 * 1024 * 1024
_MAX_TEXT = 20_000  # characters of one side of a change shown (diffing is quadratic-ish)
_WHOLE_LINES = 60  # texts up to this many lines are shown whole, longer ones around changes

_VERDICT_COLOUR = {
    "internal-error": ("#212121", "#ffeb3b"),
    "broken": ("#b3261e", "#fff"),
    "changed": ("#8e24aa", "#fff"),
    "already-broken": ("#e57373", "#000"),
    "warnings": ("#f9a825", "#000"),
    "fixed": ("#00838f", "#fff"),
    "ok": ("#2e7d32", "#fff"),
    "skipped": ("#9e9e9e", "#000"),
}
_OTHER_COLOUR = ("#555", "#fff")

# The one inline script: toggles rows and sections by verdict. Its hash goes into the CSP, so
# nothing else can run even if some text escaped escaping. The filter bar is `hidden` until
# this runs: with JavaScript off the page shows everything and no dead controls.
SCRIPT = """
(function () {
  var bar = document.getElementById("filters");
  if (!bar) { return; }
  bar.hidden = false;
  function apply() {
    var shown = {};
    bar.querySelectorAll("input[type=checkbox]").forEach(function (box) {
      shown[box.value] = box.checked;
    });
    document.querySelectorAll("[data-verdict]").forEach(function (el) {
      if (el.closest("#filters")) { return; }
      el.hidden = shown[el.dataset.verdict] === false;
    });
  }
  bar.addEventListener("change", apply);
  bar.querySelectorAll("button[data-set]").forEach(function (button) {
    button.addEventListener("click", function () {
      var want = button.dataset.set;
      bar.querySelectorAll("input[type=checkbox]").forEach(function (box) {
        box.checked = want === "all" || (want === "problems" &&
          ["internal-error", "broken", "changed", "already-broken", "warnings"]
            .indexOf(box.value) >= 0);
      });
      apply();
    });
  });
  apply();
})();
""".strip()

SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    f"script-src '{SCRIPT_HASH}'; base-uri 'none'; form-action 'none'"
)

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
  max-width: 1400px; padding: 16px 24px; color: #1b1b1b; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px;
  border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 0 0 6px; word-break: break-all; }
h4 { font-size: 14px; margin: 12px 0 4px; }
.meta { color: #555; margin: 0 0 10px; } .meta code { color: #1b1b1b; }
.badge { display: inline-block; border-radius: 10px; padding: 1px 9px; font-weight: 600;
  font-size: 12px; white-space: nowrap; }
.summary .badge { font-size: 14px; padding: 3px 12px; margin: 0 6px 6px 0; }
.summary .zero { opacity: .35; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
a { color: #0b57d0; }
#filters { background: #f7f7f7; border: 1px solid #ddd; border-radius: 6px; padding: 6px 10px;
  margin: 8px 0; } #filters label { margin-right: 12px; white-space: nowrap; }
#filters button { margin-left: 6px; }
section.nb { border: 1px solid #ddd; border-left: 6px solid var(--vc, #999); border-radius: 6px;
  padding: 10px 14px; margin: 14px 0; }
.culprit { background: #fff4e5; border: 1px solid #f0c27b; border-radius: 4px; padding: 6px 10px; }
.foreshadow { background: #fffbe6; border: 1px solid #ecd77a; border-radius: 4px;
  padding: 6px 10px; }
.hint { background: #e8f5e9; border: 1px solid #a5d6a7; border-radius: 4px; padding: 6px 10px; }
.err { color: #b3261e; font-weight: 600; }
pre { background: #f8f8f8; border: 1px solid #e3e3e3; border-radius: 4px; padding: 6px 8px;
  margin: 0; white-space: pre-wrap; word-break: break-word; font: 12.5px/1.4 ui-monospace,
  "DejaVu Sans Mono", Menlo, monospace; max-height: 480px; overflow: auto; }
.sbs { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; margin: 4px 0 10px; }
.sbs .side-label { font-size: 12px; color: #555; margin-bottom: 2px; }
.rm { background: #fde2e1; } .add { background: #dff5e3; }
.rm b { background: #f7b4b0; font-weight: normal; } .add b { background: #a6e3b2;
  font-weight: normal; }
.sbs img { max-width: 100%; border: 1px solid #ddd; background:
  repeating-conic-gradient(#eee 0 25%, #fff 0 50%) 0 0 / 16px 16px; }
tr.pkg-changed td { background: #fff4d6; } tr.pkg-changed td.changed { background: #ffd98a;
  font-weight: 600; }
.muted { color: #777; } .small { font-size: 12px; }
.banner { background: #fde2e1; border: 1px solid #f2a19c; padding: 6px 10px; border-radius: 4px; }
ul { margin: 4px 0; padding-left: 22px; }
"""


def render(data: Mapping[str, Any]) -> str:
    """The whole page for a JSON report (as `json_report.to_json` makes it, or read back)."""
    notebooks = [nb for nb in _list(data.get("notebooks")) if isinstance(nb, Mapping)]
    ordered = list(enumerate(worst_first(notebooks)))
    envs = _map(data.get("envs"))
    baseline = _str(data.get("baseline"))
    course = _str(data.get("course"))
    title = "nbguard report" + (f" — {course.rstrip('/').rsplit('/', 1)[-1]}" if course else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        _header(data, course, baseline),
        _summary(data, notebooks),
        _filters(notebooks),
        _overview(ordered),
        '<h2 id="notebooks">Notebooks</h2>',
        *(_notebook(index, nb, data, baseline) for index, nb in ordered),
        _envs(envs, baseline),
        f"<script>{SCRIPT}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# -- small helpers: everything from the report goes through _e ------------------------------


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _str(value: object) -> str:
    return "" if value is None else str(value)


def _text(mapping: Mapping[str, Any], key: str) -> str:
    return _str(mapping.get(key))


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def _verdicts(notebooks: Iterable[Mapping[str, Any]]) -> list[str]:
    """The stable vocabulary in its order, then any unknown verdict a report may carry."""
    seen: list[str] = list(VERDICTS)
    for nb in notebooks:
        verdict = _text(nb, "verdict")
        if verdict not in seen:
            seen.append(verdict)
    return seen


def _badge(verdict: str, extra: str = "") -> str:
    background, colour = _VERDICT_COLOUR.get(verdict, _OTHER_COLOUR)
    return (
        f'<span class="badge{extra}" style="background:{background};color:{colour}">'
        f"{_e(verdict)}</span>"
    )


def _cell(value: object) -> str:
    return "" if value is None else f"cell {_e(value)}"


def _seconds(value: object) -> str:
    return f"{value:.2f} s" if isinstance(value, int | float) else ""


# -- page parts -------------------------------------------------------------------------------


def _header(data: Mapping[str, Any], course: str, baseline: str) -> str:
    rows = [
        ("course", course),
        ("created", _text(data, "created")),
        ("baseline", baseline),
        ("nbguard", _text(data, "nbguard_version")),
        ("schema", _text(data, "schema")),
        ("read from", _text(data, "upgraded_from")),
        ("duration", _seconds(data.get("duration_s"))),
    ]
    meta = " · ".join(f"{_e(k)} <code>{_e(v)}</code>" for k, v in rows if v)
    out = [f'<h1>nbguard report</h1>\n<p class="meta">{meta}</p>']
    if data.get("interrupted"):
        out.append('<p class="banner">The run was interrupted: this report is partial.</p>')
    return "\n".join(out)


def _summary(data: Mapping[str, Any], notebooks: Sequence[Mapping[str, Any]]) -> str:
    summary = _map(data.get("summary"))
    counts: dict[str, int] = {}
    for nb in notebooks:
        counts[_text(nb, "verdict")] = counts.get(_text(nb, "verdict"), 0) + 1
    badges = []
    for verdict in _verdicts(notebooks):
        stored = summary.get(verdict)
        count = stored if isinstance(stored, int) else counts.get(verdict, 0)
        if count == 0 and verdict == "internal-error":
            continue  # rare, and alarming: a badge only when it happened
        zero = " zero" if count == 0 else ""
        background, colour = _VERDICT_COLOUR.get(verdict, _OTHER_COLOUR)
        badges.append(
            f'<span class="badge{zero}" style="background:{background};color:{colour}" '
            f'data-count="{_e(verdict)}">{_e(count)} {_e(verdict)}</span>'
        )
    return f'<div class="summary"><p>{len(notebooks)} notebooks</p>\n' + "".join(badges) + "</div>"


def _filters(notebooks: Sequence[Mapping[str, Any]]) -> str:
    present = {_text(nb, "verdict") for nb in notebooks}
    boxes = "".join(
        f'<label><input type="checkbox" value="{_e(v)}" checked> {_badge(v)}</label>'
        for v in _verdicts(notebooks)
        if v in present
    )
    return (
        '<div id="filters" hidden><strong>Show:</strong> '
        + boxes
        + '<button type="button" data-set="all">all</button>'
        + '<button type="button" data-set="problems">problems only</button></div>'
    )


def _overview(ordered: Sequence[tuple[int, Mapping[str, Any]]]) -> str:
    rows = []
    for index, nb in ordered:
        verdict = _text(nb, "verdict")
        culprit = _map(nb.get("culprit"))
        rows.append(
            f'<tr data-verdict="{_e(verdict)}"><td>{_badge(verdict)}</td>'
            f'<td><a href="#nb-{index}">{_e(nb.get("path"))}</a></td>'
            f"<td>{_e(_one_line(nb))}</td>"
            f"<td>{_culprit_short(culprit)}</td></tr>"
        )
    return (
        '<table id="overview"><thead><tr><th>verdict</th><th>notebook</th><th>what happened</th>'
        "<th>culprit</th></tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
    )


def _culprit_short(culprit: Mapping[str, Any]) -> str:
    if not culprit:
        return ""
    return (
        f"{_e(culprit.get('package'))} {_e(culprit.get('from') or '—')} → "
        f'{_e(culprit.get("to") or "—")} <span class="muted">({_e(culprit.get("evidence"))})</span>'
    )


def _one_line(nb: Mapping[str, Any]) -> str:
    """The gist of a notebook's outcome, as plain text (escaped by the caller)."""
    internal = internal_error(nb)
    if internal is not None:
        return internal_line(internal)
    if nb.get("skip_reason"):
        return _text(nb, "skip_reason")
    for name, run in _map(nb.get("runs")).items():
        error = _map(_map(run).get("error"))
        if error:
            return (
                f"{name}: cell {_str(error.get('cell'))}: {_str(error.get('ename'))}: "
                + _str(error.get("evalue"))[:200]
            )
        reason = _map(run).get("reason")
        if reason and _map(run).get("status") not in ("ok", "skipped"):
            return f"{name}: {_str(reason)}"[:200]
    changes = [c for c in _list(nb.get("changes")) if isinstance(c, Mapping)]
    if changes:
        cells = ", ".join(sorted({_str(c.get("cell")) for c in changes}, key=_natural))
        return f"{len(changes)} output change(s) in cell {cells}"
    warnings = sum(len(_list(_map(run).get("warnings"))) for run in _map(nb.get("runs")).values())
    if warnings:
        return f"{warnings} warning(s)"
    return ""


def _natural(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 30, text)


def _notebook(index: int, nb: Mapping[str, Any], data: Mapping[str, Any], baseline: str) -> str:
    verdict = _text(nb, "verdict")
    colour = _VERDICT_COLOUR.get(verdict, _OTHER_COLOUR)[0]
    out = [
        f'<section class="nb" id="nb-{index}" data-verdict="{_e(verdict)}" style="--vc:{colour}">',
        f"<h3>{_badge(verdict)} {_e(nb.get('path'))}</h3>",
    ]
    per_env = _map(nb.get("verdicts"))
    if len(per_env) > 1:
        out.append(
            '<p class="small">per env: '
            + ", ".join(f"{_e(env)} {_badge(_str(v))}" for env, v in per_env.items())
            + "</p>"
        )
    if nb.get("skip_reason"):
        out.append(f'<p class="muted">skipped: {_e(nb.get("skip_reason"))}</p>')
    parameters = parameters_line(nb)
    if parameters is not None:
        out.append(f'<p class="small">{_e(parameters)}</p>')
    out.append(_internal(nb))
    out.append(_culprit(_map(nb.get("culprit")), nb, data))
    out.append(_foreshadowing(nb, baseline))
    out.append(_hints(nb))
    out.append(_fix(_map(nb.get("fix"))))
    if not nb.get("skip_reason"):
        out.append(_runs(_map(nb.get("runs")), baseline))
    out.append(_changes([c for c in _list(nb.get("changes")) if isinstance(c, Mapping)], baseline))
    out.append(_notes(nb))
    out.append(_warnings(_map(nb.get("runs"))))
    out.append("</section>")
    return "\n".join(part for part in out if part)


def _culprit(culprit: Mapping[str, Any], nb: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    if not culprit:
        return ""
    evidence = _text(culprit, "evidence")
    how = {
        "confirmed": "confirmed by rebuilding the env with only this change",
        "inferred": "inferred from the traceback, warnings or the cell's imports",
    }.get(evidence, evidence)
    out = [
        '<div class="culprit"><strong>Culprit:</strong> '
        f"<code>{_e(culprit.get('package'))}</code> "
        f"{_e(culprit.get('from') or '—')} → {_e(culprit.get('to') or '—')} "
        f'<span class="muted">({_e(evidence)}: {_e(how)})</span>'
    ]
    if culprit.get("reason"):
        out.append(f"<br>why: {_e(culprit.get('reason'))}")
    steps = _list(_map(_map(data.get("blame")).get("steps")).get(_text(nb, "path")))
    if steps:
        out.append(
            '<details><summary class="small">how blame found it</summary><ul class="small">'
            + "".join(f"<li>{_e(step)}</li>" for step in steps)
            + "</ul></details>"
        )
    out.append("</div>")
    return "".join(out)


def _internal(nb: Mapping[str, Any]) -> str:
    error = internal_error(nb)
    if error is None:
        return ""
    return (
        f'<div class="banner"><strong>{_e(internal_line(error))}</strong>: a bug in nbguard, '
        "not in the notebook; the traceback belongs in a bug report."
        f'<details><summary class="small">traceback</summary>'
        f"<pre>{_e(_clip(_str(error.get('traceback'))))}</pre></details></div>"
    )


def _foreshadowing(nb: Mapping[str, Any], baseline: str) -> str:
    records = [r for r in _list(nb.get("foreshadowing")) if isinstance(r, Mapping)]
    if not records:
        return ""
    env = f"the {baseline} env" if baseline else "the baseline env"
    return (
        f'<div class="foreshadow"><strong>Foreshadowed:</strong> {_e(env)} already warned '
        "about this:<ul>" + "".join(f"<li>{_warning_text(r)}</li>" for r in records) + "</ul></div>"
    )


def _notes(nb: Mapping[str, Any]) -> str:
    lines = note_lines(nb)
    if not lines:
        return ""
    items = "".join(f"<li>{_e(line)}</li>" for line in lines)
    return f'<div class="small"><strong>Not counted as changes:</strong><ul>{items}</ul></div>'


def _hints(nb: Mapping[str, Any]) -> str:
    hints = [h for h in _list(nb.get("hints")) if isinstance(h, Mapping)]
    if not hints:
        return ""
    items = "".join(
        f"<li>{_cell(h.get('cell'))}: <strong>{_e(h.get('hint'))}</strong> "
        f'<span class="muted">— from {_e(h.get("source"))}</span></li>'
        for h in hints
    )
    return f'<div class="hint"><strong>Fix hints:</strong><ul>{items}</ul></div>'


def _fix(fix: Mapping[str, Any]) -> str:
    """A verified fix: where the patched notebook runs, what it took, the source diff."""
    if not fix:
        return ""
    runs_in = " and ".join(_e(env) for env in _list(fix.get("runs_in")))
    steps = "".join(f"<li>{_e(step)}</li>" for step in _list(fix.get("steps")))
    lines = []
    for line in _str(fix.get("diff")).splitlines():
        css = "add" if line.startswith("+") and not line.startswith("+++") else ""
        css = "rm" if line.startswith("-") and not line.startswith("---") else css
        lines.append(f'<span class="{css}">{_e(line)}</span>' if css else _e(line))
    remaining = fix.get("remaining")
    later = f'<p class="small">still fails later: {_e(remaining)}</p>' if remaining else ""
    return (
        f'<div class="hint"><strong>Verified fix</strong> — runs in {runs_in} '
        f"(then {_badge(_str(fix.get('after')))}):<ul>{steps}</ul>{_pre(lines)}{later}</div>"
    )


def _warning_text(record: Mapping[str, Any]) -> str:
    package = record.get("package")
    origin = f" ({_e(package)})" if package else ""
    return (
        f"{_cell(record.get('cell'))}: <code>{_e(record.get('category'))}</code>{origin}: "
        f"{_e(record.get('message'))}"
    )


def _ordered_envs(names: Iterable[str], baseline: str) -> list[str]:
    names = list(names)
    return ([baseline] if baseline in names else []) + [n for n in names if n != baseline]


def _runs(runs: Mapping[str, Any], baseline: str) -> str:
    if not runs:
        return ""
    rows = []
    later: list[str] = []
    for name in _ordered_envs(runs, baseline):
        run = _map(runs[name])
        error = _map(run.get("error"))
        status = _text(run, "status")
        status_html = f'<span class="err">{_e(status)}</span>' if status != "ok" else _e(status)
        if error:
            what = (
                f'{_cell(error.get("cell"))}: <span class="err">{_e(error.get("ename"))}</span>: '
                f"{_e(error.get('evalue'))}"
            )
        else:
            what = ""
        reason = run.get("reason")
        if reason and status != "skipped":
            what += ("<br>" if what else "") + f'<span class="muted">{_e(reason)}</span>'
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{status_html}</td>"
            f'<td class="num">{_seconds(run.get("duration_s"))}</td><td>{what}</td></tr>'
        )
        for item in _list(run.get("later_errors")):
            err = _map(item)
            later.append(
                f"<li>{_e(name)}, {_cell(err.get('cell'))}: "
                f'<span class="err">{_e(err.get("ename"))}</span>: {_e(err.get("evalue"))}</li>'
            )
    out = (
        "<h4>Runs</h4><table><thead><tr><th>env</th><th>status</th><th>time</th><th>error</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
    if later:
        out += "<h4>Later errors (independent of the first)</h4><ul>" + "".join(later) + "</ul>"
    return out


def _warnings(runs: Mapping[str, Any]) -> str:
    rows = []
    for name, run in runs.items():
        for record in _list(_map(run).get("warnings")):
            rec = _map(record)
            rows.append(
                f"<tr><td>{_e(name)}</td><td>{_e(rec.get('cell'))}</td>"
                f"<td><code>{_e(rec.get('category'))}</code></td><td>{_e(rec.get('package'))}</td>"
                f"<td>{_e(rec.get('message'))}</td></tr>"
            )
    if not rows:
        return ""
    return (
        "<h4>Warnings</h4><table><thead><tr><th>env</th><th>cell</th><th>category</th>"
        "<th>package</th><th>message</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


# -- changes: text side by side with a light diff, images side by side -------------------------


def _changes(changes: Sequence[Mapping[str, Any]], baseline: str) -> str:
    if not changes:
        return ""
    out = ["<h4>Changed cells</h4>"]
    for change in changes:
        applied = ", ".join(_str(a) for a in _list(change.get("applied")))
        env = _text(change, "env")
        summary = _text(change, "summary")
        out.append(
            f"<p>{_cell(change.get('cell'))} · <code>{_e(change.get('kind'))}</code>"
            + (f": {_e(summary)}" if summary else "")
            + (
                f' <span class="muted small">after normalizing: {_e(applied)}</span>'
                if applied
                else ""
            )
            + "</p>"
        )
        left, right = _diff(change)
        out.append(_side_by_side(baseline or "before", env or "after", left, right))
        images = change.get("images")
        if isinstance(images, Mapping):
            out.append(_images(images, baseline or "before", env or "after"))
    return "\n".join(out)


def _side_by_side(left_label: str, right_label: str, left: str, right: str) -> str:
    return (
        '<div class="sbs">'
        f'<div><div class="side-label">before ({_e(left_label)})</div>{left}</div>'
        f'<div><div class="side-label">after ({_e(right_label)})</div>{right}</div>'
        "</div>"
    )


def _clip(text: str) -> str:
    if len(text) <= _MAX_TEXT:
        return text
    return text[:_MAX_TEXT] + f"\n… ({len(text) - _MAX_TEXT} more characters)"


def _diff(change: Mapping[str, Any]) -> tuple[str, str]:
    """Both sides as escaped <pre> blocks, the lines the comparison found changed marked (and
    the characters that differ, within a changed pair of lines): the one diff of
    nbguard.compare.text. A long text shows its changes with a few lines around them."""
    before, after = _clip(_text(change, "before")), _clip(_text(change, "after"))
    old_lines, new_lines = text_lines(before), text_lines(after)
    lines = diff_lines(before, after, tolerance(change))
    around = hunks(lines, context=3)
    shown = around if around and len(lines) > _WHOLE_LINES else [lines]
    left: list[str] = []
    right: list[str] = []
    for number, hunk in enumerate(shown):
        if number:
            left.append('<span class="muted">⋯</span>')
            right.append('<span class="muted">⋯</span>')
        _draw(hunk, old_lines, new_lines, left, right)
    return _pre(left), _pre(right)


def _draw(
    hunk: Sequence[DiffLine],
    old_lines: Sequence[str],
    new_lines: Sequence[str],
    left: list[str],
    right: list[str],
) -> None:
    k = 0
    while k < len(hunk):
        line = hunk[k]
        following = hunk[k + 1] if k + 1 < len(hunk) else None
        if line.tag == " " and line.old is not None and line.new is not None:
            left.append(_e(old_lines[line.old]))
            right.append(_e(new_lines[line.new]))
        elif line.tag == "-" and following is not None and following.tag == "+":
            marked_a, marked_b = _inline(line.text, following.text)
            left.append(f'<span class="rm">{marked_a}</span>')
            right.append(f'<span class="add">{marked_b}</span>')
            k += 1
        elif line.tag == "-":
            left.append(f'<span class="rm">{_e(line.text)}</span>')
        else:
            right.append(f'<span class="add">{_e(line.text)}</span>')
        k += 1


def _inline(a: str, b: str) -> tuple[str, str]:
    """One changed line pair with the differing characters in <b>, each piece escaped."""
    if len(a) > 2000 or len(b) > 2000:
        return _e(a), _e(b)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    common = sum(block.size for block in matcher.get_matching_blocks())
    if common < 0.6 * min(len(a), len(b)):  # mostly different: scattered common letters are noise
        return _e(a), _e(b)
    left: list[str] = []
    right: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            left.append(_e(a[i1:i2]))
            right.append(_e(b[j1:j2]))
            continue
        if i2 > i1:
            left.append(f"<b>{_e(a[i1:i2])}</b>")
        if j2 > j1:
            right.append(f"<b>{_e(b[j1:j2])}</b>")
    return "".join(left), "".join(right)


def _pre(lines: Sequence[str]) -> str:
    body = "\n".join(lines) if lines else '<span class="muted">(nothing)</span>'
    return f"<pre>{body}</pre>"


def data_url(mime: str, payload: str) -> str | None:
    """A data: URL for an allow-listed image mime whose payload is valid base64 of an image of
    that type; None otherwise. The URL is built from bytes re-encoded here, never the input."""
    check = _IMAGE_MAGIC.get(mime)
    if check is None:
        return None
    try:
        raw = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw or len(raw) > _MAX_IMAGE_BYTES or not check(raw):
        return None
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def _images(images: Mapping[str, Any], left_label: str, right_label: str) -> str:
    mime = _text(images, "mime")
    sides = []
    for key in ("before", "after"):
        payload = _text(images, key)
        url = data_url(mime, payload)
        if url is not None:
            sides.append(f'<img src="{_e(url)}" alt="{_e(key)} ({_e(mime)})">')
        elif mime in ALLOWED_IMAGE_MIMES:
            sides.append(f'<p class="muted">not shown: not a valid {_e(mime)} payload</p>')
        else:
            # SVG and other mimes are never embedded as markup: shown as text.
            shown = payload if len(payload) <= 4000 else payload[:4000] + " …"
            sides.append(
                f'<p class="muted small">{_e(mime)} shown as text, not rendered</p>'
                f"<pre>{_e(shown)}</pre>"
            )
    return _side_by_side(left_label, right_label, sides[0], sides[1])


# -- environments ----------------------------------------------------------------------------


def _envs(envs: Mapping[str, Any], baseline: str) -> str:
    if not envs:
        return ""
    names = _ordered_envs(envs, baseline)
    base = _map(envs.get(baseline)) if baseline in envs else _map(envs[names[0]])
    base_packages = _map(base.get("packages"))
    out = ['<h2 id="envs">Environments</h2>']
    info = []
    for name in names:
        env = _map(envs[name])
        python = _text(env, "python")
        changed = name != names[0] and python != _text(base, "python")
        python_html = f"<strong>{_e(python)}</strong>" if changed else _e(python)
        details = [
            f"{len(_map(env.get('packages')))} packages",
            "reused from cache"
            if env.get("reused")
            else f"built in {_seconds(env.get('build_s'))}",
        ]
        error = env.get("error")
        row_class = ' class="pkg-changed"' if changed else ""
        changed_attr = ' class="changed"' if changed else ""
        info.append(
            f"<tr{row_class}><td>{_e(name)}{' (baseline)' if name == names[0] else ''}</td>"
            f"<td{changed_attr}>{python_html}</td>"
            f"<td>{_e(', '.join(details))}</td>"
            f'<td class="small"><code>{_e(_text(env, "fingerprint")[:16])}</code></td>'
            f"<td>{f'<span class=err>{_e(error)}</span>' if error else ''}</td></tr>"
        )
    out.append(
        "<table><thead><tr><th>env</th><th>python</th><th>build</th><th>fingerprint</th>"
        "<th>error</th></tr></thead><tbody>" + "".join(info) + "</tbody></table>"
    )
    all_names = sorted({p for name in names for p in _map(_map(envs[name]).get("packages"))})
    changed_rows = []
    rows = []
    for package in all_names:
        base_version = base_packages.get(package)
        cells = []
        differs = False
        for name in names:
            version = _map(_map(envs[name]).get("packages")).get(package)
            moved = name != names[0] and version != base_version
            differs = differs or moved
            shown = _e(version) if version is not None else '<span class="muted">—</span>'
            cells.append(f'<td class="changed">{shown}</td>' if moved else f"<td>{shown}</td>")
        row = f"<td><code>{_e(package)}</code></td>" + "".join(cells)
        if differs:
            changed_rows.append(f'<tr class="pkg-changed">{row}</tr>')
        else:
            rows.append(f"<tr>{row}</tr>")
    head = "<tr><th>package</th>" + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>"
    moved = len(changed_rows)
    out.append(
        f"<h4>Packages ({moved} differ from {_e(names[0])}, shown first)</h4>"
        f"<table><thead>{head}</thead><tbody>" + "".join(changed_rows + rows) + "</tbody></table>"
    )
    return "\n".join(out)
