"""Finding the course's notebooks and what each asks of nbguard (kernel, skip reasons)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from nbguard.model import Notebook, Tolerance

_PYTHON_LANGUAGES = {"python", "python3", "ipython", "ipython3"}


def discover(
    course: Path, include: Sequence[str], exclude: Sequence[str], always_excluded: Sequence[str]
) -> tuple[Notebook, ...]:
    """The notebooks under `course` matching `include` and none of the excludes, by path."""
    excluded = [_glob_regex(pattern) for pattern in (*always_excluded, *exclude)]
    included = [_glob_regex(pattern) for pattern in include]
    found: list[Notebook] = []
    for path in _walk(course):
        relative = path.relative_to(course).as_posix()
        if any(rx.match(relative) for rx in included) and not any(
            rx.match(relative) for rx in excluded
        ):
            found.append(_undecodable(relative) or read_notebook(course, relative))
    return tuple(sorted(found, key=lambda nb: nb.path))


def _undecodable(relative: str) -> Notebook | None:
    """A file name that is not valid UTF-8 (os.walk hands its bytes over as surrogates)
    cannot be reported as it is: the notebook is skipped, named with its bad bytes written
    as escapes, so every report can show it and the audit goes on."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        shown = relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        reason = "its file name is not valid UTF-8: rename it to run it"
        return Notebook(shown, "", kernel_name="python3", language="python", skip_reason=reason)
    return None


def _walk(course: Path) -> Iterator[Path]:
    """Every .ipynb file, not descending into virtualenvs or hidden tool folders."""
    for directory, dirnames, filenames in os.walk(course):
        here = Path(directory)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not (here / d / "pyvenv.cfg").exists() and d not in {".git", ".nbguard"}
        )
        yield from (here / f for f in sorted(filenames) if f.endswith(".ipynb"))


def read_notebook(course: Path, relative: str) -> Notebook:
    """What discovery needs of one notebook; a notebook that cannot be parsed is still
    returned (its run will fail and say why), never dropped silently."""
    raw = (course / relative).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        content = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return Notebook(relative, digest, kernel_name="python3", language="python")
    # Hand-edited notebooks hold anything: only tables count, anything else means "absent".
    metadata = _table(content.get("metadata") if isinstance(content, dict) else None)
    kernelspec = _table(metadata.get("kernelspec"))
    language = str(
        kernelspec.get("language") or _table(metadata.get("language_info")).get("name") or "python"
    )
    kernel_name = str(kernelspec.get("name") or "python3")
    return Notebook(
        relative,
        digest,
        kernel_name=kernel_name,
        language=language,
        skip_reason=_skip_reason(metadata, language, kernel_name),
        tolerance=Tolerance.from_metadata(_table(metadata.get("nbguard")).get("tolerance")),
        volatile=_table(metadata.get("nbguard")).get("volatile") is True,
    )


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _skip_reason(metadata: dict[str, Any], language: str, kernel_name: str) -> str | None:
    skip = _table(metadata.get("nbguard")).get("skip")
    if isinstance(skip, str) and skip.strip():
        return f"notebook metadata: {skip.strip()}"
    if skip is True:
        return "notebook metadata nbguard.skip is true"
    if language.lower() not in _PYTHON_LANGUAGES:
        return f"non-Python kernel {kernel_name!r} ({language})"
    return None


@cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over POSIX relative paths: `**/` spans folders (or none), `*`, `?` and `[...]`
    stay within one name; a leading `./` is the course root."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    out = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "[" and "]" in pattern[i + 2 :]:
            close = pattern.index("]", i + 2)
            body = pattern[i + 1 : close]
            negate = body.startswith("!")
            out.append("[" + ("^" if negate else "") + re.escape(body[negate:]) + "]")
            i = close + 1
            continue
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")
