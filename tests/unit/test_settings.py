"""Fast tier: reading the course's configuration into a Config, no envs built."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path

import pytest

from nbguard import runspec, settings
from nbguard.errors import ConfigError
from nbguard.settings import EnvSpec


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A course with the usual pair: a pinned lock and the loose file it was compiled from."""
    root = tmp_path / "course"
    write(root / "requirements.txt", "numpy==1.26.4\n")
    write(root / "requirements.in", "numpy\n")
    return root


def config_error(course: Path, **kwargs: object) -> str:
    """The message of the ConfigError that loading raises; it must be one line."""
    with pytest.raises(ConfigError) as caught:
        settings.load(course, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# --- defaults ---------------------------------------------------------------------------------


def test_no_config_locked_is_the_lock_as_is_and_upcoming_the_loose_file_upgraded(
    course: Path,
) -> None:
    config = settings.load(course)

    assert config.config_file is None
    assert [spec.name for spec in config.envs] == ["locked", "upcoming"]
    assert config.env("locked") == EnvSpec("locked", requirements=course / "requirements.txt")
    assert config.env("upcoming") == EnvSpec(
        "upcoming", requirements=course / "requirements.in", upgrade=True
    )
    assert config.baseline == "locked"


def test_only_a_lock_file_upcoming_upgrades_the_same_file(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "numpy==1.26.4\n")

    config = settings.load(tmp_path)

    lock = tmp_path / "requirements.txt"
    assert config.env("locked") == EnvSpec("locked", requirements=lock)
    assert config.env("upcoming") == EnvSpec("upcoming", requirements=lock, upgrade=True)


def test_only_an_environment_yml_serves_both_envs(tmp_path: Path) -> None:
    write(tmp_path / "environment.yml", "dependencies:\n  - numpy=1.26\n")

    config = settings.load(tmp_path)

    yml = tmp_path / "environment.yml"
    assert config.env("locked") == EnvSpec("locked", requirements=yml)
    assert config.env("upcoming") == EnvSpec("upcoming", requirements=yml, upgrade=True)


def test_no_config_uses_the_documented_defaults(
    course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBGUARD_CACHE_DIR", str(course / "cache"))

    config = settings.load(course)

    assert config.notebooks == ("**/*.ipynb",)
    assert config.exclude == ()
    assert config.timeout == 300.0
    assert config.notebook_timeout == 1800.0
    assert config.startup_timeout == 60.0
    assert config.resolver == "uv"
    assert config.course_code == "path"
    assert config.report == Path("nbguard-report.json")
    assert config.cache_dir == course / "cache"
    assert (config.strict, config.allow_changed, config.no_index) == (False, False, False)


def test_jobs_default_to_four_per_cpu_within_memory(
    course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(settings, "_available_memory", lambda: 64 * 1024**3)
    assert settings.default_jobs() == 12
    # A small CI runner: 1.5 GB free holds three kernels, not twelve.
    monkeypatch.setattr(settings, "_available_memory", lambda: 1536 * 1024**2)
    assert settings.default_jobs() == 3
    monkeypatch.setattr(settings, "_available_memory", lambda: 100 * 1024**2)
    assert settings.default_jobs() == 1
    assert settings.load(course).jobs >= 1


# --- where the configuration comes from ---------------------------------------------------------


def test_tool_nbguard_in_pyproject_is_read(course: Path) -> None:
    pyproject = write(
        course / "pyproject.toml",
        '[project]\nname = "phys210"\n\n[tool.nbguard]\njobs = 3\nexclude = ["drafts/**"]\n',
    )

    config = settings.load(course)

    assert config.config_file == pyproject
    assert config.jobs == 3
    assert config.exclude == ("drafts/**",)


def test_pyproject_without_an_nbguard_table_means_defaults(course: Path) -> None:
    write(course / "pyproject.toml", '[project]\nname = "phys210"\n')

    config = settings.load(course)

    assert config.config_file is None
    assert config.timeout == 300.0


def test_nbguard_toml_is_read_with_keys_at_top_level(course: Path) -> None:
    toml = write(course / "nbguard.toml", 'timeout = 60\nnotebooks = "lectures/*.ipynb"\n')

    config = settings.load(course)

    assert config.config_file == toml
    assert config.timeout == 60.0
    assert config.notebooks == ("lectures/*.ipynb",)


def test_an_explicit_config_file_is_read(course: Path, tmp_path: Path) -> None:
    elsewhere = write(tmp_path / "ci" / "nbguard.toml", "jobs = 5\n")

    config = settings.load(course, config_file=elsewhere)

    assert config.config_file == elsewhere
    assert config.jobs == 5


@pytest.mark.parametrize(
    ("key", "attr"),
    [
        ("notebook-timeout", "notebook_timeout"),
        ("notebook_timeout", "notebook_timeout"),
        ("startup-timeout", "startup_timeout"),
        ("startup_timeout", "startup_timeout"),
    ],
)
def test_keys_may_use_dashes_or_underscores(course: Path, key: str, attr: str) -> None:
    write(course / "nbguard.toml", f"{key} = 42\n")

    assert getattr(settings.load(course), attr) == 42.0


@pytest.mark.parametrize("no_limit", ["0", '"none"', '"off"'])
def test_a_timeout_of_zero_or_none_means_no_limit(course: Path, no_limit: str) -> None:
    write(course / "nbguard.toml", f"timeout = {no_limit}\n")

    assert settings.load(course).timeout is None


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ('"2G"', 2 * 1024**3),
        ('"512M"', 512 * 1024**2),
        ('"1.5GB"', 3 * 1024**3 // 2),
        ('"64k"', 64 * 1024),
        ("1000000", 1000000),
        ("0", None),
        ('"none"', None),
    ],
)
def test_memory_limit_and_max_output_are_sizes(course: Path, value: str, size: int | None) -> None:
    write(course / "nbguard.toml", f"memory-limit = {value}\nmax-output = {value}\n")

    config = settings.load(course)

    assert (config.memory_limit, config.max_output) == (size, size)
    options = runspec.exec_options(config)
    assert (options.memory_limit, options.max_output) == (size, size)


def test_memory_limit_is_off_and_max_output_10m_by_default(course: Path) -> None:
    config = settings.load(course, overrides={"memory-limit": "1G"})

    assert (config.memory_limit, config.max_output) == (1024**3, 10 * 1024**2)
    assert settings.load(course).memory_limit is None


@pytest.mark.parametrize("bad", ['"lots"', "-1", "true", '"2X"'])
def test_a_bad_size_names_the_key(course: Path, bad: str) -> None:
    toml = write(course / "nbguard.toml", f"memory-limit = {bad}\n")

    message = config_error(course)

    assert message.startswith(f"memory-limit in [tool.nbguard] of {toml} must be a size")


def test_find_links_are_relative_to_the_config_file(course: Path, tmp_path: Path) -> None:
    write(course / "pyproject.toml", '[tool.nbguard]\nfind-links = ["../wheels", "https://x/w"]\n')
    elsewhere = write(tmp_path / "ci" / "nbguard.toml", 'find-links = ["wheels"]\n')

    assert settings.load(course).find_links == (str(tmp_path / "wheels"), "https://x/w")
    assert settings.load(course, config_file=elsewhere).find_links == (
        str(tmp_path / "ci" / "wheels"),
    )


def test_find_links_on_the_command_line_add_to_the_configs_relative_to_the_cwd(
    course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(course / "pyproject.toml", '[tool.nbguard]\nfind-links = ["../wheels"]\n')
    monkeypatch.chdir(tmp_path / "course")

    config = settings.load(course, {"find-links": ["more-wheels"]})

    assert config.find_links == (str(tmp_path / "wheels"), str(course / "more-wheels"))


def test_other_list_flags_replace_the_configs(course: Path) -> None:
    write(course / "nbguard.toml", 'notebooks = ["lectures/*.ipynb"]\n')

    config = settings.load(course, {"notebooks": ["homework/*.ipynb"]})

    assert config.notebooks == ("homework/*.ipynb",)


def test_command_line_values_win_over_the_config_file(course: Path) -> None:
    write(course / "nbguard.toml", "jobs = 3\nstrict = false\n")

    config = settings.load(course, {"jobs": "7", "strict": True})

    assert (config.jobs, config.strict) == (7, True)


def test_cache_dir_in_the_config_is_relative_to_the_config_file(course: Path) -> None:
    write(course / "nbguard.toml", 'cache-dir = ".cache/envs"\n')

    assert settings.load(course).cache_dir == course / ".cache" / "envs"


# --- envs -------------------------------------------------------------------------------------


def test_env_tables_define_the_envs(course: Path) -> None:
    write(course / "old" / "requirements-2023.txt", "numpy==1.24.0\n")
    write(
        course / "pyproject.toml",
        """
[tool.nbguard]
baseline = "fall-2023"

[tool.nbguard.envs.fall-2023]
python = "3.10"
requirements = "old/requirements-2023.txt"

[tool.nbguard.envs.upcoming]
python = "3.12"
requirements = "requirements.in"
upgrade = true
prerelease = true
pins = ["numpy<3", "pandas>=2"]
""",
    )

    config = settings.load(course)

    assert config.baseline == "fall-2023"
    assert config.envs == (
        EnvSpec("fall-2023", python="3.10", requirements=course / "old" / "requirements-2023.txt"),
        EnvSpec(
            "upcoming",
            python="3.12",
            requirements=course / "requirements.in",
            upgrade=True,
            prerelease=True,
            pins=("numpy<3", "pandas>=2"),
        ),
    )


def test_an_env_without_requirements_takes_the_courses_default_file(course: Path) -> None:
    write(
        course / "nbguard.toml",
        '[envs.locked]\npython = "3.11"\n[envs.upcoming]\npython = "3.13"\nupgrade = true\n',
    )

    config = settings.load(course)

    assert config.env("locked").requirements == course / "requirements.txt"
    assert config.env("upcoming").requirements == course / "requirements.in"


def test_command_line_env_values_change_only_the_given_keys_of_a_default_env(
    course: Path,
) -> None:
    config = settings.load(course, None, {"upcoming": {"python": "3.12", "pins": ["numpy<3"]}})

    assert config.env("upcoming") == EnvSpec(
        "upcoming",
        python="3.12",
        requirements=course / "requirements.in",
        upgrade=True,
        pins=("numpy<3",),
    )
    assert config.env("locked") == EnvSpec("locked", requirements=course / "requirements.txt")


def test_command_line_pins_add_to_the_configured_ones(course: Path) -> None:
    write(
        course / "nbguard.toml",
        '[envs.locked]\n[envs.upcoming]\nupgrade = true\npins = ["numpy<3"]\n',
    )

    config = settings.load(course, None, {"upcoming": {"pins": ["pandas>=2"], "prerelease": "yes"}})

    upcoming = config.env("upcoming")
    assert upcoming.pins == ("numpy<3", "pandas>=2")
    assert (upcoming.upgrade, upcoming.prerelease) == (True, True)


def test_command_line_requirements_are_relative_to_the_cwd(
    course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = write(course / "old" / "requirements.txt", "numpy==1.24.0\n")
    monkeypatch.chdir(course / "old")

    config = settings.load(course, None, {"locked": {"requirements": "requirements.txt"}})

    assert config.env("locked").requirements == other


# --- errors: one line naming the key or file and what to do -------------------------------------


def test_unknown_key_names_it_and_suggests_the_close_one(course: Path) -> None:
    write(course / "pyproject.toml", "[tool.nbguard]\ntimout = 30\n")

    message = config_error(course)

    assert "unknown key 'timout'" in message
    assert str(course / "pyproject.toml") in message
    assert "did you mean 'timeout'?" in message


def test_a_typo_in_a_two_word_key_suggests_that_key(course: Path) -> None:
    write(course / "nbguard.toml", "notebook-timout = 30\n")

    assert "did you mean 'notebook-timeout'?" in config_error(course)


def test_a_typo_early_in_the_key_still_gets_a_suggestion(course: Path) -> None:
    write(course / "nbguard.toml", 'exlude = ["drafts/**"]\n')

    assert "did you mean 'exclude'?" in config_error(course)


def test_unknown_key_in_an_env_table_is_an_error(course: Path) -> None:
    write(course / "nbguard.toml", '[envs.locked]\n[envs.upcoming]\npythn = "3.12"\n')

    message = config_error(course)

    assert "unknown key 'pythn'" in message
    assert "envs.upcoming" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('jobs = "two"', "jobs in [tool.nbguard] of {file} must be a whole number"),
        ("jobs = 0", "jobs in [tool.nbguard] of {file} must be a whole number of at least 1"),
        ("timeout = -1", "timeout in [tool.nbguard] of {file} must be a number of seconds"),
        ('resolver = "conda"', "resolver in [tool.nbguard] of {file} must be one of 'uv'"),
        ('strict = "maybe"', "strict in [tool.nbguard] of {file} must be true or false"),
        ("notebooks = [1, 2]", "notebooks in [tool.nbguard] of {file} must be a string or a list"),
    ],
)
def test_wrong_type_names_the_key_the_file_and_what_it_must_be(
    course: Path, line: str, expected: str
) -> None:
    toml = write(course / "pyproject.toml", f"[tool.nbguard]\n{line}\n")

    assert expected.format(file=toml) in config_error(course)


def test_wrong_type_on_the_command_line_says_so(course: Path) -> None:
    assert "jobs in the command line must be a whole number" in config_error(
        course, overrides={"jobs": "two"}
    )


def test_missing_requirements_file_names_the_env_and_the_path(course: Path) -> None:
    write(course / "nbguard.toml", '[envs.locked]\nrequirements = "requirements-2023.txt"\n')

    message = config_error(course)

    assert message.startswith("envs.locked.requirements in ")
    assert f"{course / 'requirements-2023.txt'} does not exist" in message
    assert "name an existing requirements.txt" in message


def test_unknown_env_on_the_command_line_lists_the_envs(course: Path) -> None:
    message = config_error(course, env_overrides={"upcomming": {"python": "3.12"}})

    assert "unknown env 'upcomming' on the command line" in message
    assert "envs are locked, upcoming" in message


def test_baseline_not_among_the_envs(course: Path) -> None:
    write(course / "nbguard.toml", 'baseline = "spring"\n')

    message = config_error(course)

    assert "baseline env 'spring' is not defined" in message
    assert "envs are locked, upcoming" in message


def test_invalid_toml_names_the_file(course: Path) -> None:
    toml = write(course / "pyproject.toml", "[tool.nbguard\njobs = 2\n")

    message = config_error(course)

    assert f"{toml}: not valid TOML" in message


def test_a_tool_nbguard_that_is_not_a_table(course: Path) -> None:
    write(course / "pyproject.toml", "tool.nbguard = 3\n")

    assert "tool.nbguard" in config_error(course)


def test_an_explicit_pyproject_without_an_nbguard_table_says_so(
    course: Path, tmp_path: Path
) -> None:
    other = write(tmp_path / "other" / "pyproject.toml", '[project]\nname = "x"\n')

    message = config_error(course, config_file=other)

    assert "unknown key" not in message
    assert "[tool.nbguard]" in message


def test_no_requirements_at_all_says_what_to_add(tmp_path: Path) -> None:
    message = config_error(tmp_path)

    assert f"no requirements.txt, requirements.in or environment.yml in {tmp_path}" in message
    assert "[tool.nbguard.envs" in message


def test_missing_course_directory(tmp_path: Path) -> None:
    assert f"course directory {tmp_path / 'nope'} does not exist" in config_error(tmp_path / "nope")


def test_envs_must_be_a_table(course: Path) -> None:
    write(course / "nbguard.toml", 'envs = ["locked"]\n')

    assert "must be a table of env tables" in config_error(course)


# --- one definition per setting --------------------------------------------------------------


def test_every_setting_is_one_config_field_and_nothing_else_is() -> None:
    fields = {f.name for f in dataclasses.fields(settings.Config)}
    run_values = {"course", "config_file", "envs"}  # the course itself, not settings

    assert fields - run_values == {s.attr for s in settings.SETTINGS}


def test_defaults_come_from_the_settings_table_alone(course: Path, tmp_path: Path) -> None:
    config = settings.load(course)
    hints = typing.get_type_hints(settings.Config)

    for setting in settings.SETTINGS:
        value = getattr(config, setting.attr)
        if setting.key == "cache-dir":
            assert value == settings.default_cache_dir()
        elif setting.key in {"report", "html", "markdown", "junit", "since-report", "patch"}:
            assert value == (None if setting.default is None else Path(str(setting.default)))
        else:
            assert value == setting.default, setting.key
        # The parser's type is the field's type: a value from TOML or a flag fits the field.
        assert _fits(value, hints[setting.attr]), (setting.key, value, hints[setting.attr])
    assert config.jobs == settings.default_jobs()


def _fits(value: object, hint: object) -> bool:
    if hint is type(None) or hint is None:
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(hint))
    if origin is tuple:
        return isinstance(value, tuple)
    if hint is float:
        return isinstance(value, float | int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else False
