"""Short texts the report renderers share, read from the JSON report's dicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def first_line(value: object, limit: int = 200) -> str:
    """The first line of a text, cut to `limit` characters with an ellipsis."""
    stripped = str(value or "").strip()
    line = stripped.splitlines()[0] if stripped else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_line(run: Mapping[str, Any]) -> str:
    """`cell 3: AttributeError: …` for a failed run, else its reason or status."""
    error = run.get("error")
    if error:
        return f"cell {error['cell']}: {error['ename']}: {first_line(error['evalue'])}"
    return first_line(run.get("reason") or run.get("status") or "")
