"""Fast tier: normalizers stay linear in the output size. A notebook that prints one huge
line (hostile or just careless) must not stall the audit: quadratic patterns took 52 s on an
80 k line and 493 s on a 200 k one. The bound here is ten times what a linear pass needs, so
it fails on a quadratic pattern, not on a busy machine (benchmarks/normalizers.py measures)."""

from __future__ import annotations

import time

import pytest

from nbguard.compare.normalize import NORMALIZERS

SIZE = 200_000


@pytest.mark.parametrize(
    "line",
    [
        "a" * SIZE,
        "0x" + "1" * SIZE,
        " ".join(["1.5s"] * (SIZE // 5)),
        "1.5 ms ± 2 " * (SIZE // 11),
        "1 loops, best of 3: " * (SIZE // 20),
        "a" * (SIZE // 2) + "\rb" * (SIZE // 4),
        "/tmp/ipykernel_" * (SIZE // 15),
    ],
    ids=["letters", "long-number", "durations", "timeit", "old-timeit", "redraws", "paths"],
)
def test_a_huge_line_is_normalized_in_linear_time(line: str) -> None:
    started = time.perf_counter()
    for normalizer in NORMALIZERS:
        normalizer(line)

    assert time.perf_counter() - started < 2.0


def test_redraws_still_show_what_a_terminal_shows() -> None:
    redraw = next(n for n in NORMALIZERS if n.name == "carriage-returns")

    assert redraw("progress 10%\rprogress 100%\rdone") == "doneress 100%"
    assert redraw("abc\rX") == "Xbc"
