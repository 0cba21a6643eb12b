"""Bytecode for the modules a notebook imports, written into a probe env by nbguard (not a
kernel) with the env's interpreter; compiled code shared between envs by source content."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from nbguard import installed, proc

# Below this many modules one process compiles them: starting another costs more.
_PART = 200
# What this process compiled into each env (its site-packages, resolved), and what a thread
# is compiling there now (set when it is done).
_COMPILED: dict[str, set[str]] = {}
_PENDING: dict[str, dict[str, threading.Event]] = {}
_GUARD = threading.Lock()

# Probe envs install no bytecode (compiling a whole scientific stack costs ~20 s an env), and
# their kernels cannot write any: the env is read-only in the sandbox, and
# PYTHONDONTWRITEBYTECODE is common. Every probe run would then compile each module it imports
# (`import numpy, pandas, scipy.stats, matplotlib.pyplot`: 5 s of CPU instead of 1.2 s).
# Compiling exactly the modules the notebook imported in the audit's runs, once per env, and
# each distinct source file once per Python (the store), costs far less.
#
# Run by the env's interpreter with -I -S: no site, so no code of the env (a .pth file) runs,
# and no PYTHON* variable (PYTHONPYCACHEPREFIX) sends the bytecode outside the env. What it
# reads from the request is the kernel's record, so each path is checked: relative, `.py`,
# and its folder inside the env's site-packages once symlinks are resolved.
_COMPILE = r"""
import hashlib, importlib.util, json, marshal, os, stat, sys

request = json.load(open(sys.argv[1], encoding="utf-8"))
site = os.path.realpath(request["site"])
magic = importlib.util.MAGIC_NUMBER
store = os.path.join(request["store"], magic.hex())
# The store keeps each source's bytecode once per Python as an unchecked hash-based .pyc
# (PEP 552), valid for that source in any env whatever its mtime: an env gets a hard link
# to it, one syscall, where a copy took a dozen (a probe env takes a thousand modules, most
# of them the same in every probe env). A probe env's files never change (its kernels see
# it read-only, and the env cache checks it against its manifest before reuse), so the
# import system need not check the source either. Folders are checked and made once, and
# files read with os.read (no buffering, no isatty).
UNCHECKED = (1).to_bytes(4, "little")
inside = {}
made = set()


def slurp(path, size=-1, whole=True):
    # The file's bytes (`size`, when known, reads it in one call, then sees its end); with
    # whole=False only the first `size`.
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, size + 1 if size >= 0 else 65536)
            if not chunk or not whole:
                return b"".join(chunks) + chunk
            chunks.append(chunk)
    finally:
        os.close(fd)


def within(folder):
    # Whether `folder` lies in the env's site-packages once symlinks are resolved (one that
    # does not exist yet is made below the nearest one that does); asked once per folder.
    known = inside.get(folder)
    if known is None:
        real = os.path.realpath(folder)
        known = inside[folder] = real == site or real.startswith(site + os.sep)
    return known


def folder_of(path):
    folder = os.path.dirname(path)
    if folder not in made:
        os.makedirs(folder, exist_ok=True)
        made.add(folder)
    return folder


def write(path, data):
    folder_of(path)
    temporary = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temporary, path)  # a reader sees no file or the whole one, never half


def link(kept, path):
    folder_of(path)
    try:
        os.link(kept, path)
    except FileNotFoundError:
        raise  # not in the store yet: the caller puts it there
    except OSError:
        # A stale .pyc in the way, or a store on another file system: replaced whole (as
        # write() does), by a link where one can be made, else by a copy.
        temporary = "%s.%d.tmp" % (path, os.getpid())
        try:
            os.link(kept, temporary)
        except OSError:
            write(path, slurp(kept))
            return
        os.replace(temporary, path)


def uint32(value):
    return (int(value) & 0xFFFFFFFF).to_bytes(4, "little")


def fresh_for(cached, info, data):
    # Whether `cached` is a .pyc the import system takes for this source: timestamp-based
    # (magic, flags 0, source mtime and size) or hash-based (flags 1 or 3, source hash).
    try:
        head = slurp(cached, 16, whole=False)[:16]
    except OSError:
        return False
    if head[:4] != magic:
        return False
    if head[4:8] == uint32(0):
        return head[8:] == uint32(info.st_mtime) + uint32(info.st_size)
    return head[4:8] in (uint32(1), uint32(3)) and head[8:] == importlib.util.source_hash(data)


def lent(parts, data):
    # The code of the same source in an env of this Python that uv compiled at install, as
    # valid there as its kernels find it.
    for root in request["donors"]:
        source = os.path.join(root, *parts)
        try:
            there = os.stat(source)
            if there.st_size != len(data):
                continue
            code = slurp(importlib.util.cache_from_source(source))
            stamp = magic + uint32(0) + uint32(there.st_mtime) + uint32(there.st_size)
            if code[:16] != stamp or slurp(source, there.st_size) != data:
                continue
            return code[16:]
        except OSError:
            continue
    return None


