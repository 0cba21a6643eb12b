"""The blame cache: what a finished blame found, per (notebook, both env fingerprints,
comparison settings), so blaming the same pair of envs again builds and runs nothing."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nbguard import compare
from nbguard.blame.search import Finding
from nbguard.model import Culprit, EnvInfo, HiddenBreak, Notebook

# Bump when what a cached blame means changes.
_FORMAT = "nbguard-blame/2"  # 2: the hidden breaks


@dataclass(frozen=True)
class Stored:
    """A finished blame: what it found and what finding it cost the first time."""

    finding: Finding
    envs_built: int
    envs_used: int
    seconds: float
    steps: tuple[str, ...]
    hidden: tuple[HiddenBreak, ...] = ()


def path_for(
    cache_dir: Path,
    notebook: Notebook,
    before: EnvInfo,
    after: EnvInfo,
    options: compare.CompareOptions,
) -> Path:
    # The comparison settings decide what "the failure is gone" means, so they key it too.
    parts = [_FORMAT, notebook.sha256, before.fingerprint, after.fingerprint]
    parts += [repr(options.tolerance), repr(options.replacements), repr(options.image_threshold)]
    key = hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:24]
    return cache_dir / "blame" / f"{key}.json"


def store(path: Path, stored: Stored) -> None:
    culprit = stored.finding.culprit
    data = {
        "format": _FORMAT,
        "culprit": culprit.to_json() if culprit is not None else None,
        "why_not": stored.finding.why_not,
        "envs_built": stored.envs_built,
        "envs_used": stored.envs_used,
        "seconds": round(stored.seconds, 2),
        "steps": list(stored.steps),
        "hidden": [hidden.to_json() for hidden in stored.hidden],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed: a concurrent blame reads the old file or the new, whole.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def load(path: Path) -> Stored | None:
    """The blame stored at `path`; None when there is none (or one of another format)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return None
    culprit = _culprit(data.get("culprit"), "confirmed")
    return Stored(
        finding=Finding(culprit, str(data.get("why_not", ""))),
        envs_built=data.get("envs_built", 0),
        envs_used=data.get("envs_used", 0),
        seconds=data.get("seconds", 0.0),
        steps=tuple(str(step) for step in data.get("steps", [])),
        hidden=tuple(_hidden(raw) for raw in data.get("hidden", []) if isinstance(raw, dict)),
    )


def _culprit(raw: object, evidence: Literal["confirmed", "inferred"]) -> Culprit | None:
    if not isinstance(raw, dict):
        return None
    return Culprit(
        str(raw["package"]), raw.get("from"), raw.get("to"), evidence, str(raw["reason"])
    )


def _hidden(raw: dict[str, Any]) -> HiddenBreak:
    culprit = raw.get("culprit")
    evidence = culprit.get("evidence") if isinstance(culprit, dict) else None
    return HiddenBreak(
        str(raw["env"]),
        int(raw["cell"]),
        str(raw["ename"]),
        str(raw["evalue"]),
        str(raw["probe"]),
        _culprit(culprit, "confirmed" if evidence == "confirmed" else "inferred"),
    )
