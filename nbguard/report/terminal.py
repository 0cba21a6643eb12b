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

from nbguard.ansi import printable
from nbguard.model import FAILED_STATUSES, EnvInfo, NotebookRun
from nbguard.report.text import (
    change_line,
    error_line,
    first_line,
    internal_error,
    internal_line,
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


def _detail(nb: Mapping[str, Any], baseline: str) -> str:
    """What a user needs per notebook: the failing cell, the change, the early warnings, the
    fix the library itself suggests."""
    runs: Mapping[str, Mapping[str, Any]] = nb.get("runs") or {}
    verdict = nb.get("verdict")
    if verdict == "skipped":
        return nb.get("skip_reason") or next((r.get("reason") or "" for r in runs.values()), "")
    lines: list[str] = []
    internal = internal_error(nb)
    if internal is not None:
        lines.append(f"{internal_line(internal)} — see the JSON report")
    failing = {
        name: run
        for name, run in runs.items()
        if run.get("status") in FAILED_STATUSES and name != baseline
    }
    if verdict in {"broken", "already-broken"} and failing:
        lines += [f"{name}: {error_line(run)}" for name, run in failing.items()]
        for name, run in failing.items():
            lines += [
                f"{name}: also cell {error['cell']}: {error['ename']}: "
                f"{first_line(error['evalue'], 80)}"
                for error in run.get("later_errors") or []
            ]
    for hidden in nb.get("hidden_breaks") or []:
        lines.append(_hidden(hidden))
    if verdict == "fixed":
        lines.append(f"{baseline} failed ({error_line(runs.get(baseline) or {})}); runs now")
    elif verdict == "changed":
        changes = nb.get("changes") or []
        lines += [f"cell {change['cell']}: {change_line(change)}" for change in changes[:3]]
        if len(changes) > 3:
            lines.append(f"… {len(changes) - 3} more changes in the JSON report")
    seen: set[tuple[str, str]] = set()
    for record in nb.get("foreshadowing") or []:
        seen.add((record["category"], record["message"]))
        lines.append(
            f"⚠ {baseline} already warned, cell {record['cell']}: {record['category']}: "
            f"{first_line(record['message'], 100)}"
        )
    for name, run in runs.items():
        for record in run.get("warnings") or []:
            key = (record["category"], record["message"])
            if key in seen:
                continue
            seen.add(key)
            source = f" ({record['package']})" if record.get("package") else ""
            lines.append(
                f"⚠ {name} cell {record['cell']}: {record['category']}{source}: "
                f"{first_line(record['message'], 100)}"
            )
    lines += [
        f"→ fix (cell {hint['cell']}): {hint['hint']}" for hint in (nb.get("hints") or [])[:2]
    ]
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
        moved = ""
        if base is not None and name != baseline:
            base_packages: Mapping[str, str] = base.get("packages") or {}
            changes = [
                f"{pkg} {base_packages.get(pkg, '—')} → {packages.get(pkg, '—')}"
                for pkg in sorted(set(base_packages) | set(packages))
                if base_packages.get(pkg) != packages.get(pkg)
            ]
            if base.get("python") != env.get("python"):
                changes.insert(0, f"python {base.get('python')} → {env.get('python')}")
            moved = f"; vs {baseline}: " + (", ".join(changes) if changes else "no changes")
        console.print(
            f"[bold]{_safe(name)}[/]: Python {_safe(str(env.get('python')))}, "
            f"{len(packages)} packages" + _safe(moved)
        )


def render(data: Mapping[str, Any], console: Console, report_path: str | None = None) -> None:
    """The verdict table, the envs, the summary line, from the JSON report (as
    `json_report.to_json` makes it, or `json_report.read` reads it back)."""
    baseline = str(data.get("baseline", ""))
    title = f"nbguard: {_safe(_shown(str(data.get('course', ''))))}"
    table = Table(title=title, show_lines=True, expand=True)
    table.add_column("notebook", overflow="fold", ratio=2)
    table.add_column("verdict", no_wrap=True)
    table.add_column("what happened", overflow="fold", ratio=4)
    table.add_column("culprit", overflow="fold", ratio=2)
    # Worst first: the rows someone must act on lead the table.
    for nb in worst_first(data.get("notebooks") or []):
        verdict = str(nb.get("verdict"))
        table.add_row(
            _safe(str(nb["path"])),
            f"[{VERDICT_STYLE.get(verdict, 'bold')}]{_safe(verdict)}[/]",
            _safe(_redacted(_detail(nb, baseline))),
            _safe(_culprit(nb.get("culprit"))),
        )
    console.print(table)
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
    cost = data.get("blame")
    if cost:
        console.print(
            f"blame: {cost['notebooks']} notebooks, {cost['envs_built']} envs built, "
            f"{cost['envs_used']} probe envs used, {cost['seconds']:.1f}s"
        )
    if data.get("interrupted"):
        console.print("[yellow]interrupted: the report holds the notebooks that finished[/]")
    if report_path:
        console.print(f"report: {_safe(report_path)}")


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
