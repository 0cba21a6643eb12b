"""A broken notebook's fix, verified: candidates applied to scratch copies and run in the env
it broke in until one gets past the failing cell, then tried in the baseline env too."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from nbguard import compare
from nbguard.blame.hints import first_sentence
from nbguard.fix import ipynb
from nbguard.fix.candidates import Candidate, Code, candidates
from nbguard.model import CellError, EnvInfo, FileFix, Fix, Hint, NotebookReport, NotebookRun

# A fix may take the notebook past its first break to a second one, and that one be fixed
# too; beyond three, the course needs a person more than a patch.
MAX_ROUNDS = 3

# Runs the notebook with its code as given in a scratch copy of the course, in one env.
Trial = Callable[[Code, EnvInfo], NotebookRun]
# A course file's text, by course-relative path; None when it cannot be read.
Reader = Callable[[str], str | None]


@dataclass(frozen=True)
class Outcome:
    fix: Fix | None
    hints: tuple[Hint, ...]  # the candidates that did not verify


def fix_notebook(
    nb: NotebookReport,
    env: str,
    baseline: EnvInfo | None,
    upcoming: EnvInfo,
    trial: Trial,
    read: Reader,
    options: compare.CompareOptions,
    baseline_name: str,
) -> Outcome:
    """The verified fix of `nb`, broken in `env`, or the candidates tried as hints."""
    run = nb.runs[env]
    text = read(nb.path)
    if run.error is None or text is None:
        return Outcome(None, ())
    original = Code(ipynb.code_sources(text))
    bar = run.error.cell
    code, error, last = original, run.error, run
    steps: list[Candidate] = []
    tried: list[Hint] = []
    for _round in range(MAX_ROUNDS):
        code = _with_modules(code, error, last, read)
        messages = [record.message for each in nb.runs.values() for record in each.warnings]
        messages += [record.message for record in last.warnings]
        found = candidates(code, error, messages, baseline, upcoming)
        accepted: tuple[Candidate, NotebookRun] | None = None
        for candidate in found:
            result = trial(candidate.code, upcoming)
            if _progress(result, error):
                accepted = candidate, result
                break
            tried.append(
                Hint(error.cell, f"tried, did not run: {candidate.description}",
                     f"nbguard fix ({candidate.source}): {_failure(result)}")
            )  # fmt: skip
        if accepted is None:
            break
        steps.append(accepted[0])
        code, last = accepted[0].code, accepted[1]
        if last.error is None or not last.failed:
            break
        error = last.error
    if not steps or not _past(last, bar):
        # Edits that changed the error but never got past the cell are hints too.
        tried += [
            Hint(bar, f"tried, did not run: {step.description}",
                 f"nbguard fix ({step.source}): {_failure(last)}")
            for step in steps
        ]  # fmt: skip
        return Outcome(None, tuple(tried))
    runs_in = [env]
    before = nb.runs.get(baseline_name)
    after = "broken"
    if before is not None:
        # The verdict `nbguard run` gives once the fix is applied: the baseline env runs the
        # patched code too ("fixed" when it lacks the new API).
        patched = trial(code, baseline) if baseline is not None and not before.failed else None
        if patched is not None:
            if not patched.failed:
                runs_in.append(baseline_name)
            before = patched
        after = compare.compare_runs(before, last, options).verdict
    files = _files(nb.path, text, original, code, read)
    fix = Fix(
        env=env,
        steps=tuple(step.description for step in steps),
        sources=tuple(dict.fromkeys(step.source for step in steps)),
        files=files,
        diff=source_diff(nb.path, original, code, read),
        runs_in=tuple(runs_in),
        after=after,
        remaining=_failure(last) if last.failed else None,
    )
    return Outcome(fix, tuple(tried))


def _progress(result: NotebookRun, error: CellError) -> bool:
    """Past the failing cell, or stopped in it by another error (a second removal on a
    later line, for the next round)."""
    if not result.failed:
        return True
    if result.error is None:
        return False
    if result.error.cell > error.cell:
        return True
    return result.error.cell == error.cell and (result.error.ename, result.error.evalue) != (
        error.ename,
        error.evalue,
    )


def _past(result: NotebookRun, cell: int) -> bool:
    return not result.failed or (result.error is not None and result.error.cell > cell)


def _failure(result: NotebookRun) -> str:
    if not result.failed:
        return "ran"
    if result.error is not None:
        line = first_sentence(result.error.evalue)
        return f"cell {result.error.cell}: {result.error.ename}: {line}"
    return result.reason or result.status


def _with_modules(code: Code, error: CellError, run: NotebookRun, read: Reader) -> Code:
    """`code` with the course modules the error's traceback went through."""
    places = [path for path, shown in run.volatile_paths if shown == "<course>"]
    trace = "\n".join(error.traceback)
    files = dict(code.files)
    for path in _course_frames(trace, places):
        if path not in files:
            text = read(path)
            if text is not None:
                files[path] = text
    return Code(code.cells, files)


def _course_frames(trace: str, places: list[str]) -> list[str]:
    found: list[str] = []
    for place in places:
        for match in re.finditer(re.escape(place.rstrip("/")) + r"/([^\s:\"'<>]+?\.py)\b", trace):
            found.append(match.group(1))
    return list(dict.fromkeys(found))


def _files(path: str, text: str, original: Code, code: Code, read: Reader) -> tuple[FileFix, ...]:
    changed = {i: s for i, s in code.cells.items() if original.cells.get(i) != s}
    files = []
    if changed:
        files.append(FileFix(path, text, ipynb.replace_sources(text, changed)))
    for module, after in sorted(code.files.items()):
        before = read(module)
        if before is not None and before != after:
            files.append(FileFix(module, before, after))
    return tuple(files)


def source_diff(path: str, original: Code, code: Code, read: Reader) -> str:
    """The changed cell sources and modules as one unified diff, cell by cell."""
    parts: list[str] = []
    for index in sorted(code.cells):
        before, after = original.cells.get(index, ""), code.cells[index]
        if before != after:
            parts.append(_diff(before, after, f"{path} (cell {index})"))
    for module, after in sorted(code.files.items()):
        before = read(module) or ""
        if before != after:
            parts.append(_diff(before, after, module))
    return "".join(parts)


def _diff(before: str, after: str, name: str) -> str:
    lines = difflib.unified_diff(
        _lines(before), _lines(after), fromfile=name, tofile=name, lineterm="\n"
    )
    return "".join(lines)


def _lines(text: str) -> list[str]:
    return [line if line.endswith("\n") else line + "\n" for line in text.splitlines(True)]
