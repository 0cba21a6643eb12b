"""Bytecode for probe envs: what the kernel's record says a run imported, what nbguard compiles
into a probe env from it (exactly those modules, nothing outside the env), and that blame does
it before each probe env's first run."""

from __future__ import annotations

import compileall
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from nbguard import pipeline, settings
from nbguard.envs import bytecode as bytecode_module
from nbguard.envs.bytecode import compile_imports
from nbguard.envs.interpreters import Interpreter
from nbguard.execute import ExecOptions
from nbguard.execute.memo import read_record
from nbguard.model import EnvInfo, Notebook, NotebookRun
from tests.support.fakes import FakeBackend, printed, raised, write_course

SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def fake_env(root: Path, modules: dict[str, str]) -> Path:
    """A venv's layout (the interpreter is this one) with `modules` (path → source) in its
    site-packages; returns its python."""
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python"
    python.symlink_to(sys.executable)
    for relative, source in modules.items():
        path = root / SITE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return python


def bytecode(root: Path, relative: str) -> Path:
    return Path(importlib.util.cache_from_source(str(root / SITE / relative)))


def everything_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


# --- what a run imported, from the kernel's record --------------------------------------


def test_the_record_names_the_env_modules_a_run_imported_apart_from_the_course_files(
    tmp_path: Path,
) -> None:
    course, scratch = tmp_path / "course", tmp_path / "scratch"
    record = tmp_path / "reads.jsonl"
    lines = [
        ["f", str(scratch / "data" / "g.csv")],
        ["m", "numpy/__init__.py"],
        ["m", "numpy/core/_methods.py"],
        ["m", "numpy/__init__.py"],
        # What a notebook can put in sys.modules is no path to write next to.
        ["m", "../../../etc/evil.py"],
        ["m", "/etc/evil.py"],
        ["m", "numpy/core/_multiarray_umath.so"],
        ["m", 42],
    ]
    record.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")

    assert read_record(record, scratch, course).imports == (
        "numpy/__init__.py",
        "numpy/core/_methods.py",
    )
    # The execution cache's view of the same record: the course file only, still a record.
    assert read_record(record, scratch, course).reads == ("data/g.csv",)


def test_a_run_without_a_record_imported_nothing_known(tmp_path: Path) -> None:
    assert read_record(tmp_path / "missing.jsonl", tmp_path, tmp_path).imports == ()


# --- compiling into a probe env -----------------------------------------------------------


def test_exactly_the_listed_modules_of_the_env_get_bytecode(tmp_path: Path) -> None:
    env = tmp_path / "env"
    python = fake_env(
        env,
        {
            "pkg/__init__.py": "",
            "pkg/used.py": "VALUE = 1\n",
            "pkg/unused.py": "VALUE = 2\n",
            "pkg/broken.py": "def (:\n",
        },
    )
    listed = ["pkg/__init__.py", "pkg/used.py", "pkg/broken.py", "pkg/absent.py"]

    done = compile_imports(python, listed, tmp_path / "store")
    again = compile_imports(python, listed, tmp_path / "store")

    assert bytecode(env, "pkg/used.py").is_file()
    assert bytecode(env, "pkg/__init__.py").is_file()
    assert not bytecode(env, "pkg/unused.py").exists()
    # A source that does not compile is left to the kernel, which reports it as it would.
    assert not bytecode(env, "pkg/broken.py").exists()
    assert done.startswith("2 modules compiled") or "from the bytecode store" in done
    assert again == "nothing left to compile"


