"""Fast tier: each run is told how many runs of its env are still to come, so kernels are
started ahead only for runs that will take them (no kernel started for nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nbguard import pipeline, settings
from nbguard.execute import ExecOptions
from nbguard.model import EnvInfo, Notebook, NotebookRun
from tests.support.fakes import FakeBackend, write_course

PACKAGES = {"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}}


@dataclass
class Recording(FakeBackend):
    ahead: dict[str, list[int]] = field(default_factory=dict)

    def execute(
        self, notebook: Notebook, course: Path, env: EnvInfo, options: ExecOptions, workdir: Path
    ) -> NotebookRun:
        with self._lock:
            self.ahead.setdefault(env.name, []).append(options.ahead)
        return super().execute(notebook, course, env, options, workdir)


def test_each_run_knows_how_many_runs_of_its_env_come_after_it(tmp_path: Path) -> None:
    course = write_course(tmp_path, [f"nb{n}.ipynb" for n in range(5)])
    backend = Recording(PACKAGES)
    config = settings.load(course, {"cache-dir": str(tmp_path / "cache"), "jobs": "1"})

    pipeline.run(config, backend=backend)

    assert backend.ahead == {"locked": [4, 3, 2, 1, 0], "upcoming": [4, 3, 2, 1, 0]}
    assert backend.stops >= 1  # and whatever was started ahead is stopped at the end
