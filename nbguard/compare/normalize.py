"""Named, pure normalizers that erase run-to-run noise from outputs before runs are compared."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from nbguard.ansi import strip_ansi
from nbguard.errors import ConfigError
from nbguard.model import NotebookRun, Output


@dataclass(frozen=True)
class Normalizer:
    """A pure text rewrite with a name, so a report can say which masks were applied."""

    name: str
    func: Callable[[str], str]

    def __call__(self, text: str) -> str:
        return self.func(text)


# ipykernel compiles each cell into <tempdir>/ipykernel_<pid>/<hash>.py; the pid differs on
# every kernel start, so tracebacks and SyntaxError messages would never match otherwise.
# Matches start only where a path token starts (the lookbehind), so a long line is scanned
# once rather than from every position: every pattern here must stay linear in the output.
_IPYKERNEL_FILE = re.compile(r"""(?<![^\s'"()<>])[^\s'"()<>]*ipykernel_\d+[\\/]+-?\d+\.py""")

# One duration as IPython's _format_time prints it: "1.2 ms", "345 µs", "12 ns", "1min 3s".
# It starts only at the start of a number (the lookbehind) and spans at most three units
# ("1h 2min 3s"), so a line of a million durations is scanned once: linear, not quadratic.
_DURATION = r"(?<![\d.])(?:\d+(?:\.\d+)?\s?(?:d|h|min|s|ms|µs|μs|us|ns)\b\s?){1,3}"
_TIMEIT = re.compile(
    rf"{_DURATION}\s*(?:±|\+-)\s*{_DURATION}\s*per loop "
    r"\(mean (?:±|\+-) std\. dev\. of [\d,]+ runs?, [\d,]+ loops? each\)"
)
_TIMEIT_OLD = re.compile(rf"(?<![\d,])[\d,]+ loops?, best of \d+: {_DURATION}\s*per loop")
# `%time` prints one CPU line and one wall line; their figures are the whole content.
_TIME_LINES = re.compile(r"^(CPU times|Wall time):.*$", re.MULTILINE)
# Lines IPython prints only when a run happens to be slow: present in one env and absent in
# the other, so they are dropped entirely rather than masked.
_CONDITIONAL_TIMING_LINES = re.compile(
    r"^(?:The slowest run took .*cached\.|Compiler time: .*|Compiler : .*|Parser   : .*)\n?",
    re.MULTILINE,
)

# Datetimes with a time of day down to the second, ISO ("2026-11-22T19:03:04.123+00:00") or
# logging style ("2026-11-22 19:03:04,123"). Bare dates are kept: they are usually data.
_ISO_DATETIME = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
)
# datetime.datetime(2026, 11, 22, 19, 3, 4, 123456[, tzinfo=...]): the numbers are masked and
# the tzinfo, which is configuration rather than the clock, is kept.
_DATETIME_REPR = re.compile(r"datetime\.datetime\(\d{4}(?:, \d{1,6}){2,6}")

# Default reprs such as <Foo object at 0x7f3a...>: only the " at 0x..." form is masked so a
# real hexadecimal value in an output (hex(255) -> '0xff') still counts.
_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]+\b")

# A terminal (and Jupyter's output area) redraws a line from its start at each carriage
# return: tqdm and friends print every state of a progress bar, how many depends on speed.
_CRLF = re.compile(r"\r+\n")

# tqdm's timing block: "[00:01<00:02, 95.30it/s" (elapsed<remaining, rate) or "[00:01, 3.2s/it"
# without a total. Rates switch unit (it/s ↔ s/it, kB/s ↔ MB/s) with speed, so the unit is
# masked too; a postfix such as ", loss=0.5]" after the rate is kept. The unit's slash keeps
# "[12:30, 3 talks]" out.
_CLOCK = r"\d+:\d{2}(?::\d{2})?"
_PROGRESS_TIMING = re.compile(
    rf"\[{_CLOCK}(?P<eta><(?:{_CLOCK}|\?))?,\s*(?:\?|\d+(?:\.\d+)?)\s?[^\s,\]/]*/[^\s,\]]+"
)

