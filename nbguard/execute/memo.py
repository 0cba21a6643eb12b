"""The execution cache: a notebook's run in an env, reused while its code cells, the env, the
run's settings and the course files it read are what they were; bounded (least recently used
out first), safe under concurrent nbguard processes.

A run is stored under a key of what is known before it starts (the notebook's path and code
cells, the env's name and fingerprint, the execution settings, nbguard's version), together
with what only the run itself tells: the course files it opened and the folders it listed
(recorded in the kernel, execute/_kernel_capture.py), each with a digest of its contents.
It is reused only while every one of those digests still holds, so a data file that changed
or vanished, or a new file in a folder the notebook listed, means a real execution again.
Outputs and metadata saved in the notebook are not part of the key: re-saving a notebook
does not invalidate its runs. What the notebook's C libraries open (HDF5), what it only
tests for existence, and what it fetches from the network are not seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import hashlib
import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from nbguard import __version__
from nbguard.envs.cache import file_lock
from nbguard.execute.options import ExecOptions
from nbguard.model import (
    CellError,
    CellResult,
    EnvInfo,
    Notebook,
    NotebookRun,
    Output,
    Tolerance,
    Touched,
    WarningRecord,
)

# Bump when what a stored run holds, or what its key covers, changes.
FORMAT = "nbguard-run/2"
# Options that shape where and when a run happens, not what it prints.
_NOT_SETTINGS = frozenset({"home_cache", "ahead"})
# Runs worth keeping: the notebook's own answer. A timeout or a dead kernel may be the
# machine's (load, memory), an env-failed or internal-error run nbguard's: executed again.
_REUSABLE = frozenset({"ok", "error"})
# What a course file's digest is keyed on in this process: (size, mtime, inode) unchanged
# means the bytes read before are still the bytes (a course file is hashed once per run).
_Stat = tuple[int, int, int]


class Memo:
    """The execution cache of one audit: `CACHE/runs/<key>.json`, one run per file.

    `reuse` False (--no-cache) executes every notebook but still stores the fresh runs.
    `limit`: bytes all stored runs may take (None: no limit); the least recently used go
    first. Safe to share between worker threads, and between processes using one cache.
    """

    def __init__(
        self,
        root: Path,
        course: Path,
        options: ExecOptions,
        *,
        course_code: str = "path",
        limit: int | None = None,
        reuse: bool = True,
    ) -> None:
        self.root = root
        self.course = course.resolve()
        self.options = options
        self.course_code = course_code
        self.limit = limit
        self.reuse = reuse
        self._digests: dict[Path, tuple[_Stat, str]] = {}
        self._codes: dict[tuple[str, str], str | None] = {}
        self._settings: str | None = None
        self._lock = threading.Lock()
        # What the stored runs take, as the last trim counted them plus what this process
        # stored since; None until the first trim counts.
        self._size: int | None = None

    # -- the key ---------------------------------------------------------------------------

    def key(
        self,
        notebook: Notebook,
        env: EnvInfo,
        parameters: Mapping[str, object] | None = None,
        *,
        again: bool = False,
    ) -> str | None:
        """The key of `notebook`'s run in `env` with these papermill `parameters` (`again`:
        of its second run, kept apart from the first since only two real executions tell
        volatile outputs); None when it cannot be cached (an env without a fingerprint, a
        notebook that cannot be read)."""
        code = self._code(notebook)
        if code is None or env.fingerprint is None:
            return None
        inputs = [FORMAT, _executor(), notebook.path, code, env.name, env.fingerprint]
        inputs.append(self._settings_text())
        inputs.append(json.dumps(dict(parameters or {}), sort_keys=True, default=str))
        if again:
            inputs.append("again")
        return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:32]

    def _code(self, notebook: Notebook) -> str | None:
        known = (notebook.path, notebook.sha256)
        with self._lock:
            if known in self._codes:
                return self._codes[known]
        code = code_digest(self.course / notebook.path)
        with self._lock:
            self._codes[known] = code
        return code

    def _settings_text(self) -> str:
        """The execution settings as they affect a run: paths inside the course relative to
        it (a checkout elsewhere reuses the runs), and with course-code = "install" the
        course's package sources, since every kernel imports the package built from them."""
        if self._settings is None:
            shown: dict[str, Any] = {}
            for field in dataclasses.fields(ExecOptions):
                if field.name in _NOT_SETTINGS:
                    continue
                value = getattr(self.options, field.name)
                if field.name in ("python_path", "readable"):
                    value = [self._relative(Path(path)) for path in value]
                elif isinstance(value, Mapping):
                    value = dict(sorted(value.items()))
                shown[field.name] = value
            shown["course_code"] = self.course_code
            if self.course_code == "install":
                shown["course_package"] = _package_digest(self.course, self.options.copy_ignore)
            self._settings = json.dumps(shown, sort_keys=True, default=str)
        return self._settings

    def _relative(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.course).as_posix()
        except ValueError:
            return str(path)

    # -- reading and writing ---------------------------------------------------------------

    def get(self, key: str, notebook: Notebook, env: EnvInfo) -> NotebookRun | None:
        """The stored run for `key` if every course file it read is as it was; None to
        execute (nothing stored, something changed, a damaged entry, or --no-cache)."""
        if not self.reuse:
            return None
        path = self._entry(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data["format"] != FORMAT or data["key"] != key:
                return None
            if any(self.digest(entry) != digest for entry, digest in data["deps"].items()):
                return None
            run = decode_run(data["run"])
        except (OSError, ValueError, LookupError, TypeError, AttributeError):
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: the last to go when the cache is trimmed
        return dataclasses.replace(run, notebook=notebook.path, env=env.name, cached=True)

    def expected(self, key: str) -> float | None:
        """How long the run stored under `key` took (whether or not it may be reused now:
        the order runs start in needs only an estimate); None when none is stored."""
        try:
            data = json.loads(self._entry(key).read_text(encoding="utf-8"))
            return float(data["run"]["duration_s"])
        except (OSError, ValueError, LookupError, TypeError):
            return None

    def put(self, key: str, run: NotebookRun) -> None:
        """Store `run` under `key` with the digests of what it read; a run whose reads were
        not recorded, or whose outcome may be the machine's, is not stored. Never raises
        for a full or read-only disk: the cache is an optimization."""
        if run.reads is None or run.status not in _REUSABLE or run.cached:
            return
        deps = {entry: self.digest(entry) for entry in run.reads}
        text = json.dumps({"format": FORMAT, "key": key, "deps": deps, "run": encode_run(run)})
        with contextlib.suppress(OSError):
            _write_atomically(self._entry(key), text)
            with self._lock:
                if self._size is not None:
                    self._size += len(text.encode())
            self._trim()

    def digest(self, entry: str) -> str | None:
        """What a course path the notebook read holds now: a file's sha256, a listed
        folder's names (those the scratch copy gets), "other" for anything else; None when
        it does not exist."""
        path = self.course / entry.rstrip("/")
        try:
            info = path.stat()
        except OSError:
            return None
        if entry.endswith("/"):
            if not stat.S_ISDIR(info.st_mode):
                return "not-a-folder"
            names = sorted(
                item.name
                for item in path.iterdir()
                if not any(fnmatch.fnmatch(item.name, p) for p in self.options.copy_ignore)
            )
            return "names:" + hashlib.sha256("\0".join(names).encode()).hexdigest()
        if not stat.S_ISREG(info.st_mode):
            return "other"
        seen: _Stat = (info.st_size, info.st_mtime_ns, info.st_ino)
        with self._lock:
            known = self._digests.get(path)
        if known is not None and known[0] == seen:
            return known[1]
        digest = "sha256:" + file_sha256(path)
        with self._lock:
            self._digests[path] = (seen, digest)
        return digest

    def _entry(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def _trim(self) -> None:
        """The least recently used runs removed until the rest fit in `limit`; under a lock,
        so two processes trimming at once do not both remove. The folder is counted once,
        then only when what this process stored since may have filled it: a cache of
        100,000 runs is not walked after every run. (Another process's runs are counted at
        the next walk, so the cache may pass `limit` by what two audits store meanwhile.)"""
        if self.limit is None:
            return
        with self._lock:
            if self._size is not None and self._size <= self.limit:
                return
        with file_lock(self.root / ".lock"):
            entries = []
            for item in _scan(self.root):
                with contextlib.suppress(OSError):
                    info = item.stat()
                    entries.append((info.st_mtime_ns, info.st_size, Path(item.path)))
            total = sum(size for _, size, _ in entries)
            for _, size, path in sorted(entries):
                if total <= self.limit:
                    break
                path.unlink(missing_ok=True)
                total -= size
        with self._lock:
            self._size = total


@functools.cache
def _executor() -> str:
    """nbguard's version and the code that makes a run (this package, the kernel's capture
    included): a changed executor, even in a checkout between releases, runs afresh."""
    digest = hashlib.sha256(__version__.encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def code_digest(path: Path) -> str | None:
    """What a notebook asks a kernel to do: its cells' kinds and order, the code cells'
    sources, and the metadata that changes how a cell runs or is judged (tags, nbguard's
    tolerance); not outputs, execution counts, or other metadata. None when unreadable."""
    try:
        cells = _cells_v4(path)
    except (OSError, ValueError, LookupError, TypeError, AttributeError):
        cells = None
    if cells is None:
        cells = _cells_converted(path)
    if cells is None:
        return None
    text = json.dumps(cells, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _cells_v4(path: Path) -> list[list[Any]] | None:
    """code_digest's cells read as plain JSON, the way nbformat reads a v4 file (a source
    given as a list of lines is joined); None for another format. Reading without nbformat
    keeps a run served from the cache from importing it."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    if nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        return None
    cells = []
    for cell in nb["cells"]:
        kind = cell.get("cell_type", "raw")
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        metadata = cell.get("metadata", {})
        cells.append(
            [
                kind,
                source if kind == "code" else "",
                metadata.get("tags", []),
                metadata.get("nbguard"),
            ]
        )
    return cells


def _cells_converted(path: Path) -> list[list[Any]] | None:
    """code_digest's cells of a notebook in an older format, converted by nbformat."""
    from nbguard.execute.reading import UNREADABLE, read_notebook

    try:
        nb = read_notebook(path)
    except UNREADABLE:
        return None
    return [
        [
            cell.cell_type,
            cell.source if cell.cell_type == "code" else "",
            cell.metadata.get("tags", []),
            cell.metadata.get("nbguard"),
        ]
        for cell in nb.cells
    ]


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What the kernel's record of a run (JSON lines of [kind, value], execute/
    _kernel_capture.py) says it depended on."""

    # The course paths it read: files ("f") and listed folders ("d", given a trailing "/")
    # inside the scratch copy or the course itself, course-relative; a module's bytecode
    # stands for its source. None when there is no whole record (the kernel never started
    # it, it overflowed, or a line is damaged): then the run is never reused.
    reads: tuple[str, ...] | None
    # The installed modules' source files it imported (["m", path below site-packages]);
    # only relative, normalized `.py` paths: a notebook can put anything in sys.modules.
    imports: tuple[str, ...]
    # What of the env it used (execute/alike.py); None without a whole record.
    touched: Touched | None


# The record's lines about the env: modules imported, site-packages entries used, names
# looked up, env files read, a process started, site-packages listed whole.
_ENV_KINDS = frozenset({"m", "s", "n", "e", "x", "a"})
_RECORD_KINDS = _ENV_KINDS | {"f", "d"}  # and the course files read, folders listed


def read_record(record: Path, scratch: Path, course: Path) -> RunRecord:
    """The kernel's record at `record`, read once for everything a run keeps of it."""
    try:
        lines = record.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return RunRecord(None, (), None)
    reads: set[str] | None = set()
    imports: set[str] = set()
    used: dict[str, set[str]] = {"s": set(), "n": set(), "e": set()}
    anything: str | None = None
    for line in lines:
        try:
            kind, value = json.loads(line)
        except (ValueError, TypeError):
            reads = None  # a damaged record: what the run depends on is unknown
            continue
        if kind not in _RECORD_KINDS:
            reads = None  # "overflow", or a line no kernel of this nbguard writes
        elif kind in ("f", "d"):
            relative = _inside(str(value), (scratch, course))
            if reads is not None and relative is not None:
                reads.add(f"{relative}/" if kind == "d" else _source_of(relative))
        elif not isinstance(value, str):
            continue  # the env's side of the record: a notebook can write anything there
        elif kind == "m":
            if value.endswith(".py") and _plain_name(value, nested=True):
                imports.add(PurePosixPath(value).as_posix())
        elif kind == "x":
            anything = anything or f"it started a process ({value})"
        elif kind == "a" and value == "sys.meta_path":
            anything = anything or "it changed the import system's finders"
        elif kind == "a":
            anything = anything or "it listed the installed distributions"
        elif _plain_name(value, nested=kind == "e"):
            used[kind].add(value)
    touched = (
        None
        if reads is None
        else Touched(
            entries=tuple(sorted(used["s"])),
            names=tuple(sorted(used["n"])),
            env_files=tuple(sorted(used["e"])),
            anything=anything,
        )
    )
    kept = None if reads is None else tuple(sorted(reads))
    return RunRecord(kept, tuple(sorted(imports)), touched)


def _plain_name(value: str, *, nested: bool) -> bool:
    """A top-level entry or module name (or, `nested`, a relative path) that names nothing
    outside the env it is looked up in."""
    parts = value.split("/")
    if not value or "\0" in value or value.startswith("/") or ".." in parts or "" in parts:
        return False
    return nested or len(parts) == 1


def _inside(path: str, roots: tuple[Path, ...]) -> str | None:
    path = os.path.normpath(path)  # "course/../../etc" is not inside the course
    for root in roots:
        with contextlib.suppress(ValueError):
            return PurePosixPath(path).relative_to(root.as_posix()).as_posix()
    return None


def _source_of(relative: str) -> str:
    """`pkg/__pycache__/mod.cpython-312.pyc` → `pkg/mod.py`: the module it was compiled from."""
    path = PurePosixPath(relative)
    if path.parent.name != "__pycache__" or path.suffix != ".pyc":
        return relative
    return (path.parent.parent / f"{path.name.split('.')[0]}.py").as_posix()


def _package_digest(course: Path, ignore: tuple[str, ...]) -> str:
    """The course's own package as course-code = "install" builds it: its Python sources and
    packaging files (data and notebooks left out)."""
    suffixes = {".py", ".pyx", ".pxd", ".c", ".h", ".cfg", ".toml", ".in", ".txt"}
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(course):
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in ignore))
        for name in sorted(files):
            if Path(name).suffix in suffixes:
                path = Path(root) / name
                with contextlib.suppress(OSError):
                    digest.update(path.relative_to(course).as_posix().encode() + b"\0")
                    digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """A file's sha256, hex, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _scan(root: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(root) as entries:
            yield from (e for e in entries if e.name.endswith(".json") and e.is_file())
    except FileNotFoundError:
        return


def _write_atomically(path: Path, text: str) -> None:
    """A reader (another nbguard) sees the old entry or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".run-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- a run as JSON and back ----------------------------------------------------------------


def encode_run(run: NotebookRun) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data.pop("internal")  # never stored: an internal-error run is executed again
    data.pop("cached")
    data.pop("reused_from")  # stored under this env's key, it is this env's run
    return data


def decode_run(data: Mapping[str, Any]) -> NotebookRun:
    """A run as encode_run wrote it; raises (KeyError, TypeError, ValueError) for a damaged
    one, which the caller treats as absent."""

    def error(item: Mapping[str, Any]) -> CellError:
        return CellError(
            int(item["cell"]), str(item["ename"]), str(item["evalue"]), tuple(item["traceback"])
        )

    def tolerance(item: Mapping[str, Any] | None) -> Tolerance | None:
        return None if item is None else Tolerance(float(item["rel"]), float(item["abs"]))

    cells = tuple(
        CellResult(
            index=int(cell["index"]),
            status=cell["status"],
            source=str(cell["source"]),
            outputs=tuple(Output(str(o["kind"]), dict(o["data"])) for o in cell["outputs"]),
            allowed_error=bool(cell["allowed_error"]),
            ignore_output=bool(cell["ignore_output"]),
            tolerance=tolerance(cell["tolerance"]),
        )
        for cell in data["cells"]
    )
    reads = data["reads"]
    touched = data["touched"]
    return NotebookRun(
        notebook=str(data["notebook"]),
        env=str(data["env"]),
        status=data["status"],
        duration_s=float(data["duration_s"]),
        cells=cells,
        error=None if data["error"] is None else error(data["error"]),
        warnings=tuple(
            WarningRecord(int(w["cell"]), str(w["category"]), str(w["message"]), w["package"])
            for w in data["warnings"]
        ),
        reason=data["reason"],
        later_errors=tuple(error(item) for item in data["later_errors"]),
        volatile_paths=tuple((str(a), str(b)) for a, b in data["volatile_paths"]),
        isolation=str(data["isolation"]),
        reads=None if reads is None else tuple(str(r) for r in reads),
        imports=tuple(str(path) for path in data.get("imports", ())),
        touched=None
        if touched is None
        else Touched(
            entries=tuple(str(entry) for entry in touched["entries"]),
            names=tuple(str(name) for name in touched["names"]),
            env_files=tuple(str(path) for path in touched["env_files"]),
            anything=None if touched["anything"] is None else str(touched["anything"]),
        ),
    )
