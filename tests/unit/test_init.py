"""Fast tier: `nbguard init` writes a config nbguard accepts and workflows that parse."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nbguard import cli, settings
from nbguard.errors import ConfigError
from nbguard.init import TEMPLATES, init, template_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEMO_COURSE = Path(__file__).resolve().parents[2] / "fixtures" / "demo-course"
WORKFLOWS = Path(".github") / "workflows"
# Flags of `nbguard run` the reports issue adds (the lead wires them into cli.py); the
# templates may use them before they exist in the parser.
EXPECTED_ADDITIONS = {"--html", "--markdown", "--junit", "--since-report"}
NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A course with no nbguard config: notebooks in two folders and at the root, a lock and
    the loose file it was compiled from, and a pyproject.toml for something else."""
    root = tmp_path / "course"
    for notebook in ("lectures/01_intro.ipynb", "lectures/week2/02_fit.ipynb",
                     "homework/hw01.ipynb", "overview.ipynb",
                     "lectures/.ipynb_checkpoints/01_intro-checkpoint.ipynb"):  # fmt: skip
        write(root / notebook, NOTEBOOK)
    write(root / "requirements.txt", "# pinned\nnumpy==1.26.4\n    # via -r requirements.in\n")
    write(root / "requirements.in", "numpy\n")
    write(root / "pyproject.toml", "[tool.ruff]\nline-length = 100\n# the end\n")
    return root