# ipywidgets (tqdm.notebook's bars) get a fresh random model id on every run.
_WIDGET_MODEL_ID = re.compile(r'("model_id":\s*")[0-9a-f]{32}(")')

# Used by mask_volatile_numbers only, never on outputs.
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
_LINE_NUMBER = re.compile(r"\bline \d+\b")
# CPython object ids (id(x), "<weakref at 140212...>") are long decimal integers.
_OBJECT_ID = re.compile(r"\b\d{10,}\b")


def _mask_ipykernel_files(text: str) -> str:
    return _IPYKERNEL_FILE.sub("<ipykernel-cell>", text)


def _mask_timings(text: str) -> str:
    text = _CONDITIONAL_TIMING_LINES.sub("", text)
    text = _TIME_LINES.sub(lambda m: f"{m.group(1)}: <TIMING>", text)
    text = _TIMEIT.sub(
        "<TIME> ± <TIME> per loop (mean ± std. dev. of <N> runs, <N> loops each)", text
    )
    return _TIMEIT_OLD.sub("<N> loops, best of <N>: <TIME> per loop", text)


def _mask_timestamps(text: str) -> str:
    text = _ISO_DATETIME.sub("<TIMESTAMP>", text)
    return _DATETIME_REPR.sub("datetime.datetime(<TIMESTAMP>", text)


def _mask_addresses(text: str) -> str:
    return _ADDRESS.sub("at 0xADDRESS", text)


def _overlay(line: str) -> str:
    # What a terminal shows after the redraws: each segment overwrites the line from its
    # start, and what a shorter redraw does not cover stays visible (Jupyter does the same).
    # Read from the last redraw back, each earlier one shows only past what later ones cover:
    # linear, where redrawing in order copies the line once per segment.
    pieces: list[str] = []
    covered = 0
    for segment in reversed(line.split("\r")):
        if len(segment) > covered:
            pieces.append(segment[covered:])
            covered = len(segment)
    return "".join(pieces)


def _fold_carriage_returns(text: str) -> str:
    if "\r" not in text:
        return text
    return "\n".join(_overlay(line) for line in _CRLF.sub("\n", text).split("\n"))


