"""Fast tier: `pytest --nbguard` on a fake backend, run by pytester — one item per notebook
with nbguard's verdicts, failure texts, the report, and -k / -x / --lf picking what runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbguard import pytest_items, settings
from nbguard.envs.interpreters import Interpreter
from nbguard.model import EnvInfo
from nbguard.runner import Progress
from nbguard.settings import EnvSpec
from tests.support.fakes import FakeBackend, Script, printed, raised, write_course

pytest_plugins = ["pytester"]

NOTEBOOKS = ["a_same.ipynb", "b_changed.ipynb", "c_broken.ipynb", "sub/d_fine.ipynb"]
PACKAGES = {"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}}
SCRIPTS: dict[tuple[str, str], Script] = {
    ("b_changed.ipynb", "locked"): printed("b_changed.ipynb", "locked", "Curve(n=6)"),
    ("b_changed.ipynb", "upcoming"): printed("b_changed.ipynb", "upcoming", "<Curve n=6>"),
    ("c_broken.ipynb", "upcoming"): raised(
        "c_broken.ipynb", "upcoming", "AttributeError", "module 'wobble' has no attribute 'old'"
    ),
}


class CountingBackend(FakeBackend):
    """The fake backend, counting env builds."""

    builds: int = 0

    def build(self, spec: EnvSpec, interpreter: Interpreter, progress: Progress) -> EnvInfo:
        self.builds += 1
        return super().build(spec, interpreter, progress)


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> CountingBackend:
    fake = CountingBackend(PACKAGES, SCRIPTS)
    monkeypatch.setattr(pytest_items, "Machine", lambda options: fake)
    return fake


@pytest.fixture
def course(pytester: pytest.Pytester) -> Path:
    return write_course(pytester.path, NOTEBOOKS)


def nbguard(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    cache = str(pytester.path / "cache")
    return pytester.runpytest(
        "--nbguard", "--nbguard-cache-dir", cache, "-p", "no:cacheprovider", *args
    )


def test_each_notebook_is_an_item_with_nbguards_verdict(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    result = nbguard(pytester, "course", "-rA")

    result.assert_outcomes(passed=2, failed=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "PASSED course/a_same.ipynb::nbguard",
            "PASSED course/sub/d_fine.ipynb::nbguard",
            "FAILED course/b_changed.ipynb::nbguard*",
            "FAILED course/c_broken.ipynb::nbguard*",
        ],
        consecutive=False,
    )
    # Both envs built once for the whole session, not once per item.
    assert backend.builds == 2


def test_a_failure_reads_like_nbguards_row_with_the_culprit_and_the_diff(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    result = nbguard(pytester, "course")

    result.stdout.fnmatch_lines(
        [
            "c_broken.ipynb: broken",
            "  upcoming: cell 0: AttributeError: module 'wobble' has no attribute 'old'",
            "  culprit: wobble 1.0 → 2.0 (inferred)*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "b_changed.ipynb: changed",
            "  cell 0: repr: Curve(n=6) → <Curve n=6>",
            "*",
            "cell 0 (upcoming): repr: Curve(n=6) → <Curve n=6>",
            "--- locked",
            "+++ upcoming",
            "@@ -1 +1 @@",
            "-Curve(n=6)",
            "+<Curve n=6>",
        ]
    )


def test_allowed_changes_pass_as_nbguard_run_lets_them(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    result = nbguard(pytester, "course", "--nbguard-allow-changed")

    result.assert_outcomes(passed=3, failed=1)


def test_k_executes_only_the_selected_notebooks(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    result = nbguard(pytester, "course", "-k", "changed")

    result.assert_outcomes(failed=1)
    # The changed notebook also runs once more in the baseline env (volatile outputs).
    assert sorted(set(backend.executed)) == [
        ("b_changed.ipynb", "locked"),
        ("b_changed.ipynb", "upcoming"),
    ]


def test_x_stops_executing_after_the_first_failing_notebook(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    result = nbguard(pytester, "course", "-x")

    result.assert_outcomes(passed=1, failed=1)
    assert {path for path, _ in backend.executed} == {"a_same.ipynb", "b_changed.ipynb"}


def test_last_failed_reruns_only_the_failing_notebooks(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    cache = str(pytester.path / "cache")
    pytester.runpytest("--nbguard", "--nbguard-cache-dir", cache, "course")
    backend.executed.clear()

    result = pytester.runpytest("--nbguard", "--nbguard-cache-dir", cache, "course", "--lf")

    result.assert_outcomes(failed=2)
    assert {path for path, _ in backend.executed} == {"b_changed.ipynb", "c_broken.ipynb"}


def test_a_skipped_notebook_is_a_skipped_item_with_the_reason(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    nb = json.loads((course / "a_same.ipynb").read_text())
    nb["metadata"]["nbguard"] = {"skip": "draft, not handed out yet"}
    (course / "a_same.ipynb").write_text(json.dumps(nb))

    result = nbguard(pytester, "course", "-rs")

    result.assert_outcomes(passed=1, failed=2, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1] course/a_same.ipynb: *draft, not handed out yet"])


def test_the_report_gathers_every_item_and_junit_has_a_case_per_notebook(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    report = pytester.path / "out" / "report.json"
    junit = pytester.path / "junit.xml"

    result = nbguard(pytester, "course", "--nbguard-report", str(report), f"--junitxml={junit}")

    data = json.loads(report.read_text())
    assert {nb["path"]: nb["verdict"] for nb in data["notebooks"]} == {
        "a_same.ipynb": "ok",
        "b_changed.ipynb": "changed",
        "c_broken.ipynb": "broken",
        "sub/d_fine.ipynb": "ok",
    }
    assert data["summary"]["broken"] == 1 and data["summary"]["ok"] == 2
    assert set(data["envs"]) == {"locked", "upcoming"}
    result.stdout.fnmatch_lines(
        ["nbguard: env locked: *", f"nbguard: 1 broken, 1 changed, 2 ok; report: {report}"]
    )
    xml = junit.read_text()
    assert xml.count("<testcase ") == 4
    assert 'name="nbguard-verdict" value="broken"' in xml


def test_notebooks_the_settings_exclude_are_not_collected(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    result = nbguard(pytester, "course", "--nbguard-exclude", "sub/**")

    result.assert_outcomes(passed=1, failed=2)


def test_without_nbguard_notebooks_are_not_collected(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    assert backend.executed == []


def test_a_bad_setting_is_one_line_at_collection(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    result = nbguard(pytester, "course", "--nbguard-timeout", "soon")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["nbguard: error: timeout in the command line must be *"])
    assert "Traceback" not in result.stdout.str()
    assert backend.executed == []


def test_a_parameter_the_notebook_lacks_stops_the_session_with_exit_2(
    pytester: pytest.Pytester, course: Path, backend: CountingBackend
) -> None:
    result = nbguard(pytester, "course", "--nbguard-param", "a_same.ipynb:n_points=50")

    assert result.ret == 2
    result.stdout.fnmatch_lines(["*nbguard: error: a_same.ipynb has no cell tagged 'parameters'*"])
    assert backend.executed == []


def test_every_setting_is_an_option_of_pytest(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")

    out = result.stdout.str()
    for setting in settings.SETTINGS:
        assert f"--nbguard-{setting.flag[2:]}" in out
        if setting.is_bool:
            assert f"--no-nbguard-{setting.key}" in out
    for setting in settings.ENV_SETTINGS:
        assert f"--nbguard-env-{setting.key}" in out


def test_without_nbguard_the_plugin_imports_no_pipeline() -> None:
    # pytest loads the plugin in every project where nbguard is installed.
    code = "import sys, nbguard.pytest_plugin; print(sorted(m for m in sys.modules if m.startswith(('nbguard.pipeline', 'nbclient', 'papermill'))))"  # noqa: E501

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "[]"
