"""Kernel tier: hostile and damaged notebooks each end with a clear status and reason, and
nothing secret from nbguard's environment reaches a notebook or a report."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbguard.execute import ExecOptions, execute_notebook
from nbguard.model import Notebook, NotebookReport, NotebookRun, Report
from nbguard.report import json_report

PYTHON = Path(sys.executable)
TOKEN = "ghp_secret123"
API_KEY = "my-api-key-4711"
PRINT_ENV = "import os\nprint(dict(os.environ))"

Runner = Callable[..., NotebookRun]


@pytest.fixture
def course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    root.mkdir()
    return root


@pytest.fixture
def run_file(course: Path, tmp_path: Path) -> Callable[..., NotebookRun]:
    """Execute a notebook file given as text (or a JSON-able dict) in this interpreter."""

    def runner(
        content: str | dict[str, Any], *, path: str = "nb.ipynb", options: ExecOptions | None = None
    ) -> NotebookRun:
        text = content if isinstance(content, str) else json.dumps(content)
        (course / path).write_text(text, encoding="utf-8")
        notebook = Notebook(path, "0" * 64, "python3", "python")
        return execute_notebook(
            notebook,
            course,
            "upcoming",
            PYTHON,
            options or ExecOptions(cell_timeout=20),
            tmp_path / "w",
        )

    return runner


@pytest.fixture
def run(run_file: Callable[..., NotebookRun]) -> Runner:
    """Execute a v4 notebook of the given code cells."""

    def runner(*sources: str, options: ExecOptions | None = None) -> NotebookRun:
        nb = new_notebook(cells=[new_code_cell(source) for source in sources])
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
        return run_file(json.dumps(nb), options=options)

    return runner


def _printed(result: NotebookRun) -> str:
    return "".join(
        text for cell in result.cells for out in cell.outputs for text in out.data.values()
    )


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("MY_API_KEY", API_KEY)
    monkeypatch.setenv("NBGUARD_HARMLESS", "visible-value")


@pytest.mark.usefixtures("secrets")
def test_secrets_of_nbguards_environment_do_not_reach_the_kernel(run: Runner) -> None:
    result = run(PRINT_ENV)

    assert result.status == "ok"
    printed = _printed(result)
    assert "visible-value" in printed  # the environment is passed, only secrets are not
    assert TOKEN not in printed and "GITHUB_TOKEN" not in printed
    assert API_KEY not in printed and "MY_API_KEY" not in printed


@pytest.mark.usefixtures("secrets")
def test_pass_env_lets_a_secret_through_but_the_report_redacts_it(run: Runner) -> None:
    result = run(
        PRINT_ENV,
        "import os\nraise ValueError('token is ' + os.environ['GITHUB_TOKEN'])",
        options=ExecOptions(cell_timeout=20, pass_env=("GITHUB_*",)),
    )

    assert result.status == "error"
    assert TOKEN in _printed(result)
    assert API_KEY not in _printed(result)  # allow-listed by name or glob only
    assert result.error is not None and TOKEN in result.error.evalue
    report = Report(
        course="course",
        baseline="locked",
        envs={},
        notebooks=(NotebookReport("nb.ipynb", "broken", {"upcoming": result}),),
        created="2026-01-01T00:00:00Z",
        duration_s=1.0,
        settings={"note": f"Bearer {TOKEN}"},
    )
    text = json.dumps(json_report.to_json(report))
    assert TOKEN not in text
    assert "token is ***" in text and "Bearer ***" in text


def test_input_fails_fast_with_a_message_saying_so(run: Runner) -> None:
    started = time.monotonic()
    result = run("name = input('your name? ')", "print('never')")

    assert time.monotonic() - started < 10
    assert result.status == "error"
    assert result.error is not None and result.error.ename == "StdinNotImplementedError"
    assert "input" in result.error.evalue.lower() or "stdin" in result.error.evalue.lower()
    assert result.reason is not None and "cell 0 asked for keyboard input" in result.reason
    assert [cell.status for cell in result.cells] == ["error", "not-run"]


def test_sys_exit_is_an_error_of_its_cell(run: Runner) -> None:
    result = run("import sys\nsys.exit(3)", "print('never')")

    # IPython catches SystemExit in a cell and shows it as an error output; the kernel lives.
    assert result.status == "error"
    assert result.error is not None and result.error.cell == 0
    assert result.error.ename == "SystemExit" and result.error.evalue == "3"
    assert result.reason == "cell 0 called sys.exit(3), which ends the notebook"
    assert [cell.status for cell in result.cells] == ["error", "not-run"]


def test_os_exit_is_a_dead_kernel(run: Runner) -> None:
    result = run("import os\nos._exit(1)", "print('never')")

    assert result.status == "dead-kernel"
    assert result.reason == "the kernel died while cell 0 was running (exit code 1)"
    assert [cell.status for cell in result.cells] == ["error", "not-run"]


def test_segfault_is_a_dead_kernel_killed_by_sigsegv(run: Runner) -> None:
    result = run("import ctypes\nctypes.string_at(0)", "print('never')")

    assert result.status == "dead-kernel"
    assert result.reason == "the kernel died while cell 0 was running (killed by SIGSEGV)"
    assert [cell.status for cell in result.cells] == ["error", "not-run"]


def test_nbformat_v3_notebook_is_upgraded_and_runs(run_file: Callable[..., NotebookRun]) -> None:
    v3 = {
        "nbformat": 3,
        "nbformat_minor": 0,
        "worksheets": [
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "input": "print(1)",
                        "language": "python",
                        "outputs": [],
                    }
                ]
            }
        ],
        "metadata": {},
    }

    result = run_file(v3)

    assert result.status == "ok"
    assert [cell.source for cell in result.cells] == ["print(1)"]
    assert result.cells[0].outputs[0].data == {"stdout": "1\n"}


def test_empty_notebook_is_ok_with_no_cells(run: Runner) -> None:
    result = run()

    assert (result.status, result.cells, result.error) == ("ok", (), None)


def test_notebook_without_kernelspec_runs_with_python(run_file: Callable[..., NotebookRun]) -> None:
    nb = new_notebook(cells=[new_code_cell("import sys\nprint(sys.version_info[0])")])
    assert "kernelspec" not in nb.metadata

    result = run_file(json.dumps(nb))

    assert result.status == "ok"
    assert result.cells[0].outputs[0].data == {"stdout": "3\n"}


def test_invalid_json_is_an_error_with_a_one_line_reason(
    run_file: Callable[..., NotebookRun],
) -> None:
    result = run_file('{"cells": [', path="broken.ipynb")

    assert result.status == "error"
    assert result.reason is not None and "\n" not in result.reason
    assert result.reason.startswith("cannot read broken.ipynb")
    assert result.cells == ()


GIB = 1024**3


def test_memory_bomb_under_a_memory_limit_is_a_memory_error(run: Runner) -> None:
    options = ExecOptions(cell_timeout=30, memory_limit=GIB)
    result = run("x = bytearray(10**11)", "print('never')", options=options)

    assert result.status == "error"
    assert result.error is not None and result.error.ename == "MemoryError"
    assert result.reason == "cell 0 ran out of memory: kernels are limited to 1 GB (memory-limit)"
    assert [cell.status for cell in result.cells] == ["error", "not-run"]


def test_growing_memory_bomb_under_a_memory_limit_ends_with_a_clear_reason(run: Runner) -> None:
    options = ExecOptions(cell_timeout=60, memory_limit=GIB)
    started = time.monotonic()
    result = run(
        "print('before')",
        "x = [bytearray(10**7) for _ in range(10**5)]",
        "print('never')",
        options=options,
    )

    assert time.monotonic() - started < 60
    # Python raises MemoryError when malloc fails; if the limit strikes where no exception
    # can be raised the kernel dies instead. Either way the reason names the limit.
    assert result.status in ("error", "dead-kernel")
    assert result.reason is not None and "limited to 1 GB (memory-limit)" in result.reason
    assert result.error is not None and result.error.cell == 1
    assert [cell.status for cell in result.cells] == ["ok", "error", "not-run"]
    assert result.cells[0].outputs[0].data == {"stdout": "before\n"}


def test_memory_limit_leaves_a_modest_notebook_alone(run: Runner) -> None:
    options = ExecOptions(cell_timeout=30, memory_limit=GIB)
    result = run("import sys\nx = bytearray(10**8)\nprint(len(x), sys.argv[0])", options=options)

    assert result.status == "ok", result.reason
    assert result.cells[0].outputs[0].data["stdout"].startswith("100000000 ")


MIB = 1024**2
TRUNCATED_1MB = "[nbguard: output truncated at 1 MB]\n"


def test_huge_output_is_capped_with_a_note(run: Runner) -> None:
    options = ExecOptions(cell_timeout=60, max_output=MIB)
    started = time.monotonic()
    result = run(
        "print('small')",
        "print('x' * 50 * 10**6)",
        "from IPython.display import display\ndisplay({'text/plain': 'y' * 10**6}, raw=True)",
        "print('after')",
        options=options,
    )

    assert time.monotonic() - started < 30
    assert result.status == "ok", result.reason
    kept = [text for cell in result.cells for out in cell.outputs for text in out.data.values()]
    assert sum(map(len, kept)) < MIB + 100
    assert kept[0] == "small\n"
    assert kept[1] == "x" * (MIB - len("small\n"))
    assert kept[2] == TRUNCATED_1MB  # once, after the cell that reached the cap
    assert result.cells[1].outputs[-1].data == {"stderr": TRUNCATED_1MB}
    assert result.cells[2].outputs[0].data == {}  # a rich output past the cap loses its data
    assert result.cells[3].outputs[0].data == {"stdout": ""}
    assert _printed(result).count("[nbguard: output truncated") == 1


def test_output_under_the_cap_is_kept_whole(run: Runner) -> None:
    result = run("print('x' * 10**5)", options=ExecOptions(cell_timeout=20, max_output=MIB))

    assert result.status == "ok"
    assert result.cells[0].outputs[0].data == {"stdout": "x" * 10**5 + "\n"}
    assert "truncated" not in _printed(result)


def test_offline_kernels_have_no_network_but_still_run(tmp_path: Path) -> None:
    """--offline: a notebook that talks to the network fails as such; the rest runs."""
    import contextlib
    import socket
    import threading

    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from nbguard.execute import ExecOptions, execute_notebook
    from nbguard.model import Notebook

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve_once() -> None:
        with contextlib.suppress(OSError):
            connection, _ = server.accept()
            connection.close()

    threading.Thread(target=serve_once, daemon=True).start()
    course = tmp_path / "course"
    course.mkdir()
    source = (
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)\nprint('on')"
    )
    nbformat.write(new_notebook(cells=[new_code_cell("print(1 + 1)"), new_code_cell(source)]),
                   course / "net.ipynb")  # fmt: skip
    notebook = Notebook("net.ipynb", "0" * 64, kernel_name="python3", language="python")

    def run(offline: bool) -> Any:
        options = ExecOptions(cell_timeout=30, offline=offline)
        return execute_notebook(
            notebook, course, "locked", PYTHON, options, tmp_path / str(offline)
        )

    try:
        online, offline = run(False), run(True)
    finally:
        server.close()
    assert online.status == "ok"
    assert offline.status == "error"
    assert offline.error is not None and offline.error.cell == 1
    assert offline.cells[0].outputs[0].data == {"stdout": "2\n"}
