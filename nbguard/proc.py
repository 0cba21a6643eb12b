"""The one place nbguard starts a child process (resolvers, installers, interpreter probes)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def last_lines(self, count: int = 12) -> str:
        """The tail of what the command said, where tools put the reason they failed."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-count:])


def run(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    withhold: Callable[[str], bool] | None = None,
) -> Completed:
    """Run a command to completion and capture its text; never raises for a non-zero exit.

    A command that cannot be started at all (missing executable) or that outlives `timeout`
    is reported as a failed `Completed`, so callers handle one shape. `withhold` names the
    inherited environment variables the command must not see (secrets, for code of an env).
    """
    args = tuple(str(part) for part in argv)
    full_env = {k: v for k, v in os.environ.items() if withhold is None or not withhold(k)}
    if env is not None:
        full_env.update(env)
    try:
        done = subprocess.run(
            args,
            env=full_env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        return Completed(args, 127, "", f"cannot run {args[0]}: {exc.strerror}")
    except subprocess.TimeoutExpired:
        return Completed(args, 124, "", f"{args[0]} did not finish within {timeout:g} s")
    return Completed(args, done.returncode, done.stdout, done.stderr)
