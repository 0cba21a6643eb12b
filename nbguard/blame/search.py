"""Blame's search: which change between two envs a notebook's failure follows, found by asking
a `Prober` for envs in between. A pure function of the prober's answers: no envs, no kernels,
no files (the real prober is blame.probes; the unit tests use a fake one)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from nbguard.model import Culprit, EnvInfo

PYTHON = "python"  # the candidate that stands for the interpreter itself

# What one probe env showed, measured against the failure being blamed: `same` the failure
# reproduces, `gone` it does not (the notebook runs, or gets past the failing cell), `other`
# it fails in another way that hides the answer, `unbuilt` no answer (the env could not be
# built, or the notebook could not be run in it).
Outcome = Literal["same", "gone", "other", "unbuilt"]
# Moving a group of packages from the failing env back to the running env's versions, or
# from the running env to the failing env's.
Direction = Literal["revert", "upgrade"]
# What a probe in each direction shows when the packages moved are the cause.
_SHOWS: Mapping[Direction, Outcome] = {"revert": "gone", "upgrade": "same"}
_OPPOSITE: Mapping[Outcome, Outcome] = {"gone": "same", "same": "gone"}


@dataclass(frozen=True)
class Seen:
    """One env the notebook ran in (or that gave no answer) and what that showed."""

    probe: str  # what was asked, as steps and reasons say it: "revert numpy 2.1.0 → 1.26.4"
    python: str | None
    packages: Mapping[str, str]
    outcome: Outcome
    detail: str  # "runs", "fails the same way (cell 3: AttributeError: …)", "cannot be built: …"
    # Packages that moved besides the ones asked for (the resolver had to move them along).
    moved: tuple[str, ...] = ()
    # The packages whose modules the run imported; None when not known. A package that
    # neither of two runs imported cannot tell them apart (scipy moved along with a numpy
    # bump, in a notebook that never imports scipy): no probe is spent on it.
    imported: frozenset[str] | None = None

    @property
    def clean(self) -> bool:
        """It answered, and for exactly what was asked."""
        return self.outcome != "unbuilt" and not self.moved


class Prober(Protocol):
    """Builds the envs between the two given ones and says what the notebook does in each."""

    def revert(self, names: Sequence[str]) -> Seen:
        """The failing env with `names` back at the running env's versions."""
        ...

    def upgrade(self, names: Sequence[str]) -> Seen:
        """The running env's packages, on the failing env's Python, with `names` at the
        failing env's versions."""
        ...

    def python(self) -> Seen:
        """The running env's packages on the failing env's Python, lifted: a version with no
        wheel there replaced by the nearest that has one (the forced bumps, which the Seen's
        packages show). From then on `revert` and `upgrade` stand on this lifted env."""
        ...

    def bump(self, names: Sequence[str]) -> Seen:
        """The running env on its own Python with `names` at their lifted versions: a forced
        bump tried where the old version also exists, apart from the Python."""
        ...

    def pin(self, versions: Mapping[str, str], old: bool = False) -> Seen:
        """The running env (lifted, when Python moved; on its own Python when `old`) with
        these exact versions: the dependencies an upgrade or bump dragged along, without
        it."""
        ...

    def moves(self, direction: Direction, names: Sequence[str]) -> tuple[str, ...] | None:
        """What `revert` or `upgrade` of `names` would move besides them, from its resolution
        alone (seconds, no env built, nothing run); None when it cannot be resolved."""
        ...

    def again(self) -> Seen:
        """The notebook run once more in the running env itself: an output that changes
        there too is noise (a clock, a random seed), which no probe may confirm."""
        ...


@dataclass(frozen=True)
class Question:
    """A failure to explain: the notebook runs in `before` and fails in `after`."""

    before: EnvInfo
    after: EnvInfo
    candidates: tuple[str, ...]  # what may have caused it, most likely first; PYTHON for Python
    fails: str = "fails the same way"  # how the failure showing reads ("changes the same way")
    # Packages whose versions tell nothing apart (ipykernel's machinery moves with any kernel).
    ignored: frozenset[str] = frozenset()
    # The packages the notebook's runs in `before` and `after` imported (None: not known).
    imported: tuple[frozenset[str] | None, frozenset[str] | None] = (None, None)


@dataclass(frozen=True)
class Finding:
    """The culprit confirmed by a pair of envs, or None and why no pair could be found."""

    culprit: Culprit | None
    why_not: str = ""


