"""The resolvers, uv and pip-tools, behind one `Resolver` protocol: the only code that runs
them (compile a lock, create a venv from it, install a project into a folder), and where
packages come from."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nbguard import proc
from nbguard.ansi import strip_ansi
from nbguard.envs import interpreters
from nbguard.envs.cache import file_lock
from nbguard.envs.interpreters import Interpreter
from nbguard.envs.requirements import canonical
from nbguard.errors import EnvironmentBuildError


@dataclass(frozen=True)
class Sources:
    """Where packages come from, the same for every env of a run."""

    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_url: tuple[str, ...] = ()
    no_index: bool = False

    def args(self) -> list[str]:
        """Options understood alike by uv, pip-compile and pip."""
        argv: list[str] = []
        for link in self.find_links:
            argv += ["--find-links", link]
        if self.index_url:
            argv += ["--index-url", self.index_url]
        for url in self.extra_index_url:
            argv += ["--extra-index-url", url]
        if self.no_index:
            argv.append("--no-index")
        return argv

    def local_distributions(self) -> list[str]:
        """Distribution names of the wheels and sdists in local --find-links folders."""
        names: set[str] = set()
        for link in self.find_links:
            folder = Path(link)
            if "://" in link or not folder.is_dir():
                continue
            for archive in (*folder.glob("*.whl"), *folder.glob("*.tar.gz")):
                names.add(canonical(archive.name.split("-", 1)[0]))
        return sorted(names)


@dataclass(frozen=True)
class BuildOptions:
    """The settings every env build of a run shares: the resolver, where packages come
    from, where envs and locks are cached."""

    resolver: str  # "uv" or "pip-tools"
    sources: Sources
    cache_dir: Path
    # How a conda declaration becomes an env: "rattler", "pypi" or "auto" (conda_build).
    conda_solver: str = "auto"


class Resolver(Protocol):
    """What building an env asks of a resolver; each call returns the finished process."""

    name: str
    # It keeps what it read of the index, and can resolve from that alone (`offline`).
    caches_index: bool

    def compile(
        self,
        interp: Interpreter,
        infile: Path,
        outfile: Path,
        *,
        upgrade: bool,
        prerelease: bool,
        wheels_only: bool = False,
        lowest: bool = False,
        offline: bool = False,
    ) -> proc.Completed:
        """Resolve `infile` for `interp` into `outfile`; the pins already in `outfile` (a
        previous output) are kept where they still fit, unless `upgrade`. `wheels_only`: a
        version with no wheel for `interp` does not exist (never an sdist build); `lowest`:
        the lowest versions the requirements allow (where the resolver can); `offline`: from
        what the resolver cached of the index, asking it nothing (with `caches_index`)."""
        ...

    def create(
        self, interp: Interpreter, target: Path, lock: Path, *, probe: bool = False
    ) -> proc.Completed:
        """A venv of `interp` at `target` (absent before) holding exactly `lock`. A `probe`
        env (blame's, used by a few notebooks) installs wheels only and compiles no bytecode."""
        ...

    def install_into(self, python: Path, project: Path, target: Path) -> proc.Completed:
        """`project` (without its dependencies) installed by `python`'s env into `target`."""
        ...


def for_options(options: BuildOptions) -> Resolver:
    if options.resolver == "uv":
        return _Uv(options.sources)
    return _PipTools(options.sources, options.cache_dir)


def reason(done: proc.Completed) -> str:
    """A failed tool's own explanation, without its ANSI colour and blank lines."""
    text = strip_ansi(done.last_lines(15))
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


class _Uv:
    name = "uv"
    caches_index = True

    def __init__(self, sources: Sources) -> None:
        uv = interpreters.uv_executable()
        if uv is None:
            raise EnvironmentBuildError(
                "the uv resolver was asked for but uv is not installed; `pip install uv` "
                "or set resolver = 'pip-tools'"
            )
        self.uv = uv
        self.sources = sources

    def _args(self) -> list[str]:
        """Where packages come from, and: re-read the wheels of local --find-links folders.
        uv trusts a wheel of a given name and version forever; a course (or nbguard's own
        demo) that rebuilds its local package without bumping the version would otherwise
        get the old one from uv's cache."""
        refresh: list[str] = []
        for name in self.sources.local_distributions():
            refresh += ["--refresh-package", name]
        return [*self.sources.args(), *refresh]

    def compile(
        self,
        interp: Interpreter,
        infile: Path,
        outfile: Path,
        *,
        upgrade: bool,
        prerelease: bool,
        wheels_only: bool = False,
        lowest: bool = False,
        offline: bool = False,
    ) -> proc.Completed:
        argv: list[str | Path] = [self.uv, "pip", "compile", infile, "--output-file", outfile]
        argv += ["--quiet", "--no-header", "--no-annotate", "--python", interp.executable]
        argv += ["--prerelease", "allow" if prerelease else "if-necessary-or-explicit"]
        if upgrade:
            argv.append("--upgrade")
        if wheels_only:
            argv.append("--no-build")
        if lowest:
            # Every package is a direct requirement of a lifted lock: its lowest fitting
            # version; what the bumps newly need comes at its newest, as usual.
            argv += ["--resolution", "lowest-direct"]
        if offline:
            argv.append("--offline")
        return proc.run([*argv, *self._args()], env=_quiet_uv())

    def create(
        self, interp: Interpreter, target: Path, lock: Path, *, probe: bool = False
    ) -> proc.Completed:
        done = proc.run(
            [self.uv, "venv", "--quiet", "--python", interp.executable, target], env=_quiet_uv()
        )
        if not done.ok:
            return done
        python = target / "bin" / "python"
        # Copies, not hard links into uv's cache: a notebook (or a disk) that damages a file
        # of the env would otherwise damage the cache, and every env rebuilt from it. A probe
        # env is installed in a second, not four (400 MB of scientific stack): its kernels
        # see the env read-only in the sandbox, and it serves one to three notebooks.
        link = ["--link-mode", "hardlink" if probe else "copy"]
        if probe:
            # From uv's cache alone, in one call: a probe's lock pins versions resolved
            # moments ago from the index, so their wheels are usually in the cache, and
            # asking the index about each pin again cost seconds of waiting per env while
            # every blame waited for the lifted one. The venv is empty, so installing the
            # pins without their dependencies, and pip, is what the sync and the seed below
            # do. Anything the cache lacks: those two, from the index.
            together: list[str | Path] = [self.uv, "pip", "install", "--quiet", "--no-deps"]
            together += ["-r", lock, "pip", "--python", python, "--no-build", *link]
            done = proc.run([*together, "--offline", *self._args()], env=_quiet_uv())
            if done.ok:
                return done
        argv: list[str | Path] = [self.uv, "pip", "sync", lock, "--quiet", "--python", python]
        if probe:
            # A probe env serves one to three notebooks: compiling its bytecode (~20 s for
            # the scientific stack) costs more than the few imports it would speed up.
            argv.append("--no-build")
        else:
            # Kernels import the env's packages every run; without .pyc (uv writes none by
            # default, and PYTHONDONTWRITEBYTECODE is common) each import recompiles them.
            argv.append("--compile-bytecode")
        done = proc.run([*argv, *link, *self._args()], env=_quiet_uv())
        if done.ok:
            # uv venvs have no pip; a notebook's `%pip install` would fail with "No module
            # named pip" where a student's Jupyter works. Best effort: without a pip wheel
            # (an offline course that ships none) the env is built without it.
            seed: list[str | Path] = [self.uv, "pip", "install", "--quiet", "--no-deps"]
            seed += [*link, "pip", "--python", python, *self._args()]
            proc.run(seed, env=_quiet_uv())
        return done

    def install_into(self, python: Path, project: Path, target: Path) -> proc.Completed:
        argv: list[str | Path] = [self.uv, "pip", "install", "--quiet", "--no-deps"]
        argv += ["--python", python, "--target", target, project]
        return proc.run([*argv, *self._args()], env=_quiet_uv())


def _quiet_uv() -> dict[str, str]:
    # uv would otherwise ask (and fail on) interpreters it finds on PATH, such as pyenv shims.
    return {"UV_NO_PROGRESS": "1", "UV_PYTHON_PREFERENCE": "only-system"}


class _PipTools:
    name = "pip-tools"
    caches_index = False  # pip has no cache-only mode: `offline` is never asked of it

    def __init__(self, sources: Sources, cache: Path) -> None:
        self.sources = sources
        self.cache = cache

    def _tools(self, interp: Interpreter) -> Path:
        """A venv with pip-tools per interpreter: pip-compile resolves for the Python it runs on."""
        key = hashlib.sha256(f"{interp.executable}|{interp.version}".encode()).hexdigest()[:12]
        tools = self.cache / "tools" / f"pip-tools-{interp.version}-{key}"
        if (tools / ".complete").exists():
            return tools
        with file_lock(tools.with_suffix(".lock")):
            if (tools / ".complete").exists():
                return tools
            shutil.rmtree(tools, ignore_errors=True)
            steps: tuple[list[str | Path], ...] = (
                [interp.executable, "-m", "venv", tools],
                [
                    tools / "bin" / "python",
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "pip-tools",
                    *self.sources.args(),
                ],
            )
            for argv in steps:
                done = proc.run(argv)
                if not done.ok:
                    raise EnvironmentBuildError(
                        f"cannot set up pip-tools for Python {interp.version}: {done.last_lines(3)}"
                    )
            (tools / ".complete").write_text("ok\n")
        return tools

    def compile(
        self,
        interp: Interpreter,
        infile: Path,
        outfile: Path,
        *,
        upgrade: bool,
        prerelease: bool,
        wheels_only: bool = False,
        lowest: bool = False,
        offline: bool = False,
    ) -> proc.Completed:
        # pip-compile has no lowest resolution: a lifted lock takes the newest fitting
        # versions there (installable still, only not the nearest).
        argv: list[str | Path] = [self._tools(interp) / "bin" / "pip-compile", "--quiet"]
        argv += ["--no-header"]
        argv += ["--no-annotate", "--strip-extras", "--output-file", outfile]
        argv += ["--upgrade"] if upgrade else []
        argv += ["--pre"] if prerelease else []
        argv += ["--pip-args", "--only-binary=:all:"] if wheels_only else []
        argv += [*self.sources.args(), infile]
        preferred = outfile.read_text(encoding="utf-8") if outfile.is_file() else ""
        done = proc.run(argv)
        if not done.ok and preferred:
            # pip-compile holds on to a previous pin that conflicts with the pins asked for
            # (ResolutionImpossible) where uv moves it. Without preferences the other packages
            # take their newest fitting releases; the caller sees in the lock what moved.
            outfile.write_text("", encoding="utf-8")
            done = proc.run(argv)
        return done

    def create(
        self, interp: Interpreter, target: Path, lock: Path, *, probe: bool = False
    ) -> proc.Completed:
        done = proc.run([interp.executable, "-m", "venv", target])
        if not done.ok:
            return done
        pip: list[str | Path] = [target / "bin" / "python", "-m", "pip", "install", "--quiet"]
        pip.append("--no-deps")
        pip += ["--only-binary=:all:", "--no-compile"] if probe else []
        # pip checks hashes all or nothing: the lines of a hash-pinned lock that carry them
        # go first with --require-hashes, ipykernel and the rest without.
        hashed, plain = _split_hashed(lock)
        if hashed is not None:
            done = proc.run([*pip, "--require-hashes", "-r", hashed, *self.sources.args()])
            if not done.ok:
                return done
        return proc.run([*pip, "-r", plain, *self.sources.args()])

    def install_into(self, python: Path, project: Path, target: Path) -> proc.Completed:
        pip: list[str | Path] = [python, "-m", "pip", "install", "--quiet", "--no-deps"]
        return proc.run([*pip, "--target", target, project, *self.sources.args()])


def _split_hashed(lock: Path) -> tuple[Path | None, Path]:
    """The lock's hash-carrying lines in a file of their own (None without any), the rest in
    another, both beside it."""
    lines = lock.read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    hashed = [line for line in lines if "--hash" in line]
    if not hashed:
        return None, lock
    first = lock.with_name(f"{lock.name}.hashed")
    rest = lock.with_name(f"{lock.name}.rest")
    first.write_text("\n".join(hashed) + "\n", encoding="utf-8")
    rest.write_text(
        "\n".join(line for line in lines if "--hash" not in line) + "\n", encoding="utf-8"
    )
    return first, rest
