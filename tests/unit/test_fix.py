"""Fast tier: verified fixes — each source of candidates (the library's words, ruff, the
migration table, course modules), the surgical notebook edit, the patch `git apply` takes,
and the whole loop through the pipeline and the CLI on a fake backend."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbguard import cli, compare, pipeline
from nbguard.execute import ExecOptions
from nbguard.fix import ipynb, patch, rules
from nbguard.fix.candidates import Code, candidates, ruff_binary
from nbguard.fix.verify import fix_notebook
from nbguard.model import (
    CellError,
    EnvInfo,
    FileFix,
    Notebook,
    NotebookReport,
    NotebookRun,
    WarningRecord,
)
from tests.support.courses import snapshot
from tests.support.fakes import FakeBackend, printed

OLD = EnvInfo(
    "locked",
    "3.9.18",
    {
        "numpy": "1.21.2",
        "pandas": "1.3.2",
        "matplotlib": "3.4.3",
        "scipy": "1.7.1",
        "scikit-learn": "0.24.2",
    },
    "a",
)
NEW = EnvInfo(
    "upcoming",
    "3.12.1",
    {
        "numpy": "2.1.0",
        "pandas": "2.2.0",
        "matplotlib": "3.9.0",
        "scipy": "1.14.0",
        "scikit-learn": "1.5.0",
    },
    "b",
)


def error(cell: int, ename: str, evalue: str) -> CellError:
    return CellError(cell, ename, evalue)


def fixed(code: dict[int, str], failure: CellError, messages: tuple[str, ...] = ()) -> list[Any]:
    found = candidates(Code(code), failure, messages, OLD, NEW)
    return [(c.source, c.code.cells) for c in found]


# --- the library's own words -----------------------------------------------------------------


def test_the_librarys_advice_renames_what_the_error_names() -> None:
    # The demo's wobble: 2.0 removed old_mean, 1.0 warned "use wobble.mean instead".
    code = {1: "import wobble as wb", 3: "m = wb.old_mean(xs)\nprint(m)"}
    failure = error(3, "AttributeError", "module 'wobble' has no attribute 'old_mean'")
    warned = ("old_mean is deprecated; use wobble.mean instead", "unrelated: use x instead")
    [(source, cells)] = fixed(code, failure, warned)
    assert source == "library"
    assert cells == {1: "import wobble as wb", 3: "m = wb.mean(xs)\nprint(m)"}


def test_the_errors_own_advice_replaces_an_alias_by_a_builtin() -> None:
    code = {0: "import numpy as np", 1: "a = np.arange(3, dtype=np.int)"}
    failure = error(
        1,
        "AttributeError",
        "module 'numpy' has no attribute 'int'.\n`np.int` was "
        "a deprecated alias for the builtin `int`. To avoid this error in existing "
        "code, use `int` by itself.",
    )
    found = fixed(code, failure)
    assert found[0] == ("library", {0: "import numpy as np", 1: "a = np.arange(3, dtype=int)"})


def test_advice_with_a_placeholder_is_no_rename() -> None:
    code = {0: "import wobble", 1: "wobble.asscalar(x)"}
    failure = error(1, "AttributeError", "module 'wobble' has no attribute 'asscalar'")
    assert fixed(code, failure, ("asscalar(a) is deprecated, use a.item() instead",)) == []


# --- ruff's numpy-2 autofix ------------------------------------------------------------------


@pytest.mark.skipif(ruff_binary() is None, reason="ruff is a dependency of nbguard")
def test_ruff_rewrites_numpy_2_removals_in_cells() -> None:
    code = {1: "import numpy as np", 2: "%matplotlib inline\nz = np.product([1, 2])"}
    failure = error(2, "AttributeError", "module 'numpy' has no attribute 'product'")
    found = fixed(code, failure)
    assert found[0] == (
        "ruff",
        {1: "import numpy as np", 2: "%matplotlib inline\nz = np.prod([1, 2])"},
    )


# --- the migration table ---------------------------------------------------------------------

TABLE = [
    ("import pandas as pd\nfor k, v in s.iteritems():\n    pass",
     "'Series' object has no attribute 'iteritems'",
     "import pandas as pd\nfor k, v in s.items():\n    pass"),
    ("import pandas as pd\nprint(runs.mad().round(4))",
     "'DataFrame' object has no attribute 'mad'",
     "import pandas as pd\nprint((runs - runs.mean()).abs().mean().round(4))"),
    ("import pandas as pd\ndf = df.append(row, ignore_index=True)",
     "'DataFrame' object has no attribute 'append'",
     "import pandas as pd\ndf = pd.concat([df, row], ignore_index=True)"),
    ("import matplotlib\ncmap = matplotlib.cm.get_cmap('inferno')",
     "module 'matplotlib.cm' has no attribute 'get_cmap'",
     "import matplotlib\ncmap = matplotlib.colormaps['inferno']"),
    ("import matplotlib.pyplot as plt\nc = plt.cm.get_cmap('viridis', 8)",
     "module 'matplotlib.cm' has no attribute 'get_cmap'",
     "import matplotlib\nimport matplotlib.pyplot as plt\n"
     "c = matplotlib.colormaps['viridis'].resampled(8)"),
    ("import matplotlib.pyplot as plt\nplt.style.use('seaborn-whitegrid')",
     "OSError: 'seaborn-whitegrid' is not a valid package style, path of style file",
     "import matplotlib.pyplot as plt\nplt.style.use('seaborn-v0_8-whitegrid')"),
    ("from scipy.integrate import cumtrapz, simps\nw = cumtrapz(f, x)",
     "cannot import name 'cumtrapz' from 'scipy.integrate'",
     "from scipy.integrate import cumulative_trapezoid, simps\nw = cumulative_trapezoid(f, x)"),
    ("from sklearn.metrics import plot_confusion_matrix\nd = plot_confusion_matrix(clf, X, y)",
     "cannot import name 'plot_confusion_matrix' from 'sklearn.metrics'",
     "from sklearn.metrics import ConfusionMatrixDisplay\n"
     "d = ConfusionMatrixDisplay.from_estimator(clf, X, y)"),
    ("import numpy as np\nv = np.asscalar(np.mean(a))",
     "module 'numpy' has no attribute 'asscalar'",
     "import numpy as np\nv = np.mean(a).item()"),
    ("import imp, os\nprint(imp.get_suffixes()[0][0])",
     "No module named 'imp'",
     "import importlib.machinery, os\nprint(([(s, 'rb', 3) for s in importlib.machinery."
     "EXTENSION_SUFFIXES] + [(s, 'r', 1) for s in importlib.machinery.SOURCE_SUFFIXES] + "
     "[(s, 'rb', 2) for s in importlib.machinery.BYTECODE_SUFFIXES])[0][0])"),
    ("from collections import Mapping\nisinstance(x, Mapping)",
     "cannot import name 'Mapping' from 'collections'",
     "from collections.abc import Mapping\nisinstance(x, Mapping)"),
]  # fmt: skip


@pytest.mark.parametrize(("before", "message", "after"), TABLE)
def test_the_table_rewrites_a_removed_api(before: str, message: str, after: str) -> None:
    found = fixed({0: before}, error(0, "Error", message))
    assert ("rule", {0: after}) in found


def test_a_rule_applies_only_when_the_upgrade_crosses_its_release() -> None:
    failure = error(0, "AttributeError", "'Series' object has no attribute 'iteritems'")
    code = Code({0: "s.iteritems()"})
    older = EnvInfo("upcoming", "3.12.1", {"pandas": "1.5.3"}, "c")
    assert candidates(code, failure, (), OLD, older) == []
    already = EnvInfo("locked", "3.9.18", {"pandas": "2.0.0"}, "d")
    assert candidates(code, failure, (), already, NEW) == []
    assert [c.source for c in candidates(code, failure, (), OLD, NEW)] == ["rule"]


def test_every_rule_names_its_release_and_a_known_package() -> None:
    for rule in rules.RULES:
        assert rules.release(rule.removed_in) > (0,), rule
        assert rule.package in {"numpy", "pandas", "matplotlib", "scipy", "scikit-learn", "python"}


def test_append_is_rewritten_only_in_the_failing_cell() -> None:
    code = {0: "import pandas as pd\nrows = []\nrows.append(1)", 1: "df = df.append(other)"}
    failure = error(1, "AttributeError", "'DataFrame' object has no attribute 'append'")
    [(_, cells)] = fixed(code, failure)
    assert cells[0] == code[0]
    assert cells[1] == "df = pd.concat([df, other])"


# --- the notebook's JSON, edited in place ----------------------------------------------------


def notebook_text(*sources: str, indent: int = 1) -> str:
    nb = new_notebook(cells=[new_markdown_cell("# T"), *(new_code_cell(s) for s in sources)])
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n")]
    text = nbformat.writes(nb)
    return text if indent == 1 else json.dumps(json.loads(text), indent=indent) + "\n"


@pytest.mark.parametrize("indent", [1, 2])
def test_only_the_changed_source_lines_change_in_the_file(indent: int) -> None:
    text = notebook_text(
        "import wobble\nx = wobble.old_mean([1])\nprint(x)", "y = 1", indent=indent
    )
    new = ipynb.replace_sources(text, {1: "import wobble\nx = wobble.mean([1])\nprint(x)"})
    removed = [line for line in text.splitlines() if line not in new.splitlines()]
    added = [line for line in new.splitlines() if line not in text.splitlines()]
    assert [line.strip() for line in removed] == ['"x = wobble.old_mean([1])\\n",']
    assert [line.strip() for line in added] == ['"x = wobble.mean([1])\\n",']
    assert json.loads(new)["cells"][1]["outputs"] == json.loads(text)["cells"][1]["outputs"]


def test_a_source_written_as_one_string_stays_one_string() -> None:
    nb = json.loads(notebook_text("a = 1\nb = 2"))
    nb["cells"][1]["source"] = "a = 1\nb = 2"
    text = json.dumps(nb, indent=1, ensure_ascii=False)  # no final newline either
    new = ipynb.replace_sources(text, {1: "a = 1\nb = 3"})
    assert new == text.replace('"a = 1\\nb = 2"', '"a = 1\\nb = 3"')


def test_a_cell_that_is_not_there_is_an_error() -> None:
    with pytest.raises(ipynb.NotebookTextError):
        ipynb.replace_sources(notebook_text("a = 1"), {7: "b"})


# --- the patch and --write -------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("git") is None, reason="git applies the patch")
def test_git_apply_takes_the_patch(tmp_path: Path) -> None:
    text = notebook_text("x = wobble.old_mean([1])", "y = 1")
    (tmp_path / "nb.ipynb").write_text(text)
    (tmp_path / "lib.py").write_text("def f():\n    return np.asscalar(a)")  # no final newline
    files = [
        FileFix("nb.ipynb", text, ipynb.replace_sources(text, {1: "x = wobble.mean([1])"})),
        FileFix("lib.py", "def f():\n    return np.asscalar(a)", "def f():\n    return a.item()"),
    ]
    (tmp_path / "fix.patch").write_text(patch.git_patch(files))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "apply", "fix.patch"], cwd=tmp_path, check=True)
    assert (tmp_path / "nb.ipynb").read_text() == files[0].after
    assert (tmp_path / "lib.py").read_text() == files[1].after


def test_patch_paths_start_at_the_top_of_the_git_work_tree(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "courses" / "phys").mkdir(parents=True)
    assert patch.repository_prefix(tmp_path / "courses" / "phys") == "courses/phys/"
    assert patch.repository_prefix(tmp_path) == ""
    text = patch.git_patch([FileFix("a.py", "x\n", "y\n")], "courses/phys/")
    assert text.splitlines()[:3] == [
        "diff --git a/courses/phys/a.py b/courses/phys/a.py",
        "--- a/courses/phys/a.py",
        "+++ b/courses/phys/a.py",
    ]


def test_write_leaves_a_file_that_changed_since_it_was_read(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("old")
    (tmp_path / "b.py").write_text("edited by the author meanwhile")
    said = patch.apply_fixes(tmp_path, [FileFix("a.py", "old", "new"), FileFix("b.py", "x", "y")])
    assert (tmp_path / "a.py").read_text() == "new"
    assert (tmp_path / "b.py").read_text() == "edited by the author meanwhile"
    assert said == ["wrote a.py", "not written: b.py changed since nbguard read it"]


# --- verification: only what ran is offered --------------------------------------------------

NB_PATH = "hw.ipynb"
WOBBLE_OLD = EnvInfo("locked", "3.11.7", {"wobble": "1.0"}, "a")
WOBBLE_NEW = EnvInfo("upcoming", "3.11.7", {"wobble": "2.0"}, "b")


def failed_run(env: str, evalue: str, cell: int = 1) -> NotebookRun:
    return NotebookRun(NB_PATH, env, "error", 0.1, error=CellError(cell, "AttributeError", evalue))


def read_only(text: str) -> Any:
    return lambda path: text if path == NB_PATH else None


def test_the_verified_fix_runs_in_both_envs_and_says_so() -> None:
    text = notebook_text("import wobble\nprint(wobble.old_mean([2]))")
    warned = WarningRecord(
        1, "DeprecationWarning", "old_mean is deprecated; use wobble.mean instead", "wobble"
    )
    locked = NotebookRun(
        NB_PATH,
        "locked",
        "ok",
        0.1,
        cells=printed(NB_PATH, "locked", "2.0").cells,
        warnings=(warned,),
    )
    upcoming = failed_run("upcoming", "module 'wobble' has no attribute 'old_mean'")
    nb = NotebookReport(NB_PATH, "broken", {"locked": locked, "upcoming": upcoming})
    ran: list[str] = []

    def trial(code: Code, env: EnvInfo) -> NotebookRun:
        ran.append(env.name)
        assert code.cells[1] == "import wobble\nprint(wobble.mean([2]))"
        return printed(NB_PATH, env.name, "2.0")

    outcome = fix_notebook(
        nb,
        "upcoming",
        WOBBLE_OLD,
        WOBBLE_NEW,
        trial,
        read_only(text),
        compare.CompareOptions(),
        "locked",
    )
    assert outcome.fix is not None
    assert ran == ["upcoming", "locked"]
    assert (outcome.fix.runs_in, outcome.fix.after) == (("upcoming", "locked"), "ok")
    assert outcome.fix.sources == ("library",)
    assert "-print(wobble.old_mean([2]))\n+print(wobble.mean([2]))" in outcome.fix.diff
    [file] = outcome.fix.files
    assert file.before == text
    assert json.loads(file.after)["cells"][1]["source"][1] == "print(wobble.mean([2]))"


def test_a_fix_the_baseline_cannot_run_is_for_the_upcoming_env_only() -> None:
    text = notebook_text("import wobble\nprint(wobble.old_mean([2]))")
    evalue = "module 'wobble' has no attribute 'old_mean'. Use wobble.mean instead."
    locked = printed(NB_PATH, "locked", "2.0")
    nb = NotebookReport(
        NB_PATH, "broken", {"locked": locked, "upcoming": failed_run("upcoming", evalue)}
    )

    def trial(code: Code, env: EnvInfo) -> NotebookRun:
        return (
            printed(NB_PATH, env.name, "2.0")
            if env.name == "upcoming"
            else failed_run(env.name, "no mean")
        )

    outcome = fix_notebook(
        nb,
        "upcoming",
        WOBBLE_OLD,
        WOBBLE_NEW,
        trial,
        read_only(text),
        compare.CompareOptions(),
        "locked",
    )
    assert outcome.fix is not None and outcome.fix.runs_in == ("upcoming",)
    assert outcome.fix.after == "fixed"  # what `nbguard run` says once it is applied


def test_a_candidate_that_does_not_run_stays_a_hint() -> None:
    text = notebook_text("import pandas as pd\nprint(s.iteritems())")
    evalue = "'Series' object has no attribute 'iteritems'"
    nb = NotebookReport(
        NB_PATH,
        "broken",
        {"locked": printed(NB_PATH, "locked", "x"), "upcoming": failed_run("upcoming", evalue)},
    )

    def trial(code: Code, env: EnvInfo) -> NotebookRun:
        return failed_run(env.name, evalue)

    outcome = fix_notebook(
        nb, "upcoming", OLD, NEW, trial, read_only(text), compare.CompareOptions(), "locked"
    )
    assert outcome.fix is None
    [hint] = outcome.hints
    assert hint.hint.startswith("tried, did not run: Series/DataFrame.iteritems → .items")
    assert "cell 1: AttributeError" in hint.source


def test_a_fix_that_reaches_a_later_break_says_what_still_fails() -> None:
    text = notebook_text("import wobble\nprint(wobble.old_mean([2]))", "wobble.gone()")
    evalue = "module 'wobble' has no attribute 'old_mean'. Use wobble.mean instead."
    nb = NotebookReport(
        NB_PATH,
        "broken",
        {"locked": printed(NB_PATH, "locked", "x"), "upcoming": failed_run("upcoming", evalue)},
    )

    def trial(code: Code, env: EnvInfo) -> NotebookRun:
        if env.name == "locked":
            return printed(NB_PATH, env.name, "x")
        return failed_run(env.name, "module 'wobble' has no attribute 'gone'", cell=2)

    outcome = fix_notebook(
        nb,
        "upcoming",
        WOBBLE_OLD,
        WOBBLE_NEW,
        trial,
        read_only(text),
        compare.CompareOptions(),
        "locked",
    )
    assert outcome.fix is not None
    assert (
        outcome.fix.remaining == "cell 2: AttributeError: module 'wobble' has no attribute 'gone'"
    )
    assert outcome.fix.after == "broken"


def test_a_course_module_in_the_failing_frame_is_fixed_too() -> None:
    text = notebook_text("from physlib import mean_energy\nprint(mean_energy([1.0]))")
    module = "import numpy as np\n\ndef mean_energy(v):\n    return np.asscalar(np.mean(v))\n"
    trace = ("File /tmp/w/course/physlib/__init__.py:4, in mean_energy(v)",)
    run = NotebookRun(
        NB_PATH,
        "upcoming",
        "error",
        0.1,
        volatile_paths=(("/tmp/w/course", "<course>"),),
        error=CellError(1, "AttributeError", "module 'numpy' has no attribute 'asscalar'", trace),
    )
    nb = NotebookReport(
        NB_PATH, "broken", {"locked": printed(NB_PATH, "locked", "1.0"), "upcoming": run}
    )
    files = {NB_PATH: text, "physlib/__init__.py": module}

    def trial(code: Code, env: EnvInfo) -> NotebookRun:
        assert code.files == {
            "physlib/__init__.py": module.replace("np.asscalar(np.mean(v))", "np.mean(v).item()")
        }
        return printed(NB_PATH, env.name, "1.0")

    outcome = fix_notebook(
        nb, "upcoming", OLD, NEW, trial, files.get, compare.CompareOptions(), "locked"
    )
    assert outcome.fix is not None
    assert [file.path for file in outcome.fix.files] == ["physlib/__init__.py"]
    assert "+    return np.mean(v).item()" in outcome.fix.diff


# --- the pipeline and the CLI ------------------------------------------------------------------


class SourceBackend(FakeBackend):
    """Runs a notebook by reading its source in the course it is given: `old_mean` fails in
    the upcoming env, as wobble 2.0 would, with wobble's advice."""

    def execute(
        self, notebook: Notebook, course: Path, env: EnvInfo, options: ExecOptions, workdir: Path
    ) -> NotebookRun:
        source = (course / notebook.path).read_text()
        with self._lock:
            self.executed.append((notebook.path, env.name))
        if env.name == "upcoming" and "old_mean" in source:
            return failed_run(
                env.name, "module 'wobble' has no attribute 'old_mean'. Use wobble.mean instead."
            )
        return printed(notebook.path, env.name, "2.0")


