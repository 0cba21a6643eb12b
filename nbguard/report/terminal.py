"""What the terminal shows: live progress while the pipeline runs, then the verdict table.
The only module that imports rich."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from nbguard.ansi import printable
from nbguard.model import FAILED_STATUSES, EnvInfo, NotebookRun
from nbguard.report.text import (
    change_line,
    error_line,
    first_line,
    internal_error,
    internal_line,
    note_lines,
    parameters_line,
    rerun_line,
    worst_first,
)
from nbguard.secret_env import REDACTED, redactor

VERDICT_STYLE = {
    "internal-error": "bold white on red",
    "ok": "green",
    "warnings": "yellow",
    "changed": "magenta",
    "broken": "bold red",
    "already-broken": "red",
    "fixed": "cyan",
    "skipped": "dim",
}


def _safe(text: str) -> str:
    """Untrusted text (anything a notebook, a file name or a resolver printed) as rich
    markup: no escape sequence or control character of its own reaches the terminal, and
    no square bracket of its own is taken for markup."""
    return escape(printable(text))


class LiveProgress:
    """A pipeline Observer drawing a bar per env build and one for notebook runs."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._lock = threading.Lock()
        self._envs: dict[str, TaskID] = {}
        self._runs: TaskID | None = None

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def planned(self, notebooks: int, runs: int, envs: list[str]) -> None:
        with self._lock:
            for name in envs:
                self._envs[name] = self.progress.add_task(f"env {name}: waiting", total=1)
            self._runs = self.progress.add_task(
                f"{notebooks} notebooks × {len(envs)} envs", total=runs
            )

    def env_step(self, env: str, text: str) -> None:
        with self._lock:
            self.progress.update(self._envs[env], description=f"env {env}: {_safe(text)}")

    def env_ready(self, info: EnvInfo) -> None:
        with self._lock:
            if info.ok:
                how = "reused" if info.reused else f"built in {info.build_s:.1f}s"
                text = (
                    f"env {info.name}: Python {info.python}, {len(info.packages)} packages, {how}"
                )
                self.console.print(f"[green]✓[/] {_safe(text)}")
                for note in info.notes:
                    self.console.print(f"  [yellow]![/] {_safe(note)}")
            else:
                self.console.print(f"[red]✗ env {info.name}:[/] {_safe(str(info.error))}")
            self.progress.update(self._envs[info.name], completed=1, visible=False)

    def run_started(self, notebook: str, env: str) -> None:
        pass

    def run_finished(self, run: NotebookRun) -> None:
        with self._lock:
            if self._runs is not None and run.status != "env-failed":
                self.progress.advance(self._runs)

    def note(self, text: str) -> None:
        with self._lock:
            self.console.print(f"[dim]{_safe(text)}[/]")


# Lines of "what happened" per notebook: the rest is in the JSON report.
_MAX_ITEMS = 5
# Notebooks named in the line of those that are ok (the JSON report lists them all).
_MAX_QUIET = 20
# Package changes the env summary names before folding the rest into a count: the course's
# own requirements, or any when the report does not say which those are.
_MAX_DIRECT = 12
_MAX_PACKAGES = 6
# An installed file's path up to its env's site-packages: where the env lives says nothing.
_INSTALLED_PATH = re.compile(r"(?<![\w/])/[^\s'\"()]*?/((?:site|dist)-packages)/")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`'\"])")
# Quoted names and numbers in a warning's message: the messages one mistake repeats for each
# name or place (`invalid escape sequence '\d'`, `'\s'`…) are one kind of warning.
_VARYING = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`|\d+(?:\.\d+)*")


def _detail(nb: Mapping[str, Any], baseline: str, library_warnings: bool = False) -> str:
    """What a user needs per notebook, most important first and at most _MAX_ITEMS lines:
    every env's failure (the baseline's too), the change, the early warnings, the fix the
    library itself suggests, the warnings of the course's code; the JSON has the rest."""
    runs: Mapping[str, Mapping[str, Any]] = nb.get("runs") or {}
    verdict = nb.get("verdict")
    if verdict == "skipped":
        return nb.get("skip_reason") or next((r.get("reason") or "" for r in runs.values()), "")
    # (priority, text): the lowest priorities are dropped first when a row runs long.
    items: list[tuple[int, str]] = []
    internal = internal_error(nb)
    if internal is not None:
        items.append((0, f"{internal_line(internal)} — see the JSON report"))
    items += [(0, line) for line in _failures(runs, baseline, verdict == "fixed")]
    items += [(3, _hidden(hidden)) for hidden in nb.get("hidden_breaks") or []]
    if verdict == "changed":
        items += [(1, f"cell {c['cell']}: {change_line(c)}") for c in nb.get("changes") or []]
    items += [(3, line) for line in note_lines(nb)[:2]]
    shown: set[tuple[str, str]] = set()
    for record in nb.get("foreshadowing") or []:
        shown.add((record["category"], record["message"]))
        items.append(
            (
                2,
                f"⚠ {baseline} already warned, cell {record['cell']}: {record['category']}: "
                f"{_sentence(record['message'])}",
            )
        )
    course, library = _warning_groups(runs, shown, library_warnings)
    items += [(4, f"⚠ {_group_line(group)}") for group in course]
    if library and verdict != "ok":
        more = f"; and {len(library) - 1} more" if len(library) > 1 else ""
        items.append(
            (5, f"⚠ inside libraries, not the course's code: {_group_line(library[0])}{more}")
        )
    items += [
        (1, f"→ fix (cell {hint['cell']}): {hint['hint']}") for hint in (nb.get("hints") or [])[:2]
    ]
    parameters = parameters_line(nb)
    if parameters is not None:
        items.append((1, parameters))
    return "\n".join(_most_important(items))


