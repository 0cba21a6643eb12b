"""How a config runs and compares a notebook: the executor's and the comparison's options,
shared by the pipeline and by blame's probes so a probe runs exactly like the runs it is
compared with."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from nbguard import compare, discover, envs, execute
from nbguard.model import Tolerance
from nbguard.settings import Config


def exec_options(config: Config) -> execute.ExecOptions:
    paths: list[Path] = []
    if config.course_code == "path":
        paths.append(config.course)
        if (config.course / "src").is_dir():
            paths.append(config.course / "src")
    paths += [(config.course / extra).resolve() for extra in config.python_path]
    return execute.ExecOptions(
        cell_timeout=config.timeout,
        notebook_timeout=config.notebook_timeout,
        startup_timeout=config.startup_timeout or 60.0,
        python_path=tuple(paths),
        # No user site-packages: a kernel sees its env's packages and nothing else.
        kernel_env={"PYTHONNOUSERSITE": "1"},
        keep_going=config.keep_going,
        offline=config.offline,
        pass_env=config.pass_env,
        memory_limit=config.memory_limit,
        max_output=config.max_output,
        # Readable in the kernels' sandbox, for a notebook's `%pip install --find-links`.
        readable=tuple(config.course / link for link in config.find_links if "://" not in link),
        sandbox=config.sandbox,
        # A notebook's `%pip install` / `!pip install` behaves as for a student: what the env
        # has is already satisfied, the rest goes to a layer of the run's own over the cached
        # env (execute/overlay.py), importable at once; the shared env never changes.
        pip_overlay=True,
    )


def kernel_options(
    base: execute.ExecOptions, python: Path, course_site: Path | None
) -> execute.ExecOptions:
    """Options for one env's kernels: its bin first on PATH, so `!python` and `!pip` in a
    notebook mean the env's own, as they would for a student; the course's installed
    package (course-code = "install") on the path."""
    prefix = python.parent.parent
    kernel_env = {
        **base.kernel_env,
        "VIRTUAL_ENV": str(prefix),
        "PATH": os.pathsep.join([str(prefix / "bin"), os.environ.get("PATH", "")]),
    }
    extra = (course_site,) if course_site is not None else ()
    return replace(base, kernel_env=kernel_env, python_path=(*extra, *base.python_path))


def compare_options(config: Config) -> compare.CompareOptions:
    return compare.CompareOptions(
        tolerance=Tolerance(config.tolerance, config.abs_tolerance),
        replacements=config.replace,
        image_threshold=config.image_threshold,
        library_warnings=config.library_warnings,
    )


def build_options(config: Config) -> envs.BuildOptions:
    sources = envs.Sources(
        config.find_links, config.index_url, config.extra_index_url, config.no_index
    )
    return envs.BuildOptions(config.resolver, sources, config.cache_dir, config.conda_solver)


def notebook_parameters(config: Config, notebook: str) -> dict[str, object]:
    """The papermill parameters `notebook` (course-relative) runs with in every env: each rule
    whose glob matches it, a later rule for the same name winning."""
    return {name: value for pattern, name, value in config.parameters if names(pattern, notebook)}


def names(pattern: str, notebook: str) -> bool:
    """Whether a parameters glob names `notebook`: a glob with a "/" is a course-relative
    path, one without it a file name anywhere in the course (as .gitignore reads them)."""
    if "/" in pattern.strip("/"):
        return discover.glob_matches(pattern.lstrip("/"), notebook)
    return discover.glob_matches(pattern.strip("/"), notebook.rpartition("/")[2])
