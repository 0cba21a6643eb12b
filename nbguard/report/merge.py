"""`nbguard merge`: the shards' JSON reports (`run --shard K/N`) as the one report an unsharded
run would have written, after checking they belong together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbguard.errors import ConfigError
from nbguard.model import VERDICTS
from nbguard.report import json_report
from nbguard.shard import parse


def merge_files(paths: Sequence[Path]) -> dict[str, Any]:
    """The merged report of the shard reports at `paths`; one line when they cannot be."""
    return merge([(path, json_report.read(path)) for path in paths])


def merge(reports: Sequence[tuple[Path, Mapping[str, Any]]]) -> dict[str, Any]:
    """One report from every shard of a run: the same course, baseline and envs, each shard
    1..N once, each notebook in one shard. Notebooks in path order (as discovery gives them),
    the summary counted again, the run as long as its slowest shard."""
    if not reports:
        raise ConfigError("nothing to merge: name the shards' JSON reports")
    first_path, first = reports[0]
    count = _shard(first_path, first)[1]
    owners: dict[int, Path] = {}
    notebooks: dict[str, Mapping[str, Any]] = {}
    where: dict[str, Path] = {}
    for path, data in reports:
        index, of = _shard(path, data)
        if of != count:
            raise ConfigError(f"{path} is shard {index}/{of}, {first_path} one of {count}")
        if index in owners:
            raise ConfigError(f"{path} and {owners[index]} are both shard {index}/{count}")
        owners[index] = path
        _same_run(first_path, first, path, data)
        for nb in data.get("notebooks") or []:
            name = str(nb["path"])
            if name in notebooks:
                raise ConfigError(
                    f"{name} is in {where[name]} and in {path}: the shards overlap "
                    "(were they split with different --shard-durations?)"
                )
            notebooks[name], where[name] = nb, path
    missing = [f"{k}/{count}" for k in range(1, count + 1) if k not in owners]
    if missing:
        raise ConfigError(f"shard {', '.join(missing)} missing: merge every shard of the run")
    datas = [data for _, data in reports]
    ordered = [notebooks[name] for name in sorted(notebooks)]
    merged: dict[str, Any] = {
        **first,
        "created": max(str(data.get("created") or "") for data in datas),
        "interrupted": any(bool(data.get("interrupted")) for data in datas),
        "duration_s": max(float(data.get("duration_s") or 0.0) for data in datas),
        "envs": _envs(datas),
        "summary": _summary(ordered),
        "notebooks": ordered,
        "settings": {**(first.get("settings") or {}), "shard": None},
        "blame": _blame(datas),
    }
    merged.pop("upgraded_from", None)
    if all("since" in data for data in datas):
        merged["since"] = _since(datas)
    else:
        merged.pop("since", None)
    return merged


def _shard(path: Path, data: Mapping[str, Any]) -> tuple[int, int]:
    shard = (data.get("settings") or {}).get("shard")
    if not isinstance(shard, str):
        raise ConfigError(f"{path} is not a shard's report (written by `nbguard run --shard K/N`)")
    try:
        return parse(shard)
    except ValueError:
        raise ConfigError(f"{path}: shard {shard!r} is not K/N") from None


# Settings each shard may have of its own: where it wrote and read things, which shard.
_PER_SHARD = frozenset(
    {"shard", "report", "html", "markdown", "junit", "since-report", "shard-durations", "cache-dir"}
)


def _same_run(
    first_path: Path, first: Mapping[str, Any], path: Path, data: Mapping[str, Any]
) -> None:
    ours, theirs = data.get("settings") or {}, first.get("settings") or {}
    for key in sorted((set(ours) | set(theirs)) - _PER_SHARD):
        if ours.get(key) != theirs.get(key):
            raise ConfigError(
                f"{path} ran with {key} = {ours.get(key)!r}, {first_path} with "
                f"{theirs.get(key)!r}: shards of one run share their settings"
            )
    for key in ("course", "baseline"):
        if data.get(key) != first.get(key):
            raise ConfigError(
                f"{path} is of {key} {data.get(key)!r}, {first_path} of {first.get(key)!r}: "
                "shards of one run share them"
            )
    envs, first_envs = data.get("envs") or {}, first.get("envs") or {}
    if set(envs) != set(first_envs):
        raise ConfigError(
            f"{path} has envs {', '.join(sorted(envs))}, {first_path} "
            f"{', '.join(sorted(first_envs))}: shards of one run share them"
        )
    for name, env in envs.items():
        other = first_envs[name]
        if (env.get("fingerprint"), env.get("python")) != (
            other.get("fingerprint"),
            other.get("python"),
        ):
            raise ConfigError(
                f"env {name!r} of {path} differs from {first_path}'s "
                f"(fingerprint {env.get('fingerprint')} vs {other.get('fingerprint')}): "
                "the shards ran against different environments"
            )


def _envs(datas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each env as the shards saw it (the same by _same_run): reused only when every shard
    reused it, built in the longest shard's time."""
    merged: dict[str, Any] = {}
    for name, env in (datas[0].get("envs") or {}).items():
        all_of = [data["envs"][name] for data in datas]
        merged[name] = {
            **env,
            "reused": all(bool(e.get("reused")) for e in all_of),
            "build_s": max(float(e.get("build_s") or 0.0) for e in all_of),
        }
    return merged


def _summary(notebooks: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(VERDICTS, 0)
    for nb in notebooks:
        verdict = str(nb.get("verdict"))
        counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def _blame(datas: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    costs = [data["blame"] for data in datas if data.get("blame")]
    if not costs:
        return None
    return {
        "notebooks": sum(int(cost.get("notebooks") or 0) for cost in costs),
        "envs_built": sum(int(cost.get("envs_built") or 0) for cost in costs),
        "envs_used": sum(int(cost.get("envs_used") or 0) for cost in costs),
        "seconds": round(sum(float(cost.get("seconds") or 0.0) for cost in costs), 3),
        "steps": dict(sorted(item for cost in costs for item in (cost.get("steps") or {}).items())),
    }


def _since(datas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Nightly sections: each shard compared its own notebooks with the same earlier report."""
    sections = [data["since"] for data in datas]
    return {
        **sections[0],
        "new_broken": sorted(
            (item for s in sections for item in s.get("new_broken") or []),
            key=lambda item: str(item.get("path")),
        ),
        "new_warnings": sorted(
            (item for s in sections for item in s.get("new_warnings") or []),
            key=lambda item: (str(item.get("path")), str(item.get("env")), item.get("cell") or 0),
        ),
    }


def exit_code(data: Mapping[str, Any]) -> int:
    """What `nbguard run` would have exited with, from the merged report and its settings:
    3 nbguard failed on a notebook, 1 a notebook broke (changed too unless allowed; with
    strict also warnings, already-broken; in nightly mode only new breakage), else 0."""
    notebooks = data.get("notebooks") or []
    if any(nb.get("internal_error") for nb in notebooks):
        return 3
    if "since" in data:
        return 1 if data["since"].get("new_broken") else 0
    settings = data.get("settings") or {}
    failing = {"broken"}
    if not settings.get("allow-changed"):
        failing.add("changed")
    if settings.get("strict"):
        failing |= {"warnings", "already-broken"}
    return 1 if any(nb.get("verdict") in failing for nb in notebooks) else 0
