"""Volatile outputs: what differs between two runs of a notebook in one env, or what a tag or
metadata says varies, so that it is masked (and listed) when envs are compared."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from nbguard.compare.normalize import NormalizedOutput, is_binary_mime, normalize_outputs_traced
from nbguard.compare.text import (
    ALL_NUMBERS,
    Varying,
    carried_tokens,
    compare_text,
    html_as_text,
    varying_tokens,
)
from nbguard.model import CellResult, Note, Notebook, NotebookRun, Tolerance

# (mime, before, after) -> whether two images look the same.
ImagesAlike = Callable[[str, str, str], bool]


@dataclass(frozen=True)
class CellVolatility:
    """What of one cell's outputs varies from run to run, and how nbguard knows."""

    reason: str  # "differs between two locked runs", "tagged nbguard-volatile"
    example: str = ""  # the first difference seen, one short line
    # Outputs came and went between the runs: only the cell's errors are compared.
    whole: bool = False
    # Payloads (by mime) not compared in this cell: images that differ, texts whose lines do.
    payloads: frozenset[str] = frozenset()
    # Every number and image of the cell varies (a tag says so).
    numbers: bool = False
    # (mime, the baseline's normalized payload) -> the varying tokens of the text it shows.
    tokens: Mapping[tuple[str, str], frozenset[int]] = field(default_factory=dict)

    def skips(self, mime: str) -> bool:
        """Whether the payload `mime` of this cell is left out of the comparison."""
        return mime in self.payloads or (self.numbers and is_binary_mime(mime))

    def mask(self, mime: str, payload: str) -> Varying | None:
        """What of the baseline's `payload` to mask (text.mask_varying); None: nothing."""
        if self.numbers:
            return ALL_NUMBERS
        return self.tokens.get((mime, payload))

    def note(self, env: str, cell: int) -> Note:
        example = f" ({self.example})" if self.example else ""
        return Note(env, cell, "volatile", f"{self.reason}{example}")


Volatility = Mapping[int, CellVolatility]


def declared(notebook: Notebook, cells: Iterable[CellResult]) -> dict[int, CellVolatility]:
    """The cells the notebook says vary: tagged nbguard-volatile, or all of them with the
    notebook's metadata nbguard.volatile."""
    if notebook.volatile:
        reason = "notebook metadata nbguard.volatile: numbers and images not compared"
        return {cell.index: CellVolatility(reason, numbers=True) for cell in cells if cell.outputs}
    # The tag of nbguard.execute.tags (not imported: comparing needs no kernel machinery).
    reason = "tagged nbguard-volatile: numbers and images not compared"
    return {cell.index: CellVolatility(reason, numbers=True) for cell in cells if cell.volatile}


def learned(
    first: NotebookRun,
    second: NotebookRun,
    replacements: Iterable[tuple[str, str]],
    tolerance: Callable[[int], Tolerance],
    images_alike: ImagesAlike,
) -> dict[int, CellVolatility]:
    """What differs between two runs of the same notebook in the same env, cell by cell.

    Nothing is learned unless both runs ran through: a run that failed says nothing about
    which of its outputs vary."""
    return {
        index: varies
        for index, varies, _ in _varying(first, second, replacements, tolerance, images_alike)
    }


def _varying(
    first: NotebookRun,
    second: NotebookRun,
    replacements: Iterable[tuple[str, str]],
    tolerance: Callable[[int], Tolerance],
    images_alike: ImagesAlike,
) -> Iterator[tuple[int, CellVolatility, tuple[NormalizedOutput, ...]]]:
    """Each cell whose outputs differ between the two runs: its index, what varies, and the
    first run's outputs as normalized (what the volatility's tokens are keyed by)."""
    if first.status != "ok" or second.status != "ok":
        return
    reason = f"differs between two {first.env} runs"
    seconds = {cell.index: cell for cell in second.cells}
    for cell in first.cells:
        again = seconds.get(cell.index)
        if again is None:
            continue
        one = normalize_outputs_traced(cell.outputs, first, replacements)
        two = normalize_outputs_traced(again.outputs, second, replacements)
        varies = _cell(reason, one, two, tolerance(cell.index), images_alike)
        if varies is not None:
            yield cell.index, varies, one


