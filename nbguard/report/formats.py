"""The formats a report is written in besides JSON, each rendered from the JSON alone."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nbguard.report import github, html_page, json_report, junit, markdown

Renderer = Callable[[Mapping[str, Any]], str]
RENDERERS: dict[str, Renderer] = {
    "html": html_page.render,
    "markdown": markdown.render,
    "junit": junit.render,
}


def write(data: Mapping[str, Any], **targets: Path | None) -> list[Path]:
    """Render `data` into each named format whose target is given; the paths written."""
    written: list[Path] = []
    for name, path in targets.items():
        if path is not None:
            json_report.write_text(path, RENDERERS[name](data))
            written.append(path)
    return written


def github_annotations(data: Mapping[str, Any]) -> list[str]:
    """Annotations pointing at the notebooks by their path in the repository: a course in a
    subfolder of the checkout ($GITHUB_WORKSPACE) gets that folder as prefix."""
    prefix = ""
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if workspace and data.get("course"):
        course = Path(str(data["course"])).resolve()
        if course.is_relative_to(Path(workspace).resolve()):
            inside = course.relative_to(Path(workspace).resolve()).as_posix()
            prefix = "" if inside == "." else inside
    return github.annotations(data, prefix=prefix)
