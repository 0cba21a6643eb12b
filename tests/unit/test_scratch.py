"""Fast tier: the scratch copy of a course: links stay links, its size is bounded, Ctrl-C
stops it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nbguard.errors import NbguardError
from nbguard.execute import kill_all_kernels
from nbguard.execute import scratch as scratch_module
from nbguard.execute.scratch import copy_course

IGNORE = (".git", "__pycache__")


@pytest.fixture
def course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    (root / "data").mkdir(parents=True)
    (root / "data" / "a.csv").write_text("1,2\n")
    (root / "nb.ipynb").write_text("{}")
    return root


def test_a_symlink_loop_is_copied_as_links_at_once(course: Path, tmp_path: Path) -> None:
    (course / "a").symlink_to(".")
    (course / "b").symlink_to(".")
    started = time.monotonic()

    copy_course(course, tmp_path / "copy", IGNORE, tmp_path / "work")

    assert time.monotonic() - started < 5
    copy = tmp_path / "copy"
    assert sorted(p.name for p in copy.iterdir()) == ["a", "b", "data", "nb.ipynb"]
    assert str((copy / "a").readlink()) == "." and (copy / "a" / "nb.ipynb").is_file()


def test_a_link_into_the_course_points_into_the_copy(course: Path, tmp_path: Path) -> None:
    (course / "absolute.csv").symlink_to(course / "data" / "a.csv")
    (course / "relative").symlink_to("data")

    copy_course(course, tmp_path / "copy", IGNORE, tmp_path / "work")
    (tmp_path / "copy" / "absolute.csv").write_text("changed\n")
    (tmp_path / "copy" / "relative" / "new.txt").write_text("new\n")

    assert (course / "data" / "a.csv").read_text() == "1,2\n"
    assert not (course / "data" / "new.txt").exists()
    assert (tmp_path / "copy" / "data" / "a.csv").read_text() == "changed\n"


def test_a_link_out_of_the_course_keeps_its_target(course: Path, tmp_path: Path) -> None:
    outside = tmp_path / "shared.csv"
    outside.write_text("shared\n")
    (course / "shared.csv").symlink_to(Path("..") / "shared.csv")

    copy_course(course, tmp_path / "copy", IGNORE, tmp_path / "work")

    assert (tmp_path / "copy" / "shared.csv").read_text() == "shared\n"
    assert str((tmp_path / "copy" / "shared.csv").readlink()) == str(outside.resolve())


def test_a_course_past_the_size_limit_is_a_one_line_error(course: Path, tmp_path: Path) -> None:
    (course / "big.bin").write_bytes(b"x" * 5000)

    with pytest.raises(NbguardError) as caught:
        copy_course(course, tmp_path / "copy", IGNORE, tmp_path / "work", max_bytes=4096)

    message = str(caught.value)
    assert "\n" not in message
    assert "more than 4 KB" in message and "keep large data" in message
    assert not (tmp_path / "copy").exists()


def test_an_interrupted_run_stops_the_copy(
    course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(20):
        (course / f"f{index:02}.txt").write_text("x")
    copied: list[str] = []
    real_copy = scratch_module.shutil.copy2

    def copy_then_interrupt(source: Path, target: Path, **kwargs: bool) -> object:
        copied.append(source.name)
        kill_all_kernels()  # what Ctrl-C or SIGTERM does in the pipeline
        return real_copy(source, target, **kwargs)

    monkeypatch.setattr(scratch_module.shutil, "copy2", copy_then_interrupt)

    with pytest.raises(KeyboardInterrupt):
        copy_course(course, tmp_path / "copy", IGNORE, tmp_path / "work")

    assert len(copied) == 1
    assert not (tmp_path / "copy").exists()
    monkeypatch.undo()
    copy_course(course, tmp_path / "copy", IGNORE, tmp_path / "work")  # the next run copies
    assert (tmp_path / "copy" / "f19.txt").is_file()
