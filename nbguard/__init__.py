"""nbguard: run a course's notebooks in the locked and the upcoming environment and compare."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