def find(question: Question, prober: Prober) -> Finding:
    """Probe until a pair of envs differing in one candidate (or a minimal group) shows the
    failure in one and not the other.

    The order: when Python moved, the running env's packages lifted to the new Python first
    (Python and packages are separate axes: if they run there, Python is innocent and every
    revert stands on that lifted env; if they fail the same way, Python or one of the forced
    bumps did it, told apart on the old Python); then the likeliest candidate reverted; then
    the smallest group of reverts that makes the failure go, found by delta debugging.
    """
    trail = _Trail(question, prober)
    candidates = question.candidates
    if not candidates:
        return Finding(None, "no package changed between the envs")
    if question.fails != "fails the same way":
        # An output that differs between two runs of one env would "change the same way" in
        # every probe, and any probe would seem to confirm a culprit.
        control = prober.again()
        if control.outcome in ("same", "other"):
            return Finding(None, f"the outputs differ between two runs in {control.probe} too")
    packages = [c for c in candidates if c != PYTHON]
    if trail.python_moved:
        found = _python(trail, packages)
        if found is not None:
            return Finding(found)
        if trail.python().outcome == "same":
            # Python or a forced bump: no revert on the new Python can take either back.
            return Finding(None, _why_not(trail, candidates))
    if packages and trail.python_moved and trail.python().outcome == "gone":
        _nearest_pair(trail, packages[0])
    elif packages:
        trail.revert([packages[0]])
        if trail.python_moved and not _pairs(trail, packages):
            _upgrade_alone(trail, packages[0])
    group: tuple[str, ...] = ()
    if not _pairs(trail, packages) and len(packages) > 1:
        group = _minimal_group(trail, "revert", packages)
    pairs = _pairs(trail, packages)
    if pairs:
        name = next(iter(pairs))
        return Finding(_single(trail, name, pairs[name], packages))
    if group:
        return Finding(_group(trail, group, "revert"))
    return Finding(None, _why_not(trail, candidates))


class _Trail:
    """The prober's answers so far, each question asked once; the two given envs first."""

    def __init__(self, question: Question, prober: Prober) -> None:
        self.question, self.prober = question, prober
        before, after = question.before, question.after
        running, failing = question.imported
        self.running = Seen(
            before.name,
            before.python,
            before.packages,
            "gone",
            f"runs in {before.name}",
            imported=running,
        )
        self.failing = Seen(
            after.name,
            after.python,
            after.packages,
            "same",
            f"{question.fails} in {after.name}",
            imported=failing,
        )
        self.seen: list[Seen] = [self.running, self.failing]
        self._answers: dict[tuple[str, tuple[str, ...]], Seen] = {}

    @property
    def python_moved(self) -> bool:
        return self.question.before.python != self.question.after.python

    def revert(self, names: Sequence[str]) -> Seen:
        return self._ask("revert", names, self.prober.revert)

    def upgrade(self, names: Sequence[str]) -> Seen:
        return self._ask("upgrade", names, self.prober.upgrade)

    def python(self) -> Seen:
        return self._ask("python", (), lambda _: self.prober.python())

    def bump(self, names: Sequence[str]) -> Seen:
        return self._ask("bump", names, self.prober.bump)

    def pin(self, versions: Mapping[str, str], old: bool = False) -> Seen:
        kind = "pin-old" if old else "pin"
        key = (kind, tuple(sorted(f"{n}=={v}" for n, v in versions.items())))
        if key not in self._answers:
            self._answers[key] = answer = self.prober.pin(versions, old)
            self.seen.append(answer)
        return self._answers[key]

    def bumps(self) -> list[str]:
        """The packages lifting the running env to the new Python had to move, in candidate
        order (the likeliest first)."""
        lifted, before = self.python(), self.question.before
        # Packages the bumps newly need (matplotlib 3.7 brings contourpy) count as bumps:
        # the old Python's probes pin them too, so nothing else moves along.
        moved = {
            name
            for name, version in lifted.packages.items()
            if name not in self.question.ignored and before.packages.get(name) != version
        }
        ranked = [c for c in self.question.candidates if c in moved]
        return ranked + sorted(moved - set(ranked))

    def probe(self, direction: Direction) -> Callable[[Sequence[str]], Seen]:
        return self.revert if direction == "revert" else self.upgrade

    def _ask(self, kind: str, names: Sequence[str], ask: Callable[[Sequence[str]], Seen]) -> Seen:
        key = (kind, tuple(sorted(names)))
        if key not in self._answers:
            self._answers[key] = answer = ask(list(names))
            self.seen.append(answer)
        return self._answers[key]

    def notes(self) -> list[str]:
        """Why probes could not answer, in the order they were asked."""
        notes: list[str] = []
        for seen in self.seen[2:]:
            if seen.outcome == "unbuilt":
                notes.append(f"{seen.probe}: {seen.detail}")
            elif seen.moved:
                notes.append(f"{seen.probe} also moves {', '.join(seen.moved)}")
        return list(dict.fromkeys(notes))


