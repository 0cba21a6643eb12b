"""Pure comparison of two normalized text payloads: equal in substance, or how they differ."""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Literal

from nbguard.model import Tolerance

# What a text difference is: `value` numbers beyond tolerance, `repr` the same numbers and
# words in a different wrapper (3.0 → np.float64(3.0)), `text` anything else.
TextKind = Literal["value", "repr", "text"]


@dataclass(frozen=True)
class Difference:
    """How two payloads differ, ready for a report."""

    kind: TextKind
    summary: str  # one line naming the first difference: "0.5 → 0.53 (rel 6%), line 3"
    # The old side: the whole text when both sides are one short line, else the changed lines
    # with a line of context. The new side: the whole text when short, else the summary and a
    # unified diff of at most MAX_DIFF_LINES lines.
    before: str
    after: str
    # What the comparison let through, so nothing is masked invisibly: "whitespace",
    # "rel_tol=1e-06", "abs_tol=1e-12", "html-as-text".
    applied: tuple[str, ...]
    whole: bool = True  # before and after are the whole texts, not an excerpt and a diff


MAX_DIFF_LINES = 40
# Texts up to this long on one line are shown whole, as `before → after`.
_SHORT = 160
# One diff line is cut here: a 5,000-character line of JSON is still one line.
_LINE_WIDTH = 200

# A number is what a reader would call one: digits with optional sign, thousands separators,
# decimals and exponent, or nan/inf. Never the digits of a name (float64, Line2D, x1) nor a
# component of a dotted version (the 4 of 1.26.4): the look-behind keeps those out.
_TOKEN = re.compile(
    r"""
    (?P<number>(?<![\w.])[-+]?(?:
        (?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?
      | \.\d+(?:[eE][-+]?\d+)?
      | (?:nan|NaN|NAN|inf|Inf|INF|[Ii]nfinity)(?!\w)
    ))
  | (?P<word>[^\W\d]\w*(?:\.[^\W\d]\w*)*)
  | (?P<mark>\S)
    """,
    re.VERBOSE,
)
_WHITESPACE = re.compile(r"\s+")

# Marks that only wrap a value: brackets, quotes and list separators. `(1, 2)` and `[1, 2]`,
# `dtype='int64'` and `dtype=int64` hold the same values.
_WRAPPER_MARKS = frozenset("()[]{}<>'\",")
# numpy 2 prints its booleans as np.True_ / np.False_ where numpy 1 printed True / False.
_WORD_ALIASES = {
    "np.True_": "True",
    "np.False_": "False",
    "numpy.True_": "True",
    "numpy.False_": "False",
}


_TokenKind = Literal["number", "word", "mark"]


@dataclass(frozen=True)
class _Token:
    kind: _TokenKind
    text: str
    line: int  # 0-based line of the text the token is on
    start: int  # columns on that line
    end: int


def _tokens(text: str) -> list[_Token]:
    # Whitespace separates tokens and is otherwise ignored: pandas and numpy re-align columns
    # when one number gets a digit longer, and re-wrap arrays at a fixed width.
    tokens: list[_Token] = []
    for line_number, line in enumerate(text.split("\n")):
        for match in _TOKEN.finditer(line):
            kind: _TokenKind = "number" if match["number"] else "word" if match["word"] else "mark"
            tokens.append(_Token(kind, match.group(), line_number, match.start(), match.end()))
    return tokens


def _is_integer(text: str) -> bool:
    return not any(c in text for c in ".eEnNiI")


def _float(text: str) -> float:
    # float() rather than int() for integers too: int() refuses more than 4,300 digits.
    return float(text.replace(",", ""))


def _integer_key(text: str) -> str:
    # An integer's exact value as text, however many digits: sign and digits, no separators.
    digits = text.replace(",", "").lstrip("+")
    sign = "-" if digits.startswith("-") else ""
    magnitude = digits.lstrip("-").lstrip("0")
    return sign + magnitude if magnitude else "0"


def numbers_close(before: str, after: str, tolerance: Tolerance) -> bool:
    """Two printed numbers are equal within `tolerance`; integers must be exactly equal.

    Integers carry no rounding noise, so a count that moves by one is a change however large
    the count; nan equals nan, and -0. equals 0.
    """
    if _is_integer(before) and _is_integer(after):
        return _integer_key(before) == _integer_key(after)
    old, new = _float(before), _float(after)
    if math.isnan(old) or math.isnan(new):
        return math.isnan(old) and math.isnan(new)
    return math.isclose(old, new, rel_tol=tolerance.rel, abs_tol=tolerance.abs)


