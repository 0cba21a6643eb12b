"""Fast tier: the design's boundaries, checked on the source: each foreign library is
imported only in the room that owns it, and `model` imports nothing of nbguard."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "nbguard"

# Library → the modules (or packages, ending in /) that may import it.
OWNERS = {
    "nbclient": ("execute/",),
    "nbformat": ("execute/",),
    "jupyter_client": ("execute/",),
    "papermill": ("execute/",),
    "rich": ("cli.py", "report/terminal.py"),
    "subprocess": ("proc.py",),
    "uv": ("envs/",),
    "piptools": ("envs/",),
    "PIL": ("compare/images.py",),
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_a_library_is_imported_only_where_it_belongs(library: str) -> None:
    importers = [
        path.relative_to(PACKAGE).as_posix() for path in _modules() if library in _imports(path)
    ]
    strays = [m for m in importers if not any(m.startswith(owner) for owner in OWNERS[library])]

    assert strays == [], f"{library} imported outside {OWNERS[library]}"


def test_the_model_depends_on_nothing_of_nbguard() -> None:
    assert "nbguard" not in _imports(PACKAGE / "model.py")


def test_the_kernel_side_capture_imports_nothing_of_nbguard() -> None:
    # It runs inside the target env, which has ipykernel but never nbguard.
    assert "nbguard" not in _imports(PACKAGE / "execute" / "_kernel_capture.py")