def test_a_blame_waits_only_for_the_modules_it_needs_that_another_is_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blames sharing a probe env: one importing numpy does not wait for another's
    scikit-learn to compile, but one that also needs scikit-learn waits until it has
    bytecode (its kernel would otherwise compile it again)."""
    env = tmp_path / "env"
    python = fake_env(env, {"slow.py": "A = 1\n", "quick.py": "B = 2\n"})
    release = threading.Event()
    real = bytecode_module._compile

    def held(python: Path, site: Path, files: list[str], *rest: Any) -> Any:
        if "slow.py" in files:
            assert release.wait(10)
        return real(python, site, files, *rest)

    monkeypatch.setattr(bytecode_module, "_compile", held)
    store = tmp_path / "store"
    with ThreadPoolExecutor(max_workers=3) as pool:
        slow = pool.submit(compile_imports, python, ["slow.py"], store)
        deadline = time.monotonic() + 10
        while not bytecode_module._PENDING.get(os.path.realpath(env / SITE)):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        quick = compile_imports(python, ["quick.py"], store)
        both = pool.submit(compile_imports, python, ["slow.py", "quick.py"], store)

        assert quick.startswith("1 modules compiled")
        time.sleep(0.2)
        assert not both.done()  # it needs slow.py, which the first is still compiling
        release.set()
        assert slow.result(timeout=10).startswith("1 modules compiled")
        assert both.result(timeout=10) == "nothing left to compile"

    assert bytecode(env, "slow.py").is_file() and bytecode(env, "quick.py").is_file()


def test_a_store_that_cannot_be_written_leaves_the_compiling_to_the_kernel(tmp_path: Path) -> None:
    python = fake_env(tmp_path / "env", {"mod.py": "A = 1\n"})
    (tmp_path / "store").write_text("a file where the store would be")

    done = compile_imports(python, ["mod.py"], tmp_path / "store")

    assert done.startswith("not compiled: ")
    assert not bytecode(tmp_path / "env", "mod.py").exists()


def test_nothing_outside_the_env_is_written(tmp_path: Path) -> None:
    env, outside = tmp_path / "env", tmp_path / "outside"
    python = fake_env(env, {"pkg/__init__.py": ""})
    outside.mkdir()
    (outside / "mod.py").write_text("VALUE = 1\n", encoding="utf-8")
    (env / SITE / "linked").symlink_to(outside)  # a folder of the env that leads out of it
    # A package whose bytecode folder leads out of the env (a notebook run without the
    # sandbox can plant one; the env's manifest leaves __pycache__ out).
    (env / SITE / "planted").mkdir()
    (env / SITE / "planted" / "mod.py").write_text("VALUE = 2\n", encoding="utf-8")
    (env / SITE / "planted" / "__pycache__").symlink_to(outside)
    before = everything_under(outside)

    compile_imports(
        python,
        [
            "../../../../outside/mod.py",
            str(outside / "mod.py"),
            "linked/mod.py",
            "planted/mod.py",
            "pkg/__init__.py",
        ],
        tmp_path / "store",
    )

    assert everything_under(outside) == before
    assert bytecode(env, "pkg/__init__.py").is_file()


def test_another_env_imports_the_shared_code_from_its_own_bytecode_under_its_own_path(
    tmp_path: Path,
) -> None:
    source = "VALUE = 1\n\ndef fail():\n    raise ValueError('from here')\n"
    first, second = tmp_path / "first", tmp_path / "second"
    compile_imports(fake_env(first, {"mod.py": source}), ["mod.py"], tmp_path / "store")
    python = fake_env(second, {"mod.py": source})

    done = compile_imports(python, ["mod.py"], tmp_path / "store")
    # The source changed behind the bytecode's back, same size and mtime: what runs now can
    # only come from the bytecode nbguard wrote.
    module = second / SITE / "mod.py"
    stamp = module.stat()
    module.write_text(source.replace("VALUE = 1", "VALUE = 7"), encoding="utf-8")
    os.utime(module, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    code = "import sys\nsys.path.insert(0, sys.argv[1])\nimport mod\nprint(mod.VALUE)\nmod.fail()"
    shown = subprocess.run(
        [sys.executable, "-I", "-c", code, str(second / SITE)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done == (
        "0 modules compiled, 1 from the bytecode store, 0 from the audit's envs, 0 already fresh"
    )
    assert shown.stdout == "1\n"
    assert f'File "{module}"' in shown.stderr  # its own path in tracebacks, not the first env's


def test_the_audits_env_lends_its_bytecode_of_the_same_source_but_not_of_another(
    tmp_path: Path,
) -> None:
    audit = tmp_path / "audit"
    donor = fake_env(audit, {"same.py": "A = 1\n", "other.py": "B = 1\n"})
    compileall.compile_dir(audit / SITE, quiet=1)  # as uv does at install
    python = fake_env(tmp_path / "probe", {"same.py": "A = 1\n", "other.py": "B = 2\n"})

    done = compile_imports(python, ["same.py", "other.py"], tmp_path / "store", [donor])

    lent = "1 modules compiled, 0 from the bytecode store, 1 from the audit's envs"
    assert done == f"{lent}, 0 already fresh"
    code = bytecode(tmp_path / "probe", "same.py").read_bytes()[16:]
    assert code == bytecode(audit, "same.py").read_bytes()[16:]
    # The store keeps both by their sources, and the probe env links to its entries.
    kept = {path.name: path for path in (tmp_path / "store").glob("*/*/*")}
    assert set(kept) == {hashlib.sha256(source).hexdigest() for source in (b"A = 1\n", b"B = 2\n")}
    same = kept[hashlib.sha256(b"A = 1\n").hexdigest()]
    assert same.samefile(bytecode(tmp_path / "probe", "same.py"))


def test_bytecode_written_earlier_is_kept_and_a_stale_one_replaced(tmp_path: Path) -> None:
    env = tmp_path / "env"
    python = fake_env(env, {"kept.py": "A = 1\n", "stale.py": "B = 1\n"})
    compile_imports(python, ["kept.py"], tmp_path / "store")
    stale = bytecode(env, "stale.py")
    stale.write_bytes(importlib.util.MAGIC_NUMBER + bytes(12) + b"not code")
    bytecode_module._COMPILED.clear()  # as a later nbguard process finds the env

    done = compile_imports(python, ["kept.py", "stale.py"], tmp_path / "store")
    shown = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import stale",
            str(env / SITE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done == (
        "1 modules compiled, 0 from the bytecode store, 0 from the audit's envs, 1 already fresh"
    )
    assert shown.returncode == 0, shown.stderr
    # The hash-based .pyc names its source by content: a copy of the env's file elsewhere, at
    # another mtime, would take it as its own.
    assert stale.read_bytes()[4:8] == (1).to_bytes(4, "little")


def test_a_store_on_another_file_system_is_copied_from(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")  # Linux CI always has it
    env = tmp_path / "env"
    python = fake_env(env, {"mod.py": "A = 1\n"})
    with tempfile.TemporaryDirectory(dir=shm) as store:
        done = compile_imports(python, ["mod.py"], Path(store))
        (kept,) = Path(store).glob("*/*/*")

        assert done.startswith("1 modules compiled")
        assert bytecode(env, "mod.py").read_bytes() == kept.read_bytes()
        assert not bytecode(env, "mod.py").samefile(kept)


# --- blame compiles each probe env before its run -----------------------------------------

LOCKED_IMPORTS = ("wobble/__init__.py", "wobble/legacy.py")
UPCOMING_IMPORTS = ("wobble/__init__.py", "wobble/modern.py")
PROBE_IMPORTS = ("gadget/__init__.py",)
OLD = "module 'wobble' has no attribute 'old'"


@dataclass
class CompilingBackend(FakeBackend):
    """Probe envs as base's packages with the pins; a log of compiles and runs in order."""

    log: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    donors: list[tuple[str, ...]] = field(default_factory=list)

    def build_variant(
        self,
        name: str,
        interpreter: Interpreter,
        base: EnvInfo,
        pins: dict[str, str],
        *,
        prerelease: bool,
        progress: Callable[[str], None],
        wheels_only: bool = False,
        lift: bool = False,
        resolve_only: bool = False,
    ) -> EnvInfo:
        packages = {**base.packages, **pins}
        fp = "fp-" + ",".join(f"{n}={v}" for n, v in sorted(packages.items()))
        return EnvInfo(name, "3.11.7", packages, fp, interpreter=Path("/fake/probe/bin/python"))

    def compile_imports(
        self, env: EnvInfo, files: tuple[str, ...], donors: tuple[EnvInfo, ...] = ()
    ) -> str:
        self.log.append(("compile", env.fingerprint or "", files))
        self.donors.append(tuple(donor.name for donor in donors))
        return super().compile_imports(env, files, donors)

    def execute(
        self, notebook: Notebook, course: Path, env: EnvInfo, options: ExecOptions, workdir: Path
    ) -> NotebookRun:
        self.log.append(("run", env.fingerprint or "", ()))
        return super().execute(notebook, course, env, options, workdir)


