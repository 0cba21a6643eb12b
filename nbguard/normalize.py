"""Named, pure normalizers that erase run-to-run noise from outputs before runs are compared."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from nbguard.model import NotebookRun, Output


@dataclass(frozen=True)
class Normalizer:
    """A pure text rewrite with a name, so a report can say which masks were applied."""

    name: str
    func: Callable[[str], str]

    def __call__(self, text: str) -> str:
        return self.func(text)


# Every kind of escape a terminal-aware library (IPython tracebacks, rich, tqdm, colorama)
# prints: CSI sequences such as colours, OSC sequences such as hyperlinks, and short ESC pairs.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")

# ipykernel compiles each cell into <tempdir>/ipykernel_<pid>/<hash>.py; the pid differs on
# every kernel start, so tracebacks and SyntaxError messages would never match otherwise.
_IPYKERNEL_FILE = re.compile(r"""[^\s'"()<>]*ipykernel_\d+[\\/]+-?\d+\.py""")

# One duration as IPython's _format_time prints it: "1.2 ms", "345 µs", "12 ns", "1min 3s".
_DURATION = r"(?:\d+(?:\.\d+)?\s?(?:d|h|min|s|ms|µs|μs|us|ns)\b\s?)+"
_TIMEIT = re.compile(
    rf"{_DURATION}\s*(?:±|\+-)\s*{_DURATION}\s*per loop "
    r"\(mean (?:±|\+-) std\. dev\. of [\d,]+ runs?, [\d,]+ loops? each\)"
)
_TIMEIT_OLD = re.compile(rf"[\d,]+ loops?, best of \d+: {_DURATION}\s*per loop")
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

# Used by mask_volatile_numbers only, never on outputs.
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
_LINE_NUMBER = re.compile(r"\bline \d+\b")
# CPython object ids (id(x), "<weakref at 140212...>") are long decimal integers.
_OBJECT_ID = re.compile(r"\b\d{10,}\b")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


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


# The run-independent normalizers, in the order they apply. ANSI goes first because escape
# codes inside a traceback can split a path or a number the later patterns look for.
NORMALIZERS: tuple[Normalizer, ...] = (
    Normalizer("ansi-escapes", _strip_ansi),
    Normalizer("ipykernel-files", _mask_ipykernel_files),
    Normalizer("timings", _mask_timings),
    Normalizer("timestamps", _mask_timestamps),
    Normalizer("addresses", _mask_addresses),
)


def _volatile_paths(paths: Iterable[tuple[str, str]]) -> Normalizer:
    # Longest first, so a scratch dir nested in another volatile dir gets its own placeholder.
    ordered = sorted(((p, r) for p, r in paths if p), key=lambda pair: len(pair[0]), reverse=True)

    def replace(text: str) -> str:
        for path, placeholder in ordered:
            text = text.replace(path, placeholder)
        return text

    return Normalizer("volatile-paths", replace)


def normalizers_for(run: NotebookRun) -> tuple[Normalizer, ...]:
    """The normalizers applied to `run`'s text, in order: the static ones plus its paths."""
    # Paths go right after ANSI so that no later pattern eats part of a path first (a scratch
    # dir named after a timestamp, say).
    return (NORMALIZERS[0], _volatile_paths(run.volatile_paths), *NORMALIZERS[1:])


def _apply(text: str, normalizers: Sequence[Normalizer]) -> str:
    for normalizer in normalizers:
        text = normalizer(text)
    return text


def normalize_text(text: str, run: NotebookRun) -> str:
    """`text` as it came out of `run`, with every normalizer of `normalizers_for` applied."""
    return _apply(text, normalizers_for(run))


def mask_volatile_numbers(text: str) -> str:
    """Mask hex values and addresses, `line N` numbers and object ids in an error message.

    Decides whether two errors are "the same" error; it hides real numbers, so it is never
    applied to outputs.
    """
    text = _HEX.sub("0xHEX", text)
    text = _LINE_NUMBER.sub("line N", text)
    return _OBJECT_ID.sub("<ID>", text)


_TEXT_MIMES = frozenset({"stdout", "stderr", "application/json", "application/javascript"})


def is_binary_mime(mime: str) -> bool:
    """True for payloads stored base64 (images, PDFs): compared byte for byte, never rewritten.

    Extension point: a perceptual image comparator would key off this same test.
    """
    if mime in _TEXT_MIMES or mime.startswith("text/"):
        return False
    return not mime.endswith(("+xml", "+json"))


def _normalize_one(output: Output, normalizers: Sequence[Normalizer]) -> Output:
    if output.kind == "error":
        # The traceback is dropped: its frames name library internals and line numbers that
        # move with every release, while ename/evalue are what the error says.
        return Output(
            kind="error",
            data={
                "ename": output.data.get("ename", ""),
                "evalue": _apply(output.data.get("evalue", ""), normalizers),
            },
        )
    data: dict[str, str] = {}
    for mime, value in output.data.items():
        if is_binary_mime(mime):
            # nbformat may wrap base64 at any width; the bytes are what count.
            data[mime] = "".join(value.split())
        else:
            data[mime] = _apply(value, normalizers)
    return Output(kind=output.kind, data=data)


def _coalesce_streams(outputs: Iterable[Output]) -> list[Output]:
    # How print() output is cut into stream messages depends on flush timing, so consecutive
    # chunks of the same stream are one output (as nbclient's coalesce_streams would do).
    merged: list[Output] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and output.kind == "stream"
            and previous.kind == "stream"
            and len(output.data) == 1
            and previous.data.keys() == output.data.keys()
        ):
            (name,) = output.data
            merged[-1] = Output(kind="stream", data={name: previous.data[name] + output.data[name]})
        else:
            merged.append(output)
    return merged


def normalize_output(output: Output, run: NotebookRun) -> Output:
    """A new Output with `run`'s noise removed from every text payload."""
    return _normalize_one(output, normalizers_for(run))


def normalize_outputs(outputs: Iterable[Output], run: NotebookRun) -> tuple[Output, ...]:
    """One cell's outputs from `run`, stream chunks merged and each output normalized."""
    normalizers = normalizers_for(run)
    return tuple(_normalize_one(output, normalizers) for output in _coalesce_streams(outputs))