def _most_important(items: list[tuple[int, str]]) -> list[str]:
    """The items in their order, the least important left out beyond _MAX_ITEMS."""
    if len(items) <= _MAX_ITEMS:
        return [text for _, text in items]
    ranked = sorted(range(len(items)), key=lambda i: (items[i][0], i))
    kept = sorted(ranked[: _MAX_ITEMS - 1])
    return [items[i][1] for i in kept] + [f"… {len(items) - len(kept)} more in the JSON report"]


def _failures(runs: Mapping[str, Mapping[str, Any]], baseline: str, fixed: bool) -> list[str]:
    """Each failed run's failure, the baseline's last; envs failing alike share a line."""
    failing = [
        name
        for name, run in sorted(runs.items(), key=lambda item: item[0] == baseline)
        if run.get("status") in FAILED_STATUSES
    ]
    alike: dict[str, list[str]] = {}
    for name in failing:
        alike.setdefault(_terse(error_line(runs[name])), []).append(name)
    lines = []
    for text, names in alike.items():
        now = " — runs now" if fixed and baseline in names else ""
        # The baseline leads a failure all envs share: it was there first.
        names.sort(key=lambda name: name != baseline)
        lines.append(f"{', '.join(names)}: {text}{now}")
    for name in failing:
        lines += [
            f"{name}: also cell {error['cell']}: {error['ename']}: "
            f"{_terse(first_line(error['evalue'], 80))}"
            for error in runs[name].get("later_errors") or []
        ]
    return lines


def _terse(text: str) -> str:
    """`…/site-packages/scipy/integrate/__init__.py` for a path into an env."""
    return _INSTALLED_PATH.sub(r"…/\1/", text)


def _sentence(message: object, limit: int = 120) -> str:
    """A library's message as its first sentence on one line (the JSON has it whole)."""
    return first_line(_SENTENCE_END.split(first_line(message, 10_000), 1)[0], limit)


