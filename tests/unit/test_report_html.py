"""The HTML report: content, escaping of hostile outputs, CSP, images, and a headless browser."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from nbguard.model import (
    CellError,
    Change,
    Comparison,
    Culprit,
    EnvInfo,
    Hint,
    InternalError,
    NotebookReport,
    NotebookRun,
    Report,
    Tolerance,
    WarningRecord,
)
from nbguard.report import html_page, json_report
from tests.support.wheels import unavailable

SCRIPT_PAYLOAD = "<script>alert(1)</script>"
IMG_PAYLOAD = "<img src=x onerror=alert(1)>"
# The browser test's payloads: they would change the title if anything ran.
PWN_SCRIPT = "<script>document.title='pwned'</script>"
PWN_IMG = "<img src=x onerror=\"document.title='pwned'\">"
SVG_PAYLOAD = '<svg xmlns="http://www.w3.org/2000/svg" onload="document.title=\'pwned\'"></svg>'


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 40)) -> str:
    image = Image.new("RGB", size, colour)
    for x in range(size[0]):
        image.putpixel((x, x % size[1]), (0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _gif() -> str:
    buffer = io.BytesIO()
    Image.new("P", (8, 8), 3).save(buffer, format="GIF")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _report(
    script: str = SCRIPT_PAYLOAD, img: str = IMG_PAYLOAD, internal: bool = False
) -> dict[str, Any]:
    """A report touching every part of the page, with hostile text wherever outputs land;
    with `internal`, also a notebook nbguard's own code failed on."""
    warn = WarningRecord(2, "DeprecationWarning", f"old API {img} is going", "wobble")
    broken = "homework/hw01_averages.ipynb"
    runs_broken = {
        "locked": NotebookRun(broken, "locked", "ok", 1.0, warnings=(warn,)),
        "upcoming": NotebookRun(
            broken,
            "upcoming",
            "error",
            1.2,
            error=CellError(3, "AttributeError", f"no attribute {script}"),
            later_errors=(CellError(5, "KeyError", f"'{img}'"),),
            warnings=(WarningRecord(4, "FutureWarning", f"soon {script}", None),),
        ),
    }
    culprit = Culprit("wobble", "1.0", "2.0", "confirmed", f"reason {img}")
    change = Change("upcoming", 3, "error", f"ok {script}\nsame line", f"{img}\nsame line")
    broken_nb = NotebookReport(
        broken,
        "broken",
        runs_broken,
        (Comparison(broken, "locked", "upcoming", "broken", (change,), culprit),),
        foreshadowing=(warn,),
        hints=(Hint(3, f"use wobble.mean {img}", "DeprecationWarning (wobble)"),),
    )

    plot = "lectures/02_plot.ipynb"
    image_changes = (
        Change(
            "upcoming",
            2,
            "image",
            "image/png 64x40",
            "image/png 64x40\n12% of pixels differ",
            images=("image/png", _png((250, 200, 0)), _png((0, 120, 250))),
        ),
        Change("upcoming", 3, "image", "svg", "svg", images=("image/svg+xml", SVG_PAYLOAD, "")),
        Change(
            "upcoming",
            4,
            "image",
            "png?",
            "png?",
            images=("image/png", f'"><script>x</script>{img}', "bm90IGEgcG5n"),  # not an image
        ),
        Change("upcoming", 5, "image", "gif", "gif", images=("image/gif", _gif(), _gif())),
    )
    # A table whose rows were realigned with float noise, and one value that really moved.
    table = Change(
        "upcoming",
        6,
        "value",
        "   x  y\n0  1  0.5\n1  2  0.25\n2  3  4.440892e-16",
        "   x     y\n0  1  0.5000000001\n1  2  0.31\n2  3  0.0",
        ("whitespace", "rel_tol=1e-06", "abs_tol=1e-12"),
        summary="0.25 → 0.31 (rel 24%), line 3",
        tolerance=Tolerance(),
    )
    plot_runs = {env: NotebookRun(plot, env, "ok", 0.5) for env in ("locked", "upcoming")}
    plot_nb = NotebookReport(
        plot,
        "changed",
        plot_runs,
        (Comparison(plot, "locked", "upcoming", "changed", (*image_changes, table), culprit),),
    )

    def plain(path: str, verdict: Any, status: Any = "ok", reason: str | None = None) -> Any:
        runs = {
            env: NotebookRun(path, env, status, 0.3, reason=reason)
            for env in ("locked", "upcoming")
        }
        comparisons = (
            () if verdict == "skipped" else (Comparison(path, "locked", "upcoming", verdict),)
        )
        return NotebookReport(path, verdict, runs, comparisons, skip_reason=reason)

    notebooks = (
        broken_nb,
        plot_nb,
        plain("labs/lab01.ipynb", "ok"),
        plain("labs/lab02.ipynb", "ok"),
        plain(f"labs/{img}.ipynb", "warnings"),
        plain("labs/r.ipynb", "skipped", "skipped", f"non-Python kernel {script}"),
    )
    if internal:
        boom = InternalError(
            "comparing",
            "RuntimeError",
            f"boom {script}",
            f'Traceback (most recent call last):\n  File "x.py"\nRuntimeError: boom {script}',
        )
        runs = {
            env: NotebookRun("labs/lab04.ipynb", env, "ok", 0.3) for env in ("locked", "upcoming")
        }
        failed = NotebookReport("labs/lab04.ipynb", "internal-error", runs, internal=boom)
        notebooks = (*notebooks, failed)
    envs = {
        "locked": EnvInfo("locked", "3.11.7", {"wobble": "1.0", "numpy": "1.26.4"}, "f" * 64),
        "upcoming": EnvInfo(
            "upcoming", "3.12.1", {"wobble": "2.0", "numpy": "1.26.4", "new-dep": "0.1"}, "e" * 64
        ),
    }
    report = Report(
        course="/courses/phys101",
        baseline="locked",
        envs=envs,
        notebooks=notebooks,
        created="2026-01-05T10:00:00+00:00",
        duration_s=12.5,
    )
    return json_report.to_json(report)


