"""Fast tier: `run --shard K/N` splits the course the same way on every machine, and `merge`
joins the shards into the report one unsharded run writes — on the fake backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbguard import cli, pipeline, shard
from nbguard.report import json_report
from tests.support.fakes import FakeBackend, Script, printed, raised, write_course

NOTEBOOKS = [f"{folder}/nb{n:02d}.ipynb" for folder in ("lectures", "homework") for n in range(7)]
PACKAGES = {"locked": {"wobble": "1.0"}, "upcoming": {"wobble": "2.0"}}
SCRIPTS: dict[tuple[str, str], Script] = {
    ("lectures/nb01.ipynb", "upcoming"): printed("lectures/nb01.ipynb", "upcoming", "other"),
    ("homework/nb03.ipynb", "upcoming"): raised(
        "homework/nb03.ipynb", "upcoming", "AttributeError", "module 'wobble' has no 'old'"
    ),
    ("homework/nb05.ipynb", "locked"): raised("homework/nb05.ipynb", "locked", "E", "x"),
}


@pytest.fixture
def course(tmp_path: Path) -> Path:
    return write_course(tmp_path, NOTEBOOKS)


def run(
    course: Path, monkeypatch: pytest.MonkeyPatch, name: str, *flags: str
) -> tuple[int, Path, FakeBackend]:
    backend = FakeBackend(PACKAGES, SCRIPTS)
    monkeypatch.setattr(pipeline, "Machine", lambda options: backend)
    report = course.parent / f"{name}.json"
    argv = ["run", str(course), "--cache-dir", str(course.parent / "cache"), "--report"]
    code = cli.main([*argv, str(report), *flags])
    return code, report, backend


def judged(data: dict[str, Any]) -> list[tuple[str, str, object, object, object]]:
    """What the report says of each notebook: verdict, per-env verdicts, changes, culprit."""
    return [
        (nb["path"], nb["verdict"], nb["verdicts"], nb["changes"], nb["culprit"])
        for nb in data["notebooks"]
    ]


def test_two_shards_merged_give_the_unsharded_report(
    course: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    whole_code, whole, _ = run(course, monkeypatch, "whole")
    one_code, one, first = run(course, monkeypatch, "one", "--shard", "1/2")
    two_code, two, second = run(course, monkeypatch, "two", "--shard", "2/2")
    merged = course.parent / "merged.json"
    html = course.parent / "merged.html"
    capsys.readouterr()

    code = cli.main(["merge", str(one), str(two), "--report", str(merged), "--html", str(html)])

    expected, got = json_report.read(whole), json_report.read(merged)
    assert judged(got) == judged(expected)
    assert got["summary"] == expected["summary"]
    assert got["envs"].keys() == expected["envs"].keys()
    assert code == whole_code == 1  # homework/nb03 broke
    # Each shard ran its own notebooks, in both envs, and none twice.
    ran_first = {path for path, _ in first.executed}
    ran_second = {path for path, _ in second.executed}
    assert ran_first and ran_second and not ran_first & ran_second
    assert ran_first | ran_second == set(NOTEBOOKS)
    assert {one_code, two_code} <= {0, 1}
    assert "homework/nb03.ipynb" in html.read_text(encoding="utf-8")
    assert "homework/nb03.ipynb" in capsys.readouterr().out


def test_a_shard_is_the_same_on_every_machine_and_keeps_its_notebooks() -> None:
    paths = [f"nb{n:03d}.ipynb" for n in range(200)]

    owners = shard.assign(paths, 4)
    with_one_more = shard.assign([*paths, "new.ipynb"], 4)

    assert owners == shard.assign(list(reversed(paths)), 4)
    assert all(with_one_more[path] == owners[path] for path in paths)
    sizes = [list(owners.values()).count(k) for k in (1, 2, 3, 4)]
    assert min(sizes) > 30  # about 50 each


def test_durations_balance_the_shards() -> None:
    # One long notebook and many short ones: by count, a hash could put the long one with
    # half the short ones; by duration, it is alone.
    durations = {"long.ipynb": 100.0, **{f"s{n:02d}.ipynb": 5.0 for n in range(20)}}

    owners = shard.assign(sorted(durations), 2, durations)

    loads = {k: sum(d for p, d in durations.items() if owners[p] == k) for k in (1, 2)}
    assert loads == {1: 100.0, 2: 100.0}
    # A notebook the earlier report does not know weighs the average, and lands somewhere.
    assert shard.assign([*durations, "new.ipynb"], 2, durations)["new.ipynb"] in (1, 2)


def test_shards_balance_by_the_durations_of_an_earlier_report(
    course: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, whole, _ = run(course, monkeypatch, "whole")
    data = json_report.read(whole)
    for nb in data["notebooks"]:
        for env_run in nb["runs"].values():
            env_run["duration_s"] = 60.0 if nb["path"] == "lectures/nb00.ipynb" else 1.0
    earlier = course.parent / "earlier.json"
    earlier.write_text(json.dumps(data), encoding="utf-8")

    _, _, first = run(
        course, monkeypatch, "one", "--shard", "1/2", "--shard-durations", str(earlier)
    )
    _, _, second = run(course, monkeypatch, "two", "--shard", "2/2", "--since-report", str(earlier))

    alone = [{path for path, _ in b.executed} for b in (first, second)]
    assert {"lectures/nb00.ipynb"} in alone  # the long one takes a shard to itself
    assert alone[0] | alone[1] == set(NOTEBOOKS)


@pytest.mark.parametrize("bad", ["0/2", "3/2", "2", "a/b", "1/0"])
def test_a_bad_shard_is_a_usage_error(
    course: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    code, _, backend = run(course, monkeypatch, "bad", "--shard", bad)

    assert code == 2
    assert backend.executed == []
    err = capsys.readouterr().err
    assert "shard" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _shards(course: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    _, one, _ = run(course, monkeypatch, "one", "--shard", "1/2")
    _, two, _ = run(course, monkeypatch, "two", "--shard", "2/2")
    return one, two


def _edited(path: Path, name: str, change: Any) -> Path:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    target = path.with_name(name)
    target.write_text(json.dumps(data), encoding="utf-8")
    return target


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("same shard twice", "both shard 1/2"),
        ("missing shard", "shard 2/2 missing"),
        ("missing file", "cannot read it"),
        ("other course", "course"),
        ("other env", "env 'upcoming'"),
        ("overlap", "the shards overlap"),
        ("other settings", "ran with timeout = 60.0"),
        ("unsharded", "not a shard's report"),
    ],
)
def test_merging_reports_that_do_not_belong_together_is_a_usage_error(
    course: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    said: str,
) -> None:
    one, two = _shards(course, monkeypatch)
    whole = run(course, monkeypatch, "whole")[1]
    first = json.loads(one.read_text(encoding="utf-8"))["notebooks"][0]

    def other_env(data: dict[str, Any]) -> None:
        data["envs"]["upcoming"]["fingerprint"] = "another"

    def overlapping(data: dict[str, Any]) -> None:
        data["notebooks"].append(first)

    inputs = {
        "same shard twice": [one, one],
        "missing shard": [one],
        "missing file": [one, course.parent / "nowhere.json"],
        "other course": [one, _edited(two, "c.json", lambda data: data.update(course="/x"))],
        "other env": [one, _edited(two, "e.json", other_env)],
        "overlap": [one, _edited(two, "o.json", overlapping)],
        "other settings": [
            one,
            run(course, monkeypatch, "t", "--shard", "2/2", "--timeout", "60")[1],
        ],
        "unsharded": [whole, two],
    }[case]
    merged = course.parent / "merged.json"
    capsys.readouterr()

    code = cli.main(["merge", *map(str, inputs), "--report", str(merged)])

    assert code == 2
    assert not merged.exists()
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
