"""Runs that fail for want of Google Colab or the network say so; other runs are untouched."""

from __future__ import annotations

import pytest

from nbguard.compare import classify
from nbguard.model import CellError, NotebookRun


def _run(ename: str, evalue: str, *, reason: str | None = None) -> NotebookRun:
    error = CellError(cell=2, ename=ename, evalue=evalue)
    return NotebookRun("nb.ipynb", "locked", "error", 1.0, error=error, reason=reason)


def test_google_colab_is_named() -> None:
    run = classify.classified(_run("ModuleNotFoundError", "No module named 'google.colab'"))
    assert run.reason == "needs Google Colab (google.colab is not installable outside Colab)"
    assert run.status == "error"  # the verdict rules see the same run


def test_a_colab_submodule_counts_too() -> None:
    run = classify.classified(_run("ModuleNotFoundError", "No module named 'google.colab.drive'"))
    assert run.reason == classify.COLAB_REASON


@pytest.mark.parametrize(
    ("ename", "evalue"),
    [
        ("gaierror", "[Errno -3] Temporary failure in name resolution"),
        ("socket.gaierror", "[Errno -2] Name or service not known"),
        ("ConnectionRefusedError", "[Errno 111] Connection refused"),
        ("ConnectionError", "HTTPSConnectionPool(host='x.org', port=443): Max retries exceeded"),
        ("URLError", "<urlopen error [Errno -3] Temporary failure in name resolution>"),
        ("requests.exceptions.ConnectionError", "Failed to establish a new connection"),
        ("OSError", "Temporary failure in name resolution"),
    ],
)
def test_network_errors_are_named(ename: str, evalue: str) -> None:
    run = classify.classified(_run(ename, evalue))
    assert run.reason is not None
    assert run.reason.startswith("needs the network: ")
    assert ename in run.reason


@pytest.mark.parametrize(
    ("ename", "evalue"),
    [
        ("ModuleNotFoundError", "No module named 'google'"),
        ("ModuleNotFoundError", "No module named 'numpy'"),
        ("ValueError", "connection string is empty"),
        ("AttributeError", "module 'wobble' has no attribute 'mean'"),
    ],
)
def test_other_errors_are_left_alone(ename: str, evalue: str) -> None:
    run = _run(ename, evalue)
    assert classify.classified(run) is run


def test_a_run_without_error_or_with_a_reason_is_left_alone() -> None:
    ok = NotebookRun("nb.ipynb", "locked", "ok", 1.0)
    assert classify.classified(ok) is ok
    timed_out = _run("gaierror", "Temporary failure in name resolution", reason="cell 2 timed out")
    assert classify.classified(timed_out) is timed_out


def test_a_long_message_is_one_short_line() -> None:
    run = classify.classified(_run("URLError", "Temporary failure in name resolution\n" * 50))
    assert run.reason is not None
    assert "\n" not in run.reason
    assert len(run.reason) <= len("needs the network: ") + 200
