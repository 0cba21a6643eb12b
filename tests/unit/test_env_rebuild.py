"""A cached env rebuilt while another nbguard process runs kernels in it: those kernels (and
the pip overlays layered over it) must find the env whole, before and after the swap."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nbguard import proc
from nbguard.envs import builds, cache
from nbguard.envs.interpreters import Interpreter
from nbguard.execute import sandbox
from nbguard.execute.overlay import make_overlay

PY311 = Interpreter(Path("/usr/bin/python3.11"), "3.11.7", "CPython", "Linux-x86_64")
LOCK = "wobble==1.0\nipykernel==7.0\n"


class VenvMaker:
    """A resolver whose venvs are a few files; `during` runs in the middle of each install,
    where a concurrent kernel would start."""

    name = "fake"

    def __init__(self, during: Callable[[], None] = lambda: None) -> None:
        self.during = during
        self.created: list[Path] = []

    def compile(self, *args: object, **kwargs: object) -> proc.Completed:
        raise AssertionError("not resolved here")

    def create(
        self, interp: Interpreter, target: Path, lock: Path, *, probe: bool = False
    ) -> proc.Completed:
        assert not target.exists(), "a venv is created where nothing is"
        self.created.append(target)
        site = target / "lib" / "python3.11" / "site-packages"
        site.mkdir(parents=True)
        (target / "bin").mkdir()
        (target / "bin" / "python").symlink_to(interp.executable)
        (target / "pyvenv.cfg").write_text(f"home = {interp.executable.parent}\nversion = 3.11.7\n")
        self.during()  # half installed: ipykernel_launcher is not there yet
        (site / "ipykernel_launcher.py").write_text("")
        return proc.Completed(("fake",), 0, "", "")

    def install_into(self, python: Path, project: Path, target: Path) -> proc.Completed:
        raise AssertionError("no course package here")


@pytest.fixture(autouse=True)
def _kernels_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def check(python: Path) -> proc.Completed:
        ok = (python.parent.parent / "lib/python3.11/site-packages/ipykernel_launcher.py").exists()
        return proc.Completed(("check",), 0 if ok else 1, "", "No module named ipykernel_launcher")

    monkeypatch.setattr(cache, "kernel_starts", check)
    monkeypatch.setattr(cache, "_VERIFIED", set())


def _materialize(resolver: VenvMaker, cache_dir: Path) -> Path:
    env = builds.materialize("locked", PY311, LOCK, resolver, cache_dir, lambda _: None, 0.0)
    assert env.error is None, env.error
    assert env.interpreter is not None
    return env.interpreter.parent.parent


def _launcher(env: Path) -> Path:
    return env / "lib" / "python3.11" / "site-packages" / "ipykernel_launcher.py"


def test_a_rebuild_leaves_the_env_in_use_whole_until_the_new_one_replaces_it(
    tmp_path: Path,
) -> None:
    """The bug: a run's kernels failed with `pip-overlay/bin/python: No module named
    ipykernel_launcher` while another process cleared the env and installed it again in
    place. Now the env at its path is whole at every moment of a rebuild."""
    cache_dir = tmp_path / "cache"
    env = _materialize(VenvMaker(), cache_dir)
    overlay = make_overlay(env / "bin" / "python", tmp_path / "pip-overlay")
    assert overlay is not None
    (site_pth,) = (tmp_path / "pip-overlay").glob("lib/*/site-packages/_nbguard_env.pth")
    layered = Path(site_pth.read_text().split("addsitedir(")[1].split(")")[0].strip("'\""))

    # Another process decides the env is damaged (here: a file planted in it) and rebuilds.
    (_launcher(env).parent / "zz_planted.pth").write_text("")
    cache._VERIFIED.clear()
    seen: list[bool] = []
    rebuilding = VenvMaker(during=lambda: seen.append(_launcher(env).exists()))
    again = _materialize(rebuilding, cache_dir)

    assert seen == [True]  # a kernel starting mid-rebuild still finds ipykernel_launcher
    assert again == env
    assert _launcher(env).exists()
    assert (layered / "ipykernel_launcher.py").exists()  # the overlay's .pth leads to it too
    assert not (_launcher(env).parent / "zz_planted.pth").exists()
    assert rebuilding.created[0] != env  # built beside it, never in it
    # Only the new env, its link, the file lock and the kernel-check stamp are left: the
    # replaced one is gone.
    leftovers = {p.name for p in (cache_dir / "envs").iterdir()} - {f"{env.name}.started.json"}
    assert leftovers == {env.name, rebuilding.created[0].name, f"{env.name}.lock"}
    cache._VERIFIED.clear()
    assert cache.problem(env, _fingerprint()) is None


def _fingerprint() -> str:
    return cache.fingerprint(PY311, LOCK)


def test_an_env_of_the_earlier_in_place_layout_is_replaced_by_a_published_one(
    tmp_path: Path,
) -> None:
    cache_dir = tmp_path / "cache"
    target = cache.env_dir(cache_dir, _fingerprint())
    VenvMaker().create(PY311, target, tmp_path / "lock.txt")  # a real folder, no marker

    env = _materialize(VenvMaker(), cache_dir)

    assert env == target and target.is_symlink()
    assert _launcher(env).exists()
    assert {p.name for p in target.parent.iterdir() if p.is_dir() and not p.is_symlink()} == {
        target.resolve().name
    }


def test_a_build_a_killed_process_left_is_removed_and_a_failed_one_leaves_nothing(
    tmp_path: Path,
) -> None:
    cache_dir = tmp_path / "cache"
    target = cache.env_dir(cache_dir, _fingerprint())
    abandoned = target.with_name(f"{target.name}.deadbeef")
    (abandoned / "lib").mkdir(parents=True)

    class Failing(VenvMaker):
        def create(
            self, interp: Interpreter, target: Path, lock: Path, *, probe: bool = False
        ) -> proc.Completed:
            target.mkdir()
            return proc.Completed(("fake",), 1, "", "error: no wheel for wobble")

    env = builds.materialize("locked", PY311, LOCK, Failing(), cache_dir, lambda _: None, 0.0)

    assert env.error == "cannot install env 'locked': error: no wheel for wobble"
    assert [p.name for p in target.parent.iterdir()] == [f"{target.name}.lock"]


def test_the_sandbox_keeps_a_symlinked_env_under_tmp_visible_by_its_cached_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached env is a symlink to its build; the sandbox's new /tmp has neither unless both
    are bound (the kernel and the overlay's .pth use the symlink's path)."""
    monkeypatch.setattr(sandbox, "_bwrap", lambda: (None, "/usr/bin/bwrap"))
    monkeypatch.setattr(sandbox, "_TMP", str(tmp_path))  # the folder the sandbox replaces
    build = tmp_path / "envs" / "0123456789abcdef.feedf00d"
    build.mkdir(parents=True)
    env = tmp_path / "envs" / "0123456789abcdef"
    env.symlink_to(build.name)
    workdir = tmp_path / "run"
    workdir.mkdir()

    argv = sandbox.isolation(
        enabled=True, offline=False, workdir=workdir, writable=(), readable=(env,)
    ).prefix
    binds = {(argv[i + 1], argv[i + 2]) for i, word in enumerate(argv) if word == "--ro-bind"}

    real = str(build.resolve())
    assert (real, str(env)) in binds
    assert (real, real) in binds


def test_an_env_reused_on_its_marker_is_checked_whole_before_a_python_starts_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "cache"
    env = _materialize(VenvMaker(), cache_dir)
    planted = _launcher(env).parent / "zz_planted.pth"
    planted.write_text("import os\n")
    cache._VERIFIED.clear()  # a new nbguard process
    walks: list[Path] = []
    walk = cache._files
    monkeypatch.setattr(cache, "_files", lambda target: walks.append(target) or walk(target))
    rebuilding = VenvMaker()

    reused = builds.materialize(
        "locked", PY311, LOCK, rebuilding, cache_dir, lambda _: None, 0.0, defer=True
    )
    # Reused on the marker alone: no walk of its files yet (every run may come from the
    # execution cache, and then no Python starts in it).
    assert reused.reused and walks == [] and planted.exists()

    checked = builds.verify(reused)
    again = builds.verify(reused)

    assert checked.error is None and checked.reused is False  # the damage found: rebuilt
    assert not planted.exists()
    assert len(rebuilding.created) == 1
    assert again == checked  # once per process; the other runs wait for that answer