def one_line_error(course: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        init(course)
    assert "\n" not in str(caught.value)
    return str(caught.value)


# --- the configuration ------------------------------------------------------------------------


def test_appends_a_table_to_pyproject_that_settings_accept(course: Path) -> None:
    before = (course / "pyproject.toml").read_text(encoding="utf-8")
    lines = init(course)
    after = (course / "pyproject.toml").read_text(encoding="utf-8")
    assert after.startswith(before), "the rest of pyproject.toml must stay as it was"
    assert not (course / "nbguard.toml").exists()
    data = tomllib.loads(after)
    assert data["tool"]["ruff"] == {"line-length": 100}
    table = data["tool"]["nbguard"]
    assert table["envs"] == {
        "locked": {"requirements": "requirements.txt"},
        "upcoming": {"requirements": "requirements.in", "upgrade": True},
    }
    config = settings.load(course)
    assert config.config_file == course.resolve() / "pyproject.toml"
    assert config.notebooks == ("*.ipynb", "homework/**/*.ipynb", "lectures/**/*.ipynb")
    assert [(e.name, e.requirements, e.upgrade) for e in config.envs] == [
        ("locked", course.resolve() / "requirements.txt", False),
        ("upcoming", course.resolve() / "requirements.in", True),
    ]
    assert lines[0] == "found 4 notebooks in the course root, homework/, lectures/"
    assert lines[1].startswith("added [tool.nbguard] to pyproject.toml: notebooks ")


def test_globs_find_the_same_notebooks_as_the_default(course: Path) -> None:
    from nbguard import discover

    init(course)
    config = settings.load(course)
    every = discover.discover(course, ("**/*.ipynb",), (), settings.ALWAYS_EXCLUDED)
    chosen = discover.discover(course, config.notebooks, (), settings.ALWAYS_EXCLUDED)
    assert [nb.path for nb in chosen] == [nb.path for nb in every]


def test_writes_nbguard_toml_without_pyproject(course: Path) -> None:
    (course / "pyproject.toml").unlink()
    (course / "requirements.in").unlink()
    lines = init(course)
    assert not (course / "pyproject.toml").exists()
    data = tomllib.loads((course / "nbguard.toml").read_text(encoding="utf-8"))
    assert data["envs"]["locked"] == {"requirements": "requirements.txt"}
    # No loose file: upcoming is the lock with its pins dropped.
    assert data["envs"]["upcoming"] == {"requirements": "requirements.txt", "upgrade": True}
    config = settings.load(course)
    assert config.config_file == course.resolve() / "nbguard.toml"
    assert {e.name: e.upgrade for e in config.envs} == {"locked": False, "upcoming": True}
    assert lines[1].startswith("wrote nbguard.toml: ")


def test_finds_requirements_in_binder_and_environment_yml(course: Path) -> None:
    for name in ("requirements.txt", "requirements.in"):
        (course / name).unlink()
    write(course / "binder" / "environment.yml", "dependencies:\n  - numpy\n")
    init(course)
    text = (course / "pyproject.toml").read_text(encoding="utf-8")
    assert "pins nothing" in text, "an unpinned locked env deserves a word"
    config = settings.load(course)
    environment = course.resolve() / "binder" / "environment.yml"
    assert {e.name: e.requirements for e in config.envs} == {
        "locked": environment,
        "upcoming": environment,
    }


def test_proposes_the_locks_python_the_conda_solver_and_the_colab_preset(course: Path) -> None:
    for name in ("requirements.txt", "requirements.in"):
        (course / name).unlink()
    header = "#    uv pip compile requirements.in --python-version 3.10 -o requirements.txt\n"
    write(course / ".binder" / "requirements.txt", header + "numpy==1.26.4\n")
    write(course / ".binder" / "environment.yml", "dependencies:\n  - python=3.10\n  - numpy\n")

    init(course)

    text = (course / "pyproject.toml").read_text(encoding="utf-8")
    assert '# python = "3.10"  # from .binder/requirements.txt header' in text
    assert '# conda-solver = "auto"' in text
    assert '# preset = "colab"' in text
    data = tomllib.loads(text)["tool"]["nbguard"]
    assert data["envs"]["locked"] == {"requirements": ".binder/requirements.txt"}
    assert data["envs"]["upcoming"]["requirements"] == ".binder/environment.yml"
    # What init proposes in comments is what nbguard does without them.
    assert settings.load(course).env("locked").python == "3.10"


def test_proposes_a_pyproject_s_dependencies(course: Path) -> None:
    for name in ("requirements.txt", "requirements.in"):
        (course / name).unlink()
    write(course / "pyproject.toml", '[project]\nname = "phys"\ndependencies = ["numpy"]\n')

    init(course)

    data = tomllib.loads((course / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["tool"]["nbguard"]["envs"]["upcoming"]["requirements"] == "pyproject.toml"


def test_inline_tool_table_gets_nbguard_toml_instead(course: Path) -> None:
    write(course / "pyproject.toml", "tool = {ruff = {line-length = 100}}\n")
    lines = init(course)
    assert (course / "pyproject.toml").read_text() == "tool = {ruff = {line-length = 100}}\n"
    assert lines[1].startswith("wrote nbguard.toml")
    assert settings.load(course).config_file == course.resolve() / "nbguard.toml"


def test_demo_course_config_is_kept(tmp_path: Path) -> None:
    demo = tmp_path / "demo-course"
    shutil.copytree(DEMO_COURSE, demo)
    before = (demo / "pyproject.toml").read_bytes()
    lines = init(demo)
    assert (demo / "pyproject.toml").read_bytes() == before
    assert not (demo / "nbguard.toml").exists()
    assert "kept existing [tool.nbguard] in pyproject.toml" in lines
    assert lines[0] == "found 10 notebooks in homework/, labs/, lectures/"
    for name in TEMPLATES:
        assert (demo / WORKFLOWS / name).read_text() == template_text(name)
    settings.load(demo)


def test_force_never_rewrites_a_pyproject_table(tmp_path: Path) -> None:
    demo = tmp_path / "demo-course"
    shutil.copytree(DEMO_COURSE, demo)
    before = (demo / "pyproject.toml").read_bytes()
    assert "kept existing [tool.nbguard] in pyproject.toml" in init(demo, force=True)
    assert (demo / "pyproject.toml").read_bytes() == before


def test_existing_nbguard_toml_is_kept_unless_force(course: Path) -> None:
    write(course / "nbguard.toml", "jobs = 2\n")
    assert "kept existing configuration nbguard.toml (--force overwrites it)" in init(course)
    assert (course / "nbguard.toml").read_text() == "jobs = 2\n"
    assert "[tool.nbguard]" not in (course / "pyproject.toml").read_text()
    lines = init(course, force=True)
    assert lines[1].startswith("overwrote nbguard.toml")
    assert settings.load(course).notebooks[1] == "homework/**/*.ipynb"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: write(root / "requirements.txt", "numpy==2\n"), "no notebooks"),
        (lambda root: write(root / "a" / "x.ipynb", NOTEBOOK), "no requirements.txt"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, setup: Any, expected: str) -> None:
    root = tmp_path / "course"
    setup(root)
    assert expected in one_line_error(root)


# --- the workflows ----------------------------------------------------------------------------


def test_existing_workflows_are_kept_unless_force(course: Path) -> None:
    mine = write(course / WORKFLOWS / "nbguard-pr.yml", "# mine\n")
    lines = init(course)
    assert "kept existing .github/workflows/nbguard-pr.yml (--force overwrites it)" in lines
    assert "wrote .github/workflows/nbguard-nightly.yml" in lines
    assert mine.read_text() == "# mine\n"
    lines = init(course, force=True)
    assert "overwrote .github/workflows/nbguard-pr.yml" in lines
    assert mine.read_text() == template_text("nbguard-pr.yml")


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_is_a_workflow(name: str) -> None:
    text = template_text(name)
    assert text.startswith("# "), "each template starts with a comment saying what it does"
    workflow = yaml.safe_load(text)
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers and workflow["jobs"]
    for job in workflow["jobs"].values():
        assert job["steps"] and "runs-on" in job
    assert "pip install nbguard" in text


def test_triggers_and_permissions() -> None:
    def load(name: str) -> dict[Any, Any]:
        data: dict[Any, Any] = yaml.safe_load(template_text(name))
        return data

    pr, nightly, audit = (load(name) for name in TEMPLATES)
    assert "pull_request" in pr[True]
    assert nightly[True]["schedule"][0]["cron"] and "workflow_dispatch" in nightly[True]
    assert nightly["permissions"]["issues"] == "write"
    assert set(audit[True]["workflow_dispatch"]["inputs"]) == {"python", "prerelease"}
    assert audit[True]["workflow_dispatch"]["inputs"]["prerelease"]["type"] == "boolean"
    nightly_text = template_text("nbguard-nightly.yml")
    for command in ("gh issue list --label nbguard --state open", "gh issue create",
                    "gh issue comment", "GH_TOKEN: ${{ github.token }}"):  # fmt: skip
        assert command in nightly_text


def _run_flags(command: str = "run") -> set[str]:
    """The flags `nbguard run --help` (or another command's) lists today."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.main([command, "--help"])
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", out.getvalue()))


def _shell_lines(text: str) -> list[str]:
    """The `run:` scripts of every step, backslash continuations joined."""
    scripts = [
        step["run"]
        for job in yaml.safe_load(text)["jobs"].values()
        for step in job["steps"]
        if "run" in step
    ]
    return [line.strip() for script in scripts for line in script.replace("\\\n", " ").split("\n")]


def _flags_used(name: str) -> tuple[list[list[str]], list[str]]:
    """The template's `nbguard` command lines (tokens up to the first shell operator) and
    every flag handed to nbguard, including those collected in `nbguard_args`."""
    commands: list[list[str]] = []
    flags: list[str] = []
    operators = {"||", "&&", ";", "|", ">", "then", "do", "else", "!"}
    for line in _shell_lines(template_text(name)):
        if line.startswith("nbguard_args+=("):
            commands.append(["nbguard", "run", *shlex.split(line[len("nbguard_args+=(") : -1])])
            continue
        tokens = shlex.split(line, comments=True)
        starts = [
            i
            for i, t in enumerate(tokens)
            if t == "nbguard" and (i == 0 or tokens[i - 1] in operators)
        ]
        assert starts in ([], [0]), f"{name}: put nbguard first on its line: {line}"
        if starts:
            end = next((i for i, t in enumerate(tokens) if t in operators), None)
            commands.append(tokens[:end])
    for command in commands:
        flags += [token.split("=", 1)[0] for token in command[2:] if token.startswith("-")]
    return commands, flags


def test_run_help_lists_the_settings_flags() -> None:
    """The flag check reads `nbguard run --help`: make sure it reads it right."""
    assert {s.flag for s in settings.SETTINGS} | {"--config", "-j"} <= _run_flags()


@pytest.mark.parametrize("name", TEMPLATES)
def test_scripts_take_expressions_through_env(name: str) -> None:
    """`${{ ... }}` inside a script is a shell-injection hole (branch names, inputs)."""
    assert not [line for line in _shell_lines(template_text(name)) if "${{" in line]


@pytest.mark.parametrize("name", TEMPLATES)
def test_nbguard_commands_use_existing_flags(name: str) -> None:
    commands, flags = _flags_used(name)
    assert any(command[:2] == ["nbguard", "run"] for command in commands), name
    # Subcommands the templates may call: `run`, `merge` (the shards' reports) and
    # `colab-snapshot` (the nightly refresh).
    assert {command[1] for command in commands} <= {"run", "merge", "colab-snapshot"}, commands
    known = _run_flags() | _run_flags("merge") | EXPECTED_ADDITIONS
    unknown = sorted(set(flags) - known)
    assert not unknown, f"{name} uses flags nbguard run does not have: {unknown}"
    assert flags, name


def test_templates_use_the_flags_the_brief_names() -> None:
    _, pr = _flags_used("nbguard-pr.yml")
    _, nightly = _flags_used("nbguard-nightly.yml")
    _, audit = _flags_used("nbguard-audit.yml")
    assert {"--baseline", "--notebooks", "--markdown", "--html"} <= set(pr)
    assert {"--since-report", "--html", "--markdown"} <= set(nightly)
    assert {"--env-python", "--env-prerelease", "--html"} <= set(audit)


def test_the_pr_check_can_spread_over_machines() -> None:
    workflow = yaml.safe_load(template_text("nbguard-pr.yml"))
    commands, _ = _flags_used("nbguard-pr.yml")
    run = next(c for c in commands if c[:2] == ["nbguard", "run"] and "--shard" in c)
    merge = next(command for command in commands if command[:2] == ["nbguard", "merge"])
    # Each matrix job runs its shard; the report job, after all of them, joins the reports.
    assert workflow["jobs"]["notebooks"]["strategy"]["matrix"]["shard"] == [1]
    assert run[run.index("--report") + 1] == "nbguard-shard-${SHARD%/*}.json"
    assert workflow["jobs"]["report"]["needs"] == "notebooks"
    assert merge[2] == "nbguard-shard-*.json"
    env = next(
        s["env"] for s in workflow["jobs"]["notebooks"]["steps"] if "SHARD" in s.get("env", {})
    )
    assert env["SHARD"] == "${{ matrix.shard }}/${{ strategy.job-total }}"


def test_the_repositorys_workflow_templates_are_the_ones_init_writes() -> None:
    # .github/workflow-templates/ shows the workflows on GitHub; nbguard/templates/ ships them
    # in the package for `nbguard init`. One text, two places: this keeps them one.
    shown = Path(__file__).resolve().parents[2] / ".github" / "workflow-templates"
    assert sorted(p.name for p in shown.glob("*.yml")) == sorted(TEMPLATES)
    for name in TEMPLATES:
        assert (shown / name).read_text(encoding="utf-8") == template_text(name), name