def _tokens_equal(old: _Token, new: _Token, tolerance: Tolerance) -> bool:
    if old.kind != new.kind:
        return False
    if old.kind != "number":
        return old.text == new.text
    # 1 and 1.0 are the same number printed as two types (an int column become float): not
    # equal here, and `repr` when nothing else differs.
    return _is_integer(old.text) == _is_integer(new.text) and numbers_close(
        old.text, new.text, tolerance
    )


def _same(old: Sequence[_Token], new: Sequence[_Token], tolerance: Tolerance) -> bool:
    return len(old) == len(new) and all(
        _tokens_equal(a, b, tolerance) for a, b in zip(old, new, strict=True)
    )


def _is_wrapper(tokens: Sequence[_Token], index: int) -> bool:
    token = tokens[index]
    if token.kind == "mark":
        return token.text in _WRAPPER_MARKS
    if token.kind != "word":
        return False
    # A constructor call's name (np.float64(, array(, Int64Index() or a <Name ...> repr's,
    # written against its bracket: "shape (3, 4)" is a word and a tuple.
    follows = tokens[index + 1] if index + 1 < len(tokens) else None
    precedes = tokens[index - 1] if index > 0 else None
    return (follows is not None and follows.text == "(" and _touching(token, follows)) or (
        precedes is not None and precedes.text == "<" and _touching(precedes, token)
    )


def _touching(first: _Token, second: _Token) -> bool:
    return first.line == second.line and first.end == second.start


def _shape(tokens: Sequence[_Token], words_only: bool = False) -> list[str]:
    """The tokens a reader takes for content: wrappers dropped, every number one placeholder."""
    shape: list[str] = []
    for index, token in enumerate(tokens):
        if _is_wrapper(tokens, index) or (words_only and token.kind != "word"):
            continue
        if token.kind == "number":
            shape.append("#")
        else:
            shape.append(_WORD_ALIASES.get(token.text, token.text))
    return shape


def _numbers(tokens: Sequence[_Token]) -> list[_Token]:
    return [t for t in tokens if t.kind == "number"]


def _classify(old: Sequence[_Token], new: Sequence[_Token], tolerance: Tolerance) -> TextKind:
    old_numbers, new_numbers = _numbers(old), _numbers(new)
    numbers_agree = len(old_numbers) == len(new_numbers) and all(
        numbers_close(a.text, b.text, tolerance)
        for a, b in zip(old_numbers, new_numbers, strict=True)
    )
    if numbers_agree:
        return "repr" if _shape(old) == _shape(new) else "text"
    # Numbers moved and the words around them stayed: a value changed, whatever else the
    # punctuation did (an array that lost an element, `3.0` → `np.float64(3.1)`).
    return "value" if _shape(old, words_only=True) == _shape(new, words_only=True) else "text"


# --- describing a difference ------------------------------------------------------------


def _relative(before: str, after: str) -> str:
    old, new = _float(before), _float(after)
    if not (math.isfinite(old) and math.isfinite(new)):
        return ""
    if old == 0:
        return f" (abs {abs(new - old):.2g})"
    return f" (rel {abs(new - old) / abs(old) * 100:.2g}%)"


def _value_summary(
    old: Sequence[_Token], new: Sequence[_Token], tolerance: Tolerance, multiline: bool
) -> str:
    old_numbers, new_numbers = _numbers(old), _numbers(new)
    moved = [
        (a, b)
        for a, b in zip(old_numbers, new_numbers, strict=False)
        if not numbers_close(a.text, b.text, tolerance)
    ]
    parts: list[str] = []
    if moved:
        first_old, first_new = moved[0]
        where = f", line {first_old.line + 1}" if multiline else ""
        old_text, new_text = _clip_line(first_old.text, 40), _clip_line(first_new.text, 40)
        relative = _relative(first_old.text, first_new.text)
        parts.append(f"{old_text} → {new_text}{relative}{where}")
        if len(moved) > 1:
            parts.append(f"{len(moved)} numbers beyond tolerance")
    if len(old_numbers) != len(new_numbers):
        parts.append(f"{len(old_numbers)} numbers → {len(new_numbers)} numbers")
    return "; ".join(parts)


