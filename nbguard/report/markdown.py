"""The Markdown report for `$GITHUB_STEP_SUMMARY` and PR comments, from the JSON report alone."""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from nbguard.ansi import strip_ansi
from nbguard.model import VERDICTS
from nbguard.report.text import (
    change_diff,
    change_line,
    error_line,
    first_line,
    internal_error,
    internal_line,
    note_lines,
    parameters_line,
    worst_first,
)

QUIET = frozenset({"ok", "skipped"})

# GitHub refuses a step summary over 1 MiB; leave room for what other steps append.
# A PR comment allows 65536 characters: pass max_bytes=60_000 for one.
MAX_BYTES = 1_000_000
MAX_BLOCK_LINES = 120  # one diff or traceback: past this, a reader opens the JSON/HTML report
MAX_BLOCK_CHARS = 8_000
MAX_CELL_CHARS = 200  # one table cell

# Markdown punctuation that could turn output text into links, emphasis, code or table
# columns; backslash escapes are valid for every ASCII punctuation character in CommonMark.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#!])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _inert(value: object) -> str:
    # Escape sequences go first: removing only their ESC, a control character, would leave
    # the rest ("[31m") behind as text.
    return _CONTROL.sub("", strip_ansi("" if value is None else str(value)))


def text(value: object) -> str:
    """Output text made inert for inline Markdown: no HTML (a notebook's output may carry
    `<script>` or `<img onerror>`), no formatting, no table breaks, no @-mention pings."""
    escaped = html.escape(_inert(value), quote=False)
    escaped = _MD_SPECIAL.sub(r"\\\1", escaped)
    # An @name in a PR comment notifies that user; &#64; shows the same character.
    return escaped.replace("@", "&#64;")


def cell(value: object, limit: int = MAX_CELL_CHARS) -> str:
    """One table cell: a single line (rows break on newlines), shortened, escaped."""
    lines = [line.strip() for line in str(value or "").strip().splitlines() if line.strip()]
    parts = [text(_cut(line, limit)) for line in lines]
    return "<br>".join(parts)


