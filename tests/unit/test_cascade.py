"""Fast tier: which later errors of a keep-going run only follow from an earlier failed cell."""

from __future__ import annotations

import pytest

from nbguard.execute.cascade import Cascade
from nbguard.model import CellError


def _name_error(name: str, cell: int = 5) -> CellError:
    return CellError(cell, "NameError", f"name '{name}' is not defined")


def _after_failure(source: str, *traceback: str) -> Cascade:
    """A cascade after one cell of `source` failed (at the line its traceback marks)."""
    cascade = Cascade()
    cascade.failed(source, CellError(1, "FileNotFoundError", "data.csv", traceback))
    return cascade


def test_a_name_the_failed_cell_would_have_defined_is_a_consequence() -> None:
    cascade = _after_failure("df = read_csv('data.csv')\n")

    assert cascade.explains(_name_error("df"), "df.head()")


def test_an_error_of_its_own_is_not_a_consequence() -> None:
    cascade = _after_failure("df = read_csv('data.csv')\n")

    assert not cascade.explains(_name_error("model"), "model.fit()")
    assert not cascade.explains(CellError(5, "ZeroDivisionError", "division by zero"), "1 / 0")


def test_names_bound_before_the_failing_line_exist() -> None:
    source = "rows = 10\ndf = read_csv('data.csv')\nmean = df.mean()\n"
    cascade = _after_failure(source, "----> 2 df = read_csv('data.csv')")

    assert not cascade.explains(_name_error("rows"), "print(rows)")
    assert cascade.explains(_name_error("df"), "df")
    assert cascade.explains(_name_error("mean"), "mean")


def test_a_name_a_later_cell_defines_again_is_the_later_cells_own_error() -> None:
    cascade = _after_failure("df = read_csv('data.csv')\n")
    cascade.defined("df = make_frame()\n")

    assert not cascade.explains(_name_error("df"), "df.head()")


def test_an_unbound_local_about_such_a_name_is_a_consequence_too() -> None:
    cascade = _after_failure("total = compute()\n")
    error = CellError(5, "UnboundLocalError", "cannot access local variable 'total' where ...")

    assert cascade.explains(error, "def f():\n    total += 1\nf()")


def test_an_attribute_error_on_a_placeholder_the_failed_cell_left_is_a_consequence() -> None:
    cascade = _after_failure("df = None\ndf = read_csv('data.csv')\n", "----> 2 df = ...")
    error = CellError(5, "AttributeError", "'NoneType' object has no attribute 'mean'")

    assert cascade.explains(error, "df['price'].mean()")
    assert not cascade.explains(error, "other.mean()")
    assert not cascade.explains(error, "df.mode()")


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("import matplotlib.pyplot as plt", "plt"),
        ("import os.path", "os"),
        ("from math import pi as PI", "PI"),
        ("def load():\n    return 1", "load"),
        ("class Model:\n    pass", "Model"),
        ("def setup():\n    global config\n    config = {}", "config"),
        ("for row in rows:\n    pass", "row"),
        ("with open('f') as handle:\n    pass", "handle"),
        ("a, (b, c) = 1, (2, 3)", "c"),
        ("[y := 2 for _ in range(1)]", "y"),
        ("try:\n    pass\nexcept ValueError as problem:\n    pass", "problem"),
        ("match point:\n    case (x, *rest):\n        pass", "rest"),
        ("%matplotlib inline\nimport numpy as np", "np"),
        ("files = !ls data\nfirst = files[0]", "files"),
        ("timing = %timeit -o sum(range(9))", "timing"),
    ],
)
def test_every_way_a_cell_binds_a_name_counts(source: str, name: str) -> None:
    assert _after_failure(source).explains(_name_error(name), name)


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("def load():\n    frame = 1\n    return frame", "frame"),  # a function's local
        ("squares = [k * k for k in range(3)]", "k"),  # a comprehension's variable
        ("f = lambda z: z", "z"),
        ("from pylab import *", "plot"),  # unknown without importing
        ("this is not python", "this"),
    ],
)
def test_names_a_cell_does_not_bind_at_module_level_do_not_count(source: str, name: str) -> None:
    assert not _after_failure(source).explains(_name_error(name), name)