def _mask_progress_timing(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        return "[<ELAPSED><<REMAINING>, <RATE>" if match.group("eta") else "[<ELAPSED>, <RATE>"

    return _PROGRESS_TIMING.sub(mask, text)


def _mask_widget_ids(text: str) -> str:
    return _WIDGET_MODEL_ID.sub(r"\1<MODEL_ID>\2", text)


# The run-independent normalizers, in the order they apply. ANSI goes first because escape
# codes inside a traceback can split a path or a number the later patterns look for; the
# redraws are folded before anything masks the figures in the last state of a bar.
NORMALIZERS: tuple[Normalizer, ...] = (
    Normalizer("ansi-escapes", strip_ansi),
    Normalizer("carriage-returns", _fold_carriage_returns),
    Normalizer("progress-bars", _mask_progress_timing),
    Normalizer("ipykernel-files", _mask_ipykernel_files),
    Normalizer("timings", _mask_timings),
    Normalizer("timestamps", _mask_timestamps),
    Normalizer("addresses", _mask_addresses),
    Normalizer("widget-ids", _mask_widget_ids),
)


def replacement_normalizers(replacements: Iterable[tuple[str, str]]) -> tuple[Normalizer, ...]:
    """The user's regex → replacement pairs (like nbval's sanitize files), each a normalizer
    named "replace:<regex>". Raises ConfigError for a pattern or template re cannot use."""
    normalizers: list[Normalizer] = []
    for pattern, replacement in replacements:
        try:
            compiled = re.compile(pattern)
            # The template (group references such as \\1) is checked now rather than at the
            # first match, halfway through a run.
            compiled.sub(replacement, "")
        except re.error as exc:
            raise ConfigError(
                f"replace: {pattern!r} => {replacement!r} is not a usable regular expression "
                f"({exc}); fix it in [tool.nbguard] replace or --replace"
            ) from None
        normalizers.append(Normalizer(f"replace:{pattern}", partial(compiled.sub, replacement)))
    return tuple(normalizers)


def _volatile_paths(paths: Iterable[tuple[str, str]]) -> Normalizer:
    # Longest first, so a scratch dir nested in another volatile dir gets its own placeholder.
    ordered = sorted(((p, r) for p, r in paths if p), key=lambda pair: len(pair[0]), reverse=True)

    def replace(text: str) -> str:
        for path, placeholder in ordered:
            text = text.replace(path, placeholder)
        return text

    return Normalizer("volatile-paths", replace)


def normalizers_for(
    run: NotebookRun, replacements: Iterable[tuple[str, str]] = ()
) -> tuple[Normalizer, ...]:
    """The normalizers applied to `run`'s text, in order: the static ones plus its paths,
    then the user's replacements."""
    # Paths go right after ANSI so that no later pattern eats part of a path first (a scratch
    # dir named after a timestamp, say). The user's patterns go last: they are written
    # against the text a report shows, placeholders included.
    return (
        NORMALIZERS[0],
        _volatile_paths(run.volatile_paths),
        *NORMALIZERS[1:],
        *replacement_normalizers(replacements),
    )


def _apply(text: str, normalizers: Sequence[Normalizer]) -> str:
    return _traced(text, normalizers)[0]


def _traced(text: str, normalizers: Sequence[Normalizer]) -> tuple[str, tuple[str, ...]]:
    """`text` normalized, and the names of the normalizers that changed it."""
    changed: list[str] = []
    for normalizer in normalizers:
        result = normalizer(text)
        if result != text:
            changed.append(normalizer.name)
        text = result
    return text, tuple(changed)


def normalize_text(
    text: str, run: NotebookRun, replacements: Iterable[tuple[str, str]] = ()
) -> str:
    """`text` as it came out of `run`, with every normalizer of `normalizers_for` applied."""
    return _apply(text, normalizers_for(run, replacements))


def normalize_text_traced(
    text: str, run: NotebookRun, replacements: Iterable[tuple[str, str]] = ()
) -> tuple[str, tuple[str, ...]]:
    """Like normalize_text, with the names of the normalizers that changed `text`."""
    return _traced(text, normalizers_for(run, replacements))


def mask_volatile_numbers(text: str) -> str:
    """Mask hex values and addresses, `line N` numbers and object ids in an error message.

    Decides whether two errors are "the same" error; it hides real numbers, so it is never
    applied to outputs.
    """
    text = _HEX.sub("0xHEX", text)
    text = _LINE_NUMBER.sub("line N", text)
    return _OBJECT_ID.sub("<ID>", text)


# Any number as printed: sign, digits, separators, decimals, exponent. Not a name's digits.
_ANY_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?(?![\w])")


def mask_numbers(text: str) -> str:
    """Every number in `text` as <N>: what two messages of one failure keep in common."""
    return _ANY_NUMBER.sub("<N>", text)


_TEXT_MIMES = frozenset({"stdout", "stderr", "application/json", "application/javascript"})


def is_binary_mime(mime: str) -> bool:
    """True for payloads stored base64 (images, PDFs): never rewritten; images are compared
    perceptually, anything else byte for byte."""
    if mime in _TEXT_MIMES or mime.startswith("text/"):
        return False
    return not mime.endswith(("+xml", "+json"))


@dataclass(frozen=True)
class NormalizedOutput:
    """An output with run-to-run noise removed, and what was removed from each payload."""

    output: Output
    # Payload key (mime type, stream name, "evalue") -> names of the normalizers that changed
    # it, structural ones ("stream-chunks", "progress-bars") included.
    applied: Mapping[str, tuple[str, ...]]


def _normalize_one(
    output: Output, normalizers: Sequence[Normalizer], notes: tuple[str, ...] = ()
) -> NormalizedOutput:
    if output.kind == "error":
        # The traceback is dropped: its frames name library internals and line numbers that
        # move with every release, while ename/evalue are what the error says.
        evalue, applied = _traced(output.data.get("evalue", ""), normalizers)
        return NormalizedOutput(
            Output(kind="error", data={"ename": output.data.get("ename", ""), "evalue": evalue}),
            {"evalue": applied},
        )
    data: dict[str, str] = {}
    traces: dict[str, tuple[str, ...]] = {}
    for mime, value in output.data.items():
        if is_binary_mime(mime):
            # nbformat may wrap base64 at any width; the bytes are what count.
            data[mime], traces[mime] = "".join(value.split()), ()
        else:
            data[mime], applied = _traced(value, normalizers)
            traces[mime] = (*notes, *applied)
    return NormalizedOutput(Output(kind=output.kind, data=data), traces)


def _stream_name(output: Output) -> str | None:
    if output.kind == "stream" and len(output.data) == 1:
        return next(iter(output.data))
    return None


def _is_transient_progress(output: Output) -> bool:
    # An unfinished redraw of a progress bar: no newline yet, only carriage returns.
    (text,) = output.data.values()
    return "\n" not in text and "\r" in text and _PROGRESS_TIMING.search(text) is not None


def _structural_pass(outputs: Iterable[Output]) -> list[tuple[Output, tuple[str, ...]]]:
    """Stream outputs as a reader would see them once the cell finished, with notes on what
    was merged or dropped."""
    items = list(outputs)
    names = [_stream_name(output) for output in items]
    # For each position, whether a later output on each stream starts with a redraw.
    redrawn_after: list[frozenset[str]] = []
    redrawn: frozenset[str] = frozenset()
    for output, name in zip(reversed(items), reversed(names), strict=True):
        redrawn_after.append(redrawn)
        if name is not None and output.data[name].startswith("\r"):
            redrawn |= {name}
    redrawn_after.reverse()

    kept: list[tuple[Output, tuple[str, ...]]] = []
    pending: dict[str, tuple[str, ...]] = {}
    for position, (output, name) in enumerate(zip(items, names, strict=True)):
        if (
            name is not None
            and position + 1 < len(items)
            and names[position + 1] != name
            and name in redrawn_after[position]
            and _is_transient_progress(output)
        ):
            # A bar's intermediate state, cut off by a print on the other stream; the next
            # redraw on this stream replaces it. How many such states a cell leaves depends
            # on how fast it ran.
            pending[name] = ("progress-bars",)
            continue
        notes = pending.pop(name, ()) if name is not None else ()
        previous = kept[-1] if kept else None
        if name is not None and previous is not None and _stream_name(previous[0]) == name:
            # How print() output is cut into stream messages depends on flush timing, so
            # consecutive chunks of the same stream are one output (as nbclient's
            # coalesce_streams would do).
            merged = Output("stream", {name: previous[0].data[name] + output.data[name]})
            kept[-1] = (merged, _union(previous[1], notes, ("stream-chunks",)))
        else:
            kept.append((output, notes))
    return kept


def _union(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for group in groups for name in group))


def normalize_output(
    output: Output, run: NotebookRun, replacements: Iterable[tuple[str, str]] = ()
) -> Output:
    """A new Output with `run`'s noise removed from every text payload."""
    return _normalize_one(output, normalizers_for(run, replacements)).output


def normalize_outputs_traced(
    outputs: Iterable[Output], run: NotebookRun, replacements: Iterable[tuple[str, str]] = ()
) -> tuple[NormalizedOutput, ...]:
    """One cell's outputs from `run`: stream chunks merged, unfinished progress-bar states
    dropped, each output normalized, with the names of what changed each payload."""
    normalizers = normalizers_for(run, replacements)
    return tuple(
        _normalize_one(output, normalizers, notes) for output, notes in _structural_pass(outputs)
    )


def normalize_outputs(
    outputs: Iterable[Output], run: NotebookRun, replacements: Iterable[tuple[str, str]] = ()
) -> tuple[Output, ...]:
    """One cell's outputs from `run`, stream chunks merged and each output normalized."""
    return tuple(n.output for n in normalize_outputs_traced(outputs, run, replacements))
