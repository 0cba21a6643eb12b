"""Fast tier: what nbguard prints cannot be steered by what a notebook printed."""

from __future__ import annotations

import pytest

from nbguard.ansi import printable, strip_ansi


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        ("reset\x1bc", "reset"),  # ESC c: full terminal reset
        ("\x1b]0;pwned\x07title", "title"),  # OSC: set the window title
        ("\x1b[2Jclear", "clear"),  # CSI: clear the screen
        ("\x1b[31mred\x1b[0m", "red"),
        ("bell\x07", "bell\\x07"),
        ("back\x08\x08space", "back\\x08\\x08space"),
        ("car\rriage", "car\\x0driage"),
        ("c1\x9bcontrol", "c1\\x9bcontrol"),
        ("abc\u202edcba", "abc\\x202edcba"),
    ],
)
def test_printable_removes_escapes_and_shows_other_controls(hostile: str, shown: str) -> None:
    assert printable(hostile) == shown


def test_printable_keeps_text_newlines_tabs_and_unicode() -> None:
    text = "Line 1\n\tµ = 3.0 ± 0.1 → ok ✓"
    assert printable(text) == text
    assert strip_ansi(text) == text