def _python(trail: _Trail, packages: Sequence[str]) -> Culprit | None:
    """Python's axis. The running env's packages lifted to the new Python: running there,
    Python is innocent (None: the packages are searched); failing the same way with no bump,
    Python is the culprit. Otherwise the forced bumps are tried on the old Python: the
    likeliest alone (failing there, it is the culprit, Python aside), then all together
    (running there while the lifted env fails, Python is the culprit), then all but one."""
    seen = trail.python()
    if seen.outcome in ("gone", "unbuilt") or seen.moved:
        return None
    before, after, fails = trail.question.before, trail.question.after, trail.question.fails
    bumps = trail.bumps()
    if not bumps:
        if seen.outcome != "same":
            return None
        reason = (
            f"rebuilt: the {before.name} packages on Python {after.python} {fails}, "
            f"on Python {before.python} they run"
        )
        return Culprit(PYTHON, before.python, after.python, "confirmed", reason)
    likeliest = [c for c in trail.question.candidates[:2] if c in bumps]
    if trail.question.candidates[0] != PYTHON:
        for name in likeliest:
            alone = trail.bump([name])
            pair = _pair_for(trail, name, added=True)
            if pair is None and alone.outcome == "same" and alone.moved and alone.packages:
                # What the bump dragged along, without it: the running half of the pair.
                trail.pin({n: alone.packages[n] for n in alone.moved}, old=True)
                pair = _pair_for(trail, name, added=True)
            if pair is not None:
                return _bumped(trail, name, pair)
    if seen.outcome != "same":
        return None
    everything = trail.bump(bumps)
    machinery = {
        n for n in trail.question.ignored if everything.packages.get(n) != seen.packages.get(n)
    }
    if machinery and trail.question.fails != "fails the same way":
        # An output change may come from the kernel's own machinery (matplotlib-inline's
        # figure size), which the lifted env takes from the new one: not Python's doing.
        return None
    if everything.outcome == "gone":
        shown = ", ".join(
            f"{n} {before.packages[n]} → {seen.packages.get(n, '-')}"
            for n in bumps
            if n in before.packages
        )
        reason = (
            f"rebuilt: the {before.name} packages lifted to Python {after.python} (forced "
            f"bumps {shown}) {fails}; the same versions on Python {before.python} run"
        )
        return Culprit(PYTHON, before.python, after.python, "confirmed", reason)
    if everything.outcome == "same":
        for name in likeliest:
            trail.bump([b for b in bumps if b != name])
            pair = _pair_for(trail, name, added=True)
            if pair is not None:
                return _bumped(trail, name, pair)
    return None


def _nearest_pair(trail: _Trail, name: str) -> None:
    """The lifted packages run on the new Python: `name` is probed between them and the
    failing env by the pair needing the fewest new envs, told by resolving before building.
    A revert that moves nothing else pairs with the failing env, an upgrade from the lifted
    env that moves nothing else with the lifted env (one env each); else the upgrade and
    what it moved without it (two: reverting on top of this semester's releases drags more
    along than upgrading from last semester's lifted to the new Python). The revert comes
    last when no pair was found."""
    if trail.prober.moves("revert", [name]) == ():
        trail.revert([name])
    elif trail.prober.moves("upgrade", [name]) == ():
        trail.upgrade([name])
    else:
        _upgrade_alone(trail, name)
    if not _pairs(trail, [name]):
        trail.revert([name])
    if not _pairs(trail, [name]):
        _upgrade_alone(trail, name)


def _upgrade_alone(trail: _Trail, name: str) -> None:
    """`name` upgraded from the running env (lifted), and, when the resolver moved other
    packages along, those packages at the same versions without it: the pair a revert that
    drags half the stack back (scipy 1.11 takes numpy < 1.28) cannot give."""
    seen = trail.upgrade([name])
    if seen.outcome == "same" and seen.moved and seen.packages and not _pairs(trail, [name]):
        trail.pin({n: seen.packages[n] for n in seen.moved if n in seen.packages})


