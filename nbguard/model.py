"""The frozen values that flow between pipeline stages; imports nothing from nbguard."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# How one notebook ended in one environment; `internal-error`: nbguard's own code failed
# while handling it (a bug of nbguard's, not of the notebook or the env).
RunStatus = Literal[
    "ok", "error", "timeout", "dead-kernel", "env-failed", "skipped", "internal-error"
]
FAILED_STATUSES: frozenset[str] = frozenset({"error", "timeout", "dead-kernel", "env-failed"})

# The user-facing verdict vocabulary (DESIGN.md); keep it stable. `internal-error`: nbguard
# could not judge the notebook because its own code failed (exit code 3, never hidden).
Verdict = Literal[
    "internal-error", "ok", "warnings", "changed", "broken", "already-broken", "fixed", "skipped"
]
# From most to least severe: reports list notebooks in this order.
VERDICTS: tuple[Verdict, ...] = (
    "internal-error",
    "broken",
    "changed",
    "already-broken",
    "warnings",
    "fixed",
    "ok",
    "skipped",
)

# How one cell ended: `not-run` when an earlier cell stopped the notebook.
CellStatus = Literal["ok", "error", "skipped", "not-run"]

# What kind of difference a change is: `value` numbers beyond tolerance, `repr` the same
# value printed differently (3.0 → np.float64(3.0)), `text` other text, `image` pixels.
ChangeKind = Literal["error", "value", "repr", "text", "image", "missing-output", "new-output"]


@dataclass(frozen=True)
class Tolerance:
    """How far numbers in outputs may move and still count as equal."""

    rel: float = 1e-6
    abs: float = 1e-12

    @classmethod
    def from_metadata(cls, value: object) -> Tolerance | None:
        """`1e-3` (relative) or `{"rel": 1e-3, "abs": 1e-9}` from notebook or cell metadata;
        None for anything else (metadata is hand-edited; a bad value must not stop a run)."""
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float) and value >= 0:
            return cls(rel=float(value))
        if isinstance(value, dict):
            rel, abs_ = value.get("rel", cls.rel), value.get("abs", cls.abs)
            valid = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (rel, abs_))
            if valid and rel >= 0 and abs_ >= 0:
                return cls(rel=float(rel), abs=float(abs_))
        return None


@dataclass(frozen=True)
class Notebook:
    """A notebook of the course: where it is and what it asks for."""

    path: str  # POSIX, relative to the course root
    sha256: str
    kernel_name: str  # from the notebook's kernelspec ("python3" when absent)
    language: str  # from language_info / kernelspec ("python" when absent)
    skip_reason: str | None = None  # set when config or metadata excludes it
    tolerance: Tolerance | None = None  # from the notebook's metadata nbguard.tolerance
    volatile: bool = False  # metadata nbguard.volatile: its numbers and images vary by run


# Whose code a warning points at (its stacklevel-resolved file): the course's own (a cell, a
# course module), which the course can fix, or a library's, which it cannot.
WarningOrigin = Literal["course", "library"]


@dataclass(frozen=True)
class WarningRecord:
    """A deprecation-family warning emitted while a cell ran."""

    cell: int
    category: str  # e.g. "DeprecationWarning", "MatplotlibDeprecationWarning"
    message: str
    package: str | None  # distribution that emitted it; None when unknown
    origin: WarningOrigin = "course"

    def to_json(self) -> dict[str, object]:
        return {
            "cell": self.cell,
            "category": self.category,
            "message": self.message,
            "package": self.package,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class CellError:
    """The exception a cell raised (or the reason it could not finish)."""

    cell: int
    ename: str
    evalue: str
    traceback: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"cell": self.cell, "ename": self.ename, "evalue": self.evalue}


@dataclass(frozen=True)
class Output:
    """One output of a cell, reduced to what comparison needs.

    `kind` is the nbformat output_type (stream, execute_result, display_data, error);
    `data` maps a mime type (or "stdout"/"stderr" for streams) to text; binary payloads such
    as images stay base64 text, as nbformat stores them.
    """

    kind: str
    data: Mapping[str, str]


@dataclass(frozen=True)
class CellResult:
    index: int  # position in the notebook, code and markdown cells alike
    status: CellStatus
    source: str
    outputs: tuple[Output, ...] = ()
    allowed_error: bool = False  # tagged raises-exception
    # Tagged nbguard-ignore-output / nbval-ignore-output or marked # NBVAL_IGNORE_OUTPUT:
    # runs, but its outputs are not compared.
    ignore_output: bool = False
    tolerance: Tolerance | None = None  # from the cell's metadata nbguard.tolerance
    volatile: bool = False  # tagged nbguard-volatile: its numbers and images vary by run


@dataclass(frozen=True)
class InternalError:
    """nbguard's own code raised while handling one notebook: what it was doing, and the
    traceback a bug report needs. The audit goes on; the notebook shows this instead."""

    stage: str  # e.g. "executing in upcoming", "comparing"
    ename: str
    message: str
    traceback: str

    def to_json(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "ename": self.ename,
            "message": self.message,
            "traceback": self.traceback,
        }


@dataclass(frozen=True)
class Touched:
    """What of its env a run used, as the kernel recorded it: enough to tell whether another
    env would have run the notebook the same way (execute/alike.py)."""

    entries: tuple[str, ...] = ()  # top-level entries of site-packages it imported or read
    names: tuple[str, ...] = ()  # top-level module names it looked up, found or not
    env_files: tuple[str, ...] = ()  # files of the env outside site-packages it read
    # Why the run may depend on anything in its env (it started a process, it enumerated
    # the installed distributions); None when the record bounds what it used.
    anything: str | None = None


@dataclass(frozen=True)
class NotebookRun:
    """One notebook executed in one environment. Failures are data, never exceptions."""

    notebook: str
    env: str
    status: RunStatus
    duration_s: float
    cells: tuple[CellResult, ...] = ()
    error: CellError | None = None  # the first error: the one that decides the verdict
    warnings: tuple[WarningRecord, ...] = ()
    reason: str | None = None  # human text for timeout/dead-kernel/env-failed/skipped
    # With keep-going: the independent errors after the first one (not the NameErrors of
    # names the failed cells never defined).
    later_errors: tuple[CellError, ...] = ()
    # Paths that appear in outputs but differ between any two runs (the scratch copy of the
    # course, the env's prefix), each with the placeholder normalization puts in its place.
    volatile_paths: tuple[tuple[str, str], ...] = ()
    internal: InternalError | None = None  # set with status "internal-error"
    # How the kernel was isolated, e.g. "bwrap: read-only system and env, private home/tmp,
    # pid namespace" or "none: <why not>"; "" when no kernel started.
    isolation: str = ""
    # What the run read of the course, course-relative POSIX paths: files it opened, and
    # folders it listed (ending in "/"); None when they were not recorded (no kernel, or
    # its record was lost), and then the run is never reused (execute/memo.py).
    reads: tuple[str, ...] | None = None
    # The env's module files the kernel imported, relative to its site-packages: what a
    # probe env compiles to bytecode before it runs the notebook (envs/bytecode.py).
    imports: tuple[str, ...] = ()
    # What of the env the run used; None when not recorded (then no other env takes it).
    touched: Touched | None = None
    cached: bool = False  # taken from the execution cache, not executed again
    # The env whose run this is: every file that run used of its env is the same in this
    # one, on the same interpreter, so executing it here would run the same code (alike.py).
    reused_from: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass(frozen=True)
class Change:
    """One difference between the baseline run and another env's run of a notebook."""

    env: str
    cell: int
    kind: ChangeKind
    # The two texts as compared, after normalization (an HTML output as the text it shows, an
    # image as its description), long ones cut alike around the changes; None where that
    # side has no such output. Reports draw the diff from these.
    before: str | None
    after: str | None
    # The normalizers and tolerances that were applied before this difference was found,
    # so nothing is masked invisibly (e.g. "addresses", "rel_tol=1e-06").
    applied: tuple[str, ...] = ()
    # For an image change: (mime, before, after) as base64, so a report can show both.
    images: tuple[str, str, str] | None = None
    # One line naming the difference, e.g. "0.023 → 0.021 (rel 8.7%)"; None when the two
    # texts say it all.
    summary: str | None = None
    # What the texts were compared with: a report's diff then marks as changed only the lines
    # the comparison found changed. None: compared as they are.
    tolerance: Tolerance | None = None

    def to_json(self) -> dict[str, object]:
        tolerance = self.tolerance
        shown: dict[str, object] = {
            "env": self.env,
            "cell": self.cell,
            "kind": self.kind,
            "summary": self.summary,
            "before": self.before,
            "after": self.after,
            "applied": list(self.applied),
            "tolerance": {"rel": tolerance.rel, "abs": tolerance.abs} if tolerance else None,
        }
        if self.images is not None:
            mime, before, after = self.images
            shown["images"] = {"mime": mime, "before": before, "after": after}
        return shown


