"""What a venv has installed, as its installer recorded it: the site-packages folder, and
each distribution's RECORD (every file it put there, with the file's hash). Read by blame
(which distribution a module belongs to) and by the execution cache (whether two envs hold
the same files, execute/alike.py)."""

from __future__ import annotations

from pathlib import Path

# One distribution's record: its .dist-info folder's name and (path below site-packages,
# hash) for each file it lists; the hash is "" for the files a RECORD lists without one
# (the RECORD itself, bytecode).
Record = tuple[str, tuple[tuple[str, str], ...]]


def site_packages(prefix: Path) -> Path | None:
    """The site-packages folder of the venv at `prefix`; None when it has none, or several."""
    found = sorted((prefix / "lib").glob("python*/site-packages"))
    return found[0] if len(found) == 1 else None


def records(prefix: Path) -> tuple[Record, ...]:
    """The RECORD of every distribution installed in the venv at `prefix`, by folder name.
    An unreadable RECORD is left out, as if its distribution had none."""
    found = []
    for record in sorted(prefix.glob("lib/python*/site-packages/*.dist-info/RECORD")):
        try:
            lines = record.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        files = []
        for line in lines:
            path, _, rest = line.partition(",")
            if path:
                files.append((path, rest.partition(",")[0]))
        found.append((record.parent.name, tuple(files)))
    return tuple(found)
