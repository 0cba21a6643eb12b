"""Which environment variables look like secrets: kept from kernels, redacted in reports."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping

__all__ = ["SECRET_PATTERNS", "is_secret", "redactor", "secret_values"]

# fnmatch patterns, matched against the upper-cased name.
SECRET_PATTERNS = (
    "*TOKEN*",
    "*SECRET*",
    "*PASSWORD*",
    "*PASSWD*",
    "*_KEY",
    "*_KEY_ID",
    "AWS_*",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_*",
    "*CREDENTIAL*",
    "*_AUTH*",
    "NPM_TOKEN",
    "PYPI_*",
    "TWINE_*",
    "CODECOV_TOKEN",
)
# Shorter values ("1", "true", "us-east-1") would redact ordinary text all over a report.
MIN_SECRET_LENGTH = 6
REDACTED = "***"


def is_secret(name: str) -> bool:
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, pattern) for pattern in SECRET_PATTERNS)


def allowed(name: str, allow: Iterable[str]) -> bool:
    """Whether `name` is one of the exact names or fnmatch globs of `allow`."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in allow)


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of secret-looking variables worth redacting, longest first."""
    env = os.environ if environ is None else environ
    found = {v for k, v in env.items() if is_secret(k) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(found, key=lambda value: (-len(value), value))


def redactor(environ: Mapping[str, str] | None = None) -> re.Pattern[str] | None:
    """One regex matching any secret value (longest first), or None when there is none."""
    values = secret_values(environ)
    if not values:
        return None
    return re.compile("|".join(re.escape(value) for value in values))
