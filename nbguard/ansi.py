"""Terminal escape sequences in text a notebook printed: the one pattern and its stripper."""

from __future__ import annotations

import re

# CSI sequences (colours, cursor moves, screen clears), OSC sequences (window titles,
# hyperlinks) ended by BEL or ST, and the two-character escapes (ESC c resets the terminal).
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """`text` without terminal escape sequences (IPython colours its tracebacks with them)."""
    return ANSI.sub("", text)
