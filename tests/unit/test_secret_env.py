"""Fast tier: which variables count as secrets, the pass-env setting and report redaction."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nbguard import proc, runspec, settings
from nbguard.execute import ExecOptions
from nbguard.execute.launch import kernel_env
from nbguard.report import json_report
from nbguard.secret_env import is_secret, redactor


@pytest.mark.parametrize(
    "name",
    [
        "GITHUB_TOKEN",
        "gh_token",
        "ACTIONS_RUNTIME_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "AWS_REGION",
        "MY_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "DB_PASSWORD",
        "FTP_PASSWD",
        "client_secret",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "SSH_AUTH_SOCK",
        "PYPI_PASSWORD",
        "TWINE_USERNAME",
        "CODECOV_TOKEN",
    ],
)
def test_secret_looking_names(name: str) -> None:
    assert is_secret(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "KEYBOARD", "LANG", "MPLCONFIGDIR", "AUTHOR"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret(name)


def test_kernel_env_drops_secrets_unless_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "abcdefgh")
    monkeypatch.setenv("NBGUARD_HARMLESS", "1")

    def env(*allow: str) -> dict[str, str]:
        return kernel_env(tmp_path, tmp_path / "s", ExecOptions(pass_env=allow), tmp_path)

    assert "GITHUB_TOKEN" not in env() and "AWS_SECRET_ACCESS_KEY" not in env()
    assert env()["NBGUARD_HARMLESS"] == "1"
    assert env("GITHUB_TOKEN")["GITHUB_TOKEN"] == "ghp_secret123"
    assert "AWS_SECRET_ACCESS_KEY" in env("AWS_*") and "GITHUB_TOKEN" not in env("AWS_*")


def test_pass_env_setting_from_toml_and_command_line(tmp_path: Path) -> None:
    course = tmp_path / "course"
    course.mkdir()
    (course / "requirements.txt").write_text("numpy==1.26.4\n")
    (course / "nbguard.toml").write_text('pass-env = ["HF_TOKEN"]\n')

    config = settings.load(course, {"pass-env": ["AWS_*"]})

    assert config.pass_env == ("HF_TOKEN", "AWS_*")
    assert runspec.exec_options(config).pass_env == ("HF_TOKEN", "AWS_*")


def test_redaction_replaces_longest_values_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to redact safely
    monkeypatch.setenv("A_TOKEN", "secret-one")
    monkeypatch.setenv("B_TOKEN", "secret-one-and-more")
    pattern = redactor()

    assert pattern is not None
    assert pattern.sub("***", "x secret-one-and-more y secret-one abc") == "x *** y *** abc"


def test_written_report_never_holds_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret123")
    data = {"notebooks": [{"runs": {"e": {"reason": "got ghp_secret123", "n": 1}}}]}

    json_report.write(data, tmp_path / "r.json")

    written = json.loads((tmp_path / "r.json").read_text())
    assert written == {"notebooks": [{"runs": {"e": {"reason": "got ***", "n": 1}}}]}


def test_the_terminal_table_never_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from nbguard.model import CellError, EnvInfo, NotebookReport, NotebookRun, Report
    from nbguard.report import terminal

    monkeypatch.setenv("GITHUB_TOKEN", "ghp_terminal_secret_42")
    failed = NotebookRun(
        "nb.ipynb", "upcoming", "error", 1.0,
        error=CellError(1, "ValueError", "bad token ghp_terminal_secret_42"),
    )  # fmt: skip
    report = Report(
        course="/c",
        baseline="locked",
        envs={"locked": EnvInfo("locked", "3.11.7", {}, "f")},
        notebooks=(
            NotebookReport(
                "nb.ipynb",
                "broken",
                {"locked": NotebookRun("nb.ipynb", "locked", "ok", 1.0), "upcoming": failed},
            ),
        ),
        created="2026-11-22T00:00:00+00:00",
        duration_s=1.0,
    )
    out = io.StringIO()
    terminal.render(json_report.to_json(report), Console(file=out, width=200))

    assert "ghp_terminal_secret_42" not in out.getvalue()
    assert "bad token ***" in out.getvalue()


def test_the_env_check_runs_the_envs_code_without_nbguards_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The kernel check starts the env's own python: any .pth of any package runs there.
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_check_secret")
    monkeypatch.setenv("HARMLESS", "kept")
    show = "import os; print(os.environ.get('GITHUB_TOKEN'), os.environ.get('HARMLESS'))"

    done = proc.run([sys.executable, "-c", show], withhold=is_secret)

    assert done.stdout.split() == ["None", "kept"]