# A difference nbguard saw and did not count: `volatile` differs between two runs of the same
# env (or is tagged so), `cosmetic` shows the same thing differently (a figure's size).
NoteKind = Literal["volatile", "cosmetic"]


@dataclass(frozen=True)
class Note:
    """A difference that is not a change, said so the report hides nothing."""

    env: str
    cell: int
    kind: NoteKind
    text: str  # "differs between two locked runs (took 0.059 s → took 0.062 s)"

    def to_json(self) -> dict[str, object]:
        return {"env": self.env, "cell": self.cell, "kind": self.kind, "text": self.text}


@dataclass(frozen=True)
class Culprit:
    package: str  # distribution name, or "python"
    from_version: str | None
    to_version: str | None
    evidence: Literal["confirmed", "inferred"]
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "package": self.package,
            "from": self.from_version,
            "to": self.to_version,
            "evidence": self.evidence,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class HiddenBreak:
    """A second break a blame probe revealed: with the first failure out of the way, the
    notebook got past its cell and failed in a later one."""

    env: str  # the env whose comparison was blamed
    cell: int
    ename: str
    evalue: str  # its first line
    probe: str  # the probe env it showed in: "revert scipy 1.17.0 → 1.11.2"
    culprit: Culprit | None = None  # at least inferred from that run's evidence

    def to_json(self) -> dict[str, object]:
        return {
            "env": self.env,
            "cell": self.cell,
            "ename": self.ename,
            "evalue": self.evalue,
            "probe": self.probe,
            "culprit": self.culprit.to_json() if self.culprit else None,
        }


