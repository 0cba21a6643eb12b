"""What the terminal shows: live progress while the pipeline runs, then the verdict table.
The only module that imports rich."""

from __future__ import annotations

import threading
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

from nbguard.model import VERDICTS, EnvInfo, NotebookReport, NotebookRun, Report
from nbguard.secret_env import REDACTED, redactor

VERDICT_STYLE = {
    "ok": "green",
    "warnings": "yellow",
    "changed": "magenta",
    "broken": "bold red",
    "already-broken": "red",
    "fixed": "cyan",
    "skipped": "dim",
}


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
            self.progress.update(self._envs[env], description=f"env {env}: {escape(text)}")

    def env_ready(self, info: EnvInfo) -> None:
        with self._lock:
            if info.ok:
                how = "reused" if info.reused else f"built in {info.build_s:.1f}s"
                text = (
                    f"env {info.name}: Python {info.python}, {len(info.packages)} packages, {how}"
                )
                self.console.print(f"[green]✓[/] {escape(text)}")
            else:
                self.console.print(f"[red]✗ env {info.name}:[/] {escape(str(info.error))}")
            self.progress.update(self._envs[info.name], completed=1, visible=False)

    def run_started(self, notebook: str, env: str) -> None:
        pass

    def run_finished(self, run: NotebookRun) -> None:
        with self._lock:
            if self._runs is not None and run.status != "env-failed":
                self.progress.advance(self._runs)

    def note(self, text: str) -> None:
        with self._lock:
            self.console.print(f"[dim]{escape(text)}[/]")


def _error_line(run: NotebookRun) -> str:
    if run.error is not None:
        return f"cell {run.error.cell}: {run.error.ename}: {_first_line(run.error.evalue)}"
    return _first_line(run.reason or "")