def _warning_groups(
    runs: Mapping[str, Mapping[str, Any]], shown: set[tuple[str, str]], library_warnings: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The runs' warnings not already shown, one group per kind (category, package and
    message with its names and numbers masked): those of the course's code, and those raised
    inside libraries (all counted as the course's with `library_warnings`)."""
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for name, run in runs.items():
        for record in run.get("warnings") or []:
            if (record["category"], record["message"]) in shown:
                continue
            origin = "course" if library_warnings else str(record.get("origin") or "course")
            kind = _VARYING.sub("…", str(record["message"]))
            key = (origin, str(record["category"]), str(record.get("package") or ""), kind)
            group = groups.setdefault(
                key, {**record, "envs": [], "cells": [], "count": 0, "messages": set()}
            )
            group["count"] += 1
            group["messages"].add(record["message"])
            if name not in group["envs"]:
                group["envs"].append(name)
            if record["cell"] not in group["cells"]:
                group["cells"].append(record["cell"])
    course = [g for (origin, *_), g in groups.items() if origin == "course"]
    library = [g for (origin, *_), g in groups.items() if origin != "course"]
    return course, sorted(library, key=lambda group: -int(group["count"]))


def _group_line(group: Mapping[str, Any]) -> str:
    """`upcoming cells 2, 5: DeprecationWarning (numpy): <message>`, with how many messages
    like it there were and how many times they came."""
    cells = sorted(group["cells"])
    where = f"cell{'s' if len(cells) > 1 else ''} {', '.join(map(str, cells))}"
    source = f" ({group['package']})" if group.get("package") else ""
    variants = len(group["messages"])
    like = f", and {variants - 1} like it" if variants > 1 else ""
    count = f" (×{group['count']})" if group["count"] > variants else ""
    return (
        f"{' and '.join(group['envs'])} {where}: {group['category']}{source}: "
        f"{_sentence(group['message'])}{like}{count}"
    )


def _redacted(text: str) -> str:
    """No secret of nbguard's environment reaches the terminal, even if a notebook printed it."""
    pattern = redactor()
    return pattern.sub(REDACTED, text) if pattern else text


def _shown(path: str) -> str:
    """A path relative to the current directory when it is below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _hidden(hidden: Mapping[str, Any]) -> str:
    """A second break blame's probes revealed, in one line."""
    culprit = hidden.get("culprit") or {}
    named = f" (culprit {culprit['package']}, {culprit['evidence']})" if culprit else ""
    return (
        f"hidden by it: cell {hidden['cell']}: {hidden['ename']}: "
        f"{first_line(hidden['evalue'], 80)}{named}"
    )


def _culprit(culprit: Mapping[str, Any] | None) -> str:
    if not culprit:
        return ""
    before, after = culprit.get("from") or "—", culprit.get("to") or "—"
    return f"{culprit.get('package')} {before} → {after}\n({culprit.get('evidence')})"


def _envs(data: Mapping[str, Any], console: Console) -> None:
    envs: Mapping[str, Mapping[str, Any]] = data.get("envs") or {}
    baseline = str(data.get("baseline", ""))
    base = envs.get(baseline)
    for name, env in envs.items():
        if env.get("error"):
            console.print(f"[red]env {_safe(name)} failed:[/] {_safe(str(env['error']))}")
            continue
        packages: Mapping[str, str] = env.get("packages") or {}
        moved = f"; vs {baseline}: {_moved(base, env)}" if base and name != baseline else ""
        console.print(
            f"[bold]{_safe(name)}[/]: Python {_safe(str(env.get('python')))}, "
            f"{len(packages)} packages" + _safe(moved)
        )


def _moved(base: Mapping[str, Any], env: Mapping[str, Any]) -> str:
    """What moved from the baseline env to `env`: Python, then the packages the course asks
    for itself, then how many others (the JSON report lists them all)."""
    before: Mapping[str, str] = base.get("packages") or {}
    after: Mapping[str, str] = env.get("packages") or {}
    moved = [pkg for pkg in sorted(set(before) | set(after)) if before.get(pkg) != after.get(pkg)]
    direct = set(base.get("requirements") or ()) | set(env.get("requirements") or ())
    asked = [pkg for pkg in moved if pkg in direct] if direct else moved
    shown = asked[: _MAX_DIRECT if direct else _MAX_PACKAGES]
    changes = [f"{pkg} {before.get(pkg, '—')} → {after.get(pkg, '—')}" for pkg in shown]
    if base.get("python") != env.get("python"):
        changes.insert(0, f"python {base.get('python')} → {env.get('python')}")
    transitive = len(moved) - len(asked)
    folded = [f"{len(asked) - len(shown)} more"] if len(asked) > len(shown) else []
    folded += [f"{transitive} transitive"] if transitive else []
    if not changes:
        return ", ".join(folded) or "no changes"
    return ", ".join(changes) + (f" and {', '.join(folded)}" if folded else "")


def render(data: Mapping[str, Any], console: Console, report_path: str | None = None) -> None:
    """The verdict table, the envs, the summary line, from the JSON report (as
    `json_report.to_json` makes it, or `json_report.read` reads it back)."""
    baseline = str(data.get("baseline", ""))
    library_warnings = bool((data.get("settings") or {}).get("library-warnings"))
    title = f"nbguard: {_safe(_shown(str(data.get('course', ''))))}"
    table = Table(title=title, show_lines=True, expand=True)
    table.add_column("notebook", overflow="fold", ratio=2)
    table.add_column("verdict", no_wrap=True)
    table.add_column("what happened", overflow="fold", ratio=4)
    table.add_column("culprit", overflow="fold", ratio=2)
    # Worst first: the rows someone must act on lead the table. A notebook that is ok with
    # nothing to say takes no row: its name is in the one line after the table.
    quiet: list[str] = []
    for nb in worst_first(data.get("notebooks") or []):
        verdict = str(nb.get("verdict"))
        detail = _detail(nb, baseline, library_warnings)
        if verdict == "ok" and not detail and not nb.get("culprit"):
            quiet.append(str(nb["path"]))
            continue
        table.add_row(
            _safe(str(nb["path"])),
            f"[{VERDICT_STYLE.get(verdict, 'bold')}]{_safe(verdict)}[/]",
            _safe(_redacted(detail)),
            _safe(_culprit(nb.get("culprit"))),
        )
    if table.row_count or not quiet:
        console.print(table)
    if quiet:
        names = ", ".join(quiet[:_MAX_QUIET])
        more = f" and {len(quiet) - _MAX_QUIET} more" if len(quiet) > _MAX_QUIET else ""
        console.print(f"[{VERDICT_STYLE['ok']}]ok[/]: {_safe(names + more)}")
    _envs(data, console)
    summary: Mapping[str, int] = data.get("summary") or {}
    counts = ", ".join(
        f"[{VERDICT_STYLE.get(verdict, 'bold')}]{n} {_safe(verdict)}[/]"
        for verdict, n in summary.items()
        if n
    )
    console.print(f"{counts or 'no notebooks found'} in {float(data.get('duration_s') or 0):.1f}s")
    runs = [
        run
        for nb in data.get("notebooks") or []
        for env, run in (nb.get("runs") or {}).items()
        if env != "stored" and run.get("status") != "skipped"
    ]
    cached = sum(bool(run.get("cached")) for run in runs)
    if cached:
        console.print(f"{cached} of {len(runs)} runs from the execution cache (nothing changed)")
    reused = Counter(str(run["reused_from"]) for run in runs if run.get("reused_from"))
    for source, count in sorted(reused.items()):
        console.print(
            f"{count} of {len(runs)} runs taken from the {_safe(source)} run: every file they "
            "used is the same in both envs"
        )
    cost = data.get("blame")
    if cost:
        console.print(
            f"blame: {cost['notebooks']} notebooks, {cost['envs_built']} envs built, "
            f"{cost['envs_used']} probe envs used, {cost['seconds']:.1f}s"
        )
    _fixes(data, console)
    if rerun_line(data):
        console.print(f"[dim]{_safe(str(rerun_line(data)))}[/]")
    if data.get("interrupted"):
        console.print("[yellow]interrupted: the report holds the notebooks that finished[/]")
    if report_path:
        console.print(f"report: {_safe(report_path)}")


def _fixes(data: Mapping[str, Any], console: Console) -> None:
    """The verified fixes: each notebook's source diff, then the patch and what was written."""
    summary = data.get("fixes")
    if not summary:
        return
    for nb in worst_first(data.get("notebooks") or []):
        fix = nb.get("fix")
        if not fix:
            continue
        runs_in = " and ".join(fix.get("runs_in") or [])
        console.print(
            f"[green]✓ fix[/] {_safe(str(nb['path']))}: runs in {_safe(runs_in)} "
            f"(then {_safe(str(fix.get('after')))}); " + _safe("; ".join(fix.get("steps") or []))
        )
        for line in str(fix.get("diff") or "").splitlines():
            style = "red" if line.startswith("-") else "green" if line.startswith("+") else "dim"
            style = "bold" if line.startswith(("---", "+++")) else style
            console.print(f"    [{style}]{_safe(line)}[/]", soft_wrap=True)
        if fix.get("remaining"):
            console.print(f"    still fails later: {_safe(str(fix['remaining']))}")
    patch = f"; patch: {_safe(str(summary['patch']))}" if summary.get("patch") else ""
    console.print(
        f"fixes: {summary.get('notebooks', 0)} of {summary.get('broken', 0)} broken notebooks "
        f"have a verified fix{patch}"
    )
    for line in summary.get("written") or []:
        console.print(f"  {_safe(str(line))}")


def render_since(news: Mapping[str, Any], console: Console) -> None:
    """Nightly mode: what is new since the earlier report, the only part that fails a job."""
    console.print(f"[bold]since {_safe(str(news.get('previous')))}:[/]")
    broken = news.get("new_broken", [])
    for item in broken:
        was = item["was"] or "not there"
        console.print(f"  [bold red]newly broken[/] {_safe(item['path'])} (was {was})")
    for item in news.get("new_warnings", []):
        message = _safe(first_line(item["message"], 90))
        console.print(
            f"  [yellow]new warning[/] {_safe(item['path'])} {_safe(item['env'])} cell "
            f"{item['cell']}: {_safe(item['category'])}: {message}"
        )
    for env, moved in news.get("new_versions", {}).items():
        shown = ", ".join(
            f"{name} {old or '—'} → {new or '—'}" for name, (old, new) in moved.items()
        )
        console.print(f"  new releases in {_safe(env)}: {_safe(shown)}")
    if not broken:
        console.print("  [green]nothing newly broken[/]")


def row_text(nb: Mapping[str, Any], baseline: str) -> tuple[str, str]:
    """A notebook's row as plain, printable text: what happened, and the culprit with its
    reason (the pytest plugin's failure text)."""
    culprit = nb.get("culprit")
    named = _culprit(culprit).replace("\n", " ")
    if culprit and culprit.get("reason"):
        named += f": {culprit['reason']}"
    return printable(_redacted(_detail(nb, baseline))), printable(_redacted(named))