def run_with_imports(notebook: Notebook, env: EnvInfo) -> NotebookRun:
    imports = {"locked": LOCKED_IMPORTS, "upcoming": UPCOMING_IMPORTS}.get(env.name, PROBE_IMPORTS)
    if env.packages["wobble"] == "2.0":
        run = raised(notebook.path, env.name, "AttributeError", OLD)
    else:
        run = printed(notebook.path, env.name, "same everywhere")
    return replace(run, imports=imports)


def test_each_probe_env_gets_the_imports_of_the_audits_runs_before_its_kernel_runs(
    tmp_path: Path,
) -> None:
    backend = CompilingBackend(
        {
            "locked": {"gadget": "1.0", "wobble": "1.0"},
            "upcoming": {"gadget": "2.0", "wobble": "2.0"},
        },
        {("nb.ipynb", env): run_with_imports for env in ("locked", "upcoming", "upcoming-probe")},
    )
    course = write_course(tmp_path, ["nb.ipynb"])
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache"), "blame": True})

    (nb,) = pipeline.run(config, backend=backend).notebooks

    assert nb.culprit is not None and nb.culprit.evidence == "confirmed"
    probes = [entry for entry in backend.log if entry[1] not in ("fp-locked", "fp-upcoming")]
    compiled = [entry for entry in probes if entry[0] == "compile"]
    assert len(compiled) == 2, backend.log  # revert wobble, then upgrade only wobble
    # Each probe env is compiled, then run; never the audit's own envs.
    assert [kind for kind, _, _ in probes] == ["compile", "run", "compile", "run"]
    assert [fp for _, fp, _ in probes[::2]] == [fp for _, fp, _ in probes[1::2]]
    assert set(compiled[0][2]) == {*LOCKED_IMPORTS, *UPCOMING_IMPORTS}
    # What the first probe's kernel imported is compiled for the next one too.
    assert set(compiled[1][2]) == {*LOCKED_IMPORTS, *UPCOMING_IMPORTS, *PROBE_IMPORTS}
    # The audit's envs on the probe's Python lend their bytecode of the same sources.
    assert backend.donors == [("upcoming", "locked")] * 2