@dataclass(frozen=True)
class Comparison:
    """The baseline env's run of a notebook against one other env's run."""

    notebook: str
    baseline: str
    env: str
    verdict: Verdict
    changes: tuple[Change, ...] = ()
    culprit: Culprit | None = None
    hidden: tuple[HiddenBreak, ...] = ()  # later breaks blame's probes revealed
    notes: tuple[Note, ...] = ()  # volatile and cosmetic differences, not counted


@dataclass(frozen=True)
class EnvInfo:
    """A built (or failed) environment as the report shows it."""

    name: str
    python: str | None  # full version, e.g. "3.11.7"
    packages: Mapping[str, str]  # canonical distribution name -> version
    fingerprint: str | None
    interpreter: Path | None = None  # the env's own python; None when the build failed
    error: str | None = None  # why it could not be built
    reused: bool = False  # True when taken from the cache as it was
    build_s: float = 0.0
    # The canonical names the env's requirements input asks for itself (its direct
    # requirements), which reports list before the packages they pull in; () when unknown.
    requirements: tuple[str, ...] = ()
    # What a user should know about how it was built: packages a preset left out.
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and self.interpreter is not None


@dataclass(frozen=True)
class Hint:
    """The fix a library's own message suggests, and where that message came from."""

    cell: int
    hint: str
    source: str  # e.g. "DeprecationWarning (numpy)" or "AttributeError"
    # The library's whole message the one-line hint was taken from (code samples included);
    # None when the hint says it all.
    detail: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"cell": self.cell, "hint": self.hint, "source": self.source, "detail": self.detail}


