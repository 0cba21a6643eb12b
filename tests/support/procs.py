"""Counting live kernel processes through Linux /proc, for the no-orphans assertions."""

from __future__ import annotations

import os
from pathlib import Path


def live_kernels(*, parent: int | None = None, marker: str | None = None) -> set[int]:
    """PIDs of this user's live (not zombie) ipykernel processes; only children of `parent`
    and only those whose command line mentions `marker`, when given. Empty without /proc."""
    found: set[int] = set()
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        state, ppid = fields[0], int(fields[1])
        if state == "Z" or b"ipykernel" not in cmdline:
            continue
        if parent is not None and ppid != parent:
            continue
        if marker is not None and marker.encode() not in cmdline:
            continue
        found.add(int(entry.name))
    return found


def kernel_children() -> list[int]:
    """Kernel processes this test process started that are still alive (Linux /proc)."""
    return sorted(live_kernels(parent=os.getpid()))
