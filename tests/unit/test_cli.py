"""Fast tier: the command line's usage errors, help and version — nothing here builds an env or
starts a kernel."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from nbguard import __version__, settings
from nbguard.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def exit_code(argv: Sequence[str]) -> int:
    """What the `nbguard` script exits with: main's return value, or argparse's SystemExit."""
    try:
        return main(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nbguard: error: ")
    return lines[0]


@pytest.fixture
def course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    root.mkdir()
    (root / "requirements.txt").write_text("numpy==1.26.4\n", encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Help and messages as a wide terminal gets them, whatever runs the tests."""
    monkeypatch.setenv("COLUMNS", "200")


# --- exit 2: one line, no traceback -------------------------------------------------------------


def test_an_unknown_flag(course: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["run", str(course), "--jbos", "2"]) == 2

    assert "unrecognized arguments: --jbos" in one_error_line(capsys)


def test_an_unknown_flag_points_at_the_commands_help(
    course: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(["run", str(course), "--jbos", "2"]) == 2

    assert one_error_line(capsys).endswith("(see nbguard run --help)")


def test_a_missing_flag_value_points_at_the_commands_help(
    course: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(["run", str(course), "--jobs"]) == 2

    line = one_error_line(capsys)
    assert "--jobs" in line
    assert line.endswith("(see nbguard run --help)")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--jobs", "two"], "jobs in the command line must be a whole number"),
        (["--timeout", "-1"], "timeout in the command line must be a number of seconds"),
        (["--resolver", "conda"], "resolver in the command line must be one of 'uv', 'pip-tools'"),
        (["--env-python", "upcoming"], "--env-python needs ENV=VALUE, got 'upcoming'"),
    ],
)
def test_a_bad_value_on_the_command_line(
    course: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expected: str
) -> None:
    assert exit_code(["run", str(course), *flags]) == 2

    assert expected in one_error_line(capsys)


def test_a_bad_value_in_the_config_file(course: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (course / "pyproject.toml").write_text('[tool.nbguard]\njobs = "two"\n', encoding="utf-8")

    assert exit_code(["run", str(course)]) == 2

    line = one_error_line(capsys)
    assert "jobs in [tool.nbguard] of" in line
    assert "pyproject.toml must be a whole number" in line


def test_a_missing_course_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["run", str(tmp_path / "no-such-course")]) == 2

    assert "no-such-course does not exist" in one_error_line(capsys)


def test_an_unknown_env(course: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["run", str(course), "--env-python", "upcomming=3.12"]) == 2

    line = one_error_line(capsys)
    assert "unknown env 'upcomming'" in line
    assert "envs are locked, upcoming" in line


def test_a_python_that_is_not_installed_stops_before_any_env_is_built(
    course: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An empty PATH and pyenv: the answer is the same as on any machine (no 3.99 anywhere)
    # without probing every python on PATH; uv's own Pythons are still searched.
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    cache = tmp_path / "cache"
    report = tmp_path / "report.json"

    code = exit_code(
        ["run", str(course), "--cache-dir", str(cache), "--report", str(report),
         "--env-python", "upcoming=3.99"]
    )  # fmt: skip

    assert code == 2
    line = one_error_line(capsys)
    assert "no Python 3.99 interpreter found" in line
    assert "uv python install 3.99" in line
    assert not cache.exists()
    assert not report.exists()


def test_no_command_shows_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code([]) == 2

    assert "run" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--version"]) == 0

    assert capsys.readouterr().out.strip() == f"nbguard {__version__}"


# --- help, settings and README stay in step -----------------------------------------------------


def expected_flags() -> list[str]:
    flags = []
    for setting in settings.SETTINGS:
        flags.append(setting.flag)
        if setting.is_bool:
            flags.append(f"--no-{setting.key}")
    flags += [f"--env-{setting.key}" for setting in settings.ENV_SETTINGS]
    return flags


def test_top_level_help_names_the_run_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--help"]) == 0

    out = capsys.readouterr().out
    assert re.search(r"^\s+run\s+execute every notebook", out, re.MULTILINE), out


def test_run_help_lists_every_settings_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["run", "--help"]) == 0

    out = capsys.readouterr().out
    shown = set(re.findall(r"--[a-z][a-z-]*", out))
    missing = [flag for flag in expected_flags() if flag not in shown]
    assert not missing, f"run --help does not list {missing}"
    assert re.search(r"^\s+-j N\b", out, re.MULTILINE)


def test_run_help_shows_each_settings_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["run", "--help"]) == 0

    out = " ".join(capsys.readouterr().out.split())
    for setting in (*settings.SETTINGS, *settings.ENV_SETTINGS):
        assert " ".join(setting.help.split()) in out, setting.key


def test_readme_documents_every_setting() -> None:
    readme = README.read_text(encoding="utf-8")

    undocumented = [s.key for s in settings.SETTINGS if f"`{s.key}`" not in readme]
    no_flag = [s.flag for s in settings.SETTINGS if s.flag not in readme]
    no_env_flag = [
        f"--env-{s.key}" for s in settings.ENV_SETTINGS if f"--env-{s.key}" not in readme
    ]
    assert (undocumented, no_flag, no_env_flag) == ([], [], [])


def test_readme_documents_every_env_key_in_its_example() -> None:
    readme = README.read_text(encoding="utf-8")
    example = readme[readme.index("[tool.nbguard.envs.") :]

    missing = [
        s.key for s in settings.ENV_SETTINGS if not re.search(rf"^{s.key} = ", example, re.M)
    ]
    assert missing == []


def test_an_invalid_environment_yml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    course = tmp_path / "course"
    course.mkdir()
    (course / "environment.yml").write_text("dependencies: [numpy\n", encoding="utf-8")

    code = exit_code(["run", str(course), "--cache-dir", str(tmp_path / "cache"), "--no-index"])

    assert code == 2
    assert "environment.yml" in one_error_line(capsys)
