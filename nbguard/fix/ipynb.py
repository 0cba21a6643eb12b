"""New cell sources written into a notebook's JSON text in place: only the `source` values of
the changed cells are replaced, every other byte of the file stays as it was."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

_SPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


class NotebookTextError(ValueError):
    """The notebook's text is not the JSON nbguard expected, or an edit would change more
    than the sources it was asked to."""


def code_sources(text: str) -> dict[int, str]:
    """Each code cell's source, by its position among all cells."""
    cells = json.loads(text).get("cells", [])
    return {
        index: _joined(cell.get("source", ""))
        for index, cell in enumerate(cells)
        if isinstance(cell, dict) and cell.get("cell_type") == "code"
    }


def cell_sources(text: str) -> dict[int, str]:
    """Every cell's source, by position."""
    cells = json.loads(text).get("cells", [])
    return {
        i: _joined(cell.get("source", "")) for i, cell in enumerate(cells) if isinstance(cell, dict)
    }


def _joined(source: object) -> str:
    return "".join(source) if isinstance(source, list) else str(source)


def replace_sources(text: str, sources: Mapping[int, str]) -> str:
    """`text` with the cells at the keys of `sources` given those sources, in the style the file
    already uses (a list of lines or one string, the same indentation, unchanged lines as they
    were written); checked by parsing both texts: nothing else may differ."""
    spans = _Spans(text).source_spans()
    missing = set(sources) - set(spans)
    if missing:
        raise NotebookTextError(f"no source to replace in cell(s) {sorted(missing)}")
    ascii_only = text.isascii()
    pieces: list[str] = []
    position = 0
    for index in sorted(sources):
        start, end = spans[index]
        pieces += [text[position:start], _render(text, start, end, sources[index], ascii_only)]
        position = end
    new_text = "".join(pieces) + text[position:]
    _check(text, new_text, sources)
    return new_text


def _render(text: str, start: int, end: int, source: str, ascii_only: bool) -> str:
    raw = text[start:end]
    if not raw.startswith("["):
        return json.dumps(source, ensure_ascii=ascii_only)
    written: dict[str, str] = {}
    for element in _Spans(raw).array_elements():
        written.setdefault(json.loads(element), element)
    lines = source.splitlines(keepends=True)
    if not lines:
        return "[]"
    inner = re.match(r"\[([ \t]*\r?\n?[ \t]*)", raw)
    closing = re.search(r"(\r?\n?[ \t]*)\]$", raw)
    if inner is not None and inner.group(1):
        opening_space, closing_space = inner.group(1), closing.group(1) if closing else ""
    else:
        # An empty list: indent one step past the line that holds the key, as nbformat does.
        line_start = text.rfind("\n", 0, start) + 1
        indent = re.match(r"[ \t]*", text[line_start:]).group()  # type: ignore[union-attr]
        step = _indent_step(text)
        newline = "\r\n" if "\r\n" in text else "\n"
        opening_space, closing_space = newline + indent + step, newline + indent
    separator = "," + opening_space
    rendered = [written.get(line) or json.dumps(line, ensure_ascii=ascii_only) for line in lines]
    return "[" + opening_space + separator.join(rendered) + closing_space + "]"


def _indent_step(text: str) -> str:
    found = re.search(r"\{\r?\n([ \t]+)\"", text)
    return found.group(1) if found else " "


def _check(old: str, new: str, sources: Mapping[int, str]) -> None:
    before, after = json.loads(old), json.loads(new)
    for index, source in sources.items():
        if _joined(after["cells"][index].get("source", "")) != source:
            raise NotebookTextError(f"cell {index}: the written source does not read back")
        before["cells"][index]["source"] = after["cells"][index]["source"] = None
    if before != after:
        raise NotebookTextError("an edit of the sources would change more of the notebook")


class _Spans:
    """A minimal JSON scanner that records where values are in the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sources: dict[int, tuple[int, int]] = {}
        self.elements: list[str] = []

    def source_spans(self) -> dict[int, tuple[int, int]]:
        try:
            end = self._value(self._space(0), ())
        except (IndexError, ValueError) as exc:
            raise NotebookTextError(f"not a notebook's JSON: {exc}") from None
        if self._space(end) != len(self.text):
            raise NotebookTextError("text after the notebook's JSON")
        return self.sources

    def array_elements(self) -> list[str]:
        self._value(0, ("elements",))
        return self.elements

    def _space(self, position: int) -> int:
        found = _SPACE.match(self.text, position)
        return found.end() if found else position

    def _value(self, position: int, path: tuple[Any, ...]) -> int:
        char = self.text[position]
        if char == "{":
            end = self._object(position, path)
        elif char == "[":
            end = self._array(position, path)
        elif char == '"':
            _, end = scanstring(self.text, position + 1, True)
        else:
            found = _SCALAR.match(self.text, position)
            if found is None:
                raise ValueError(f"unexpected {char!r} at {position}")
            end = found.end()
        if len(path) == 3 and path[0] == "cells" and path[2] == "source":
            self.sources[path[1]] = (position, end)
        return int(end)

    def _object(self, position: int, path: tuple[Any, ...]) -> int:
        position = self._space(position + 1)
        if self.text[position] == "}":
            return position + 1
        while True:
            key, position = scanstring(self.text, position + 1, True)
            position = self._space(position)
            if self.text[position] != ":":
                raise ValueError(f"expected ':' at {position}")
            position = self._value(self._space(position + 1), (*path, key))
            position = self._space(position)
            if self.text[position] == "}":
                return position + 1
            if self.text[position] != ",":
                raise ValueError(f"expected ',' at {position}")
            position = self._space(position + 1)

    def _array(self, position: int, path: tuple[Any, ...]) -> int:
        position = self._space(position + 1)
        if self.text[position] == "]":
            return position + 1
        index = 0
        while True:
            start = position
            position = self._value(position, (*path, index))
            if path == ("elements",):
                self.elements.append(self.text[start:position])
            position = self._space(position)
            if self.text[position] == "]":
                return position + 1
            if self.text[position] != ",":
                raise ValueError(f"expected ',' at {position}")
            position = self._space(position + 1)
            index += 1