@pytest.fixture(scope="module")
def page() -> str:
    return html_page.render(_report())


def _without_script(page: str) -> str:
    """The page with the one inline script removed (its source mentions no payload anyway)."""
    return page.replace(html_page.SCRIPT, "")


def test_every_notebook_path_appears_escaped(page: str) -> None:
    for nb in _report()["notebooks"]:
        assert html_page._e(nb["path"]) in page
        assert f'data-verdict="{nb["verdict"]}"' in page


def test_summary_counts_per_verdict(page: str) -> None:
    counts = dict(re.findall(r'data-count="([a-z-]+)">(\d+) ', page))
    # No internal-error badge unless nbguard failed on a notebook: a zero there is noise.
    assert counts == {
        "broken": "1",
        "changed": "1",
        "already-broken": "0",
        "warnings": "1",
        "fixed": "0",
        "ok": "2",
        "skipped": "1",
    }


def test_hostile_text_is_escaped_everywhere(page: str) -> None:
    body = _without_script(page)
    for raw in (SCRIPT_PAYLOAD, IMG_PAYLOAD, "<script>x</script>", "<svg"):
        assert raw not in body
    assert body.count("<script") == 1  # only ours, now emptied
    assert "<img src=x" not in body and '<img src="x"' not in body
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"no attribute {escaped}" in body  # evalue
    assert f"soon {escaped}" in body  # warning message
    assert "old API &lt;img src=x onerror=alert(1)&gt; is going" in body  # foreshadowing too
    assert "&lt;svg xmlns=&quot;http://www.w3.org/2000/svg&quot;" in body  # svg as text


def test_page_parts(page: str) -> None:
    assert "/courses/phys101" in page and "2026-01-05T10:00:00+00:00" in page
    assert "Culprit:" in page and "wobble</code> 1.0 → 2.0" in page and "confirmed" in page
    assert "Foreshadowed:" in page and "already warned" in page
    assert "Fix hints:" in page and "Later errors" in page and "KeyError" in page
    assert "<h4>Warnings</h4>" in page and "FutureWarning" in page
    # The packages table: changed versions highlighted, an added package shown with a dash.
    assert '<td class="changed">2.0</td>' in page
    assert '<td class="changed">0.1</td>' in page
    assert re.search(r"<td><code>numpy</code></td><td>1\.26\.4</td><td>1\.26\.4</td>", page)
    assert "<strong>3.12.1</strong>" in page
    # The light diff: the common line plain on both sides, the changed one marked.
    assert page.count("\nsame line</pre>") == 2
    assert '<span class="rm">' in page and '<span class="add">' in page


def test_a_change_marks_only_the_lines_the_comparison_found_changed(page: str) -> None:
    assert "<code>value</code>: 0.25 → 0.31 (rel 24%), line 3" in page
    # Realigned rows and float noise within tolerance stay plain on both sides.
    assert "<pre>   x  y\n0  1  0.5\n" in page
    assert "<pre>   x     y\n0  1  0.5000000001\n" in page
    assert '<span class="rm">1  2  0.<b>25</b></span>' in page
    assert '<span class="add">1  2  0.<b>31</b></span>' in page
    assert '<span class="rm">2  3' not in page


