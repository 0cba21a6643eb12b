"""Running notebooks in kernels; the only package that imports nbclient, nbformat, jupyter_client.

The modules, in the order a notebook meets them:

- ``options``: ExecOptions, the settings of one execution
- ``notebook``: execute_notebook, from the course file to a NotebookRun
- ``reading``: reading the notebook file, and the reason a damaged one gets
- ``scratch``: the copy of the course a notebook runs in, so the course is only read
- ``launch``: the kernelspec, environment and transport a kernel starts with
- ``sandbox``: the bubblewrap sandbox a kernel runs in, or why not on this machine
- ``overlay``: the run's own layer over the env, where a notebook's pip installs go
- ``seat``: a run's place (course copy, environment, sandbox), made before its notebook is known
- ``session``: one kernel's life: started in a seat, handed a notebook, always stopped
- ``warm``: kernels started ahead of need, the next run's booting while this one's cells run
- ``kernels``: the kernels running now, so an interrupted run can kill them all
- ``cells``: the cell loop, and the nbclient client that caps outputs
- ``tags``: what a cell's tags, nbval markers and metadata ask for
- ``failures``: why a cell did not finish, in words a course author can act on
- ``cascade``: which later errors only follow from an earlier failed cell
- ``outputs``: nbformat outputs as model Outputs, warning records and cell errors
- ``memo``: the execution cache: a run reused while nothing it depends on changed
- ``stored``: the outputs saved in the file as the run of the pseudo-env ``stored``
- ``parameters``: papermill parameters checked against a notebook and injected into its run
- ``_kernel_capture``: runs inside every kernel and records deprecation warnings
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbguard.execute import parameters
    from nbguard.execute.kernels import kill_all_kernels
    from nbguard.execute.memo import Memo
    from nbguard.execute.notebook import execute_notebook
    from nbguard.execute.options import ExecOptions
    from nbguard.execute.outputs import CAPTURE_MIME
    from nbguard.execute.parameters import unknown as parameters_problem
    from nbguard.execute.reading import UNREADABLE
    from nbguard.execute.sandbox import note as sandbox_note
    from nbguard.execute.scratch import copy_course
    from nbguard.execute.stored import stored_run

# Each name imported on first use: a run whose notebooks all come from the execution cache
# starts no kernel, and should not pay for importing nbclient, jupyter_client and zmq.
_LAZY = {
    "CAPTURE_MIME": ("outputs", "CAPTURE_MIME"),
    "UNREADABLE": ("reading", "UNREADABLE"),
    "ExecOptions": ("options", "ExecOptions"),
    "Memo": ("memo", "Memo"),
    "copy_course": ("scratch", "copy_course"),
    "execute_notebook": ("notebook", "execute_notebook"),
    "kill_all_kernels": ("kernels", "kill_all_kernels"),
    "parameters": ("parameters", None),
    "parameters_problem": ("parameters", "unknown"),
    "sandbox_note": ("sandbox", "note"),
    "stored_run": ("stored", "stored_run"),
}


# The pseudo-env whose "run" is the outputs saved in the notebook (baseline = "stored").
STORED = "stored"


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(f"{__name__}.{module_name}")
    return module if attribute is None else getattr(module, attribute)


def release_warm() -> None:
    """Stop the kernels started ahead of need that no run took; none were when no notebook
    was executed (the warm pool's module was never imported)."""
    warm = sys.modules.get(f"{__name__}.warm")
    if warm is not None:
        warm.release()


__all__ = [
    "CAPTURE_MIME",
    "STORED",
    "UNREADABLE",
    "ExecOptions",
    "Memo",
    "copy_course",
    "execute_notebook",
    "kill_all_kernels",
    "parameters",
    "parameters_problem",
    "release_warm",
    "sandbox_note",
    "stored_run",
]
