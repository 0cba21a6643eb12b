"""Environments: requirement sources → resolved lock → cached venv with a kernel, keyed by a
fingerprint of (Python, resolved pins). The only package that drives a resolver.

requirements  what an env asks for (requirements files, environment.yml), what a lock pins
interpreters  the Python an env asks for, found on this machine
resolvers     uv and pip-tools behind one Resolver protocol; where packages come from
lockfiles     a resolution request → a lock file, cached by its inputs
cache         the env cache: fingerprint, the marker written last, reuse checks, file locks
builds        a course env from its spec; any lock → a ready venv; the course's package
variants      blame's variant envs: a built env with a few packages pinned elsewhere
bytecode      the .pyc of the modules a notebook imports, compiled into a probe env
conda         conda declarations read (environment.yml, conda locks); relaxed; PyPI approximation
conda_build   conda envs (and their blame variants) solved and linked into a venv of the interpreter
conda_cli     conda, mamba or micromamba on PATH as the conda solver
declared      what the terminal says about how an env's declaration is read
colab         the Google Colab runtime as an env: the saved snapshot, fetching a new one
"""

from nbguard.envs.builds import build, install_course, verify
from nbguard.envs.cache import fingerprint
from nbguard.envs.declared import notes
from nbguard.envs.interpreters import interpreter_for
from nbguard.envs.requirements import (
    KERNEL_REQUIREMENTS,
    canonical,
    changed_packages,
    conda_python,
    parse_pins,
    requirement_lines,
)
from nbguard.envs.resolvers import BuildOptions, Sources
from nbguard.envs.variants import build_variant

__all__ = [
    "KERNEL_REQUIREMENTS",
    "BuildOptions",
    "Sources",
    "build",
    "build_variant",
    "canonical",
    "changed_packages",
    "conda_python",
    "fingerprint",
    "install_course",
    "interpreter_for",
    "notes",
    "parse_pins",
    "requirement_lines",
    "verify",
]
