"""What the terminal says about how an env's declaration is read: where its Python came from,
and whether a conda declaration is solved by conda or approximated with PyPI packages."""

from __future__ import annotations

from nbguard.envs import conda
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.resolvers import BuildOptions
from nbguard.settings import EnvSpec


def notes(spec: EnvSpec, interp: Interpreter, options: BuildOptions) -> list[str]:
    """One line per thing a user should know about how `spec` becomes an env; raises
    EnvironmentBuildError (exit 2) when the conda solver the setting names is not there."""
    lines: list[str] = []
    if spec.python_from is not None:
        lines.append(f"env {spec.name}: Python {interp.version} (from {spec.python_from})")
    if spec.requirements is None or not conda.is_conda(spec.requirements):
        return lines
    declared = conda.read(spec.requirements)
    name = spec.requirements.name
    chosen = conda.solver(options.conda_solver)
    if chosen != "pypi":
        how = "relaxed to the newest releases" if spec.upgrade else "as declared"
        by = conda.solver_label(chosen)
        lines.append(
            f"env {spec.name}: {name} solved by conda ({by}), {how}, channels "
            + ", ".join(declared.channels)
        )
        if spec.prerelease:
            # conda has no pre-release switch: release candidates are published under labels.
            lines.append(
                f"env {spec.name}: conda pre-releases come only from channels the file lists "
                "(a label such as conda-forge/label/numpy_rc); pre-releases apply to its pip: "
                "section"
            )
        return lines
    approximation = conda.approximate(declared, keep_versions=not spec.upgrade)
    why = (
        "conda-solver = 'pypi'"
        if options.conda_solver == "pypi"
        else "no conda solver (pip install 'nbguard[conda]', or micromamba, mamba or conda on PATH)"
    )
    lines.append(
        f"env {spec.name}: {why}: {name} approximated with PyPI packages; "
        + approximation.summary()
    )
    return lines
