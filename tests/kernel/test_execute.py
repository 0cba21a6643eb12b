"""Kernel tier: execute tiny notebooks in real kernels of this interpreter and check the runs."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import venv
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbguard.execute import CAPTURE_MIME, ExecOptions, execute_notebook, kill_all_kernels
from nbguard.model import Notebook, NotebookRun, Tolerance

PYTHON = Path(sys.executable)

MYLIB = """\
import warnings


class MyDeprecation(DeprecationWarning):
    pass


def old():
    warnings.warn("old() is deprecated", DeprecationWarning, stacklevel=2)
    return 1


def future():
    warnings.warn("future() will change", FutureWarning, stacklevel=2)


def custom():
    warnings.warn("custom() is going away", MyDeprecation, stacklevel=2)
"""

Cell = str | tuple[str, list[str]]  # source, or (source, tags)
Runner = Callable[..., NotebookRun]


def _process_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.fixture
def course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    root.mkdir()
    (root / "mylib.py").write_text(MYLIB)
    return root


@pytest.fixture
def run(course: Path, tmp_path: Path) -> Runner:
    """Write a notebook of the given cells into the course and execute it.

    A cell is its source, (source, tags), or markdown when the text starts with "# ".
    """

    def runner(
        *cells: Cell,
        path: str = "nb.ipynb",
        python: Path = PYTHON,
        options: ExecOptions | None = None,
    ) -> NotebookRun:
        nb = new_notebook()
        for cell in cells:
            if isinstance(cell, tuple):
                source, tags = cell
                nb.cells.append(new_code_cell(source, metadata={"tags": tags}))
            elif cell.startswith("# "):
                nb.cells.append(new_markdown_cell(cell))
            else:
                nb.cells.append(new_code_cell(cell))
        target = course / path
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        notebook = Notebook(path=path, sha256="0" * 64, kernel_name="python3", language="python")
        return execute_notebook(
            notebook,
            course,
            "upcoming",
            python,
            # The course root on the path, as the pipeline's default course-code "path" does.
            options or ExecOptions(cell_timeout=20, python_path=(course,)),
            tmp_path / "work",
        )

    return runner


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_ok_notebook_reports_every_output_with_real_cell_indexes(run: Runner) -> None:
    result = run(
        "# A title",
        "print('hello')\n21 * 2",
        "from IPython.display import HTML, display\ndisplay(HTML('<b>hi</b>'))",
        "import sys\nprint('oops', file=sys.stderr)",
    )

    assert result.status == "ok"
    assert result.error is None
    assert [cell.index for cell in result.cells] == [1, 2, 3]  # markdown 0 counts, not listed
    assert all(cell.status == "ok" for cell in result.cells)
    hello, html, stderr = (cell.outputs for cell in result.cells)
    assert [(o.kind, dict(o.data)) for o in hello] == [
        ("stream", {"stdout": "hello\n"}),
        ("execute_result", {"text/plain": "42"}),
    ]
    assert html[0].kind == "display_data"
    assert html[0].data["text/html"] == "<b>hi</b>"
    assert [(o.kind, dict(o.data)) for o in stderr] == [("stream", {"stderr": "oops\n"})]
    placeholders = [placeholder for _path, placeholder in result.volatile_paths]
    assert {"<course>", "<env>", "<workdir>"} <= set(placeholders)
    lengths = [len(path) for path, _placeholder in result.volatile_paths]
    assert lengths == sorted(lengths, reverse=True)


def test_capture_code_leaves_the_user_namespace_alone(run: Runner) -> None:
    result = run("print(sorted(globals()), dict(Out))")

    names = result.cells[0].outputs[0].data["stdout"]
    for leaked in ("run_path", "MIME", "CATEGORIES", "_Capture", "_install"):
        assert leaked not in names
    assert names.rstrip().endswith("{}")  # nothing displayed at startup


def test_failing_cell_stops_the_notebook(run: Runner) -> None:
    result = run("x = 1", "# prose", "raise ValueError('bad value')", "print('after')", "x")

    assert result.status == "error"
    assert result.error is not None
    assert (result.error.cell, result.error.ename, result.error.evalue) == (
        2,
        "ValueError",
        "bad value",
    )
    assert any("ValueError" in line for line in result.error.traceback)
    assert not any("\x1b[" in line for line in result.error.traceback)
    assert [(cell.index, cell.status) for cell in result.cells] == [
        (0, "ok"),
        (2, "error"),
        (3, "not-run"),
        (4, "not-run"),
    ]
    assert result.cells[1].outputs[0].data == {"ename": "ValueError", "evalue": "bad value"}
    assert result.later_errors == ()


def _keep_going(course: Path) -> ExecOptions:
    return ExecOptions(cell_timeout=20, python_path=(course,), keep_going=True)


def test_keep_going_reports_later_independent_errors_but_not_the_cascade(
    run: Runner, course: Path
) -> None:
    result = run(
        "# Removed APIs",
        "import mylib\nvalues = [1.0, 2.0, 3.0]",
        "x = mylib.old_mean(values)",  # removed: AttributeError, and x is never defined
        "y = x * 2\nprint(y)",  # NameError: only because cell 2 failed
        "import statistics\nstatistics.mean([])",  # a break of its own
        "print('still running')",
        options=_keep_going(course),
    )

    assert result.status == "error"
    assert result.error is not None
    assert (result.error.cell, result.error.ename) == (2, "AttributeError")
    assert [(e.cell, e.ename) for e in result.later_errors] == [(4, "StatisticsError")]
    assert "at least one data point" in result.later_errors[0].evalue
    assert [(cell.index, cell.status) for cell in result.cells] == [
        (1, "ok"),
        (2, "error"),
        (3, "error"),
        (4, "error"),
        (5, "ok"),
    ]
    cells = {cell.index: cell for cell in result.cells}
    assert cells[3].outputs[0].data == {
        "ename": "NameError",
        "evalue": "name 'x' is not defined",
    }
    assert cells[5].outputs[0].data == {"stdout": "still running\n"}


def test_without_keep_going_the_same_notebook_stops_at_the_first_error(run: Runner) -> None:
    result = run(
        "import mylib\nvalues = [1.0, 2.0, 3.0]",
        "x = mylib.old_mean(values)",
        "import statistics\nstatistics.mean([])",
        "print('still running')",
    )

    assert result.error is not None and result.error.cell == 1
    assert result.later_errors == ()
    assert [cell.status for cell in result.cells] == ["ok", "error", "not-run", "not-run"]


def test_keep_going_knows_every_way_a_failed_cell_would_have_bound_a_name(
    run: Runner, course: Path
) -> None:
    failing = (
        "%env NBGUARD_MAGIC=1\n"
        "ready = True\n"  # bound before the failing line: it exists
        "raise RuntimeError('this cell fails')\n"
        "a, (b, *c) = 1, (2, 3)\n"
        "total += 1\n"
        "count: int = 0\n"
        "for i in range(2):\n"
        "    pass\n"
        "with open('f.txt', 'w') as fh:\n"
        "    pass\n"
        "import os.path\n"
        "from math import tau as turn\n"
        "def helper():\n"
        "    global hidden\n"
        "    hidden = 1\n"
        "class Model:\n"
        "    pass\n"
        "listing = !ls\n"
        "if (w := 5):\n"
        "    pass\n"
    )
    uses = [f"print({name})" for name in (
        "a", "b", "c", "total", "count", "i", "fh", "os", "turn", "helper", "Model", "hidden",
        "listing", "w",
    )]  # fmt: skip
    result = run(
        "import mylib\nmodel = None",
        failing,
        *uses,
        "print(ready)",
        "derived = a + 1",  # cascades, so derived is never defined either
        "print(derived)",
        "model = mylib.train()",  # AttributeError: model keeps its placeholder None
        "model.predict([1])",  # AttributeError on None: the cascade again
        "print(typo)",  # defined by no cell: a break of its own
        "a = 10",
        "a.no_such_method()",  # a has a real value again: this break is its own
        options=_keep_going(course),
    )

    assert result.error is not None and result.error.cell == 1
    statuses = {cell.index: cell.status for cell in result.cells}
    assert [statuses[index] for index in range(2, 2 + len(uses))] == ["error"] * len(uses)
    ready = 2 + len(uses)
    assert statuses[ready] == "ok"
    assert [(e.cell, e.ename) for e in result.later_errors] == [
        (ready + 3, "AttributeError"),  # model = mylib.train(): mylib has no train
        (ready + 5, "NameError"),
        (ready + 7, "AttributeError"),
    ]


@pytest.mark.parametrize(
    ("cell", "ename", "reason"),
    [
        (
            "import os\nos._exit(3)",
            "DeadKernelError",
            "the kernel died while cell 1 was running (exit code 3)",
        ),
        (
            "import time\ntime.sleep(30)",
            "CellTimeoutError",
            "cell 1 did not finish within the per-cell limit",
        ),
    ],
)
def test_keep_going_stops_when_the_kernel_is_gone(
    run: Runner, course: Path, cell: str, ename: str, reason: str
) -> None:
    options = ExecOptions(cell_timeout=1, python_path=(course,), keep_going=True)

    result = run("1 / 0", cell, "print('never')", options=options)

    assert result.status == "error"  # the first failure decides
    assert result.error is not None and result.error.ename == "ZeroDivisionError"
    assert [(e.cell, e.ename) for e in result.later_errors] == [(1, ename)]
    assert result.later_errors[0].evalue.startswith(reason)
    assert [c.status for c in result.cells] == ["error", "error", "not-run"]


def test_raises_exception_tag_lets_the_run_go_on(run: Runner) -> None:
    result = run(("1 / 0", ["raises-exception"]), "print('still here')")

    assert result.status == "ok"
    assert result.error is None
    failing, after = result.cells
    assert failing.status == "error" and failing.allowed_error
    assert after.outputs[0].data == {"stdout": "still here\n"}


def test_skip_tags_skip_cells(run: Runner) -> None:
    result = run(
        ("raise SystemExit('never')", ["skip-execution"]),
        ("raise SystemExit('never')", ["nbguard-skip"]),
        "print('ran')",
    )

    assert result.status == "ok"
    assert [cell.status for cell in result.cells] == ["skipped", "skipped", "ok"]
    assert result.cells[0].outputs == ()


def test_nbval_tags_and_comment_markers_are_honoured(run: Runner) -> None:
    """A course migrating from nbval keeps its annotations (a leading space keeps the
    runner from reading "# ..." as a markdown cell)."""
    result = run(
        ("raise SystemExit('never')", ["nbval-skip"]),
        " # NBVAL_SKIP\nraise SystemExit('never')",
        ("1 / 0", ["nbval-raises-exception"]),
        " # NBVAL_RAISES_EXCEPTION\n1 / 0",
        ("import random\nprint(random.random())", ["nbval-ignore-output"]),
        " # NBVAL_IGNORE_OUTPUT\nprint('anything')",
        ("print('mine')", ["nbguard-ignore-output"]),
        "print('compared')",
    )

    assert result.status == "ok", result.error
    statuses = [cell.status for cell in result.cells]
    assert statuses == ["skipped", "skipped", "error", "error", "ok", "ok", "ok", "ok"]
    assert [cell.allowed_error for cell in result.cells][2:4] == [True, True]
    assert [cell.ignore_output for cell in result.cells] == [False] * 4 + [True] * 3 + [False]


def test_cell_metadata_tolerance_reaches_the_result(run: Runner, course: Path) -> None:
    nb = new_notebook()
    nb.cells.append(new_code_cell("print(1.0)", metadata={"nbguard": {"tolerance": 1e-3}}))
    nb.cells.append(new_code_cell("print(2.0)", metadata={"nbguard": {"tolerance": {"abs": 0.5}}}))
    nb.cells.append(new_code_cell("print(3.0)", metadata={"nbguard": {"tolerance": "lots"}}))
    nbformat.write(nb, course / "tol.ipynb")
    notebook = Notebook("tol.ipynb", "0" * 64, kernel_name="python3", language="python")
    result = execute_notebook(
        notebook, course, "locked", PYTHON, ExecOptions(cell_timeout=20), course.parent / "w"
    )

    assert [cell.tolerance for cell in result.cells] == [
        Tolerance(rel=1e-3),
        Tolerance(rel=1e-6, abs=0.5),
        None,  # not a tolerance: ignored rather than stopping the run
    ]


def test_cell_timeout_stops_the_kernel_and_its_children(run: Runner, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(
        "import subprocess\nchild = subprocess.Popen(['sleep', '300'])\nprint(child.pid)",
        "import time\ntime.sleep(300)",
        "print('never')",
        options=ExecOptions(cell_timeout=1),
    )

    assert time.monotonic() - started < 15
    assert result.status == "timeout"
    assert result.error is not None
    assert (result.error.cell, result.error.ename) == (1, "CellTimeoutError")
    assert result.error.evalue == "cell 1 did not finish within 1 s"
    assert result.reason is not None and "per-cell limit" in result.reason
    assert [cell.status for cell in result.cells] == ["ok", "error", "not-run"]
    # The child the notebook started shares the kernel's process group and died with it.
    child = int(result.cells[0].outputs[0].data["stdout"])
    deadline = time.monotonic() + 5
    while _process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)  # SIGKILL is sent; the exit itself may lag a moment
    assert not _process_alive(child)
    assert not (tmp_path / "work" / "course").exists()  # the scratch copy is gone too


def test_notebook_timeout_says_the_notebook_ran_out(run: Runner) -> None:
    result = run(
        "import time\ntime.sleep(0.2)",
        "time.sleep(30)",
        "print('never')",
        options=ExecOptions(cell_timeout=30, notebook_timeout=1.5),
    )

    assert result.status == "timeout"
    assert result.error is not None and result.error.cell == 1
    assert result.reason is not None and "notebook" in result.reason and "1.5 s" in result.reason
    assert [cell.status for cell in result.cells] == ["ok", "error", "not-run"]


@pytest.mark.parametrize("death", ["os._exit(1)", "os.kill(os.getpid(), 9)"])
def test_dead_kernel_is_reported_on_its_cell(run: Runner, death: str) -> None:
    result = run("print('before')", f"import os\n{death}", "print('never')")

    assert result.status == "dead-kernel"
    assert result.error is not None and result.error.cell == 1
    assert result.reason is not None and "died while cell 1" in result.reason
    assert [cell.status for cell in result.cells] == ["ok", "error", "not-run"]


def test_deprecation_warnings_become_records_of_their_cell(run: Runner) -> None:
    result = run(
        "# setup",
        # Silenced deprecations are still reported: they break just the same later.
        "import mylib, warnings\nwarnings.filterwarnings('ignore')",
        "for _ in range(1000):\n    mylib.old()",  # recorded once, not a thousand times
        "mylib.future()\nmylib.custom()",
        "mylib.old()\nraise RuntimeError('after the warning')",
        options=ExecOptions(cell_timeout=20, keep_going=False),
    )

    records = [(w.cell, w.category, w.message, w.package) for w in result.warnings]
    assert records == [
        (2, "DeprecationWarning", "old() is deprecated", "mylib"),
        (3, "FutureWarning", "future() will change", "mylib"),
        (3, "MyDeprecation", "custom() is going away", "mylib"),
        (4, "DeprecationWarning", "old() is deprecated", "mylib"),
    ]
    # Records, not output: nothing printed, no private mime type left in the outputs.
    for cell in result.cells:
        for output in cell.outputs:
            assert CAPTURE_MIME not in output.data
            assert output.kind != "stream" or "deprecated" not in "".join(output.data.values())
    assert {cell.index: cell.outputs for cell in result.cells}[2] == ()


def test_warning_attribution_and_what_is_left_out(run: Runner) -> None:
    def warn_from(module: str, message: str) -> str:
        # Code whose globals carry a module's name is, to attribution, that module's code.
        code = f"import warnings; warnings.warn({message!r}, DeprecationWarning)"
        return f"exec({code!r}, {{'__name__': {module!r}}})"

    result = run(
        "import warnings\nwarnings.warn('mine', DeprecationWarning)",
        warn_from("ipykernel.kernelbase", "kernel noise"),
        warn_from("IPython.core.interactiveshell", "shell noise"),
        warn_from("json.decoder", "from the standard library"),
        warn_from("dateutil.parser", "from an installed distribution"),
        "warnings.warn('a user warning')",
    )

    assert result.status == "ok"
    assert [(w.cell, w.message, w.package) for w in result.warnings] == [
        (0, "mine", None),  # the notebook's own: no package
        (3, "from the standard library", "python"),
        (4, "from an installed distribution", "python-dateutil"),
    ]
    # Other warnings keep printing, as they would in Jupyter, naming the cell's code file
    # under a per-kernel directory that normalization can mask.
    stderr = result.cells[5].outputs[0].data["stderr"]
    assert "UserWarning: a user warning" in stderr
    kernel_tmp = [path for path, name in result.volatile_paths if name == "<kernel-tmp>"]
    assert len(kernel_tmp) == 1 and stderr.startswith(kernel_tmp[0] + os.sep)


def test_a_notebook_that_turns_deprecations_into_errors_still_gets_them(run: Runner) -> None:
    result = run(
        "import warnings, mylib\nwarnings.simplefilter('error', DeprecationWarning)",
        ("mylib.old()", ["raises-exception"]),
        "print('done')",
    )

    assert result.cells[1].status == "error"
    assert result.cells[1].outputs[0].data["ename"] == "DeprecationWarning"
    assert result.status == "ok"
    assert [(w.cell, w.package) for w in result.warnings] == [(1, "mylib")]


def test_course_tree_is_never_touched(run: Runner, course: Path) -> None:
    (course / "data").mkdir()
    (course / "data" / "table.csv").write_text("a,b\n1,2\n")
    (course / "lectures").mkdir()
    (course / "lectures" / "notes.txt").write_text("keep me")
    (course / ".git").mkdir()
    (course / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (course / "myenv").mkdir()
    (course / "myenv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    before = _hashes(course)

    result = run(
        "print(open('../data/table.csv').read().splitlines()[1])",
        "import os, shutil\n"
        "os.remove('notes.txt')\n"
        "shutil.rmtree('../data')\n"
        "open('new.txt', 'w').write('x')\n"
        "open('../mylib.py', 'a').write('# changed')\n"
        "print(os.path.exists('../.git'), os.path.exists('../myenv'))",
        path="lectures/nb.ipynb",
    )

    assert result.status == "ok", result.error
    assert result.cells[0].outputs[0].data == {"stdout": "1,2\n"}
    # Neither VCS data nor virtual envs are copied.
    assert result.cells[1].outputs[0].data == {"stdout": "False False\n"}
    after = _hashes(course)
    after.pop("lectures/nb.ipynb")
    before.pop("lectures/nb.ipynb", None)
    assert after == before


def test_python_path_makes_course_helpers_importable(
    run: Runner, course: Path, tmp_path: Path
) -> None:
    (course / "lib").mkdir()
    (course / "lib" / "helpers.py").write_text("ANSWER = 42\n")

    result = run(
        "import helpers, mylib\nprint(helpers.ANSWER)\nprint(helpers.__file__)",
        path="lectures/nb.ipynb",
        options=ExecOptions(python_path=(course, course / "lib")),
    )

    assert result.status == "ok", result.error
    answer, location = result.cells[0].outputs[0].data["stdout"].splitlines()
    assert answer == "42"
    # Imported from the scratch copy, not from the course itself.
    assert Path(location).resolve().is_relative_to((tmp_path / "work").resolve())


def test_without_python_path_course_modules_are_not_importable(run: Runner) -> None:
    result = run("import mylib", path="lectures/nb.ipynb", options=ExecOptions(cell_timeout=20))

    assert result.status == "error"
    assert result.error is not None and result.error.ename == "ModuleNotFoundError"


def test_kernel_env_reaches_the_kernel(run: Runner) -> None:
    result = run(
        "import os\nprint(os.environ['NBGUARD_TEST'])",
        options=ExecOptions(kernel_env={"NBGUARD_TEST": "hello"}),
    )

    assert result.cells[0].outputs[0].data == {"stdout": "hello\n"}


def test_unreadable_notebook_is_a_failed_run_not_a_crash(course: Path, tmp_path: Path) -> None:
    (course / "broken.ipynb").write_text("{ not json")
    notebook = Notebook("broken.ipynb", "0" * 64, "python3", "python")

    result = execute_notebook(notebook, course, "locked", PYTHON, ExecOptions(), tmp_path / "w")

    assert result.status == "error"
    assert result.reason is not None and result.reason.startswith("cannot read broken.ipynb")


def test_notebook_excluded_by_discovery_is_skipped_without_a_kernel(
    course: Path, tmp_path: Path
) -> None:
    notebook = Notebook("gone.ipynb", "0" * 64, "ir", "R", skip_reason="kernel ir is not Python")

    result = execute_notebook(notebook, course, "locked", PYTHON, ExecOptions(), tmp_path / "w")

    assert (result.status, result.reason) == ("skipped", "kernel ir is not Python")


def test_bad_interpreter_is_an_env_failure(run: Runner, tmp_path: Path) -> None:
    result = run("1", python=tmp_path / "no-such-env" / "bin" / "python")

    assert result.status == "env-failed"
    assert result.reason is not None
    assert "'upcoming'" in result.reason and "does not exist" in result.reason
    assert "\n" not in result.reason


def test_env_without_ipykernel_is_an_env_failure(run: Runner, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)

    result = run("1", python=bare / "bin" / "python", options=ExecOptions(startup_timeout=20))

    assert result.status == "env-failed"
    assert result.reason is not None
    assert "'upcoming'" in result.reason and "ipykernel" in result.reason
    assert "\n" not in result.reason


def test_kill_all_kernels_stops_running_notebooks(run: Runner, tmp_path: Path) -> None:
    results: list[NotebookRun] = []
    worker = threading.Thread(
        target=lambda: results.append(
            run("open('started', 'w').close()\nimport time\ntime.sleep(300)")
        )
    )
    worker.start()
    marker = tmp_path / "work" / "course" / "started"
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)

    kill_all_kernels()
    worker.join(timeout=20)

    assert not worker.is_alive()
    (result,) = results
    assert result.status == "dead-kernel"
    assert result.reason is not None and "interrupted" in result.reason


def test_notebooks_run_side_by_side_in_threads(course: Path, tmp_path: Path) -> None:
    nbformat.write(
        new_notebook(cells=[new_code_cell("import os\nprint(os.getcwd())")]), course / "a.ipynb"
    )
    notebook = Notebook("a.ipynb", "0" * 64, "python3", "python")
    results: dict[int, NotebookRun] = {}

    def work(number: int) -> None:
        results[number] = execute_notebook(
            notebook, course, f"env{number}", PYTHON, ExecOptions(), tmp_path / f"w{number}"
        )

    threads = [threading.Thread(target=work, args=(number,)) for number in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results) == [0, 1, 2]
    for number, result in results.items():
        assert result.status == "ok"
        cwd = result.cells[0].outputs[0].data["stdout"].strip()
        assert Path(cwd) == (tmp_path / f"w{number}" / "course").resolve()