def _first_line(text: str, width: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _change_line(kind: str, before: str | None, after: str | None) -> str:
    """`Curve(n=3) → <Curve n=3 points>` when both sides are one short line; otherwise the
    summary line comparison puts first in `after`."""
    short = [
        text for text in (before, after) if text and "\n" not in text.strip() and len(text) < 60
    ]
    if kind == "missing-output":
        return f"output gone: {_first_line(before or '', 60)}"
    if kind == "new-output":
        return f"new output: {_first_line(after or '', 60)}"
    if len(short) == 2:
        return f"{kind}: {short[0].strip()} → {short[1].strip()}"
    return f"{kind}: {_first_line(after or '', 80)}"


def _detail(nb: NotebookReport, baseline: str) -> str:
    """What a user needs per notebook: the failing cell, the change, the early warnings, the
    fix the library itself suggests."""
    if nb.verdict == "skipped":
        return nb.skip_reason or next((r.reason or "" for r in nb.runs.values()), "")
    lines: list[str] = []
    failing = [run for name, run in nb.runs.items() if run.failed and name != baseline]
    if nb.verdict in {"broken", "already-broken"} and failing:
        lines += [f"{run.env}: {_error_line(run)}" for run in failing]
        for run in failing:
            lines += [
                f"{run.env}: also cell {error.cell}: {error.ename}: {_first_line(error.evalue, 80)}"
                for error in run.later_errors
            ]
    elif nb.verdict == "fixed":
        base = nb.runs[baseline]
        lines.append(f"{baseline} failed ({_error_line(base)}); runs now")
    elif nb.verdict == "changed":
        for change in nb.changes[:3]:
            lines.append(
                f"cell {change.cell}: {_change_line(change.kind, change.before, change.after)}"
            )
        if len(nb.changes) > 3:
            lines.append(f"… {len(nb.changes) - 3} more changes in the JSON report")
    seen: set[tuple[str, str]] = set()
    for record in nb.foreshadowing:
        seen.add((record.category, record.message))
        lines.append(
            f"⚠ {baseline} already warned, cell {record.cell}: {record.category}: "
            f"{_first_line(record.message, 100)}"
        )
    for name, run in nb.runs.items():
        for record in run.warnings:
            key = (record.category, record.message)
            if key in seen:
                continue
            seen.add(key)
            source = f" ({record.package})" if record.package else ""
            lines.append(
                f"⚠ {name} cell {record.cell}: {record.category}{source}: "
                f"{_first_line(record.message, 100)}"
            )
    lines += [f"→ fix (cell {hint.cell}): {hint.hint}" for hint in nb.hints[:2]]
    return "\n".join(lines)


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


def render(report: Report, console: Console, report_path: str | None = None) -> None:
    """The verdict table, the envs, the summary line."""
    table = Table(title=f"nbguard: {escape(_shown(report.course))}", show_lines=True, expand=True)
    table.add_column("notebook", overflow="fold", ratio=2)
    table.add_column("verdict", no_wrap=True)
    table.add_column("what happened", overflow="fold", ratio=4)
    table.add_column("culprit", overflow="fold", ratio=2)
    # Worst first: the rows someone must act on lead the table.
    for nb in sorted(report.notebooks, key=lambda nb: (VERDICTS.index(nb.verdict), nb.path)):
        style = VERDICT_STYLE[nb.verdict]
        culprit = nb.culprit
        blamed = (
            f"{culprit.package} {culprit.from_version} → {culprit.to_version}\n({culprit.evidence})"
            if culprit
            else ""
        )
        table.add_row(
            escape(nb.path),
            f"[{style}]{nb.verdict}[/]",
            escape(_redacted(_detail(nb, report.baseline))),
            escape(blamed),
        )
    console.print(table)
    base = report.envs.get(report.baseline)
    for name, env in report.envs.items():
        if env.error:
            console.print(f"[red]env {escape(name)} failed:[/] {escape(env.error)}")
            continue
        moved = ""
        if base is not None and name != report.baseline:
            changes = [
                f"{pkg} {base.packages.get(pkg, '—')} → {env.packages.get(pkg, '—')}"
                for pkg in sorted(set(base.packages) | set(env.packages))
                if base.packages.get(pkg) != env.packages.get(pkg)
            ]
            if base.python != env.python:
                changes.insert(0, f"python {base.python} → {env.python}")
            moved = f"; vs {report.baseline}: " + (", ".join(changes) if changes else "no changes")
        console.print(
            f"[bold]{escape(name)}[/]: Python {env.python}, {len(env.packages)} packages"
            + escape(moved)
        )
    counts = ", ".join(f"[{VERDICT_STYLE[v]}]{n} {v}[/]" for v, n in report.summary.items() if n)
    console.print(f"{counts or 'no notebooks found'} in {report.duration_s:.1f}s")
    if report.blame is not None:
        cost = report.blame
        console.print(
            f"blame: {cost.notebooks} notebooks, {cost.envs_built} envs built, "
            f"{cost.envs_used} probe envs used, {cost.seconds:.1f}s"
        )
    if report.interrupted:
        console.print("[yellow]interrupted: the report holds the notebooks that finished[/]")
    if report_path:
        console.print(f"report: {escape(report_path)}")


def render_since(news: Mapping[str, Any], console: Console) -> None:
    """Nightly mode: what is new since the earlier report, the only part that fails a job."""
    console.print(f"[bold]since {escape(str(news.get('previous')))}:[/]")
    broken = news.get("new_broken", [])
    for item in broken:
        was = item["was"] or "not there"
        console.print(f"  [bold red]newly broken[/] {escape(item['path'])} (was {was})")
    for item in news.get("new_warnings", []):
        message = escape(_first_line(item["message"], 90))
        console.print(
            f"  [yellow]new warning[/] {escape(item['path'])} {escape(item['env'])} cell "
            f"{item['cell']}: {escape(item['category'])}: {message}"
        )
    for env, moved in news.get("new_versions", {}).items():
        shown = ", ".join(
            f"{name} {old or '—'} → {new or '—'}" for name, (old, new) in moved.items()
        )
        console.print(f"  new releases in {escape(env)}: {escape(shown)}")
    if not broken:
        console.print("  [green]nothing newly broken[/]")