def learned_elsewhere(
    baseline: NotebookRun,
    first: NotebookRun,
    second: NotebookRun,
    replacements: Iterable[tuple[str, str]],
    tolerance: Callable[[int], Tolerance],
    images_alike: ImagesAlike,
) -> dict[int, CellVolatility]:
    """What differs between two runs of the notebook in another env, found in the baseline's
    outputs: a number the two baseline runs happened to print alike (a 15 ms timing at three
    decimals) that the other env's two runs print apart varies all the same."""
    if baseline.status != "ok":
        return {}
    found: dict[int, CellVolatility] = {}
    bases = {cell.index: cell for cell in baseline.cells}
    for index, varies, normalized in _varying(first, second, replacements, tolerance, images_alike):
        cell = bases.get(index)
        if cell is None:
            continue
        if varies.whole:
            found[index] = replace(varies, tokens={})
            continue
        others = [n.output for n in normalized]
        base = [n.output for n in normalize_outputs_traced(cell.outputs, baseline, replacements)]
        payloads = set(varies.payloads)
        tokens: dict[tuple[str, str], frozenset[int]] = {}
        for (mime, value), indices in varies.tokens.items():
            position = next((k for k, o in enumerate(others) if o.data.get(mime) == value), None)
            if position is None or position >= len(base):
                continue
            theirs = base[position].data.get(mime)
            if theirs is None:
                continue  # the baseline has no such output: nothing of it to mask
            shown, shown_base = value, theirs
            if mime == "text/html":
                shown, shown_base = html_as_text(value), html_as_text(theirs)
            carried = carried_tokens(shown, shown_base, indices)
            if carried is None:
                payloads.add(mime)
            else:
                tokens[(mime, theirs)] = carried
        if payloads or tokens:
            found[index] = replace(varies, payloads=frozenset(payloads), tokens=tokens)
    return found


def merged(*found: Mapping[int, CellVolatility]) -> dict[int, CellVolatility]:
    """The volatility several pairs of runs taught, cell by cell: whatever any of them saw vary."""
    out: dict[int, CellVolatility] = {}
    for each in found:
        for index, varies in each.items():
            known = out.get(index)
            if known is None:
                out[index] = varies
                continue
            tokens = dict(known.tokens)
            for key, indices in varies.tokens.items():
                tokens[key] = tokens.get(key, frozenset()) | indices
            out[index] = replace(
                known,
                whole=known.whole or varies.whole,
                payloads=known.payloads | varies.payloads,
                numbers=known.numbers or varies.numbers,
                tokens=tokens,
            )
    return out


def _cell(
    reason: str,
    one: tuple[NormalizedOutput, ...],
    two: tuple[NormalizedOutput, ...],
    tolerance: Tolerance,
    images_alike: ImagesAlike,
) -> CellVolatility | None:
    firsts, seconds = [n.output for n in one], [n.output for n in two]
    if firsts == seconds:
        return None
    if [o.kind for o in firsts] != [o.kind for o in seconds] or any(
        a.data.keys() != b.data.keys() for a, b in zip(firsts, seconds, strict=True)
    ):
        return CellVolatility(reason, f"outputs: {len(firsts)} → {len(seconds)}", whole=True)
    payloads: set[str] = set()
    tokens: dict[tuple[str, str], frozenset[int]] = {}
    examples: list[str] = []
    for before, after in zip(firsts, seconds, strict=True):
        for mime, value in before.data.items():
            other = after.data[mime]
            if value == other:
                continue
            if is_binary_mime(mime):
                if not images_alike(mime, value, other):
                    payloads.add(mime)
                    examples.append(f"{mime} differs")
                continue
            shown = html_as_text(value) if mime == "text/html" else value
            shown_again = html_as_text(other) if mime == "text/html" else other
            if shown == shown_again:
                continue
            # Learned even when within tolerance: one more run may land far away.
            difference = compare_text(shown, shown_again, tolerance)
            examples.append(difference.summary if difference else "numbers within tolerance")
            varying = varying_tokens(shown, shown_again, tolerance)
            if varying is None:
                payloads.add(mime)
            else:
                tokens[(mime, value)] = varying
    if not payloads and not tokens:
        return None
    return CellVolatility(
        reason,
        _clip(examples[0]) if examples else "",
        payloads=frozenset(payloads),
        tokens=tokens,
    )


def _clip(text: str, width: int = 80) -> str:
    line = text.strip().split("\n")[0]
    return line if len(line) <= width else line[: width - 1] + "…"
