"""Nightly mode: what is new in a report compared with an earlier one (both as JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbguard.errors import ConfigError
from nbguard.report import json_report

_FAILING = {"broken"}


def load_previous(path: Path) -> dict[str, Any]:
    """An earlier nbguard report; a clear one-line error when it is not one."""
    try:
        return json_report.read(path)
    except ConfigError as exc:
        raise ConfigError(f"--since-report {exc}") from None


def since(previous: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """New breakages (a notebook broken now that was not, or broken differently), new
    deprecation warnings, and the package versions that moved since the earlier report."""
    before = {nb["path"]: nb for nb in previous.get("notebooks", [])}
    new_broken: list[dict[str, Any]] = []
    new_warnings: list[dict[str, Any]] = []
    for nb in current.get("notebooks", []):
        old = before.get(nb["path"])
        if nb["verdict"] in _FAILING and (
            old is None or old["verdict"] not in _FAILING or _errors(old) != _errors(nb)
        ):
            new_broken.append(
                {
                    "path": nb["path"],
                    "verdict": nb["verdict"],
                    "was": old["verdict"] if old else None,
                    "culprit": nb.get("culprit"),
                }
            )
        seen = _warnings(old) if old else set()
        for env, record in sorted(_warnings(nb) - seen):
            category, message, package, cell = record
            new_warnings.append(
                {"path": nb["path"], "env": env, "cell": cell, "category": category,
                 "message": message, "package": package}
            )  # fmt: skip
    return {
        "previous": previous.get("created"),
        "new_broken": new_broken,
        "new_warnings": new_warnings,
        "new_versions": _moved(previous.get("envs", {}), current.get("envs", {})),
    }


def _errors(nb: Mapping[str, Any]) -> dict[str, tuple[object, object]]:
    """Each env's failing cell and exception name: a different break is a new one."""
    found: dict[str, tuple[object, object]] = {}
    for env, run in nb.get("runs", {}).items():
        error = run.get("error") or {}
        found[env] = (error.get("cell"), error.get("ename") or run.get("status"))
    return found


def _warnings(nb: Mapping[str, Any]) -> set[tuple[str, tuple[str, str, str | None, int]]]:
    return {
        (env, (w["category"], w["message"], w.get("package"), w["cell"]))
        for env, run in nb.get("runs", {}).items()
        for w in run.get("warnings", [])
    }


def _moved(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> dict[str, dict[str, list[str | None]]]:
    """env → package → [old version, new version], for every version that changed."""
    moved: dict[str, dict[str, list[str | None]]] = {}
    for env, info in after.items():
        old = (before.get(env) or {}).get("packages", {})
        new = info.get("packages", {})
        changes = {
            name: [old.get(name), new.get(name)]
            for name in sorted(set(old) | set(new))
            if old.get(name) != new.get(name)
        }
        if changes:
            moved[env] = changes
    return moved