def _cut(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"


def fenced(body: str, lang: str = "") -> str:
    """A code block no content can close early: the fence is longer than any backtick run
    inside (CommonMark closes a fence only with one at least as long)."""
    lines = _inert(body).splitlines()
    note = ""
    if len(lines) > MAX_BLOCK_LINES:
        note = f"… {len(lines) - MAX_BLOCK_LINES} more lines in the JSON report"
        lines = lines[:MAX_BLOCK_LINES]
    body = "\n".join(lines)
    if len(body) > MAX_BLOCK_CHARS:
        body, note = body[:MAX_BLOCK_CHARS], "… truncated; the JSON report has all of it"
    runs = [len(run) for run in re.findall(r"`+", body)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    block = f"{fence}{lang}\n{body}\n{fence}"
    return f"{block}\n\n_{note}_" if note else block


def culprit_line(culprit: Mapping[str, Any] | None) -> str:
    """`pkg 1.0 → 2.0 (inferred)`, plain text; the caller escapes."""
    if not culprit:
        return ""
    before = culprit.get("from") or "—"
    after = culprit.get("to") or "—"
    return f"{culprit.get('package')} {before} → {after} ({culprit.get('evidence')})"


def _change_summary(change: Mapping[str, Any]) -> str:
    return f"cell {change['cell']}: {change_line(change)}"


def _what(nb: Mapping[str, Any], baseline: str) -> list[str]:
    """The table's one-glance summary; the details block below holds the rest."""
    verdict = nb["verdict"]
    runs: Mapping[str, Mapping[str, Any]] = nb.get("runs") or {}
    others = {name: run for name, run in runs.items() if name != baseline}
    internal = internal_error(nb)
    if internal is not None:
        return [internal_line(internal)]
    if verdict == "skipped":
        reason = nb.get("skip_reason") or next((r.get("reason") for r in runs.values()), "")
        return [reason or ""]
    if verdict == "broken":
        failing = [f"{n}: {error_line(r)}" for n, r in others.items() if r.get("status") != "ok"]
        return failing or [_change_summary(c) for c in nb.get("changes", [])[:1]]
    if verdict == "already-broken":
        return [f"{baseline}: {error_line(runs.get(baseline, {}))}"]
    if verdict == "fixed":
        return [f"{baseline} failed ({error_line(runs.get(baseline, {}))}); runs now"]
    if verdict == "changed":
        changes = nb.get("changes", [])
        lines = [_change_summary(c) for c in changes[:2]]
        if len(changes) > 2:
            lines.append(f"… {len(changes) - 2} more changes")
        return lines
    if verdict == "warnings":
        records = _warnings(nb, baseline)
        lines = [
            f"cell {r['cell']}: {r['category']}: {first_line(r['message'], 100)}"
            for r in records[:1]
        ]
        if len(records) > 1:
            lines.append(f"… {len(records) - 1} more warnings")
        return lines
    return note_lines(nb)[:1]


def _warnings(nb: Mapping[str, Any], baseline: str) -> list[Mapping[str, Any]]:
    """Distinct warnings, the other envs' (what is coming) before the baseline's."""
    seen: set[tuple[str, str]] = set()
    found: list[Mapping[str, Any]] = []
    runs: Mapping[str, Mapping[str, Any]] = nb.get("runs") or {}
    names = [n for n in runs if n != baseline] + [n for n in runs if n == baseline]
    for name in names:
        for record in runs[name].get("warnings") or []:
            key = (record.get("category", ""), record.get("message", ""))
            if key not in seen:
                seen.add(key)
                found.append({**record, "env": name})
    return found


def _row(nb: Mapping[str, Any], baseline: str) -> str:
    verdict = nb["verdict"]
    shown = f"**{verdict}**" if verdict in {"broken", "internal-error"} else verdict
    parameters = parameters_line(nb)
    what = [*_what(nb, baseline), *([parameters] if parameters else [])]
    return (
        f"| {cell(nb['path'])} | {shown} | {'<br>'.join(cell(w) for w in what)} "
        f"| {cell(culprit_line(nb.get('culprit')))} |"
    )


def _clean_change(change: Mapping[str, Any]) -> dict[str, Any]:
    # Control characters go before diffing: the diff's lines are the texts' "\n" lines, and
    # a \x0b or \x1c the notebook printed must not break one in the code block.
    return {**change, "before": _inert(change.get("before")), "after": _inert(change.get("after"))}


def _details(nb: Mapping[str, Any], baseline: str) -> str:
    """Everything a reader needs to act on one notebook, folded away."""
    runs: Mapping[str, Mapping[str, Any]] = nb.get("runs") or {}
    parts: list[str] = []
    internal = internal_error(nb)
    if internal is not None:
        parts.append(f"**{text(internal_line(internal))}**: a bug in nbguard, not in the notebook")
        parts.append(fenced(str(internal.get("traceback") or "")))
    for name, run in runs.items():
        if run.get("status") in {"ok", "skipped", "internal-error"}:
            continue
        error = run.get("error")
        parts.append(f"**{text(name)}**: {text(run.get('status'))} · {text(error_line(run))}")
        if error and "\n" in str(error.get("evalue", "")).strip():
            parts.append(fenced(f"{error['ename']}: {error['evalue']}"))
        reason = run.get("reason")
        if reason and error:
            parts.append(text(reason))
        for later in run.get("later_errors") or []:
            parts.append(
                f"- later, cell {later['cell']}: {text(later['ename'])}: "
                f"{text(first_line(later['evalue']))}"
            )
    for change in nb.get("changes") or []:
        applied = ", ".join(change.get("applied") or []) or "none"
        summary = f": {text(first_line(change['summary']))}" if change.get("summary") else ""
        parts.append(
            f"**cell {change['cell']}** · {text(change.get('kind'))} in {text(change.get('env'))}"
            f"{summary} (normalized: {text(applied)})"
        )
        if change.get("kind") == "image":
            # Data URIs are stripped by GitHub, and images would eat the size budget.
            parts.append("_the image changed: both pictures are in the HTML report_")
        else:
            parts.append(fenced(change_diff(_clean_change(change), baseline), "diff"))
    parts += [text(line) for line in note_lines(nb)]
    for record in nb.get("foreshadowing") or []:
        parts.append(
            f"⚠ {text(baseline)} already warned, cell {record['cell']}: "
            f"{text(record['category'])}: {text(first_line(record['message'], 300))}"
        )
    foreshadowed = {(r["category"], r["message"]) for r in nb.get("foreshadowing") or []}
    for record in _warnings(nb, baseline):
        if (record["category"], record["message"]) in foreshadowed:
            continue
        source = f" ({record['package']})" if record.get("package") else ""
        parts.append(
            f"⚠ {text(record['env'])} cell {record['cell']}: {text(record['category'])}"
            f"{text(source)}: {text(first_line(record['message'], 300))}"
        )
    for hint in nb.get("hints") or []:
        parts.append(
            f"→ fix (cell {hint['cell']}): {text(hint['hint'])} — from {text(hint.get('source'))}"
        )
    parts += _fix(nb.get("fix"))
    culprit = nb.get("culprit")
    if culprit:
        parts.append(f"culprit: {text(culprit_line(culprit))}: {text(culprit.get('reason') or '')}")
    for hidden in nb.get("hidden_breaks") or []:
        parts.append(
            f"hidden break (shown by {text(hidden['probe'])}): cell {hidden['cell']}: "
            f"{text(hidden['ename'])}: {text(first_line(hidden['evalue'], 300))}; culprit: "
            f"{text(culprit_line(hidden.get('culprit')) or 'none named')}"
        )
    if not parts:
        return ""
    summary = f"<b>{html.escape(nb['path'])}</b> · {html.escape(nb['verdict'])}"
    # Blank lines around the content: GitHub renders Markdown inside <details> only then.
    return "<details><summary>" + summary + "</summary>\n\n" + "\n\n".join(parts) + "\n\n</details>"


def _fix(fix: Mapping[str, Any] | None) -> list[str]:
    """A verified fix: where the patched notebook runs, what it took, the source diff."""
    if not fix:
        return []
    runs_in = " and ".join(text(env) for env in fix.get("runs_in") or [])
    parts = [f"**verified fix**, runs in {runs_in} (then {text(fix.get('after'))}):"]
    parts += [f"- {text(step)}" for step in fix.get("steps") or []]
    parts.append(fenced(str(fix.get("diff") or ""), "diff"))
    if fix.get("remaining"):
        parts.append(f"still fails later: {text(fix['remaining'])}")
    return parts


def _fixes_line(data: Mapping[str, Any]) -> list[str]:
    fixes = data.get("fixes")
    if not fixes:
        return []
    patch = f"; patch: `{text(fixes['patch'])}`" if fixes.get("patch") else ""
    return ["", f"**Fixes**: {fixes.get('notebooks', 0)} of {fixes.get('broken', 0)} broken "
            f"notebooks have a verified fix{patch}"]  # fmt: skip


def _envs(data: Mapping[str, Any]) -> list[str]:
    envs: Mapping[str, Mapping[str, Any]] = data.get("envs") or {}
    baseline = data.get("baseline", "")
    names = list(envs)
    lines = ["### Environments", ""]
    lines.append("| | " + " | ".join(text(n) for n in names) + " |")
    lines.append("|---|" + "---|" * len(names))
    lines.append("| python | " + " | ".join(text(envs[n].get("python")) for n in names) + " |")
    lines.append(
        "| packages | " + " | ".join(str(len(envs[n].get("packages") or {})) for n in names) + " |"
    )
    base = envs.get(baseline, {}).get("packages") or {}
    differing = sorted(
        {
            pkg
            for n in names
            for pkg in set(base) | set(envs[n].get("packages") or {})
            if base.get(pkg) != (envs[n].get("packages") or {}).get(pkg)
        }
    )
    for pkg in differing:
        versions = []
        for n in names:
            version = (envs[n].get("packages") or {}).get(pkg)
            shown = text(version or "—")
            versions.append(f"**{shown}**" if n != baseline and version != base.get(pkg) else shown)
        lines.append(f"| {text(pkg)} | " + " | ".join(versions) + " |")
    if not differing:
        lines.append("| _no package differs_ |" + " |" * len(names))
    for name in names:
        if envs[name].get("error"):
            lines += ["", f"env {text(name)} failed: {text(first_line(envs[name]['error'], 500))}"]
    return lines


def render(data: Mapping[str, Any], max_bytes: int = MAX_BYTES) -> str:
    """The report as GitHub-flavoured Markdown, at most `max_bytes` of UTF-8."""
    baseline = str(data.get("baseline", ""))
    summary: Mapping[str, int] = data.get("summary") or {}
    counts = ", ".join(f"{summary[v]} {v}" for v in VERDICTS if summary.get(v))
    course = posixpath.basename(str(data.get("course", "")).rstrip("/")) or "course"
    notebooks = worst_first(data.get("notebooks") or [])
    others = [n for n in data.get("envs") or {} if n != baseline]
    head = [
        f"## nbguard: {text(course)}: {counts or 'no notebooks found'}",
        "",
        f"{text(baseline)} vs {text(', '.join(others) or '—')} · "
        f"{len(notebooks)} notebooks · {float(data.get('duration_s') or 0):.1f}s",
    ]
    if data.get("interrupted"):
        head += ["", "**Interrupted**: the report holds the notebooks that finished."]
    head += _fixes_line(data)
    loud = [nb for nb in notebooks if nb["verdict"] not in QUIET]
    quiet = [nb for nb in notebooks if nb["verdict"] in QUIET]
    table = ["| notebook | verdict | what happened | culprit |", "|---|---|---|---|"]
    body = [*head, ""]
    if loud:
        body += [*table, *(_row(nb, baseline) for nb in loud), ""]
    if quiet:
        label = ", ".join(f"{sum(nb['verdict'] == v for nb in quiet)} {v}" for v in sorted(QUIET))
        body += [
            f"<details><summary>{html.escape(label)}</summary>",
            "",
            *table,
            *(_row(nb, baseline) for nb in quiet),
            "",
            "</details>",
            "",
        ]
    tail = ["", *_envs(data), ""]
    out = "\n".join(body)
    budget = max_bytes - len("\n".join(tail).encode()) - 200
    blocks = [block for block in (_details(nb, baseline) for nb in loud) if block]
    if blocks:
        out += "\n### Details\n"
    left_out = 0
    for index, block in enumerate(blocks):
        if len((out + block).encode()) + 2 > budget:
            left_out = len(blocks) - index
            break
        out += "\n" + block + "\n"
    if left_out:
        out += (
            f"\n_… details of {left_out} more notebooks left out to stay under the size "
            "limit; the JSON report has them._\n"
        )
    out += "\n".join(tail)
    encoded = out.encode()
    if len(encoded) > max_bytes:
        # Only a huge table gets here: cut at a line and say so rather than be refused whole.
        note = "\n\n_… truncated to stay under the size limit; the JSON report has it all._\n"
        cut = encoded[: max_bytes - len(note.encode())].decode(errors="ignore")
        out = cut[: cut.rfind("\n")] + note
    return out