def _clip_line(line: str, width: int = _LINE_WIDTH) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def _line_summary(
    kind: TextKind,
    old_lines: Sequence[str],
    new_lines: Sequence[str],
    ops: Sequence[_LineOp],
    multiline: bool,
) -> str:
    # The first run of changed lines: what it removed against what it added, so a line that
    # was only dropped does not appear to have turned into an unrelated later one.
    start = next((k for k, op in enumerate(ops) if op.tag != "="), len(ops))
    end = next((k for k in range(start, len(ops)) if ops[k].tag == "="), len(ops))
    removed = next((op.old for op in ops[start:end] if op.tag == "-"), None)
    added = next((op.new for op in ops[start:end] if op.tag == "+"), None)
    label = "printed differently: " if kind == "repr" else ""
    old = _clip_line(old_lines[removed].strip(), 70) if removed is not None else ""
    new = _clip_line(new_lines[added].strip(), 70) if added is not None else ""
    if not multiline:
        return f"{label}{old} → {new}"
    if added is None:
        return f"{label}line {(removed or 0) + 1} removed: {old}"
    if removed is None:
        return f"{label}line {added + 1} added: {new}"
    return f"{label}line {removed + 1}: {old} → {new}"


@dataclass(frozen=True)
class _LineOp:
    tag: Literal["=", "-", "+"]
    old: int | None  # line index in the old text
    new: int | None  # line index in the new text


def _line_ops(
    old_lines: Sequence[str], new_lines: Sequence[str], tolerance: Tolerance
) -> list[_LineOp]:
    """A line diff in which lines equal in substance (whitespace, numbers in tolerance) match."""
    matcher = difflib.SequenceMatcher(
        a=[" ".join(line.split()) for line in old_lines],
        b=[" ".join(line.split()) for line in new_lines],
        autojunk=False,
    )
    ops: list[_LineOp] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            ops += [_LineOp("=", i, j) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
            continue
        paired = min(i2 - i1, j2 - j1)
        # Rows of a table pair up in order; each pair is shown old above new, which reads
        # better for tables than a block of removals followed by a block of additions.
        for i, j in zip(range(i1, i1 + paired), range(j1, j1 + paired), strict=True):
            if _same(_tokens(old_lines[i]), _tokens(new_lines[j]), tolerance):
                ops.append(_LineOp("=", i, j))
            else:
                ops += [_LineOp("-", i, None), _LineOp("+", None, j)]
        ops += [_LineOp("-", i, None) for i in range(i1 + paired, i2)]
        ops += [_LineOp("+", None, j) for j in range(j1 + paired, j2)]
    return ops


def _hunks(ops: Sequence[_LineOp], context: int = 1) -> list[list[_LineOp]]:
    changed = [k for k, op in enumerate(ops) if op.tag != "="]
    hunks: list[list[_LineOp]] = []
    start = end = -1
    for k in changed:
        if start >= 0 and k - context <= end + context + 1:
            end = k
            continue
        if start >= 0:
            hunks.append(list(ops[max(0, start - context) : end + context + 1]))
        start = end = k
    if start >= 0:
        hunks.append(list(ops[max(0, start - context) : end + context + 1]))
    return hunks


def _hunk_header(hunk: Sequence[_LineOp]) -> str:
    olds = [op.old for op in hunk if op.old is not None]
    news = [op.new for op in hunk if op.new is not None]
    old_start = olds[0] + 1 if olds else 0
    new_start = news[0] + 1 if news else 0
    return f"@@ -{old_start},{len(olds)} +{new_start},{len(news)} @@"


def _capped(lines: list[str]) -> str:
    if len(lines) > MAX_DIFF_LINES:
        rest = len(lines) - MAX_DIFF_LINES + 1
        lines = [*lines[: MAX_DIFF_LINES - 1], f"… {rest} more lines"]
    return "\n".join(lines)


def _unified_diff(
    old_lines: Sequence[str], new_lines: Sequence[str], hunks: Sequence[Sequence[_LineOp]]
) -> str:
    lines: list[str] = []
    for hunk in hunks:
        lines.append(_hunk_header(hunk))
        for op in hunk:
            if op.tag == "+":
                assert op.new is not None
                lines.append("+" + _clip_line(new_lines[op.new]))
            else:
                assert op.old is not None
                lines.append(f"{op.tag if op.tag == '-' else ' '}{_clip_line(old_lines[op.old])}")
    return _capped(lines)


def _old_excerpt(old_lines: Sequence[str], hunks: Sequence[Sequence[_LineOp]]) -> str:
    lines: list[str] = []
    for number, hunk in enumerate(hunks):
        if number:
            lines.append("…")
        lines += [_clip_line(old_lines[op.old]) for op in hunk if op.old is not None]
    return _capped(lines)


def _is_short(text: str) -> bool:
    body = text.rstrip("\n")
    return "\n" not in body and len(body) <= _SHORT


# --- comparing ----------------------------------------------------------------------------


def _tolerance_names(tolerance: Tolerance) -> tuple[str, ...]:
    return (f"rel_tol={tolerance.rel:g}", f"abs_tol={tolerance.abs:g}")


def compare_text(before: str, after: str, tolerance: Tolerance) -> Difference | None:
    """None when the texts are equal in substance: the same words and marks in the same
    order, whatever the whitespace, with every number within `tolerance`; else how they
    differ."""
    if before == after:
        return None
    old, new = _tokens(before), _tokens(after)
    if _same(old, new, tolerance):
        return None
    kind = _classify(old, new, tolerance)
    old_lines, new_lines = before.rstrip("\n").split("\n"), after.rstrip("\n").split("\n")
    multiline = not (_is_short(before) and _is_short(after))
    ops = _line_ops(old_lines, new_lines, tolerance)
    if kind == "value":
        summary = _value_summary(old, new, tolerance, multiline)
    else:
        summary = _line_summary(kind, old_lines, new_lines, ops, multiline)

    applied: list[str] = []
    if _WHITESPACE.findall(before) != _WHITESPACE.findall(after):
        applied.append("whitespace")
    if _numbers(old) and _numbers(new):
        applied += _tolerance_names(tolerance)

    if not multiline:
        return Difference(kind, summary, before, after, tuple(applied))
    hunks = _hunks(ops)
    return Difference(
        kind,
        summary,
        _old_excerpt(old_lines, hunks),
        f"{summary}\n{_unified_diff(old_lines, new_lines, hunks)}",
        tuple(applied),
        whole=False,
    )


# --- HTML ---------------------------------------------------------------------------------

# Elements that start a new line where they open and close, as a browser lays them out.
# fmt: off
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody",
    "tfoot", "thead", "tr", "ul",
})
# fmt: on
_CELLS = frozenset({"td", "th"})


