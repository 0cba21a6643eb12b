"""Fast tier: how a course marks outputs as volatile — the nbguard-volatile tag, cell metadata
and notebook metadata — as the executor and discovery read them."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import v4

from nbguard.discover import read_notebook
from nbguard.execute.tags import cell_flags


def test_the_tag_and_the_cell_metadata_mark_a_cell_volatile() -> None:
    tagged = v4.new_code_cell("print(random.random())", metadata={"tags": ["nbguard-volatile"]})
    by_metadata = v4.new_code_cell("t", metadata={"nbguard": {"volatile": True}})
    plain = v4.new_code_cell("print(1)", metadata={"tags": ["nbguard-ignore-output"]})

    assert cell_flags(tagged).volatile
    assert cell_flags(by_metadata).volatile
    assert not cell_flags(plain).volatile


def test_notebook_metadata_marks_every_cell_volatile(tmp_path: Path) -> None:
    for name, metadata in [
        ("noisy.ipynb", {"volatile": True}),
        ("calm.ipynb", {"volatile": "yes"}),
    ]:
        nb = v4.new_notebook(cells=[v4.new_code_cell("x")])
        nb.metadata["nbguard"] = metadata
        nbformat.write(nb, tmp_path / name)

    assert read_notebook(tmp_path, "noisy.ipynb").volatile
    # Only true means true: a hand-edited "yes" is not taken as a promise.
    assert not read_notebook(tmp_path, "calm.ipynb").volatile
