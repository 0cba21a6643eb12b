"""Why a failed run failed, when the cause is the place it ran rather than the notebook: it
needs Google Colab, or it needs the network. The status and the verdict stay as they are;
the run gets a reason that says so."""

from __future__ import annotations

import re
from dataclasses import replace

from nbguard.model import CellError, NotebookRun

COLAB_REASON = "needs Google Colab (google.colab is not installable outside Colab)"

_COLAB = re.compile(r"""No module named ['"]?google\.colab""")
# Exception names that mean a connection could not be made (the last dotted part is enough:
# requests.exceptions.ConnectionError and urllib3's NewConnectionError end the same way).
_NETWORK_ENAMES = frozenset(
    {
        "gaierror",
        "herror",
        "ConnectionError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "URLError",
        "NewConnectionError",
        "MaxRetryError",
        "NameResolutionError",
        "ConnectTimeout",
        "ConnectTimeoutError",
        "ClientConnectorError",
        "ConnectError",
    }
)
# Messages that give a network failure away whatever exception carries them.
_NETWORK_TEXT = re.compile(
    r"Temporary failure in name resolution|Name or service not known|"
    r"nodename nor servname provided|No address associated with hostname|"
    r"Failed to establish a new connection|Network is unreachable|Connection refused|"
    r"getaddrinfo failed|Could not resolve host",
    re.IGNORECASE,
)


def reason_for(error: CellError) -> str | None:
    """The environment a cell's error says the notebook needs, or None."""
    text = f"{error.ename}: {error.evalue}"
    if error.ename in {"ModuleNotFoundError", "ImportError"} and _COLAB.search(error.evalue):
        return COLAB_REASON
    short = error.ename.rsplit(".", 1)[-1]
    if short in _NETWORK_ENAMES or _NETWORK_TEXT.search(error.evalue):
        return f"needs the network: {_one_line(text)}"
    return None


def classified(run: NotebookRun) -> NotebookRun:
    """`run` with a reason when its first error shows it needs Colab or the network; the run
    as it is otherwise (and when it already has a reason, e.g. a timeout's)."""
    if run.error is None or run.reason is not None:
        return run
    reason = reason_for(run.error)
    return run if reason is None else replace(run, reason=reason)


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
