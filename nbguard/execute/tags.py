"""What a cell's tags, nbval comment markers and nbguard metadata ask of a run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nbguard.model import CellResult, CellStatus, Output, Tolerance

# Cell tags and comment markers, nbguard's own and those of nbclient and nbval, so a course
# migrating from nbval keeps its annotations.
_SKIP_TAGS = frozenset({"skip-execution", "nbguard-skip", "nbval-skip"})
_ALLOWED_ERROR_TAGS = frozenset({"raises-exception", "nbval-raises-exception"})
_IGNORE_OUTPUT_TAGS = frozenset({"nbguard-ignore-output", "nbval-ignore-output"})
# Outputs that vary from run to run (random draws, timings): their numbers and images are not
# compared, their words and errors still are.
VOLATILE_TAG = "nbguard-volatile"
_MARKERS = {
    "NBVAL_SKIP": _SKIP_TAGS,
    "NBVAL_RAISES_EXCEPTION": _ALLOWED_ERROR_TAGS,
    "NBVAL_IGNORE_OUTPUT": _IGNORE_OUTPUT_TAGS,
}
_MARKER_LINE = re.compile(r"^\s*#\s*(NBVAL_[A-Z_]+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class CellFlags:
    skip: bool
    allowed_error: bool
    ignore_output: bool
    tolerance: Tolerance | None
    volatile: bool = False


def cell_flags(cell: Any) -> CellFlags:
    """What a cell's tags, nbval comment markers and metadata ask of nbguard."""
    tags = {str(tag) for tag in cell.metadata.get("tags", ()) or ()}
    for marker in _MARKER_LINE.findall(str(cell.source)):
        tags |= _MARKERS.get(marker, frozenset())
    own = cell.metadata.get("nbguard")
    return CellFlags(
        skip=bool(tags & _SKIP_TAGS),
        allowed_error=bool(tags & _ALLOWED_ERROR_TAGS),
        ignore_output=bool(tags & _IGNORE_OUTPUT_TAGS),
        tolerance=Tolerance.from_metadata(own.get("tolerance")) if isinstance(own, dict) else None,
        volatile=VOLATILE_TAG in tags or (isinstance(own, dict) and own.get("volatile") is True),
    )


def cell_result(
    index: int, cell: Any, flags: CellFlags, status: CellStatus, outputs: tuple[Output, ...] = ()
) -> CellResult:
    return CellResult(
        index,
        status,
        cell.source,
        outputs,
        allowed_error=flags.allowed_error,
        ignore_output=flags.ignore_output,
        tolerance=flags.tolerance,
        volatile=flags.volatile,
    )