@dataclass(frozen=True)
class FileFix:
    """One course file a fix edits: its whole text before and after (a notebook's JSON text
    with only cell sources changed)."""

    path: str  # POSIX, relative to the course root
    before: str
    after: str


@dataclass(frozen=True)
class Fix:
    """A source edit that was verified: the notebook, patched in a scratch copy, ran past the
    cell that failed in the upcoming env."""

    env: str  # the env it was made for (the one the notebook broke in)
    steps: tuple[str, ...]  # each edit and where it came from, in the order applied
    sources: tuple[str, ...]  # "library", "ruff", "rule"
    files: tuple[FileFix, ...]
    diff: str  # the cell sources (and modules) before and after, as a unified diff
    # The envs the patched notebook runs in: `env`, and the baseline when the fix suits both.
    runs_in: tuple[str, ...]
    after: str  # the patched notebook's verdict in `env` against the baseline run
    remaining: str | None = None  # the next independent break, when it stops at a later cell

    def to_json(self) -> dict[str, object]:
        return {
            "env": self.env,
            "steps": list(self.steps),
            "sources": list(self.sources),
            "files": [file.path for file in self.files],
            "diff": self.diff,
            "runs_in": list(self.runs_in),
            "after": self.after,
            "remaining": self.remaining,
        }


@dataclass(frozen=True)
class NotebookReport:
    path: str
    verdict: Verdict
    runs: Mapping[str, NotebookRun]
    comparisons: tuple[Comparison, ...] = ()
    skip_reason: str | None = None
    # For a broken notebook: the deprecation warnings the baseline run already emitted
    # about the API that broke, the early warning the course ignored.
    foreshadowing: tuple[WarningRecord, ...] = ()
    hints: tuple[Hint, ...] = ()
    internal: InternalError | None = None  # set with verdict "internal-error"
    fix: Fix | None = None  # with --fix, for a broken notebook: the verified fix
    # The papermill parameters the notebook ran with, the same in every env.
    parameters: Mapping[str, object] = field(default_factory=dict)
    # The notebook's second runs, which told volatile outputs from changes: in the baseline
    # env first, then in any env where only numbers still differed.
    reruns: tuple[NotebookRun, ...] = ()

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(change for comp in self.comparisons for change in comp.changes)

    @property
    def notes(self) -> tuple[Note, ...]:
        # The baseline's volatility is the same against every env: listed once.
        unique: dict[tuple[int, str, str], Note] = {}
        for comparison in self.comparisons:
            for note in comparison.notes:
                unique.setdefault((note.cell, note.kind, note.text), note)
        return tuple(unique.values())

    @property
    def culprit(self) -> Culprit | None:
        return next((c.culprit for c in self.comparisons if c.culprit is not None), None)

    @property
    def hidden_breaks(self) -> tuple[HiddenBreak, ...]:
        return tuple(hidden for c in self.comparisons for hidden in c.hidden)


@dataclass(frozen=True)
class BlameCost:
    """What confirming culprits cost: the probe envs it built or reused, and the time."""

    notebooks: int
    envs_built: int
    envs_used: int
    seconds: float
    steps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # notebook → log

    def to_json(self) -> dict[str, object]:
        return {
            "notebooks": self.notebooks,
            "envs_built": self.envs_built,
            "envs_used": self.envs_used,
            "seconds": round(self.seconds, 3),
            "steps": {path: list(steps) for path, steps in self.steps.items()},
        }


@dataclass(frozen=True)
class Report:
    course: str
    baseline: str
    envs: Mapping[str, EnvInfo]
    notebooks: tuple[NotebookReport, ...]
    created: str
    duration_s: float
    interrupted: bool = False
    settings: Mapping[str, object] = field(default_factory=dict)
    blame: BlameCost | None = None  # set when culprits were confirmed (--blame)

    @property
    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(VERDICTS, 0)
        for notebook in self.notebooks:
            counts[notebook.verdict] += 1
        return counts
