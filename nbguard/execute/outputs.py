"""nbformat outputs turned into model values: Outputs, warning records and cell errors."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator, Mapping
from typing import Any

from nbguard.ansi import strip_ansi
from nbguard.model import CellError, Output, WarningRecord

# The mime type _kernel_capture.py publishes its records under (keep the two in step).
CAPTURE_MIME = "application/vnd.nbguard.warnings+json"


def convert_outputs(
    index: int, outputs: list[Any], key: str | None
) -> tuple[tuple[Output, ...], list[WarningRecord]]:
    """Cell `index`'s outputs as model Outputs, and the warning records the kernel's capture
    sent among them: those carrying this run's `key` (None: no capture ran). Anything else
    under the capture's mime type is the notebook's own output, kept as such."""
    converted: list[Output] = []
    records: list[WarningRecord] = []
    for out in outputs:
        kind = str(out.get("output_type", ""))
        if kind == "stream":
            converted.append(Output(kind, {str(out.get("name")): as_text(out.get("text", ""))}))
        elif kind == "error":
            converted.append(
                Output(kind, {"ename": str(out.get("ename")), "evalue": str(out.get("evalue"))})
            )
        elif kind in ("execute_result", "display_data"):
            bundle = dict(out.get("data", {}))
            if is_capture(bundle, key):
                records.extend(_records(index, bundle.pop(CAPTURE_MIME)))
                if not bundle:
                    continue
            converted.append(Output(kind, {mime: mime_text(mime, v) for mime, v in bundle.items()}))
        else:
            converted.append(Output(kind, {}))
    return tuple(converted), records


def is_capture(bundle: Mapping[str, Any], key: str | None) -> bool:
    """Whether a mime bundle holds records the capture of the run with `key` published."""
    payload = bundle.get(CAPTURE_MIME)
    if key is None or not key or not isinstance(payload, Mapping):
        return False
    return hmac.compare_digest(str(payload.get("key", "")), key)


def error_of(index: int, out: Mapping[str, Any], ename: str = "", evalue: str = "") -> CellError:
    """The CellError an error output of cell `index` shows, without terminal colours;
    `ename` and `evalue` stand in for what the output lacks."""
    return CellError(
        index,
        str(out.get("ename", ename)),
        strip_ansi(str(out.get("evalue", evalue))),
        tuple(strip_ansi(line) for line in out.get("traceback", ())),
    )


def _records(index: int, payload: Any) -> Iterator[WarningRecord]:
    items = payload.get("warnings", ()) if isinstance(payload, Mapping) else ()
    for item in items:
        package = item.get("package")
        yield WarningRecord(
            cell=index,
            category=str(item.get("category")),
            message=str(item.get("message")),
            package=None if package is None else str(package),
            # A kernel that says nothing of the origin counts the warning as the course's.
            origin="library" if item.get("origin") == "library" else "course",
        )


def as_text(value: Any) -> str:
    """A stream's or a mime payload's text, which nbformat may hold as a list of lines."""
    return "".join(value) if isinstance(value, list) else str(value)


def mime_text(mime: str, value: Any) -> str:
    if mime == "application/json" or mime.endswith("+json"):
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return as_text(value)