def test_a_long_change_shows_its_changed_lines_with_a_few_around_them() -> None:
    rows = [f"row {i}: {i}" for i in range(200)]
    moved = [*rows[:20], "row 20: twenty", *rows[21:150], "row 150: x", *rows[151:]]
    change = {"env": "upcoming", "cell": 1, "kind": "text", "before": "\n".join(rows),
              "after": "\n".join(moved)}  # fmt: skip
    notebook = {"path": "a.ipynb", "verdict": "changed", "changes": [change]}

    page = html_page.render({"baseline": "locked", "notebooks": [notebook], "envs": {}})

    assert page.count('<span class="muted">⋯</span>') == 2  # between the two places, each side
    assert "row 17: 17" in page and "row 16: 16" not in page and "row 100: 100" not in page
    assert '<span class="add">row 20: <b>twenty</b></span>' in page


def test_nbguards_own_failure_is_shown_filterable_and_escaped() -> None:
    page = html_page.render(_report(internal=True))
    body = _without_script(page)

    counts = dict(re.findall(r'data-count="([a-z-]+)">(\d+) ', page))
    assert counts["internal-error"] == "1"
    assert '<input type="checkbox" value="internal-error" checked>' in page
    assert '"internal-error", "broken", "changed"' in html_page.SCRIPT  # "problems only"
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"nbguard internal error while comparing: RuntimeError: boom {escaped}" in body
    assert f"RuntimeError: boom {escaped}</pre>" in body  # the traceback, folded
    assert SCRIPT_PAYLOAD not in body
    # Worst first: nbguard's own failure leads the overview.
    first_row = re.search(r'<tbody>\n<tr data-verdict="([a-z-]+)"', page)
    assert first_row is not None and first_row.group(1) == "internal-error"


def test_csp_meta_pins_the_one_script_by_hash(page: str) -> None:
    meta = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert meta is not None
    policy = meta.group(1).replace("&#x27;", "'")
    assert policy.startswith("default-src 'none'; img-src data:; style-src 'unsafe-inline'; ")
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    # The policy comes before anything the report supplies.
    assert page.index("Content-Security-Policy") < page.index("<title>")


def test_images_embedded_only_for_allowed_mimes(page: str) -> None:
    sources = re.findall(r'<img src="([^"]*)"', page)
    mimes = sorted(re.match(r"data:([^;]+);base64,", s).group(1) for s in sources)  # type: ignore[union-attr]
    assert mimes == ["image/gif", "image/gif", "image/png", "image/png"]
    assert all(re.fullmatch(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", s) for s in sources)
    assert "not a valid image/png payload" in page
    assert "image/svg+xml shown as text" in page


def test_data_url_validates_payload_and_mime() -> None:
    png = _png((1, 2, 3))
    assert html_page.data_url("image/png", png) == f"data:image/png;base64,{png}"
    wrapped = "\n".join(png[i : i + 76] for i in range(0, len(png), 76))  # nbformat style
    assert html_page.data_url("image/png", wrapped) == f"data:image/png;base64,{png}"
    assert html_page.data_url("image/jpeg", png) is None  # bytes are not a JPEG
    assert html_page.data_url("image/svg+xml", base64.b64encode(b"<svg/>").decode()) is None
    assert html_page.data_url("text/html", png) is None
    assert html_page.data_url("image/png", 'AAAA"onerror="x') is None
    assert html_page.data_url("image/png", "") is None


def test_a_sparse_report_still_renders() -> None:
    page = html_page.render({"notebooks": [{"path": "a.ipynb"}], "envs": {}})
    assert "a.ipynb" in page and page.rstrip().endswith("</html>")


def test_renders_the_same_from_json_read_back() -> None:
    """What `nbguard report` will do: render from the JSON text alone."""
    data = json.loads(json.dumps(_report()))
    assert html_page.render(data) == html_page.render(_report())


# -- a real browser ----------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_headless_chromium_runs_no_payload_and_renders(tmp_path: Path) -> None:
    if CHROMIUM is None:
        unavailable("Debian's chromium is not installed (apt-get install chromium)")
    report = tmp_path / "report.html"
    report.write_text(html_page.render(_report(PWN_SCRIPT, PWN_IMG)), encoding="utf-8")
    url = report.as_uri()

    dom = _chromium(tmp_path, "--dump-dom", url).stdout
    title = re.search(r"<title>(.*?)</title>", dom, flags=re.S)
    assert title is not None and title.group(1).startswith("nbguard report")
    assert "pwned" not in title.group(1)
    assert '<img src="x"' not in dom and "<img src=x" not in dom
    assert "<svg" not in dom
    assert dom.count("<script") == 1
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom  # shown, as text
    # Our own script did run (its CSP hash is right): it un-hid the filter bar.
    bar = re.search(r'<div id="filters"[^>]*>', dom)
    assert bar is not None and "hidden" not in bar.group(0)

    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert shot.stat().st_size > 20_000
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200
