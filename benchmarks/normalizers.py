"""Seconds each normalizer takes on one-megabyte lines built to trip quadratic patterns.

    python benchmarks/normalizers.py

The bar (issue 11): every normalizer linear in the output size, a 1 MB line under a second.
"""

from __future__ import annotations

import time

from nbguard.compare.normalize import NORMALIZERS

SIZE = 1_000_000
LINES = {
    "letters": "a" * SIZE,
    "one long number": "0x" + "1" * SIZE,
    "durations": " ".join(["1.5s"] * (SIZE // 5)),
    "timeit-like": "1.5 ms ± 2 " * (SIZE // 11),
    "old timeit": "1 loops, best of 3: " * (SIZE // 20),
    "carriage returns": "a" * (SIZE // 2) + "\rb" * (SIZE // 4),
    "ipykernel paths": "/tmp/ipykernel_" * (SIZE // 15),
    "timestamps": "2026-11-22 19:03:0" * (SIZE // 18),
    "addresses": "at 0x" * (SIZE // 5),
    "progress bars": "[00:01<" * (SIZE // 7),
}


def main() -> None:
    worst = 0.0
    for name, line in LINES.items():
        timings = []
        for normalizer in NORMALIZERS:
            started = time.perf_counter()
            normalizer(line)
            timings.append((time.perf_counter() - started, normalizer.name))
        slowest, which = max(timings)
        worst = max(worst, slowest)
        print(
            f"{name:18s} all {sum(t for t, _ in timings):6.3f} s   slowest {which} {slowest:.3f} s"
        )
    print(f"worst single normalizer on a 1 MB line: {worst:.3f} s (bar: under 1 s)")


if __name__ == "__main__":
    main()
