"""What the terminal says about how an env's declaration is read: where its Python came from,
and whether a conda declaration is solved by conda or approximated with PyPI packages."""

from __future__ import annotations

from nbguard.envs import conda
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.resolvers import BuildOptions
from nbguard.settings import EnvSpec


def notes(spec: EnvSpec, interp: Interpreter, options: BuildOptions) -> list[str]:
    """One line per thing a user should know about how `spec` becomes an env; raises
    EnvironmentBuildError (exit 2) when conda-solver = 'rattler' and py-rattler is missing."""
    lines: list[str] = []
    if spec.python_from is not None:
        lines.append(f"env {spec.name}: Python {interp.version} (from {spec.python_from})")
    if spec.requirements is None or not conda.is_conda(spec.requirements):
        return lines
    declared = conda.read(spec.requirements)
    name = spec.requirements.name
    if conda.solver(options.conda_solver) == "rattler":
        how = "relaxed to the newest releases" if spec.upgrade else "as declared"
        lines.append(
            f"env {spec.name}: {name} solved by conda (py-rattler), {how}, channels "
            + ", ".join(declared.channels)
        )
        return lines
    approximation = conda.approximate(declared, keep_versions=not spec.upgrade)
    why = (
        "conda-solver = 'pypi'"
        if options.conda_solver == "pypi"
        else "no conda solver (pip install 'nbguard[conda]')"
    )
    lines.append(
        f"env {spec.name}: {why}: {name} approximated with PyPI packages; "
        + approximation.summary()
    )
    return lines