def _pair_for(trail: _Trail, name: str, added: bool = False) -> tuple[Seen, Seen] | None:
    """A (failing, running) pair of observed envs differing in `name` alone; with `added`,
    also in packages the running env never had, which only `name`'s new version needs
    (tzdata for pandas 2)."""
    locked = trail.question.before.packages
    for bad in (s for s in trail.seen if s.outcome == "same"):
        for good in (s for s in trail.seen if s.outcome == "gone"):
            diff = _diff(bad, good, trail.question.ignored)
            if added:
                diff = {n for n in diff if n in (name, PYTHON) or n in locked or n in good.packages}
            if diff == {name}:
                return bad, good
    return None


def _bumped(trail: _Trail, name: str, pair: tuple[Seen, Seen]) -> Culprit:
    before, after, fails = trail.question.before, trail.question.after, trail.question.fails
    bad, good = pair
    reason = (
        f"rebuilt: the {before.name} packages lifted to Python {after.python} {fails} too; on "
        f"Python {before.python}, envs that differ only in {name}{_unimported(trail, pair)}: "
        f"{good.packages.get(name, '(absent)')} runs, {bad.packages.get(name, '(absent)')} "
        f"(the nearest to it with wheels for Python {after.python}; {after.name} has "
        f"{after.packages.get(name, '(absent)')}) {fails}"
    )
    return Culprit(name, before.packages.get(name), after.packages.get(name), "confirmed", reason)


def _diff(a: Seen, b: Seen, ignored: frozenset[str]) -> set[str]:
    """What tells the envs of two runs apart: the packages at other versions, but those
    neither run imported, and Python."""
    inert = _inert(a, b)
    names = {
        name
        for name in set(a.packages) | set(b.packages)
        if name not in ignored
        and name not in inert
        and a.packages.get(name) != b.packages.get(name)
    }
    return names | ({PYTHON} if a.python != b.python else set())


def _inert(a: Seen, b: Seen) -> frozenset[str]:
    """The packages at other versions in the two envs that neither run imported (known only
    when both runs' imports are): their code never ran, so they cannot have decided."""
    if a.imported is None or b.imported is None:
        return frozenset()
    return frozenset(
        name
        for name in set(a.packages) | set(b.packages)
        if a.packages.get(name) != b.packages.get(name)
        and name not in a.imported
        and name not in b.imported
    )


def _unimported(trail: _Trail, pair: tuple[Seen, Seen]) -> str:
    """ ", besides scipy, which neither run imported": what else the pair's envs differ in."""
    names = sorted(_inert(*pair) - trail.question.ignored)
    if not names:
        return ""
    return f", besides {', '.join(names)}, which neither run imported"


def _pairs(trail: _Trail, packages: Sequence[str]) -> dict[str, Seen]:
    """Packages isolated by a pair of observed envs — failing the same way with the package
    at one version, running with it at the other, nothing else different but ipykernel's
    machinery — in candidate order, each with the failing env of its pair."""
    found: dict[str, Seen] = {}
    failing = [s for s in trail.seen if s.outcome == "same"]
    running = [s for s in trail.seen if s.outcome == "gone"]
    for bad in failing:
        for good in running:
            diff = _diff(bad, good, trail.question.ignored)
            if len(diff) == 1 and diff <= set(packages):
                found.setdefault(next(iter(diff)), bad)
    return {name: found[name] for name in packages if name in found}