class _TextRenderer(HTMLParser):
    """HTML as a reader sees it: one line per block or table row, cells joined by " | "."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._buffer: list[str] = []
        self._cells: list[str] | None = None  # the current table row's finished cells
        self._in_cell = False
        self._skip = 0  # inside <style>: CSS is presentation, not content
        self._pre = 0

    def _flush_cell(self) -> None:
        if self._cells is not None and self._in_cell:
            self._cells.append(" ".join("".join(self._buffer).split()))
            self._buffer = []
        self._in_cell = False

    def _flush_line(self) -> None:
        if self._cells is not None:
            self._flush_cell()
            if self._cells:
                self.lines.append(" | ".join(self._cells))
            self._cells = None
        text = " ".join("".join(self._buffer).split())
        if text:
            self.lines.append(text)
        self._buffer = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "style":
            self._skip += 1
        elif tag == "pre":
            self._flush_line()
            self._pre += 1
        elif tag == "tr":
            self._flush_line()
            self._cells = []
        elif tag in _CELLS and self._cells is not None:
            self._flush_cell()
            self._in_cell = True
        elif tag in _BLOCKS:
            if self._cells is None:
                self._flush_line()
        elif tag == "img":
            # Attributes are layout; an image's source is content. A digest keeps a
            # base64-embedded picture from filling the report.
            source = dict(attrs).get("src") or ""
            digest = hashlib.sha256(source.encode()).hexdigest()[:12]
            self._buffer.append(f" [image sha{digest}] ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._skip = max(0, self._skip - 1)
        elif tag == "pre":
            self._flush_line()
            self._pre = max(0, self._pre - 1)
        elif tag == "tr":
            self._flush_line()
        elif tag in _CELLS:
            self._flush_cell()
        elif tag in _BLOCKS and self._cells is None:
            self._flush_line()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if not self._pre or self._cells is not None:
            self._buffer.append(data)
            return
        first, *rest = data.split("\n")
        self._buffer.append(first)
        for piece in rest:
            self._flush_line()
            self._buffer.append(piece)

    def close(self) -> None:
        super().close()
        self._flush_line()


def html_as_text(html: str) -> str:
    """The text of an HTML output laid out in lines: tags, attributes and styles dropped."""
    renderer = _TextRenderer()
    renderer.feed(html)
    renderer.close()
    return "\n".join(renderer.lines)


def compare_html(before: str, after: str, tolerance: Tolerance) -> Difference | None:
    """Like compare_text, on the text each HTML shows: a DataFrame's table compares cell by
    cell whatever its indentation, attributes or <style> block."""
    if before == after:
        return None
    difference = compare_text(html_as_text(before), html_as_text(after), tolerance)
    if difference is None:
        return None
    return replace(difference, applied=("html-as-text", *difference.applied))
