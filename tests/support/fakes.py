"""A fake backend for the pipeline (as pip-tools tests its resolver against a fake
repository): envs that are only package lists, runs that a test writes down in advance."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from nbguard.envs.interpreters import Interpreter
from nbguard.execute import ExecOptions
from nbguard.model import CellError, CellResult, EnvInfo, Notebook, NotebookRun, Output
from nbguard.settings import EnvSpec

PYTHON = "3.11.7"
# What a fake run of a notebook in an env does: a run, or an exception nbguard's own code
# raises while executing it (the boundary's case), or a callable for anything else.
Script = NotebookRun | BaseException | Callable[[Notebook, EnvInfo], NotebookRun]


def printed(notebook: str, env: str, *lines: str) -> NotebookRun:
    """A run whose one code cell printed `lines`."""
    outputs = tuple(Output("stream", {"stdout": line + "\n"}) for line in lines)
    cell = CellResult(index=0, status="ok", source="print(...)", outputs=outputs)
    return NotebookRun(notebook, env, "ok", 0.1, cells=(cell,))


def raised(notebook: str, env: str, ename: str, evalue: str) -> NotebookRun:
    """A run whose one code cell raised."""
    error = CellError(0, ename, evalue, (f"{ename}: {evalue}",))
    output = Output("error", {"ename": ename, "evalue": evalue})
    cell = CellResult(index=0, status="error", source="f()", outputs=(output,))
    return NotebookRun(notebook, env, "error", 0.1, cells=(cell,), error=error)


@dataclass
class FakeBackend:
    """Envs with the given packages; each (notebook, env) run as scripted, `ok` when not."""

    packages: Mapping[str, Mapping[str, str]]  # env name → its packages
    scripts: Mapping[tuple[str, str], Script] = field(default_factory=dict)
    env_errors: Mapping[str, str] = field(default_factory=dict)  # env name → why it fails
    executed: list[tuple[str, str]] = field(default_factory=list)
    compiled: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # env, files
    stops: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def interpreter(self, spec: EnvSpec) -> Interpreter:
        return Interpreter(Path(sys.executable), PYTHON, "CPython", "Linux-x86_64")

    def build(
        self, spec: EnvSpec, interpreter: Interpreter, progress: Callable[[str], None]
    ) -> EnvInfo:
        progress(f"resolving {spec.name}")
        if spec.name in self.env_errors:
            return EnvInfo(spec.name, PYTHON, {}, None, error=self.env_errors[spec.name])
        return EnvInfo(
            spec.name,
            PYTHON,
            dict(self.packages[spec.name]),
            f"fp-{spec.name}",
            interpreter=Path(f"/fake/{spec.name}/bin/python"),
        )

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
        return EnvInfo(name, PYTHON, {}, None, error="the fake backend builds no probe envs")

    def verify(self, env: EnvInfo) -> EnvInfo:
        return env

    def install_course(self, env: EnvInfo, source: Path, target: Path) -> str | None:
        return None

    def compile_imports(
        self, env: EnvInfo, files: tuple[str, ...], donors: tuple[EnvInfo, ...] = ()
    ) -> str:
        with self._lock:
            self.compiled.append((env.name, files))
        return f"{len(files)} modules compiled"

    def execute(
        self, notebook: Notebook, course: Path, env: EnvInfo, options: ExecOptions, workdir: Path
    ) -> NotebookRun:
        with self._lock:
            self.executed.append((notebook.path, env.name))
        script = self.scripts.get((notebook.path, env.name))
        if script is None:
            return printed(notebook.path, env.name, "same everywhere")
        if isinstance(script, BaseException):
            raise script
        if isinstance(script, NotebookRun):
            return script
        return script(notebook, env)

    def stop_kernels(self) -> None:
        self.stops += 1


def write_course(root: Path, notebooks: list[str]) -> Path:
    """A course folder with a lock, a loose requirements file and tiny notebooks."""
    course = root / "course"
    course.mkdir()
    (course / "requirements.txt").write_text("wobble==1.0\n")
    (course / "requirements.in").write_text("wobble\n")
    for name in notebooks:
        path = course / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nb = new_notebook(cells=[new_code_cell("print('hello')")])
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "language": "python",
            "display_name": "Python 3",
        }
        nbformat.write(nb, path)
    return course