def _single(trail: _Trail, name: str, failing: Seen, packages: Sequence[str]) -> Culprit:
    """`name` isolated by a pair of envs; upgrading it alone from the running env tells
    whether it breaks the notebook by itself or together with other upgrades."""
    question = trail.question
    before, after, fails = question.before, question.after, question.fails
    old, new = before.packages[name], after.packages.get(name)
    context = sorted(_diff(failing, trail.failing, question.ignored) - {name, PYTHON})
    where = f"everything else as in {after.name}"
    if context:
        shown = ", ".join(f"{n} {failing.packages.get(n, '(absent)')}" for n in context)
        where += f" but {shown}"
    pair = _pair_for(trail, name)
    ran = pair[1].packages.get(name, old) if pair is not None else old
    if ran != old:
        ran = f"{ran} (nearest to {before.name}'s {old} with wheels for Python {after.python})"
    besides = _unimported(trail, pair) if pair is not None else ""
    isolated = f"envs that differ only in {name}{besides} ({where}): {ran} runs, {new} {fails}"
    if trail.python_moved and pair is not None:
        bad, good = pair
        isolated = (
            f"envs that differ only in {name}{besides}, on Python {after.python} "
            f"({good.probe}; {bad.probe}): {ran} runs, {bad.packages.get(name, new)} {fails}"
        )
    if trail.python_moved and trail.python().outcome != "gone":
        tail = f"upgrading {name} alone cannot be tried ({trail.python().detail})"
        return Culprit(name, old, new, "confirmed", f"{isolated}; {tail}")
    if trail.python_moved:
        # Python is innocent (the lifted packages run on it); one pair is the answer, and an
        # upgrade from the lifted env would cost a build for a reason's tail.
        tail = f"the {before.name} packages lifted to Python {after.python} run"
        return Culprit(name, old, new, "confirmed", f"{isolated}; {tail}")
    alone = trail.upgrade([name])
    if alone.outcome == "same" and alone.clean:
        tail = f"upgrading only {name} from {before.name} {fails} too"
    elif alone.outcome == "same":
        moved = ", ".join(alone.moved)
        tail = f"upgrading {name} from {before.name} (which moves {moved} too) {fails}"
    elif alone.outcome == "gone" and alone.clean:
        group = _minimal_group(trail, "upgrade", [name, *(p for p in packages if p != name)])
        if len(group) > 1:
            return _group(trail, group, "upgrade")
        tail = (
            f"upgrading only {name} from {before.name} runs: it breaks together with other upgrades"
        )
    else:
        tail = f"upgrading only {name} from {before.name}: {alone.detail}"
    return Culprit(name, old, new, "confirmed", f"{isolated}; {tail}")


def _minimal_group(trail: _Trail, direction: Direction, packages: Sequence[str]) -> tuple[str, ...]:
    """The smallest group of packages whose move in `direction` (together, nothing else
    moving) decides the failure: reverting them makes it go, or upgrading only them from the
    running env reproduces it; () unless that group was shown to be minimal."""
    probe, shows = trail.probe(direction), _SHOWS[direction]

    def holds(names: tuple[str, ...]) -> bool | None:
        if trail.prober.moves(direction, names) != ():
            # It would move other packages too (or cannot be resolved): no answer, and
            # resolving it said so in seconds, without building it.
            return None
        seen = probe(names)
        if not seen.clean:
            return None
        if seen.outcome == shows:
            return True
        return False if seen.outcome == _OPPOSITE[shows] else None

    if not holds(tuple(packages)):
        return ()
    group, minimal = _minimize(tuple(packages), holds)
    return group if minimal and len(group) > 1 else ()


def _minimize(
    items: tuple[str, ...], holds: Callable[[tuple[str, ...]], bool | None]
) -> tuple[tuple[str, ...], bool]:
    """Delta debugging (Zeller's ddmin, reducing to complements): a subset of `items`, which
    must hold, that still holds; and whether it is minimal — every subset one smaller was
    tried and answered False (None: the probe could not tell). One failing candidate among n
    takes about log2(n) probes, as bisection does."""
    current, chunks = items, 2
    while len(current) > 1:
        size = -(-len(current) // chunks)  # ceiling: no empty chunk
        parts = [current[i : i + size] for i in range(0, len(current), size)]
        answers: list[bool | None] = []
        for part in parts:
            rest = tuple(name for name in current if name not in part)
            answer = holds(rest)
            if answer:
                current, chunks = rest, max(chunks - 1, 2)
                break
            answers.append(answer)
        else:
            if chunks >= len(current):
                return current, all(answer is False for answer in answers)
            chunks = min(chunks * 2, len(current))
    # One left: the empty revert (or upgrade) is the failing (or running) env given.
    return current, True


def _group(trail: _Trail, group: tuple[str, ...], direction: Direction) -> Culprit:
    names = sorted(group)
    before, after = trail.question.before, trail.question.after
    joined = " and ".join(names)
    if direction == "upgrade":
        reason = (
            f"{joined} break together: upgrading all of them from {before.name} "
            f"{trail.question.fails}, leaving any one at its {before.name} version runs"
        )
    else:
        together = trail.upgrade(names)
        reason = (
            f"reverting {joined} together makes the failure go, reverting any one alone does "
            f"not; upgrading only them from {before.name}: {together.detail}"
        )
    return Culprit(
        " + ".join(names),
        " + ".join(before.packages[n] for n in names),
        " + ".join(after.packages.get(n, "(absent)") for n in names),
        "confirmed",
        f"rebuilt: {reason}",
    )


def _why_not(trail: _Trail, candidates: Sequence[str]) -> str:
    notes = trail.notes()
    if notes:
        return "; ".join(notes)
    return (
        f"no rebuilt env isolated one change among {', '.join(candidates)} "
        "(each probe still showed the failure, or failed differently)"
    )
