"""Terminal escape sequences in text a notebook printed: the one pattern, its stripper, and
what makes any text safe to print."""

from __future__ import annotations

import re

# CSI sequences (colours, cursor moves, screen clears), OSC sequences (window titles,
# hyperlinks) ended by BEL or ST, and the other escapes: ESC with optional intermediates and
# a final byte (ESC c resets the terminal, ESC 7 saves the cursor, ESC ( B picks a charset).
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -/]*[0-~]")


def strip_ansi(text: str) -> str:
    """`text` without terminal escape sequences (IPython colours its tracebacks with them)."""
    return ANSI.sub("", text)


# Control characters other than newline and tab (C0, DEL, C1), and the Unicode bidi controls
# that make a terminal show text in another order than it is ("Trojan Source").
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` safe to print on a terminal: escape sequences removed, any other control
    character shown as an escape (`\\x07`), so nothing a notebook printed can clear the
    screen, retitle the window or hide text; nbguard's own colours are added after this."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", strip_ansi(text))
