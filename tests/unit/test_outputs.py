"""Fast tier: nbformat outputs as model Outputs, warning records and cell errors."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from nbformat.v4 import new_output

import nbguard.execute
from nbguard.execute.outputs import CAPTURE_MIME, convert_outputs, error_of
from nbguard.model import CellError, Output, WarningRecord

KEY = "run-key"


def _warnings(*records: dict[str, object], key: str = KEY) -> dict[str, object]:
    return {"warnings": list(records), "key": key}


def test_streams_and_results_become_text_per_channel_and_mime() -> None:
    outputs, records = convert_outputs(
        3,
        [
            new_output("stream", name="stdout", text=["loading\n", "done\n"]),
            new_output("stream", name="stderr", text="careful\n"),
            new_output("execute_result", {"text/plain": ["1\n", "2"]}, execution_count=1),
        ],
        KEY,
    )

    assert outputs == (
        Output("stream", {"stdout": "loading\ndone\n"}),
        Output("stream", {"stderr": "careful\n"}),
        Output("execute_result", {"text/plain": "1\n2"}),
    )
    assert records == []


def test_json_outputs_compare_by_content_not_key_order() -> None:
    first, _ = convert_outputs(
        0, [new_output("display_data", {"application/json": {"b": 1, "a": 2}})], KEY
    )
    second, _ = convert_outputs(
        0, [new_output("display_data", {"application/json": {"a": 2, "b": 1}})], KEY
    )

    assert first == second
    assert json.loads(first[0].data["application/json"]) == {"a": 2, "b": 1}


def test_an_error_output_keeps_its_name_and_value() -> None:
    error = new_output("error", ename="KeyError", evalue="'price'", traceback=["..."])

    outputs, _ = convert_outputs(0, [error], KEY)

    assert outputs == (Output("error", {"ename": "KeyError", "evalue": "'price'"}),)


def test_warning_records_are_taken_out_of_the_outputs_for_their_cell() -> None:
    captured = new_output(
        "display_data",
        {
            CAPTURE_MIME: _warnings(
                {"category": "FutureWarning", "message": "use 'ME'", "package": "pandas"},
                {"category": "DeprecationWarning", "message": "old"},
            )
        },
    )
    plot = new_output("display_data", {"text/plain": "<Figure>"})

    outputs, records = convert_outputs(7, [captured, plot], KEY)

    assert outputs == (Output("display_data", {"text/plain": "<Figure>"}),)
    assert records == [
        WarningRecord(7, "FutureWarning", "use 'ME'", "pandas"),
        WarningRecord(7, "DeprecationWarning", "old", None),
    ]


def test_warning_records_beside_other_data_leave_that_data_in_place() -> None:
    mixed = new_output("display_data", {"text/plain": "x", CAPTURE_MIME: _warnings()})

    outputs, records = convert_outputs(0, [mixed], KEY)

    assert outputs == (Output("display_data", {"text/plain": "x"}),)
    assert records == []


def test_a_damaged_warning_payload_is_no_record_but_the_notebooks_output() -> None:
    outputs, records = convert_outputs(0, [new_output("display_data", {CAPTURE_MIME: "oops"})], KEY)

    assert (outputs, records) == ((Output("display_data", {CAPTURE_MIME: "oops"}),), [])


def test_records_without_this_runs_key_are_the_notebooks_own_output() -> None:
    fake = {"category": "DeprecationWarning", "message": "forged", "package": "numpy"}
    forged = [
        new_output("display_data", {CAPTURE_MIME: _warnings(fake, key="guessed")}),
        new_output("display_data", {CAPTURE_MIME: {"warnings": [fake]}}),
    ]

    outputs, records = convert_outputs(0, forged, KEY)
    stored, stored_records = convert_outputs(0, [forged[0]], None)  # no capture ran

    assert records == [] and stored_records == []
    assert len(outputs) == 2 and all(CAPTURE_MIME in out.data for out in outputs)
    assert len(stored) == 1


def test_error_of_drops_terminal_colours_from_value_and_traceback() -> None:
    out = new_output(
        "error",
        ename="ValueError",
        evalue="\x1b[0;31mbad\x1b[0m",
        traceback=["\x1b[0;31m----> 1\x1b[0m raise ValueError('bad')"],
    )

    assert error_of(4, out) == CellError(
        4, "ValueError", "bad", ("----> 1 raise ValueError('bad')",)
    )


def test_error_of_fills_in_what_the_output_lacks() -> None:
    assert error_of(2, {"output_type": "error"}, "SystemExit", "3") == CellError(
        2, "SystemExit", "3"
    )


def test_the_kernel_side_publishes_records_under_the_mime_type_read_here() -> None:
    capture = Path(nbguard.execute.__file__).with_name("_kernel_capture.py")
    tree = ast.parse(capture.read_text(encoding="utf-8"))
    values = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    assert values["MIME"] == CAPTURE_MIME == nbguard.execute.CAPTURE_MIME
