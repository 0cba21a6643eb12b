"""Pure comparison of two normalized text payloads: equal in substance, or how they differ;
and the one line diff of two texts that the comparison reads and every report draws."""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Hashable, Sequence
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
    # One line naming the first difference: "0.5 → 0.53 (rel 6%), line 3".
    summary: str
    # The texts compared: the payloads as given, an HTML payload as the text it shows.
    before: str
    after: str
    # What the comparison let through, so nothing is masked invisibly: "whitespace",
    # "rel_tol=1e-06", "abs_tol=1e-12", "html-as-text".
    applied: tuple[str, ...]


# A drawn diff is cut after this many lines; the texts it is drawn from are in the report.
MAX_DIFF_LINES = 40
# Texts up to this long on one line are summarized as `before → after`.
_SHORT = 160
# One diff line is cut here: a 5,000-character line of JSON is still one line.
_LINE_WIDTH = 200

# A number is what a reader would call one: digits with optional sign, thousands separators,
# decimals and exponent, or nan/inf. Never the digits of a name (float64, Line2D, x1). A
# version (1.26.4, v2.0.1, 2.0.0rc1) is one word: compared as text, never within tolerance.
_TOKEN = re.compile(
    r"""
    (?P<version>(?<![\w.])(?:[vV]\d+(?:\.\d+)+|\d+(?:\.\d+){2,})(?:[-+.]?[A-Za-z]+\d*)*(?!\w))
  | (?P<number>(?<![\w.])[-+]?(?:
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
# A two-part number right after one of these words or marks is a version too ("Python 3.5",
# "__version__: 3.11", "numpy==1.21"): 3.5 → 3.11 is a text change, not a value that moved 11%.
_VERSION_WORD = re.compile(r"(?i)(?:^|[._])(?:version|python|py)$|^v$")
_VERSION_MARKS = ("==", ">=", "<=", "~=", "!=")
_TWO_PART = re.compile(r"\d+\.\d+")

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
        word, marks = "", ""  # the last word on the line, and the marks since
        for match in _TOKEN.finditer(line):
            kind: _TokenKind = "number" if match["number"] else "mark" if match["mark"] else "word"
            version = _VERSION_WORD.search(word.rstrip("_")) or marks.endswith(_VERSION_MARKS)
            if kind == "number" and version and _TWO_PART.fullmatch(match.group()):
                kind = "word"
            if kind == "mark":
                marks += match.group()
            else:
                word, marks = (match.group() if kind == "word" else ""), ""
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


# --- the diff every report draws ----------------------------------------------------------

DiffTag = Literal[" ", "-", "+"]


@dataclass(frozen=True)
class DiffLine:
    """One line of a diff: in both texts (" "), only in the old one ("-") or only in the new
    one ("+"). `text` is the old text's line for " " and "-", the new text's for "+"."""

    tag: DiffTag
    text: str
    old: int | None  # 0-based line number in the old text
    new: int | None  # 0-based line number in the new text


def text_lines(text: str) -> list[str]:
    """The lines a diff is made of: none for an empty text, no empty last line for a final
    newline."""
    body = text.rstrip("\n")
    return body.split("\n") if body else []


def diff_lines(before: str, after: str, tolerance: Tolerance | None = None) -> list[DiffLine]:
    """The one diff of two texts, every line of both in order: the comparators read it and
    every report draws it.

    With `tolerance`, lines equal in substance (whitespace, numbers within tolerance) count as
    the same line, as the comparison counted them; without, only identical lines do.
    """
    lines = _Differ(text_lines(before), text_lines(after), tolerance)
    diff: list[DiffLine] = []
    for tag, i1, i2, j1, j2 in _opcodes(lines.keys(lines.old), lines.keys(lines.new)):
        if tag == "equal":
            diff += lines.unchanged(range(i1, i2), range(j1, j2))
        elif tolerance is None:
            diff += lines.changed(range(i1, i2), range(j1, j2))
        else:
            diff += lines.in_substance(i1, i2, j1, j2, tolerance)
    return diff


@dataclass(frozen=True)
class _Differ:
    old: Sequence[str]
    new: Sequence[str]
    tolerance: Tolerance | None

    def keys(self, lines: Sequence[str]) -> list[str]:
        # Whitespace only realigns columns: a tolerant diff matches lines without it first.
        return list(lines) if self.tolerance is None else [" ".join(x.split()) for x in lines]

    def unchanged(self, olds: range, news: range) -> list[DiffLine]:
        return [DiffLine(" ", self.old[i], i, j) for i, j in zip(olds, news, strict=True)]

    def changed(self, olds: range, news: range) -> list[DiffLine]:
        removed = [DiffLine("-", self.old[i], i, None) for i in olds]
        added = [DiffLine("+", self.new[j], None, j) for j in news]
        if not all(_alike(self.old[i], self.new[j]) for i, j in zip(olds, news, strict=False)):
            return removed + added
        # Rows of a table that changed pair up: each old row above its new one reads better
        # than a block of removals followed by a block of additions.
        paired = min(len(removed), len(added))
        pairs = [line for k in range(paired) for line in (removed[k], added[k])]
        return pairs + removed[paired:] + added[paired:]

    def in_substance(
        self, i1: int, i2: int, j1: int, j2: int, tolerance: Tolerance
    ) -> list[DiffLine]:
        """Lines that differ as text but may be equal in substance: a head and a tail of such
        lines pair off, the rest line up by their shape (numbers masked), and each pair of
        one shape is unchanged or one edited row."""
        old_tokens = {i: _tokens(self.old[i]) for i in range(i1, i2)}
        new_tokens = {j: _tokens(self.new[j]) for j in range(j1, j2)}

        def same(i: int, j: int) -> bool:
            return _same(old_tokens[i], new_tokens[j], tolerance)

        head = 0
        while i1 + head < i2 and j1 + head < j2 and same(i1 + head, j1 + head):
            head += 1
        diff = self.unchanged(range(i1, i1 + head), range(j1, j1 + head))
        i1, j1 = i1 + head, j1 + head
        tail = 0
        while i2 - tail > i1 and j2 - tail > j1 and same(i2 - tail - 1, j2 - tail - 1):
            tail += 1
        i2, j2 = i2 - tail, j2 - tail
        old_shapes = [_shape_of_line(old_tokens[i]) for i in range(i1, i2)]
        new_shapes = [_shape_of_line(new_tokens[j]) for j in range(j1, j2)]
        for tag, a1, a2, b1, b2 in _opcodes(old_shapes, new_shapes):
            if tag != "equal":
                diff += self.changed(range(i1 + a1, i1 + a2), range(j1 + b1, j1 + b2))
                continue
            for i, j in zip(range(i1 + a1, i1 + a2), range(j1 + b1, j1 + b2), strict=True):
                if same(i, j):
                    diff.append(DiffLine(" ", self.old[i], i, j))
                else:  # one row of the same words and marks, edited: a pair
                    diff += [
                        DiffLine("-", self.old[i], i, None),
                        DiffLine("+", self.new[j], None, j),
                    ]
        return diff + self.unchanged(range(i2, i2 + tail), range(j2, j2 + tail))


def _opcodes(
    old: Sequence[Hashable], new: Sequence[Hashable]
) -> Sequence[tuple[str, int, int, int, int]]:
    """difflib's opcodes, a common head and tail paired off first. On a large middle difflib
    may ignore the most frequent lines (autojunk): thousands of equal lines (or table rows of
    one shape) otherwise take it quadratic time."""
    common = min(len(old), len(new))
    head = next((k for k in range(common) if old[k] != new[k]), common)
    tail = next((k for k in range(common - head) if old[-1 - k] != new[-1 - k]), common - head)
    old_end, new_end = len(old) - tail, len(new) - tail
    large = (old_end - head) * (new_end - head) > 1_000_000
    matcher = difflib.SequenceMatcher(a=old[head:old_end], b=new[head:new_end], autojunk=large)
    middle = [
        (tag, i1 + head, i2 + head, j1 + head, j2 + head)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
    ]
    ends = [("equal", 0, head, 0, head)] if head else []
    if tail:
        return [*ends, *middle, ("equal", old_end, len(old), new_end, len(new))]
    return [*ends, *middle]


def _shape_of_line(tokens: Sequence[_Token]) -> tuple[str, ...]:
    return tuple("#" if token.kind == "number" else token.text for token in tokens)


def _alike(old: str, new: str) -> bool:
    # Mostly the same characters: one line edited rather than replaced by an unrelated one.
    return difflib.SequenceMatcher(a=old[:200], b=new[:200], autojunk=False).ratio() >= 0.5


def hunks(diff: Sequence[DiffLine], context: int = 2) -> list[list[DiffLine]]:
    """The changed lines with `context` unchanged lines around them, close runs merged."""
    changed = [k for k, line in enumerate(diff) if line.tag != " "]
    spans: list[list[int]] = []
    for k in changed:
        if spans and k - spans[-1][1] <= 2 * context + 1:
            spans[-1][1] = k
        else:
            spans.append([k, k])
    return [list(diff[max(0, start - context) : end + context + 1]) for start, end in spans]


def _range(first: int | None, length: int) -> str:
    # As GNU diff and difflib write a hunk's range: the length only when it is not 1. Hunks
    # carry context, so only an empty text has an empty range: 0,0.
    start = (first + 1) if first is not None else 0
    if length == 1:
        return str(start)
    return f"{start},{length}"


def _hunk_header(hunk: Sequence[DiffLine]) -> str:
    olds = [line.old for line in hunk if line.old is not None]
    news = [line.new for line in hunk if line.new is not None]
    old = _range(olds[0] if olds else None, len(olds))
    new = _range(news[0] if news else None, len(news))
    return f"@@ -{old} +{new} @@"


def unified_diff(
    before: str,
    after: str,
    tolerance: Tolerance | None = None,
    *,
    labels: tuple[str, str] | None = None,
    context: int = 2,
    max_lines: int = MAX_DIFF_LINES,
) -> str:
    """`diff_lines` drawn as a unified diff: hunks under @@ headers (under ---/+++ `labels`
    when given), each line cut at 200 characters, at most `max_lines` lines in all."""
    lines = [f"--- {labels[0]}", f"+++ {labels[1]}"] if labels else []
    for hunk in hunks(diff_lines(before, after, tolerance), context):
        lines.append(_hunk_header(hunk))
        lines += [line.tag + _clip_line(line.text) for line in hunk]
    if len(lines) > max_lines:
        rest = len(lines) - max_lines + 1
        lines = [*lines[: max_lines - 1], f"… {rest} more lines"]
    return "\n".join(lines)


def excerpts(
    before: str, after: str, tolerance: Tolerance | None, limit: int, context: int = 3
) -> tuple[str, str]:
    """Both texts, each at most about `limit` characters, cut alike around their changes.

    The lines before the first change and after the last one are the same on both sides, so
    both drop the same lines and say how many: a report's diff of the excerpts shows what a
    diff of the whole texts would.
    """
    if len(before) <= limit and len(after) <= limit:
        return before, after
    diff = diff_lines(before, after, tolerance)
    changed = [k for k, line in enumerate(diff) if line.tag != " "]
    old_lines, new_lines = text_lines(before), text_lines(after)
    if changed:
        head = max(0, changed[0] - context)
        tail = max(0, len(diff) - changed[-1] - 1 - context)
        old_lines = old_lines[head : len(old_lines) - tail]
        new_lines = new_lines[head : len(new_lines) - tail]
        above = [f"… {head} unchanged lines"] if head else []
        below = [f"… {tail} unchanged lines"] if tail else []
        old_lines, new_lines = [*above, *old_lines, *below], [*above, *new_lines, *below]
    return _cut(old_lines, limit), _cut(new_lines, limit)


def _cut(lines: Sequence[str], limit: int) -> str:
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) > limit:
            room = limit - size
            if room > 40:  # the part of a long line that fits, rather than nothing of it
                kept.append(line[: room - 1] + "…")
            kept.append(f"… {len(lines) - len(kept)} more lines")
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


# --- describing a difference ------------------------------------------------------------


def _relative(before: str, after: str) -> str:
    old, new = _float(before), _float(after)
    if not (math.isfinite(old) and math.isfinite(new)):
        return ""
    if old == 0:
        return f" (abs {abs(new - old):.2g})"
    percent = abs(new - old) / abs(old) * 100
    # Two significant digits, but never an exponent: "rel 8.7%", "rel 100%", "rel 12,400%".
    return f" (rel {percent:.2g}%)" if percent < 100 else f" (rel {percent:,.0f}%)"


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


def _line_summary(diff: Sequence[DiffLine], multiline: bool) -> str:
    # The first run of changed lines: what it removed against what it added, so a line that
    # was only dropped does not appear to have turned into an unrelated later one.
    start = next((k for k, line in enumerate(diff) if line.tag != " "), len(diff))
    end = next((k for k in range(start, len(diff)) if diff[k].tag == " "), len(diff))
    removed = next((line for line in diff[start:end] if line.tag == "-"), None)
    added = next((line for line in diff[start:end] if line.tag == "+"), None)
    old = _clip_line(removed.text.strip(), 70) if removed is not None else ""
    new = _clip_line(added.text.strip(), 70) if added is not None else ""
    if not multiline:
        return f"{old} → {new}"
    removed_at = removed.old if removed is not None else None
    added_at = added.new if added is not None else None
    if added_at is None:
        return f"line {(removed_at or 0) + 1} removed: {old}"
    if removed_at is None:
        return f"line {added_at + 1} added: {new}"
    return f"line {removed_at + 1}: {old} → {new}"


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
    multiline = not (_is_short(before) and _is_short(after))
    if kind == "value":
        summary = _value_summary(old, new, tolerance, multiline)
    else:
        summary = _line_summary(diff_lines(before, after, tolerance), multiline)

    applied: list[str] = []
    if _WHITESPACE.findall(before) != _WHITESPACE.findall(after):
        applied.append("whitespace")
    if _numbers(old) and _numbers(new):
        applied += _tolerance_names(tolerance)
    return Difference(kind, summary, before, after, tuple(applied))


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


# --- volatile tokens ------------------------------------------------------------------------

# What stands where a volatile token was, on both sides of a comparison.
VOLATILE = "<volatile>"
# The volatile tokens of a text: their indexes, or every number.
ALL_NUMBERS: Literal["numbers"] = "numbers"
Varying = frozenset[int] | Literal["numbers"]
# Above this many tokens in all, two texts line up position by position, or not at all.
_MAX_ALIGNED_TOKENS = 50_000


def _token_key(token: _Token) -> str:
    return "#" if token.kind == "number" else token.text


def _aligned(old: Sequence[_Token], new: Sequence[_Token]) -> list[tuple[str, range, range]]:
    """(tag, old indexes, new indexes) of the two token sequences laid over each other by their
    shape: numbers match numbers whatever their value, other tokens match themselves."""
    if len(old) + len(new) > _MAX_ALIGNED_TOKENS:
        # Position by position, as long as a search would take: as many tokens, or none line up.
        tag = "equal" if len(old) == len(new) else "replace"
        return [(tag, range(len(old)), range(len(new)))]
    keys_old, keys_new = [_token_key(t) for t in old], [_token_key(t) for t in new]
    return [
        (tag, range(i1, i2), range(j1, j2)) for tag, i1, i2, j1, j2 in _opcodes(keys_old, keys_new)
    ]


def varying_tokens(first: str, second: str, tolerance: Tolerance) -> frozenset[int] | None:
    """The tokens of `first` that `second`, a run of the same code in the same env, shows
    differently: any number printed otherwise (two random draws can happen to fall within
    `tolerance` of each other, and a third far away), words in the same place. None when the
    texts do not line up token for token (lines come and go): the whole text varies."""
    old, new = _tokens(first), _tokens(second)
    varying: set[int] = set()
    for tag, olds, news in _aligned(old, new):
        if tag == "equal":
            varying.update(i for i, j in zip(olds, news, strict=True) if old[i].text != new[j].text)
        elif tag == "replace" and len(olds) == len(news):
            varying.update(olds)
        else:
            return None
    return frozenset(varying)


def carried_tokens(source: str, target: str, indices: frozenset[int]) -> frozenset[int] | None:
    """The tokens of `target` at the places of `source`'s tokens `indices`, the two texts laid
    over each other by their shape (`_aligned`): what varies in another env's text, found
    in the baseline's. None when a varying token has no counterpart there."""
    old, new = _tokens(source), _tokens(target)
    carried: set[int] = set()
    for tag, olds, news in _aligned(old, new):
        lined_up = tag == "equal" or len(olds) == len(news)
        for k, i in enumerate(olds):
            if i in indices:
                if not lined_up:
                    return None
                carried.add(news[k])
    return frozenset(carried)


def mask_varying(before: str, after: str, varying: Varying) -> tuple[str, str]:
    """Both texts with the volatile tokens of `before` (`varying_tokens`), and the tokens of
    `after` in their place, shown as <volatile>; ALL_NUMBERS: every number on both sides."""
    old, new = _tokens(before), _tokens(after)
    if isinstance(varying, str):  # ALL_NUMBERS
        return (
            _masked(before, [t for t in old if t.kind == "number"]),
            _masked(after, [t for t in new if t.kind == "number"]),
        )
    masked_old: list[_Token] = []
    masked_new: list[_Token] = []
    for tag, olds, news in _aligned(old, new):
        lined_up = tag == "equal" or len(olds) == len(news)
        for k, i in enumerate(olds):
            if i in varying:
                masked_old.append(old[i])
                if lined_up:
                    masked_new.append(new[news[k]])
    return _masked(before, masked_old), _masked(after, masked_new)


def _masked(text: str, tokens: Sequence[_Token]) -> str:
    return _replaced(text, tokens, dict.fromkeys(range(len(tokens)), VOLATILE)) if tokens else text


def mask_upgrades(
    before: str, after: str, upgrades: Sequence[tuple[str, str, str]]
) -> tuple[str, str, tuple[str, ...]]:
    """Both texts with each printed version of an upgrade (a token of `before` that is a
    package's baseline version, whose counterpart in `after` is its new version) shown as
    <version of PACKAGE>; and the upgrades found, as "numpy 1.21.2 → 2.5.5"."""
    wanted = {old: (name, new) for name, old, new in upgrades if "." in old and old != new}
    if not any(old in before for old in wanted):  # the common case, without tokenizing
        return before, after, ()
    old_tokens, new_tokens = _tokens(before), _tokens(after)
    masked_old: dict[int, str] = {}
    masked_new: dict[int, str] = {}
    found: dict[str, None] = {}
    words: dict[int, list[str]] = {}  # line → its words, lower case
    for token in old_tokens:
        if token.kind == "word":
            words.setdefault(token.line, []).append(token.text.lower())
    for tag, olds, news in _aligned(old_tokens, new_tokens):
        if tag != "equal" and len(olds) != len(news):
            continue
        for i, j in zip(olds, news, strict=True):
            token = old_tokens[i]
            name, version = wanted.get(token.text, ("", ""))
            if not name or new_tokens[j].text != version:
                continue
            if _printed_as_version(token, words.get(token.line, []), name):
                masked_old[i] = masked_new[j] = f"<version of {name}>"
                found[f"{name} {old_tokens[i].text} → {version}"] = None
    if not found:
        return before, after, ()
    return (
        _replaced(before, old_tokens, masked_old),
        _replaced(after, new_tokens, masked_new),
        tuple(found),
    )


def _printed_as_version(token: _Token, words: Sequence[str], package: str) -> bool:
    """Whether a number that is some package's version is shown as one: it looks like a
    version (1.21.2, after "version"), or the package's name is on its line (`words`) —
    "wobble 1.0", a part of the name, as import names drop prefixes. A bare 1.0 that became
    2.0 is a value."""
    if token.kind == "word":
        return True
    parts = [part for part in re.split(r"[-_.]", package.lower()) if len(part) > 2]
    return any(part in word for word in words for part in parts)


def _replaced(text: str, tokens: Sequence[_Token], replacements: dict[int, str]) -> str:
    lines = text.split("\n")
    # Right to left on each line, so the columns of the tokens still to replace stay put.
    order = sorted(replacements, key=lambda k: (tokens[k].line, tokens[k].start), reverse=True)
    for index in order:
        token = tokens[index]
        line = lines[token.line]
        lines[token.line] = line[: token.start] + replacements[index] + line[token.end :]
    return "\n".join(lines)
