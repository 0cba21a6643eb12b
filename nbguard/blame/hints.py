"""Fix hints from what libraries write, and the warnings that foretold a break."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from nbguard.model import CellError, WarningRecord

__all__ = ["first_sentence", "fix_hint", "folded", "foreshadowing"]

_MAX_HINT = 120
_MAX_SENTENCE = 160
# Advice comes early; an error's text may go on for pages (a frame's repr).
_MAX_TEXT = 4000

# Verbs a library's advice starts with ("Use pandas.concat instead", "Either specify ...").
_VERB = (
    r"\b(?:use|call|pass|import|specify|set|select|convert|ensure|exclude|replace|switch|"
    r"migrate|install|leave|cast|try|provide|rename|upgrade|consider|fetch|don't|do not)\b"
)
# A verb after these describes what the library will do, not what the user should.
_NOT_ADVICE = re.compile(r"\b(?:will|would|may|might|shall)\s+$", re.IGNORECASE)
# "Use of X is deprecated", "Call to deprecated function X": nouns, not advice.
_NOUN = re.compile(r"(?:use\s+of|call\s+to)\b", re.IGNORECASE)
# A name as libraries quote it: ``double``, `single`, 'single', "double" or bare dotted.
_NAME = r"(?:``[^`]+``|`[^`]+`|'[^']+'|\"[^\"]+\"|[A-Za-z_][\w.]*(?:\(\))?)"

# (pattern, template), most trusted first. The advice is the group "advice"; a template
# turns a bare replacement name into an imperative.
_RULE_TABLE: tuple[tuple[str, str | None], ...] = (
    # An imperative clause ending in the usual anchors: "Use pandas.concat instead",
    # "use `float` by itself", "Use `np.vstack` directly" (at the end of a clause: not
    # "instead of", nor "pass vmin/vmax directly to the norm").
    (
        rf"(?P<advice>(?:please\s+)?(?:explicitly\s+|simply\s+)?{_VERB}"
        r".*?\b(?:instead|by itself|directly))(?=\s*[.,;:)]|\s*$)",
        None,
    ),
    (rf"\beither\s+(?P<advice>{_VERB}.*)", None),
    (rf"\byou\s+(?:must|should|can|could|need to|may want to)\s+(?P<advice>{_VERB}.*)", None),
    # An imperative clause opening a sentence, or after "If ...," / "To retain ...,".
    (
        rf"^(?:(?:if|when|to|for|in)\b[^,]*,\s*)?(?P<advice>(?:please\s+)?"
        rf"(?:explicitly\s+|simply\s+|instead\s+)?{_VERB}.*)",
        None,
    ),
    # Messages that only name the replacement.
    (rf"\bin\s+favou?r\s+of\s+(?P<advice>{_NAME})", "use {} instead"),
    (rf"\b(?:replaced|superseded)\s+by\s+(?P<advice>{_NAME})", "use {} instead"),
    (
        rf"\bdeprecated\s+alias\s+(?:for|of)\s+(?:the\s+builtin\s+)?(?P<advice>{_NAME})",
        "use {} instead",
    ),
    (rf"\brenamed\s+(?:to\s+)?(?P<advice>{_NAME})", "use {} instead"),
)
_RULES = tuple((re.compile(pattern, re.IGNORECASE), template) for pattern, template in _RULE_TABLE)
# Sentence and clause boundaries: ". " (not the dot of pandas.concat), "; ", and ": " before
# advice ("has been removed: use pandas.concat instead", but not "in UTC: datetime.now(...)").
_SENTENCE_END = re.compile(rf"(?<=[.!?])\s+|;\s+|:\s+(?={_VERB})", re.IGNORECASE)
# The tail of an advice that is about the warning itself, not the fix.
_TAIL = re.compile(
    r"(?:,?\s+(?:and|to)\s+(?:avoid|silence|suppress)\s+(?:this|the)\s+(?:warning|error)"
    r"|,\s+(?:the|this|that|it|which|as|since|because|so)\b.*)$",
    re.IGNORECASE,
)


def fix_hint(text: str) -> str | None:
    """The replacement advice a deprecation message or error carries, as a short imperative
    ("use `float` by itself", "use pandas.concat instead") of at most 120 characters; None
    when it carries none.

    Only what the library wrote is returned (re-worded only for messages that merely name
    the replacement, "in favour of X" → "use X instead"): nbguard never guesses a fix.
    """
    clauses = list(_clauses(text[:_MAX_TEXT]))
    for pattern, template in _RULES:
        for clause in clauses:
            found = pattern.search(clause)
            while found is not None:
                advice = found.group("advice")
                if not (_NOT_ADVICE.search(clause[: found.start()]) or _NOUN.match(advice)):
                    if template is not None:
                        advice = template.format(advice.rstrip("."))
                    return _tidy(advice)
                # Not advice after all: look for a verb further on ("Use of X is deprecated,
                # use Y instead").
                found = pattern.search(clause, found.start() + 1)
    return None


def first_sentence(text: str) -> str:
    """A library's message on one line, as a reason or summary quotes it: its first sentence
    (up to a blank line, or a period before a new line or sentence), at most 160 characters.
    The full text stays where it came from (the run's error, the hint's detail)."""
    paragraph = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    sentence = re.split(r"(?<=[.!?])(?:\s*\n|\s+(?=[A-Z`'\"]))", paragraph, maxsplit=1)[0]
    sentence = re.sub(r"\s+", " ", sentence).strip()
    if len(sentence) > _MAX_SENTENCE:
        sentence = sentence[: _MAX_SENTENCE - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"
    return sentence


def folded(items: Sequence[str], noun: str = "pins", keep: int = 3) -> str:
    """A list as one line of a reason: the first `keep`, then how many more ("numpy 1.21.2,
    scipy 1.7.1, pandas 1.3.2 and 41 more pins"); "nothing" when empty."""
    if len(items) <= keep + 1:  # "and 1 more pin" is no shorter than the pin itself
        return ", ".join(items) or "nothing"
    rest = len(items) - keep
    return f"{', '.join(items[:keep])} and {rest} more {noun}"


# A reST literal block (`source::` then indented lines): a code sample, never a hint's text.
_CODE_BLOCK = re.compile(r"::[ \t]*\n(?:[ \t]*\n|[ \t]+\S[^\n]*\n?)+")


def _clauses(text: str) -> Iterator[str]:
    # A code sample leaves a pointer to itself; a blank line ends a sentence.
    text = _CODE_BLOCK.sub(" (as the full message shows).\n\n", text)
    text = re.sub(r"(?<=[.!?])\s*\n[ \t]*\n\s*", " ", text.strip())
    text = re.sub(r"\s*\n[ \t]*\n\s*", ". ", text)
    # A line break starts a new sentence only before a capital letter: libraries wrap long
    # messages mid-sentence, and also put one sentence per line without a final period.
    joined = re.sub(r"\s*\n\s*(?=[A-Z`])", ". ", text.strip())
    joined = re.sub(r"\s+", " ", joined)
    for clause in _SENTENCE_END.split(joined):
        clause = clause.strip()
        if clause:
            yield clause


def _tidy(advice: str) -> str | None:
    advice = re.sub(r"^please\s+", "", advice.strip(), flags=re.IGNORECASE)
    advice = _TAIL.sub("", advice.rstrip(" .,;:")).rstrip(" .,;:")
    if not advice:
        return None
    advice = advice[0].lower() + advice[1:]
    if len(advice) > _MAX_HINT:
        advice = advice[: _MAX_HINT - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"
    return advice


# -- foreshadowing ---------------------------------------------------------------------------

# Quoted names in an error's first line, except the ones that say where rather than what:
# the module in "module 'numpy' has no attribute 'float'", the type in "'DataFrame' object",
# the package in "cannot import name 'trapz' from 'scipy.integrate'".
_ERROR_NAME = re.compile(r"(?<!module )(?<!from )['`\"]([A-Za-z_][\w.]*)['`\"](?! object)")


def foreshadowing(
    error: CellError,
    baseline_warnings: Sequence[WarningRecord],
    culprit_package: str | None,
) -> tuple[WarningRecord, ...]:
    """The warnings the baseline run already emitted about what later broke: ones that
    name the failing API (`old_mean` in "module 'wobble' has no attribute 'old_mean'"),
    come from the failing cell, or come from the culprit package.

    Most specific first (the name, then the cell, then the package; more of them beats
    fewer), each message once. Every record is a deprecation-family warning: the kernel
    capture records no others.
    """
    names = _error_names(error)
    culprit = _canonical(culprit_package) if culprit_package else None
    ranked: list[tuple[int, int, WarningRecord]] = []
    for position, record in enumerate(baseline_warnings):
        same_name = any(_mentions(record.message, name) for name in names)
        same_cell = record.cell == error.cell
        same_package = culprit is not None and _canonical(record.package or "") == culprit
        score = 4 * same_name + 2 * same_cell + same_package
        if score:
            ranked.append((-score, position, record))
    seen: set[tuple[str, str, str | None]] = set()
    found: list[WarningRecord] = []
    for _score, _position, record in sorted(ranked, key=lambda item: item[:2]):
        key = (record.category, record.message, record.package)
        if key not in seen:
            seen.add(key)
            found.append(record)
    return tuple(found)


def _error_names(error: CellError) -> set[str]:
    # The first line is the error itself; numpy and others append paragraphs of advice
    # whose names (`np.float64`) are the replacement, not what broke.
    first = error.evalue.strip().splitlines()[0] if error.evalue.strip() else ""
    names: set[str] = set()
    for name in _ERROR_NAME.findall(first):
        names.add(name)
        names.add(name.rsplit(".", 1)[-1])  # scipy.integrate.trapz is also just trapz
    return {name for name in names if len(name) > 2}


def _mentions(message: str, name: str) -> bool:
    # As a whole name: `float` is in "np.float" and "`float`", not in "np.float64".
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", message) is not None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