compiled = reused = given = fresh = 0
for relative in request["files"]:
    parts = relative.split("/")
    if not relative.endswith(".py") or relative.startswith("/") or ".." in parts:
        continue
    source = os.path.join(site, *parts)
    if not within(os.path.dirname(source)):
        continue
    try:
        info = os.stat(source)
        if not stat.S_ISREG(info.st_mode):
            continue
        data = slurp(source, info.st_size)
        cached = importlib.util.cache_from_source(source)
        if not within(os.path.dirname(cached)):  # a __pycache__ that leads out of the env
            continue
        if fresh_for(cached, info, data):
            fresh += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        kept = os.path.join(store, digest[:2], digest)
        try:
            link(kept, cached)
            reused += 1
            continue
        except FileNotFoundError:  # not in the store yet
            pass
        body = lent(parts, data)
        if body is not None:
            given += 1
        else:
            # As importlib compiles a source; the file name in the code is set to where it
            # is imported from when it is loaded, so the code fits every env.
            body = marshal.dumps(compile(data, source, "exec", dont_inherit=True))
            compiled += 1
        write(kept, magic + UNCHECKED + importlib.util.source_hash(data) + body)
        link(kept, cached)
    except (OSError, SyntaxError, ValueError):
        continue  # left to the kernel, which compiles it (or reports it) as it would anyway
print(json.dumps({"compiled": compiled, "reused": reused, "given": given, "fresh": fresh}))
"""


def site_packages(python: Path) -> Path | None:
    """The site-packages folder of the venv `python` belongs to; None when it has none."""
    return installed.site_packages(python.parent.parent)


def compile_imports(
    python: Path, files: Iterable[str], store: Path, donors: Sequence[Path] = ()
) -> str:
    """Write the bytecode of `files` (paths below site-packages; those the env lacks are left
    out) into the venv of `python`, as the kernel would if it could; compiled code is taken
    from, and added to, `store` (per Python, by source content), or taken from the bytecode
    of the same source in the venvs of `donors` (interpreters of envs compiled at install,
    the audit's; one of another Python gives nothing).

    The blames sharing a probe env each compile what no other has compiled or is compiling,
    then wait only for the modules they need that another is still compiling: a notebook
    importing numpy does not wait while another's scikit-learn compiles. Returns what it did
    in words."""
    site = site_packages(python)
    if site is None:
        return "nothing to compile"
    env = os.path.realpath(site)
    asked = {path for path in files if _plausible(path)}
    claim = threading.Event()
    with _GUARD:
        compiled = _COMPILED.setdefault(env, set())
        pending = _PENDING.setdefault(env, {})
        wanted = asked - compiled
        theirs = {pending[path] for path in wanted if path in pending}
        mine = sorted(path for path in wanted if path not in pending)
        for path in mine:
            pending[path] = claim
    runs: list[proc.Completed] = []
    problem = None
    try:
        if mine:
            runs = _compile(python, site, mine, store, donors)
    except OSError as exc:  # the store cannot be written: the kernel compiles, as before
        problem = f"not compiled: {exc}"
    finally:
        with _GUARD:
            if problem is None and all(done.ok for done in runs):
                compiled.update(mine)
            for path in mine:
                pending.pop(path, None)
        claim.set()
    for other in theirs:
        other.wait()
    if problem is not None:
        return problem
    if not mine:
        return "nothing left to compile"
    counts: Counter[str] = Counter()
    for done in runs:
        if not done.ok:
            return f"not compiled: {done.last_lines(1)}"
        try:
            counts.update(json.loads(done.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError, TypeError):
            return "compiled"
    return (
        f"{counts['compiled']} modules compiled, {counts['reused']} from the bytecode store, "
        f"{counts['given']} from the audit's envs, {counts['fresh']} already fresh"
    )


def _compile(
    python: Path, site: Path, files: list[str], store: Path, donors: Sequence[Path]
) -> list[proc.Completed]:
    store.mkdir(parents=True, exist_ok=True)
    sites = [str(found) for found in map(site_packages, donors) if found is not None]

    def run(part: list[str]) -> proc.Completed:
        asked = {"site": str(site), "store": str(store), "files": part, "donors": sites}
        fd, name = tempfile.mkstemp(prefix="compile-", suffix=".json", dir=store)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as request:
                json.dump(asked, request)
            return proc.run([python, "-I", "-S", "-c", _COMPILE, name], timeout=600)
        finally:
            Path(name).unlink(missing_ok=True)

    # The first probe env (the lifted one) compiles a thousand modules while every blame
    # waits for it: on all CPUs. Interleaved parts, so each gets some of every package.
    count = max(1, min(os.cpu_count() or 1, len(files) // _PART))
    parts = [files[index::count] for index in range(count)]
    # No lock: every file is written whole or not at all (os.replace), so two compiling one
    # module (another nbguard process) cost time, never a damaged .pyc.
    if count == 1:
        return [run(files)]
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="bytecode") as pool:
        return list(pool.map(run, parts))


def _plausible(path: str) -> bool:
    pure = PurePosixPath(path)
    return path.endswith(".py") and not pure.is_absolute() and ".." not in pure.parts