@pytest.fixture
def wobble_course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    course.mkdir()
    (course / "requirements.txt").write_text("wobble==1.0\n")
    (course / "requirements.in").write_text("wobble\n")
    # What a notebook holds is untrusted: its source reaches every report through the diff.
    source = "import wobble  # <script>alert(1)</script> \x1b[2J\nprint(wobble.old_mean([2]))"
    cells = [new_markdown_cell("# hw"), new_code_cell(source)]
    nbformat.write(new_notebook(cells=cells), course / NB_PATH)
    nbformat.write(new_notebook(cells=[new_code_cell("print(2.0)")]), course / "ok.ipynb")
    return course


def fix_cli(
    course: Path, monkeypatch: pytest.MonkeyPatch, *flags: str
) -> tuple[int, dict[str, Any]]:
    backend = SourceBackend({"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}})
    monkeypatch.setattr(pipeline, "Machine", lambda options: backend)
    report = course.parent / "report.json"
    code = cli.main(
        [
            "fix",
            "--course",
            str(course),
            "--cache-dir",
            str(course.parent / "cache"),
            "--report",
            str(report),
            "--patch",
            str(course.parent / "fixes.patch"),
            *flags,
        ]
    )
    return code, json.loads(report.read_text())


def test_nbguard_fix_writes_a_patch_and_leaves_the_course_alone(
    wobble_course: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(wobble_course)
    code, data = fix_cli(wobble_course, monkeypatch)
    assert code == 1  # still broken until the fix is applied
    assert snapshot(wobble_course) == before
    [nb] = [nb for nb in data["notebooks"] if nb["path"] == NB_PATH]
    assert nb["fix"]["runs_in"] == ["upcoming", "locked"]
    assert nb["fix"]["after"] == "ok"
    assert data["fixes"]["notebooks"] == 1 and data["fixes"]["written"] == []
    text = (wobble_course.parent / "fixes.patch").read_text()
    assert (wobble_course.parent / "fixes.patch").stat().st_mode & 0o044  # not private
    assert text.startswith(f"diff --git a/{NB_PATH} b/{NB_PATH}\n")
    assert '-    "print(wobble.old_mean([2]))"' in text and '+    "print(wobble.mean([2]))"' in text
    shown = capsys.readouterr().out
    assert "✓ fix hw.ipynb: runs in upcoming and locked (then ok)" in shown
    assert "fixes: 1 of 1 broken notebooks have a verified fix" in shown


def test_nbguard_fix_write_changes_only_the_source(
    wobble_course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = (wobble_course / NB_PATH).read_text()
    others = {k: v for k, v in snapshot(wobble_course).items() if k != NB_PATH}
    _, data = fix_cli(wobble_course, monkeypatch, "--write")
    assert data["fixes"]["written"] == [f"wrote {NB_PATH}"]
    assert (wobble_course / NB_PATH).read_text() == original.replace("old_mean", "mean")
    assert {k: v for k, v in snapshot(wobble_course).items() if k != NB_PATH} == others
    code, data = fix_cli(wobble_course, monkeypatch)
    assert code == 0 and data["summary"]["broken"] == 0


def test_every_report_shows_the_fix_with_the_notebooks_text_made_inert(
    wobble_course: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    html_file, md_file = wobble_course.parent / "r.html", wobble_course.parent / "r.md"
    fix_cli(wobble_course, monkeypatch, "--html", str(html_file), "--markdown", str(md_file))
    page, markdown = html_file.read_text(), md_file.read_text()
    assert "Verified fix" in page and "<script>alert" not in page
    assert '<span class="add">+print(wobble.mean([2]))</span>' in page
    assert "**verified fix**, runs in upcoming and locked (then ok):" in markdown
    assert "```diff\n--- hw.ipynb (cell 1)\n+++ hw.ipynb (cell 1)" in markdown
    assert "\x1b" not in markdown and "\x1b" not in capsys.readouterr().out


def test_write_without_fix_is_a_usage_error(
    wobble_course: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(wobble_course)
    monkeypatch.setattr(pipeline, "Machine", lambda options: SourceBackend({}))
    assert cli.main(["run", str(wobble_course), "--write"]) == 2
    assert "--write applies verified fixes" in capsys.readouterr().err
    assert snapshot(wobble_course) == before


def test_run_fix_proposes_the_same_fix(
    wobble_course: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    backend = SourceBackend({"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}})
    monkeypatch.setattr(pipeline, "Machine", lambda options: backend)
    report, patch_file = tmp_path / "run.json", tmp_path / "run.patch"
    args = ["run", str(wobble_course), "--fix", "--report", str(report), "--patch", str(patch_file)]
    assert cli.main([*args, "--cache-dir", str(tmp_path / "cache")]) == 1
    data = json.loads(report.read_text())
    assert data["fixes"] == {"notebooks": 1, "broken": 1, "patch": str(patch_file), "written": []}
    assert patch_file.read_text().startswith(f"diff --git a/{NB_PATH} b/{NB_PATH}\n")
