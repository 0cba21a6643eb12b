"""Courses for the tests: the demo course's place, tiny courses built in a folder, snapshots."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
DEMO_COURSE = FIXTURES / "demo-course"


def make_course(root: Path, notebooks: dict[str, list[str]], wheels: Path) -> Path:
    """A small course pinned to the demo library, one notebook per entry (code cells)."""
    course = root / "course"
    course.mkdir()
    (course / "requirements.txt").write_text("nbguard-demo-wobble==1.0\n")
    (course / "requirements.in").write_text("nbguard-demo-wobble\n")
    (course / "nbguard.toml").write_text(f'find-links = ["{wheels}"]\n')
    for name, cells in notebooks.items():
        nb = new_notebook(cells=[new_markdown_cell(f"# {name}"), *map(new_code_cell, cells)])
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "language": "python",
            "display_name": "Python 3",
        }
        path = course / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
    return course


def snapshot(tree: Path) -> dict[str, str]:
    """Relative path → sha256 of every file (and every directory, as "dir")."""
    found: dict[str, str] = {}
    for path in sorted(tree.rglob("*")):
        key = path.relative_to(tree).as_posix()
        found[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found
